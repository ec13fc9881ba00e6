"""The oracle's schedule search: simulate, plan by dynamic programming, verify by simulation.

A *schedule* is one vGPU share and a replica count per decision step. It is executed the
way every baseline acts (:func:`schedule_desired`): the Deployment is first rolled to the
share holding its replica count, then each step asks for that step's replicas (the env
moves at most +-2 per step). Everything here runs on private copies of an env taken at
the episode's start (``copy.deepcopy``: the same simulator state and random stream), so
a schedule's outcome on a copy is exactly what it will do in the episode.

The search (per share level s that the initial Deployment can roll to):

1. **Tables.** For every replica count n that fits, run the static schedule n x s on a
   copy and record each step's violations ``v[k, n]`` and requests ``q[k, n]``.
2. **Surrogate DP.** With ``ready_k = min(n_{k-L}, ..., n_k)`` (a pod asked for at step
   k - L serves from step k on: the start-up time a real policy pays, L = lead steps)
   and ``|n_k - n_{k-1}| <= 2``, minimise ``sum_k s n_k dt + lam * sum_k (v[k, ready_k]
   - budget * q[k, ready_k])`` exactly by dynamic programming over the last L replica
   counts (:func:`dp_schedule`). The smallest ``lam`` whose plan keeps the surrogate's
   violations within the budget is found by bisection (Lagrangian relaxation).
3. **Verification.** Each candidate plan is run on a copy. Starting from that ``lam``,
   ``lam`` is doubled until the simulated episode is within the QoS budget, then bisected
   (in log space) between the last failing and the first passing value; the cheapest
   verified plan over every share and lead is kept.
4. **Local descent** (in :mod:`~k8s_gpu_rl.baselines.oracle`): every cheaper neighbour of
   that plan (a raised run of steps one pod lower, or one step shorter at either end) is
   simulated, the cheapest within the budget kept, for a few passes.

How far from optimal: the DP is exact for the surrogate (per-step costs from the static
runs, a fixed lead, one share per episode); the Lagrangian can miss points off the
lower convex hull of cost vs. violations, the verified plans are a handful, and the
descent stops at a local optimum (on ``mixed`` it still saves about 10 % over step 3, so
step 3 alone is at least that far from optimal). On a two-minute profile the result
equals brute force over all 256 schedules (``tests/test_oracle.py``). :func:`dual_bound` is a lower bound for the loosest surrogate (any
share and replica count at every step, no start-up time, no ramp limit); the oracle
reports its verified cost relative to it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from k8s_gpu_rl.baselines.base import Desired, roll_share_first


@dataclass(frozen=True)
class Schedule:
    share: int
    replicas: tuple[int, ...]
    """spec.replicas wanted at each decision step."""


@dataclass
class Outcome:
    """A schedule's simulated episode."""

    vgpu_hours: float
    violation_rate: float
    violations: np.ndarray = field(repr=False)
    """Violations per step."""
    requests: np.ndarray = field(repr=False)


def schedule_desired(backend: Any, schedule: Schedule, step: int) -> Desired:
    """What the oracle asks for at ``step`` (the share first, then the planned replicas)."""
    k = min(step, len(schedule.replicas) - 1)
    return roll_share_first(backend, Desired(int(schedule.replicas[k]), schedule.share))


def simulate(env0: Any, schedule: Schedule) -> Outcome:
    """Run ``schedule`` to the episode's end on a copy of ``env0`` (taken at its start)."""
    env = copy.deepcopy(env0)
    violations, requests = [], []
    while True:
        desired = schedule_desired(env.backend, schedule, env.steps)
        _, _, terminated, truncated, info = env.step(env.action_for(*desired))
        n = float(info["autoscale/requests"])
        requests.append(n)
        violations.append(round(float(info["autoscale/qos_violation_rate"]) * n))
        if terminated or truncated:
            break
    kpis = info["episode_kpis"]
    return Outcome(
        float(kpis["vgpu_hours"]),
        float(kpis["qos_violation_rate"]),
        np.asarray(violations, dtype=float),
        np.asarray(requests, dtype=float),
    )


