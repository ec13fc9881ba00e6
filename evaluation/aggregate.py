"""Summary and comparison tables from the per-run KPI table.

The per-run table (``runs.csv``) has one row per run: ``policy``, ``profile``, ``seed``
and every episode KPI. From it:

* :func:`summarise`: per policy, profile and KPI, ``n``, ``mean``, ``std``,
  ``ci95`` (the 95 % CI half-width, Student t with n-1 dof), ``ci_low``, ``ci_high``;
* :func:`compare`: per profile, KPI and pair of policies (in the order given), Welch's
  t-test (t, dof, p) and Hedges' g of the first policy over the second;
* :func:`vs_oracle`: per profile and policy, mean vGPU-hours divided by the oracle's.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pandas as pd

from k8s_gpu_rl.evaluation.stats import hedges_g, mean_ci, welch_test

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


def summarise(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Long table: policy, profile, kpi, n, mean, std, ci95, ci_low, ci_high."""
    rows = []
    for profile in _ordered(runs["profile"]):
        for policy in _ordered(runs["policy"]):
            sub = runs[(runs["profile"] == profile) & (runs["policy"] == policy)]
            if sub.empty:
                continue
            for kpi in kpi_columns(runs):
                m = mean_ci(sub[kpi].to_numpy(), confidence)
                rows.append(
                    {
                        "policy": policy,
                        "profile": profile,
                        "kpi": kpi,
                        "n": m.n,
                        "mean": m.mean,
                        "std": m.std,
                        "ci95": m.half_width,
                        "ci_low": m.low,
                        "ci_high": m.high,
                    }
                )
    return pd.DataFrame(
        rows, columns=["policy", "profile", "kpi", "n", "mean", "std", "ci95", "ci_low", "ci_high"]
    )


def summary_json(summary: pd.DataFrame) -> dict[str, Any]:
    """``{profile: {policy: {kpi: {n, mean, std, ci95, ci_low, ci_high}}}}``."""
    out: dict[str, Any] = {}
    for row in summary.itertuples(index=False):
        entry = {k: getattr(row, k) for k in ("n", "mean", "std", "ci95", "ci_low", "ci_high")}
        out.setdefault(row.profile, {}).setdefault(row.policy, {})[row.kpi] = entry
    return out


def compare(runs: pd.DataFrame) -> pd.DataFrame:
    """Pairwise Welch t-tests and Hedges' g for every KPI (needs >= 2 policies)."""
    rows = []
    policies = _ordered(runs["policy"])
    for profile in _ordered(runs["profile"]):
        here = runs[runs["profile"] == profile]
        for a, b in itertools.combinations(policies, 2):
            xa, xb = here[here["policy"] == a], here[here["policy"] == b]
            if xa.empty or xb.empty:
                continue
            for kpi in kpi_columns(runs):
                va, vb = xa[kpi].to_numpy(), xb[kpi].to_numpy()
                w = welch_test(va, vb)
                ma, mb = mean_ci(va).mean, mean_ci(vb).mean
                rows.append(
                    {
                        "profile": profile,
                        "kpi": kpi,
                        "policy_a": a,
                        "policy_b": b,
                        "mean_a": ma,
                        "mean_b": mb,
                        "diff": ma - mb,
                        "n_a": len(va),
                        "n_b": len(vb),
                        "t": w.t,
                        "dof": w.dof,
                        "p_value": w.p_value,
                        "hedges_g": hedges_g(va, vb),
                    }
                )
    columns = [
        "profile",
        "kpi",
        "policy_a",
        "policy_b",
        "mean_a",
        "mean_b",
        "diff",
        "n_a",
        "n_b",
        "t",
        "dof",
        "p_value",
        "hedges_g",
    ]
    return pd.DataFrame(rows, columns=columns)


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
