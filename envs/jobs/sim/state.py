"""Mutable per-job state of the job-scheduling simulator and its phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec


class Phase(IntEnum):
    """Where a job is."""

    FUTURE = 0
    """Not submitted yet."""
    WAITING = 1
    """Queued; may already hold some workers' GPUs (partial placement)."""
    TRANSFER = 2
    """All workers bound; image / model / data moving to the cluster."""
    LOADING = 3
    """Containers starting, model loading (memory allocated at the end)."""
    RUNNING = 4
    """Training."""
    BACKOFF = 5
    """Failed (out of memory); waiting to be retried."""
    DONE = 6
    """Completed."""
    FAILED = 7
    """Given up after ``backoff_limit`` failures."""


ACTIVE = (Phase.TRANSFER, Phase.LOADING, Phase.RUNNING)
"""Phases in which a job holds GPUs and will release them by itself."""


@dataclass
class JobState:
    """What the simulator knows of one job (truth included)."""

    spec: JobSpec
    true_memory_mib: float
    """Memory a worker really needs (on the reference type; scaled per GPU type)."""
    runtime_noise: float
    """Factor on the model's run time for this job and seed."""
    attempt_memory_factor: float = 1.0
    """This attempt's peak-memory factor (drawn when its memory is allocated)."""
    phase: Phase = Phase.FUTURE
    cluster: int = -1
    """Cluster of its workers (-1: none placed)."""
    gpus: list[int] = field(default_factory=list)
    """Cluster-local GPU indices of its placed workers."""
    gpumem_mib: float = 0.0
    """Memory limit per worker of the current attempt."""
    gpucores: float = 0.0
    """Cores per worker of the current attempt."""
    failures: int = 0
    """Out-of-memory failures so far."""
    oom_limit_mib: float = 0.0
    """Largest memory limit it died of OOM under (HAMi-core logs ``OOM used / limit``)."""
    queued_since_s: float = 0.0
    """When it (re)entered the queue."""
    attempt_s: float = -1.0
    """When the current attempt's last worker was bound (transfer start)."""
    first_placed_s: float = -1.0
    """When its first worker was bound (any attempt)."""
    start_s: float = -1.0
    """When the last attempt started running."""
    end_s: float = -1.0
    """When it completed or was given up."""
    remaining_work_s: float = 0.0
    """Run time left at rate 1 (s)."""
    rate: float = 0.0
    """Current progress rate (contention and CPU slow it below 1)."""
    last_update_s: float = 0.0
    version: int = 0
    """Bumped when its finish time changes (stale events are dropped)."""
    transfer_s: float = 0.0
    """Transfer time of all its attempts (s)."""
    segments: list[tuple[float, float, int, tuple[int, ...], str]] = field(default_factory=list)
    """(start, end, cluster, gpus, outcome) of each attempt, for Gantt plots."""

    @property
    def remaining_workers(self) -> int:
        return self.spec.gpus - len(self.gpus)
