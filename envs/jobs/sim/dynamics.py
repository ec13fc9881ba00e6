"""How jobs move: transfers, memory allocation (OOM), progress rates, reservations, deadlock.

Functions over a :class:`~k8s_gpu_rl.envs.jobs.sim.world.World`; see its docstring for
the rules. Kept apart so each rule can be read (and tested) on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from k8s_gpu_rl.envs.jobs.sim.state import ACTIVE, Phase
from k8s_gpu_rl.envs.jobs.sim.truth import GPU_TYPES, MODELS

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.jobs.sim.world import World


def effective_request(gpumem_mib: float, gpucores: float) -> tuple[float, float]:
    """HAMi's defaults: gpumem 0 is the whole card, and then gpucores 0 becomes 100 (the
    webhook makes an exclusive-memory task exclusive). Memory 0 stays 0 in the ledger;
    its limit is the card's physical memory."""
    if gpumem_mib <= 0 and gpucores <= 0:
        return 0.0, 100.0
    return float(gpumem_mib), float(gpucores)


def image_name(model_name: str) -> str:
    """The training image a model runs in (one per family)."""
    return f"image:{MODELS[model_name].family}"


def _cache(world: World, c: int, key: str, gib: float) -> float:
    """Put ``key`` in cluster ``c``'s LRU cache; the GiB that had to move."""
    cache = world.caches[c]
    if key in cache:
        cache.move_to_end(key)
        return 0.0
    capacity = world.config.clusters[c].cache_gib
    if gib <= capacity:
        cache[key] = gib
        while sum(cache.values()) > capacity:
            cache.popitem(last=False)
    return gib


def transfer_gib(world: World, c: int, model_name: str, data_gib: float) -> float:
    """GiB a start on cluster ``c`` moves, without touching the cache (for observations)."""
    model = MODELS[model_name]
    cache = world.caches[c]
    return (
        (0.0 if image_name(model_name) in cache else model.image_gib)
        + (0.0 if model_name in cache else model.weights_gib)
        + data_gib
    )


def start_transfer(world: World, i: int) -> None:
    from k8s_gpu_rl.envs.jobs.sim.world import TRANSFERRED

    j = world.jobs[i]
    model = MODELS[j.spec.model_name]
    gib = _cache(world, j.cluster, image_name(model.name), model.image_gib)
    gib += _cache(world, j.cluster, model.name, model.weights_gib) + j.spec.data_size
    seconds = world.config.clusters[j.cluster].link.transfer_s(gib)
    j.transfer_s += seconds
    j.phase, j.attempt_s = Phase.TRANSFER, world.now_s
    world._push(world.now_s + seconds, TRANSFERRED, i)


def memory_need_mib(world: World, i: int, c: int, g: int) -> float:
    """True memory a worker of job ``i`` needs on GPU ``g`` of cluster ``c``."""
    j = world.jobs[i]
    return (
        j.true_memory_mib * j.attempt_memory_factor * GPU_TYPES[world.gpu_type[c][g]].memory_factor
    )


def allocate_memory(world: World, i: int) -> bool:
    """Allocate every worker's memory, or none: False is a CUDA out-of-memory. Peak
    memory varies between attempts (allocator, cuDNN algorithm choice): each attempt
    draws its own factor ``exp(N(0, attempt_memory_sigma))`` around the job's need."""
    j = world.jobs[i]
    c = j.cluster
    sigma = world.config.truth.attempt_memory_sigma
    j.attempt_memory_factor = float(np.exp(sigma * world.rng.standard_normal())) if sigma else 1.0
    for g in j.gpus:
        need = memory_need_mib(world, i, c, g)
        limit = j.gpumem_mib if j.gpumem_mib > 0 else world.physical_mib(c, g)
        if need > limit or world.true_used[c][g] + need > world.physical_mib(c, g):
            return False
    for g in j.gpus:
        world.true_used[c][g] += memory_need_mib(world, i, c, g)
    return True


