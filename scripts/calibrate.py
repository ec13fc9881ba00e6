"""Print the simulator's figures beside the user's measurements, for both calibrations.

    python scripts/calibrate.py [--cluster rtx3080] [--profile low] [--seeds 5]
                                [--tolerance 0.10] [--client-cluster rtx3080-locust-json]
                                [--duration 300] [--fit]

1. The baseline: the default cluster on the ``low`` profile against the user's 10-user
   figures (every figure within ``--tolerance``, default 10 %).
2. The client-bound runs: the user's Locust table (JSON bodies, one Locust process,
   ``between(1, 2)``) against ``--client-cluster`` at each load level (throughput within
   20 %, p50 within 30 %; p95 for information). ``--fit`` also prints the documented
   search for that cluster's client cost (``envs/sim/calibration.py``).

Exits 1 when either calibration is outside its bounds, 2 on a user's mistake, so it
doubles as a check after changing a cluster config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8s_gpu_rl.envs.sim.calibration import (  # noqa: E402
    CLIENT_BOUND_CLUSTER,
    P50_BOUND,
    THROUGHPUT_BOUND,
    UNITS,
    LevelComparison,
    closed_form_inference_cost_ms,
    compare,
    fit_client_split,
    simulate_baseline,
    simulate_client_bound,
)
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config  # noqa: E402
from k8s_gpu_rl.errors import ConfigError, K8sGpuRlError  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="rtx3080", help="baseline: cluster name or YAML")
    parser.add_argument("--profile", default="low", help="baseline: load profile name or YAML")
    parser.add_argument("--seeds", type=int, default=5, help="independent runs to pool")
    parser.add_argument("--tolerance", type=float, default=0.10, help="baseline: allowed error")
    parser.add_argument(
        "--client-cluster", default=CLIENT_BOUND_CLUSTER, help="client-bound: cluster or YAML"
    )
    parser.add_argument(
        "--duration", type=float, default=300.0, help="client-bound: measured seconds per level"
    )
    parser.add_argument("--fit", action="store_true", help="also print the client-cost search")
    return parser


def _baseline(config: ClusterConfig, args: argparse.Namespace) -> bool:
    figures = simulate_baseline(config, args.profile, seeds=tuple(range(args.seeds)))
    print(
        f"1. baseline: cluster {config.name}, profile {args.profile}, {args.seeds} runs "
        f"(success rate {figures['success_rate']:.2%})\n"
    )
    print(f"{'figure':<18}{'measured':>16}{'simulated':>16}{'error':>8}")
    worst = 0.0
    for c in compare(figures):
        unit = UNITS[c.name]
        print(
            f"{c.name:<18}{c.measured:>9.1f} {unit:<6}{c.simulated:>9.1f} {unit:<6}"
            f"{c.relative_error:>+8.1%}"
        )
        worst = max(worst, abs(c.relative_error))
    verdict = "within" if worst <= args.tolerance else "OUTSIDE"
    print(f"\nworst error {worst:.1%}: {verdict} the {args.tolerance:.0%} target")
    return worst <= args.tolerance


def _row(c: LevelComparison) -> str:
    level, sim = c.level, c.simulated
    cells = [f"{level.label:<8}{level.users:>6}"]
    for figure, fmt in (("total_rps", ".1f"), ("inference_rps", ".1f"), ("p50_ms", ".0f")):
        measured, simulated = getattr(level, figure), sim[figure]
        cells.append(f"{measured:>7{fmt}}{simulated:>7{fmt}}{c.error(figure):>+7.0%}")
    cells.append(f"{level.p95_ms:>7.0f}{sim['p95_ms']:>7.0f}{c.error('p95_ms'):>+7.0%}")
    return "".join(cells)


def _processes(config: ClusterConfig) -> str:
    client = config.client
    if client.locust_processes is None:
        return "a Locust process per user: the client never binds"
    return (
        f"{client.locust_processes} Locust process(es) of "
        f"{client.process_capacity_rps():.1f} req/s capacity each"
    )


def _client_bound(config: ClusterConfig, args: argparse.Namespace) -> bool:
    comparisons = simulate_client_bound(config, tuple(range(args.seeds)), args.duration)
    success = min(c.simulated["success_rate"] for c in comparisons)
    print(
        f"\n2. client-bound Locust runs: cluster {config.name} "
        f"({_processes(config)}), "
        f"{args.seeds} runs of {args.duration:.0f} s per level (success rate {success:.2%})\n"
    )
    head = "".join(f"{h:>21}" for h in ("total req/s", "inference req/s", "p50 ms", "p95 ms"))
    print(f"{'users':<8}{'sim':>6}{head}")
    print(f"{'':<14}" + "   meas    sim  error" * 4)
    for c in comparisons:
        print(_row(c))
    worst = max(c.worst for c in comparisons)
    verdict = "within" if worst <= 1.0 else "OUTSIDE"
    print(
        f"\nworst error {worst:.0%} of its bound (throughput {THROUGHPUT_BOUND:.0%}, "
        f"p50 {P50_BOUND:.0%}; p95 for information): {verdict} the bounds"
    )
    return worst <= 1.0


def _fit(config: ClusterConfig) -> None:
    total = closed_form_inference_cost_ms(config)
    print(f"\nclient-cost search: closed-form total {total:.1f} ms per inference request")
    print(f"{'build ms':>10}{'send ms':>10}{'receive ms':>12}{'worst/bound':>13}")
    for score, cost in fit_client_split(config):
        print(f"{cost['build']:>10.1f}{cost['send']:>10.1f}{cost['receive']:>12.1f}{score:>13.2f}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.seeds < 1 or args.duration <= 0:
            raise ConfigError(
                f"--seeds must be >= 1 and --duration > 0, got {args.seeds} and {args.duration}"
            )
        config = load_cluster_config(args.cluster)
        client_config = load_cluster_config(args.client_cluster)
        baseline_ok = _baseline(config, args)
        client_ok = _client_bound(client_config, args)
        if args.fit:
            _fit(client_config)
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if baseline_ok and client_ok else 1


if __name__ == "__main__":
    sys.exit(main())
