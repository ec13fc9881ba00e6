"""The env's view of the world: predictions per job, the observation vector, action masks.

Kept apart from ``env.py`` so the layout of the observation is in one place:

* per visible job slot (the ``window`` oldest waiting jobs that fit somewhere now): present, remaining workers,
  the env's memory request and the user's, predicted run time, waiting time, failures,
  holds GPUs (partial), has a reservation, model unseen by the predictor, then the
  transfer time to each cluster;
* per GPU: free memory and free cores in HAMi's ledger, task slots used, the memory in use
  as the **last Prometheus sample** shows it (lagging), reserved, running;
* globals: waiting jobs, age of the samples, running jobs per GPU.

Everything is scaled into [0, 1].
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from k8s_gpu_rl.envs.jobs.sim.dynamics import effective_request, transfer_gib
from k8s_gpu_rl.envs.jobs.sim.fitmask import fits_matrix, ledger_arrays
from k8s_gpu_rl.envs.jobs.sim.state import Phase

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.jobs.env import GpuJobSchedulingEnv

JOB_FEATURES = 10
GPU_FEATURES = 6
GLOBAL_FEATURES = 3
LOG_S = math.log1p(1e6)
LOG_TRANSFER = math.log1p(1e5)
MAX_MEM = 81920.0


def observation_size(window: int, clusters: int, gpus: int) -> int:
    return window * (JOB_FEATURES + clusters) + gpus * GPU_FEATURES + GLOBAL_FEATURES


def env_request(env: GpuJobSchedulingEnv, i: int) -> tuple[float, float]:
    """(memory, cores) per worker the env asks for job ``i`` when the agent places it."""
    j = env.world.jobs[i]
    if j.gpus:
        return j.gpumem_mib, j.gpucores
    cached = env.request_cache.get(i)
    if cached is None:
        mem = float(j.spec.gpumem_mib)
        if env.config.gpumem_request == "predicted" and mem > 0:
            predicted = float(env.pred_memory[i].max()) * env.config.memory_margin
            mem = min(max(mem, math.ceil(predicted / 256.0) * 256.0), env.max_card_mib)
        cached = env.request_cache[i] = effective_request(mem, j.spec.gpucores)
    return cached


def action_mask(env: GpuJobSchedulingEnv) -> tuple[np.ndarray, list[int]]:
    """The mask and the window. The window is the ``window`` oldest waiting jobs that
    can be placed somewhere now; the mask is bool [window x nodes + 1]: (slot k, node n)
    valid when node n fits the job's remaining workers (or at least one, with partial
    placement); the last entry, wait, always (unless ``work_conserving``)."""
    w = env.world
    n = env.n_nodes
    mask = np.zeros(env.action_space.n, dtype=bool)
    mask[-1] = True
    waiting = w.waiting()
    if not waiting:
        return mask, []
    req = np.array([env_request(env, i) for i in waiting])
    ok = fits_matrix(ledger_arrays(w), req[:, 0], req[:, 1])
    if env.config.partial_placement:
        need = np.ones(len(waiting), dtype=int)
    else:
        need = np.array([w.jobs[i].remaining_workers for i in waiting])
    for k, i in enumerate(waiting):
        j = w.jobs[i]
        if j.gpus:  # only its own cluster, and not the GPUs it already holds
            ok[k] &= env.cluster_of_gpu == j.cluster
            ok[k, [env.cluster_offset[j.cluster] + g for g in j.gpus]] = False
    valid = np.add.reduceat(ok, env.node_starts, axis=1) >= need[:, None]
    rows = np.flatnonzero(valid.any(axis=1))[: env.config.window]
    for slot, k in enumerate(rows):
        mask[slot * n : (slot + 1) * n] = valid[k]
    if env.config.work_conserving and len(rows):
        mask[-1] = False
    return mask, [waiting[k] for k in rows]


def any_user_fit(env: GpuJobSchedulingEnv) -> bool:
    """Whether some waiting job fits a GPU at its own (user's) request: a policy that
    uses the user's requests may have something to do even when the mask has nothing."""
    w = env.world
    waiting = w.waiting()
    if not waiting:
        return False
    req = np.array([w.request_of(i) for i in waiting])
    ok = fits_matrix(ledger_arrays(w), req[:, 0], req[:, 1])
    for k, i in enumerate(waiting):
        j = w.jobs[i]
        row = ok[k] if not j.gpus else ok[k] & (env.cluster_of_gpu == j.cluster)
        if row.sum() > len(j.gpus):  # more fitting GPUs than the ones it already holds
            return True
    return False


def observation(env: GpuJobSchedulingEnv) -> np.ndarray:
    w = env.world
    n_clusters = len(w.slots)
    jobs = np.zeros((env.config.window, JOB_FEATURES + n_clusters), dtype=np.float32)
    owners = {o for row in w.reserved for o in row if o >= 0}
    for k, i in enumerate(env.window_jobs()):
        j = w.jobs[i]
        mem, _ = env_request(env, i)
        jobs[k, :JOB_FEATURES] = (
            1.0,
            j.remaining_workers / 16.0,
            mem / MAX_MEM,
            j.spec.gpumem_mib / MAX_MEM,
            math.log1p(float(env.pred_runtime[i].min())) / LOG_S,
            math.log1p(w.now_s - j.queued_since_s) / LOG_S,
            j.failures / (w.config.backoff_limit + 1.0),
            float(bool(j.gpus)),
            float(i in owners),
            float(not env.predictor.knows(j.spec.model_name)),
        )
        for c in range(n_clusters):
            link = w.config.clusters[c].link
            seconds = link.transfer_s(transfer_gib(w, c, j.spec.model_name, j.spec.data_size))
            jobs[k, JOB_FEATURES + c] = math.log1p(seconds) / LOG_TRANSFER
    led = ledger_arrays(w)
    used = np.concatenate(w.prom.used_mib)
    physical = env.physical_mib
    reserved = np.array([o >= 0 for row in w.reserved for o in row], dtype=np.float32)
    running, n_running = _running(w)
    gpus = np.stack(
        [
            (led["memory"] - led["used_memory"]) / led["memory"],
            (led["cores"] - led["used_cores"]) / led["cores"],
            led["tasks"] / led["split"],
            used / physical,
            reserved,
            running,
        ],
        axis=1,
    )
    glob = np.array(
        [
            len(w.waiting()) / 100.0,
            w.prom.age_s / w.config.scrape_interval_s,
            n_running / len(physical),
        ]
    )
    out = np.concatenate([jobs.ravel(), gpus.ravel(), glob]).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def _running(w) -> tuple[np.ndarray, int]:  # noqa: ANN001 - a World
    """Per GPU: a job runs on it; and how many jobs run (cached until a change)."""
    cached = getattr(w, "_running_cache", None)
    if cached is not None and cached[0] == w.changes:
        return cached[1], cached[2]
    running = np.array(
        [any(w.jobs[k].phase == Phase.RUNNING for k in res) for row in w.residents for res in row],
        dtype=np.float32,
    )
    count = sum(1 for j in w.jobs if j.phase == Phase.RUNNING)
    w._running_cache = (w.changes, running, count)
    return running, count
