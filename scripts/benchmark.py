"""Speed and memory of the simulated environment, beside the targets and PPO's own speed.

    python scripts/benchmark.py [--profile high] [--episodes 3] [--ppo-steps 4096]

Prints, measured in this run:
* environment steps per second in one process, with per-request simulation, for a
  policy that holds the Deployment and for random actions (rollouts, scaling), after one
  warm-up episode (training runs millions of steps: one-time costs do not count);
* simulated requests per second (requests the kernel served per wall-clock second);
* stable-baselines3 PPO training steps per second on the same environment, the figure
  the environment's speed matters against;
* resident memory of one environment in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_STEPS_PER_S = 1000.0
TARGET_RSS_MB = 150.0


def env_speed(profile: str, episodes: int, policy: str) -> dict[str, float]:
    """Steps/s and simulated requests/s over ``episodes`` full episodes."""
    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    env = K8sGpuEnv(profile=profile)
    env.reset(seed=0)
    hold = env.action_for(replicas=1, gpucores=50)  # the initial Deployment: no change
    done = False
    while not done:  # one warm-up episode: loading the kernel, growing buffers, lazy imports
        *_, terminated, truncated, _ = env.step(hold)
        done = terminated or truncated
    rng = np.random.default_rng(0)
    steps = requests = 0
    start = time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            action = hold if policy == "hold" else rng.integers(0, env.action_space.nvec)
            _, _, terminated, truncated, info = env.step(action)
            steps += 1
            requests += info["autoscale/requests"]
            done = terminated or truncated
    wall = time.perf_counter() - start
    return {"steps_per_s": steps / wall, "requests_per_s": requests / wall, "steps": steps}


def ppo_speed(profile: str, timesteps: int) -> float:
    """PPO (MlpPolicy, CPU, one env) training steps per second on the same env."""
    import torch
    from stable_baselines3 import PPO

    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    torch.set_num_threads(1)
    model = PPO(
        "MlpPolicy",
        K8sGpuEnv(profile=profile),
        n_steps=512,
        batch_size=128,
        seed=0,
        device="cpu",
        verbose=0,
    )
    model.learn(256)  # warm-up: kernel library load, torch init
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return timesteps / (time.perf_counter() - start)


RSS_PROBE = """
import json, sys, psutil
sys.path.insert(0, {root!r})
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
env = K8sGpuEnv(profile={profile!r})
env.reset(seed=0)
done = False
while not done:
    *_, term, trunc, _ = env.step(env.action_space.sample())
    done = term or trunc
print(json.dumps({{"rss_mb": psutil.Process().memory_info().rss / 2**20}}))
"""


def env_rss_mb(profile: str) -> float:
    """Resident memory of a process holding one env after a full episode."""
    code = RSS_PROBE.format(root=str(ROOT), profile=profile)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="high")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--ppo-steps", type=int, default=4096)
    args = parser.parse_args(argv)
    hold = env_speed(args.profile, args.episodes, "hold")
    rand = env_speed(args.profile, args.episodes, "random")
    ppo = ppo_speed(args.profile, args.ppo_steps)
    rss = env_rss_mb(args.profile)
    rows = [
        ("env steps/s, hold policy", hold["steps_per_s"], f">= {TARGET_STEPS_PER_S:.0f}"),
        ("env steps/s, random actions", rand["steps_per_s"], f">= {TARGET_STEPS_PER_S:.0f}"),
        ("simulated requests/s (hold)", hold["requests_per_s"], ""),
        ("simulated requests/s (random)", rand["requests_per_s"], ""),
        ("PPO training steps/s (same env)", ppo, "for comparison"),
        ("one env, resident memory (MB)", rss, f"< {TARGET_RSS_MB:.0f}"),
    ]
    print(f"profile {args.profile}, {args.episodes} episodes per policy, one process\n")
    print(f"{'figure':<34}{'measured':>14}  target")
    for name, value, target in rows:
        print(f"{name:<34}{value:>14,.0f}  {target}")
    print(f"\nenv share of a PPO step: {ppo / hold['steps_per_s']:.0%} of its time is simulation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