@dataclass(frozen=True)
class Tables:
    """Per-step violations and requests of the static runs at one share (column n-1: n pods)."""

    share: int
    v: np.ndarray
    q: np.ndarray

    @property
    def room(self) -> int:
        return int(self.v.shape[1])


def tables(env0: Any, share: int, room: int, steps: int) -> Tables:
    runs = [simulate(env0, Schedule(share, (n,) * steps)) for n in range(1, room + 1)]
    return Tables(
        share, np.stack([r.violations for r in runs], 1), np.stack([r.requests for r in runs], 1)
    )


def dp_schedule(
    t: Tables,
    lam: float,
    budget: float,
    lead: int,
    dt_s: float,
    start: int = 1,
    max_step: int = 2,
) -> tuple[tuple[int, ...], float, float]:
    """The surrogate-optimal replicas for multiplier ``lam`` (module docstring, step 2).

    Returns (replicas per step, surrogate vGPU-seconds, surrogate violation excess
    ``sum v - budget * sum q``)."""
    R, K, M = t.room, t.v.shape[0], max(lead, 1)
    n_states = R**M
    codes = np.arange(n_states)
    digits = np.stack([(codes // R**i) % R for i in range(M)], 1)  # digit 0: newest
    pred = (np.arange(R)[None, :] * R ** (M - 1) + (codes // R)[:, None]) % n_states  # (S, R)
    new_n = codes % R  # the newest value of the state = n_k
    window = digits[pred][:, :, : max(lead, 0)]  # (S, R, lead): the previous values
    ready = new_n[:, None] if lead == 0 else np.minimum(new_n[:, None], window.min(axis=2))
    ok = np.abs(new_n[:, None] - digits[pred][:, :, 0]) <= max_step
    value = np.full(n_states, np.inf)
    value[_code(min(start, R) - 1, R, M)] = 0.0
    choice = np.zeros((K, n_states), dtype=np.int64)
    cost_n = t.share / 100.0 * (new_n + 1) * dt_s
    for k in range(K):
        excess = t.v[k] - budget * t.q[k]
        cand = value[pred] + np.where(ok, lam * excess[ready], np.inf)
        best = np.argmin(cand, axis=1)
        choice[k] = best
        value = cand[codes, best] + cost_n
    state = int(np.argmin(value))
    plan = []
    vgpu = excess_total = 0.0
    for k in range(K - 1, -1, -1):
        n = state % R
        prev = int(pred[state, choice[k, state]])
        r = n if lead == 0 else min(n, int(digits[prev][:lead].min()))
        plan.append(n + 1)
        vgpu += cost_n[state]
        excess_total += t.v[k, r] - budget * t.q[k, r]
        state = prev
    return tuple(reversed(plan)), float(vgpu), float(excess_total)


def _code(value: int, R: int, M: int) -> int:
    return sum(value * R**i for i in range(M))


def smallest_feasible_lambda(
    t: Tables, budget: float, lead: int, dt_s: float, start: int = 1, iters: int = 40
) -> float:
    """Smallest ``lam`` (log bisection) whose surrogate plan keeps the excess <= 0."""
    lo, hi = 1e-6, 1e6
    if dp_schedule(t, hi, budget, lead, dt_s, start)[2] > 0:
        return hi  # nothing is surrogate-feasible: minimise violations
    for _ in range(iters):
        mid = float(np.sqrt(lo * hi))
        if dp_schedule(t, mid, budget, lead, dt_s, start)[2] <= 0:
            hi = mid
        else:
            lo = mid
    return hi


def dual_bound(all_tables: Sequence[Tables], budget: float, dt_s: float) -> float:
    """A lower bound (vGPU-seconds) on the loosest surrogate: at each step any share and
    replica count, no start-up time, no ramp limit. ``max_lam`` of the Lagrangian dual
    ``sum_k min_(s,n) [s n dt + lam (v - budget q)]``, over a log grid of ``lam``."""
    cost = np.concatenate(
        [np.full(t.room, t.share / 100.0 * dt_s) * np.arange(1, t.room + 1) for t in all_tables]
    )
    excess = np.concatenate([t.v - budget * t.q for t in all_tables], axis=1)
    return float(
        max(np.min(cost[None, :] + lam * excess, axis=1).sum() for lam in np.logspace(-4, 5, 91))
    )
