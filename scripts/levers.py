"""Measure issue-12 levers: trained runs beside baselines and a baseline front, at matched QoS.

    python scripts/levers.py --run default=runs/ppo-mixed-0-... --run masked=runs/... \\
        --profile mixed,double_flash,slow_ramp --repeats 5 --out results/levers

Each ``--run`` (a run directory) is evaluated on the env its run trained on (the run's
``env:`` section minus the training-only ``initial_share``), bound to that env so that a
MaskablePPO model reads ``action_masks()``; ``--policy`` baselines run as ``evaluate``
runs them; ``--front`` grid points (``k8s_gpu_rl.baselines.grids``, a family and
optional ``key=value`` filters, e.g. ``hpa-calibrated:metric=rps``) make the baseline
front, together with the ``--policy`` baselines' own points (so a baseline's ratio is
at most 1: it is matched against itself too). Seeds are ``evaluate``'s (1000, 1001, ...). Writes ``runs.csv`` (one row per
policy, profile and seed), ``points.csv`` (mean and bootstrap CI per point) and
``matched.csv`` (cost at matched QoS of every run and ``--policy`` against the front,
:func:`k8s_gpu_rl.evaluation.pareto.cost_at_matched_qos`), and prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from k8s_gpu_rl.errors import K8sGpuRlError
from k8s_gpu_rl.io import atomic_write

BASE_SEED = 1000
TRAINING_ONLY = ("initial_share",)


def run_env_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``env:`` section without the training-only fields."""
    from k8s_gpu_rl.config import read_yaml

    data = read_yaml(Path(run_dir) / "config.yml") or {}
    env = dict(data.get("env") or {})
    return {k: v for k, v in env.items() if k not in TRAINING_ONLY}


def ppo_rows(label: str, run_dir: Path, profiles: list[str], seeds: list[int]) -> list[dict]:
    from k8s_gpu_rl.agents.policy import PPOPolicy
    from k8s_gpu_rl.evaluation.rollout import make_env, run_episode

    policy = PPOPolicy.load(run_dir)
    rows = []
    for profile in profiles:
        env = make_env(profile, config=run_env_config(run_dir))
        policy.bind(env)
        rows += [_row(label, str(run_dir), profile, s, run_episode(env, policy, s)) for s in seeds]
        env.close()
    return rows


def baseline_rows(
    name: str, params: dict[str, Any], profiles: list[str], seeds: list[int], label: str
) -> list[dict]:
    from k8s_gpu_rl.baselines import make_policy
    from k8s_gpu_rl.evaluation.rollout import make_env, run_episode

    rows = []
    for profile in profiles:
        env = make_env(profile)
        policy = make_policy(name, env, **params)
        rows += [_row(name, label, profile, s, run_episode(env, policy, s)) for s in seeds]
        env.close()
    return rows


def _row(family: str, params: str, profile: str, seed: int, episode: Any) -> dict[str, Any]:
    k = episode.kpis
    return {
        "family": family,
        "params": params,
        "profile": profile,
        "seed": seed,
        "vgpu_hours": k["vgpu_hours"],
        "qos_violation_rate": k["qos_violation_rate"],
        "p95_latency_ms": k["p95_latency_ms"],
        "mean_replicas": k["mean_replicas"],
    }


def front_points(spec: str) -> list[tuple[str, dict[str, Any], str]]:
    """``family[:key=value,...]`` as (policy name, params, label) per matching grid point."""
    from k8s_gpu_rl.baselines import grids
    from k8s_gpu_rl.baselines.calibration import POLICY_OF
    from k8s_gpu_rl.evaluation.rollout import make_env

    family, _, filters = spec.partition(":")
    wanted = dict(f.split("=", 1) for f in filters.split(",") if f)
    env = make_env("mixed")
    space = grids.reachable_shares(env)
    env.close()
    return [
        (POLICY_OF[family], p, f"{family} {grids.point_label(p)}")
        for p in grids.family_grid(family, space)
        if all(str(p.get(k)) == v for k, v in wanted.items())
    ]


def measure(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from k8s_gpu_rl.evaluation import pareto

    profiles = [p for p in args.profile.split(",") if p]
    seeds = list(range(BASE_SEED, BASE_SEED + args.repeats))
    runs = [r.split("=", 1) for r in args.run]
    grid = [pt for spec in args.front for pt in front_points(spec)]
    named = [p for p in args.policy.split(",") if p]
    policy_rows: list[dict] = []
    grid_rows: list[dict] = []
    with tqdm(total=len(runs) + len(named) + len(grid), unit="policy", file=sys.stderr) as bar:
        for label, path in runs:
            policy_rows += ppo_rows(label, Path(path), profiles, seeds)
            bar.update()
        for name in named:
            policy_rows += baseline_rows(name, {}, profiles, seeds, name)
            bar.update()
        for name, params, label in grid:
            grid_rows += baseline_rows(name, params, profiles, seeds, label)
            bar.update()
    policies, points = pd.DataFrame(policy_rows), pd.DataFrame(grid_rows)
    policies["kind"], points["kind"] = "policy", "grid"
    if args.front_runs is not None:  # a front measured before (its runs.csv), same seeds
        earlier = pd.read_csv(args.front_runs)
        earlier = earlier[(earlier["kind"] == "grid") & earlier["profile"].isin(profiles)]
        points = pd.concat([points, earlier[earlier["seed"].isin(seeds)]], ignore_index=True)
    summary = pareto.summarise_points(policies, "policy") if len(policies) else policies
    if points.empty:
        return policies, summary, pd.DataFrame()
    front = pareto.summarise_points(points, "grid")
    baselines = summary[summary["family"].isin(named)].assign(kind="grid")
    matched = pareto.cost_at_matched_qos(summary, pd.concat([front, baselines]))
    return pd.concat([policies, points]), pd.concat([summary, front]), matched


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/levers.py", description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", default=[], help="LABEL=RUN_DIR (repeatable)")
    p.add_argument("--policy", default="hpa,static", help="baselines, comma-separated")
    p.add_argument("--front", action="append", default=[], help="family[:key=value,...]")
    p.add_argument("--front-runs", type=Path, help="a runs.csv whose grid rows join the front")
    p.add_argument("--profile", default="mixed", help="profiles, comma-separated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results/levers"))
    args = p.parse_args(argv)
    try:
        runs, points, matched = measure(args)
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("runs", runs), ("points", points), ("matched", matched)):
        atomic_write(args.out / f"{name}.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False))
    table = points[points["kind"] == "policy"]
    if table.empty:
        return 0
    table = table[["family", "profile", "vgpu_hours", "qos_violation_rate"]]
    if not matched.empty:
        table = table.merge(
            matched[["policy", "profile", "cost_at_matched_qos", "reference_params"]].rename(
                columns={"policy": "family"}
            ),
            on=["family", "profile"],
        )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
