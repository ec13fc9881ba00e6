"""Opt-in training levers of :class:`~k8s_gpu_rl.envs.k8s_gpu_env.K8sGpuEnv` (issue 12).

None of these is on by default; the default env is unchanged by this module.

* :class:`ProfileSampler`: a profile drawn from the load-profile generator at every
  ``reset()`` (``profile="random"`` or ``"random:shape=bursts,max_users=120"``: a
  generator spec without a seed). The generator's seed comes from the env's
  ``np_random``, so the same reset seed gives the same episode. The held-out shapes
  (``loadprofiles/heldout/``) are named files that the generator never produces.
* :class:`FrameStack`: the last ``k`` observations side by side (``EnvConfig.frame_stack``).
* :class:`ShareClock`: seconds since the template's gpucores last changed (the
  ``since_share_change`` feature).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from k8s_gpu_rl.envs.config import EnvConfig
from k8s_gpu_rl.envs.observation import EXTRA_FEATURES, FEATURE_NAMES, HIGH
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import LoadProfile
from k8s_gpu_rl.loadprofiles.generator import (
    PREFIX,
    GeneratorSpec,
    generate_profile,
    is_generator_spec,
    parse_spec,
)

SEED_BOUND = 2**31 - 1
"""Generator seeds are drawn in [0, SEED_BOUND)."""


class ProfileSampler:
    """Draws one generated profile per episode from a seedless generator spec."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spec: GeneratorSpec = parse_spec(_with_seed(text, 0))

    @staticmethod
    def wanted(profile: object) -> bool:
        """True for ``random`` and ``random:...`` specs that give no seed."""
        if not isinstance(profile, str) or not is_generator_spec(profile):
            return False
        keys = profile[len(PREFIX) + 1 :].replace(":", ",").split(",")
        return not any(k.strip().partition("=")[0].strip() == "seed" for k in keys)

    def first(self) -> LoadProfile:
        """The profile the env is built with (seed 0): it sizes nothing but the first reset."""
        return generate_profile(self.spec)

    def draw(self, rng: np.random.Generator) -> LoadProfile:
        """A new profile, its generator seed drawn from ``rng``."""
        seed = int(rng.integers(0, SEED_BOUND))
        return generate_profile(dataclasses.replace(self.spec, seed=seed))


def _with_seed(text: str, seed: int) -> str:
    body = text[len(PREFIX) + 1 :] if text.startswith(PREFIX + ":") else ""
    return f"{PREFIX}:seed={seed}" + (f",{body}" if body.strip() else "")


def check_sampler_backend(backend: str) -> None:
    """A profile drawn per episode needs the simulator (a live load generator runs one file)."""
    if backend != "sim":
        raise ConfigError(
            f"a profile drawn at each reset (a generator spec without a seed) needs the sim "
            f"backend, not {backend!r}: give a seed (random:seed=7) for a live backend"
        )


class FrameStack:
    """The last ``k`` observation vectors, oldest first, flattened."""

    def __init__(self, k: int, width: int) -> None:
        self.k = k
        self.buffer = np.zeros((k, width), dtype=np.float32)

    def reset(self, obs: np.ndarray) -> np.ndarray:
        self.buffer[:] = obs
        return self.buffer.reshape(-1).copy()

    def push(self, obs: np.ndarray) -> np.ndarray:
        self.buffer = np.roll(self.buffer, -1, axis=0)
        self.buffer[-1] = obs
        return self.buffer.reshape(-1).copy()


class ShareClock:
    """When the template's gpucores last changed (cluster seconds)."""

    def __init__(self) -> None:
        self.gpucores: int | None = None
        self.changed_s = 0.0

    def reset(self, gpucores: int) -> None:
        self.gpucores, self.changed_s = gpucores, 0.0

    def note(self, gpucores: int, now_s: float) -> None:
        """The template now asks for ``gpucores`` (applied at cluster time ``now_s``)."""
        if gpucores != self.gpucores:
            self.gpucores, self.changed_s = gpucores, now_s

    def since(self, now_s: float) -> float:
        return now_s - self.changed_s


def observation_high(config: EnvConfig) -> np.ndarray:
    """The Box's upper bounds: the standard features, the extras, times ``frame_stack``."""
    by_name = {f.name: f.high for f in EXTRA_FEATURES}
    extras = np.array([by_name[n] for n in config.extra_features], dtype=np.float32)
    one = np.concatenate([HIGH, extras])
    return np.tile(one, config.frame_stack) if config.frame_stack > 1 else one


def feature_names(config: EnvConfig) -> tuple[str, ...]:
    """Names of the observation's entries (``name@t-k`` when stacked, oldest first)."""
    one = (*FEATURE_NAMES, *config.extra_features)
    k = config.frame_stack
    if k == 1:
        return one
    return tuple(f"{name}@t-{k - 1 - lag}" for lag in range(k) for name in one)


def action_masks(env: Any) -> np.ndarray:
    """Which action components ``env`` (a K8sGpuEnv) would take unclipped now, for
    sb3-contrib's ``MaskablePPO``: ``len(replica_deltas)`` flags, then one per share choice.

    A replica change is valid when, with the share held, it needs no clip (within
    ``[min_replicas, max_replicas]``, no scale-up during a rollout, placeable by HAMi); a
    share choice is valid when, with the replicas held, it lies within ``share_levels``
    and its rollout can start. Each component is judged with the other held, so a pair
    of valid components can still be clipped (the env clips it as always). The hold
    choice is kept valid if nothing else is, so a component is never all-masked.
    """
    c = env.config
    hold_i = c.replica_deltas.index(0)
    hold_j = c.share_steps.index(0) if c.share_action == "relative" else env._current_level()
    n_share = int(env.action_space.nvec[1])
    rep_ok = [env._unclipped(i, hold_j) for i in range(len(c.replica_deltas))]
    share_ok = [env._unclipped(hold_i, j) for j in range(n_share)]
    if not any(rep_ok):
        rep_ok[hold_i] = True
    if not any(share_ok):
        share_ok[hold_j] = True
    return np.array(rep_ok + share_ok, dtype=bool)
