"""A real Prometheus (and node exporter) for the local testbed.

:class:`PrometheusServer` runs Debian's ``prometheus`` (2.42) as a child of a
:class:`~k8s_gpu_rl.envs.backends.local.procs.ProcessGroup`::

    prometheus --config.file=<rundir>/prometheus.yml
               --storage.tsdb.path=<rundir>/prometheus-data
               --storage.tsdb.retention.time=<retention>
               --web.listen-address=127.0.0.1:<port> --web.enable-lifecycle
               --log.level=info

Each scrape job reads its targets from ``<rundir>/prometheus-targets/<job>.json``
(``file_sd_configs``): :meth:`PrometheusServer.set_targets` rewrites that file atomically
and Prometheus picks the change up (inotify, with a 1 s refresh as fallback) without a
restart. The per-target labels are how the backend gives pods Kubernetes-like labels
(``namespace``, ``pod``, ``container``), as the Prometheus operator's relabelling does. A
job not yet in ``prometheus.yml`` is added and the configuration reloaded (SIGHUP).

Timing (measured with Debian's 2.42): Prometheus's discovery manager passes target
changes on at most once every 5 s (not configurable in this version), so a new target's
first samples appear about 5 s (plus up to one scrape interval) after
:meth:`PrometheusServer.set_targets`, and a dropped target's series go stale after about
the same delay, much as a new pod in a real cluster is discovered a little late.

Queries go over the HTTP API (``/api/v1/query``) with :mod:`requests` and a timeout.

:class:`NodeExporter` runs ``prometheus-node-exporter`` (1.5) with only the CPU, memory
and load-average collectors.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from k8s_gpu_rl.envs.backends.local.procs import Managed, ProcessGroup, wait_http
from k8s_gpu_rl.envs.backends.promql import PrometheusClient, Sample
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.io import write_text

__all__ = [
    "Labels",
    "NodeExporter",
    "PrometheusServer",
    "Sample",
    "Target",
    "find_binary",
]

Labels = dict[str, str]
"""A series' label set, ``{"__name__": ..., "pod": ..., ...}``."""
Target = tuple[str, Mapping[str, str]]
"""A scrape target: ``("host:port", {label: value, ...})``."""


def find_binary(name: str, package: str) -> str:
    """Path of executable ``name``; :class:`BackendError` naming the Debian package if absent."""
    path = shutil.which(name)
    if path is None:
        raise BackendError(f"{name} not found on PATH: install it with `apt-get install {package}`")
    return path


