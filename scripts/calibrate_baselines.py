"""Calibrate the baselines: search each family's grid on the training profiles, write the choice.

    python scripts/calibrate_baselines.py [--family hpa-calibrated,...] [--budget 480]
                                          [--profiles low,medium,high,mixed] [--jobs 2]
                                          [--out baselines/calibrated.yaml] [--quick]

Runs every grid point of every family (``baselines/grids.py``) on the training profiles
with tuning seeds 0, 1, ... (disjoint from ``evaluate``'s 1000 + i), as many seeds as
the family's share of the tuning budget allows (the same budget of grid points x seeds
for every family), applies the choice rule (``baselines/calibration.py``: the fewest
vGPU-hours within the env's QoS budget on every training profile), prints the chosen
points and writes ``calibrated.yaml`` with the whole grid in ``calibrated_grid.csv``
beside it; the entries of families not named in ``--family`` are kept from an existing
file made under the same settings. ``--quick`` runs a tiny grid (tests). A user mistake prints ``error: ...``
and exits with 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from k8s_gpu_rl.baselines import calibration, grids  # noqa: E402
from k8s_gpu_rl.baselines.calibrated import CALIBRATED_PATH  # noqa: E402
from k8s_gpu_rl.config import read_yaml  # noqa: E402
from k8s_gpu_rl.envs.config import EnvConfig  # noqa: E402
from k8s_gpu_rl.errors import K8sGpuRlError  # noqa: E402
from k8s_gpu_rl.evaluation.io import write_csv_atomic, write_text_atomic  # noqa: E402
from k8s_gpu_rl.evaluation.rollout import make_env  # noqa: E402
from k8s_gpu_rl.loadprofiles import load_profile  # noqa: E402

DEFAULT_BUDGET = 480
"""Grid points x seeds per family: the 160-point HPA and KPA grids get 3 seeds each."""


def _names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="calibrate_baselines.py", description=__doc__.splitlines()[0])
    p.add_argument("--family", default=",".join(grids.FAMILIES), help="families, comma list")
    p.add_argument("--profiles", default=",".join(calibration.TRAINING_PROFILES))
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="grid points x seeds")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--cluster", default=None, help="cluster config name or YAML (default rtx3080)")
    p.add_argument("--out", type=Path, default=CALIBRATED_PATH)
    p.add_argument("--quick", action="store_true", help="a tiny grid, for tests")
    return p.parse_args(argv)


def _grid(family: str, space: grids.GridSpace, quick: bool) -> list[dict]:
    grid = grids.family_grid(family, space)
    if not quick:
        return grid
    keep = {  # two points per family: enough to exercise the rule
        "hpa-calibrated": lambda p: p["metric"] == "rps" and p["target"] in (60.0, 120.0),
        "kpa-calibrated": lambda p: p["metric"] == "concurrency" and p["target"] in (2.0, 6.0),
        "static-calibrated": lambda p: p["replicas"] == 1,
        "hpa-tuned": lambda p: p["target"] in (70.0, 150.0),
    }[family]
    return [p for p in grid if keep(p) and p.get("gpucores", 50) in (30, 50)][:2] or grid[:2]


def _keep_others(
    out: Path,
    grid_csv: Path,
    grid: pd.DataFrame,
    families: list[str],
    qos_budget: float,
    profiles: list[str],
    budget: int,
) -> tuple[dict, pd.DataFrame]:
    """The families of an existing calibrated.yaml (and grid CSV) that this run did not
    recompute, when it was made under the same QoS budget, profiles and tuning budget."""
    if not out.exists() or not grid_csv.exists():
        return {}, grid
    old = read_yaml(out) or {}
    same = (old.get("qos_budget"), old.get("training_profiles"), old.get("tuning_budget")) == (
        qos_budget,
        profiles,
        budget,
    )
    if not same:
        print(f"note: {out} was made under other settings; its other families are dropped")
        return {}, grid
    kept = {f: e for f, e in (old.get("families") or {}).items() if f not in families}
    rows = pd.read_csv(grid_csv)
    rows = rows[rows["family"].isin(list(kept))]
    return kept, pd.concat([rows, grid], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        families = _names(args.family)
        for f in families:
            grids.check_family(f)
        profiles = tuple((name, load_profile(name)) for name in _names(args.profiles))
        space = grids.reachable_shares(make_env(profiles[0][1], cluster=args.cluster))
        qos_budget = EnvConfig().reward.qos_budget
        tasks, plan = [], {}
        for family in families:
            grid = _grid(family, space, args.quick)
            n_seeds = 1 if args.quick else grids.seeds_for(len(grid), args.budget)
            seeds = tuple(range(n_seeds))
            plan[family] = (grid, seeds)
            tasks += [
                calibration.Task(family, i, p, profiles, seeds, cluster=args.cluster)
                for i, p in enumerate(grid)
            ]
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tqdm(total=len(tasks), desc="grid points", unit="point") as bar:
        runs = calibration.run_grid(tasks, args.jobs, bar.update)
    table = calibration.point_table(runs, qos_budget)
    choices, chosen = {}, {}
    for family in families:
        grid, seeds = plan[family]
        row = calibration.choose(table[table["family"] == family])
        chosen[family] = int(row["point"])
        choices[family] = calibration.choice_entry(
            family, row, grid[int(row["point"])], len(grid), seeds
        )
        flag = "" if row["within_budget"] else "  (NOT within the QoS budget)"
        print(
            f"{family}: {row['params']} -> {row['vgpu_hours_total']:.4f} vGPU-h, worst "
            f"violation rate {100 * row['worst_violation_rate']:.4f} %"
            f" ({len(grid)} points x {len(seeds)} seeds){flag}"
        )
    command = "python scripts/calibrate_baselines.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    names = [label for label, _ in profiles]
    budget = args.budget if not args.quick else 0
    grid_csv = args.out.with_name(args.out.stem + "_grid.csv")
    grid = calibration.grid_table(table, chosen)
    kept, grid = _keep_others(args.out, grid_csv, grid, families, qos_budget, names, budget)
    write_text_atomic(
        args.out,
        calibration.calibrated_yaml(
            {**kept, **choices}, qos_budget, names, budget, command.strip()
        ),
    )
    write_csv_atomic(grid_csv, grid)
    print(f"wrote {args.out} and {grid_csv} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
