"""The shape families of the profile generator (``loadprofiles/generator.py``).

Each shape is a function ``(n, step_s, rng) -> (level, rates)`` over ``n`` steps of
``step_s`` seconds: ``level`` (float64, in [0, 1]) is the load's normalised level per step,
``rates`` the spawn rate (users/s) of the change that starts each step, NaN where the
change is smooth (the generator then spreads it over the step). Every random draw comes
from ``rng``, in a fixed order, so a seed fixes the shape. The ranges drawn from are the
module constants, documented in the generator's docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

FLASH_SPAWN_RANGE = (10.0, 50.0)
"""Users/s at which a flash crowd arrives and leaves."""
STEP_SPAWN_RANGE = (0.5, 10.0)
"""Users/s of a ``steps`` change."""
HOLD_RANGE_S = (120.0, 300.0)
"""How long a ``steps`` level holds, in seconds."""
KNOTS_RANGE = (3, 6)
"""Number of knots (levels) of a ``ramps`` curve, inclusive."""
BASE_RANGE = (0.05, 0.4)
"""Base level under ``bursts``' flash crowds."""
CROWDS_RANGE = (1, 4)
"""Number of flash crowds, inclusive."""
CROWD_LEVEL_RANGE = (0.6, 1.0)
"""Level a flash crowd reaches."""
CROWD_LENGTH_RANGE_S = (30.0, 180.0)
"""How long a flash crowd stays, in seconds."""
DIURNAL_LOW_RANGE = (0.0, 0.3)
DIURNAL_HIGH_RANGE = (0.7, 1.0)
DIURNAL_CYCLES_RANGE = (1.0, 3.0)
MIX_DIURNAL_SCALE = 0.6
"""``mix``: the diurnal curve is scaled into [0, this], the crowds go above it."""

Shape = Callable[[int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def steps(n: int, step_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random levels held for random times, each change at a random rate."""
    level, rates = np.empty(n), np.full(n, math.nan)
    k = 0
    while k < n:
        hold = max(1, round(rng.uniform(*HOLD_RANGE_S) / step_s))
        level[k : k + hold] = rng.uniform(0.0, 1.0)
        rates[k] = rng.uniform(*STEP_SPAWN_RANGE)
        k += hold
    return level, rates


def ramps(n: int, step_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Straight ramps between random levels at random times (first and last step are knots)."""
    knots = int(rng.integers(KNOTS_RANGE[0], KNOTS_RANGE[1] + 1))
    inner = np.sort(rng.uniform(0.0, max(n - 1, 1), size=knots - 2))
    times = np.concatenate([[0.0], inner, [max(n - 1, 1)]])
    levels = rng.uniform(0.0, 1.0, size=knots)
    return np.interp(np.arange(n, dtype=float), times, levels), np.full(n, math.nan)


def bursts(n: int, step_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A constant base with flash crowds."""
    level, rates = np.full(n, rng.uniform(*BASE_RANGE)), np.full(n, math.nan)
    _add_flash_crowds(level, rates, step_s, rng)
    return level, rates


def diurnal(n: int, step_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A day's cosine between a low and a high, one to three cycles, random phase."""
    low, high = rng.uniform(*DIURNAL_LOW_RANGE), rng.uniform(*DIURNAL_HIGH_RANGE)
    cycles, phase = rng.uniform(*DIURNAL_CYCLES_RANGE), rng.uniform(0.0, 2 * math.pi)
    t = np.arange(n, dtype=float) / n
    level = low + (high - low) * (0.5 - 0.5 * np.cos(2 * math.pi * cycles * t + phase))
    return level, np.full(n, math.nan)


def mix(n: int, step_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A scaled-down diurnal curve with flash crowds on top."""
    level, rates = diurnal(n, step_s, rng)
    level *= MIX_DIURNAL_SCALE
    _add_flash_crowds(level, rates, step_s, rng)
    return level, rates


def _add_flash_crowds(
    level: np.ndarray, rates: np.ndarray, step_s: float, rng: np.random.Generator
) -> None:
    """Raise ``level`` in place for 1-4 crowds that arrive and leave at flash rates."""
    n = level.size
    for _ in range(int(rng.integers(CROWDS_RANGE[0], CROWDS_RANGE[1] + 1))):
        start = int(rng.uniform(0.1, 0.85) * n)
        end = min(n, start + max(1, round(rng.uniform(*CROWD_LENGTH_RANGE_S) / step_s)))
        level[start:end] = np.maximum(level[start:end], rng.uniform(*CROWD_LEVEL_RANGE))
        rates[start] = rng.uniform(*FLASH_SPAWN_RANGE)
        if end < n:
            rates[end] = rng.uniform(*FLASH_SPAWN_RANGE)


SHAPES: dict[str, Shape] = {
    "steps": steps,
    "ramps": ramps,
    "bursts": bursts,
    "diurnal": diurnal,
    "mix": mix,
}
"""Shape name -> function."""
