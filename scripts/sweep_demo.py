"""End to end: measure a model locally, fit the simulator to it, study autoscaling it.

    python scripts/sweep_demo.py [--task captioning] [--out /tmp/sweep-demo]
        [--config cpu-constrained] [--batch-sizes 1,2,4,6,8] [--fit-batch-sizes 1,4,8]
        [--repeats 3] [--policies hpa,kpa,static] [--profile low] [--eval-repeats 2]
        [--speed 1.0]

1. ``python -m sweep generate`` + ``run --backend local`` for the task at one
   configuration (skipped when ``--out`` already holds its results);
2. ``python -m sweep fit`` on ``--fit-batch-sizes``, printing measured against simulated
   batch latency for every measured size (the others are held out);
3. ``python -m evaluate`` of a few baselines on the shipped rtx3080 cluster (MobileNetV4:
   transport dominates latency) and on the fitted one (the model dominates), printing
   both tables. ``--speed`` sets the fitted GPU's speed relative to where the timings
   were measured (1: as measured; the local timings are CPU timings).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="captioning")
    p.add_argument("--out", type=Path, default=Path("/tmp/sweep-demo"))
    p.add_argument("--config", default="cpu-constrained")
    p.add_argument("--batch-sizes", default="1,2,4,6,8")
    p.add_argument("--fit-batch-sizes", default="1,4,8")
    p.add_argument("--repeats", default="3")
    p.add_argument("--policies", default="hpa,kpa,static")
    p.add_argument("--profile", default="low")
    p.add_argument("--eval-repeats", default="2")
    p.add_argument("--speed", type=float, default=1.0)
    a = p.parse_args()
    out = a.out.resolve()
    if not (out / "experiment_results.csv").exists():
        _sh("-m", "sweep", "generate", "--out", str(out), "--tasks", a.task, "--configs",
            a.config, "--batch-sizes", a.batch_sizes, "--repeats", a.repeats)  # fmt: skip
        _sh("-m", "sweep", "run", "--backend", "local", "--out", str(out), "--tasks", a.task)
    _sh("-m", "sweep", "fit", "--out", str(out), "--task", a.task, "--reference", a.config,
        "--fit-batch-sizes", a.fit_batch_sizes)  # fmt: skip
    fitted = out / "fit" / f"{a.task}.yaml"
    if a.speed != 1.0:
        data = yaml.safe_load(fitted.read_text())
        for node in data["nodes"]:
            for gpu in node["gpus"]:
                gpu["speed"] = a.speed
        fitted = fitted.with_name(f"{a.task}-speed{a.speed:g}.yaml")
        fitted.write_text(yaml.safe_dump(data, sort_keys=False))
    for cluster, name in (("rtx3080", "rtx3080"), (str(fitted), fitted.stem)):
        _sh("-m", "evaluate", "--policy", a.policies, "--profile", a.profile, "--repeats",
            a.eval_repeats, "--cluster", cluster, "--out", str(out / f"evaluate-{name}"),
            "--no-progress")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
