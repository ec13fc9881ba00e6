"""Speed and memory of the simulated environment, beside the previous tree's, measured in one run.

    python scripts/benchmark.py [--profile high] [--episodes 20] [--ppo-steps 4096]
                                [--rounds 3] [--previous REV | --no-previous]

Prints, for this tree and for a previous revision of it (``--previous``, default the tree
issue 12's speed figures were measured on), each measured here and now, in alternating
fresh processes so that both see the same machine:

* environment steps per second in one process, with per-request simulation, for a
  policy that holds the Deployment and for random actions (rollouts, scaling), after one
  warm-up episode (training runs millions of steps: one-time costs do not count);
* simulated requests per second (requests the kernel served per wall-clock second);
* stable-baselines3 PPO training steps per second on the same environment, the figure
  the environment's speed matters against;
* resident memory of one environment in a fresh process.

Each figure is the median over ``--rounds`` rounds; the previous tree comes from
``git archive`` of this clone, so it needs the repository's history (not a shallow clone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The revision whose simulator issue 12 measured at 880 (hold) and 750 (random) steps/s.
PREVIOUS_REF = "26535b8"
TARGET_STEPS_PER_S = 2000.0  # issue 12: random actions on `high`, one process
TARGET_RSS_MB = 150.0

# Runs in a fresh interpreter inside the tree under test; the same code for both trees, so
# only the simulator differs. argv[1]: a JSON object of the measurement's parameters.
PROBE = r"""
import importlib, json, sys, time
import numpy as np
args = json.loads(sys.argv[1])
module = importlib.import_module(args["module"])
K8sGpuEnv = module.K8sGpuEnv

def env_speed(policy):
    env = K8sGpuEnv(profile=args["profile"])
    env.reset(seed=0)
    hold = env.action_for(replicas=1, gpucores=50)  # the initial Deployment: no change
    done = False
    while not done:  # warm-up: kernel load, buffers, lazy imports
        *_, terminated, truncated, _ = env.step(hold)
        done = terminated or truncated
    rng = np.random.default_rng(0)
    steps = requests = 0
    start = time.perf_counter()
    for episode in range(args["episodes"]):
        env.reset(seed=episode)
        done = False
        while not done:
            action = hold if policy == "hold" else rng.integers(0, env.action_space.nvec)
            _, _, terminated, truncated, info = env.step(action)
            steps += 1
            requests += info["autoscale/requests"]
            done = terminated or truncated
    wall = time.perf_counter() - start
    return steps / wall, requests / wall

def ppo_speed():
    import torch
    from stable_baselines3 import PPO
    torch.set_num_threads(1)
    model = PPO("MlpPolicy", K8sGpuEnv(profile=args["profile"]), n_steps=512,
                batch_size=128, seed=0, device="cpu", verbose=0)
    model.learn(256)  # warm-up: kernel load, torch init
    start = time.perf_counter()
    model.learn(args["ppo_steps"], reset_num_timesteps=False)
    return args["ppo_steps"] / (time.perf_counter() - start)

out = {"source": module.__file__}
if args["what"] == "rss":
    import psutil
    env = K8sGpuEnv(profile=args["profile"])
    env.reset(seed=0)
    done = False
    while not done:
        *_, term, trunc, _ = env.step(env.action_space.sample())
        done = term or trunc
    out["rss_mb"] = psutil.Process().memory_info().rss / 2**20
else:
    out["hold_steps_per_s"], out["hold_requests_per_s"] = env_speed("hold")
    out["random_steps_per_s"], out["random_requests_per_s"] = env_speed("random")
    if args["ppo_steps"] > 0:
        out["ppo_steps_per_s"] = ppo_speed()
