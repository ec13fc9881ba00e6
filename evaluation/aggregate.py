"""Summary and comparison tables from the per-run KPI table.

The per-run table (``runs.csv``) has one row per run: ``policy``, ``profile``, ``seed``
and every episode KPI. From it:

* :func:`summarise`: per policy, profile and KPI (columns in this order):

  | column | meaning |
  |---|---|
  | ``n`` | runs with a finite value |
  | ``mean``, ``std`` | sample mean and standard deviation (n - 1) |
  | ``ci95``, ``ci_low``, ``ci_high`` | 95 % CI of the mean, Student t with n - 1 dof (half-width, ends) |
  | ``iqm`` | interquartile mean over the runs (25 % trimmed mean; Agarwal et al. 2021) |
  | ``iqm_low``, ``iqm_high`` | 95 % percentile-bootstrap CI of the IQM |
  | ``boot_low``, ``boot_high`` | 95 % percentile-bootstrap CI of the mean |
  | ``no_variance`` | True when n >= 2 and every run gave the same value (deterministic KPI) |

  The bootstraps resample the runs with replacement, within each stratum when ``strata``
  names a column of the run table (e.g. a training seed), else all runs as one stratum;
  10,000 resamples from a fixed seed, so the same runs always give the same interval.
* :func:`compare`: per profile, KPI and pair of policies (in the order given):

  | column | meaning |
  |---|---|
  | ``mean_a``, ``mean_b``, ``diff``, ``n_a``, ``n_b`` | the two means, A - B, sample sizes |
  | ``t``, ``dof``, ``p_value`` | Welch's t-test; NaN t and p when ``no_variance`` and the means differ |
  | ``hedges_g`` | bias-corrected effect size of A over B; NaN when ``no_variance`` and the means differ |
  | ``prob_a_greater`` | P(A > B) + P(A = B) / 2 over all pairs of runs (Mann-Whitney U / n_a n_b) |
  | ``prob_improvement`` | P(A is better than B): ``prob_a_greater`` for KPIs where higher is better, P(B > A) + ties / 2 where lower is better (:data:`LOWER_IS_BETTER`), NaN where neither is defined (GPU utilisation, request counts) |
  | ``poi_low``, ``poi_high`` | 95 % bootstrap CI of ``prob_improvement`` (the two samples resampled independently) |
  | ``no_variance`` | both policies gave one value in every run (>= 2 runs each) |
  | ``note`` | ``"no variance"`` when ``no_variance`` (read the difference as exact, not tested), ``"n < 2"`` when a sample is too small for a test, else empty |

* :func:`overall`: per policy and KPI across profiles: the IQM and mean of the runs of
  every profile with stratified-bootstrap CIs (strata = profiles, as rliable's tasks),
  on scores divided by a reference policy's mean on the same profile when one is given;
* :func:`vs_oracle`: per profile and policy, mean vGPU-hours divided by the oracle's.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from k8s_gpu_rl.evaluation.stats import (
    BOOTSTRAP_REPS,
    bootstrap_ci,
    hedges_g,
    iqm,
    mean_ci,
    no_variance,
    probability_of_improvement,
    probability_of_improvement_ci,
    welch_test,
)

ID_COLUMNS = ("policy", "profile", "seed")
HEADLINE_KPIS = (
    "vgpu_hours",
    "qos_violation_rate",
    "p95_latency_ms",
    "p99_latency_ms",
    "mean_replicas",
    "throughput_rps",
    "success_rate",
    "gpu_util",
    "return",
)
"""The KPIs the terminal table, the report and the bar charts show first."""
LOWER_IS_BETTER = frozenset(
    {
        "vgpu_hours",
        "vgpu_s",
        "replica_hours",
        "replica_s",
        "mean_replicas",
        "qos_violation_rate",
        "mean_latency_ms",
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "failures",
        "cpu_request_s",
        "gpu_memory_mib_s",
    }
)
"""KPIs for which a smaller value is an improvement (cost, latency, violations)."""
HIGHER_IS_BETTER = frozenset({"throughput_rps", "success_rate", "return"})
"""KPIs for which a larger value is an improvement."""
SUMMARY_COLUMNS = (
    "policy", "profile", "kpi", "n", "mean", "std", "ci95", "ci_low", "ci_high",
    "iqm", "iqm_low", "iqm_high", "boot_low", "boot_high", "no_variance",
)  # fmt: skip
COMPARISON_COLUMNS = (
    "profile", "kpi", "policy_a", "policy_b", "mean_a", "mean_b", "diff", "n_a", "n_b",
    "t", "dof", "p_value", "hedges_g", "prob_a_greater", "prob_improvement",
    "poi_low", "poi_high", "no_variance", "note",
)  # fmt: skip


def kpi_columns(runs: pd.DataFrame) -> list[str]:
    """Numeric KPI columns of the per-run table, headline KPIs first."""
    numeric = [
        c for c in runs.columns if c not in ID_COLUMNS and pd.api.types.is_numeric_dtype(runs[c])
    ]
    return [k for k in HEADLINE_KPIS if k in numeric] + [
        c for c in numeric if c not in HEADLINE_KPIS
    ]


def _ordered(values: pd.Series) -> list[Any]:
    return list(dict.fromkeys(values.tolist()))


def summarise(
    runs: pd.DataFrame,
    confidence: float = 0.95,
    strata: str | None = None,
    reps: int = BOOTSTRAP_REPS,
) -> pd.DataFrame:
    """Long table with :data:`SUMMARY_COLUMNS` (see the module docstring)."""
    rows = []
    for profile in _ordered(runs["profile"]):
        for policy in _ordered(runs["policy"]):
            sub = runs[(runs["profile"] == profile) & (runs["policy"] == policy)]
            if sub.empty:
                continue
            labels = None if strata is None else sub[strata].to_numpy()
            for kpi in kpi_columns(runs):
                values = sub[kpi].to_numpy(dtype=float)
                rows.append(
                    {
                        "policy": policy,
                        "profile": profile,
                        "kpi": kpi,
                        **_summary_stats(values, labels, confidence, reps),
                    }
                )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _summary_stats(
    values: np.ndarray, labels: np.ndarray | None, confidence: float, reps: int
) -> dict[str, Any]:
    m = mean_ci(values, confidence)
    mean_boot = bootstrap_ci(values, labels, "mean", confidence, reps)
    iqm_boot = bootstrap_ci(values, labels, "iqm", confidence, reps)
    return {
        "n": m.n,
        "mean": m.mean,
        "std": m.std,
        "ci95": m.half_width,
        "ci_low": m.low,
        "ci_high": m.high,
        "iqm": iqm(values),
        "iqm_low": iqm_boot.low,
        "iqm_high": iqm_boot.high,
        "boot_low": mean_boot.low,
        "boot_high": mean_boot.high,
        "no_variance": no_variance(values),
    }


def summary_json(summary: pd.DataFrame) -> dict[str, Any]:
    """``{profile: {policy: {kpi: {n, mean, std, ci95, ci_low, ci_high, iqm, ...}}}}``.

    Each entry holds every column of :data:`SUMMARY_COLUMNS` after ``kpi`` that the table has.
    """
    out: dict[str, Any] = {}
    fields = [c for c in SUMMARY_COLUMNS[3:] if c in summary.columns]
    for row in summary.itertuples(index=False):
        entry = {k: _plain(getattr(row, k)) for k in fields}
        out.setdefault(row.profile, {}).setdefault(row.policy, {})[row.kpi] = entry
    return out


def compare(runs: pd.DataFrame, reps: int = BOOTSTRAP_REPS) -> pd.DataFrame:
    """Pairwise tests for every KPI (needs >= 2 policies): :data:`COMPARISON_COLUMNS`."""
    rows = []
    policies = _ordered(runs["policy"])
    for profile in _ordered(runs["profile"]):
        here = runs[runs["profile"] == profile]
        for a, b in itertools.combinations(policies, 2):
            xa, xb = here[here["policy"] == a], here[here["policy"] == b]
            if xa.empty or xb.empty:
                continue
            for kpi in kpi_columns(runs):
                va, vb = xa[kpi].to_numpy(dtype=float), xb[kpi].to_numpy(dtype=float)
                row = {"profile": profile, "kpi": kpi, "policy_a": a, "policy_b": b}
                rows.append(row | _pair_stats(kpi, va, vb, reps))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _pair_stats(kpi: str, va: np.ndarray, vb: np.ndarray, reps: int) -> dict[str, Any]:
    w = welch_test(va, vb)
    ma, mb = mean_ci(va).mean, mean_ci(vb).mean
    flat = no_variance(va, vb)
    return {
        "mean_a": ma,
        "mean_b": mb,
        "diff": ma - mb,
        "n_a": len(va),
        "n_b": len(vb),
        "t": w.t,
        "dof": w.dof,
        "p_value": w.p_value,
        "hedges_g": hedges_g(va, vb),
        "prob_a_greater": probability_of_improvement(va, vb),
        **_improvement(kpi, va, vb, reps),
        "no_variance": flat,
        "note": "no variance"
        if flat
        else ("n < 2" if min(mean_ci(va).n, mean_ci(vb).n) < 2 else ""),
    }


def _improvement(kpi: str, va: np.ndarray, vb: np.ndarray, reps: int) -> dict[str, float]:
    """P(A better than B) with its bootstrap CI, by the KPI's direction (NaN if it has none)."""
    if kpi in HIGHER_IS_BETTER:
        ci = probability_of_improvement_ci(va, vb, reps=reps)
    elif kpi in LOWER_IS_BETTER:
        ci = probability_of_improvement_ci(vb, va, reps=reps)
    else:
        return {"prob_improvement": math.nan, "poi_low": math.nan, "poi_high": math.nan}
    return {"prob_improvement": ci.value, "poi_low": ci.low, "poi_high": ci.high}


