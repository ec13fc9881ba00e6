"""The ``k8s-gpu-rl`` console script: ``k8s-gpu-rl train|evaluate|sweep ...``.

Each sub-command takes exactly the options of its ``python -m`` form in the repository
root (``python -m train``, ``python -m evaluate``, ``python -m sweep``) and works from any
directory.
"""

from __future__ import annotations

import importlib
import sys

from k8s_gpu_rl.errors import EXIT_OK, EXIT_USAGE

COMMANDS = {
    "train": ("k8s_gpu_rl.agents.cli", "train PPO on the simulated (or a live) cluster"),
    "evaluate": ("k8s_gpu_rl.evaluation.cli", "compare policies on identical load"),
    "sweep": ("k8s_gpu_rl.sweep.cli", "resource-constraint sweep: generate, run, analyze, fit"),
}


def _usage() -> str:
    lines = ["usage: k8s-gpu-rl COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "k8s-gpu-rl COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] in ("-V", "--version"):
        from k8s_gpu_rl import __version__

        print(f"k8s-gpu-rl {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from k8s_gpu_rl.config import suggest

        print(_usage(), file=sys.stderr)
        print(
            f"error: unknown command {name!r}{suggest(name, COMMANDS)}; "
            f"allowed: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"k8s-gpu-rl {name}")


if __name__ == "__main__":
    sys.exit(main())
