"""Train PPO on K8sGpu-v0: ``python -m train --profile mixed`` (or ``k8s-gpu-rl train``).

A thin command line over :mod:`agents` (as rl-baselines3-zoo's ``train.py`` is over
``rl_zoo3``). Each run gets ``<out>/ppo-<profile>-<seed>-<timestamp>/`` with the model,
its VecNormalize statistics, checkpoints, TensorBoard logs and a manifest
(:mod:`k8s_gpu_rl.agents.run_dir`). Exit status: 0 done, 2 a user's mistake (``error: ...`` on
stderr), 130 interrupted by Ctrl-C or SIGTERM after saving a resumable model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from k8s_gpu_rl.errors import EXIT_INTERRUPTED, EXIT_OK, run_command


def positive_int(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser(prog: str = "python -m train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train stable-baselines3 PPO on K8sGpu-v0.",
        epilog="Defaults: agents/ppo.yaml. On --resume, unset options come from the resumed run.",
    )
    p.add_argument(
        "--profile",
        help="load profile: a shipped name (low, medium, high, mixed) "
        "or a YAML path (default: mixed)",
    )
    p.add_argument(
        "--timesteps",
        type=positive_int,
        help="environment steps in all (default: "
        "training.timesteps); with --resume, steps beyond those already done "
        "(default: what remains of the resumed run's budget)",
    )
    p.add_argument("--seed", type=non_negative_int, help="random seed (default: 0)")
    p.add_argument(
        "--n-envs",
        type=positive_int,
        help="parallel envs; SubprocVecEnv when > 1 (default: training.n_envs)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML with sections ppo, env, cluster, training, merged over agents/ppo.yaml",
    )
    p.add_argument("--backend", help="env backend (default: sim)")
    p.add_argument(
        "--cluster",
        help="simulated cluster: a shipped name (rtx3080, rtx3090, v100x2, local, ...) or a "
        "YAML path, e.g. one `python -m sweep fit` wrote (default: the config's cluster)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="PATH",
        help="run directory or model/checkpoint "
        ".zip to continue training from (into a new run directory)",
    )
    p.add_argument(
        "--env",
        choices=("autoscale", "jobs"),
        default="autoscale",
        help="autoscale: K8sGpu-v0 (default); jobs: GpuJobScheduling-v0 "
        "(see `--env jobs --help` for its options)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs"), help="parent of run directories (default: runs/)"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stdout is a terminal)",
    )
    return p


def _env_option(argv: list[str], prog: str) -> tuple[str, list[str]]:
    """``--env`` and the other arguments (``--env jobs`` has its own options)."""
    pre = argparse.ArgumentParser(prog=prog, add_help=False)
    pre.add_argument("--env", choices=("autoscale", "jobs"), default="autoscale")
    known, rest = pre.parse_known_args(argv)
    return known.env, rest


def main(argv: list[str] | None = None, prog: str = "python -m train") -> int:
    """Run the command line; ``prog`` is how the user called it (for help and the manifest)."""
    argv = sys.argv[1:] if argv is None else argv
    env, rest = _env_option(argv, prog)
    if env == "jobs":  # GpuJobScheduling-v0: masked PPO, k8s_gpu_rl.agents.jobs
        from k8s_gpu_rl.agents.jobs import main as jobs_main

        return jobs_main(rest, f"{prog} --env jobs")
    args = build_parser(prog).parse_args(argv)
    from k8s_gpu_rl.agents.plan import TrainRequest, plan_run

    request = TrainRequest(
        profile=args.profile,
        timesteps=args.timesteps,
        seed=args.seed,
        n_envs=args.n_envs,
        config=args.config,
        backend=args.backend,
        cluster=args.cluster,
        resume=args.resume,
        out=args.out,
        progress=args.progress,
        argv=tuple(argv),
        prog=prog,
    )

    def work() -> int:
        plan = plan_run(request, stdout_is_tty=sys.stdout.isatty())
        from k8s_gpu_rl.agents.trainer import run

        outcome = run(plan)
        model = outcome.run_dir / "model.zip"
        if outcome.status == "interrupted":
            print(
                f"interrupted after {outcome.timesteps} timesteps; saved {model} and "
                f"{outcome.run_dir / 'vecnormalize.pkl'}\n"
                f"resume with: {prog} --resume {outcome.run_dir}",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        print(f"done: {outcome.timesteps} timesteps; saved {model}")
        return EXIT_OK

    return run_command(work, "error: interrupted before a model could be saved")


if __name__ == "__main__":
    sys.exit(main())