def overall(
    runs: pd.DataFrame,
    reference: str | None = None,
    kpis: tuple[str, ...] = HEADLINE_KPIS,
    confidence: float = 0.95,
    reps: int = BOOTSTRAP_REPS,
) -> pd.DataFrame:
    """Per policy and KPI across profiles, stratified by profile (rliable's tasks).

    Scores are the runs' values divided by ``reference``'s mean on the same profile when
    ``reference`` is given (1.0 = as the reference; profiles where its mean is 0 or missing
    are left out), else the raw values. Columns: policy, kpi, reference, n_profiles, n,
    iqm, iqm_low, iqm_high, mean, boot_low, boot_high.
    """
    rows = []
    for policy in _ordered(runs["policy"]):
        mine = runs[runs["policy"] == policy]
        for kpi in (k for k in kpis if k in runs.columns):
            scores, labels = _normalised(runs, mine, kpi, reference)
            i, m = (bootstrap_ci(scores, labels, s, confidence, reps) for s in ("iqm", "mean"))
            rows.append(
                {
                    "policy": policy,
                    "kpi": kpi,
                    "reference": reference or "",
                    "n_profiles": len(set(labels[np.isfinite(scores)].tolist())),
                    "n": i.n,
                    "iqm": i.value,
                    "iqm_low": i.low,
                    "iqm_high": i.high,
                    "mean": m.value,
                    "boot_low": m.low,
                    "boot_high": m.high,
                }
            )
    columns = ["policy", "kpi", "reference", "n_profiles", "n", "iqm", "iqm_low", "iqm_high"]
    return pd.DataFrame(rows, columns=[*columns, "mean", "boot_low", "boot_high"])


