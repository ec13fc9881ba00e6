"""The human-readable outputs: ``report.md`` and the terminal table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

# (kpi, column title, scale, decimals)
TABLE_KPIS = (
    ("vgpu_hours", "vGPU-h", 1.0, 4),
    ("qos_violation_rate", "QoS viol. %", 100.0, 3),
    ("p95_latency_ms", "p95 ms", 1.0, 1),
    ("p99_latency_ms", "p99 ms", 1.0, 1),
    ("mean_replicas", "replicas", 1.0, 2),
    ("throughput_rps", "req/s", 1.0, 1),
    ("success_rate", "success %", 100.0, 2),
    ("gpu_util", "GPU util %", 100.0, 1),
    ("return", "return", 1.0, 1),
)
TEST_KPIS = ("vgpu_hours", "qos_violation_rate", "p95_latency_ms")


@dataclass
class ParetoInputs:
    """What ``--pareto`` adds: the fronts and the cost at matched QoS."""

    points: pd.DataFrame
    """``pareto.csv``: one row per family, parameters and profile."""
    matched: pd.DataFrame
    """``cost_at_matched_qos.csv``: one row per profile and named policy."""
    plots: dict[str, str]
    """profile -> its Pareto figure, relative to the results folder."""
    qos_budget: float
    seeds: int


@dataclass
class ReportInputs:
    """Everything the report shows."""

    command: str
    created: str
    policies: list[str]
    profiles: list[str]
    seeds: list[int]
    backend: str
    cluster: str
    slo_ms: float
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    oracle_ratios: pd.DataFrame
    policy_settings: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, list[str]] = field(default_factory=dict)
    """profile -> figure paths relative to the results folder."""
    env_config: dict[str, Any] = field(default_factory=dict)
    """EnvConfig overrides every policy ran with (the PPO run's ``env:`` section)."""
    pareto: ParetoInputs | None = None
    """The fronts (``--pareto``); the report then leads with them."""


def fmt(mean: float, ci: float, scale: float = 1.0, decimals: int = 2) -> str:
    """``mean ± ci`` (the CI left out when it is not defined)."""
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean * scale:.{decimals}f}"
    return text + (f" ± {ci * scale:.{decimals}f}" if math.isfinite(ci) else "")


def _cell(
    summary: pd.DataFrame, profile: str, policy: str, kpi: str, scale: float, decimals: int
) -> str:
    row = summary[
        (summary["profile"] == profile) & (summary["policy"] == policy) & (summary["kpi"] == kpi)
    ]
    if row.empty:
        return "n/a"
    return fmt(float(row["mean"].iloc[0]), float(row["ci95"].iloc[0]), scale, decimals)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _profile_section(inp: ReportInputs, profile: str) -> list[str]:
    out = [f"## Profile `{profile}`", ""]
    header = ["policy"] + [title for _, title, _, _ in TABLE_KPIS]
    rows = [
        [p] + [_cell(inp.summary, profile, p, k, s, d) for k, _, s, d in TABLE_KPIS]
        for p in inp.policies
    ]
    out += [
        f"Mean ± 95 % CI half-width over {len(inp.seeds)} seeds.",
        "",
        _md_table(header, rows),
        "",
    ]
    ratios = inp.oracle_ratios[inp.oracle_ratios["profile"] == profile]
    if not ratios.empty:
        rows = [
            [
                r.policy,
                f"{r.vgpu_hours:.4f}",
                f"{r.ratio_to_oracle:.2f}×",
                f"{r.excess_vgpu_hours:+.4f}",
            ]
            for r in ratios.itertuples(index=False)
        ]
        out += [
            "vGPU-hours relative to the clairvoyant oracle (the cost lower bound):",
            "",
            _md_table(["policy", "vGPU-h", "× oracle", "excess vGPU-h"], rows),
            "",
        ]
    tests = inp.comparisons[
        (inp.comparisons["profile"] == profile) & inp.comparisons["kpi"].isin(TEST_KPIS)
    ]
    if not tests.empty:
        rows = [
            [
                r.policy_a,
                r.policy_b,
                r.kpi,
                f"{r.diff:+.4g}",
                f"{r.t:.3g}",
                _p(r.p_value),
                f"{r.hedges_g:.3g}",
            ]
            for r in tests.itertuples(index=False)
        ]
        out += [
            "Welch's t-test, A − B (all KPIs in `comparisons.csv`):",
            "",
            _md_table(["A", "B", "KPI", "mean A − B", "t", "p", "Hedges' g"], rows),
            "",
        ]
    out += [f"![{profile} figure]({path})" for path in inp.plots.get(profile, [])]
    return out + [""]


