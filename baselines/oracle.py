"""The QoS-matched oracle: the cheapest schedule that keeps the episode within the QoS budget.

It knows what no real controller can: the whole future of the episode. At the episode's
first decision it copies the environment (the simulated cluster with its random stream,
so it knows every user's think time and every pod's start-up time) and searches, on
those copies, for the replica/share schedule with the fewest vGPU-hours whose
QoS-violation rate stays within the env's QoS budget (``reward.qos_budget``, the budget
the reward and the calibrated baselines use); then it follows that schedule. The search
(:mod:`k8s_gpu_rl.baselines.oracle_search`) plans by dynamic programming over replica
counts per step on per-step costs measured by simulation, with the start-up time as a
lead of ``leads`` steps, keeps only plans whose simulated episode is verified within
the budget, and improves the best one by local descent; since the episode is the
copy's, the verified outcome is the outcome. The violation rate is therefore within the
budget on every evaluation seed, not only on their mean.

What it does not search: share changes during the episode (one share per episode,
reached first by one rollout like the calibrated baselines), and plans off the
Lagrangian's convex hull beyond what the descent reaches. ``describe()`` reports the
verified cost, the dual lower bound of the loosest surrogate
(:func:`~k8s_gpu_rl.baselines.oracle_search.dual_bound`) and how many plans were
simulated. Needs the simulated backend (``--backend sim``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from k8s_gpu_rl.baselines.base import BaselinePolicy, Desired
from k8s_gpu_rl.baselines.grids import reachable_capacity
from k8s_gpu_rl.baselines.oracle_search import (
    Outcome,
    Schedule,
    Tables,
    dp_schedule,
    dual_bound,
    schedule_desired,
    simulate,
    smallest_feasible_lambda,
    tables,
)
from k8s_gpu_rl.errors import ConfigError


@dataclass
class Found:
    schedule: Schedule
    outcome: Outcome
    lead: int


class OraclePolicy(BaselinePolicy):
    """Clairvoyant schedule search (see the module docstring).

    Arguments: ``leads`` (start-up leads in steps to plan with, default 1, 2 and 3),
    ``bisections`` (verified bisection steps per share and lead), ``prune`` (skip a share
    and lead whose surrogate cost exceeds the best one's by more than this fraction),
    ``descent_passes`` (passes of local descent on the best verified plan: every
    cheaper neighbour of :func:`moves` is simulated, the cheapest within budget kept),
    ``share`` (force one share level).
    """

    name = "oracle"

    def __init__(
        self,
        leads: tuple[int, ...] = (1, 2, 3),
        bisections: int = 5,
        prune: float = 0.3,
        descent_passes: int = 4,
        share: int | None = None,
    ) -> None:
        super().__init__()
        if not leads or min(leads) < 0:
            raise ConfigError(f"oracle leads must be steps >= 0, got {leads!r}")
        if bisections < 0 or prune < 0:
            raise ConfigError(f"need bisections >= 0 and prune >= 0, got {bisections}, {prune}")
        self.leads = tuple(int(x) for x in leads)
        self.bisections = int(bisections)
        self.prune = float(prune)
        self.descent_passes = int(descent_passes)
        self._forced_share = share
        self.found: Found | None = None
        self.report: dict[str, Any] = {}

    def bind(self, env: Any) -> OraclePolicy:
        super().bind(env)
        from k8s_gpu_rl.envs.backends.sim import SimBackend

        if not isinstance(self.backend, SimBackend):
            raise ConfigError(
                "the oracle searches on copies of the simulated cluster: it needs --backend sim"
            )
        return self

    def reset(self) -> None:
        super().reset()
        self.found = None

    @property
    def share(self) -> int | None:
        """The share level of the schedule found for the current episode (None: not yet)."""
        return None if self.found is None else self.found.schedule.share

    # --- acting ---------------------------------------------------------------
    def decide(self, now_s: float) -> Desired:
        if self.found is None:
            self.found = self.search(copy.deepcopy(self.env))
        step = int(round(now_s / self.config.decision_interval_s))
        plan = self.found.schedule.replicas
        self.status = {"planned_replicas": float(plan[min(step, len(plan) - 1)])}
        return schedule_desired(self.backend, self.found.schedule, step)

    # --- planning -------------------------------------------------------------
    def search(self, env0: Any) -> Found:
        """The cheapest verified schedule for the episode ``env0`` is at the start of."""
        c = self.config
        budget, dt, steps = c.reward.qos_budget, c.decision_interval_s, env0.max_steps
        start = env0.backend.deployment().spec_replicas
        capacity = reachable_capacity(env0)
        if self._forced_share is not None:
            if self._forced_share not in capacity:
                raise ConfigError(
                    f"oracle share {self._forced_share} is not reachable; reachable: {sorted(capacity)}"
                )
            capacity = {self._forced_share: capacity[self._forced_share]}
        all_tables = [tables(env0, s, room, steps) for s, room in capacity.items()]
        candidates = []
        for t in all_tables:
            for lead in self.leads:
                lam = smallest_feasible_lambda(t, budget, lead, dt, start)
                cost = dp_schedule(t, lam, budget, lead, dt, start)[1]
                candidates.append((cost, t, lead, lam))
        best_surrogate = min(cost for cost, *_ in candidates)
        seen: list[Found] = []
        for cost, t, lead, lam in sorted(candidates, key=lambda x: x[0]):
            if cost > best_surrogate * (1 + self.prune) and _any_within(seen, budget):
                continue
            seen += self._verified(env0, t, lead, lam, budget, dt, start)
        found = _best(seen, budget)
        if found.outcome.violation_rate <= budget:
            for _ in range(self.descent_passes):
                better, tried = self._descend(env0, found, budget)
                seen += tried
                if better is found:
                    break
                found = better
        simulated = sum(t.room for t in all_tables) + len(seen)
        bound_h = dual_bound(all_tables, budget, dt) / 3600.0
        self.report = {
            "share": found.schedule.share,
            "lead_steps": found.lead,
            "vgpu_hours_planned": found.outcome.vgpu_hours,
            "violation_rate_planned": found.outcome.violation_rate,
            "within_budget": found.outcome.violation_rate <= budget,
            "dual_bound_vgpu_hours": bound_h,
            "gap_to_bound": found.outcome.vgpu_hours / bound_h - 1 if bound_h > 0 else math.nan,
            "episodes_simulated": simulated,
        }
        return found

    def _verified(
        self, env0: Any, t: Tables, lead: int, lam: float, budget: float, dt: float, start: int
    ) -> list[Found]:
        """Every plan simulated while raising ``lam`` (x4 a time) until the simulated
        episode is within the budget, then bisecting between the last failing and the
        first passing value."""
        cache: dict[tuple[int, ...], Outcome] = {}

        def run(x: float) -> tuple[Schedule, Outcome]:
            plan = dp_schedule(t, x, budget, lead, dt, start)[0]
            if plan not in cache:
                cache[plan] = simulate(env0, Schedule(t.share, plan))
            return Schedule(t.share, plan), cache[plan]

        fail, ok = None, None
        x = lam
        for _ in range(16):
            schedule, out = run(x)
            if out.violation_rate <= budget:
                ok = x
                break
            fail, x = x, x * 4.0
        if ok is not None:
            lo, hi = (fail if fail is not None else lam / 64.0), ok
            for _ in range(self.bisections):
                mid = math.sqrt(lo * hi)
                if run(mid)[1].violation_rate <= budget:
                    hi = mid
                else:
                    lo = mid
        return [Found(Schedule(t.share, plan), out, lead) for plan, out in cache.items()]

    def _descend(self, env0: Any, found: Found, budget: float) -> tuple[Found, list[Found]]:
        """One pass of local descent: the cheapest within-budget neighbour (or ``found``)."""
        share = found.schedule.share
        tried = [
            Found(Schedule(share, p), simulate(env0, Schedule(share, p)), found.lead)
            for p in moves(found.schedule.replicas)
        ]
        return _best([found, *tried], budget), tried

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "leads": list(self.leads), **self.report}


def _best(seen: list[Found], budget: float) -> Found:
    """The cheapest plan within the budget (none: the one with the fewest violations)."""
    within = [f for f in seen if f.outcome.violation_rate <= budget]
    if within:
        return min(within, key=lambda f: (f.outcome.vgpu_hours, f.outcome.violation_rate))
    return min(seen, key=lambda f: (f.outcome.violation_rate, f.outcome.vgpu_hours))


def segments(plan: tuple[int, ...]) -> list[tuple[int, int]]:
    """(first, end) of each run of equal replica counts above the minimum of the plan."""
    low, out, k = min(plan), [], 0
    while k < len(plan):
        j = k
        while j + 1 < len(plan) and plan[j + 1] == plan[k]:
            j += 1
        if plan[k] > low:
            out.append((k, j + 1))
        k = j + 1
    return out


def moves(plan: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Cheaper neighbours of ``plan``: each raised run one pod lower, or one step shorter
    at either end."""
    out = []
    for first, end in segments(plan):
        for lo, hi in ((first, end), (first, first + 1), (end - 1, end)):
            p = list(plan)
            for k in range(lo, hi):
                p[k] -= 1
            out.append(tuple(p))
    return list(dict.fromkeys(out))


def _any_within(seen: list[Found], budget: float) -> bool:
    return any(f.outcome.violation_rate <= budget for f in seen)
