"""HAMi's fit rule over every GPU of the world at once (for action masks, in numpy).

The same rule as :func:`k8s_gpu_rl.envs.sim.hami.fits`, broadcast over jobs x GPUs;
``tests/test_jobs_sim.py`` checks the two agree on random ledgers. The authoritative
check of a placement stays ``hami.fits`` (:meth:`World.place`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.jobs.sim.world import World


def ledger_arrays(world: World) -> dict[str, np.ndarray]:
    """Flattened ledger: one entry per GPU, clusters in order (cached until a change)."""
    cached = getattr(world, "_ledger_cache", None)
    if cached is not None and cached[0] == world.changes:
        return cached[1]
    arrays = _ledger(world)
    world._ledger_cache = (world.changes, arrays)
    return arrays


def _ledger(world: World) -> dict[str, np.ndarray]:
    slots = [s for row in world.slots for s in row]
    return {
        "memory": np.array([s.memory_mib for s in slots]),
        "used_memory": np.array([s.used_memory_mib for s in slots]),
        "cores": np.array([s.cores for s in slots]),
        "used_cores": np.array([s.used_cores for s in slots]),
        "tasks": np.array([s.used_tasks for s in slots]),
        "split": np.array([s.split_count for s in slots]),
        "healthy": np.array([s.healthy for s in slots]),
    }


def fits_matrix(
    ledger: dict[str, np.ndarray], memory_mib: np.ndarray, cores: np.ndarray
) -> np.ndarray:
    """bool [jobs, GPUs]: whether a task of ``memory_mib[k]``, ``cores[k]`` fits each GPU."""
    m = memory_mib[:, None]
    c = cores[:, None]
    ok = ledger["healthy"] & (ledger["tasks"] < ledger["split"])
    ok = ok & (ledger["memory"] - ledger["used_memory"] >= m)
    ok = ok & (ledger["cores"] - ledger["used_cores"] >= c)
    ok = ok & ~((c >= 100) & (ledger["tasks"] > 0))
    return ok & ~((c == 0) & (ledger["used_cores"] >= ledger["cores"]))
