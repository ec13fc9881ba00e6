"""Masked PPO on ``GpuJobScheduling-v0``: ``python -m train --env jobs``.

sb3-contrib's ``MaskablePPO`` reads ``env.action_masks()`` so the agent only ever picks a
placement HAMi can make (or waits). Each run gets ``<out>/ppo-jobs-<queue>-<seed>-<time>/``
with ``model.zip``, ``config.yml`` (every setting), ``command.txt`` and TensorBoard logs
(``jobs/*`` and ``reward/*`` keys: the env's info, averaged over the rollout's steps).

The default budget (:class:`JobTrainConfig`) trains in a few minutes on two CPU cores; it
is a short run, not a tuned agent: compare it with ``optimal-allocation`` before trusting it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from k8s_gpu_rl.errors import EXIT_OK, ConfigError, run_command
from k8s_gpu_rl.io import atomic_write, write_text

MODEL_FILE = "model.zip"


@dataclass(frozen=True)
class JobTrainConfig:
    """Settings of a masked-PPO training run."""

    queue: str = "memory-heavy"
    """Training queue (a shipped name, a path, or ``random`` for a generated one per episode)."""
    world: str = "user-sites"
    """World (shipped name or YAML path)."""
    timesteps: int = 40_000
    """Agent decisions in all."""
    seed: int = 0
    """Seed of PPO and of the training episodes (evaluation uses other seeds)."""
    n_steps: int = 1024
    """Steps per rollout."""
    batch_size: int = 128
    """Minibatch size."""
    n_epochs: int = 5
    """Passes over each rollout."""
    learning_rate: float = 3.0e-4
    """Adam step size."""
    gamma: float = 0.995
    """Discount per decision (an episode has hundreds of decisions)."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    net_arch: tuple[int, ...] = (128, 128)
    """Hidden layers of the policy and value networks."""
    torch_threads: int = 1
    """torch.set_num_threads."""
    work_conserving: bool = True
    """Train (and act) with the wait action masked while a placement is possible: a
    short run otherwise learns to wait and never finishes a queue."""

    def __post_init__(self) -> None:
        if self.timesteps < 1:
            raise ConfigError(f"timesteps must be >= 1, got {self.timesteps}")
        if self.n_steps < 2 or self.batch_size < 2:
            raise ConfigError("n_steps and batch_size must be >= 2")


def make_env(config: JobTrainConfig) -> Any:
    from k8s_gpu_rl.envs.jobs.env import GpuJobSchedulingEnv

    return GpuJobSchedulingEnv(
        config.queue, world=config.world, config={"work_conserving": config.work_conserving}
    )


class MaskedPolicy:
    """A trained ``MaskablePPO`` with SB3's ``predict``, reading the bound env's mask."""

    name = "ppo"

    def __init__(self, model: Any, env: Any, work_conserving: bool = True) -> None:
        self.model, self.env = model, getattr(env, "unwrapped", env)
        self.work_conserving = work_conserving

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        mask = self.env.action_masks().copy()
        if self.work_conserving and mask[:-1].any():
            mask[-1] = False  # act as trained
        action, _ = self.model.predict(observation, deterministic=deterministic, action_masks=mask)
        return np.asarray(action), state


def find_model(path: Path | None, runs: Path = Path("runs")) -> Path:
    """``path`` (a run directory or zip), else the newest ``runs/ppo-jobs-*/model.zip``."""
    if path is None:
        found = sorted(runs.glob("ppo-jobs-*/" + MODEL_FILE), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ConfigError(
                "policy ppo: no --model given and no runs/ppo-jobs-*/model.zip; train with `python -m train --env jobs`"
            )
        return found[-1]
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"policy ppo: model {str(path)!r} does not exist")
    return path


def load_masked_policy(path: Path | None, env: Any) -> MaskedPolicy:
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(find_model(path), device="cpu")
    if model.observation_space.shape != env.observation_space.shape:
        raise ConfigError(
            f"policy ppo: the model observes {model.observation_space.shape}, this env {env.observation_space.shape} "
            "(trained on another world or window)"
        )
    config = find_model(path).parent / "config.yml"
    settings = yaml.safe_load(config.read_text()) if config.is_file() else {}
    return MaskedPolicy(model, env, bool(settings.get("work_conserving", True)))


def _callback() -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class InfoLogger(BaseCallback):
        """Averages the env's ``reward/*`` and ``jobs/*`` info over each rollout."""

        def _on_rollout_start(self) -> None:
            self.sums: dict[str, float] = {}
            self.count = 0

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                for k, v in info.items():
                    if k.startswith(("reward/", "jobs/")):
                        self.sums[k] = self.sums.get(k, 0.0) + float(v)
                self.count += 1
            return True

        def _on_rollout_end(self) -> None:
            for k, v in self.sums.items():
                self.logger.record(k, v / max(1, self.count))

    return InfoLogger()


def train(config: JobTrainConfig, out: Path, command: str = "", progress: bool = False) -> Path:
    """Train and save; returns the run directory."""
    import torch
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(config.torch_threads)
    env = make_env(config)
    env.reset(seed=config.seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    queue = Path(config.queue).stem
    run_dir = out / f"ppo-jobs-{queue}-{config.seed}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    model = MaskablePPO(
        "MlpPolicy",
        env,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        ent_coef=config.ent_coef,
        policy_kwargs={"net_arch": list(config.net_arch)},
        seed=config.seed,
        device="cpu",
        tensorboard_log=str(run_dir / "tb"),
        verbose=0,
    )
    model.learn(config.timesteps, callback=_callback(), progress_bar=progress)
    atomic_write(run_dir / MODEL_FILE, lambda tmp: model.save(tmp))  # SB3 adds no suffix to ".tmp"
    write_text(run_dir / "config.yml", yaml.safe_dump(asdict(config), sort_keys=False))
    write_text(run_dir / "command.txt", command + "\n")
    return run_dir


def build_parser(prog: str) -> argparse.ArgumentParser:
    d = JobTrainConfig()
    p = argparse.ArgumentParser(
        prog=prog, description="Train masked PPO (sb3-contrib) on GpuJobScheduling-v0."
    )
    p.add_argument(
        "--queue",
        default=d.queue,
        help=f"training queue: shipped name, path, or random (default {d.queue})",
    )
    p.add_argument("--world", default=d.world, help=f"world name or YAML (default {d.world})")
    p.add_argument(
        "--timesteps",
        type=int,
        default=d.timesteps,
        help=f"agent decisions (default {d.timesteps})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed (default 0)")
    p.add_argument(
        "--out", type=Path, default=Path("runs"), help="parent of run directories (default runs/)"
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar"
    )
    return p


def main(argv: list[str], prog: str = "python -m train --env jobs") -> int:
    args = build_parser(prog).parse_args(argv)
    command = shlex.join([*shlex.split(prog), *argv])

    def work() -> int:
        config = JobTrainConfig(
            queue=args.queue, world=args.world, timesteps=args.timesteps, seed=args.seed
        )
        from k8s_gpu_rl.envs.jobs.sim.config import load_world
        from k8s_gpu_rl.envs.jobs.sim.jobs import queue_path

        load_world(config.world)
        if config.queue != "random":
            queue_path(config.queue)
        progress = sys.stdout.isatty() if args.progress is None else args.progress
        run_dir = train(config, args.out, command, progress)
        print(f"done: {config.timesteps} timesteps; saved {run_dir / MODEL_FILE}")
        return EXIT_OK

    return run_command(work, "error: interrupted before a model could be saved")
