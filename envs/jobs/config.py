"""``GpuJobScheduling-v0``'s own settings (the world's are in ``sim/config.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from k8s_gpu_rl.config import check


@dataclass(frozen=True)
class JobRewardConfig:
    """Weights of the named reward terms (each term is in ``info`` under ``reward/<name>``)."""

    w_jct: float = 1.0
    """``reward/jct``: minus job-hours spent in the system since the last step (waiting or
    running), per job of the queue: summed over an episode, minus the mean completion
    time in hours."""
    w_oom: float = 0.05
    """``reward/oom``: minus this per out-of-memory failure."""
    w_failed: float = 1.0
    """``reward/failed``: minus this per job given up after its back-off limit."""
    w_reservation: float = 0.02
    """``reward/reservation``: minus this per worker bound to a GPU reserved for another job."""
    w_deadlock: float = 20.0
    """``reward/deadlock``: minus this once, when the run deadlocks."""
    w_invalid: float = 0.01
    """``reward/invalid``: minus this for a masked (invalid) action, which then waits."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            check(value >= 0, f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class JobEnvConfig:
    """Settings of the env layer."""

    window: int = 8
    """The agent may place any of the ``window`` oldest waiting jobs."""
    gpumem_request: Literal["user", "predicted"] = "predicted"
    """What the env asks for a job the agent places: the user's gpumem, or at least the
    predicted need x ``memory_margin`` (capped at the largest card)."""
    memory_margin: float = 1.15
    """Head-room over the predicted memory need."""
    partial_placement: bool = True
    """True: a multi-worker job may be bound node by node and holds what it has (as
    Kubernetes does without a gang scheduler); False: all its workers at once, on one node."""
    work_conserving: bool = False
    """True: the wait action is masked whenever some placement is valid (the agent never
    idles a GPU a job could use); False: waiting is always allowed."""
    max_decisions: int = 20_000
    """Truncate an episode after this many agent decisions."""
    reward: JobRewardConfig = field(default_factory=JobRewardConfig)

    def __post_init__(self) -> None:
        check(1 <= self.window <= 64, f"window must be in 1..64, got {self.window}")
        check(self.memory_margin >= 1.0, f"memory_margin must be >= 1, got {self.memory_margin}")
        check(self.max_decisions >= 1, f"max_decisions must be >= 1, got {self.max_decisions}")
