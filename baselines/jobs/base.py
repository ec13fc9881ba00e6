"""What the job-scheduling policies share: SB3's ``predict``, HAMi-style gang placement.

A policy is bound to a :class:`~k8s_gpu_rl.envs.jobs.env.GpuJobSchedulingEnv` and reads
what the user's controller reads: the world's queue, HAMi's ledger, the (lagging)
Prometheus samples and the env's predictions (``env.pred_runtime`` / ``pred_memory``, per
job and GPU type). :meth:`JobPolicy.choose` returns the next
:class:`~k8s_gpu_rl.envs.jobs.sim.world.Placement` or ``None`` (wait); ``predict`` sets it
as the env's ``hint`` and returns its action, so SB3's ``evaluate_policy`` and
``python -m evaluate`` drive every policy alike.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from k8s_gpu_rl.envs.jobs.sim.world import Placement, World
from k8s_gpu_rl.envs.sim.hami import allocate, place

GpuFilter = Callable[[int, int], bool]
"""(cluster, GPU) -> may this policy use it."""


def unwrap(env: Any) -> Any:
    """The job env behind wrappers or a one-env VecEnv."""
    if hasattr(env, "envs"):
        env = env.envs[0]
    inner = getattr(env, "unwrapped", env)
    if not hasattr(inner, "world") or not hasattr(inner, "encode"):
        raise TypeError(f"expected a GpuJobSchedulingEnv, got {type(inner).__name__}")
    return inner


class JobPolicy(abc.ABC):
    """Base of the job-scheduling baselines."""

    name = "policy"

    def __init__(self, env: Any = None) -> None:
        self.env = None if env is None else unwrap(env)

    def bind(self, env: Any) -> JobPolicy:
        self.env = unwrap(env)
        return self

    @abc.abstractmethod
    def choose(self) -> Placement | None:
        """The next placement, or None to wait."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | bool | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        env = self.env
        if env is None:
            raise RuntimeError(f"{self.name}: bind(env) first")
        choice = self.choose()
        env.hint = choice
        action = env.action_space.n - 1 if choice is None else env.encode(choice)
        return np.asarray(action), state


def gang(
    world: World,
    i: int,
    c: int,
    memory_mib: float,
    cores: float,
    ok: GpuFilter | None = None,
) -> tuple[int, ...] | None:
    """GPUs for all remaining workers of job ``i`` on cluster ``c`` as HAMi would bind
    them one by one (:func:`hami.place`: node policy, then GPU policy), preferring one
    node; ``None`` when they do not all fit (all or nothing)."""
    j = world.jobs[i]
    need = j.remaining_workers
    h = world.config.clusters[c].hami
    base = [
        s if (g not in j.gpus and (ok is None or ok(c, g))) else replace(s, healthy=False)
        for g, s in enumerate(world.slots[c])
    ]
    for nodes in [[n] for n in range(len(world.node_gpus[c]))] + [None]:
        slots = (
            base
            if nodes is None
            else [s if s.node in nodes else replace(s, healthy=False) for s in base]
        )
        chosen: list[int] = []
        while len(chosen) < need:
            g = place(slots, memory_mib, cores, h.node_scheduler_policy, h.gpu_scheduler_policy)
            if g is None:
                break
            chosen.append(g)
            slots[g] = replace(allocate(slots[g], memory_mib, cores), healthy=False)
        if len(chosen) == need:
            return tuple(chosen)
    return None
