"""Carry out a :class:`~k8s_gpu_rl.agents.plan.TrainPlan`: build the envs and PPO, train, save the run.

The first SIGINT or SIGTERM ends ``learn`` at the next env step; the model and its
VecNormalize statistics are then saved as the run's ``model.zip`` and ``vecnormalize.pkl``
(manifest status ``interrupted``), from which ``--resume`` continues.
"""

from __future__ import annotations

import pickle
import shlex
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from k8s_gpu_rl import envs
from k8s_gpu_rl.agents.callbacks import Checkpoint, GracefulStop, KpiLogger, StopOnRequest
from k8s_gpu_rl.agents.plan import TrainPlan
from k8s_gpu_rl.agents.ppo_config import RunConfig, ppo_kwargs
from k8s_gpu_rl.agents.run_dir import (
    CHECKPOINT_DIR,
    MODEL_FILE,
    VECNORMALIZE_FILE,
    git_state,
    new_run_dir,
    now_iso,
    save_model_files,
    versions,
    write_json,
    write_text_atomic,
    write_yaml,
)
from k8s_gpu_rl.agents.vec_env import build_vec_env, normalise
from k8s_gpu_rl.errors import ConfigError


@dataclass(frozen=True)
class TrainOutcome:
    """Where a run went and how it ended."""

    run_dir: Path
    status: str
    """``completed`` or ``interrupted``."""
    timesteps: int
    """The model's ``num_timesteps`` at the end (earlier runs included when resumed)."""


def run(plan: TrainPlan) -> TrainOutcome:
    """Train as planned; user mistakes found while loading a model raise ConfigError."""
    torch.set_num_threads(plan.config.training.torch_threads)
    venv = build_vec_env(plan.profile, plan.backend, plan.config)
    try:
        env = normalise(venv, plan.config, plan.resume.vecnormalize if plan.resume else None)
        model, rng_seed = _model(plan, env)
        config = _with_target(plan, model.num_timesteps)
        run_dir = new_run_dir(plan.request.out, plan.profile, plan.seed)
        print(f"run directory: {run_dir}", flush=True)
        manifest = _start(plan, config, run_dir, model.num_timesteps, rng_seed)
        return _train(plan, config, model, run_dir, manifest)
    finally:
        venv.close()


def algo_class(algo: str) -> type[PPO]:
    """The SB3 class of ``training.algo`` (MaskablePPO and RecurrentPPO from sb3-contrib)."""
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO  # type: ignore[return-value]
    if algo == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO  # type: ignore[return-value]
    return PPO


def policy_name(algo: str) -> str:
    """The SB3 policy of ``training.algo``: an LSTM one for RecurrentPPO."""
    return "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"


def _model(plan: TrainPlan, env: VecNormalize) -> tuple[PPO, int]:
    kwargs = ppo_kwargs(plan.config.ppo)
    algo = plan.config.training.algo
    cls = algo_class(algo)
    if plan.resume is None:
        try:
            return cls(policy_name(algo), env, seed=plan.seed, **kwargs), plan.seed
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError(f"ppo: {exc}") from None
    model = _load(plan.resume.model, env, kwargs, cls)
    rng_seed = plan.seed + model.num_timesteps  # do not replay the first run's episodes
    model.set_random_seed(rng_seed)
    return model, rng_seed


