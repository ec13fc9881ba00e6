"""Tune the HPA baseline: sweep CPU targets and scale-down windows, write tuned_hpa.yaml.

    python scripts/tune_hpa.py [--profile mixed] [--seeds 0,1,2] [--targets 50,60,...]
                               [--windows 30,60,120,300] [--budget-pp 0.5]
                               [--out baselines/tuned_hpa.yaml]

Chooses the fewest mean vGPU-hours whose mean QoS-violation rate is at most the default
HPA's (CPU 70 %, 300 s window) on the same seeds plus ``--budget-pp`` percentage points
(see ``baselines/hpa_tuned.py``), prints the sweep table and writes the YAML that the
``hpa-tuned`` baseline loads.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tqdm import tqdm  # noqa: E402

from k8s_gpu_rl.baselines import hpa_tuned  # noqa: E402
from k8s_gpu_rl.errors import K8sGpuRlError  # noqa: E402
from k8s_gpu_rl.evaluation.io import write_text_atomic  # noqa: E402
from k8s_gpu_rl.loadprofiles import load_profile  # noqa: E402


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise K8sGpuRlError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise K8sGpuRlError(f"{option}: expected at least one value")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tune_hpa.py", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="mixed", help="training load profile (name or YAML path)")
    p.add_argument("--seeds", default=",".join(map(str, hpa_tuned.DEFAULT_SEEDS)))
    p.add_argument(
        "--targets",
        default=",".join(map(str, hpa_tuned.DEFAULT_CPU_TARGETS)),
        help="CPU targets, %%",
    )
    p.add_argument(
        "--windows",
        default=",".join(map(str, hpa_tuned.DEFAULT_WINDOWS_S)),
        help="scale-down windows, s",
    )
    p.add_argument(
        "--budget-pp",
        type=float,
        default=hpa_tuned.DEFAULT_BUDGET_PP,
        help="allowed QoS-violation increase over the default HPA, percentage points",
    )
    p.add_argument("--cluster", default=None, help="cluster config name or YAML (default rtx3080)")
    p.add_argument("--out", type=Path, default=hpa_tuned.TUNED_PATH)
    return p.parse_args(argv)


def print_table(result: hpa_tuned.SweepResult) -> None:
    table = Table(
        title=f"HPA sweep on {result.profile}, seeds {list(result.seeds)} "
        f"(budget: QoS violations <= {100 * result.budget:.3f} %)"
    )
    for col in ("target %", "window s", "vGPU-h", "QoS viol. %", "p95 ms", "ok"):
        table.add_column(col, justify="right")
    for r in result.rows:
        style = "bold green" if r == result.chosen else None
        table.add_row(
            str(r.target),
            str(r.scale_down_window_s),
            f"{r.vgpu_hours:.4f}",
            f"{100 * r.qos_violation_rate:.3f}",
            f"{r.p95_latency_ms:.1f}",
            "yes" if r.within_budget else "no",
            style=style,
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        load_profile(args.profile)
        seeds = _ints(args.seeds, "--seeds")
        targets, windows = _ints(args.targets, "--targets"), _ints(args.windows, "--windows")
        total = len({(t, w) for t in targets for w in windows} | {hpa_tuned.HPA_DEFAULT})
        with tqdm(total=total, desc="sweep", unit="config") as bar:
            result = hpa_tuned.sweep(
                args.profile, seeds, targets, windows, args.budget_pp, args.cluster, bar.update
            )
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(result)
    command = "python scripts/tune_hpa.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    write_text_atomic(args.out, hpa_tuned.tuned_yaml(result, command.strip()))
    c = result.chosen
    print(
        f"chosen: CPU target {c.target} %, scale-down window {c.scale_down_window_s} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
