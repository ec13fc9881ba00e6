"""Pods of the Triton Deployment and the Deployment controller's rolling-update arithmetic.

:class:`Pod` is the bookkeeping of one pod's lifecycle, Pending -> Starting (container
start plus model load) -> Ready -> Terminating, with CrashLoopBackOff when the model does
not fit its gpumem limit. :func:`rollout_plan` is the Deployment controller's decision
for one reconcile, a pure function so it can be tested case by case.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class Phase(IntEnum):
    """Where a pod is in its life (``kubectl get pods`` STATUS, roughly)."""

    PENDING = 0  # not placed by HAMi's scheduler (no GPU fits)
    STARTING = 1  # placed; container starting and model loading
    READY = 2  # passes readiness: an endpoint of the Service
    BACKOFF = 3  # CrashLoopBackOff: waiting to restart after a crash
    TERMINATING = 4  # deleted: out of the endpoints, finishing in-flight requests
    GONE = 5


LIVE = (Phase.PENDING, Phase.STARTING, Phase.READY, Phase.BACKOFF)


@dataclass(frozen=True)
class Template:
    """The part of the pod template the agent changes: the vGPU share."""

    gpucores: int
    """nvidia.com/gpucores, percent of one GPU."""
    gpumem_mib: int
    """nvidia.com/gpumem, MiB."""


@dataclass
class Pod:
    """One pod; ``slot`` is its row in the serving kernel's arrays."""

    uid: int
    slot: int
    template: Template
    created_s: float
    phase: Phase = Phase.PENDING
    gpu: int = -1
    started_s: float = math.inf  # container (re)start
    loaded_s: float = math.inf  # model load finishes (or the crash at load)
    ready_s: float = math.inf  # first successful readiness probe
    backoff_until_s: float = math.inf
    terminating_s: float = math.inf
    gone_by_s: float = math.inf  # grace period end
    drain_check_s: float = math.inf  # next check whether a terminating pod has drained
    restarts: int = 0

    @property
    def name(self) -> str:
        """A Kubernetes-looking pod name."""
        return f"triton-mobilenetv4-{self.template.gpucores:03d}c-{self.uid:05d}"

    def is_ready(self, t: float) -> bool:
        return self.phase == Phase.READY or (self.phase == Phase.STARTING and self.ready_s <= t)


@dataclass(frozen=True)
class RolloutPlan:
    """What the Deployment controller does in one reconcile."""

    create: int
    """New pods to create with the current template."""
    delete_old: int
    """Pods of old templates to delete (not-ready ones first)."""
    delete_new: int
    """Pods of the current template to delete (scale down)."""


def surge_and_unavailable(
    replicas: int, max_surge: float, max_unavailable: float
) -> tuple[int, int]:
    """maxSurge rounds up, maxUnavailable down; both 0 would deadlock, so unavailable = 1."""
    surge = math.ceil(max_surge * replicas - 1e-9)
    unavailable = math.floor(max_unavailable * replicas + 1e-9)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def rollout_plan(
    replicas: int,
    new_total: int,
    new_ready: int,
    old_total: int,
    old_ready: int,
    max_surge: float,
    max_unavailable: float,
) -> RolloutPlan:
    """The Deployment controller's RollingUpdate step (``rolling.go``), counts in, counts out.

    Without old pods it simply scales the current ReplicaSet to ``replicas``.
    """
    if old_total == 0:
        return RolloutPlan(max(0, replicas - new_total), 0, max(0, new_total - replicas))
    surge, unavailable = surge_and_unavailable(replicas, max_surge, max_unavailable)
    total = new_total + old_total
    create = max(0, min(replicas - new_total, replicas + surge - total))
    min_available = replicas - unavailable
    new_unready = new_total - new_ready
    old_unready = old_total - old_ready
    # cleanupUnhealthyReplicas, then scale old down while availability allows
    budget = max(0, total - min_available - new_unready)
    delete_old = min(old_unready, budget)
    budget -= delete_old
    available = new_ready + old_ready
    delete_old += max(0, min(old_ready, budget, available - min_available))
    delete_new = max(0, new_total + create - replicas)
    return RolloutPlan(create, delete_old, delete_new)


def rollout_can_start(
    current: Template,
    wanted: Template,
    in_progress: bool,
    replicas: int,
    max_surge: float,
    max_unavailable: float,
    new_pod_fits: Callable[[], bool],
) -> bool:
    """Whether changing the template to ``wanted`` now starts a rollout that can finish.

    Not while another rollout is under way: the Deployment controller then keeps the
    Ready pods of every old template until new ones are Ready, and a third template's
    pods may never fit. With maxUnavailable rounding to 0 (fewer than 4 replicas) a new
    pod must also fit beside the current ones (``new_pod_fits``), or it stays Pending and
    the rollout never ends, as on a real cluster.
    """
    if wanted == current:
        return True
    if in_progress:
        return False
    _, unavailable = surge_and_unavailable(replicas, max_surge, max_unavailable)
    return unavailable >= 1 or new_pod_fits()


def deletion_order(pods: list[Pod]) -> list[Pod]:
    """The ReplicaSet's victim ranking: unscheduled, then starting, then the newest ready."""
    return sorted(pods, key=lambda p: (p.phase == Phase.READY, p.phase == Phase.STARTING, -p.uid))
