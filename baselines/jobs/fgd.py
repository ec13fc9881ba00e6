"""``fgd``: fragmentation-aware placement after FGD (Weng et al., USENIX ATC '23).

FGD scores a placement by how much it grows the *expected fragmentation*: the GPU memory
left free on cards where the workload's typical task could no longer fit. Here the
workload is the queue's per-worker memory requests seen so far; a GPU with ``free`` MiB
left has fragmentation ``free x P(request > free)``. Jobs go in submission order, all
workers at once, each worker to the fitting GPU whose fragmentation grows least; the
cluster with the least total growth wins. The user's requests as written; reservations
ignored.
"""

from __future__ import annotations

import numpy as np

from k8s_gpu_rl.baselines.jobs.base import JobPolicy
from k8s_gpu_rl.envs.jobs.sim.state import Phase
from k8s_gpu_rl.envs.jobs.sim.world import Placement
from k8s_gpu_rl.envs.sim.hami import allocate, fits


class FgdPolicy(JobPolicy):
    name = "fgd"

    def _requests(self) -> np.ndarray:
        w = self.env.world
        seen = [
            j.spec.gpumem_mib for j in w.jobs if j.phase != Phase.FUTURE and j.spec.gpumem_mib > 0
        ]
        return np.sort(np.array(seen or [1.0], dtype=float))

    def _frag(self, free: float, requests: np.ndarray) -> float:
        above = len(requests) - np.searchsorted(requests, free, side="right")
        return free * above / len(requests)

    def _place_job(
        self, i: int, c: int, requests: np.ndarray
    ) -> tuple[float, tuple[int, ...]] | None:
        w = self.env.world
        j = w.jobs[i]
        mem, cores = w.request_of(i)
        slots = list(w.slots[c])
        used, total = set(j.gpus), 0.0
        chosen: list[int] = []
        for _ in range(j.remaining_workers):
            best: tuple[float, int] | None = None
            for g, s in enumerate(slots):
                if g in used or not fits(s, mem, cores):
                    continue
                free = s.memory_mib - s.used_memory_mib
                grow = self._frag(free - mem, requests) - self._frag(free, requests)
                if best is None or (grow, g) < best:
                    best = (grow, g)
            if best is None:
                return None
            total += best[0]
            used.add(best[1])
            chosen.append(best[1])
            slots[best[1]] = allocate(slots[best[1]], mem, cores)
        return total, tuple(chosen)

    def choose(self) -> Placement | None:
        w = self.env.world
        requests = self._requests()
        for i in w.waiting():
            j = w.jobs[i]
            options = []
            for c in [j.cluster] if j.cluster >= 0 else range(len(w.slots)):
                found = self._place_job(i, c, requests)
                if found is not None:
                    options.append((found[0], c, found[1]))
            if options:
                _, c, gpus = min(options)
                return Placement(i, c, gpus)
        return None
