"""Calibrating the baselines: run every family's grid, apply the choice rule, write the table.

**The choice rule** (the same for every family): among the grid points whose mean
QoS-violation rate (over the tuning seeds) is within the env's QoS budget
(``EnvConfig.reward.qos_budget``, the budget the reward uses) on *every* training
profile, the one with the fewest vGPU-hours summed over the training profiles (each a
mean over the seeds); ties go to the lower worst violation rate, then to the grid order.
When no point is within the budget, the point with the lowest worst violation rate is
chosen and marked ``within_budget: false``.

The tuning seeds (default 0, 1, ...) are disjoint from ``evaluate``'s (1000 + i), so no
baseline is tuned on the runs it is judged on. Every family gets the same tuning budget
(grid points x seeds, :func:`~k8s_gpu_rl.baselines.grids.seeds_for`): a family with a
smaller grid is run on more seeds.

:func:`run_grid` runs points (in up to ``jobs`` processes) and returns one row per point,
profile and seed; :func:`choose` applies the rule; ``scripts/calibrate_baselines.py``
writes ``baselines/calibrated.yaml`` (the choices) and ``baselines/calibrated_grid.csv``
(every point) with :func:`calibrated_yaml` and :func:`grid_table`.
"""

from __future__ import annotations

import datetime as _dt
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml

from k8s_gpu_rl.baselines.grids import POLICY_OF, point_label

KPIS = ("vgpu_hours", "qos_violation_rate", "p95_latency_ms")
TRAINING_PROFILES = ("low", "medium", "high", "mixed")


@dataclass(frozen=True)
class Task:
    """One grid point of one family on every profile and seed."""

    family: str
    index: int
    params: dict[str, Any]
    profiles: tuple[tuple[str, Any], ...]
    """(label, profile name / path / LoadProfile)."""
    seeds: tuple[int, ...]
    env_config: dict[str, Any] | None = None
    cluster: str | None = None


_ENVS: dict[tuple, Any] = {}


def _env(profile: Any, cluster: str | None, env_config: dict[str, Any] | None) -> Any:
    """One env per profile in each process (building one compiles nothing, but is not free)."""
    from k8s_gpu_rl.evaluation.rollout import make_env

    key = (repr(profile), cluster, repr(sorted((env_config or {}).items())))
    if key not in _ENVS:
        _ENVS[key] = make_env(profile, cluster=cluster, config=env_config)
    return _ENVS[key]


def run_task(task: Task) -> list[dict[str, Any]]:
    """Rows (family, point, params, profile, seed, KPIs) of one grid point."""
    from k8s_gpu_rl.baselines import make_policy
    from k8s_gpu_rl.evaluation.rollout import run_episode

    rows = []
    for label, profile in task.profiles:
        env = _env(profile, task.cluster, task.env_config)
        policy = make_policy(POLICY_OF[task.family], env, **task.params)
        for seed in task.seeds:
            kpis = run_episode(env, policy, seed).kpis
            rows.append(
                {
                    "family": task.family,
                    "point": task.index,
                    "params": point_label(task.params),
                    **task.params,
                    "profile": label,
                    "seed": seed,
                    **{k: float(kpis[k]) for k in KPIS},
                }
            )
    return rows


def run_grid(
    tasks: Sequence[Task],
    jobs: int = 1,
    progress: Callable[[], None] | None = None,
    checkpoint: Callable[[pd.DataFrame], None] | None = None,
    checkpoint_every: int = 20,
) -> pd.DataFrame:
    """Run every task (``jobs`` > 1: in that many worker processes) and stack the rows;
    ``checkpoint(rows so far)`` every ``checkpoint_every`` tasks, so a long grid that is
    interrupted can be resumed (``evaluate --pareto --reuse-grid``)."""
    rows: list[dict[str, Any]] = []

    def take(done: int, part: list[dict[str, Any]]) -> None:
        rows.extend(part)
        if progress:
            progress()
        if checkpoint and done % checkpoint_every == 0:
            checkpoint(pd.DataFrame(rows))

    if jobs <= 1 or len(tasks) < 2:
        results: Iterable[list[dict[str, Any]]] = map(run_task, tasks)
        for done, part in enumerate(results, 1):
            take(done, part)
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for done, part in enumerate(pool.imap(run_task, tasks, chunksize=4), 1):
                take(done, part)
    return pd.DataFrame(rows)


