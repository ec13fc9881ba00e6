"""``python -m sweep generate|run|analyze|fit`` (or ``k8s-gpu-rl sweep ...``).

    python -m sweep generate [--out DIR] [--configurations FILE] [--template FILE]
        [--tasks a,b] [--configs x,y] [--image IMG] [--namespace NS]
        [--scheduler-name hami-scheduler] [--annotation hami.io/resource-pool=poc]
        [--batch-sizes 1,4,8] [--repeats 3]
    python -m sweep run --backend k8s|local|sim [--out DIR] [--tasks a,b] [--configs x,y]
    python -m sweep analyze [--out DIR] [--latency-target-ms 500] [--throughput-target 0]
    python -m sweep fit --task NAME [--out DIR] [--reference CONFIG] [--base-cluster rtx3080]

``--out`` defaults to a new ``sweeps/<time>/`` for ``generate``; the other steps default to
the newest ``sweeps/*/`` that holds what they read (``run`` generates the shipped sweep
first when there is none). A user's mistake prints ``error: ...`` and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from k8s_gpu_rl.errors import EXIT_USAGE, K8sGpuRlError, run_command

SWEEPS = Path("sweeps")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def _annotation(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser(prog: str = "python -m sweep") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Resource-constraint sweep: generate, run, analyze, fit.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = sub.add_parser("generate", help="render one Pod manifest per configuration x task")
    _common(g)
    g.add_argument("--configurations", type=Path, help="YAML/JSON file (default: the shipped nine)")
    g.add_argument("--template", type=Path, help="Jinja2 Pod template (default: shipped)")
    g.add_argument("--image", default="k8s-gpu-rl-sweep:latest")
    g.add_argument("--namespace", default="default")
    g.add_argument("--scheduler-name", default="hami-scheduler", help="'' for the default")
    g.add_argument("--annotation", type=_annotation, action="append", default=[])
    g.add_argument("--batch-sizes", type=_sizes, default=[1, 4, 8])
    g.add_argument("--repeats", type=int, default=3)
    g.add_argument("--core-policy", default="force", choices=["force", "default", "disable"])
    r = sub.add_parser("run", help="run the experiments on a backend")
    _common(r)
    r.add_argument("--backend", required=True, choices=["k8s", "local", "sim"])
    r.add_argument("--timeout-s", type=float, default=900.0, help="per experiment")
    r.add_argument("--unschedulable-timeout-s", type=float, default=120.0, help="k8s")
    r.add_argument("--kubeconfig", type=Path, help="k8s (default: ~/.kube/config or in-cluster)")
    r.add_argument("--context", help="k8s kubeconfig context")
    r.add_argument("--cluster", help="sim: cluster YAML with the task's serving: section")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    a = sub.add_parser("analyze", help="efficiency, summary, optimal configurations, plots")
    a.add_argument("--out", type=Path)
    a.add_argument("--latency-target-ms", type=float, default=1000.0)
    a.add_argument("--throughput-target", type=float, default=0.0, help="items/s")
    a.add_argument("--batch-size", type=int, help="batch size the targets refer to (default: 1)")
    f = sub.add_parser("fit", help="fit the simulator's serving: section to a task's results")
    f.add_argument("--out", type=Path)
    f.add_argument("--task", required=True)
    f.add_argument("--reference", help="configuration to fit (default: most GPU, then CPU)")
    f.add_argument("--base-cluster", default="rtx3080", help="cluster the other sections come from")
    f.add_argument("--max-batch-size", type=int, help="default: the largest measured")
    f.add_argument("--fit-batch-sizes", help="fit on these only; the others are held out")
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path)
    p.add_argument("--tasks", help="comma list (default: all)")
    p.add_argument("--configs", help="comma list of configuration names (default: all)")


def _newest(needs: str) -> Path | None:
    dirs = sorted(d for d in SWEEPS.glob("*") if (d / needs).exists()) if SWEEPS.is_dir() else []
    return dirs[-1] if dirs else None


def _new_dir() -> Path:
    return SWEEPS / time.strftime("%Y%m%d-%H%M%S")


def _out(args: argparse.Namespace, needs: str) -> Path:
    if args.out is not None:
        return args.out
    found = _newest(needs)
    if found is None:
        raise K8sGpuRlError(f"no sweeps/*/{needs} found: give --out DIR")
    return found


def _dispatch(args: argparse.Namespace) -> int:
    from k8s_gpu_rl.sweep import commands

    if args.command == "generate":
        return commands.generate(args, args.out or _new_dir())
    if args.command == "run":
        out = args.out or _newest("experiment_manifest.json") or _new_dir()
        return commands.run(args, out)
    if args.command == "analyze":
        return commands.analyze(args, _out(args, "experiment_results.csv"))
    return commands.fit(args, _out(args, "experiment_results.csv"))


def main(argv: list[str] | None = None, prog: str = "python -m sweep") -> int:
    """Run the command line; ``prog`` is how the user called it."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(prog).parse_args(argv)
    return run_command(
        lambda: _dispatch(args), "error: interrupted; `run` again with the same --out to resume"
    )


if __name__ == "__main__":
    sys.exit(main())
