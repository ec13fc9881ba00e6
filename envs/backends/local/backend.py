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

The interval bookkeeping (the clock, ``advance``, the interval record, the event buffer,
``observe``, the Deployment and pod records) is
:class:`~k8s_gpu_rl.envs.backends.live.LiveBackend`'s, shared with the ``k8s`` backend;
this module supplies its hooks. The per-pod counters come from
:mod:`k8s_gpu_rl.envs.backends.local.scrape`.

The vGPU share maps to compute on this machine: ``gpucores`` S lets a server's inference
run at most S % of wall-clock time on one ONNX Runtime thread (the server's limiter works
as HAMi-core's does on a GPU), so the machine's "GPU" is one core of inference time.
``gpumem`` is recorded (and exported as the pod's HAMi memory limit) but not enforced.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s_gpu_rl.envs.backends.base import DeploymentState, PodMetrics
from k8s_gpu_rl.envs.backends.live import (
    EventLog,
    Integrals,
    LiveBackend,
    deployment_state,
    pod_metrics,
)
from k8s_gpu_rl.envs.backends.loadgen import LoadGeneratorOptions
from k8s_gpu_rl.envs.backends.local.deployment import (
    HOLDS_DEVICE,
    READY,
    LocalDeployment,
    LocalPod,
    ServerCommand,
)
from k8s_gpu_rl.envs.backends.local.exporter import ClusterExporter, ClusterSample, PodSample
from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun
from k8s_gpu_rl.envs.backends.local.scrape import BUSY, PodCounters
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.loadprofiles import LoadProfile


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
    load_generator: LoadGeneratorOptions = field(default_factory=LoadGeneratorOptions)
    """Locust's process count and when an interval counts as load-generator bound
    (``k8s_gpu_rl.envs.backends.loadgen``)."""


class LocalBackend(LiveBackend):
    """Real processes behind the :class:`~k8s_gpu_rl.envs.backends.base.Backend` seam."""

    def __init__(
        self, config: ClusterConfig, profile: LoadProfile, options: LocalOptions | None = None
    ) -> None:
        if len(config.gpus) != 1:
            raise BackendError(
                f"the local backend models one device; cluster {config.name!r} has "
                f"{len(config.gpus)} GPUs (use cluster='local')"
            )
        self.options = options or LocalOptions()
        super().__init__(
            config, profile, 1.0, config.gpus[0][1].memory_mib, self.options.load_generator
        )
        self._live: _Episode | None = None
        self.last_run_dir: Path | None = None

    # -- Backend -----------------------------------------------------------------------------
    def reset(self, seed: int, gpucores: int | None = None, gpumem_mib: int | None = None) -> None:
        self.close()
        config = self.config
        if gpucores is not None and gpumem_mib is not None:
            d = dataclasses.replace(config.deployment, gpucores=gpucores, gpumem_mib=gpumem_mib)
            config = dataclasses.replace(config, deployment=d)
        self._live = live = _Episode(config, self.options)
        self.last_run_dir = live.run_dir
        try:
            live.start()
            o = self.options
            live.locust = self._start_locust(
                live.group, f"http://{o.host}:{live.lb.port}", o.ready_timeout_s
            )
            self._begin_intervals(live.locust.t0_unix)
            live.counters.begin()
        except BaseException:
            self.close()
            raise

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

    def deployment(self) -> DeploymentState:
        d = self.live.deployment
        t = d.template
        return deployment_state(
            d.replicas, t.gpucores, t.gpumem_mib, d.views(), d.rollout_in_progress()
        )

    def pod_metrics(self) -> list[PodMetrics]:
        """metrics-server's view: usage between the last two interval ends."""
        d = self.live.deployment
        assert self._t0_mono is not None
        return pod_metrics(d.views(), self.live.counters.rates(), self._t0_mono - d.t0)

    def close(self) -> None:
        self._end_intervals()
        if self._live is not None:
            live, self._live = self._live, None
            live.close()

    # -- LiveBackend's hooks -----------------------------------------------------------------
    def _locust(self) -> LocustRun:
        assert self.live.locust is not None
        return self.live.locust

    def _integrals(self) -> Integrals:
        return self.live.deployment.integrals()

    def _usage(self, duration_s: float, end_s: float) -> tuple[float, float]:
        return self.live.counters.interval_usage()

    def _events(self) -> EventLog:
        """The controller's events (rollouts, dead pods)."""
        return self.live.deployment.events

    def _during_wait(self) -> None:
        self.live.deployment.check()
        self.live.check_children()

    def _series_labels(self) -> tuple[str, str, str]:
        return self.config.serving.model_name, self.options.namespace, self.options.deployment

    def _query_scalar(self, promql: str) -> float:
        return self.live.prom.query_scalar(promql)


class _Episode:
    """One episode's processes: the pods, HAProxy, Prometheus, the exporters and Locust."""

    def __init__(self, config: ClusterConfig, options: LocalOptions):
        from k8s_gpu_rl.envs.backends.local.loadbalancer import HAProxy
        from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port

        self.config, self.options = config, options
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
        self.counters = PodCounters(options.host, self.deployment.live_pods, self.deployment.now_s)
        self.prom: Any = None
        self.exporter: ClusterExporter | None = None
        self.locust: LocustRun | None = None

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
        """Prometheus, the exporters and the first pods, all Ready (Locust comes next)."""
        from k8s_gpu_rl.envs.backends.local.promserver import NodeExporter, PrometheusServer

        o = self.options
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
            self.counters.close()
            self.group.close()

    def check_children(self) -> None:
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

    def _cluster_sample(self) -> ClusterSample:
        """What kube-state-metrics, cAdvisor, DCGM and HAMi would export now."""
        d = self.deployment
        pods = d.live_pods()
        samples = []
        for p in pods:
            c = self.counters.scrape(p) if p.phase in HOLDS_DEVICE else {}
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
