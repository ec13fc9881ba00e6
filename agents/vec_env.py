"""The vectorised, normalised K8sGpu-v0 env that PPO trains on.

``n_envs`` copies of ``gymnasium.make("K8sGpu-v0", ...)``, each in a ``Monitor`` (SB3's
``rollout/ep_rew_mean`` and ``ep_len_mean``), stepped in worker processes
(``SubprocVecEnv``) when there is more than one, and wrapped in ``VecNormalize``.

Worker processes ignore SIGINT and SIGTERM: a Ctrl-C in a terminal reaches the whole
process group, and the trainer (not the workers) decides when to stop; the workers end
when the trainer closes the env.
"""

from __future__ import annotations

import pickle
import signal
from functools import partial
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from k8s_gpu_rl import envs
from k8s_gpu_rl.agents.ppo_config import RunConfig
from k8s_gpu_rl.envs.config import EnvConfig
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.errors import ConfigError


def make_env(
    profile: str,
    backend: str,
    env_config: EnvConfig,
    cluster: ClusterConfig,
    torch_threads: int,
    in_worker: bool,
) -> gym.Env:
    """One monitored env; ``in_worker``: this runs in a SubprocVecEnv worker process."""
    if in_worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        torch.set_num_threads(torch_threads)
    env = gym.make(
        envs.ENV_ID, profile=profile, backend=backend, cluster=cluster, config=env_config
    )
    return Monitor(env)


def build_vec_env(profile: str, backend: str, config: RunConfig) -> VecEnv:
    """``n_envs`` envs, in worker processes when more than one (not yet normalised)."""
    n = config.training.n_envs
    factory = partial(
        make_env, profile, backend, config.env, config.cluster, config.training.torch_threads, n > 1
    )
    return SubprocVecEnv([factory] * n) if n > 1 else DummyVecEnv([factory])


def normalise(venv: VecEnv, config: RunConfig, stats: Path | None) -> VecNormalize:
    """Wrap ``venv`` in VecNormalize: fresh, or with the statistics saved at ``stats``."""
    t = config.training
    gamma = float(config.ppo.get("gamma", 0.99))
    if stats is None:
        return VecNormalize(
            venv,
            norm_obs=t.norm_obs,
            norm_reward=t.norm_reward,
            clip_obs=t.clip_obs,
            clip_reward=t.clip_reward,
            gamma=gamma,
        )
    try:
        vec_normalize = VecNormalize.load(str(stats), venv)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{stats}: cannot load VecNormalize statistics ({exc})") from None
    if vec_normalize.norm_obs != t.norm_obs:
        raise ConfigError(
            f"training.norm_obs cannot change when resuming: the model was trained with "
            f"norm_obs={vec_normalize.norm_obs}"
        )
    vec_normalize.training = True
    vec_normalize.norm_reward = t.norm_reward
    vec_normalize.clip_obs = t.clip_obs
    vec_normalize.clip_reward = t.clip_reward
    vec_normalize.gamma = gamma
    return vec_normalize
