"""A trained PPO agent as a policy for a plain (un-normalised) K8sGpuEnv.

:meth:`PPOPolicy.load` takes a run directory, a ``model.zip`` or a checkpoint zip, and
the VecNormalize statistics saved beside it. :meth:`PPOPolicy.predict` has SB3's
signature, so ``evaluate_policy`` and the project's ``evaluate`` treat the agent like
the HPA, static and oracle baselines::

    policy = PPOPolicy.load("runs/ppo-mixed-0-20250101-120000")
    env = K8sGpuEnv(profile="mixed")
    obs, _ = env.reset(seed=1)
    action, _ = policy.predict(obs)          # deterministic by default

Observations are normalised with the saved running mean and variance, which are never
updated here.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from k8s_gpu_rl.agents.run_dir import SavedModel, find_saved_model
from k8s_gpu_rl.config import read_yaml
from k8s_gpu_rl.errors import ConfigError


class PPOPolicy:
    """A PPO model plus the frozen observation statistics it was trained with."""

    name = "ppo"

    def __init__(self, model: PPO, obs_stats: VecNormalize, source: SavedModel) -> None:
        self.model = model
        self.obs_stats = obs_stats
        self.obs_stats.training = False
        self.source = source
        config = source.run_file("config.yml")
        self.run_config: dict[str, Any] | None = read_yaml(config) if config else None
        """The training run's config.yml (its ``env`` section: the EnvConfig trained on), if found."""

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> PPOPolicy:
        """Load from a run directory (its ``model.zip``, else its latest checkpoint) or a zip."""
        source = find_saved_model(path)
        if source.vecnormalize is None:
            raise ConfigError(f"{path}: no VecNormalize statistics beside {source.model}")
        from k8s_gpu_rl.agents.trainer import algo_class

        try:
            model = algo_class(_algo(source)).load(source.model, device=device)
            with open(source.vecnormalize, "rb") as handle:
                stats = pickle.load(handle)
        except (OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            raise ConfigError(f"{path}: cannot load the model ({exc})") from None
        if not isinstance(stats, VecNormalize):
            raise ConfigError(f"{source.vecnormalize}: not VecNormalize statistics")
        return cls(model, stats, source)

    @property
    def observation_space(self) -> spaces.Space:
        return self.model.observation_space

    @property
    def action_space(self) -> spaces.Space:
        return self.model.action_space

    @property
    def num_timesteps(self) -> int:
        """Environment steps the model was trained for."""
        return self.model.num_timesteps

    def normalise(self, observation: np.ndarray) -> np.ndarray:
        """An env observation (or a batch) as the network saw it in training."""
        return self.obs_stats.normalize_obs(np.asarray(observation, dtype=np.float32))

    @property
    def masked(self) -> bool:
        """Trained with MaskablePPO: :meth:`bind` it to the env so it reads the masks."""
        return type(self.model).__name__ == "MaskablePPO"

    def bind(self, env: Any) -> PPOPolicy:
        """Read ``env.action_masks()`` at every :meth:`predict` (a masked model needs it:
        the logits of actions it never could take were never trained)."""
        self._env = env
        return self

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` on a raw observation (one, or a batch): ``(action, state)``."""
        extra: dict[str, Any] = {}
        env = getattr(self, "_env", None)
        if self.masked and env is not None:
            extra["action_masks"] = _unwrapped(env).action_masks()
        return self.model.predict(
            self.normalise(observation),
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
            **extra,
        )

    def describe(self) -> dict[str, Any]:
        """Parameters for reports, as the baselines' ``describe``."""
        return {
            "name": self.name,
            "model": str(self.source.model),
            "num_timesteps": self.num_timesteps,
        }

    def __repr__(self) -> str:
        return f"PPOPolicy({str(self.source.model)!r}, num_timesteps={self.num_timesteps})"


def _algo(source: SavedModel) -> str:
    """``training.algo`` of the run that saved the model (``ppo`` when unknown)."""
    config = source.run_file("config.yml")
    data = read_yaml(config) if config else None
    training = data.get("training") if isinstance(data, dict) else None
    return str((training or {}).get("algo", "ppo"))


def _unwrapped(env: Any) -> Any:
    return getattr(env, "unwrapped", env)
