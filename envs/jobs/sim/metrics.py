"""Prometheus-style samples that lag: what the user's controller reads of each cluster.

Every ``scrape_interval_s`` (60 s in the user's setup) one sample per GPU (memory in use,
``hami_host_gpu_memory_used_bytes``-like, MiB here; utilisation) and per node (CPU
utilisation) is taken; between scrapes readers see the last one. The world calls
:meth:`PromSamples.catch_up` before it changes anything at a later time, so a scrape at
time ``b`` sees the state that held at ``b``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from k8s_gpu_rl.envs.jobs.sim.state import Phase

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.jobs.sim.world import World


class PromSamples:
    """The last scrape of every cluster."""

    def __init__(self, world: World, interval_s: float) -> None:
        self.world = world
        self.interval_s = interval_s
        self.sample_s = 0.0
        self._scraped_at = -1
        self.used_mib = [np.zeros(len(s)) for s in world.slots]
        self.gpu_util = [np.zeros(len(s)) for s in world.slots]
        self.cpu_util = [np.zeros(len(n)) for n in world.node_gpus]

    def catch_up(self, t: float) -> None:
        """Take the scrape due at or before ``t`` if it is newer than the last one."""
        due = math.floor(t / self.interval_s) * self.interval_s
        if due > self.sample_s:
            if self._scraped_at != self.world.changes:  # unchanged state: same sample
                self._scrape()
                self._scraped_at = self.world.changes
            self.sample_s = due

    @property
    def age_s(self) -> float:
        """How old the last sample is."""
        return self.world.now_s - self.sample_s

    def _scrape(self) -> None:
        w = self.world
        per_gpu = w.config.cpu_per_gpu
        for c in range(len(w.slots)):
            self.used_mib[c][:] = w.true_used[c]
            for g, res in enumerate(w.residents[c]):
                self.gpu_util[c][g] = min(
                    1.0, sum(1.0 for k in res if w.jobs[k].phase == Phase.RUNNING)
                )
            for n, gpus in enumerate(w.node_gpus[c]):
                running = sum(
                    1 for g in gpus for k in w.residents[c][g] if w.jobs[k].phase == Phase.RUNNING
                )
                self.cpu_util[c][n] = min(
                    1.0, running * per_gpu / w.config.clusters[c].nodes[n].cpu_cores
                )

    def free_mib(self, c: int, g: int) -> float:
        """Physical memory the last sample shows free on GPU ``g`` of cluster ``c``."""
        return self.world.physical_mib(c, g) - float(self.used_mib[c][g])
