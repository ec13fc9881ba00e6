"""The knobs of each baseline family and the grids ``calibrate_baselines.py`` searches.

A *family* is a baseline controller with the knobs an operator would set; a *point* is
one setting of all of them. Every family's knobs are searched jointly:

| family | policy | knobs (grid) |
|---|---|---|
| ``hpa-calibrated`` | :class:`~k8s_gpu_rl.baselines.hpa.HpaPolicy` | share x metric x target x scale-down window |
| ``kpa-calibrated`` | :class:`~k8s_gpu_rl.baselines.kpa.KpaPolicy` | share x metric x target x stable window |
| ``static-calibrated`` | :class:`~k8s_gpu_rl.baselines.static.StaticPolicy` | share x replicas |
| ``hpa-tuned`` | :class:`~k8s_gpu_rl.baselines.hpa.HpaPolicy` | CPU target x scale-down window at the Deployment's own share |

``hpa-tuned`` is the user's HPA as deployed (CPU metric, the Deployment's gpucores) with
only its target and window tuned: the ablation that shows how much of the calibrated
HPA's saving comes from right-sizing the share rather than from the autoscaler.

The share levels searched are the env's ``share_levels`` that the initial Deployment
can roll to (:func:`reachable_shares`; on the one-GPU ``rtx3080`` cluster 70 % and
100 % cannot be reached from 1 x 50 %: a second pod of that size never fits beside
the first, and maxUnavailable rounds down to 0), and static's replica counts go up to
what HAMi can place at that share. Metric targets are in the metric's own unit (HPA:
``cpu`` % of the CPU request, ``gpu_util`` % of one GPU, ``rps`` req/s per pod,
``queue_ms`` ms, ``inflight`` requests per pod; KPA: ``target`` per pod before its 70 %
target utilisation).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.envs.config import gpumem_for
from k8s_gpu_rl.errors import ConfigError

HPA_TARGETS: dict[str, tuple[float, ...]] = {
    "cpu": (30.0, 50.0, 70.0, 90.0),
    "gpu_util": (5.0, 10.0, 15.0, 25.0),
    "rps": (30.0, 60.0, 90.0, 120.0),
    "queue_ms": (2.0, 4.0, 8.0, 12.0),
    "inflight": (0.5, 1.0, 2.0, 4.0),
}
HPA_WINDOWS_S = (60, 300)
KPA_TARGETS: dict[str, tuple[float, ...]] = {
    "concurrency": (1.0, 2.0, 3.0, 4.0, 6.0),
    "rps": (40.0, 70.0, 100.0, 130.0, 160.0),
}
KPA_STABLE_WINDOWS_S = (30, 60, 120, 240)
TUNED_CPU_TARGETS = (30, 40, 50, 60, 70, 80, 90, 100, 120, 150)
TUNED_WINDOWS_S = (30, 60, 120, 300)

FAMILIES = ("hpa-calibrated", "kpa-calibrated", "static-calibrated", "hpa-tuned")
POLICY_OF = {
    "hpa-calibrated": "hpa",
    "kpa-calibrated": "kpa",
    "static-calibrated": "static",
    "hpa-tuned": "hpa",
}
"""The registry name of the controller each family configures."""


@dataclass(frozen=True)
class GridSpace:
    """What the env allows: the share levels to search and the pods each one fits."""

    shares: tuple[int, ...]
    capacity: dict[int, int]
    """Most pods of each share HAMi can place (capped at the env's max_replicas)."""


def reachable_shares(env: Any) -> GridSpace:
    """The share levels the initial Deployment can roll to, with their pod capacity.

    ``env`` is a K8sGpuEnv; it is reset (seed 0) to ask its backend."""
    inner = getattr(env, "unwrapped", env)
    inner.reset(seed=0)
    capacity = reachable_capacity(inner)
    return GridSpace(tuple(capacity), capacity)


def reachable_capacity(env: Any) -> dict[int, int]:
    """Share level -> most pods of it (<= max_replicas), for the levels the Deployment can
    roll to from where it is now (``env`` at an episode's start)."""
    inner = getattr(env, "unwrapped", env)
    backend, config = inner.backend, inner.config
    start = backend.deployment()
    capacity: dict[int, int] = {}
    for share in config.share_levels:
        mem = gpumem_for(
            share,
            backend.gpu_memory_mib,
            inner.cluster_config.serving.model_memory_mib,
            config.gpumem_headroom,
        )
        room = min(config.max_replicas, backend.capacity(share, mem))
        ok = share == start.gpucores or backend.rollout_can_start(start.spec_replicas, share, mem)
        if room >= 1 and ok:
            capacity[share] = room
    return capacity


def family_grid(family: str, space: GridSpace) -> list[dict[str, Any]]:
    """Every point of ``family``'s grid (keyword arguments of its policy)."""
    check_family(family)
    if family == "hpa-calibrated":
        return [
            {"gpucores": s, "metric": m, "target": t, "scale_down_window_s": w}
            for s in space.shares
            for m, targets in HPA_TARGETS.items()
            for t in targets
            for w in HPA_WINDOWS_S
        ]
    if family == "kpa-calibrated":
        return [
            {"gpucores": s, "metric": m, "target": t, "stable_window_s": float(w)}
            for s in space.shares
            for m, targets in KPA_TARGETS.items()
            for t in targets
            for w in KPA_STABLE_WINDOWS_S
        ]
    if family == "static-calibrated":
        return [
            {"gpucores": s, "replicas": n}
            for s in space.shares
            for n in range(1, space.capacity[s] + 1)
        ]
    return [
        {"metric": "cpu", "target": float(t), "scale_down_window_s": w}
        for t, w in itertools.product(TUNED_CPU_TARGETS, TUNED_WINDOWS_S)
    ]


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(
            f"unknown baseline family {family!r}{suggest(family, FAMILIES)}; "
            f"available: {', '.join(FAMILIES)}"
        )


def point_label(params: dict[str, Any]) -> str:
    """A short stable text of a point, e.g. ``gpucores=30 metric=rps target=90``."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def seeds_for(points: int, budget: int, minimum: int = 1) -> int:
    """Seeds a family of ``points`` grid points gets so that points x seeds <= ``budget``
    (the same tuning budget for every family; a small grid gets more seeds)."""
    if points < 1 or budget < points:
        raise ConfigError(f"tuning budget {budget} is smaller than the grid ({points} points)")
    return max(minimum, budget // points)


def select(grid: Sequence[dict[str, Any]], **fixed: Any) -> list[dict[str, Any]]:
    """The grid points whose fields equal ``fixed`` (for tests and small grids)."""
    return [p for p in grid if all(p.get(k) == v for k, v in fixed.items())]
