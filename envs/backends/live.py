"""What the live backends (``local`` and ``k8s``) share: the interval bookkeeping.

Both run on wall-clock time against real processes, with a real headless Locust
(:class:`~k8s_gpu_rl.envs.backends.local.locust_run.LocustRun`) as the load and its start
(the first moment of its load shape) as the episode's time 0. :class:`LiveBackend` does,
once for both:

* the clock (:meth:`LiveBackend.now_s`) and the Locust run of an episode;
* :meth:`LiveBackend.advance`: sleep to the interval's end while the backend watches its
  processes, then build the :class:`~k8s_gpu_rl.envs.backends.base.IntervalRecord` from
  Locust's per-request log, the pod integrals (:class:`Integrals`), the backend's GPU-work
  and CPU figures and its new events (:class:`EventLog`);
* whether the load generator was the bottleneck (:meth:`LiveBackend.client_check`, per
  interval into ``IntervalRecord.client_saturated``; ``k8s_gpu_rl.envs.backends.loadgen``)
  and how many Locust processes drive the profile (:func:`~k8s_gpu_rl.envs.backends.loadgen.choose_processes`);
* :meth:`LiveBackend.observe`: ``k8s_gpu_rl.envs.observation``'s PromQL, built once per
  window, evaluated by the backend's Prometheus;
* the :class:`~k8s_gpu_rl.envs.backends.base.DeploymentState` and
  :class:`~k8s_gpu_rl.envs.backends.base.PodMetrics` records, from the backend's pods as
  :class:`PodView` s.

A backend supplies the hooks (the abstract methods) and the cluster-specific parts of the
:class:`~k8s_gpu_rl.envs.backends.base.Backend` seam (``reset``, ``apply``, ``capacity``,
``rollout_can_start``, ``deployment``, ``pod_metrics``, ``close``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from k8s_gpu_rl.envs.backends.base import DeploymentState, IntervalRecord, PodMetrics
from k8s_gpu_rl.envs.backends.loadgen import (
    LoadGeneratorOptions,
    choose_processes,
    interval_reason,
    locust_env,
    locust_process_args,
)
from k8s_gpu_rl.envs.observation import evaluate_live, queries
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.io import write_yaml
from k8s_gpu_rl.loadprofiles import LoadProfile
from k8s_gpu_rl.loadprofiles.profile import profile_dict, users_at

if TYPE_CHECKING:
    from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun
    from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup

__all__ = [
    "PENDING",
    "READY",
    "EventLog",
    "Integrals",
    "LiveBackend",
    "PodView",
    "deployment_state",
    "pod_metrics",
]

PENDING, READY = "Pending", "Ready"
"""The pod phases the records count (not placed by HAMi; serving)."""


@dataclass(frozen=True)
class PodView:
    """One pod as a live backend reads it. Times are in the backend's own clock (unix
    seconds on a cluster, the controller's monotonic clock locally); ``inf``: not yet."""

    name: str
    phase: str
    """Pending (not placed), Starting, Ready, Terminating or CrashLoopBackOff."""
    gpucores: int
    gpumem_mib: int
    cpu_request: float
    """CPU request (cores)."""
    created_t: float
    started_t: float
    """Container start."""
    ready_t: float
    """Since when the pod has been Ready."""
    template_hash: str = ""
    pending_reason: str = ""

    @property
    def holds_device(self) -> bool:
        """Placed by HAMi (its vGPU share is allocated)."""
        return self.phase != PENDING


@dataclass(frozen=True)
class Integrals:
    """Time integrals over the Deployment's pods (the KPIs' resource terms), cumulative."""

    vgpu_s: float = 0.0
    """gpucores / 100 of the pods that hold a device, integrated (vGPU-seconds)."""
    replica_s: float = 0.0
    """Ready pods, integrated (replica-seconds)."""
    cpu_request_s: float = 0.0
    """CPU requests of the pods that hold a device (core-seconds)."""
    gpu_memory_mib_s: float = 0.0
    """gpumem of the pods that hold a device (MiB-seconds)."""

    def plus(self, dt: float, pods: Iterable[PodView]) -> Integrals:
        """These integrals continued for ``dt`` seconds over ``pods``."""
        pods = list(pods)
        holding = [p for p in pods if p.holds_device]
        return Integrals(
            self.vgpu_s + dt * sum(p.gpucores for p in holding) / 100.0,
            self.replica_s + dt * sum(p.phase == READY for p in pods),
            self.cpu_request_s + dt * sum(p.cpu_request for p in holding),
            self.gpu_memory_mib_s + dt * sum(p.gpumem_mib for p in holding),
        )

    def __sub__(self, other: Integrals) -> Integrals:
        return Integrals(
            self.vgpu_s - other.vgpu_s,
            self.replica_s - other.replica_s,
            self.cpu_request_s - other.cpu_request_s,
            self.gpu_memory_mib_s - other.gpu_memory_mib_s,
        )


