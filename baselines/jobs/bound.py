"""A clairvoyant lower bound on makespan and mean completion time (cheap, not a policy).

With the true run times of this seed, every job ``j`` needs at least
``t_j = load_s + min over GPU types (true run time on gpus_j cards of that type)`` after
its submission ``a_j`` (no transfer, no queueing, no contention), and the world's GPUs
cannot do more than their number of GPU-seconds per second:

* makespan >= max( max_j (a_j + t_j), min_j a_j + sum_j gpus_j (t_j - load_s) / GPUs );
* mean completion time >= mean_j t_j.

No schedule beats these numbers; a policy's distance to them bounds what any better
scheduler could still gain.
"""

from __future__ import annotations

from k8s_gpu_rl.envs.jobs.sim.truth import GPU_TYPES, MODELS, mean_runtime_s
from k8s_gpu_rl.envs.jobs.sim.world import World


def clairvoyant_bound(world: World) -> dict[str, float]:
    """``makespan_s`` and ``mean_jct_s`` lower bounds for ``world``'s queue and seed."""
    cfg = world.config
    types = {t for row in world.gpu_type for t in row}
    gpus_total = sum(len(row) for row in world.slots)
    fastest, work = [], 0.0
    for j in world.jobs:
        model = MODELS[j.spec.model_name]
        run = min(
            mean_runtime_s(
                model, GPU_TYPES[t], j.spec.data_size, j.spec.epoch, j.spec.gpus, cfg.truth
            )
            for t in types
        )
        run *= j.runtime_noise
        fastest.append(cfg.load_s + run)
        work += j.spec.gpus * run
    arrivals = [j.spec.arrival_s for j in world.jobs]
    makespan = max(
        max(a + t for a, t in zip(arrivals, fastest, strict=True)),
        min(arrivals) + work / gpus_total,
    )
    return {"makespan_s": makespan, "mean_jct_s": sum(fastest) / len(fastest)}