def start_running(world: World, i: int) -> None:
    j = world.jobs[i]
    c = j.cluster
    slowest = min(j.gpus, key=lambda g: GPU_TYPES[world.gpu_type[c][g]].bench_resnet50)
    work = world._mean_runtime(j.spec, world.gpu_type[c][slowest]) * j.runtime_noise
    if len({world.node_of[c][g] for g in j.gpus}) > 1:
        work *= world.config.truth.cross_node
    j.phase, j.start_s = Phase.RUNNING, world.now_s
    j.remaining_work_s, j.rate, j.last_update_s = work, 0.0, world.now_s
    recompute_rates(world)


def finish(world: World, i: int) -> None:
    j = world.jobs[i]
    c = j.cluster
    for g in j.gpus:
        left = world.true_used[c][g] - memory_need_mib(world, i, c, g)
        world.true_used[c][g] = left if left > 1e-6 else 0.0  # no float residue on an empty card
    j.segments.append((j.attempt_s, world.now_s, c, tuple(j.gpus), "done"))
    j.phase, j.end_s, j.remaining_work_s = Phase.DONE, world.now_s, 0.0
    world._release(i)
    recompute_rates(world)


def gpu_share(world: World, c: int, g: int, i: int) -> float:
    """Share of GPU ``g`` job ``i`` gets among the running jobs on it."""
    running = [k for k in world.residents[c][g] if world.jobs[k].phase == Phase.RUNNING]
    if len(running) <= 1:
        return 1.0  # a lone pod is not throttled (HAMi issue 737)
    strength = world.config.clusters[c].hami.core_limit_strength
    raw = {}
    for k in running:
        cores = world.jobs[k].gpucores
        equal = 1.0 / len(running)
        raw[k] = strength * (cores / 100.0 if cores > 0 else equal) + (1 - strength) * equal
    total = sum(raw.values())
    return raw[i] / total if total > 1.0 else raw[i]


def cpu_factor(world: World, c: int, node: int) -> float:
    """1, or cores / demand when the node's workers want more CPU than it has."""
    demand = world.config.cpu_per_gpu * sum(
        1
        for g in world.node_gpus[c][node]
        for k in world.residents[c][g]
        if world.jobs[k].phase == Phase.RUNNING
    )
    cores = world.config.clusters[c].nodes[node].cpu_cores
    return 1.0 if demand <= cores else cores / demand


def recompute_rates(world: World) -> None:
    """Bring every running job's progress up to now and reschedule its finish."""
    from k8s_gpu_rl.envs.jobs.sim.world import FINISH

    now = world.now_s
    for i, j in enumerate(world.jobs):
        if j.phase != Phase.RUNNING:
            continue
        j.remaining_work_s = max(0.0, j.remaining_work_s - j.rate * (now - j.last_update_s))
        j.last_update_s = now
        c = j.cluster
        rate = min(gpu_share(world, c, g, i) for g in j.gpus)
        rate *= min(cpu_factor(world, c, n) for n in {world.node_of[c][g] for g in j.gpus})
        if rate != j.rate:
            j.rate = rate
            j.version += 1
            world._push(now + j.remaining_work_s / rate, FINISH, i, j.version)


def is_deadlocked(world: World) -> bool:
    """Nothing will ever free a GPU, and no waiting job can be completed on what is free."""
    if any(j.phase in ACTIVE or j.phase == Phase.BACKOFF for j in world.jobs):
        return False
    waiting = world.waiting()
    if not waiting:
        return False
    for i in waiting:
        j = world.jobs[i]
        clusters = [j.cluster] if j.cluster >= 0 else range(len(world.slots))
        if any(len(world.fitting_gpus(i, c)) >= j.remaining_workers for c in clusters):
            return False
    return True


def is_hungry(world: World, i: int) -> bool:
    rule = world.config.reservation
    j = world.jobs[i]
    if j.spec.gpus >= rule.hungry_gpus:
        return True
    mem, _ = world.request_of(i)
    fitting = [m for m in world.card_sizes_mib if m >= mem]
    return bool(fitting) and mem >= rule.hungry_memory_fraction * fitting[0]


