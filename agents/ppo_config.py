"""The training configuration: the shipped ``agents/ppo.yaml``, merged with a user's file, validated.

A run's configuration has four sections:

* ``ppo``: keyword arguments of :class:`stable_baselines3.PPO` (``policy_kwargs`` included,
  with ``activation_fn`` as a name); checked against PPO's signature;
* ``env``: :class:`k8s_gpu_rl.envs.config.EnvConfig` fields (``reward:`` weights, ``slo_ms`` ...);
* ``cluster``: the simulated cluster, a shipped name, a YAML path or a mapping of
  :class:`k8s_gpu_rl.envs.sim.config.ClusterConfig` fields merged over the default cluster;
* ``training``: :class:`TrainingConfig`.

Every mistake is a :class:`~k8s_gpu_rl.errors.ConfigError` that names the file, the key and
what is allowed, with a "did you mean" for a misspelt key (as rl-baselines3-zoo does).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from k8s_gpu_rl.config import check, from_dict, read_yaml, replace, suggest, to_dict
from k8s_gpu_rl.envs.config import EnvConfig
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config
from k8s_gpu_rl.errors import ConfigError

DEFAULTS_PATH = Path(__file__).with_name("ppo.yaml")
SECTIONS = ("ppo", "env", "cluster", "training")
SET_BY_TRAIN = {
    "policy": "train uses MlpPolicy",
    "env": "train builds the vectorised K8sGpu-v0 env",
    "seed": "use --seed",
    "tensorboard_log": "TensorBoard files go to the run directory's tensorboard/",
    "_init_setup_model": "internal to SB3",
    "rollout_buffer_class": "a Python class cannot be given in YAML",
}
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")
NOT_IN_POLICY_KWARGS = ("observation_space", "action_space", "lr_schedule", "use_sde")


ALGOS = ("ppo", "maskable_ppo", "recurrent_ppo")


@dataclass(frozen=True)
class QosConstraint:
    """The QoS budget as a constraint: a Lagrangian multiplier on the QoS term (issue 12).

    After every rollout the multiplier (the env's ``reward.w_qos``) moves by
    ``lr * (min(rate / budget, max_ratio) - 1)``, where ``rate`` is the rollout's measured
    violation rate (violating requests / requests, all envs together) and ``budget`` the
    env's ``reward.qos_budget``; then it is clipped to ``[w_min, w_max]``. Above the
    budget the penalty grows, below it it shrinks (dual ascent on the constraint
    ``rate <= budget``)."""

    enabled: bool = False
    """Adapt ``w_qos`` per rollout; false: the fixed weight of ``env.reward``."""
    lr: float = 0.5
    """Step size of the multiplier per rollout, per unit of (rate / budget - 1)."""
    initial: float | None = None
    """Starting multiplier; null: the env's ``reward.w_qos``."""
    w_min: float = 0.0
    """Lowest multiplier."""
    w_max: float = 50.0
    """Highest multiplier."""
    max_ratio: float = 10.0
    """rate / budget is capped here before the update, so one bad rollout moves it by at
    most ``lr * (max_ratio - 1)``."""

    def __post_init__(self) -> None:
        check(self.lr > 0, f"qos_lr must be positive, got {self.lr}")
        check(
            0 <= self.w_min <= self.w_max,
            f"need 0 <= qos_w_min <= qos_w_max, got {self.w_min}, {self.w_max}",
        )
        check(
            self.initial is None or self.w_min <= self.initial <= self.w_max,
            f"qos_initial must lie in [qos_w_min, qos_w_max], got {self.initial}",
        )
        check(self.max_ratio > 1, f"qos_max_ratio must be > 1, got {self.max_ratio}")


@dataclass(frozen=True)
class TrainingConfig:
    """How long to train, how many envs, and how observations and rewards are normalised."""

    timesteps: int = 300_000
    """Environment steps in all (all envs together); PPO rounds up to whole rollouts."""
    n_envs: int = 2
    """Envs stepped in parallel: SubprocVecEnv when above 1, DummyVecEnv at 1."""
    checkpoint_every: int = 50_000
    """Steps (all envs together) between checkpoints in ``checkpoints/``; 0 for none."""
    norm_obs: bool = True
    """VecNormalize: standardise observations by their running mean and variance."""
    norm_reward: bool = True
    """VecNormalize: scale rewards by the running std of the discounted return."""
    clip_obs: float = 10.0
    """VecNormalize: clip normalised observations to plus or minus this."""
    clip_reward: float = 10.0
    """VecNormalize: clip scaled rewards to plus or minus this."""
    torch_threads: int = 1
    """``torch.set_num_threads`` in the trainer and in every env worker process."""
    algo: Literal["ppo", "maskable_ppo", "recurrent_ppo"] = "ppo"
    """``ppo``: stable-baselines3 PPO, invalid actions clipped by the env; ``maskable_ppo``:
    sb3-contrib MaskablePPO, invalid actions masked (the env's ``action_masks()``);
    ``recurrent_ppo``: sb3-contrib RecurrentPPO, an LSTM policy (``MlpLstmPolicy``;
    ``ppo.policy_kwargs.lstm_hidden_size`` sizes it), invalid actions clipped."""
    profile: str | None = None
    """Training profile when ``--profile`` is not given (null: mixed). A generator spec
    without a seed (``random``, ``random:shape=bursts,max_users=150``) draws a new
    generated profile at every reset."""
    qos_constraint: bool = False
    """The QoS budget as a constraint: ``env.reward.w_qos`` becomes a Lagrangian multiplier
    updated after every rollout (:class:`QosConstraint`, the ``qos_*`` fields below)."""
    qos_lr: float = 0.5
    """Multiplier step per rollout, per unit of (violation rate / budget - 1)."""
    qos_initial: float | None = None
    """Starting multiplier; null: ``env.reward.w_qos``."""
    qos_w_min: float = 0.0
    """Lowest multiplier."""
    qos_w_max: float = 50.0
    """Highest multiplier."""
    qos_max_ratio: float = 10.0
    """Violation rate / budget is capped here before each update."""

    def qos(self) -> QosConstraint:
        """The ``qos_*`` fields as the Lagrangian callback's settings (validated)."""
        return QosConstraint(
            self.qos_constraint,
            self.qos_lr,
            self.qos_initial,
            self.qos_w_min,
            self.qos_w_max,
            self.qos_max_ratio,
        )

    def __post_init__(self) -> None:
        check(self.timesteps >= 1, f"timesteps must be >= 1, got {self.timesteps}")
        check(self.n_envs >= 1, f"n_envs must be >= 1, got {self.n_envs}")
        check(
            self.checkpoint_every >= 0,
            f"checkpoint_every must be >= 0, got {self.checkpoint_every}",
        )
        check(self.clip_obs > 0, f"clip_obs must be positive, got {self.clip_obs}")
        check(self.clip_reward > 0, f"clip_reward must be positive, got {self.clip_reward}")
        check(self.torch_threads >= 1, f"torch_threads must be >= 1, got {self.torch_threads}")
        self.qos()  # raises ConfigError naming a bad qos_* value


@dataclass(frozen=True)
class RunConfig:
    """One training run's validated configuration (what ``config.yml`` holds)."""

    ppo: dict[str, Any]
    """PPO keyword arguments as written in YAML (activation as a name)."""
    env: EnvConfig
    cluster: ClusterConfig
    training: TrainingConfig

    def to_yaml_dict(self) -> dict[str, Any]:
        """Plain data for ``config.yml``; :func:`build_run_config` reads it back unchanged."""
        return {
            "ppo": copy.deepcopy(self.ppo),
            "env": to_dict(self.env),
            "cluster": to_dict(self.cluster),
            "training": to_dict(self.training),
        }

    def with_training(self, **changes: Any) -> RunConfig:
        """A copy with ``training`` fields replaced (validated)."""
        training = replace(self.training, "training", **changes)
        return RunConfig(self.ppo, self.env, self.cluster, training)


def load_defaults() -> dict[str, Any]:
    """The shipped ``agents/ppo.yaml`` as plain data."""
    return read_yaml(DEFAULTS_PATH)


def merge_config(base: Mapping[str, Any], override: Any, where: str) -> dict[str, Any]:
    """``override`` (a user's file content) merged over ``base``; sections are checked by name."""
    merged = copy.deepcopy(dict(base))
    if override is None:
        return merged
    if not isinstance(override, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping with sections {', '.join(SECTIONS)}, got {override!r}"
        )
    for section, value in override.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{where}: unknown section {section!r}{suggest(str(section), SECTIONS)}; "
                f"allowed: {', '.join(SECTIONS)}"
            )
        if section == "cluster":
            merged["cluster"] = _merge_cluster(merged.get("cluster"), value)
        elif value is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: {section}: expected a mapping, got {value!r}")
            merged[section] = _deep_merge(merged.get(section) or {}, value)
    return merged


