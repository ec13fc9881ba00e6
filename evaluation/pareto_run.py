"""``python -m evaluate --pareto``: the named policies, every family's grid, PPO models, fronts.

1. :func:`~k8s_gpu_rl.evaluation.runner.run_evaluation` runs the named policies (default
   :data:`DEFAULT_POLICIES`) exactly as ``evaluate`` does (same files);
2. every grid point of every baseline family runs on the same profiles and seeds
   (``--jobs`` processes);
3. each ``--model`` (several allowed) runs as ``ppo:<name>`` on the env it was trained on;
4. :mod:`k8s_gpu_rl.evaluation.pareto` summarises, marks the fronts and computes the cost
   at matched QoS; ``pareto.csv``, ``cost_at_matched_qos.csv``, the Pareto plots and a
   ``report.md`` that leads with them are written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from k8s_gpu_rl.baselines import calibration, grids
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.evaluation import pareto
from k8s_gpu_rl.evaluation.io import write_csv_atomic, write_text_atomic
from k8s_gpu_rl.evaluation.rollout import make_env, run_episode
from k8s_gpu_rl.evaluation.runner import EvalOutputs, EvalPlan, run_evaluation

DEFAULT_POLICIES = (
    "hpa",
    "hpa-tuned",
    "hpa-calibrated",
    "kpa-calibrated",
    "static-calibrated",
    "oracle",
)


def check_models(models: Sequence[Path]) -> list[tuple[str, Path]]:
    """(label, path) per ``--model``; labels ``ppo:<run directory name>``."""
    out: dict[str, Path] = {}
    for model in models:
        if not Path(model).exists():
            raise ConfigError(f"--model {model}: no such file or directory")
        path = Path(model)
        name = path.parent.name if path.suffix == ".zip" else path.name
        label = f"ppo:{name}"
        if label in out:
            raise ConfigError(f"two --model paths are both named {name!r}")
        out[label] = path
    return list(out.items())


def grid_tasks(plan: EvalPlan) -> list[calibration.Task]:
    env = make_env(plan.profiles[0][1], plan.backend, plan.cluster, plan.env_config)
    space = grids.reachable_shares(env)
    env.close()
    return [
        calibration.Task(
            family,
            i,
            params,
            plan.profiles,
            tuple(plan.seeds),
            plan.env_config or None,
            plan.cluster,
        )
        for family in grids.FAMILIES
        for i, params in enumerate(grids.family_grid(family, space))
    ]


def model_runs(plan: EvalPlan, models: Sequence[tuple[str, Path]]) -> pd.DataFrame:
    """One row per model, profile and seed (each on the env its run was trained on)."""
    from k8s_gpu_rl.evaluation.runner import _load_ppo, _policy, _run_env_config

    rows = []
    for label, path in models:
        ppo = _load_ppo(path)
        config = _run_env_config(path)
        for profile_label, profile in plan.profiles:
            env = make_env(profile, plan.backend, plan.cluster, config)
            policy = _policy("ppo", env, ppo)
            for seed in plan.seeds:
                kpis = run_episode(env, policy, seed).kpis
                rows.append(
                    {
                        "family": label,
                        "params": str(path),
                        "profile": profile_label,
                        "seed": seed,
                        **kpis,
                    }
                )
            env.close()
    return pd.DataFrame(rows)


def calibrated_choices() -> dict[str, str]:
    """family -> the params label of its calibrated choice (empty when there is no file)."""
    from k8s_gpu_rl.baselines.calibrated import load_calibrated

    out = {}
    for family in grids.FAMILIES:
        try:
            out[family] = grids.point_label(load_calibrated(family))
        except ConfigError:
            continue
    return out


def run_pareto(
    plan: EvalPlan,
    models: Sequence[Path] = (),
    jobs: int = 2,
    progress: bool = True,
    tasks: Sequence[calibration.Task] | None = None,
    reuse_grid: Path | None = None,
) -> EvalOutputs:
    """Everything ``--pareto`` does (module docstring); returns ``evaluate``'s outputs.
    ``tasks``: the grid points to run (default: every family's whole grid); ``reuse_grid``:
    an earlier ``pareto_runs.csv`` whose points (on every profile and seed asked for) are
    taken instead of run again. The grid's rows are checkpointed to ``pareto_runs.csv`` as
    they come, so an interrupted run resumes with ``--reuse-grid`` pointing at it."""
    checked = check_models(models)
    outputs = run_evaluation(plan, progress=progress)
    tasks = grid_tasks(plan) if tasks is None else list(tasks)
    previous = pd.read_csv(reuse_grid) if reuse_grid is not None else pd.DataFrame()
    done, todo = calibration.split_done(tasks, previous)
    out = plan.out / "pareto_runs.csv"

    def checkpoint(rows: pd.DataFrame) -> None:
        write_csv_atomic(out, pd.concat([done, rows], ignore_index=True))

    with tqdm(
        total=len(todo), desc="grid", unit="point", file=sys.stderr, disable=not progress
    ) as bar:
        fresh = calibration.run_grid(todo, jobs, bar.update, checkpoint)
    grid = pd.concat([done, fresh], ignore_index=True)
    write_csv_atomic(out, grid)
    named = outputs.runs.rename(columns={"policy": "family"})
    named["params"] = [outputs.report.policy_settings.get(p, "") for p in named["family"]]
    if checked:
        named = pd.concat([named, model_runs(plan, checked)], ignore_index=True)
    points = pd.concat(
        [pareto.summarise_points(grid, "grid"), pareto.summarise_points(named, "policy")],
        ignore_index=True,
    )
    points = pareto.mark_fronts(points)
    points["calibrated"] = pareto.calibrated_flags(points, calibrated_choices())
    write_csv_atomic(plan.out / "pareto.csv", points)
    policies = points[points["kind"] == "policy"]
    baselines = points[points["kind"].isin(pareto.BASELINE_KINDS)]
    matched = pareto.cost_at_matched_qos(policies, baselines)
    write_csv_atomic(plan.out / "cost_at_matched_qos.csv", matched)
    return _report(plan, outputs, points, matched)


def _report(
    plan: EvalPlan, outputs: EvalOutputs, points: pd.DataFrame, matched: pd.DataFrame
) -> EvalOutputs:
    from k8s_gpu_rl.evaluation import plots, report

    budget = make_env(plan.profiles[0][1], plan.backend, plan.cluster, plan.env_config)
    qos_budget = budget.config.reward.qos_budget
    budget.close()
    figures: dict[str, str] = {}
    for label, _ in plan.profiles:
        path = f"plots/{label}_pareto.png"
        plots.plot_pareto(points[points["profile"] == label], label, qos_budget, plan.out / path)
        figures[label] = path
    inputs = replace(
        outputs.report,
        pareto=report.ParetoInputs(points, matched, figures, qos_budget, len(plan.seeds)),
    )
    write_text_atomic(plan.out / "report.md", report.render_markdown(inputs))
    outputs.report = inputs
    return outputs
