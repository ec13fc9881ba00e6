"""The ``local`` backend: the whole serving loop, for real, on this machine.

Per episode it starts, in one :class:`~k8s_gpu_rl.envs.backends.local.procs.ProcessGroup` (so that
nothing outlives it, also after Ctrl-C or a crash):

* the Deployment's pods: real inference servers (ONNX Runtime, KServe v2, Triton's
  metric names), run by :class:`~k8s_gpu_rl.envs.backends.local.deployment.LocalDeployment`;
* HAProxy in front of the Ready pods (the Service), reloaded gracefully on every change;
* Prometheus scraping the pods (as a PodMonitor would, with ``namespace``/``pod``/
  ``container`` labels), the cluster exporter (kube-state-metrics, cAdvisor, DCGM and HAMi
  names; ``k8s_gpu_rl.envs.backends.local.exporter``) and a node exporter;
* Locust, headless, with the project's locustfile and the episode's load profile.

The observation comes from Prometheus through ``k8s_gpu_rl.envs.observation``'s PromQL, the same
queries the Kubernetes backend sends; the KPIs come from Locust's own measurement of each
request (``K8SGPURL_REQUEST_LOG``). Time is wall-clock time: an episode lasts as long as
its profile.

The vGPU share maps to compute on this machine: ``gpucores`` S lets a server's inference
run at most S % of wall-clock time on one ONNX Runtime thread (the server's limiter works
as HAMi-core's does on a GPU), so the machine's "GPU" is one core of inference time.
``gpumem`` is recorded (and exported as the pod's HAMi memory limit) but not enforced.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
import yaml

from k8s_gpu_rl.envs.backends.base import DeploymentState, IntervalRecord, PodMetrics
from k8s_gpu_rl.envs.backends.local.deployment import (
    HOLDS_DEVICE,
    PENDING,
    READY,
    LocalDeployment,
    LocalPod,
    ServerCommand,
)
from k8s_gpu_rl.envs.backends.local.exporter import ClusterExporter, ClusterSample, PodSample
from k8s_gpu_rl.envs.observation import evaluate_live, queries
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.loadprofiles import LoadProfile
from k8s_gpu_rl.loadprofiles.profile import profile_dict, users_at

REPO_ROOT = Path(__file__).resolve().parents[3]
BUSY = "k8sgpurl_compute_busy_seconds_total"
"""The server's cumulative inference busy time (the device-utilisation source)."""
SCRAPED = ("nv_inference_request_success", "nv_inference_request_duration_us", BUSY)
"""Per-pod counters the backend reads straight from each server (metrics-server's and the
KPA's view; Prometheus has the same series for the observation)."""


@dataclass(frozen=True)
class LocalOptions:
    """Settings of the local testbed that no cluster config holds."""

    host: str = "127.0.0.1"
    """Loopback address every component binds to."""
    namespace: str = "default"
    """The ``namespace`` label the pods' series carry (as on a cluster)."""
    deployment: str = "triton"
    """The Deployment's name; pods are ``<deployment>-<hash>-<id>``."""
    threads: int = 1
    """ONNX Runtime intra-op threads per server."""
    ready_timeout_s: float = 120.0
    """How long reset() waits for the first pods and Prometheus."""
    model_path: str | None = None
    """An ONNX file to serve; default: the cached MobileNetV4-Conv-Small export."""
    keep_run_dir: bool = False
    """Keep the run directory (logs, configs, Locust CSVs) after close()."""


