"""Per-pod counters of the local testbed, read straight from each inference server.

What metrics-server and Triton's per-pod metrics would report on a cluster: each server's
cumulative request, request-duration and inference-busy counters (its ``/metrics``, Triton
names) and its process's CPU time and memory (``psutil``). :class:`PodCounters` keeps a
snapshot at every interval end, from which the interval's GPU work and CPU seconds and
each pod's rates over the last interval follow. (Prometheus scrapes the same servers for
the observation.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import requests

from k8s_gpu_rl.envs.backends.local.deployment import HOLDS_DEVICE, LocalPod

BUSY = "k8sgpurl_compute_busy_seconds_total"
"""The server's cumulative inference busy time (the device-utilisation source)."""
SCRAPED = ("nv_inference_request_success", "nv_inference_request_duration_us", BUSY)
"""Per-pod counters read straight from each server (metrics-server's and the KPA's view;
Prometheus has the same series for the observation)."""

Counters = dict[str, float]


@dataclass
class Snapshot:
    """Per-pod cumulative figures at one moment (``t``: the controller's clock)."""

    t: float
    pods: dict[str, Counters]


class PodCounters:
    """Scrapes the pods ``pods()`` returns; keeps the last two interval-end snapshots."""

    def __init__(self, host: str, pods: Callable[[], list[LocalPod]], clock: Callable[[], float]):
        self.host = host
        self._pods = pods
        self._clock = clock
        self._http = requests.Session()
        self._last_seen: dict[str, Counters] = {}
        self._snapshots: list[Snapshot] = []

    def close(self) -> None:
        self._http.close()

    def scrape(self, p: LocalPod) -> Counters:
        """The pod's cumulative figures: its server's metrics and its process's CPU time
        (the previous figures if the server does not answer)."""
        out: Counters = {}
        if p.proc is None:
            return out
        try:
            text = self._http.get(f"http://{self.host}:{p.metrics_port}/metrics", timeout=1.0).text
            out.update(sum_samples(text, SCRAPED))
            proc = psutil.Process(p.proc.pid)
            t = proc.cpu_times()
            out["cpu_seconds"] = t.user + t.system
            out["memory_bytes"] = float(proc.memory_info().rss)
        except (requests.RequestException, psutil.Error, ValueError):
            return p.counters
        p.counters = out
        return out

    def begin(self) -> None:
        """The first snapshot (the episode's start)."""
        self._snapshots = [self._snapshot()]

    def interval_usage(self) -> tuple[float, float]:
        """Take the interval-end snapshot; the busy (GPU-work) and CPU seconds since the
        previous one, over every pod the episode ever ran."""
        before_busy, before_cpu = self._totals(self._snapshots[-1])
        snap = self._snapshot()
        self._snapshots = [self._snapshots[-1], snap]
        busy, cpu = self._totals(snap)
        return max(0.0, busy - before_busy), max(0.0, cpu - before_cpu)

    def rates(self) -> dict[str, Counters]:
        """metrics-server's view: each pod's ``cpu_cores``, ``rps`` and ``inflight`` between
        the last two interval ends (pods missing from either snapshot: none)."""
        a, b = self._snapshots[0], self._snapshots[-1]
        dt = b.t - a.t
        out: dict[str, Counters] = {}
        if dt <= 0:
            return out
        for name in a.pods.keys() & b.pods.keys():
            before, after = a.pods[name], b.pods[name]

            def delta(key: str, before: Counters = before, after: Counters = after) -> float:
                return after.get(key, math.nan) - before.get(key, math.nan)

            out[name] = {
                "cpu_cores": delta("cpu_seconds") / dt,
                "rps": delta("nv_inference_request_success") / dt,
                "inflight": delta("nv_inference_request_duration_us") / 1e6 / dt,
            }
        return out

    def _snapshot(self) -> Snapshot:
        pods = {p.name: dict(self.scrape(p)) for p in self._pods() if p.phase in HOLDS_DEVICE}
        return Snapshot(self._clock(), pods)

    def _totals(self, snap: Snapshot) -> tuple[float, float]:
        """Cumulative busy and CPU seconds over every pod the episode ever ran."""
        for name, c in snap.pods.items():
            self._last_seen[name] = c
        busy = sum(c.get(BUSY, 0.0) for c in self._last_seen.values())
        cpu = sum(c.get("cpu_seconds", 0.0) for c in self._last_seen.values())
        return busy, cpu


def sum_samples(text: str, names: tuple[str, ...]) -> Counters:
    """Sum of each named series' samples over all its labels, from Prometheus text format.

    (prometheus_client's parser renames counters without ``_total``, as Triton's are.)"""
    out: Counters = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        name = line[:brace] if brace >= 0 else line.split(" ", 1)[0]
        if name in names:
            rest = line[line.rfind("}") + 1 :] if brace >= 0 else line[len(name) :]
            try:
                value = float(rest.split()[0])
            except (ValueError, IndexError):
                continue
            out[name] = out.get(name, 0.0) + value
    return out