def _normalised(
    runs: pd.DataFrame, mine: pd.DataFrame, kpi: str, reference: str | None
) -> tuple[np.ndarray, np.ndarray]:
    values = mine[kpi].to_numpy(dtype=float)
    labels = mine["profile"].to_numpy()
    if reference is None:
        return values, labels
    ref = runs[runs["policy"] == reference].groupby("profile")[kpi].mean()
    scale = np.array([ref.get(p, math.nan) for p in labels], dtype=float)
    scale[scale == 0] = math.nan
    return values / scale, labels


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def vs_oracle(summary: pd.DataFrame, oracle: str = "oracle") -> pd.DataFrame:
    """Each policy's mean vGPU-hours relative to the oracle's (empty without the oracle)."""
    cost = summary[summary["kpi"] == "vgpu_hours"]
    rows = []
    for profile in _ordered(cost["profile"]):
        here = cost[cost["profile"] == profile].set_index("policy")
        if oracle not in here.index:
            continue
        base = float(here.loc[oracle, "mean"])
        for policy, row in here.iterrows():
            ratio = row["mean"] / base if base > 0 else math.nan
            rows.append(
                {
                    "profile": profile,
                    "policy": policy,
                    "vgpu_hours": row["mean"],
                    "oracle_vgpu_hours": base,
                    "ratio_to_oracle": ratio,
                    "excess_vgpu_hours": row["mean"] - base,
                }
            )
    columns = [
        "profile",
        "policy",
        "vgpu_hours",
        "oracle_vgpu_hours",
        "ratio_to_oracle",
        "excess_vgpu_hours",
    ]
    return pd.DataFrame(rows, columns=columns)


def pivot(
    summary: pd.DataFrame, profile: str, kpis: tuple[str, ...] = HEADLINE_KPIS
) -> pd.DataFrame:
    """``policy x kpi`` of (mean, ci95) pairs for one profile, in run order."""
    here = summary[(summary["profile"] == profile) & summary["kpi"].isin(kpis)]
    table = {}
    for policy in _ordered(here["policy"]):
        sub = here[here["policy"] == policy].set_index("kpi")
        table[policy] = {
            k: (float(sub.loc[k, "mean"]), float(sub.loc[k, "ci95"]))
            for k in kpis
            if k in sub.index
        }
    return pd.DataFrame.from_dict(table, orient="index")
