"""Print the simulator's figures for the user's baseline run beside the measured ones.

    python scripts/calibrate.py [--cluster rtx3080] [--profile low] [--seeds 5] [--tolerance 0.10]

Exits 1 when a figure is off by more than the tolerance (default 10 %, the calibration
target), so it doubles as a check after changing a cluster config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8s_gpu_rl.envs.sim.calibration import UNITS, compare, simulate_baseline  # noqa: E402
from k8s_gpu_rl.envs.sim.config import load_cluster_config  # noqa: E402
from k8s_gpu_rl.errors import K8sGpuRlError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="rtx3080", help="shipped cluster name or YAML path")
    parser.add_argument("--profile", default="low", help="load profile name or YAML path")
    parser.add_argument("--seeds", type=int, default=5, help="independent runs to pool")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed relative error")
    args = parser.parse_args(argv)
    try:
        config = load_cluster_config(args.cluster)
        figures = simulate_baseline(config, args.profile, seeds=tuple(range(args.seeds)))
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"cluster {config.name}, profile {args.profile}, {args.seeds} runs "
        f"(success rate {figures['success_rate']:.2%})\n"
    )
    print(f"{'figure':<18}{'measured':>16}{'simulated':>16}{'error':>8}")
    worst = 0.0
    for c in compare(figures):
        unit = UNITS[c.name]
        print(
            f"{c.name:<18}{c.measured:>9.1f} {unit:<6}{c.simulated:>9.1f} {unit:<6}{c.relative_error:>+8.1%}"
        )
        worst = max(worst, abs(c.relative_error))
    verdict = "within" if worst <= args.tolerance else "OUTSIDE"
    print(f"\nworst error {worst:.1%}: {verdict} the {args.tolerance:.0%} target")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