def split_done(tasks: Sequence[Task], previous: pd.DataFrame) -> tuple[pd.DataFrame, list[Task]]:
    """(rows of ``previous`` that cover a task on every profile and seed it asks for, the
    tasks still to run): a grid's earlier ``pareto_runs.csv`` is reused point by point."""
    if previous.empty:
        return previous, list(tasks)
    keep: list[pd.DataFrame] = []
    todo: list[Task] = []
    for task in tasks:
        need = {(label, seed) for label, _ in task.profiles for seed in task.seeds}
        rows = previous[
            (previous["family"] == task.family) & (previous["params"] == point_label(task.params))
        ]
        have = list(zip(rows["profile"].astype(str), rows["seed"].astype(int), strict=True))
        if need <= set(have):
            keep.append(rows[[pair in need for pair in have]].drop_duplicates(["profile", "seed"]))
        else:
            todo.append(task)
    return (pd.concat(keep, ignore_index=True) if keep else previous.iloc[:0]), todo


def point_table(runs: pd.DataFrame, qos_budget: float) -> pd.DataFrame:
    """One row per family and point: per-profile means, the totals, within budget."""
    keys = ["family", "point", "params"]
    means = runs.groupby([*keys, "profile"], sort=False)[list(KPIS)].mean().reset_index()
    wide = means.pivot_table(index=keys, columns="profile", values=list(KPIS), sort=False)
    wide.columns = [f"{kpi}:{profile}" for kpi, profile in wide.columns]
    wide = wide.reset_index()
    vgpu = [c for c in wide.columns if c.startswith("vgpu_hours:")]
    viol = [c for c in wide.columns if c.startswith("qos_violation_rate:")]
    wide["vgpu_hours_total"] = wide[vgpu].sum(axis=1)
    wide["worst_violation_rate"] = wide[viol].max(axis=1)
    wide["within_budget"] = wide["worst_violation_rate"] <= qos_budget + 1e-15
    seeds = runs.groupby(keys, sort=False)["seed"].nunique().rename("seeds").reset_index()
    knobs = [c for c in runs.columns if c not in {*keys, "profile", "seed", *KPIS}]
    first = runs.drop_duplicates(keys)[[*keys, *knobs]]
    return first.merge(wide, on=keys).merge(seeds, on=keys)


def choose(table: pd.DataFrame) -> pd.Series:
    """The choice rule (module docstring) over one family's rows of :func:`point_table`."""
    ok = table[table["within_budget"]]
    if ok.empty:
        return table.sort_values(["worst_violation_rate", "vgpu_hours_total", "point"]).iloc[0]
    return ok.sort_values(["vgpu_hours_total", "worst_violation_rate", "point"]).iloc[0]


def grid_table(table: pd.DataFrame, chosen: dict[str, int]) -> pd.DataFrame:
    """``calibrated_grid.csv``: every point with a ``chosen`` column."""
    out = table.copy()
    out["chosen"] = [chosen.get(f) == p for f, p in zip(out["family"], out["point"], strict=True)]
    return out


def calibrated_yaml(
    choices: dict[str, dict[str, Any]],
    qos_budget: float,
    profiles: Sequence[str],
    budget: int,
    command: str = "",
) -> str:
    """``calibrated.yaml``'s text: one entry per family, with the rule as a comment."""
    head = [
        "# Calibrated baselines: written by scripts/calibrate_baselines.py, read by",
        "# baselines/calibrated.py. Rule (every family alike): the fewest vGPU-hours, summed",
        "# over the training profiles, among the grid points whose mean QoS-violation rate is",
        f"# within the env's QoS budget ({qos_budget:g}, reward.qos_budget) on every training",
        f"# profile ({', '.join(profiles)}). Tuning budget: {budget} grid points x seeds per",
        "# family; tuning seeds are disjoint from evaluate's (1000 + i). The whole grid is in",
        "# calibrated_grid.csv beside this file.",
    ]
    if command:
        head.append(f"# Command: {command}")
    head.append(f"# Generated {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.")
    body = {
        "qos_budget": float(qos_budget),
        "training_profiles": list(profiles),
        "tuning_budget": int(budget),
        "families": choices,
    }
    return "\n".join(head) + "\n" + yaml.safe_dump(body, sort_keys=False)


def choice_entry(
    family: str, row: pd.Series, params: dict[str, Any], grid_points: int, seeds: Sequence[int]
) -> dict[str, Any]:
    """A family's entry in ``calibrated.yaml``."""
    per = {
        kpi: {
            c.split(":", 1)[1]: round(float(row[c]), 8)
            for c in row.index
            if c.startswith(kpi + ":")
        }
        for kpi in ("vgpu_hours", "qos_violation_rate")
    }
    return {
        "policy": POLICY_OF[family],
        "params": {k: _plain(v) for k, v in params.items()},
        "within_budget": bool(row["within_budget"]),
        "vgpu_hours_total": round(float(row["vgpu_hours_total"]), 6),
        "worst_violation_rate": round(float(row["worst_violation_rate"]), 8),
        "per_profile": per,
        "grid_points": int(grid_points),
        "seeds": [int(s) for s in seeds],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
