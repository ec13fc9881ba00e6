"""Which runs may enter the statistics: a run whose load generator saturated is out.

A live backend marks each decision interval in which Locust, not the cluster, was the
bottleneck (``k8s_gpu_rl.envs.backends.loadgen``); the episode's KPIs then carry
``client_saturated`` (1.0 if any interval was marked) and ``client_saturated_fraction``
(the marked share of its intervals). Such a run measures the client: its latencies and
throughput say nothing about the policy, so :func:`split_valid` keeps it out of
``summary.csv`` and the comparisons unless ``--allow-saturated-client`` is given. Runs
without these columns (the simulated backend, older results) and runs whose values are
missing are valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["VALIDITY_COLUMNS", "ExcludedRun", "saturated_runs", "split_valid"]

VALIDITY_COLUMNS = ("client_saturated", "client_saturated_fraction")
"""The per-run columns (episode KPIs) that mark a load-generator-bound run."""


@dataclass(frozen=True)
class ExcludedRun:
    """A run left out of the statistics, and why."""

    policy: str
    profile: str
    seed: int
    reason: str


def _table(runs: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return runs if isinstance(runs, pd.DataFrame) else pd.DataFrame(list(runs))


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    """``name`` as numbers (0 where absent or not a number)."""
    if name not in table.columns:
        return pd.Series(0.0, index=table.index)
    return pd.to_numeric(table[name], errors="coerce").fillna(0.0)


def _saturated_mask(table: pd.DataFrame) -> pd.Series:
    return (_column(table, "client_saturated") > 0) | (
        _column(table, "client_saturated_fraction") > 0
    )


def saturated_runs(runs: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[ExcludedRun]:
    """The runs (``runs.csv`` rows) in which the load generator saturated, with reasons."""
    table = _table(runs)
    if table.empty:
        return []
    fraction = _column(table, "client_saturated_fraction")
    out = []
    for index in table.index[_saturated_mask(table)]:
        row = table.loc[index]
        share = float(fraction[index])
        detail = f"in {share:.0%} of its intervals" if share > 0 else "in some interval"
        out.append(
            ExcludedRun(
                policy=str(row.get("policy", "")),
                profile=str(row.get("profile", "")),
                seed=int(row["seed"]) if "seed" in row and pd.notna(row["seed"]) else -1,
                reason=f"load generator saturated {detail} (the run measures Locust)",
            )
        )
    return out


def split_valid(
    runs: pd.DataFrame | Iterable[Mapping[str, Any]], allow_saturated_client: bool = False
) -> tuple[pd.DataFrame, list[ExcludedRun]]:
    """``(kept rows, excluded runs)``: the runs whose load generator saturated are
    excluded unless ``allow_saturated_client`` (then all are kept, none excluded)."""
    table = _table(runs)
    if allow_saturated_client or table.empty:
        return table, []
    return table[~_saturated_mask(table)].reset_index(drop=True), saturated_runs(table)
