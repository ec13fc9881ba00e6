"""The job-scheduling world: clusters -> nodes -> GPUs, jobs moving through their phases.

An event-driven simulator (no Gymnasium). A scheduler calls :meth:`World.place` to bind a
job's workers to GPUs of one cluster and :meth:`World.advance_to` to let time pass.
HAMi's rules decide what fits (:func:`k8s_gpu_rl.envs.sim.hami.fits` on a ledger of
requests); what happens next follows the real systems:

* all workers bound -> the cluster pulls what its cache lacks (image, model weights) and
  the job's data over its link -> containers start and load (``load_s``) -> memory is
  allocated: a worker needing more than its gpumem limit dies with CUDA OOM (HAMi-core
  enforces the limit), and so does one whose card's actual use would exceed the physical
  memory (possible with ``deviceMemoryScaling`` > 1) -> the job is released and retried
  after Kubernetes' Job back-off (10 s doubled, capped at 6 min), up to ``backoff_limit``;
* a running job progresses at a rate set by its GPUs' sharing (a lone pod is not
  throttled; otherwise each runs at its gpucores share, or an equal split when unset) and
  its nodes' CPU (data loading needs ``cpu_per_gpu`` cores per worker);
* a **deadlock** is declared when nothing runs, loads, transfers or backs off, jobs wait,
  and no waiting job could be completed on the free resources at its request: partially
  bound jobs hold GPUs that only other waiting jobs could free, or no job can ever fit;
* Prometheus samples (used memory per GPU, CPU utilisation per node) are taken every
  ``scrape_interval_s``; :attr:`World.prom` holds the last one, as late as the real one.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from k8s_gpu_rl.envs.jobs.sim import dynamics
from k8s_gpu_rl.envs.jobs.sim.config import WorldConfig
from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec
from k8s_gpu_rl.envs.jobs.sim.metrics import PromSamples
from k8s_gpu_rl.envs.jobs.sim.state import ACTIVE, JobState, Phase
from k8s_gpu_rl.envs.jobs.sim.truth import GPU_TYPES, MODELS, draw_noise, mean_runtime_s
from k8s_gpu_rl.envs.sim.hami import GpuSlot, allocate, fits, release
from k8s_gpu_rl.errors import K8sGpuRlError

ARRIVE, TRANSFERRED, LOADED, FINISH, RETRY = range(5)


class Placement(NamedTuple):
    """Workers of one job bound to GPUs of one cluster."""

    job: int
    """Index of the job in :attr:`World.jobs`."""
    cluster: int
    gpus: tuple[int, ...]
    """Cluster-local GPU indices (distinct)."""
    gpumem_mib: float | None = None
    """Memory limit per worker; None: the job's own request."""
    gpucores: float | None = None
    """Cores per worker; None: the job's own request."""


class PlacementError(K8sGpuRlError, ValueError):
    """A placement that breaks HAMi's rules or the job's state."""