class PrometheusServer:
    """A running Prometheus on ``127.0.0.1:port``; see the module docstring.

    ``scrape_interval_s`` is every job's scrape interval (the scrape timeout is the same,
    at most 10 s); ``evaluation_interval_s`` defaults to it. ``jobs`` are declared up front
    (more are added on first :meth:`set_targets`). Starting waits up to
    ``start_timeout_s`` for ``/-/ready`` and raises :class:`BackendError` with the log's
    tail if Prometheus does not come up.
    """

    def __init__(
        self,
        group: ProcessGroup,
        port: int,
        scrape_interval_s: float = 5.0,
        evaluation_interval_s: float | None = None,
        *,
        jobs: Sequence[str] = (),
        retention: str = "1d",
        name: str = "prometheus",
        start_timeout_s: float = 30.0,
        query_timeout_s: float = 10.0,
    ) -> None:
        if not scrape_interval_s > 0:
            raise BackendError(f"scrape_interval_s must be > 0, got {scrape_interval_s!r}")
        self.group = group
        self.port = int(port)
        self.scrape_interval_s = float(scrape_interval_s)
        self.evaluation_interval_s = float(evaluation_interval_s or scrape_interval_s)
        self.query_timeout_s = float(query_timeout_s)
        self.name = name
        self.config_path = group.path(f"{name}.yml")
        """``<rundir>/prometheus.yml``."""
        self.targets_dir = group.path(f"{name}-targets")
        """Folder of the ``<job>.json`` file_sd target files."""
        self.data_dir = group.path(f"{name}-data")
        self.targets_dir.mkdir(exist_ok=True)
        self._jobs: list[str] = []
        self._lock = threading.RLock()
        self._session = requests.Session()
        self.client = PrometheusClient(self.url, self.query_timeout_s)
        """Instant queries (the same client the k8s backend uses)."""
        binary = find_binary("prometheus", "prometheus")
        for job in jobs:
            self._add_job(job)
        self._write_config()
        self.process: Managed = group.start(
            name,
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
        )
        self.wait_ready(start_timeout_s)

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until ``/-/ready`` answers 200; :class:`BackendError` with the log tail if not."""
        wait_http(f"{self.url}/-/ready", timeout_s, process=self.process)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop Prometheus (the group also stops it on close)."""
        self._session.close()
        self.client.close()
        self.group.stop(self.process, grace_s=grace_s)

    @property
    def jobs(self) -> list[str]:
        """The scrape jobs in the configuration."""
        return list(self._jobs)

    # --- targets ---------------------------------------------------------------------------

    def set_targets(self, job: str, targets: Sequence[Target]) -> None:
        """Make ``targets`` the scrape targets of ``job`` (replacing the previous ones).

        Each target is ``("host:port", {label: value})``; the labels are attached to every
        series scraped from it (``job`` and ``instance`` are set by Prometheus; a
        ``__metrics_path__`` label changes the path from ``/metrics``). Written atomically;
        Prometheus applies it without a restart, within about 5 s (see the module
        docstring). A new job is added to the configuration and Prometheus reloaded.
        Thread-safe.
        """
        groups = []
        for target in targets:
            try:
                address, labels = target
            except (TypeError, ValueError) as exc:
                raise BackendError(f"target {target!r}: expected (address, labels)") from exc
            if ":" not in address:
                raise BackendError(f"target address {address!r}: expected host:port")
            groups.append(
                {"targets": [address], "labels": {str(k): str(v) for k, v in labels.items()}}
            )
        with self._lock:
            new_job = job not in self._jobs
            if new_job:
                self._add_job(job)
            write_text(self._targets_file(job), json.dumps(groups, indent=1))
            if new_job:
                self._write_config()
                self.reload()

    def reload(self, timeout_s: float = 15.0) -> None:
        """Re-read ``prometheus.yml`` (SIGHUP) and wait until the new config is in effect."""
        self._check_alive()
        os.kill(self.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        expected = self.config_path.read_text()
        while True:
            try:
                loaded = self._get("/api/v1/status/config")["yaml"]
                if all(f"job_name: {job}" in loaded for job in self._jobs):
                    return
            except BackendError:
                pass
            self._check_alive()
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{self.name} did not load its new configuration in {timeout_s:g} s:\n"
                    f"{expected}\nlog tail:\n{self.process.tail(20)}"
                )
            time.sleep(0.1)

    def targets(self) -> list[dict[str, Any]]:
        """The active targets as the API reports them (``/api/v1/targets``)."""
        return list(self._get("/api/v1/targets", {"state": "active"})["activeTargets"])

    def targets_up(self) -> dict[tuple[str, str], bool]:
        """``{(job, "host:port"): whether its last scrape succeeded}`` for the active targets."""
        out: dict[tuple[str, str], bool] = {}
        for target in self.targets():
            labels = target.get("discoveredLabels", {})
            address = labels.get("__address__") or target["labels"].get("instance", "")
            out[(target["scrapePool"], address)] = target.get("health") == "up"
        return out

    # --- queries ---------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query (:meth:`k8s_gpu_rl.envs.backends.promql.PrometheusClient.query`)."""
        return self.client.query(promql, at)

    def query_scalar(self, promql: str, at: float | None = None) -> float:
        """A one-series query's value, NaN if empty (:meth:`PrometheusClient.query_scalar`)."""
        return self.client.query_scalar(promql, at)

    def wait_for_samples(
        self, promql: str, timeout_s: float = 30.0, interval_s: float = 0.25
    ) -> list[Sample]:
        """Poll ``promql`` until its result is non-empty (NaN values do not count); return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = [s for s in self.query(promql) if not math.isnan(s[1])]
            if result:
                return result
            self._check_alive()
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"no samples for {promql!r} after {timeout_s:g} s; targets: {self.targets_up()}"
                )
            time.sleep(interval_s)

    # --- internals -------------------------------------------------------------------------

    def _targets_file(self, job: str) -> Path:
        return self.targets_dir / f"{job}.json"

    def _add_job(self, job: str) -> None:
        if not job or not all(c.isalnum() or c in "_-." for c in job):
            raise BackendError(f"job name {job!r}: use letters, digits, '_', '-', '.'")
        if job not in self._jobs:
            self._jobs.append(job)
            target_file = self._targets_file(job)
            if not target_file.exists():
                write_text(target_file, "[]")

    def render_config(self) -> str:
        """The ``prometheus.yml`` text for the current jobs (no side effects)."""
        interval = f"{int(round(self.scrape_interval_s * 1000))}ms"
        timeout = f"{int(round(min(self.scrape_interval_s, 10.0) * 1000))}ms"
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": timeout,
                "evaluation_interval": f"{int(round(self.evaluation_interval_s * 1000))}ms",
            },
            "scrape_configs": [
                {
                    "job_name": job,
                    "file_sd_configs": [
                        {"files": [str(self._targets_file(job))], "refresh_interval": "1s"}
                    ],
                }
                for job in self._jobs
            ],
        }
        return "# written by k8s_gpu_rl.envs.backends.local.promserver\n" + yaml.safe_dump(
            config, sort_keys=False
        )

    def _write_config(self) -> None:
        write_text(self.config_path, self.render_config())

    def _check_alive(self) -> None:
        if not self.process.alive():
            raise BackendError(
                f"{self.name} has exited ({self.process.returncode}); log tail:\n"
                f"{self.process.tail(30)}"
            )

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        url = self.url + path
        try:
            response = self._session.get(url, params=params, timeout=self.query_timeout_s)
        except requests.RequestException as exc:
            raise BackendError(f"{self.name} at {url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            response.status_code != 200
            or not isinstance(body, dict)
            or body.get("status") != "success"
        ):
            detail = body.get("error") if isinstance(body, dict) else response.text[:300]
            raise BackendError(
                f"{self.name} {path} {dict(params or {})}: HTTP {response.status_code}: {detail}"
            )
        return body["data"]


class NodeExporter:
    """``prometheus-node-exporter`` on ``127.0.0.1:port`` with the cpu, meminfo and loadavg
    collectors only (``--collector.disable-defaults``), and without its own Go metrics.

    Starting waits until ``/metrics`` answers; :class:`BackendError` with the log tail if not.
    """

    COLLECTORS = ("cpu", "meminfo", "loadavg")

    def __init__(
        self,
        group: ProcessGroup,
        port: int,
        *,
        name: str = "node-exporter",
        start_timeout_s: float = 15.0,
    ) -> None:
        self.group = group
        self.port = int(port)
        binary = find_binary("prometheus-node-exporter", "prometheus-node-exporter")
        self.process: Managed = group.start(
            name,
            [
                binary,
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.disable-exporter-metrics",
                "--collector.disable-defaults",
                *(f"--collector.{c}" for c in self.COLLECTORS),
            ],
        )
        wait_http(f"{self.url}/metrics", start_timeout_s, process=self.process)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, the scrape target."""
        return f"127.0.0.1:{self.port}"

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the exporter (the group also stops it on close)."""
        self.group.stop(self.process, grace_s=grace_s)
