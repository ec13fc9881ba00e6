"""Cost-QoS Pareto fronts and cost at matched QoS: ``python -m evaluate --pareto``.

Every baseline family's whole grid (:mod:`k8s_gpu_rl.baselines.grids`) runs on the
evaluation profiles and seeds, beside the named policies (the user's HPA, the
calibrated choices, the oracle, and any PPO models). Per family, parameters and profile
:func:`summarise_points` gives the mean vGPU-hours and QoS-violation rate with
stratified-bootstrap 95 % CIs over the runs (``evaluation.stats.bootstrap_ci``).

* **Front** (:func:`front`): the points no other point of the same family beats on both
  means (fewer or equal vGPU-hours and an equal or lower violation rate, one strictly).
* **Cost at matched QoS** (:func:`cost_at_matched_qos`): a policy's mean vGPU-hours
  divided by the cheapest baseline grid point (of any family: the best baseline front)
  whose mean violation rate is no higher than the policy's. Below 1: cheaper than every
  baseline setting that is at least as good on QoS; n/a: no baseline point is as good.
* **Against mixtures** (:func:`mixture_cost_at_most`, the ``*_mixture`` columns): the
  same ratio against the cheapest *randomisation* of two baseline settings (each episode
  runs setting A with probability p, else B) whose expected violation rate is no higher:
  the lower convex hull of the grid. The grid's staircase front leaves gaps between its
  steps that any policy alternating two static settings over an episode falls into; a
  ratio below 1 here is not explained by such mixing.

Files (beside ``evaluate``'s): ``pareto_runs.csv`` (one row per grid point, profile and
seed), ``pareto.csv`` (the summary, ``on_front``, ``calibrated``), ``cost_at_matched_qos.csv``
and ``plots/<profile>_pareto.png``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from k8s_gpu_rl.evaluation.stats import bootstrap_ci

KPI_COST, KPI_QOS = "vgpu_hours", "qos_violation_rate"
BASELINE_KINDS = ("grid",)
"""Rows that make up the baseline fronts (the named policies are judged against them)."""


def summarise_points(runs: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Per family, params and profile: n, mean and bootstrap CI of vGPU-h and violations."""
    rows = []
    for (family, params, profile), sub in runs.groupby(["family", "params", "profile"], sort=False):
        row: dict[str, Any] = {
            "kind": kind,
            "family": family,
            "params": params,
            "profile": profile,
            "n": int(len(sub)),
        }
        for kpi in (KPI_COST, KPI_QOS):
            ci = bootstrap_ci(sub[kpi].to_numpy(dtype=float), reps=2000)
            row.update({kpi: ci.value, f"{kpi}_ci_low": ci.low, f"{kpi}_ci_high": ci.high})
        rows.append(row)
    return pd.DataFrame(rows)


def front_mask(cost: Sequence[float], qos: Sequence[float]) -> np.ndarray:
    """Which points are non-dominated (minimising both)."""
    c, q = np.asarray(cost, dtype=float), np.asarray(qos, dtype=float)
    keep = np.ones(c.size, dtype=bool)
    for i in range(c.size):
        better_or_equal = (c <= c[i]) & (q <= q[i])
        strictly = (c < c[i]) | (q < q[i])
        keep[i] = not np.any(better_or_equal & strictly)
    return keep


def front(points: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated rows of ``points`` (one family, one profile), by violation rate."""
    mask = front_mask(points[KPI_COST], points[KPI_QOS])
    return points[mask].sort_values([KPI_QOS, KPI_COST])


def mark_fronts(points: pd.DataFrame) -> pd.DataFrame:
    """``points`` with ``on_front`` per family and profile."""
    out = points.copy()
    out["on_front"] = False
    for _, idx in out.groupby(["family", "profile"], sort=False).groups.items():
        sub = out.loc[idx]
        out.loc[idx, "on_front"] = front_mask(sub[KPI_COST], sub[KPI_QOS])
    return out


def cheapest_at_most(baselines: pd.DataFrame, violation_rate: float) -> pd.Series | None:
    """The cheapest baseline point whose violation rate is <= ``violation_rate`` (None: none)."""
    ok = baselines[baselines[KPI_QOS] <= violation_rate + 1e-15]
    if ok.empty:
        return None
    return ok.sort_values([KPI_COST, KPI_QOS]).iloc[0]


def mixture_cost_at_most(
    cost: Sequence[float], qos: Sequence[float], violation_rate: float
) -> float:
    """The cheapest expected cost of running baseline point i with probability p and point j
    otherwise (p in [0, 1], i = j allowed) with expected violation rate <= ``violation_rate``:
    the lower convex hull of the points at that rate. NaN when no point is that good."""
    c, q = np.asarray(cost, dtype=float), np.asarray(qos, dtype=float)
    v = violation_rate + 1e-15
    alone = c[q <= v]
    if alone.size == 0:
        return math.nan
    best = float(alone.min())
    lo, hi = q <= v, q > v  # a mixture at the budget needs one point on each side
    if lo.any() and hi.any():
        qa, ca = q[lo][:, None], c[lo][:, None]
        qb, cb = q[hi][None, :], c[hi][None, :]
        p = (qb - violation_rate) / (qb - qa)  # weight of the better-QoS point
        best = min(best, float((p * ca + (1.0 - p) * cb).min()))
    return best


def cost_at_matched_qos(policies: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Per profile and policy: vGPU-h / the cheapest baseline point at no worse QoS, and
    (``*_mixture``) / the cheapest mixture of two baseline points at no worse QoS."""
    rows = []
    for r in policies.itertuples(index=False):
        here = baselines[baselines["profile"] == r.profile]
        ref = cheapest_at_most(here, getattr(r, KPI_QOS))
        ratio = math.nan if ref is None or ref[KPI_COST] <= 0 else r.vgpu_hours / ref[KPI_COST]
        mixture = mixture_cost_at_most(here[KPI_COST], here[KPI_QOS], getattr(r, KPI_QOS))
        mixed_ratio = r.vgpu_hours / mixture if mixture > 0 else math.nan
        rows.append(
            {
                "profile": r.profile,
                "policy": r.family,
                KPI_COST: r.vgpu_hours,
                KPI_QOS: getattr(r, KPI_QOS),
                "reference_family": None if ref is None else ref["family"],
                "reference_params": None if ref is None else ref["params"],
                "reference_vgpu_hours": math.nan if ref is None else float(ref[KPI_COST]),
                "reference_violation_rate": math.nan if ref is None else float(ref[KPI_QOS]),
                "cost_at_matched_qos": ratio,
                "reference_vgpu_hours_mixture": mixture,
                "cost_at_matched_qos_mixture": mixed_ratio,
            }
        )
    return pd.DataFrame(rows)


def calibrated_flags(points: pd.DataFrame, chosen: dict[str, str]) -> pd.Series:
    """Whether each grid row is its family's calibrated choice (``chosen``: family -> params)."""
    return pd.Series(
        [chosen.get(f) == p for f, p in zip(points["family"], points["params"], strict=True)],
        index=points.index,
    )
