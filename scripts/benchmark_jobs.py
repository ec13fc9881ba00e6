"""Scheduling decisions per second of GpuJobScheduling-v0, beside the issue's target.

    python scripts/benchmark_jobs.py [--queue normal] [--episodes 5]

Two figures: ``env.step`` with a random valid (masked) action (what PPO's rollouts pay,
observation and mask included), and each baseline's ``predict`` + ``step``. A decision is
one ``step``; the simulated time between decisions (events, ticks) is included.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from k8s_gpu_rl.baselines.jobs import BASELINES, make_job_policy
from k8s_gpu_rl.envs.jobs.env import GpuJobSchedulingEnv

TARGET = 10_000


def measure(env: GpuJobSchedulingEnv, episodes: int, policy=None) -> float:  # noqa: ANN001
    rng = np.random.default_rng(0)
    steps, spent = 0, 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        done = False
        t0 = time.perf_counter()
        while not done:
            if policy is None:
                action = int(rng.choice(np.flatnonzero(env.action_masks())))
            else:
                action, _ = policy.predict(obs)
            obs, _, term, trunc, _ = env.step(action)
            steps, done = steps + 1, term or trunc
        spent += time.perf_counter() - t0
    return steps / spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queue", default="normal")
    p.add_argument("--episodes", type=int, default=5)
    args = p.parse_args()
    env = GpuJobSchedulingEnv(args.queue)
    print(f"queue {args.queue}, {args.episodes} episodes; target >= {TARGET:,} decisions/s")
    print(f"  random masked actions: {measure(env, args.episodes):,.0f} decisions/s")
    for name in BASELINES:
        rate = measure(env, args.episodes, make_job_policy(name, env))
        print(f"  {name:>20}: {rate:,.0f} decisions/s")


if __name__ == "__main__":
    main()
