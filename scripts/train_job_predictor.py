"""Train the job run-time / memory predictor and print its cross-validation table.

    python scripts/train_job_predictor.py [--runs 3000] [--seed 0] [--out ~/.cache/k8s-gpu-rl/job-predictor.pkl]
                                          [--kind random-forest]

Generates a history of past runs from the simulator's ground truth (every shipped model on
every shipped GPU type, with noise), cross-validates random forest, gradient boosting
(LightGBM) and a linear model (MAPE and R^2 of run time per model family; ``seen``:
shuffled K-fold, ``held-out``: the family left out of training), prints the table as
Markdown, and saves the ``--kind`` model trained on the whole history to ``--out`` (load
it with ``GpuJobSchedulingEnv(predictor=PATH)``). No weights are shipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from k8s_gpu_rl.envs.jobs.predictor import KINDS, JobPredictor, cross_validate, generate_history
from k8s_gpu_rl.errors import K8sGpuRlError

DEFAULT_OUT = Path.home() / ".cache" / "k8s-gpu-rl" / "job-predictor.pkl"


def table(cv: pd.DataFrame) -> str:
    """Markdown: one row per (split, family), MAPE / R^2 per kind; a mean row per split."""
    lines = ["| split | family | " + " | ".join(f"{k} MAPE % | {k} R²" for k in KINDS) + " |"]
    lines.append("|---|---|" + "---|---|" * len(KINDS))
    for split in ("seen", "held-out"):
        part = cv[cv["split"] == split]
        for fam in sorted(set(part["family"])) + ["(mean)"]:
            cells = []
            for kind in KINDS:
                rows = part[part["kind"] == kind]
                rows = rows if fam == "(mean)" else rows[rows["family"] == fam]
                cells.append(f"{rows['mape_pct'].mean():.1f} | {rows['r2'].mean():.2f}")
            lines.append(f"| {split} | {fam} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--runs", type=int, default=3000, help="runs in the generated history (default 3000)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--kind", default="random-forest", help=f"model to save: {', '.join(KINDS)}")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where to save it (default {DEFAULT_OUT})"
    )
    args = p.parse_args(argv)
    try:
        if args.runs < 50:
            raise K8sGpuRlError(f"--runs must be >= 50, got {args.runs}")
        history = generate_history(args.runs, np.random.default_rng(args.seed))
        cv = pd.concat(
            [cross_validate(history, k, args.folds, args.seed) for k in KINDS], ignore_index=True
        )
        print(table(cv))
        JobPredictor(args.kind, args.seed).fit(history).save(args.out)
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nsaved the {args.kind} predictor ({args.runs} runs) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
