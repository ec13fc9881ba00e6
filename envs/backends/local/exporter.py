"""The cluster-side series a Kubernetes cluster's exporters publish, for the local testbed.

On the user's cluster, kube-state-metrics, the kubelet's cAdvisor, DCGM exporter and
HAMi's device plugin publish the series the observation queries (``k8s_gpu_rl.envs.observation``).
On one machine there is no kubelet or GPU, so this exporter publishes the same names,
with the labels those exporters give, from what the local Deployment controller knows:

| series | source here | exporter on a cluster |
|---|---|---|
| ``kube_deployment_spec_replicas``, ``..._status_replicas_available``/``_unavailable`` | the controller | kube-state-metrics |
| ``kube_pod_container_resource_requests{resource="cpu"}`` | the pod template | kube-state-metrics |
| ``container_cpu_usage_seconds_total`` | the server process's CPU time | cAdvisor |
| ``DCGM_FI_DEV_GPU_UTIL`` (%) | inference busy time of all servers / wall time since the previous collection | DCGM exporter |
| ``DCGM_FI_DEV_FB_USED`` / ``_FREE`` (MiB) | servers' resident memory / the rest of the device's memory | DCGM exporter |
| ``hami_gpu_core_allocated_ratio``, ``hami_vgpu_core_allocated_ratio`` | gpucores of the live pods / 100 | HAMi scheduler |
| ``hami_vgpu_memory_limit_bytes``, ``hami_vgpu_memory_used_bytes``, ``hami_container_device_utilization_ratio`` | per pod: gpumem, resident memory, busy ratio | HAMi device plugin |

The local "GPU" is the compute the servers' ``--gpucores`` limiter hands out: 100 % is one
core's inference time (see ``k8s_gpu_rl.envs.backends.local.server``). The issue-5 tests also use
this exporter as the stand-in for DCGM, HAMi and kube-state-metrics.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MIB = 1024 * 1024


@dataclass(frozen=True)
class PodSample:
    """One pod of the Deployment as the exporters see it now."""

    name: str
    phase: str
    """Pending, Starting, Ready or Terminating."""
    gpucores: int
    gpumem_mib: int
    cpu_request: float
    cpu_seconds: float = math.nan
    """Cumulative CPU time of the container (NaN: no process)."""
    busy_seconds: float = math.nan
    """Cumulative inference (device) busy time."""
    memory_bytes: float = math.nan
    """Resident memory."""


@dataclass(frozen=True)
class ClusterSample:
    """The Deployment and its device at one moment."""

    namespace: str
    deployment: str
    spec_replicas: int
    available: int
    unavailable: int
    pods: tuple[PodSample, ...]
    device_memory_mib: float
    node: str = "local"
    gpu_uuid: str = "GPU-local-0"
    model_name: str = "local CPU (gpucores limiter)"


class ClusterExporter(Collector):
    """A Prometheus exporter of :class:`ClusterSample` s, served on ``host:port``."""

    def __init__(self, sample: Callable[[], ClusterSample], host: str, port: int) -> None:
        self._sample = sample
        self._lock = threading.Lock()
        self._busy_by_pod: dict[str, float] = {}
        self._last_t: float | None = None
        self._last_busy: dict[str, float] = {}
        self._util_pct = 0.0
        self._ratio_by_pod: dict[str, float] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.host, self.port = host, port
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _utilisation(self, s: ClusterSample) -> tuple[float, dict[str, float]]:
        """Device busy % and per-pod busy ratios since the previous collection."""
        now = time.monotonic()
        busy = {p.name: p.busy_seconds for p in s.pods if math.isfinite(p.busy_seconds)}
        with self._lock:
            if self._last_t is not None and now - self._last_t >= 0.5:
                dt = now - self._last_t
                ratios = {
                    name: max(0.0, value - self._last_busy.get(name, 0.0)) / dt
                    for name, value in busy.items()
                }
                self._util_pct = min(100.0, 100.0 * sum(ratios.values()))
                self._ratio_by_pod = ratios
                self._last_t, self._last_busy = now, busy
            elif self._last_t is None:
                self._last_t, self._last_busy = now, busy
            return self._util_pct, dict(self._ratio_by_pod)

    def collect(self) -> Iterator[Metric]:
        s = self._sample()
        util_pct, ratios = self._utilisation(s)
        dep = [s.namespace, s.deployment]
        for name, value in (
            ("kube_deployment_spec_replicas", s.spec_replicas),
            ("kube_deployment_status_replicas_available", s.available),
            ("kube_deployment_status_replicas_unavailable", s.unavailable),
        ):
            g = GaugeMetricFamily(name, name, labels=["namespace", "deployment"])
            g.add_metric(dep, float(value))
            yield g
        requests = GaugeMetricFamily(
            "kube_pod_container_resource_requests",
            "container resource requests",
            labels=["namespace", "pod", "container", "node", "resource", "unit"],
        )
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds",
            "cumulative cpu time consumed",
            labels=["namespace", "pod", "container"],
        )
        mem_limit = GaugeMetricFamily(
            "hami_vgpu_memory_limit_bytes",
            "vGPU memory limit",
            labels=["node", "device_uuid", "namespace", "pod", "container"],
        )
        mem_used = GaugeMetricFamily(
            "hami_vgpu_memory_used_bytes",
            "vGPU memory used",
            labels=["node", "device_uuid", "namespace", "pod", "container"],
        )
        dev_util = GaugeMetricFamily(
            "hami_container_device_utilization_ratio",
            "container device utilisation",
            labels=["node", "device_uuid", "namespace", "pod", "container"],
        )
        cores = 0.0
        used_mib = 0.0
        for p in s.pods:
            if p.phase == "Pending":
                continue
            cores += p.gpucores
            pod_labels = [s.namespace, p.name, "triton"]
            hami_labels = [s.node, s.gpu_uuid, s.namespace, p.name, "triton"]
            requests.add_metric(
                [s.namespace, p.name, "triton", s.node, "cpu", "core"], p.cpu_request
            )
            mem_limit.add_metric(hami_labels, p.gpumem_mib * MIB)
            if math.isfinite(p.cpu_seconds):
                cpu.add_metric(pod_labels, p.cpu_seconds)
            if math.isfinite(p.memory_bytes):
                mem_used.add_metric(hami_labels, p.memory_bytes)
                used_mib += p.memory_bytes / MIB
            if p.name in ratios:
                dev_util.add_metric(hami_labels, ratios[p.name])
        yield from (requests, cpu, mem_limit, mem_used, dev_util)
        gpu = ["0", s.gpu_uuid, s.model_name, s.node]
        for name, value in (
            ("DCGM_FI_DEV_GPU_UTIL", util_pct),
            ("DCGM_FI_DEV_FB_USED", used_mib),
            ("DCGM_FI_DEV_FB_FREE", max(0.0, s.device_memory_mib - used_mib)),
        ):
            g = GaugeMetricFamily(name, name, labels=["gpu", "UUID", "modelName", "Hostname"])
            g.add_metric(gpu, value)
            yield g
        for name in ("hami_gpu_core_allocated_ratio", "hami_vgpu_core_allocated_ratio"):
            g = GaugeMetricFamily(name, name, labels=["node", "device_uuid"])
            g.add_metric([s.node, s.gpu_uuid], cores / 100.0)
            yield g
