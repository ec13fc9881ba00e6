"""The ``k8s`` backend: the environment drives the Triton Deployment of a real cluster.

Time is wall-clock time, as on the ``local`` backend. Per episode:

* ``reset()`` reads the Deployment (it must carry ``K8sOptions.managed_by_label``),
  remembers its original replicas, vGPU limits (and requests), pod-template annotations
  and schedulerName, brings it to the cluster config's replicas and share, waits (at most
  ``rollout_timeout_s``) for the rollout to finish, and starts a real headless Locust
  (``k8s_gpu_rl.envs.backends.local.locust_run``) with the episode's load profile against
  ``service_url``; the episode's time 0 is the start of Locust's load shape.
* ``apply()`` sets replicas through the scale subresource and the share through a
  strategic-merge patch of the container's ``nvidia.com/gpucores``/``gpumem`` limits
  (:mod:`k8s_gpu_rl.envs.backends.k8s.kube`). It sends nothing when nothing changes, and nothing
  either while the observation is stale (``metrics_age > stale_after_s`` or Prometheus
  unreachable: it holds and records an event); stale for ``stop_after_s`` stops the run
  with a :class:`BackendError`. Bounds are checked before any request.
* ``advance()`` sleeps to the interval's end, listing the pods every ``pod_poll_s`` to
  integrate vGPU-, replica-, GPU-memory- and CPU-request-seconds; the latencies come from
  Locust's per-request log, the GPU work and CPU seconds from Prometheus.
* ``observe()`` evaluates ``k8s_gpu_rl.envs.observation``'s PromQL against the cluster's Prometheus.
* ``close()`` (idempotent; also registered with ``atexit``) stops Locust, deletes the HPA
  it created and restores the Deployment's original replicas, limits, annotations and
  schedulerName in one patch. Ctrl-C raises KeyboardInterrupt through the env; the
  caller's ``finally: env.close()`` restores, and ``atexit`` covers a crash.

Live HPA: :meth:`K8sBackend.install_hpa` creates an autoscaling/v2 HPA on the Deployment;
while it exists ``apply()`` never scales (the cluster's controller does).

The interval bookkeeping (the clock, ``advance``, the interval record, the event buffer,
the Deployment and pod records) is :class:`~k8s_gpu_rl.envs.backends.live.LiveBackend`'s,
shared with the ``local`` backend; the pod parsing is :mod:`k8s_gpu_rl.envs.backends.k8s.pods`, the
bounds and the restore :mod:`k8s_gpu_rl.envs.backends.k8s.guard`, and the HPA object
:mod:`k8s_gpu_rl.envs.backends.k8s.hpa`.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_gpu_rl.envs.backends.base import DeploymentState, PodMetrics
from k8s_gpu_rl.envs.backends.k8s.guard import Original, check_bounds
from k8s_gpu_rl.envs.backends.k8s.hpa import hpa_behavior, hpa_body
from k8s_gpu_rl.envs.backends.k8s.kube import POLICY_ENV, KubeApi
from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions
from k8s_gpu_rl.envs.backends.k8s.pods import (
    newest_hash,
    pod_view,
    rollout_complete,
    template_share,
)
from k8s_gpu_rl.envs.backends.live import (
    PENDING,
    EventLog,
    Integrals,
    LiveBackend,
    PodView,
    deployment_state,
    pod_metrics,
)
from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun
from k8s_gpu_rl.envs.backends.promql import PrometheusClient
from k8s_gpu_rl.envs.observation import interval_queries, pod_queries
from k8s_gpu_rl.envs.sim import hami
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.pods import Template, rollout_can_start
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.loadprofiles import LoadProfile

__all__ = ["K8sBackend", "hpa_behavior"]

LOCUST_START_TIMEOUT_S = 60.0


@dataclass
class _Episode:
    group: Any
    locust: LocustRun
    run_dir: Path
    t0_unix: float
    """Unix time of the episode's time 0 (Locust's load shape start)."""


class K8sBackend(LiveBackend):
    """A live cluster behind the :class:`~k8s_gpu_rl.envs.backends.base.Backend` seam."""

    def __init__(
        self,
        config: ClusterConfig,
        profile: LoadProfile,
        options: K8sOptions | None = None,
        kube: KubeApi | None = None,
    ) -> None:
        self.options = options or K8sOptions()
        super().__init__(
            config,
            profile,
            self.options.gpus_total,
            min(g.memory_mib for _, g in config.gpus),
            self.options.load_generator,
        )
        self._kube = kube
        self.prom = PrometheusClient(self.options.prometheus_url, self.options.prometheus_timeout_s)
        self._lock = threading.RLock()
        self._original: Original | None = None
        self._atexit = False
        self._closed_hpa: str | None = None
        self.hpa_name: str | None = None
        """The HPA this backend created (None: none)."""
        self._episode: _Episode | None = None
        self._dep: dict[str, Any] | None = None
        self._pods: list[PodView] = []
        self._newest_hash = ""
        self._pods_t = -math.inf
        self._stale_since: float | None = None
        self.stale = False
        self.events = EventLog()
        self._reported_pending: set[str] = set()
        self._integrated = Integrals()
        self._integrated_t: float | None = None
        """Episode time up to which :attr:`_integrated` runs (None: not yet)."""
        self._next_poll = -math.inf
        self._rollout = False
        self._mutated = False
        self.timing = {"prometheus_s": 0.0, "api_s": 0.0}
        """Cumulative seconds spent in Prometheus queries and Kubernetes API calls."""

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def kube(self) -> KubeApi:
        if self._kube is None:
            self._kube = KubeApi(self.options)
        return self._kube

    def _api(self, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timing["api_s"] += time.perf_counter() - t

    def _mono(self) -> float:
        return time.monotonic()

    def _t0_unix(self) -> float:
        return self._episode.t0_unix if self._episode is not None else time.time()

    def _attach(self) -> dict[str, Any]:
        """Read the Deployment (label check) and, the first time, remember its original state."""
        dep = self._api(self.kube.read_deployment)
        self._dep = dep
        if self._original is None:
            self._original = Original.capture(self.kube, dep, self.options)
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
        return dep

    # -- bounds ------------------------------------------------------------------------------
    def check_bounds(self, replicas: int, gpucores: int, gpumem_mib: int) -> None:
        """Raise :class:`BackendError` unless the request is within the safety bounds."""
        check_bounds(self.options, replicas, gpucores, gpumem_mib)

    # -- Backend -----------------------------------------------------------------------------
    def reset(self, seed: int, gpucores: int | None = None, gpumem_mib: int | None = None) -> None:
        del seed  # the cluster and Locust are not seeded
        self._stop_episode()
        d = self.config.deployment
        cores = d.gpucores if gpucores is None else int(gpucores)
        mem = d.gpumem_mib if gpumem_mib is None else int(gpumem_mib)
        self.check_bounds(d.replicas, cores, mem)
        dep = self._attach()
        self.events, self._reported_pending = EventLog(), set()
        policy = self.options.core_utilization_policy
        wrong_policy = policy is not None and self.kube.core_policy(dep) != policy
        if template_share(self.kube, dep) != (cores, mem) or wrong_policy:
            self._api(self.kube.patch_share, cores, mem)
            self._mutated = True
            self._event(
                f"reset: rollout to gpucores={cores} gpumem={mem}MiB"
                + (f", {POLICY_ENV}={policy}" if wrong_policy else "")
            )
        if int(dep["spec"].get("replicas", 1)) != d.replicas:
            self._api(self.kube.scale, d.replicas)
            self._mutated = True
        if not self.options.dry_run:
            self.wait_rollout(self.options.rollout_timeout_s)
        self._start_episode()

    def wait_rollout(self, timeout_s: float) -> None:
        """Block until the Deployment's rollout is complete; :class:`BackendError` on timeout."""
        deadline = self._mono() + timeout_s
        while True:
            dep = self._api(self.kube.read_deployment)
            self._dep = dep
            if rollout_complete(dep):
                return
            if self._mono() >= deadline:
                pods = self._read_pods(dep)
                detail = "; ".join(
                    f"{p.name} {p.phase}{' (' + p.pending_reason + ')' if p.pending_reason else ''}"
                    for p in pods
                )
                raise BackendError(
                    f"Deployment {self.options.namespace}/{self.options.deployment}: rollout not "
                    f"finished after {timeout_s:.0f} s (status {dep.get('status')}); pods: {detail}"
                )
            time.sleep(min(self.options.pod_poll_s, 0.5))

    def _start_episode(self) -> None:
        from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup

        group = ProcessGroup(prefix="k8sgpurl-k8s-")
        try:
            locust = self._start_locust(
                group,
                self.options.service_url,
                LOCUST_START_TIMEOUT_S,
                extra_env={"K8SGPURL_MODEL": self.options.model},
            )
        except BaseException:
            group.close()
            raise
        self._episode = _Episode(group, locust, Path(group.rundir), locust.t0_unix)
        self._integrated, self._integrated_t = Integrals(), None
        self._begin_intervals(locust.t0_unix)
        self._poll_pods()  # the pods at time 0; the integrals start here

    def _stop_episode(self) -> None:
        ep, self._episode = self._episode, None
        self._end_intervals()
        if ep is None:
            return
        try:
            if ep.locust.alive():
                ep.locust.stop()
        finally:
            ep.group.close()

    @property
    def episode(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("call reset() before stepping the k8s backend")
        return self._episode

    def apply(self, replicas: int, gpucores: int, gpumem_mib: int) -> None:
        self.check_bounds(replicas, gpucores, gpumem_mib)
        if self.stale:
            held = self._mono() - (self._stale_since or self._mono())
            if held >= self.options.stop_after_s:
                raise BackendError(
                    f"Prometheus at {self.options.prometheus_url}: no fresh metrics for "
                    f"{held:.0f} s (stop_after_s={self.options.stop_after_s:g}); the run stops "
                    "rather than act blind. Check Prometheus and its scrape targets "
                    "(kube-state-metrics, Triton's PodMonitor), then start again."
                )
            self._event("observation stale: action held")
            return
        dep = self._dep if self._dep is not None and self._original is not None else self._attach()
        if template_share(self.kube, dep) != (int(gpucores), int(gpumem_mib)):
            self._api(self.kube.patch_share, int(gpucores), int(gpumem_mib))
            self._mutated = True
            self._event(f"rollout to gpucores={gpucores} gpumem={gpumem_mib}MiB")
            self._rollout = True
            if self.kube.last_deployment is not None and not self.options.dry_run:
                self._dep = self.kube.last_deployment
        if self.hpa_name is not None:
            return  # the cluster's HPA controller owns the replica count
        if int(dep["spec"].get("replicas", 1)) != int(replicas):
            self._api(self.kube.scale, int(replicas))
            self._mutated = True
            self._event(f"scale to {replicas} replicas")
            if not self.options.dry_run and self._dep is not None:
                self._dep["spec"]["replicas"] = int(replicas)

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        room = hami.capacity(hami.cluster_slots(self.config), gpumem_mib, gpucores)
        o = self.options
        return min(room, (o.gpus_total * o.max_gpucores_per_gpu) // max(1, int(gpucores)))

    def rollout_can_start(self, replicas: int, gpucores: int, gpumem_mib: int) -> bool:
        """The simulator's rule (:func:`k8s_gpu_rl.envs.sim.pods.rollout_can_start`) on the real pods."""
        state = self.deployment()

        def new_pod_fits() -> bool:
            slots = hami.cluster_slots(self.config)
            for p in self._pods:
                if p.holds_device:
                    i = hami.place(slots, p.gpumem_mib, p.gpucores)
                    if i is not None:
                        slots[i] = hami.allocate(slots[i], p.gpumem_mib, p.gpucores)
            return hami.place(slots, gpumem_mib, gpucores) is not None

        d = self.config.deployment
        return rollout_can_start(
            Template(state.gpucores, state.gpumem_mib),
            Template(int(gpucores), int(gpumem_mib)),
            state.rollout_in_progress,
            replicas,
            d.max_surge,
            d.max_unavailable,
            new_pod_fits,
        )

    # -- time passes -------------------------------------------------------------------------
    def _read_pods(self, dep: dict[str, Any] | None = None) -> list[PodView]:
        dep = dep or self._dep or self._attach()
        raw = self._api(self.kube.list_pods, dep)
        return [pod_view(p, self.options.container) for p in raw]

    def _poll_pods(self) -> None:
        """List the pods and integrate the per-pod figures up to now (episode time)."""
        try:
            pods = self._read_pods()
        except BackendError as exc:
            self._event(f"pod list failed: {exc}")
            pods = self._pods
        now = self.now_s()
        if self._integrated_t is not None and now > self._integrated_t:
            self._integrated = self._integrated.plus(now - self._integrated_t, self._pods)
        self._integrated_t = now
        self._pods, self._pods_t = pods, self._mono()
        for p in pods:
            if p.phase == PENDING and p.name not in self._reported_pending:
                self._reported_pending.add(p.name)
                self._event(f"pod {p.name} Pending: {p.pending_reason or 'not scheduled yet'}")

    # -- LiveBackend's hooks: the pods are listed every pod_poll_s while an interval runs --
    def _interval_started(self) -> None:
        self._next_poll = self._mono() + self.options.pod_poll_s

    def _pause_s(self) -> float:
        return min(self._next_poll - self._mono(), 0.5)

    def _during_wait(self) -> None:
        self._check_locust()
        if self._mono() >= self._next_poll:
            self._poll_pods()
            self._next_poll = self._mono() + self.options.pod_poll_s

    def _interval_ended(self) -> None:
        self._poll_pods()

    def _locust(self) -> LocustRun:
        return self.episode.locust

    def _integrals(self) -> Integrals:
        return self._integrated

    def _usage(self, duration_s: float, end_s: float) -> tuple[float, float]:
        return self._interval_usage(duration_s, self.episode.t0_unix + end_s)

    def _events(self) -> EventLog:
        return self.events

    def _series_labels(self) -> tuple[str, str, str]:
        o = self.options
        return o.model, o.namespace, o.deployment

    def _interval_usage(self, duration_s: float, at_unix: float) -> tuple[float, float]:
        o = self.options
        window = max(duration_s, 2.0 * self.scrape_interval_s)
        out = []
        for name, promql in interval_queries(
            o.namespace, o.deployment, o.container, duration_s, window
        ).items():
            t = time.perf_counter()
            try:
                value = self.prom.query_scalar(promql, at=at_unix)
            except BackendError as exc:
                self._event(f"{name}: Prometheus query failed ({exc}); counted as 0")
                value = math.nan
            finally:
                self.timing["prometheus_s"] += time.perf_counter() - t
            out.append(value if math.isfinite(value) else 0.0)
        return out[0], out[1]

    def _check_locust(self) -> None:
        ep = self.episode
        code = ep.locust.returncode
        if code is not None and code not in (0, 1) and not ep.locust.proc.stopping:
            raise BackendError(f"Locust exited with {code}; log tail:\n{ep.locust.proc.tail(20)}")

    # -- what the controller sees ------------------------------------------------------------
    def observe(self, window_s: float) -> dict[str, float]:
        """The observation's queries; a failed query makes the rest NaN at once and the
        observation stale (as does ``metrics_age > stale_after_s``)."""
        failed: list[str] = []
        t = time.perf_counter()
        raw: dict[str, float] = {}
        for name, promql in self._queries(window_s).items():
            if failed:  # Prometheus is down: do not wait for every query to time out
                raw[name] = math.nan
                continue
            try:
                raw[name] = self.prom.query_scalar(promql)
            except BackendError as exc:
                failed.append(str(exc))
                raw[name] = math.nan
        self.timing["prometheus_s"] += time.perf_counter() - t
        age = raw.get("metrics_age", math.nan)
        stale = bool(failed) or not math.isfinite(age) or age > self.options.stale_after_s
        if stale and not self.stale:
            self._stale_since = self._mono()
            why = failed[0] if failed else f"metrics_age {age:.0f} s"
            self._event(f"observation stale: {why}")
        elif not stale:
            self._stale_since = None
        self.stale = stale
        return raw

    def deployment(self) -> DeploymentState:
        dep = self._attach()
        pods = self._read_pods(dep)
        rss = self._api(self.kube.list_replicasets, dep)
        self._newest_hash = newest_hash(rss)
        self._pods, self._pods_t = pods, self._mono()
        cores, mem = template_share(self.kube, dep)
        old = any(
            (self._newest_hash and p.template_hash != self._newest_hash)
            or (p.gpucores, p.gpumem_mib) != (cores, mem)
            for p in pods
        )
        status = dep.get("status") or {}
        in_progress = old or status.get("observedGeneration", 0) < dep["metadata"].get(
            "generation", 0
        )
        if self._rollout and not in_progress:
            self._rollout = False
            self._event(f"rollout to gpucores={cores} finished")
        return deployment_state(dep["spec"].get("replicas", 1), cores, mem, pods, in_progress)

    def pod_metrics(self) -> list[PodMetrics]:
        if self._mono() - self._pods_t > self.options.pod_poll_s:
            self._pods, self._pods_t = self._read_pods(), self._mono()
        o = self.options
        per_pod: dict[str, dict[str, float]] = {}
        t = time.perf_counter()
        for name, promql in pod_queries(o.model, o.namespace, o.deployment, o.container).items():
            try:
                for labels, value in self.prom.query(promql):
                    per_pod.setdefault(labels.get("pod", ""), {})[name] = value
            except BackendError:
                break
        self.timing["prometheus_s"] += time.perf_counter() - t
        return pod_metrics(self._pods, per_pod, self._t0_unix())

    # -- live HPA ----------------------------------------------------------------------------
    def hpa_body(
        self,
        target_pct: float,
        min_replicas: int,
        max_replicas: int,
        behavior: dict[str, Any] | None = None,
        with_behavior: bool = True,
    ) -> dict[str, Any]:
        """The autoscaling/v2 HPA object :meth:`install_hpa` creates."""
        return hpa_body(
            self.options, target_pct, min_replicas, max_replicas, behavior, with_behavior
        )

    def install_hpa(
        self,
        target_pct: float,
        min_replicas: int,
        max_replicas: int,
        behavior: dict[str, Any] | None = None,
        with_behavior: bool = True,
    ) -> None:
        """Create the live HPA (CPU utilisation ``target_pct``); ``apply()`` stops scaling."""
        if not 1 <= int(min_replicas) <= int(max_replicas) <= self.options.max_replicas:
            raise BackendError(
                f"HPA replicas [{min_replicas}, {max_replicas}] outside [1, "
                f"{self.options.max_replicas}] (max_replicas)"
            )
        self._attach()
        body = self.hpa_body(target_pct, min_replicas, max_replicas, behavior, with_behavior)
        self._mutated = True
        self._api(self.kube.apply_hpa, body)
        self.hpa_name = body["metadata"]["name"]
        self._event(f"HPA {self.hpa_name} installed (cpu {target_pct:g} %)")

    def remove_hpa(self) -> None:
        """Delete the HPA :meth:`install_hpa` created (nothing if none)."""
        name = self.hpa_name
        if name is not None:
            self._api(self.kube.delete_hpa, name)
            self.hpa_name = None
            self._event(f"HPA {name} deleted")

    # -- the way out -------------------------------------------------------------------------
    def restore_patch(self, dep: dict[str, Any]) -> dict[str, Any]:
        """The strategic-merge patch that puts back the original replicas and template."""
        assert self._original is not None
        return self._original.restore_patch(self.kube, dep, self.options)

    def close(self) -> None:
        """Stop Locust, delete the HPA, restore the Deployment (idempotent)."""
        with self._lock:
            errors: list[str] = []
            try:
                self._stop_episode()
            except Exception as exc:  # noqa: BLE001 - the restore must still run
                errors.append(f"stopping Locust: {exc}")
            if self.hpa_name is not None:
                try:
                    self.remove_hpa()
                except BackendError as exc:
                    errors.append(str(exc))
            orig = self._original
            restored = True
            if orig is not None and self._mutated and not self.options.dry_run:
                try:
                    self.kube.patch_deployment(
                        f"restore deployments/{self.options.deployment} (replicas="
                        f"{orig.replicas}, limits={orig.limits})",
                        self.restore_patch,
                    )
                except BackendError as exc:
                    restored = False  # kept: atexit tries once more
                    errors.append(f"{exc}\n{orig.by_hand()}")
            if restored and self.hpa_name is None:
                self._original, self._mutated = None, False
            if self._atexit and self._original is None:
                with contextlib.suppress(Exception):
                    atexit.unregister(self.close)
                self._atexit = False
            self._dep = None
            if errors:
                message = "k8s backend close(): " + "\n".join(errors)
                print(message, file=sys.stderr, flush=True)
                raise BackendError(message)