class LocalBackend:
    """Real processes behind the :class:`~k8s_gpu_rl.envs.backends.base.Backend` seam."""

    def __init__(
        self, config: ClusterConfig, profile: LoadProfile, options: LocalOptions | None = None
    ) -> None:
        if len(config.gpus) != 1:
            raise BackendError(
                f"the local backend models one device; cluster {config.name!r} has "
                f"{len(config.gpus)} GPUs (use cluster='local')"
            )
        self.config = config
        self.profile = profile
        self.options = options or LocalOptions()
        self.total_gpus = 1.0
        self.gpu_memory_mib = config.gpus[0][1].memory_mib
        self.max_batch = config.serving.max_batch_size
        self.scrape_interval_s = config.metrics.scrape_interval_s
        self.duration_s = profile.duration_s
        self._live: _Episode | None = None
        self.last_run_dir: Path | None = None

    # -- Backend -----------------------------------------------------------------------------
    def reset(self, seed: int, gpucores: int | None = None, gpumem_mib: int | None = None) -> None:
        self.close()
        config = self.config
        if gpucores is not None and gpumem_mib is not None:
            d = dataclasses.replace(config.deployment, gpucores=gpucores, gpumem_mib=gpumem_mib)
            config = dataclasses.replace(config, deployment=d)
        self._live = _Episode(config, self.profile, self.options)
        self.last_run_dir = self._live.run_dir
        self._live.start()

    @property
    def live(self) -> _Episode:
        if self._live is None:
            raise RuntimeError("call reset() before using the backend")
        return self._live

    def apply(self, replicas: int, gpucores: int, gpumem_mib: int) -> None:
        self.live.deployment.set(replicas, gpucores, gpumem_mib)

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        return self.live.deployment.capacity(gpucores, gpumem_mib)

    def rollout_can_start(self, replicas: int, gpucores: int, gpumem_mib: int) -> bool:
        return self.live.deployment.rollout_can_start(replicas, gpucores, gpumem_mib)

    def advance(self, duration_s: float) -> IntervalRecord:
        return self.live.advance(duration_s)

    def observe(self, window_s: float) -> dict[str, float]:
        return self.live.observe(window_s)

    def deployment(self) -> DeploymentState:
        return self.live.deployment_state()

    def pod_metrics(self) -> list[PodMetrics]:
        return self.live.pod_metrics()

    def now_s(self) -> float:
        return self.live.now_s()

    def close(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.close()


@dataclass
class _Snapshot:
    """Per-pod cumulative figures at one moment (what metrics-server and Triton expose)."""

    t: float
    pods: dict[str, dict[str, float]]


class _Episode:
    """One episode's processes and bookkeeping."""

    def __init__(self, config: ClusterConfig, profile: LoadProfile, options: LocalOptions):
        from k8s_gpu_rl.envs.backends.local.loadbalancer import HAProxy
        from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port

        self.config, self.profile, self.options = config, profile, options
        self.group = ProcessGroup(keep=options.keep_run_dir)
        try:
            self.run_dir = Path(self.group.rundir)
            self.free_port = lambda: free_port(options.host)
            self.lb = HAProxy(self.group, self.free_port(), health_path="/v2/health/ready")
            self.deployment = LocalDeployment(
                options.deployment,
                config,
                ServerCommand(
                    self._model_repository(),
                    config.serving.model_name,
                    options.host,
                    options.threads,
                ),
                self.group,
                on_endpoints=self._set_endpoints,
                on_pods=self._set_scrape_targets,
                free_port=self.free_port,
            )
        except BaseException:
            self.group.close()
            raise
        self.prom: Any = None
        self.exporter: ClusterExporter | None = None
        self.locust: Any = None
        self.t0 = math.inf
        self._http = requests.Session()
        self._last_seen: dict[str, dict[str, float]] = {}
        self._snapshots: list[_Snapshot] = []
        self._acc = (0.0, 0.0, 0.0, 0.0)
        self._busy_total = 0.0
        self._cpu_total = 0.0
        self._last_end = 0.0
        self._events_seen = 0
        self._promql: dict[str, dict[str, str]] = {}

    # -- start and stop ----------------------------------------------------------------------
    def _model_repository(self) -> Path:
        from k8s_gpu_rl.envs.backends.local.model import ensure_onnx, write_model_repository

        onnx = Path(self.options.model_path) if self.options.model_path else ensure_onnx()
        if not onnx.is_file():
            raise BackendError(f"model file {onnx} does not exist")
        s = self.config.serving
        repo = self.run_dir / "models"
        write_model_repository(
            repo,
            onnx,
            max_batch_size=s.max_batch_size,
            max_queue_delay_us=s.max_queue_delay_us,
            model_name=s.model_name,
        )
        return repo

    def start(self) -> None:
        from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun
        from k8s_gpu_rl.envs.backends.local.promserver import NodeExporter, PrometheusServer

        o = self.options
        try:
            self.prom = PrometheusServer(
                self.group,
                self.free_port(),
                scrape_interval_s=self.config.metrics.scrape_interval_s,
            )
            exporter_port, node_port = self.free_port(), self.free_port()
            self.exporter = ClusterExporter(self._cluster_sample, o.host, exporter_port)
            NodeExporter(self.group, node_port)
            self.prom.set_targets("kube-state-metrics", [(f"{o.host}:{exporter_port}", {})])
            self.prom.set_targets("node", [(f"{o.host}:{node_port}", {})])
            self.deployment.start()
            self.deployment.wait_ready(o.ready_timeout_s)
            self.prom.wait_ready()
            profile_path = self.run_dir / "profile.yaml"
            profile_path.write_text(yaml.safe_dump(profile_dict(self.profile), sort_keys=False))
            self.locust = LocustRun(
                self.group,
                host=f"http://{o.host}:{self.lb.port}",
                profile=str(profile_path),
                csv_prefix=str(self.run_dir / "locust"),
                request_log=str(self.run_dir / "requests.csv"),
            )
            # time 0 is when Locust's load shape starts (its profile clock), not its launch
            t0_unix = self.locust.wait_started(o.ready_timeout_s)
            self.t0 = self.deployment.now_s() - (time.time() - t0_unix)
            self._last_end = 0.0
            self._acc = self.deployment.integrals()
            self._snapshots = [self._snapshot()]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            if self.locust is not None and self.locust.alive():
                self.locust.stop()
        except Exception:  # noqa: BLE001 - closing must go on
            pass
        try:
            self.deployment.close()
        finally:
            if self.exporter is not None:
                self.exporter.close()
                self.exporter = None
            self._http.close()
            self.group.close()

    # -- callbacks from the controller --------------------------------------------------------
    def _set_endpoints(self, ready: list[LocalPod]) -> None:
        self.lb.set_servers([(p.name, self.options.host, p.http_port) for p in ready])

    def _set_scrape_targets(self, running: list[LocalPod]) -> None:
        if self.prom is None:
            return
        o = self.options
        self.prom.set_targets(
            "triton",
            [
                (
                    f"{o.host}:{p.metrics_port}",
                    {"namespace": o.namespace, "pod": p.name, "container": "triton"},
                )
                for p in running
            ],
        )

    # -- measurements -------------------------------------------------------------------------
    def now_s(self) -> float:
        return self.deployment.now_s() - self.t0

    def _scrape(self, p: LocalPod) -> dict[str, float]:
        """The pod's cumulative figures: its server's metrics and its process's CPU time."""
        out: dict[str, float] = {}
        if p.proc is None:
            return out
        try:
            text = self._http.get(
                f"http://{self.options.host}:{p.metrics_port}/metrics", timeout=1.0
            ).text
            out.update(_sum_samples(text, SCRAPED))
            proc = psutil.Process(p.proc.pid)
            t = proc.cpu_times()
            out["cpu_seconds"] = t.user + t.system
            out["memory_bytes"] = float(proc.memory_info().rss)
        except (requests.RequestException, psutil.Error, ValueError):
            return p.counters
        p.counters = out
        return out

    def _cluster_sample(self) -> ClusterSample:
        d = self.deployment
        pods = d.live_pods()
        samples = []
        for p in pods:
            c = self._scrape(p) if p.phase in HOLDS_DEVICE else {}
            samples.append(
                PodSample(
                    p.name,
                    p.phase,
                    p.template.gpucores,
                    p.template.gpumem_mib,
                    self.config.deployment.cpu_request,
                    c.get("cpu_seconds", math.nan),
                    c.get(BUSY, math.nan),
                    c.get("memory_bytes", math.nan),
                )
            )
        ready = sum(p.phase == READY for p in pods)
        return ClusterSample(
            namespace=self.options.namespace,
            deployment=self.options.deployment,
            spec_replicas=d.replicas,
            available=ready,
            unavailable=max(0, d.replicas - ready),
            pods=tuple(samples),
            device_memory_mib=float(self.config.gpus[0][1].memory_mib),
        )

    def _snapshot(self) -> _Snapshot:
        pods = {
            p.name: dict(self._scrape(p))
            for p in self.deployment.live_pods()
            if p.phase in HOLDS_DEVICE
        }
        return _Snapshot(self.now_s(), pods)

    def _totals(self, snap: _Snapshot) -> tuple[float, float]:
        """Cumulative busy and CPU seconds over every pod the episode ever ran."""
        for name, c in snap.pods.items():
            self._last_seen[name] = c
        busy = sum(c.get(BUSY, 0.0) for c in self._last_seen.values())
        cpu = sum(c.get("cpu_seconds", 0.0) for c in self._last_seen.values())
        return busy, cpu

    def advance(self, duration_s: float) -> IntervalRecord:
        start = self._last_end
        end = start + duration_s
        while (left := end - self.now_s()) > 0:
            time.sleep(min(left, 0.25))
            self.deployment.check()
            self._check_children()
        self._last_end = end
        rows = self.locust.take_until(end, final=end >= self.profile.duration_s - 1e-9)
        before_busy, before_cpu = self._totals(self._snapshots[-1])
        snap = self._snapshot()
        self._snapshots = [self._snapshots[-1], snap]
        busy, cpu = self._totals(snap)
        acc = self.deployment.integrals()
        vgpu, replica, cpu_req, mem = (a - b for a, b in zip(acc, self._acc, strict=True))
        self._acc = acc
        return IntervalRecord(
            start_s=start,
            end_s=end,
            latencies_s=rows[:, 1].astype(np.float64),
            ok=rows[:, 2].astype(bool),
            vgpu_s=vgpu,
            gpu_work_s=max(0.0, busy - before_busy),
            replica_s=replica,
            cpu_s=max(0.0, cpu - before_cpu),
            cpu_request_s=cpu_req,
            gpu_memory_mib_s=mem,
            events=self._new_events(),
            users=users_at(self.profile, end),
        )

    def _new_events(self) -> list[str]:
        """The controller's events since the previous interval (rollouts, dead pods)."""
        events = self.deployment.events[self._events_seen :]
        self._events_seen += len(events)
        return events

    def _check_children(self) -> None:
        """A dead infrastructure process ends the episode with its log; dead pods are replaced."""
        pod_names = {p.name for p in self.deployment.pods}
        for m in self.group.dead():
            if m.name in pod_names or m.name.startswith(self.options.deployment):
                continue
            if m.name.startswith("locust") and m.returncode in (0, 1):
                continue  # Locust exits at the profile's end (1 when any request failed)
            raise BackendError(
                f"local backend: {m.name} exited with code {m.returncode}\n{m.tail(20)}"
            )

    def observe(self, window_s: float) -> dict[str, float]:
        key = f"{window_s:.3f}"
        if key not in self._promql:
            o = self.options
            self._promql[key] = queries(
                self.config.serving.model_name, o.namespace, o.deployment, window_s
            )
        return evaluate_live(self.prom.query_scalar, self._promql[key])

    def deployment_state(self) -> DeploymentState:
        d = self.deployment
        pods = d.live_pods()
        ready = [p.template.gpucores for p in pods if p.phase == READY]
        return DeploymentState(
            spec_replicas=d.replicas,
            ready_replicas=len(ready),
            pending_pods=sum(p.phase == PENDING for p in pods),
            gpucores=d.template.gpucores,
            gpumem_mib=d.template.gpumem_mib,
            serving_gpucores=sum(ready) / len(ready) if ready else 0.0,
            rollout_in_progress=d.rollout_in_progress(),
        )

    def pod_metrics(self) -> list[PodMetrics]:
        """metrics-server's view: usage between the last two interval ends."""
        (a, b) = (self._snapshots[0], self._snapshots[-1])
        dt = b.t - a.t
        out = []
        for p in self.deployment.live_pods():
            cpu = rps = inflight = math.nan
            if dt > 0 and p.name in a.pods and p.name in b.pods:
                before, after = a.pods[p.name], b.pods[p.name]

                def delta(key: str, before=before, after=after) -> float:
                    return after.get(key, math.nan) - before.get(key, math.nan)

                cpu = delta("cpu_seconds") / dt
                rps = delta("nv_inference_request_success") / dt
                inflight = delta("nv_inference_request_duration_us") / 1e6 / dt
            out.append(
                PodMetrics(
                    name=p.name,
                    phase=p.phase,
                    created_s=p.created_s - self.t0,
                    started_s=p.started_s - self.t0,
                    ready_s=p.ready_s - self.t0 if p.phase == READY else math.inf,
                    cpu_cores=cpu,
                    cpu_request_cores=self.config.deployment.cpu_request,
                    gpucores=p.template.gpucores,
                    rps=rps,
                    inflight=inflight,
                )
            )
        return out


def _sum_samples(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each named series' samples over all its labels, from Prometheus text format.

    (prometheus_client's parser renames counters without ``_total``, as Triton's are.)"""
    out: dict[str, float] = {}
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
