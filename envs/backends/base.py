"""The seam between :class:`~envs.k8s_gpu_env.K8sGpuEnv` and a cluster.

A backend does what a controller can do on a real cluster (scale the Deployment, patch
its vGPU limits), lets time pass, and reports what Prometheus holds and what the load
generator's clients saw. The simulated backend implements it now; the local testbed and
the live Kubernetes backend implement the same methods, so the environment never changes.
"""

from __future__ import annotations

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
    gpumem_mib: int


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
    events: list[str] = field(default_factory=list)


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

    def reset(self, seed: int) -> None: ...

    def apply(self, replicas: int, gpucores: int, gpumem_mib: int) -> None: ...

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        """Pods of this share the cluster can place."""
        ...

    def advance(self, duration_s: float) -> IntervalRecord: ...

    def observe(self, window_s: float) -> dict[str, float]:
        """Raw feature values (see ``envs.observation``) at the current time."""
        ...

    def deployment(self) -> DeploymentState: ...

    def close(self) -> None: ...