class EventLog:
    """A backend's events (``"<t>s what happened"``) in order; :meth:`take_new` hands each
    interval those added since the previous call. Appending from one thread while another
    takes is safe (list appends and slices are atomic in CPython)."""

    def __init__(self) -> None:
        self._items: list[str] = []
        self._taken = 0

    def append(self, text: str) -> None:
        self._items.append(text)

    def take_new(self) -> list[str]:
        """The events since the previous call."""
        new = self._items[self._taken :]
        self._taken += len(new)
        return new

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> str:
        return self._items[index]


def deployment_state(
    spec_replicas: int,
    gpucores: int,
    gpumem_mib: int,
    pods: Iterable[PodView],
    rollout_in_progress: bool,
) -> DeploymentState:
    """The Deployment's record from its template share and its live pods."""
    pods = list(pods)
    ready = [p.gpucores for p in pods if p.phase == READY]
    return DeploymentState(
        spec_replicas=int(spec_replicas),
        ready_replicas=len(ready),
        pending_pods=sum(p.phase == PENDING for p in pods),
        gpucores=gpucores,
        gpumem_mib=gpumem_mib,
        serving_gpucores=sum(ready) / len(ready) if ready else 0.0,
        rollout_in_progress=bool(rollout_in_progress),
    )


def pod_metrics(
    pods: Iterable[PodView], figures: Mapping[str, Mapping[str, float]], t0: float
) -> list[PodMetrics]:
    """Each pod's record, times relative to ``t0`` (the episode start in the pods' clock);
    ``figures[name]`` holds its ``cpu_cores``, ``rps`` and ``inflight`` (NaN if absent)."""
    out = []
    for p in pods:
        m = figures.get(p.name, {})
        out.append(
            PodMetrics(
                name=p.name,
                phase=p.phase,
                created_s=p.created_t - t0,
                started_s=p.started_t - t0,
                ready_s=p.ready_t - t0 if p.phase == READY else float("inf"),
                cpu_cores=m.get("cpu_cores", float("nan")),
                cpu_request_cores=p.cpu_request,
                gpucores=p.gpucores,
                rps=m.get("rps", float("nan")),
                inflight=m.get("inflight", float("nan")),
            )
        )
    return out


