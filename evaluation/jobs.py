"""Compare job-scheduling policies on a queue: ``python -m evaluate --env jobs``.

    python -m evaluate --env jobs --policy fifo,sjf-predicted,fgd,optimal-allocation,ppo
                       --queue memory-heavy [--repeats 5] [--seed 1000] [--model runs/<run>]

Run ``r`` of every policy uses seed ``--seed + r``, so all policies meet the same true
memory needs and run times. Writes into ``--out``: ``runs.csv`` (one row per run: the
KPIs of :data:`KPIS`), ``summary.csv`` (mean and 95 % CI per policy), ``comparisons.csv``
(each policy against ``optimal-allocation`` and ``fifo``: Welch's t-test, Hedges' g, from
:mod:`k8s_gpu_rl.evaluation.stats`), ``jobs/<policy>-<seed>.csv`` (per-job records),
``gantt-<policy>.png`` (the first seed of each policy), ``kpis.png`` and ``report.md``.

A run that deadlocks or runs out of time never finishes its queue: its ``makespan_s``,
``mean_jct_s`` and ``p95_jct_s`` are infinite, and the statistics leave such runs out
(their count is in ``deadlocked``). Completion times are over completed jobs; jobs given up
after their back-off limit are counted in ``failed_jobs``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from k8s_gpu_rl.baselines.jobs import BASELINES, POLICIES, make_job_policy
from k8s_gpu_rl.baselines.jobs.bound import clairvoyant_bound
from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.envs.jobs.env import GpuJobSchedulingEnv
from k8s_gpu_rl.envs.jobs.sim.state import Phase
from k8s_gpu_rl.errors import EXIT_OK, ConfigError, run_command
from k8s_gpu_rl.evaluation.io import write_csv_atomic, write_text_atomic
from k8s_gpu_rl.evaluation.stats import hedges_g, mean_ci, welch_test

KPIS = (
    "makespan_s",
    "mean_jct_s",
    "p95_jct_s",
    "mean_slowdown",
    "mean_queueing_s",
    "oom_failures",
    "failed_jobs",
    "completed_jobs",
    "deadlocked",
    "gpu_allocation",
    "gpu_busy",
    "fragmentation",
    "transfer_s",
    "reservation_violations",
)
HEADLINE = ("makespan_s", "mean_jct_s", "p95_jct_s", "oom_failures", "deadlocked")


@dataclass(frozen=True)
class JobEvalPlan:
    """What ``evaluate --env jobs`` runs."""

    policies: tuple[str, ...]
    queue: str
    repeats: int
    seed: int
    out: Path
    model: Path | None = None
    world: str | None = None
    command: str = ""


def check_policies(names: list[str]) -> tuple[str, ...]:
    allowed = [*POLICIES, "ppo"]
    for name in names:
        if name not in allowed:
            raise ConfigError(
                f"policy {name!r} is unknown{suggest(name, allowed)}; allowed: {', '.join(allowed)}"
            )
    return tuple(names)


def _policy(name: str, env: GpuJobSchedulingEnv, model: Path | None) -> Any:
    if name == "ppo":
        from k8s_gpu_rl.agents.jobs import load_masked_policy

        return load_masked_policy(model, env)
    return make_job_policy(name, env)


def run_episode(
    env: GpuJobSchedulingEnv, policy: Any, seed: int
) -> tuple[dict[str, float], pd.DataFrame]:
    """One run: the KPIs and the per-job table."""
    obs, _ = env.reset(seed=seed)
    done, decisions, t0 = False, 0, time.perf_counter()
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        done, decisions = terminated or truncated, decisions + 1
    kpis = episode_kpis(env)
    kpis["decisions"] = decisions
    kpis["wall_s"] = time.perf_counter() - t0
    return kpis, job_table(env)


def job_table(env: GpuJobSchedulingEnv) -> pd.DataFrame:
    w = env.world
    rows = []
    for j in w.jobs:
        rows.append(
            {
                "job_id": j.spec.job_id,
                "model_name": j.spec.model_name,
                "gpus": j.spec.gpus,
                "arrival_s": j.spec.arrival_s,
                "first_placed_s": j.first_placed_s,
                "start_s": j.start_s,
                "end_s": j.end_s,
                "phase": j.phase.name.lower(),
                "failures": j.failures,
                "transfer_s": j.transfer_s,
                "segments": ";".join(
                    f"{a:.0f}-{b:.0f}@{c}:{'/'.join(map(str, g))}:{o}"
                    for a, b, c, g, o in j.segments
                ),
            }
        )
    return pd.DataFrame(rows)


def episode_kpis(env: GpuJobSchedulingEnv) -> dict[str, float]:
    """The run's KPIs (see the module docstring for the infinite ones)."""
    w = env.world
    bound = clairvoyant_bound(w)
    done = [j for j in w.jobs if j.phase == Phase.DONE]
    finished = w.done() and not w.deadlocked
    jct = np.array([j.end_s - j.spec.arrival_s for j in done])
    model_min = _min_runtimes(env)
    slow = [(j.end_s - j.spec.arrival_s) / model_min[w.index[j.spec.job_id]] for j in done]
    placed = [j.first_placed_s - j.spec.arrival_s for j in w.jobs if j.first_placed_s >= 0]
    ig = w.integrals
    span = max(ig.time_s, 1e-9)
    inf = math.inf
    return {
        "makespan_s": w.now_s if finished else inf,
        "mean_jct_s": float(jct.mean()) if finished and len(jct) else inf,
        "p95_jct_s": float(np.percentile(jct, 95)) if finished and len(jct) else inf,
        "mean_slowdown": float(np.mean(slow)) if finished and slow else inf,
        "mean_queueing_s": float(np.mean(placed)) if placed else math.nan,
        "oom_failures": w.oom_failures,
        "failed_jobs": sum(1 for j in w.jobs if j.phase == Phase.FAILED),
        "completed_jobs": len(done),
        "deadlocked": int(w.deadlocked),
        "deadlock_s": w.deadlock_s,
        "gpu_allocation": ig.allocated / span,
        "gpu_busy": ig.busy / span,
        "fragmentation": ig.fragmented / span,
        "transfer_s": sum(j.transfer_s for j in w.jobs),
        "reservation_violations": w.reservation_violations,
        "bound_makespan_s": bound["makespan_s"],
        "bound_mean_jct_s": bound["mean_jct_s"],
    }