class World:
    """One simulated run of a queue on a world, seeded."""

    def __init__(
        self,
        config: WorldConfig,
        jobs: Sequence[JobSpec],
        seed: int,
        estimate_runtime_s: Callable[[JobSpec, str], float] | None = None,
    ) -> None:
        self.config = config
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.now_s = 0.0
        self._build_topology()
        self.jobs: list[JobState] = []
        for spec in jobs:
            rt, mem = draw_noise(self.rng, config.truth)
            base = MODELS[spec.model_name].memory_mib
            self.jobs.append(JobState(spec, base * mem, rt))
        self.index = {j.spec.job_id: i for i, j in enumerate(self.jobs)}
        self.estimate_runtime_s = estimate_runtime_s or self._mean_runtime
        self._events: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        for i, j in enumerate(self.jobs):
            self._push(j.spec.arrival_s, ARRIVE, i)
        self.oom_failures = 0
        self.reservation_violations = 0
        self.deadlocked = False
        self.deadlock_s = math.nan
        self.prom = PromSamples(self, config.scrape_interval_s)
        self.integrals = dynamics.Integrals()
        self.changes = 0
        """Counts every state change (policies and masks cache on it)."""
        self._waiting_at = -1
        self._waiting: list[int] = []
        self._done_at, self._done = -1, False
        self.card_sizes_mib = sorted(
            self.physical_mib(c, g) for c, row in enumerate(self.slots) for g in range(len(row))
        )
        self.reserve_checked_at, self.reserve_due_s = -1, 0.0
        self._process_due()

    # -- topology -------------------------------------------------------------------------
    def _build_topology(self) -> None:
        self.slots: list[list[GpuSlot]] = []
        self.gpu_type: list[list[str]] = []
        self.node_of: list[list[int]] = []
        self.node_gpus: list[list[list[int]]] = []
        for cl in self.config.clusters:
            h = cl.hami
            slots, types, nodes, groups = [], [], [], []
            for n, node in enumerate(cl.nodes):
                group = []
                for _ in range(node.gpus):
                    mem = GPU_TYPES[node.gpu_type].memory_mib
                    g = len(slots)
                    slots.append(
                        GpuSlot(
                            g,
                            n,
                            mem * h.device_memory_scaling,
                            100.0 * h.device_core_scaling,
                            h.device_split_count,
                        )
                    )
                    types.append(node.gpu_type)
                    nodes.append(n)
                    group.append(g)
                groups.append(group)
            self.slots.append(slots)
            self.gpu_type.append(types)
            self.node_of.append(nodes)
            self.node_gpus.append(groups)
        self.residents: list[list[list[int]]] = [[[] for _ in s] for s in self.slots]
        self.true_used: list[list[float]] = [[0.0] * len(s) for s in self.slots]
        self.reserved: list[list[int]] = [[-1] * len(s) for s in self.slots]
        self.caches: list[OrderedDict[str, float]] = [OrderedDict() for _ in self.slots]

    def physical_mib(self, c: int, g: int) -> float:
        return float(GPU_TYPES[self.gpu_type[c][g]].memory_mib)

    # -- queries --------------------------------------------------------------------------
    def waiting(self) -> list[int]:
        """Indices of waiting jobs, oldest submission first (cached until a change)."""
        if self._waiting_at != self.changes:
            self._waiting = [i for i, j in enumerate(self.jobs) if j.phase == Phase.WAITING]
            self._waiting_at = self.changes
        return self._waiting

    def request_of(
        self, i: int, gpumem_mib: float | None = None, gpucores: float | None = None
    ) -> tuple[float, float]:
        """(memory MiB, cores) per worker: the attempt's, else the given or the user's."""
        j = self.jobs[i]
        if j.gpus:
            return j.gpumem_mib, j.gpucores
        mem = j.spec.gpumem_mib if gpumem_mib is None else gpumem_mib
        cores = j.spec.gpucores if gpucores is None else gpucores
        return dynamics.effective_request(mem, cores)

    def fitting_gpus(
        self,
        i: int,
        c: int,
        gpumem_mib: float | None = None,
        node: int = -1,
        gpucores: float | None = None,
    ) -> list[int]:
        """GPUs of cluster ``c`` (optionally one node) that fit another worker of job ``i``."""
        j = self.jobs[i]
        if j.cluster not in (-1, c):
            return []
        mem, cores = self.request_of(i, gpumem_mib, gpucores)
        gpus = range(len(self.slots[c])) if node < 0 else self.node_gpus[c][node]
        slots = self.slots[c]
        return [g for g in gpus if g not in j.gpus and fits(slots[g], mem, cores)]

    def done(self) -> bool:
        """Every job completed or given up (cached until a change)."""
        if self._done_at != self.changes:
            self._done = all(j.phase in (Phase.DONE, Phase.FAILED) for j in self.jobs)
            self._done_at = self.changes
        return self._done

    def finished(self) -> bool:
        """The run is over: done, deadlocked, or out of time."""
        return self.deadlocked or self.done() or self.now_s >= self.config.max_time_s

    def next_event_s(self) -> float:
        return self._events[0][0] if self._events else math.inf

    def _mean_runtime(self, spec: JobSpec, gpu_type: str) -> float:
        model = MODELS[spec.model_name]
        return mean_runtime_s(
            model, GPU_TYPES[gpu_type], spec.data_size, spec.epoch, spec.gpus, self.config.truth
        )

    # -- actions --------------------------------------------------------------------------
    def place(self, p: Placement) -> None:
        """Bind workers of job ``p.job`` to ``p.gpus`` of cluster ``p.cluster``; once all
        its workers are bound the job starts (transfer, load, run)."""
        i, c, gpus, gpumem_mib, gpucores = p
        j = self.jobs[i]
        if j.phase != Phase.WAITING:
            raise PlacementError(f"job {j.spec.job_id} is not waiting (phase {j.phase.name})")
        if not gpus or len(gpus) > j.remaining_workers or len(set(gpus)) != len(gpus):
            raise PlacementError(
                f"job {j.spec.job_id}: need 1..{j.remaining_workers} distinct GPUs, got {list(gpus)}"
            )
        if not 0 <= c < len(self.slots):
            raise PlacementError(f"job {j.spec.job_id}: no cluster {c}")
        allowed = set(self.fitting_gpus(i, c, gpumem_mib, gpucores=gpucores))
        bad = [g for g in gpus if g not in allowed]
        if bad:
            raise PlacementError(f"job {j.spec.job_id}: GPU(s) {bad} of cluster {c} do not fit it")
        if not j.gpus:
            j.gpumem_mib, j.gpucores = self.request_of(i, gpumem_mib, gpucores)
            j.cluster = c
            j.first_placed_s = self.now_s if j.first_placed_s < 0 else j.first_placed_s
        for g in gpus:
            self.slots[c][g] = allocate(self.slots[c][g], j.gpumem_mib, j.gpucores)
            self.residents[c][g].append(i)
            if self.reserved[c][g] not in (-1, i):
                self.reservation_violations += 1
                self.reserved[c][g] = -1  # the reservation is broken
            j.gpus.append(g)
        self.changes += 1
        if j.remaining_workers == 0:
            self._unreserve(i)
            dynamics.start_transfer(self, i)
        elif dynamics.is_deadlocked(self):  # it holds GPUs nobody else can free
            self.deadlocked, self.deadlock_s = True, self.now_s

    def _release(self, i: int) -> None:
        j = self.jobs[i]
        for g in j.gpus:
            self.slots[j.cluster][g] = release(self.slots[j.cluster][g], j.gpumem_mib, j.gpucores)
            self.residents[j.cluster][g].remove(i)
        j.gpus, j.cluster = [], -1

    def _unreserve(self, i: int) -> None:
        for row in self.reserved:
            for g, owner in enumerate(row):
                if owner == i:
                    row[g] = -1

    # -- time -----------------------------------------------------------------------------
    def _push(self, t: float, kind: int, i: int, version: int = 0) -> None:
        heapq.heappush(self._events, (t, self._seq, kind, i, version))
        self._seq += 1

    def advance_to(self, t: float) -> None:
        """Process every event up to ``t`` (capped at ``max_time_s``), then stand at ``t``."""
        t = min(t, self.config.max_time_s)
        while self._events and self._events[0][0] <= t and not self.deadlocked:
            self._move_clock(self._events[0][0])
            self._process_due()
        if not self.deadlocked:
            self._move_clock(t)
            if dynamics.reserve_for_hungry(self):
                self.changes += 1

    def _move_clock(self, t: float) -> None:
        if t > self.now_s:
            self.prom.catch_up(t)
            self.integrals.add(self, t - self.now_s)
            self.now_s = t

    def _process_due(self) -> None:
        handled = False
        while self._events and self._events[0][0] <= self.now_s:
            _, _, kind, i, version = heapq.heappop(self._events)
            self._handle(kind, i, version)
            handled = True
        if not handled:
            return
        self.changes += 1
        dynamics.reserve_for_hungry(self)
        if dynamics.is_deadlocked(self):
            self.deadlocked, self.deadlock_s = True, self.now_s
        self.changes += 1

    def _handle(self, kind: int, i: int, version: int) -> None:
        j = self.jobs[i]
        if kind == ARRIVE:
            j.phase, j.queued_since_s = Phase.WAITING, self.now_s
        elif kind == TRANSFERRED:
            j.phase = Phase.LOADING
            self._push(self.now_s + self.config.load_s, LOADED, i)
        elif kind == LOADED:
            if dynamics.allocate_memory(self, i):
                dynamics.start_running(self, i)
            else:
                self._oom(i)
        elif kind == FINISH and version == j.version and j.phase == Phase.RUNNING:
            dynamics.finish(self, i)
        elif kind == RETRY:
            j.phase, j.queued_since_s = Phase.WAITING, self.now_s

    def _oom(self, i: int) -> None:
        j = self.jobs[i]
        j.segments.append((j.attempt_s, self.now_s, j.cluster, tuple(j.gpus), "oom"))
        c = j.cluster
        limits = [j.gpumem_mib if j.gpumem_mib > 0 else self.physical_mib(c, g) for g in j.gpus]
        j.oom_limit_mib = max(j.oom_limit_mib, max(limits))
        self._release(i)
        self.oom_failures += 1
        j.failures += 1
        if j.failures > self.config.backoff_limit:
            j.phase, j.end_s = Phase.FAILED, self.now_s
            self._unreserve(i)
            return
        j.phase = Phase.BACKOFF
        delay = min(
            self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (j.failures - 1)
        )
        self._push(self.now_s + delay, RETRY, i)

    def active_count(self) -> int:
        return sum(1 for j in self.jobs if j.phase in ACTIVE or j.phase == Phase.BACKOFF)
