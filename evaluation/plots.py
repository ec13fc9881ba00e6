"""PNG figures of an evaluation (matplotlib, headless).

* :func:`plot_timeseries`: for one profile, the first seed of each policy over time:
  Locust users, p95 latency (with the SLO), ready replicas, and gpucores;
* :func:`plot_kpis`: for one profile, bar charts of the headline KPIs per policy with
  95 % CI error bars.

``notebooks/analysis.ipynb`` draws the same figures from the files in a results folder.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from k8s_gpu_rl.evaluation.io import savefig_atomic  # noqa: E402

BAR_KPIS = (
    ("vgpu_hours", "vGPU-hours", 1.0),
    ("qos_violation_rate", "QoS violations (%)", 100.0),
    ("p95_latency_ms", "p95 latency (ms)", 1.0),
    ("mean_replicas", "mean ready replicas", 1.0),
    ("gpu_util", "GPU utilisation (%)", 100.0),
    ("throughput_rps", "throughput (req/s)", 1.0),
)
LINESTYLES = ("-", "--", "-.", ":")
"""Policies that do the same thing (static and a tuned HPA that never scales) stay visible."""
SERIES_PANELS = (
    ("users", "Locust users"),
    ("p95_latency_ms", "p95 latency (ms)"),
    ("replicas_ready", "ready replicas"),
    ("gpucores", "gpucores (%)"),
)


def plot_timeseries(
    series: dict[str, pd.DataFrame], profile: str, slo_ms: float, path: Path
) -> None:
    """One figure of stacked panels; ``series`` maps policy -> its time-series table."""
    fig, axes = plt.subplots(len(SERIES_PANELS), 1, figsize=(10, 9), sharex=True)
    for (column, label), ax in zip(SERIES_PANELS, axes, strict=True):
        for i, (policy, frame) in enumerate(series.items()):
            if column == "users" and i > 0:
                break  # identical load for every policy: draw it once
            minutes = frame["time_s"] / 60.0
            style = LINESTYLES[i % len(LINESTYLES)]
            ax.step(
                minutes,
                frame[column],
                where="post",
                label=policy if column != "users" else None,
                lw=1.4,
                ls=style,
            )
        if column == "p95_latency_ms":
            ax.axhline(slo_ms, color="red", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="upper right", fontsize=8, ncol=2)
    axes[2].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1].set_xlabel("time (min)")
    fig.suptitle(f"{profile}: load, latency, replicas and vGPU share (first seed)")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


def plot_kpis(summary: pd.DataFrame, profile: str, path: Path) -> None:
    """Bar charts of the headline KPIs with 95 % CI error bars."""
    here = summary[summary["profile"] == profile]
    policies = list(dict.fromkeys(here["policy"]))
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (kpi, label, scale), ax in zip(BAR_KPIS, axes.ravel(), strict=True):
        rows = here[here["kpi"] == kpi].set_index("policy").reindex(policies)
        means = rows["mean"].to_numpy(dtype=float) * scale
        errors = np.nan_to_num(rows["ci95"].to_numpy(dtype=float) * scale)
        ax.bar(
            policies,
            means,
            yerr=errors,
            capsize=4,
            color=[colors[i % len(colors)] for i in range(len(policies))],
        )
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{profile}: KPIs, mean and 95 % CI over seeds")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


FAMILY_COLORS = {
    "hpa-calibrated": "tab:blue",
    "kpa-calibrated": "tab:orange",
    "static-calibrated": "tab:green",
    "hpa-tuned": "tab:purple",
}
POLICY_MARKERS = {"oracle": ("X", "black"), "hpa": ("s", "dimgray"), "static": ("D", "gray")}
"""Named policies drawn on the Pareto plot (PPO models: :data:`MODEL_MARKERS`)."""
MODEL_MARKERS = [
    ("^", "red"),
    ("v", "darkred"),
    ("<", "magenta"),
    (">", "purple"),
    ("P", "crimson"),
]
"""PPO models (any other named policy), one style each, in order; repeated past five."""


def plot_pareto(points: pd.DataFrame, profile: str, qos_budget: float, path: Path) -> None:
    """vGPU-hours against QoS-violation rate: every family's grid (faint), its front
    (line), its calibrated choice (star), and the named policies (oracle, HPA, PPO)."""
    fig, ax = plt.subplots(figsize=(10, 6))
    grid = points[points["kind"] == "grid"]
    for family, sub in grid.groupby("family", sort=False):
        color = FAMILY_COLORS.get(family, "tab:brown")
        x, y = sub["qos_violation_rate"] * 100.0, sub["vgpu_hours"]
        ax.scatter(x, y, s=10, color=color, alpha=0.25, lw=0)
        front = sub[sub["on_front"]].sort_values("qos_violation_rate")
        ax.step(
            front["qos_violation_rate"] * 100.0,
            front["vgpu_hours"],
            where="post",
            color=color,
            lw=1.6,
            marker="o",
            ms=4,
            label=f"{family} front ({len(sub)} settings)",
        )
        chosen = sub[sub["calibrated"]]
        if chosen.empty:
            continue
        ax.scatter(
            chosen["qos_violation_rate"] * 100.0,
            chosen["vgpu_hours"],
            marker="*",
            s=260,
            color=color,
            edgecolor="black",
            zorder=5,
            label=f"{family}: calibrated choice",
        )
    _named_policies(ax, points[points["kind"] == "policy"])
    ax.axvline(
        qos_budget * 100.0, color="red", ls="--", lw=1, label=f"QoS budget {qos_budget * 100:g} %"
    )
    ax.set_xscale("symlog", linthresh=qos_budget * 100.0 / 10.0, linscale=0.5)
    right = max(points["qos_violation_rate"].max() * 100.0, qos_budget * 100.0) * 2.0
    ax.set_xlim(0.0, right)
    ax.set_xlabel("QoS-violation rate (% of requests slower than the SLO or failed; symlog)")
    ax.set_ylabel("vGPU-hours per episode")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    seeds = int(points["n"].max()) if "n" in points and len(points) else 0
    fig.suptitle(f"{profile}: cost against QoS, means over {seeds} seeds (lower left is better)")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


def _named_policies(ax: plt.Axes, policies: pd.DataFrame) -> None:
    named = {**POLICY_MARKERS, **FAMILY_COLORS}
    models = [f for f in dict.fromkeys(policies["family"]) if f not in named]
    for r in policies.itertuples(index=False):
        if r.family in FAMILY_COLORS:
            continue  # the calibrated choices are the stars
        style = (
            MODEL_MARKERS[models.index(r.family) % len(MODEL_MARKERS)]
            if r.family in models
            else None
        )
        marker, color = POLICY_MARKERS.get(r.family, style)
        x, y = r.qos_violation_rate * 100.0, r.vgpu_hours
        xerr = [
            [x - r.qos_violation_rate_ci_low * 100.0],
            [r.qos_violation_rate_ci_high * 100.0 - x],
        ]
        yerr = [[y - r.vgpu_hours_ci_low], [r.vgpu_hours_ci_high - y]]
        ax.errorbar(
            x,
            y,
            xerr=np.nan_to_num(xerr),
            yerr=np.nan_to_num(yerr),
            fmt=marker,
            color=color,
            ms=10,
            capsize=3,
            zorder=6,
            label=r.family,
        )
