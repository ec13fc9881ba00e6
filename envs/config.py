"""The environment's configuration: control interval, action set, SLO and reward weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from k8s_gpu_rl.config import check, suggest
from k8s_gpu_rl.envs.reward import RewardConfig


@dataclass(frozen=True)
class EnvConfig:
    """How the agent sees and drives the cluster."""

    decision_interval_s: float = 15.0
    """Cluster time per step (the HPA's sync period)."""
    slo_ms: float = 150.0
    """Latency SLO per request: about twice the user's measured mean (72 ms; p95 74 ms,
    p99 81 ms at 10 users). A request slower than twice the unloaded latency, or failed,
    violates it. (At 100 ms the SLO sits inside the transport tail: see the README.)"""
    min_replicas: int = 1
    """Lowest spec.replicas the agent may set."""
    max_replicas: int = 8
    """Highest spec.replicas the agent may set."""
    replica_deltas: tuple[int, ...] = (-2, -1, 0, 1, 2)
    """The replica changes of the first action component."""
    share_levels: tuple[int, ...] = (20, 30, 40, 50, 70, 100)
    """The gpucores levels the Deployment may take (100 = exclusive GPU). 10 % is left out:
    one pod at 10 % serves at most ~125 req/s, and its batch-1 compute alone takes 43 ms."""
    share_action: Literal["relative", "absolute"] = "relative"
    """Second action component: a step along share_levels (``share_steps``), or the index
    of a level. Relative steps explore locally and make "keep the share" one choice."""
    share_steps: tuple[int, ...] = (-1, 0, 1)
    """Level steps of the relative share action."""
    initial_share: Literal["deployment", "random"] = "deployment"
    """Where an episode starts: the Deployment's own gpucores, or a share level drawn
    from ``np_random`` at each reset ("exploring starts" for training: the agent meets
    every level without first having to walk there)."""
    gpumem_headroom: float = 1.25
    """gpumem rule: at least the model's memory x this (rounded up to 256 MiB)."""
    rps_scale: float = 200.0
    """Requests per second that normalise to 1 in the observation."""
    rate_window_s: float = 60.0
    """Range of the observation's rate() windows."""
    namespace: str = "default"
    """Namespace of the Deployment (live backends, PromQL labels)."""
    deployment: str = "triton-mobilenetv4"
    """Name of the Triton Deployment."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    extra_features: tuple[str, ...] = ()
    """Opt-in observation features appended after the 18 standard ones, in the order given:
    any of ``rate_trend``, ``queue_share``, ``starting_share``, ``since_share_change``
    (:data:`k8s_gpu_rl.envs.observation.EXTRA_FEATURES`). Empty: the standard observation."""
    frame_stack: int = 1
    """Observations stacked into one (oldest first; the first is repeated at reset), so a
    feed-forward policy sees the recent trend. 1: no stacking."""

    def __post_init__(self) -> None:
        check(
            self.decision_interval_s > 0,
            f"decision_interval_s must be positive, got {self.decision_interval_s}",
        )
        check(self.slo_ms > 0, f"slo_ms must be positive, got {self.slo_ms}")
        check(
            1 <= self.min_replicas <= self.max_replicas,
            f"need 1 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}",
        )
        check(
            len(self.replica_deltas) >= 1 and 0 in self.replica_deltas,
            f"replica_deltas must contain 0, got {self.replica_deltas}",
        )
        check(
            len(self.share_levels) >= 1 and all(0 < s <= 100 for s in self.share_levels),
            f"share_levels must be gpucores in 1..100, got {self.share_levels}",
        )
        check(
            list(self.share_levels) == sorted(set(self.share_levels)),
            f"share_levels must be increasing and distinct, got {self.share_levels}",
        )
        check(0 in self.share_steps, f"share_steps must contain 0, got {self.share_steps}")
        check(
            self.gpumem_headroom >= 1.0, f"gpumem_headroom must be >= 1, got {self.gpumem_headroom}"
        )
        check(self.rps_scale > 0, f"rps_scale must be positive, got {self.rps_scale}")
        self._check_levers()

    def _check_levers(self) -> None:
        from k8s_gpu_rl.envs.observation import EXTRA_FEATURE_NAMES

        for name in self.extra_features:
            check(
                name in EXTRA_FEATURE_NAMES,
                f"extra_features: unknown feature {name!r}{suggest(name, EXTRA_FEATURE_NAMES)}; "
                f"allowed: {', '.join(EXTRA_FEATURE_NAMES)}",
            )
        check(
            len(set(self.extra_features)) == len(self.extra_features),
            f"extra_features: each feature at most once, got {list(self.extra_features)}",
        )
        check(
            1 <= self.frame_stack <= 16,
            f"frame_stack must be between 1 and 16, got {self.frame_stack}",
        )


def gpumem_for(gpucores: int, gpu_memory_mib: int, model_memory_mib: int, headroom: float) -> int:
    """The gpumem that goes with a gpucores level: the same fraction of the GPU's memory as
    of its cores, but never less than the model needs x ``headroom`` (so a pod never
    crashes at load), rounded up to 256 MiB and capped at the GPU's memory."""
    floor = _round_up(model_memory_mib * headroom, 256)
    proportional = _round_up(gpucores / 100.0 * gpu_memory_mib, 256)
    return int(min(gpu_memory_mib, max(floor, proportional)))


def nearest_index(values: tuple[int, ...], wanted: float) -> int:
    """Index of the value closest to ``wanted`` (ties: the smaller magnitude)."""
    return min(range(len(values)), key=lambda k: (abs(values[k] - wanted), abs(values[k])))


def delta_index(config: EnvConfig, current_replicas: int, desired_replicas: int) -> int:
    """Index of the replica delta that lands closest to ``desired_replicas``."""
    return nearest_index(config.replica_deltas, int(desired_replicas) - int(current_replicas))


def encode_action(
    config: EnvConfig,
    current_replicas: int,
    current_gpucores: float,
    replicas: int,
    gpucores: float,
) -> np.ndarray:
    """The action that moves a Deployment at (current_replicas, current_gpucores) towards
    (replicas, gpucores) in one step.

    The share moves one step along ``share_levels`` (relative actions) or to the level
    closest to ``gpucores`` (absolute actions); the replica change is the allowed delta
    closest to the wish, so a wish beyond the largest delta takes several steps. While
    the share still has to change, replicas only go down: new pods would otherwise take
    the room the rollout needs.
    """
    levels = config.share_levels
    target = nearest_index(levels, gpucores)
    current = nearest_index(levels, current_gpucores)
    if target != current:
        replicas = min(replicas, current_replicas)
    i = delta_index(config, current_replicas, replicas)
    if config.share_action == "absolute":
        return np.array([i, target], dtype=np.int64)
    return np.array([i, nearest_index(config.share_steps, target - current)], dtype=np.int64)


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step - 1e-9) * step)
