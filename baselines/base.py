"""What every baseline shares: the policy protocol and turning a wish into an env action.

A baseline is a *policy*, as STYLE.md asks: it has stable-baselines3's
``predict(observation, state=None, episode_start=None, deterministic=True) -> (action,
state)``, so ``evaluate`` (and SB3's ``evaluate_policy``) drives the RL agent and the
baselines alike. Unlike the agent, a baseline reads what its real counterpart reads:
:meth:`BaselinePolicy.bind` hands it the environment, and it looks at
``env.unwrapped.backend`` (``pod_metrics()``, ``deployment()``, ``now_s()``) exactly where
the Kubernetes controller would ask the API server and metrics-server. The observation
vector itself is ignored.

The controller decides a desired ``(replicas, gpucores)``; :meth:`BaselinePolicy.encode`
turns it into the env's action indices with ``K8sGpuEnv.action_for``
(:func:`k8s_gpu_rl.envs.config.encode_action`). **Actuation limits:** the env
changes replicas by at most the largest entry of ``EnvConfig.replica_deltas`` (+-2 by
default) per 15 s step, so a controller that wants +5 moves +2, +2, +1 over three steps
(the real HPA would write +5 at once); with the default relative share action the share
moves one level of ``share_levels`` per step. The controllers re-read the Deployment
every step, so they see what was actually applied (including the env's clipping to
``max_replicas`` and to what HAMi can place).
"""

from __future__ import annotations

import abc
import math
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from k8s_gpu_rl.envs.backends.base import Backend, DeploymentState
from k8s_gpu_rl.envs.config import EnvConfig, delta_index
from k8s_gpu_rl.envs.config import encode_action as envs_encode_action


class Desired(NamedTuple):
    """What a controller wants the Deployment to be."""

    replicas: int
    gpucores: int


@runtime_checkable
class Policy(Protocol):
    """The SB3 policy interface every compared policy implements."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | bool | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...


def unwrap_env(env: Any) -> Any:
    """The :class:`~k8s_gpu_rl.envs.k8s_gpu_env.K8sGpuEnv` behind wrappers or a one-env ``VecEnv``."""
    if hasattr(env, "envs"):  # DummyVecEnv (SB3's evaluate_policy wraps envs in one)
        if len(env.envs) != 1:
            raise ValueError(
                f"a baseline controls one cluster; got a VecEnv of {len(env.envs)} envs"
            )
        env = env.envs[0]
    inner = getattr(env, "unwrapped", env)
    if not hasattr(inner, "backend") or not hasattr(inner, "config"):
        raise TypeError(f"expected a K8sGpuEnv (or a wrapper of one), got {type(inner).__name__}")
    return inner


def reachable_replicas(config: EnvConfig, current_replicas: int, desired_replicas: int) -> int:
    """The spec.replicas one step can set on the way to ``desired_replicas`` (before the
    env's own min/max and HAMi-capacity clipping)."""
    return (
        current_replicas
        + config.replica_deltas[delta_index(config, current_replicas, desired_replicas)]
    )


def encode_action(
    config: EnvConfig, current_replicas: int, desired: Desired, current_gpucores: int | None = None
) -> np.ndarray:
    """:func:`k8s_gpu_rl.envs.config.encode_action` for a :class:`Desired` (the share counts as
    reached when ``current_gpucores`` is not given)."""
    current = desired.gpucores if current_gpucores is None else current_gpucores
    return envs_encode_action(config, current_replicas, current, desired.replicas, desired.gpucores)


def roll_share_first(backend: Backend, desired: Desired) -> Desired:
    """``desired``, except while the Deployment is not yet at ``desired.gpucores``: then
    hold the replica count and move the share, one rollout at a time.

    Rolling and scaling up at once can leave new pods Pending for good on a full GPU (a
    surge pod of the new share does not fit beside the old pods, and maxUnavailable
    rounds down to 0 below 4 replicas, so no old pod makes room). With the env's relative
    share action a far level takes several steps; each waits for the previous rollout.
    """
    dep = backend.deployment()
    if dep.rollout_in_progress:
        return Desired(dep.spec_replicas, dep.gpucores)
    if dep.gpucores != desired.gpucores:
        return Desired(dep.spec_replicas, desired.gpucores)
    return desired


def is_episode_start(episode_start: np.ndarray | bool | None) -> bool:
    """Whether SB3's ``episode_start`` flag (bool or one-element array) is set."""
    if episode_start is None:
        return False
    return bool(np.any(np.asarray(episode_start)))


class BaselinePolicy(abc.ABC):
    """A controller behind SB3's ``predict``; subclasses implement :meth:`decide`.

    ``predict`` resets the controller's memory on ``episode_start`` (or when cluster
    time went backwards, i.e. the env was reset without telling it), asks :meth:`decide`
    for a :class:`Desired` and encodes it. A batched observation (shape ``(1, n)``, as
    from a ``VecEnv``) gets a batched action back.
    """

    name: str = "baseline"

    def __init__(self) -> None:
        self.env: Any = None
        self._last_now_s = math.inf
        self.last_desired: Desired | None = None
        self.status: dict[str, float] = {}
        """The controller's view at its last decision (metric values, mode), for reports."""

    # --- binding -----------------------------------------------------------
    def bind(self, env: Any) -> BaselinePolicy:
        """Attach to ``env`` (a K8sGpuEnv, a wrapper of one, or a one-env VecEnv)."""
        self.env = unwrap_env(env)
        self.reset()
        return self

    def _bound(self) -> Any:
        if self.env is None:
            raise RuntimeError(f"{type(self).__name__}: call bind(env) before predict()")
        return self.env

    @property
    def backend(self) -> Backend:
        return self._bound().backend

    @property
    def config(self) -> EnvConfig:
        return self._bound().config

    def deployment(self) -> DeploymentState:
        return self.backend.deployment()

    # --- SB3 interface ------------------------------------------------------
    def reset(self) -> None:
        """Forget everything learnt in the previous episode (the controller restarts)."""
        self._last_now_s = -math.inf
        self.last_desired = None
        self.status = {}

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | bool | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The action for the cluster as it is now (the observation is not used)."""
        now_s = self.backend.now_s()
        if is_episode_start(episode_start) or now_s < self._last_now_s:
            self.reset()
        self._last_now_s = now_s
        desired = self.decide(now_s)
        self.last_desired = desired
        action = self.encode(desired)
        batched = np.ndim(observation) > 1
        return (action[None, :] if batched else action), state

    def encode(self, desired: Desired) -> np.ndarray:
        """The env's action for ``desired`` (``K8sGpuEnv.action_for``)."""
        return self._bound().action_for(desired.replicas, desired.gpucores)

    @abc.abstractmethod
    def decide(self, now_s: float) -> Desired:
        """The desired Deployment at cluster time ``now_s``."""

    def describe(self) -> dict[str, Any]:
        """Parameters for reports (``name`` plus the controller's settings)."""
        return {"name": self.name}