class LiveBackend(ABC):
    """The interval bookkeeping of a live backend; see the module docstring."""

    def __init__(
        self,
        config: ClusterConfig,
        profile: LoadProfile,
        total_gpus: float,
        gpu_memory_mib: int,
        load_generator: LoadGeneratorOptions | None = None,
    ) -> None:
        self.config = config
        self.load_generator = load_generator or LoadGeneratorOptions()
        """Locust's process count and the saturation checks' settings."""
        self.locust_processes = choose_processes(profile, self.load_generator)
        """Locust processes an episode starts (``--processes`` when more than 1)."""
        self.profile = profile
        self.total_gpus = float(total_gpus)
        self.gpu_memory_mib = int(gpu_memory_mib)
        self.max_batch = config.serving.max_batch_size
        self.scrape_interval_s = config.metrics.scrape_interval_s
        self.duration_s = profile.duration_s
        self._t0_mono: float | None = None
        self._last_end = 0.0
        self._integrals_seen = Integrals()
        self._promql: dict[str, dict[str, str]] = {}

    # -- hooks ---------------------------------------------------------------------------
    @abstractmethod
    def _locust(self) -> LocustRun:
        """The episode's Locust run."""

    @abstractmethod
    def _integrals(self) -> Integrals:
        """The pod integrals since the episode's processes began, up to now."""

    @abstractmethod
    def _usage(self, duration_s: float, end_s: float) -> tuple[float, float]:
        """GPU-work and CPU seconds of the interval that ends at ``end_s`` (episode time)."""

    @abstractmethod
    def _events(self) -> EventLog:
        """Where the backend records its events."""

    @abstractmethod
    def _during_wait(self) -> None:
        """Called between sleeps while :meth:`advance` waits (raise to end the episode)."""

    @abstractmethod
    def _series_labels(self) -> tuple[str, str, str]:
        """(model, namespace, deployment) of the series the observation queries."""

    def _pause_s(self) -> float:
        """The longest sleep between two :meth:`_during_wait` calls."""
        return 0.25

    def _interval_started(self) -> None:  # noqa: B027 - an optional hook
        """Called as :meth:`advance` begins."""

    def _interval_ended(self) -> None:  # noqa: B027 - an optional hook
        """Called once the interval's end is reached, before anything is measured."""

    def _query_scalar(self, promql: str) -> float:
        """One instant query's single value (NaN: empty result)."""
        raise NotImplementedError

    # -- the clock and the load ----------------------------------------------------------
    def now_s(self) -> float:
        """Episode time: seconds since Locust's load shape started (0 before an episode)."""
        return 0.0 if self._t0_mono is None else time.monotonic() - self._t0_mono

    def _start_locust(
        self,
        group: ProcessGroup,
        host: str,
        timeout_s: float,
        extra_env: Mapping[str, str] | None = None,
    ) -> LocustRun:
        """Start Locust on the episode's profile in ``group``'s run directory and wait for
        its load shape to start."""
        from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun

        run_dir = group.rundir
        profile_path = run_dir / "profile.yaml"
        write_yaml(profile_path, profile_dict(self.profile))
        env = {**(extra_env or {}), **locust_env(self.load_generator)}
        locust = LocustRun(
            group,
            host=host,
            profile=str(profile_path),
            csv_prefix=str(run_dir / "locust"),
            request_log=str(run_dir / "requests.csv"),
            extra_env=env,
            extra_args=locust_process_args(self.locust_processes),
        )
        # time 0 is when Locust's load shape starts (its profile clock), not its launch
        locust.wait_started(timeout_s)
        return locust

    def _begin_intervals(self, t0_unix: float) -> None:
        """Episode time 0 is ``t0_unix``; the first interval starts there."""
        self._t0_mono = time.monotonic() - (time.time() - t0_unix)
        self._last_end = 0.0
        self._integrals_seen = self._integrals()

    def _end_intervals(self) -> None:
        self._t0_mono = None

    # -- Backend -------------------------------------------------------------------------
    def advance(self, duration_s: float) -> IntervalRecord:
        start = self._last_end
        end = start + duration_s
        self._interval_started()
        while (left := end - self.now_s()) > 0:
            time.sleep(max(0.0, min(left, self._pause_s())))
            self._during_wait()
        self._interval_ended()
        self._last_end = end
        # mid-episode, a row flushed late counts in the next interval
        rows = self._locust().take_until(end, final=end >= self.duration_s - 1e-9)
        saturated = self.client_check(rows, start, end)
        gpu_work, cpu = self._usage(duration_s, end)
        now = self._integrals()
        used, self._integrals_seen = now - self._integrals_seen, now
        return IntervalRecord(
            start_s=start,
            end_s=end,
            latencies_s=rows[:, 1].astype(np.float64),
            ok=rows[:, 2].astype(bool),
            vgpu_s=used.vgpu_s,
            gpu_work_s=gpu_work,
            replica_s=used.replica_s,
            cpu_s=cpu,
            cpu_request_s=used.cpu_request_s,
            gpu_memory_mib_s=used.gpu_memory_mib_s,
            events=self._events().take_new(),
            users=users_at(self.profile, end),
            client_saturated=saturated,
        )

    def client_check(self, rows: np.ndarray, start_s: float, end_s: float) -> str:
        """Whether Locust was the bottleneck in ``[start_s, end_s]`` (``""``: no; else the
        reasons; recorded as an event too), from the interval's request-log ``rows`` and
        Locust's new CPU-warning lines."""
        cpu_lines = self._locust().cpu_warnings()
        reason = interval_reason(self.profile, self.load_generator, rows, start_s, end_s, cpu_lines)
        if reason:
            self._events().append(f"{end_s:.0f}s load generator saturated: {reason}")
        return reason

    def _queries(self, window_s: float) -> dict[str, str]:
        """The observation's PromQL for ``window_s`` (built once per window)."""
        key = f"{window_s:.3f}"
        if key not in self._promql:
            self._promql[key] = queries(*self._series_labels(), window_s)
        return self._promql[key]

    def observe(self, window_s: float) -> dict[str, float]:
        return evaluate_live(self._query_scalar, self._queries(window_s))

    def _event(self, text: str) -> None:
        """Record ``text`` at the current episode time."""
        self._events().append(f"{self.now_s():.0f}s {text}")