def build_run_config(data: Mapping[str, Any], where: str) -> RunConfig:
    """Validate merged config data into a :class:`RunConfig`."""
    return RunConfig(
        ppo=check_ppo_kwargs(data.get("ppo") or {}, f"{where}: ppo"),
        env=from_dict(EnvConfig, data.get("env") or {}, f"{where}: env"),
        cluster=_cluster(data.get("cluster"), f"{where}: cluster"),
        training=from_dict(TrainingConfig, data.get("training") or {}, f"{where}: training"),
    )


def load_run_config(path: str | Path | None, base: Mapping[str, Any] | None = None) -> RunConfig:
    """The user's file at ``path`` (if any) merged over ``base`` (default: the shipped YAML)."""
    where = str(path) if path is not None else str(DEFAULTS_PATH)
    override = read_yaml(path) if path is not None else None
    return build_run_config(merge_config(base or load_defaults(), override, where), where)


def check_ppo_kwargs(ppo: Any, where: str) -> dict[str, Any]:
    """Check PPO keyword arguments by name and by the type of PPO's default; returns a copy."""
    if not isinstance(ppo, Mapping):
        raise ConfigError(f"{where}: expected a mapping of PPO arguments, got {ppo!r}")
    defaults = _ppo_defaults()
    out: dict[str, Any] = {}
    for key, value in ppo.items():
        if key in SET_BY_TRAIN:
            raise ConfigError(f"{where}.{key}: cannot be set here: {SET_BY_TRAIN[key]}")
        if key not in defaults:
            allowed = sorted(k for k in defaults if k not in SET_BY_TRAIN)
            raise ConfigError(
                f"{where}: unknown key {key!r}{suggest(str(key), allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )
        if key == "policy_kwargs":
            out[key] = _check_policy_kwargs(value, f"{where}.policy_kwargs")
        else:
            out[key] = _check_value(value, defaults[key], f"{where}.{key}")
    _check_ranges(out, where)
    return out


def ppo_kwargs(ppo: Mapping[str, Any]) -> dict[str, Any]:
    """Checked YAML-form PPO arguments to what :class:`stable_baselines3.PPO` takes."""
    kwargs = copy.deepcopy(dict(ppo))
    policy_kwargs = kwargs.get("policy_kwargs")
    if policy_kwargs and "activation_fn" in policy_kwargs:
        policy_kwargs["activation_fn"] = _activation(policy_kwargs["activation_fn"])
    return kwargs


def _merge_cluster(base: Any, value: Any) -> Any:
    """A mapping merges over the base cluster's fields; anything else replaces it."""
    if not isinstance(value, Mapping):
        return value
    return _deep_merge(to_dict(load_cluster_config(base)), value)


def _cluster(value: Any, where: str) -> ClusterConfig:
    if isinstance(value, Mapping):
        return from_dict(ClusterConfig, value, where)
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{where}: expected a cluster name, a YAML path or a mapping, got {value!r}"
        )
    return load_cluster_config(value)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@cache
