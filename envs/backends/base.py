"""The seam between :class:`~k8s_gpu_rl.envs.k8s_gpu_env.K8sGpuEnv` and a cluster.

A backend does what a controller can do on a real cluster (scale the Deployment, patch
its vGPU limits), lets time pass, and reports what Prometheus holds and what the load
generator's clients saw. The simulated backend implements it now; the local testbed and
the live Kubernetes backend implement the same methods, so the environment never changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DeploymentState:
    """The Deployment as the controller knows it right now."""

    spec_replicas: int
    ready_replicas: int
    pending_pods: int
    """Pods no GPU fits (HAMi leaves them Pending)."""
    gpucores: int
    """The template's gpucores (what a rollout converges to)."""
    gpumem_mib: int
    serving_gpucores: float = 0.0
    """Mean gpucores of the Ready pods (what serves now; differs during a rollout)."""
    rollout_in_progress: bool = False
    """Some live pod still has an older template."""


@dataclass(frozen=True)
class PodMetrics:
    """One pod as metrics-server and Triton's metrics would describe it now.

    What a baseline controller may read (the HPA's replica calculator reads exactly the
    phase, the start and readiness times, and the CPU figures)."""

    name: str
    phase: str
    """Pending, Starting, Ready, Terminating or CrashLoopBackOff."""
    created_s: float
    started_s: float
    """Container start (inf: not started)."""
    ready_s: float
    """Since when the pod has been Ready (inf: not ready)."""
    cpu_cores: float
    """metrics-server: mean CPU usage over its last resolution window (NaN: no sample yet)."""
    cpu_request_cores: float
    gpucores: int
    rps: float
    """Successful inferences per second over the last window (NaN: no sample)."""
    inflight: float
    """Requests in the pod (queued or executing), averaged over the last window."""
    queue_ms: float = math.nan
    """Mean Triton queue time per successful request over the last window, ms
    (``nv_inference_queue_duration_us`` / ``nv_inference_request_success`` rates; 0 for a
    pod that served nothing; NaN: no sample, or the backend has no per-pod figure)."""
    gpu_util: float = math.nan
    """The pod's own GPU utilisation over the last window, % of one whole GPU (HAMi's
    ``hami_container_device_utilization_ratio``; NaN: the backend has no per-pod figure)."""


@dataclass
class IntervalRecord:
    """One decision interval as a backend saw it."""

    start_s: float
    end_s: float
    latencies_s: np.ndarray
    """Client-side latency of each request that finished in the interval."""
    ok: np.ndarray
    vgpu_s: float
    gpu_work_s: float
    replica_s: float
    cpu_s: float = 0.0
    """CPU seconds the pods used."""
    cpu_request_s: float = 0.0
    """Integral of running pods' CPU requests (core-seconds)."""
    gpu_memory_mib_s: float = 0.0
    """Integral of GPU memory in use (MiB-seconds)."""
    events: list[str] = field(default_factory=list)
    users: int = 0
    """Load-generator users running at the end of the interval."""
    tenant_gpu_s: float = 0.0
    """Compute a co-located best-effort tenant got, in seconds of a whole GPU (0: none)."""
    client_saturated: str = ""
    """Why the load generator was the bottleneck in this interval (``""``: it was not);
    the interval then measures Locust, not the cluster (``k8s_gpu_rl.envs.backends.loadgen``).
    Always ``""`` on the simulated backend."""


class Backend(Protocol):
    """What the environment needs from a cluster."""

    total_gpus: float
    """GPUs in the cluster (the efficiency term's denominator)."""
    gpu_memory_mib: int
    """Memory of the smallest GPU (the gpumem rule's reference)."""
    max_batch: int
    scrape_interval_s: float
    duration_s: float
    """Length of the load profile: an episode is one pass over it."""

    def reset(self, seed: int, gpucores: int | None = None, gpumem_mib: int | None = None) -> None:
        """Start an episode; with gpucores/gpumem the Deployment starts at that share."""
        ...

    def apply(self, replicas: int, gpucores: int, gpumem_mib: int) -> None: ...

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        """Pods of this share the cluster can place."""
        ...

    def rollout_can_start(self, replicas: int, gpucores: int, gpumem_mib: int) -> bool:
        """Whether changing the share now starts a rollout that can finish."""
        ...

    def advance(self, duration_s: float) -> IntervalRecord: ...

    def observe(self, window_s: float) -> dict[str, float]:
        """Raw feature values (see ``k8s_gpu_rl.envs.observation``) at the current time."""
        ...

    def deployment(self) -> DeploymentState: ...

    def pod_metrics(self) -> list[PodMetrics]:
        """Per-pod figures at the current time (metrics-server and Triton's per-pod metrics)."""
        ...

    def now_s(self) -> float:
        """Cluster time since the episode start."""
        ...

    def close(self) -> None: ...
