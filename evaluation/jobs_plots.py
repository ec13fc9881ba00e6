"""Figures of a job-scheduling evaluation: a Gantt chart per policy, KPI bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from k8s_gpu_rl.evaluation.io import savefig_atomic  # noqa: E402


def _gpu_labels(world: Any) -> list[tuple[int, int, str]]:
    out = []
    for c, cl in enumerate(world.clusters):
        g = 0
        for node in cl.nodes:
            for k in range(node.gpus):
                out.append((c, g, f"{cl.name}/{node.name}/{k}"))
                g += 1
    return out


def _segments(jobs: pd.DataFrame) -> list[tuple[str, float, float, int, list[int], str]]:
    out = []
    for r in jobs.itertuples(index=False):
        if not isinstance(r.segments, str) or not r.segments:
            continue
        for seg in r.segments.split(";"):
            span, where = seg.split("@")
            a, b = (float(x) for x in span.split("-"))
            c, gpus, outcome = where.split(":")
            out.append((r.job_id, a, b, int(c), [int(g) for g in gpus.split("/") if g], outcome))
    return out


def plot_gantt(jobs: pd.DataFrame, world: Any, title: str, path: Path) -> None:
    """One row per GPU; a bar per attempt of each job on it (black, hatched: died of OOM)."""
    labels = _gpu_labels(world)
    row = {(c, g): k for k, (c, g, _) in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(11, 0.35 * len(labels) + 1.5))
    cmap = plt.get_cmap("tab20")
    ids = {j: k for k, j in enumerate(jobs["job_id"])}
    for job_id, a, b, c, gpus, outcome in _segments(jobs):
        for g in gpus:
            oom = outcome == "oom"
            color = "black" if oom else cmap(ids[job_id] % 20)
            ax.barh(
                row[(c, g)],
                max(b - a, 30.0) / 3600.0,
                left=a / 3600.0,
                height=0.8,
                color=color,
                edgecolor="k",
                lw=0.3,
                hatch="xx" if oom else None,
            )
    ax.set_yticks(range(len(labels)), [lab for _, _, lab in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time (h)")
    ax.set_title(title + " (black: an attempt that died of OOM)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


BARS = (
    ("makespan_s", "makespan (h)", 1 / 3600.0),
    ("mean_jct_s", "mean JCT (h)", 1 / 3600.0),
    ("oom_failures", "OOM failures", 1.0),
    ("deadlocked", "deadlocked runs (share)", 1.0),
)


def plot_kpis(summary: pd.DataFrame, queue: str, path: Path) -> None:
    """Bars with 95 % CI of the headline KPIs per policy (finite runs only)."""
    fig, axes = plt.subplots(1, len(BARS), figsize=(3.2 * len(BARS), 3.4))
    x = np.arange(len(summary))
    for ax, (k, label, scale) in zip(axes, BARS, strict=True):
        mean = summary[k].to_numpy(dtype=float) * scale
        ci = np.nan_to_num(summary[f"{k}_ci95"].to_numpy(dtype=float) * scale)
        ax.bar(x, np.nan_to_num(mean), yerr=ci, capsize=3, color="tab:blue")
        ax.set_xticks(x, summary["policy"], rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"queue {queue}")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
