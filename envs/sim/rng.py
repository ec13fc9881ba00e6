"""Seeding the serving kernel's random source.

The C kernel (``envs/sim/kernel.c``) draws from its own 64-bit SplitMix64 state, seeded
once per cluster from the environment's ``np_random``: the same seed replays the same
episode bit for bit, and two environments in one process never share a stream.
"""

from __future__ import annotations

import numpy as np


def seed_state(seed: int) -> np.ndarray:
    """A fresh one-element ``uint64`` state array from a Python integer seed."""
    return np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
