"""A counter-based random source for the compiled serving kernel.

The kernel cannot share NumPy's ``Generator`` and must not use numba's thread-global
``np.random``: each cluster carries its own 64-bit SplitMix64 state, seeded once from the
environment's ``np_random``, so the same seed replays the same episode bit for bit, and
two environments in one process never share a stream.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always", _nrt=False)
def next_u64(state: np.ndarray) -> np.uint64:
    """SplitMix64: advance ``state[0]`` and return 64 well-mixed bits."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always", _nrt=False)
def uniform(state: np.ndarray) -> float:
    """A float in [0, 1) with 53 random bits."""
    return float(next_u64(state) >> np.uint64(11)) * _INV_2_53


@njit(cache=True, inline="always", _nrt=False)
def uniform_between(state: np.ndarray, low: float, high: float) -> float:
    """A float in [low, high), as Locust's ``between(low, high)`` draws wait times."""
    return low + (high - low) * uniform(state)


@njit(cache=True, inline="always", _nrt=False)
def randint(state: np.ndarray, n: int) -> int:
    """An integer in [0, n) (n > 0)."""
    return int(uniform(state) * n)


@njit(cache=True, inline="always", _nrt=False)
def standard_normal(state: np.ndarray) -> float:
    """Box-Muller; one of the pair is discarded to keep the stream stateless."""
    u1 = 1.0 - uniform(state)
    u2 = uniform(state)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True, inline="always", _nrt=False)
def exponential(state: np.ndarray, mean: float) -> float:
    """Exponential variate with the given mean."""
    return -mean * math.log(1.0 - uniform(state))


def seed_state(seed: int) -> np.ndarray:
    """A fresh one-element ``uint64`` state array from a Python integer seed."""
    return np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