print(json.dumps(out))
"""

ROWS = [
    ("env steps/s, hold policy", "hold_steps_per_s", f">= {TARGET_STEPS_PER_S:,.0f}"),
    ("env steps/s, random actions", "random_steps_per_s", f">= {TARGET_STEPS_PER_S:,.0f}"),
    ("simulated requests/s (hold)", "hold_requests_per_s", ""),
    ("simulated requests/s (random)", "random_requests_per_s", ""),
    ("PPO training steps/s (same env)", "ppo_steps_per_s", ""),
    ("one env, resident memory (MB)", "rss_mb", f"< {TARGET_RSS_MB:.0f}"),
]


class BenchmarkError(RuntimeError):
    """A tree could not be exported or measured; the message says which and why."""


class Tree:
    """A source tree to measure: this checkout, or a revision exported from its history."""

    def __init__(self, label: str, path: Path, cache: Path | None = None):
        self.label, self.path, self.cache = label, path, cache
        # Before the packaging issue the env was the top-level package ``envs`` (importing
        # its own siblings by their bare names); since then ``envs/`` is k8s_gpu_rl.envs.
        source = (path / "envs" / "k8s_gpu_env.py").read_text(encoding="utf-8")
        packaged = "from k8s_gpu_rl.envs" in source
        self.module = "k8s_gpu_rl.envs.k8s_gpu_env" if packaged else "envs.k8s_gpu_env"

    def probe(self, **params) -> dict[str, float]:
        env = dict(os.environ, PYTHONPATH=str(self.path), PYTHONHASHSEED="0")
        if self.cache is not None:  # the old tree's kernel library stays beside its sources
            env["K8SGPURL_CACHE"] = str(self.cache)
        arg = json.dumps({"module": self.module, **params})
        done = subprocess.run(
            [sys.executable, "-c", PROBE, arg],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise BenchmarkError(f"measuring {self.label} failed (exit {done.returncode}):\n{tail}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        source = Path(out.pop("source")).resolve()
        if not source.is_relative_to(self.path.resolve()):  # e.g. an installed copy won
            raise BenchmarkError(
                f"{self.label}: {self.module} was imported from {source}, not {self.path}"
            )
        return out


def export_revision(ref: str, into: Path) -> Tree:
    """``git archive`` of ``ref`` unpacked under ``into``: the previous tree, without build leftovers."""
    if shutil.which("git") is None:
        raise BenchmarkError(
            "git is not installed: it is needed to export --previous; use --no-previous"
        )
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if rev.returncode != 0:
        raise BenchmarkError(
            f"--previous {ref!r} is not a commit of {ROOT} (a shallow clone or a copy without "
            "history?): fetch the history, name another revision, or pass --no-previous"
        )
    tree = into / "previous"
    tree.mkdir()
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", ref], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise BenchmarkError(f"git archive {ref} failed")
    (into / "cache").mkdir()
    return Tree(f"previous ({rev.stdout.strip()})", tree, cache=into / "cache")


def measure(trees: list[Tree], profile: str, episodes: int, ppo_steps: int, rounds: int):
    """Median of each figure per tree; the trees take turns within every round."""
    from tqdm import tqdm

    samples: dict[str, dict[str, list[float]]] = {t.label: {} for t in trees}
    speed = {"what": "speed", "profile": profile, "episodes": episodes, "ppo_steps": ppo_steps}
    jobs = [(t, speed) for _ in range(rounds) for t in trees]
    jobs += [(t, {"what": "rss", "profile": profile}) for t in trees]
    for tree, params in tqdm(jobs, desc="benchmark", unit="process", file=sys.stderr):
        for key, value in tree.probe(**params).items():
            samples[tree.label].setdefault(key, []).append(value)
    return {
        label: {k: statistics.median(v) for k, v in figures.items()}
        for label, figures in samples.items()
    }


def report(results: dict[str, dict[str, float]], labels: list[str]) -> str:
    head = f"{'figure':<34}" + "".join(f"{label:>22}" for label in labels)
    if len(labels) == 2:
        head += f"{'ratio':>9}"
    lines = [head + "  target"]
    for name, key, target in ROWS:
        values = [results[label].get(key) for label in labels]
        line = f"{name:<34}" + "".join(
            f"{v:>22,.0f}" if v is not None else f"{'-':>22}" for v in values
        )
        if len(labels) == 2:
            old, new = values[1], values[0]
            line += f"{new / old:>8.2f}x" if old and new else f"{'-':>9}"
        lines.append(line + f"  {target}")
    current = results[labels[0]]
    if "ppo_steps_per_s" in current:
        share = current["ppo_steps_per_s"] / current["hold_steps_per_s"]
        lines.append(f"\nthis tree: {share:.0%} of a PPO training step's time is simulation")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="high")
    parser.add_argument("--episodes", type=int, default=20, help="timed episodes per policy")
    parser.add_argument("--ppo-steps", type=int, default=4096, help="timed PPO steps (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per tree; medians")
    parser.add_argument(
        "--previous",
        default=PREVIOUS_REF,
        metavar="REV",
        help=f"revision to measure beside this tree (default {PREVIOUS_REF})",
    )
    parser.add_argument("--no-previous", action="store_true", help="measure this tree only")
    args = parser.parse_args(argv)
    for name in ("episodes", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.ppo_steps < 0:
        parser.error(f"--ppo-steps must be 0 or more, got {args.ppo_steps}")
    with tempfile.TemporaryDirectory(prefix="k8s-gpu-rl-bench-") as tmp:
        try:
            trees = [Tree("this tree", ROOT)]
            if not args.no_previous:
                trees.append(export_revision(args.previous, Path(tmp)))
            results = measure(trees, args.profile, args.episodes, args.ppo_steps, args.rounds)
        except BenchmarkError as err:
            print(f"benchmark: {err}", file=sys.stderr)
            return 1
    print(
        f"profile {args.profile}, timed episodes per policy: {args.episodes}, one process each, "
        f"rounds (medians): {args.rounds}, all measured in this run\n"
    )
    print(report(results, [t.label for t in trees]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