def _load(path: Path, env: VecEnv, kwargs: dict[str, Any], cls: type[PPO] = PPO) -> PPO:
    policy_kwargs = kwargs.pop("policy_kwargs", {})
    device = kwargs.pop("device", "auto")
    if "stats_window_size" in kwargs:
        kwargs["_stats_window_size"] = kwargs.pop("stats_window_size")
    try:
        model = cls.load(path, env=env, device=device, **kwargs)
    except (zipfile.BadZipFile, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise ConfigError(f"{path}: cannot resume from this model ({exc})") from None
    if policy_kwargs != model.policy_kwargs:
        raise ConfigError(
            f"ppo.policy_kwargs cannot change when resuming: the model has {model.policy_kwargs}, "
            f"the config asks for {policy_kwargs}"
        )
    return model


def _with_target(plan: TrainPlan, done: int) -> RunConfig:
    """The config with ``training.timesteps`` as the total to reach (earlier steps included)."""
    if plan.resume is None:
        return plan.config
    if plan.extra_timesteps is not None:
        return plan.config.with_training(timesteps=done + plan.extra_timesteps)
    target = plan.config.training.timesteps
    if done >= target:
        raise ConfigError(
            f"{plan.resume.model} has already trained {done} of its {target} timesteps: "
            "pass --timesteps N to train N more"
        )
    return plan.config


def _start(
    plan: TrainPlan, config: RunConfig, run_dir: Path, done: int, rng_seed: int
) -> dict[str, Any]:
    command = shlex.join([*shlex.split(plan.request.prog), *plan.request.argv])
    write_yaml(run_dir / "config.yml", config.to_yaml_dict())
    write_yaml(run_dir / "args.yml", plan.args_record())
    write_text_atomic(run_dir / "command.txt", command + "\n")
    manifest = {
        "algo": algo_class(config.training.algo).__name__,
        "policy": policy_name(config.training.algo),
        "env_id": envs.ENV_ID,
        "profile": plan.profile,
        "backend": plan.backend,
        "seed": plan.seed,
        "rng_seed": rng_seed,
        "n_envs": config.training.n_envs,
        "status": "running",
        "timesteps": done,
        "timesteps_at_start": done,
        "timesteps_target": config.training.timesteps,
        "resumed_from": str(plan.resume.model) if plan.resume else None,
        "start_time": now_iso(),
        "end_time": None,
        "wall_time_s": None,
        "command": command,
        "versions": versions(),
        **git_state(),
    }
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def _train(
    plan: TrainPlan, config: RunConfig, model: PPO, run_dir: Path, manifest: dict[str, Any]
) -> TrainOutcome:
    model.set_logger(_logger(run_dir, verbose=int(config.ppo.get("verbose", 0))))
    started = time.monotonic()
    try:
        status = _learn(model, config, run_dir, plan.progress, resumed=plan.resume is not None)
        save_model(model, run_dir)
    except BaseException:
        manifest.update(status="failed", timesteps=model.num_timesteps, end_time=now_iso())
        write_json(run_dir / "manifest.json", manifest)
        raise
    manifest.update(
        status=status,
        timesteps=model.num_timesteps,
        end_time=now_iso(),
        wall_time_s=round(time.monotonic() - started, 3),
    )
    write_json(run_dir / "manifest.json", manifest)
    return TrainOutcome(run_dir, status, model.num_timesteps)


def _learn(model: PPO, config: RunConfig, run_dir: Path, progress: bool, resumed: bool) -> str:
    """``model.learn`` up to the target; ``interrupted`` if a signal or Ctrl-C ended it."""
    remaining = config.training.timesteps - model.num_timesteps
    try:
        with GracefulStop() as stop:
            model.learn(
                remaining,
                callback=_callbacks(config, run_dir, stop),
                reset_num_timesteps=not resumed,
                progress_bar=progress,
            )
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, still save what there is
        return "interrupted"
    return "interrupted" if stop.requested else "completed"


def _callbacks(config: RunConfig, run_dir: Path, stop: GracefulStop) -> CallbackList:
    every = config.training.checkpoint_every
    callbacks: list[BaseCallback] = [KpiLogger(), StopOnRequest(stop)]
    qos = config.training.qos()
    if qos.enabled:
        from k8s_gpu_rl.agents.constraint import QosLagrangian

        reward = config.env.reward
        callbacks.insert(0, QosLagrangian(qos, reward.w_qos, reward.qos_budget))
    if every:
        callbacks.insert(0, Checkpoint(run_dir / CHECKPOINT_DIR, every))
    return CallbackList(callbacks)


def _logger(run_dir: Path, verbose: int) -> Logger:
    """TensorBoard events in ``tensorboard/``, the same scalars in ``progress.csv``."""
    formats = [
        make_output_format("tensorboard", str(run_dir / "tensorboard")),
        make_output_format("csv", str(run_dir)),
    ]
    if verbose >= 1:
        formats.append(make_output_format("stdout", str(run_dir)))
    return Logger(folder=str(run_dir), output_formats=formats)


def save_model(model: PPO, run_dir: Path) -> None:
    """``model.zip`` and ``vecnormalize.pkl``, each written atomically."""
    save_model_files(model, run_dir / MODEL_FILE, run_dir / VECNORMALIZE_FILE)