def _min_runtimes(env: GpuJobSchedulingEnv) -> list[float]:
    from k8s_gpu_rl.envs.jobs.sim.truth import GPU_TYPES, MODELS, mean_runtime_s

    w = env.world
    out = []
    for j in w.jobs:
        m = MODELS[j.spec.model_name]
        best = min(
            mean_runtime_s(
                m, GPU_TYPES[t], j.spec.data_size, j.spec.epoch, j.spec.gpus, w.config.truth
            )
            for t in env.gpu_types
        )
        out.append(best * j.runtime_noise + w.config.load_s)
    return out


def run_plan(plan: JobEvalPlan, progress: bool = True) -> pd.DataFrame:
    """Every policy x repeat; returns runs.csv's table (also written with the rest)."""
    env = GpuJobSchedulingEnv(plan.queue, world=plan.world)
    rows, firsts = [], {}
    todo = [(p, r) for p in plan.policies for r in range(plan.repeats)]
    for name, r in tqdm(todo, desc="runs", disable=not progress, unit="run"):
        policy = _policy(name, env, plan.model)
        seed = plan.seed + r
        kpis, jobs = run_episode(env, policy, seed)
        rows.append({"policy": name, "queue": plan.queue, "seed": seed, **kpis})
        write_csv_atomic(plan.out / "jobs" / f"{name}-{seed}.csv", jobs)
        if r == 0:
            firsts[name] = (jobs, env.world_config)
    runs = pd.DataFrame(rows)
    write_outputs(plan, runs, firsts)
    return runs


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, group in runs.groupby("policy", sort=False):
        row: dict[str, Any] = {"policy": name, "runs": len(group)}
        for k in KPIS:
            ci = mean_ci(group[k].to_numpy(dtype=float))
            row[k], row[f"{k}_ci95"], row[f"{k}_n"] = ci.mean, ci.half_width, ci.n
        rows.append(row)
    return pd.DataFrame(rows)