def expected_free_s(world: World, c: int, g: int) -> float:
    """When the controller expects GPU ``g`` to be free (its estimate, not the truth)."""
    t = world.now_s
    for k in world.residents[c][g]:
        j = world.jobs[k]
        if j.phase == Phase.WAITING:
            return math.inf
        start = j.start_s if j.phase == Phase.RUNNING else world.now_s
        t = max(t, start + world.estimate_runtime_s(j.spec, world.gpu_type[c][g]))
    return t


def reserve_for_hungry(world: World) -> bool:
    """Give hungry jobs that waited past ``after_s`` the GPUs expected to free first;
    whether a reservation was made."""
    rule = world.config.reservation
    made = False
    if not rule.enabled:
        return made
    if world.changes == world.reserve_checked_at and world.now_s < world.reserve_due_s:
        return made  # nothing changed and no hungry job's wait ran out since the last pass
    world.reserve_checked_at, world.reserve_due_s = world.changes, math.inf
    owners = {o for row in world.reserved for o in row if o >= 0}
    for i in world.waiting():
        if len(owners) >= rule.max_active:
            return made
        j = world.jobs[i]
        if i in owners or not is_hungry(world, i):
            continue
        if world.now_s - j.queued_since_s < rule.after_s:
            world.reserve_due_s = min(world.reserve_due_s, j.queued_since_s + rule.after_s)
            continue
        choice = _best_reservation(world, i)
        if choice is not None:
            c, gpus = choice
            for g in gpus:
                world.reserved[c][g] = i
            owners.add(i)
            made = True
    return made


def _best_reservation(world: World, i: int) -> tuple[int, list[int]] | None:
    j = world.jobs[i]
    mem, _ = world.request_of(i)
    need = j.remaining_workers
    best: tuple[float, int, list[int]] | None = None
    clusters = [j.cluster] if j.cluster >= 0 else range(len(world.slots))
    for c in clusters:
        for gpus in world.node_gpus[c]:
            free = [
                (expected_free_s(world, c, g), g)
                for g in gpus
                if world.reserved[c][g] == -1
                and g not in j.gpus
                and world.slots[c][g].memory_mib >= mem
            ]
            if len(free) < need:
                continue
            free.sort()
            when = free[need - 1][0]
            if math.isfinite(when) and (best is None or when < best[0]):
                best = (when, c, [g for _, g in free[:need]])
    return None if best is None else (best[1], best[2])


@dataclass
class Integrals:
    """Time integrals for the run's utilisation KPIs."""

    time_s: float = 0.0
    allocated: float = 0.0
    """Integral of allocated GPU memory / registered memory."""
    busy: float = 0.0
    """Integral of the fraction of GPUs with at least one running job."""
    fragmented: float = 0.0
    """Integral of the fraction of free memory that sits on partly used GPUs."""
    in_system: float = 0.0
    """Job-seconds spent submitted and not finished (waiting or running)."""

    _at: int = -1
    _rates: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def add(self, world: World, dt: float) -> None:
        if self._at != world.changes:
            self._rates = self._measure(world)
            self._at = world.changes
        alloc, busy, frag, in_system = self._rates
        self.time_s += dt
        self.allocated += dt * alloc
        self.busy += dt * busy
        self.fragmented += dt * frag
        self.in_system += dt * in_system

    @staticmethod
    def _measure(world: World) -> tuple[float, float, float, float]:
        total = alloc = free = frag = 0.0
        busy = count = 0
        for c, slots in enumerate(world.slots):
            for g, s in enumerate(slots):
                total += s.memory_mib
                alloc += min(s.used_memory_mib, s.memory_mib)
                left = max(0.0, s.memory_mib - s.used_memory_mib)
                free += left
                if s.used_tasks:
                    frag += left
                count += 1
                busy += any(world.jobs[k].phase == Phase.RUNNING for k in world.residents[c][g])
        in_system = sum(
            1 for j in world.jobs if j.phase not in (Phase.FUTURE, Phase.DONE, Phase.FAILED)
        )
        return alloc / total, busy / count, (frag / free if free > 0 else 0.0), float(in_system)