def render_markdown(inp: ReportInputs) -> str:
    seeds = f"{inp.seeds[0]}…{inp.seeds[-1]}" if len(inp.seeds) > 1 else str(inp.seeds[0])
    lines = [
        f"# Evaluation: {', '.join(inp.policies)} on {', '.join(inp.profiles)}",
        "",
        f"* Command: `{inp.command}`",
        f"* Created: {inp.created}",
        f"* Backend: `{inp.backend}`, cluster `{inp.cluster}`, SLO {inp.slo_ms:g} ms, env "
        + (f"overrides from the PPO run: `{inp.env_config}`" if inp.env_config else "defaults"),
        f"* Seeds: {seeds} ({len(inp.seeds)} runs per policy and profile; run i of every policy "
        "uses the same seed, so every policy replays the same Locust users)",
        "",
    ]
    if inp.pareto is not None:
        lines += pareto_section(inp.pareto, inp.profiles)
    if inp.policy_settings:
        lines += ["Policy settings:", ""]
        lines += [f"* `{name}`: {settings}" for name, settings in inp.policy_settings.items()]
        lines.append("")
    for profile in inp.profiles:
        lines += _profile_section(inp, profile)
    lines += [
        "## Method",
        "",
        "* Each KPI is over a whole episode (latency percentiles over every request of the run, "
        "client side); `vgpu_hours` = ∫ Σ_pods gpucores/100 dt.",
        "* CI: mean ± t_{0.975, n−1} · s/√n (Student t, sample standard deviation).",
        "* Comparisons: Welch's unequal-variance t-test (`scipy.stats.ttest_ind(equal_var=False)`), "
        "effect size Hedges' g (pooled SD, small-sample corrected).",
        "* Files: `runs.csv` (one row per run), `runs/<policy>/<profile>/seed<k>.csv` (per step), "
        "`summary.csv`/`.json`, `comparisons.csv`/`.json`, `vgpu_vs_oracle.csv`, `plots/`; with "
        "`--pareto` also `pareto.csv`, `pareto_runs.csv`, `cost_at_matched_qos.csv`.",
        "",
    ]
    return "\n".join(lines)


def print_summary(inp: ReportInputs, console: Console | None = None) -> None:
    """One rich table per profile."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: do not squeeze the table into 80 columns
            console = Console(width=200)
    shown = TABLE_KPIS[:6]
    for profile in inp.profiles:
        table = Table(title=f"{profile}: mean ± 95 % CI over {len(inp.seeds)} seeds")
        table.add_column("policy", no_wrap=True)
        for _, title, _, _ in shown:
            table.add_column(title, justify="right", no_wrap=True)
        ratios = inp.oracle_ratios[inp.oracle_ratios["profile"] == profile].set_index("policy")
        if not ratios.empty:
            table.add_column("vGPU × oracle", justify="right", no_wrap=True)
        for policy in inp.policies:
            cells = [_cell(inp.summary, profile, policy, k, s, d) for k, _, s, d in shown]
            if not ratios.empty:
                cells.append(
                    f"{ratios.loc[policy, 'ratio_to_oracle']:.2f}"
                    if policy in ratios.index
                    else "n/a"
                )
            table.add_row(policy, *cells)
        console.print(table)


def _pct(rate: float) -> str:
    return "n/a" if not math.isfinite(rate) else f"{100 * rate:.4f} %"


def _ratio(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def pareto_section(p: ParetoInputs, profiles: list[str]) -> list[str]:
    """The Pareto plot and the cost-at-matched-QoS table of every profile."""
    out = [
        "## Cost against QoS",
        "",
        f"Every baseline family's whole grid on the evaluation seeds ({p.seeds} per point; "
        f"QoS budget {100 * p.qos_budget:g} %). **Cost at matched QoS** = a policy's "
        "vGPU-hours / the cheapest baseline grid point (any family) whose violation rate "
        "is no higher than the policy's; below 1 is cheaper than every baseline setting "
        "at least as good on QoS, n/a: no baseline setting is as good. **vs mixtures**: "
        "the same against the cheapest random mixture of two baseline settings (per "
        "episode) at no worse expected QoS, the grid's convex hull: a policy that only "
        "alternates two static settings scores 1 there, not below.",
        "",
    ]
    for profile in profiles:
        out += [
            f"### `{profile}`",
            "",
            f"![{profile} Pareto fronts]({p.plots.get(profile, '')})",
            "",
        ]
        rows = [
            [
                r.policy,
                f"{r.vgpu_hours:.4f}",
                _pct(r.qos_violation_rate),
                "n/a"
                if not math.isfinite(r.cost_at_matched_qos)
                else f"{r.cost_at_matched_qos:.3f}",
                "—"
                if pd.isna(r.reference_family)
                else f"{r.reference_family}: {r.reference_params}",
                "n/a"
                if not math.isfinite(r.reference_vgpu_hours)
                else f"{r.reference_vgpu_hours:.4f}",
                _pct(r.reference_violation_rate),
                _ratio(getattr(r, "cost_at_matched_qos_mixture", math.nan)),
            ]
            for r in p.matched[p.matched["profile"] == profile].itertuples(index=False)
        ]
        header = ["policy", "vGPU-h", "QoS viol.", "cost at matched QoS"]
        header += ["cheapest baseline at no worse QoS", "its vGPU-h", "its QoS viol."]
        header += ["vs mixtures"]
        out += [_md_table(header, rows), ""]
    return out
