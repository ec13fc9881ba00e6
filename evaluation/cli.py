"""Compare autoscaling policies on identical load: ``python -m evaluate``.

    python -m evaluate --policy ppo,hpa,hpa-tuned,kpa,static,oracle --profile mixed
                       [--profile high ...] [--repeats 5] [--seed 1000]
                       [--model runs/<run>] [--out results/<timestamp>]
                       [--backend sim|local|k8s] [--backend-config YAML]
                       [--cluster rtx3080] [--no-progress]
    python -m evaluate --pareto --profile mixed,loadprofiles/heldout/<shape>.yaml
                       [--model runs/<a> --model runs/<b>] [--jobs 2]

Every policy runs ``--repeats`` episodes on every profile; run i uses seed ``--seed + i``
for every policy, so all of them replay the same Locust users. ``--policy`` and
``--profile`` take comma lists and may be repeated; a profile is a shipped name (low,
medium, high, mixed) or a YAML path. ``ppo`` loads ``--model`` (a run directory or a
zip; default: the newest run directory under ``runs/`` with a ``model.zip``).

Writes per-run time series and KPIs, ``summary.csv``/``.json`` (mean ± 95 % CI),
``comparisons.csv``/``.json`` (Welch's t-test, Hedges' g; vGPU-hours relative to the
oracle), PNG plots and ``report.md`` into ``--out`` (layout: ``evaluation/runner.py``),
and prints a summary table. ``--pareto`` also runs every baseline family's whole grid
and writes the cost-QoS fronts (``k8s_gpu_rl.evaluation.pareto``). A user mistake prints ``error: ...`` and exits with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
from pathlib import Path

from k8s_gpu_rl.errors import EXIT_OK, EXIT_USAGE, run_command


def _split(values: list[str] | None, default: str) -> list[str]:
    """Comma lists, repeated options allowed; a comma before ``key=`` stays inside a
    generator spec (``random:seed=7,shape=diurnal,low`` is two profiles)."""
    items = values or [default]
    return [part.strip() for item in items for part in _COMMA.split(item) if part.strip()]


_COMMA = re.compile(r",(?![A-Za-z_]\w*=)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # "error: ...", exit 2, as for our own errors
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parse_args(
    argv: list[str] | None = None, prog: str = "python -m evaluate"
) -> argparse.Namespace:
    p = _Parser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument(
        "--policy",
        action="append",
        metavar="NAMES",
        help="ppo, hpa, hpa-tuned, kpa, static, oracle; comma list or repeated "
        "(default: every baseline)",
    )
    p.add_argument(
        "--profile",
        action="append",
        metavar="PROFILES",
        help="load profile names or YAML paths; comma list or repeated (default: mixed)",
    )
    p.add_argument("--repeats", type=int, default=5, help="runs per policy and profile (default 5)")
    p.add_argument(
        "--seed", type=int, default=1000, help="base seed: run i uses seed + i (default 1000)"
    )
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        type=Path,
        default=None,
        help="PPO run directory or model zip (for --policy ppo); with --pareto repeat it "
        "to put several models on the fronts",
    )
    p.add_argument(
        "--pareto",
        action="store_true",
        help="also run every baseline family's whole grid and write pareto.csv, "
        "cost_at_matched_qos.csv and plots/<profile>_pareto.png (k8s_gpu_rl.evaluation.pareto)",
    )
    p.add_argument("--jobs", type=int, default=2, help="processes for --pareto's grid (default 2)")
    p.add_argument(
        "--reuse-grid",
        type=Path,
        default=None,
        metavar="CSV",
        help="with --pareto: an earlier pareto_runs.csv whose grid points (same profiles and "
        "seeds) are reused instead of run again; also resumes an interrupted grid",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="results folder (default results/<timestamp>)"
    )
    p.add_argument(
        "--backend",
        default="sim",
        help="sim (simulated cluster), local (real servers, HAProxy, Prometheus, Locust "
        "on this machine) or k8s (the Triton Deployment of a real cluster); the live ones "
        "run in wall-clock time (default sim)",
    )
    p.add_argument(
        "--backend-config",
        type=Path,
        default=None,
        help="YAML of the live backend's options (local: LocalOptions; k8s: K8sOptions, e.g. "
        "namespace, service_url, prometheus_url; see scripts/k8s-backend.yaml)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        help="cluster config name or YAML (default: rtx3080 for sim, local for local)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--allow-saturated-client",
        action="store_true",
        help="keep runs whose load generator (Locust) saturated in the statistics; by "
        "default they are excluded and listed (k8s_gpu_rl.evaluation.validity)",
    )
    p.add_argument(
        "--env",
        choices=("autoscale", "jobs"),
        default="autoscale",
        help="autoscale: K8sGpu-v0 (default); jobs: GpuJobScheduling-v0, policies fifo, "
        "sjf-predicted, fgd, optimal-allocation[-0.8|-0.9], ppo (k8s_gpu_rl.evaluation.jobs)",
    )
    p.add_argument(
        "--queue",
        default=None,
        help="with --env jobs: a shipped queue (small, normal, memory-heavy) or a "
        ".yaml/.csv path (default memory-heavy)",
    )
    args = p.parse_args(argv)
    if len(args.models or []) > 1 and not args.pareto:
        p.error("several --model are only allowed with --pareto")
    args.model = args.models[0] if args.models else None
    return args


def main(argv: list[str] | None = None, prog: str = "python -m evaluate") -> int:
    """Run the command line; ``prog`` is how the user called it (for help and the report)."""
    args = parse_args(argv, prog)
    command = shlex.join([*shlex.split(prog), *(sys.argv[1:] if argv is None else argv)])
    if args.env == "jobs":  # GpuJobScheduling-v0: k8s_gpu_rl.evaluation.jobs
        from k8s_gpu_rl.evaluation.jobs import main_from_args

        return main_from_args(args, command)

    def work() -> int:
        from k8s_gpu_rl.evaluation import report, runner

        if args.pareto:
            from k8s_gpu_rl.evaluation.pareto_run import DEFAULT_POLICIES
        policies = _split(
            args.policy, ",".join(DEFAULT_POLICIES if args.pareto else runner.BASELINES)
        )
        plan = runner.build_plan(
            policies,
            _split(args.profile, "mixed"),
            args.repeats,
            args.seed,
            args.out,
            args.backend,
            args.cluster,
            args.model if runner.PPO in policies or not args.pareto else None,
            command,
            backend_config=args.backend_config,
        )
        plan = dataclasses.replace(plan, allow_saturated_client=args.allow_saturated_client)
        if args.pareto:
            from k8s_gpu_rl.evaluation.pareto_run import run_pareto

            models = [m for m in (args.models or []) if runner.PPO not in policies]
            outputs = run_pareto(
                plan,
                models,
                args.jobs,
                progress=not args.no_progress,
                reuse_grid=args.reuse_grid,
            )
        else:
            outputs = runner.run_evaluation(plan, progress=not args.no_progress)
        report.print_summary(outputs.report)
        print(f"results: {plan.out}")
        return EXIT_OK

    return run_command(
        work, "\ninterrupted: the finished runs are in the output folder (runs/, runs.csv)"
    )


if __name__ == "__main__":
    sys.exit(main())