def compare(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Every other policy against ``reference``: Welch's t and p, Hedges' g (finite runs)."""
    if reference not in set(runs["policy"]):
        return pd.DataFrame()
    ref = runs[runs["policy"] == reference]
    rows = []
    for name, group in runs.groupby("policy", sort=False):
        if name == reference:
            continue
        for k in HEADLINE[:3] + ("oom_failures",):
            a, b = group[k].to_numpy(dtype=float), ref[k].to_numpy(dtype=float)
            res = welch_test(a, b)
            rows.append(
                {
                    "policy": name,
                    "reference": reference,
                    "kpi": k,
                    "t": res.t,
                    "p_value": res.p_value,
                    "hedges_g": hedges_g(a, b),
                }
            )
    return pd.DataFrame(rows)


def write_outputs(plan: JobEvalPlan, runs: pd.DataFrame, firsts: dict[str, Any]) -> None:
    from k8s_gpu_rl.evaluation import jobs_plots

    out = plan.out
    write_csv_atomic(out / "runs.csv", runs)
    summary = summarise(runs)
    write_csv_atomic(out / "summary.csv", summary)
    comparisons = pd.concat(
        [compare(runs, "optimal-allocation"), compare(runs, "fifo")], ignore_index=True
    )
    write_csv_atomic(out / "comparisons.csv", comparisons)
    for name, (jobs, world) in firsts.items():
        jobs_plots.plot_gantt(jobs, world, f"{name} on {plan.queue}", out / f"gantt-{name}.png")
    jobs_plots.plot_kpis(summary, plan.queue, out / "kpis.png")
    write_text_atomic(out / "report.md", render_report(plan, runs, summary, comparisons))


def _fmt(mean: float, ci: float, n: int, total: int) -> str:
    if n == 0:
        return "never finishes" if total else "-"
    text = f"{mean:,.0f}" if abs(mean) >= 100 else f"{mean:.2f}"
    if math.isfinite(ci):
        text += f" ± {ci:,.0f}" if abs(mean) >= 100 else f" ± {ci:.2f}"
    return text + (f" (n={n})" if n < total else "")


def render_report(
    plan: JobEvalPlan, runs: pd.DataFrame, summary: pd.DataFrame, comparisons: pd.DataFrame
) -> str:
    lines = [
        f"# Job scheduling on `{plan.queue}`",
        "",
        f"`{plan.command}`" if plan.command else "",
        "",
        f"{plan.repeats} runs per policy (seeds {plan.seed}..{plan.seed + plan.repeats - 1}); mean ± 95 % CI "
        "over the runs that finished their queue (n = how many, when fewer than all).",
        "",
        "| policy | makespan (s) | mean JCT (s) | p95 JCT (s) | OOM failures | failed jobs | deadlocked runs | GPU allocation | fragmentation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        total = int(r["runs"])
        dead = int(runs[runs["policy"] == r["policy"]]["deadlocked"].sum())
        lines.append(
            f"| {r['policy']} | {_fmt(r['makespan_s'], r['makespan_s_ci95'], r['makespan_s_n'], total)} "
            f"| {_fmt(r['mean_jct_s'], r['mean_jct_s_ci95'], r['mean_jct_s_n'], total)} "
            f"| {_fmt(r['p95_jct_s'], r['p95_jct_s_ci95'], r['p95_jct_s_n'], total)} "
            f"| {r['oom_failures']:.1f} | {r['failed_jobs']:.1f} | {dead} of {total} "
            f"| {r['gpu_allocation']:.0%} | {r['fragmentation']:.0%} |"
        )
    bound = runs[["bound_makespan_s", "bound_mean_jct_s"]].mean()
    lines += [
        f"| clairvoyant bound | ≥ {bound['bound_makespan_s']:,.0f} | ≥ {bound['bound_mean_jct_s']:,.0f} | | | | | | |",
        "",
        "## Welch's t-tests",
        "",
        "| policy | against | KPI | t | p | Hedges' g |",
        "|---|---|---|---|---|---|",
    ]
    for _, c in comparisons.iterrows():
        lines.append(
            f"| {c['policy']} | {c['reference']} | {c['kpi']} | {c['t']:.2f} | {c['p_value']:.3g} | {c['hedges_g']:.2f} |"
        )
    lines += ["", "Gantt charts: " + ", ".join(f"`gantt-{p}.png`" for p in plan.policies), ""]
    return "\n".join(lines)


DEFAULT_POLICIES = BASELINES


def main_from_args(args: Any, command: str) -> int:
    """``python -m evaluate --env jobs ...`` (the parsed options of :mod:`evaluation.cli`)."""
    from datetime import datetime

    def work() -> int:
        names = [
            p.strip()
            for item in (args.policy or [",".join(DEFAULT_POLICIES)])
            for p in item.split(",")
            if p.strip()
        ]
        if args.repeats < 1:
            raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        plan = JobEvalPlan(
            policies=check_policies(names),
            queue=args.queue or "memory-heavy",
            repeats=args.repeats,
            seed=args.seed,
            out=args.out or Path("results") / f"jobs-{stamp}",
            model=args.model,
            world=args.cluster,
            command=command,
        )
        from k8s_gpu_rl.envs.jobs.sim.jobs import queue_path

        queue_path(plan.queue)  # a bad name fails before any run
        runs = run_plan(plan, progress=not args.no_progress)
        summary = summarise(runs)
        cols = ["policy", "makespan_s", "mean_jct_s", "p95_jct_s", "oom_failures", "deadlocked"]
        print(summary[cols].to_string(index=False))
        print(f"results: {plan.out}")
        return EXIT_OK

    return run_command(work, "\ninterrupted")
