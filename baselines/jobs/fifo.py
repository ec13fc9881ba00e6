"""``fifo``: the user's baseline, as their notes describe it (``../shared/SEEDS.md`` B).

Jobs in submission order; each worker goes to the first GPU (clusters, nodes and GPUs in
config order) whose free memory **as the last Prometheus sample shows it** covers the
job's own gpumem request and that HAMi's ledger still fits; no reservation, no gang: a
multi-worker job takes what is free now and holds it while it waits for the rest (which
is how Kubernetes binds separate worker pods without a gang scheduler). A job that does
not fit is skipped, not waited for. Its workers never share a card (the user fixed that
bug), and it uses the user's requests as written: what the user saw follows, OOM
failures and, on memory-heavy queues, deadlock.
"""

from __future__ import annotations

from k8s_gpu_rl.baselines.jobs.base import JobPolicy
from k8s_gpu_rl.envs.jobs.sim.world import Placement
from k8s_gpu_rl.envs.sim.hami import fits


class FifoPolicy(JobPolicy):
    name = "fifo"

    def choose(self) -> Placement | None:
        w = self.env.world
        for i in w.waiting():
            j = w.jobs[i]
            mem, cores = w.request_of(i)
            clusters = [j.cluster] if j.cluster >= 0 else range(len(w.slots))
            for c in clusters:
                gpus = [
                    g
                    for g, slot in enumerate(w.slots[c])
                    if g not in j.gpus
                    and w.prom.free_mib(c, g) >= (mem or w.physical_mib(c, g))
                    and fits(slot, mem, cores)
                ]
                if gpus:
                    return Placement(i, c, tuple(gpus[: j.remaining_workers]))
        return None