def _ppo_defaults() -> dict[str, Any]:
    from stable_baselines3 import PPO  # imported here: a config error should not wait for torch

    params = inspect.signature(PPO.__init__).parameters
    return {name: p.default for name, p in params.items() if name != "self"}


def _check_value(value: Any, default: Any, where: str) -> Any:
    """Type by PPO's default: bool, int, float (a numeric string too), str; None: number or mapping."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        return _number(value, where, allow_none=False)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif default is None and not (value is None or isinstance(value, Mapping)):
        return _number(value, where, allow_none=True)
    return copy.deepcopy(value)


def _number(value: Any, where: str, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{where}: expected a number{' or null' if allow_none else ''}, got {value!r}"
        )
    return float(value)


def _check_ranges(ppo: Mapping[str, Any], where: str) -> None:
    rules = {
        "n_steps": (lambda v: v >= 1, ">= 1"),
        "batch_size": (lambda v: v >= 2, ">= 2"),
        "n_epochs": (lambda v: v >= 1, ">= 1"),
        "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
        "gae_lambda": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "learning_rate": (lambda v: v > 0, "positive"),
        "clip_range": (lambda v: v > 0, "positive"),
    }
    for key, (ok, allowed) in rules.items():
        if key in ppo and not ok(ppo[key]):
            raise ConfigError(f"{where}.{key}: must be {allowed}, got {ppo[key]!r}")


def _check_policy_kwargs(value: Any, where: str) -> dict[str, Any]:
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from stable_baselines3.common.policies import ActorCriticPolicy

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    # Either policy's keys (the LSTM ones serve training.algo recurrent_ppo; PPO names any
    # it does not take when the model is built).
    params = {
        **inspect.signature(ActorCriticPolicy.__init__).parameters,
        **inspect.signature(RecurrentActorCriticPolicy.__init__).parameters,
    }
    allowed = sorted(k for k in params if k not in ("self", *NOT_IN_POLICY_KWARGS))
    for key, item in value.items():
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}{suggest(str(key), allowed)}; allowed: {', '.join(allowed)}"
            )
        if key == "activation_fn":
            _activation(item, where)
        elif key == "net_arch":
            _check_net_arch(item, f"{where}.net_arch")
        elif isinstance(params[key].default, type):
            raise ConfigError(f"{where}.{key}: a Python class cannot be given in YAML")
    return copy.deepcopy(dict(value))


def _check_net_arch(value: Any, where: str) -> None:
    layers = list(value.values()) if isinstance(value, Mapping) else [value]
    if isinstance(value, Mapping) and set(value) != {"pi", "vf"}:
        raise ConfigError(
            f"{where}: a mapping needs exactly the keys pi and vf, got {sorted(value)}"
        )
    for sizes in layers:
        if not isinstance(sizes, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes
        ):
            raise ConfigError(f"{where}: expected a list of positive layer sizes, got {sizes!r}")


def _activation(name: Any, where: str = "ppo.policy_kwargs") -> Any:
    import torch.nn as nn

    classes = {
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
    }
    key = str(name).lower().removeprefix("nn.")
    key = {"leakyrelu": "leaky_relu"}.get(key, key)
    if key not in classes:
        raise ConfigError(
            f"{where}.activation_fn: unknown activation {name!r}{suggest(key, ACTIVATIONS)}; "
            f"allowed: {', '.join(ACTIVATIONS)}"
        )
    return classes[key]
