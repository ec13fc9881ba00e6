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
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from k8s_gpu_rl.envs.backends.base import DeploymentState, IntervalRecord, PodMetrics
from k8s_gpu_rl.envs.backends.k8s.kube import GPUCORES, GPUMEM, KubeApi
from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions
from k8s_gpu_rl.envs.backends.promql import PrometheusClient
from k8s_gpu_rl.envs.observation import interval_queries, pod_queries, queries
from k8s_gpu_rl.envs.sim import hami
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.pods import Template, rollout_can_start
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.loadprofiles import LoadProfile
from k8s_gpu_rl.loadprofiles.profile import profile_dict, users_at

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"
LOCUST_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PodView:
    """One pod as the backend reads it from the API."""

    name: str
    phase: str
    """Pending (not placed), Starting, Ready, Terminating or CrashLoopBackOff."""
    template_hash: str
    gpucores: int
    gpumem_mib: int
    cpu_request: float
    created_unix: float
    started_unix: float
    ready_unix: float
    pending_reason: str = ""

    @property
    def holds_device(self) -> bool:
        """Placed by HAMi (its vGPU share is allocated)."""
        return self.phase != "Pending"


@dataclass
class _Original:
    """What close() restores."""

    replicas: int
    limits: dict[str, str | None]
    requests: dict[str, str | None]
    annotations: dict[str, str | None]
    scheduler_name: str | None


@dataclass
class _Episode:
    group: Any
    locust: Any
    run_dir: Path
    t0_mono: float
    t0_unix: float
    last_end: float = 0.0


class K8sBackend:
    """A live cluster behind the :class:`~k8s_gpu_rl.envs.backends.base.Backend` seam."""

    def __init__(
        self,
        config: ClusterConfig,
        profile: LoadProfile,
        options: K8sOptions | None = None,
        kube: KubeApi | None = None,
    ) -> None:
        self.config = config
        self.profile = profile
        self.options = options or K8sOptions()
        self.total_gpus = float(self.options.gpus_total)
        self.gpu_memory_mib = min(g.memory_mib for _, g in config.gpus)
        self.max_batch = config.serving.max_batch_size
        self.scrape_interval_s = config.metrics.scrape_interval_s
        self.duration_s = profile.duration_s
        self._kube = kube
        self.prom = PrometheusClient(self.options.prometheus_url, self.options.prometheus_timeout_s)
        self._lock = threading.RLock()
        self._original: _Original | None = None
        self._atexit = False
        self._closed_hpa: str | None = None
        self.hpa_name: str | None = None
        """The HPA this backend created (None: none)."""
        self._episode: _Episode | None = None
        self._dep: dict[str, Any] | None = None
        self._pods: list[PodView] = []
        self._newest_hash = ""
        self._pods_t = -math.inf
        self._promql: dict[str, dict[str, str]] = {}
        self._stale_since: float | None = None
        self.stale = False
        self.events: list[str] = []
        self._events_seen = 0
        self._reported_pending: set[str] = set()
        self._acc = [0.0, 0.0, 0.0, 0.0]  # vgpu_s, replica_s, cpu_request_s, gpu_memory_mib_s
        self._acc_t: float | None = None
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

    def now_s(self) -> float:
        ep = self._episode
        return 0.0 if ep is None else self._mono() - ep.t0_mono

    def _t0_unix(self) -> float:
        return self._episode.t0_unix if self._episode is not None else time.time()

    def _event(self, text: str) -> None:
        self.events.append(f"{self.now_s():.0f}s {text}")

    def _attach(self) -> dict[str, Any]:
        """Read the Deployment (label check) and, the first time, remember its original state."""
        dep = self._api(self.kube.read_deployment)
        self._dep = dep
        if self._original is None:
            c = self.kube.container(dep)
            res = c.get("resources") or {}
            tmpl = dep["spec"]["template"]
            keys = (GPUCORES, GPUMEM)
            self._original = _Original(
                replicas=int(dep["spec"].get("replicas", 1)),
                limits={k: (res.get("limits") or {}).get(k) for k in keys},
                requests={k: (res.get("requests") or {}).get(k) for k in keys},
                annotations={
                    k: ((tmpl.get("metadata") or {}).get("annotations") or {}).get(k)
                    for k in self.options.pod_annotations
                },
                scheduler_name=tmpl["spec"].get("schedulerName"),
            )
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
        return dep

    # -- bounds ------------------------------------------------------------------------------
    def check_bounds(self, replicas: int, gpucores: int, gpumem_mib: int) -> None:
        """Raise :class:`BackendError` unless the request is within the safety bounds."""
        o = self.options
        if not 1 <= int(replicas) <= o.max_replicas:
            raise BackendError(f"replicas {replicas} outside [1, {o.max_replicas}] (max_replicas)")
        if not 1 <= int(gpucores) <= 100:
            raise BackendError(f"gpucores {gpucores} outside [1, 100]")
        cap = o.gpus_total * o.max_gpucores_per_gpu
        if int(replicas) * int(gpucores) > cap:
            raise BackendError(
                f"replicas x gpucores = {replicas} x {gpucores} exceeds the GPUs' cores "
                f"{o.gpus_total} x {o.max_gpucores_per_gpu} = {cap}"
            )
        if not int(gpumem_mib) > 0:
            raise BackendError(f"gpumem {gpumem_mib} MiB must be > 0")

    # -- Backend -----------------------------------------------------------------------------
    def reset(self, seed: int, gpucores: int | None = None, gpumem_mib: int | None = None) -> None:
        del seed  # the cluster and Locust are not seeded
        self._stop_episode()
        d = self.config.deployment
        cores = d.gpucores if gpucores is None else int(gpucores)
        mem = d.gpumem_mib if gpumem_mib is None else int(gpumem_mib)
        self.check_bounds(d.replicas, cores, mem)
        dep = self._attach()
        self.events, self._events_seen, self._reported_pending = [], 0, set()
        if _template_share(self.kube, dep) != (cores, mem):
            self._api(self.kube.patch_share, cores, mem)
            self._mutated = True
            self._event(f"reset: rollout to gpucores={cores} gpumem={mem}MiB")
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
            if _rollout_complete(dep):
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
        from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun
        from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup

        group = ProcessGroup(prefix="k8sgpurl-k8s-")
        try:
            run_dir = Path(group.rundir)
            profile_path = run_dir / "profile.yaml"
            profile_path.write_text(yaml.safe_dump(profile_dict(self.profile), sort_keys=False))
            locust = LocustRun(
                group,
                host=self.options.service_url,
                profile=str(profile_path),
                csv_prefix=str(run_dir / "locust"),
                request_log=str(run_dir / "requests.csv"),
                extra_env={"K8SGPURL_MODEL": self.options.model},
            )
            # time 0 is when Locust's load shape starts (its profile clock), not its launch
            t0_unix = locust.wait_started(LOCUST_START_TIMEOUT_S)
        except BaseException:
            group.close()
            raise
        self._episode = _Episode(group, locust, run_dir, self._mono(), t0_unix)
        self._acc = [0.0, 0.0, 0.0, 0.0]
        self._acc_t = 0.0
        self._poll_pods()

    def _stop_episode(self) -> None:
        ep, self._episode = self._episode, None
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
        if _template_share(self.kube, dep) != (int(gpucores), int(gpumem_mib)):
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
        return [_pod_view(p, self.options.container) for p in raw]

    def _poll_pods(self) -> None:
        """List the pods and integrate the per-pod figures up to now (episode time)."""
        try:
            pods = self._read_pods()
        except BackendError as exc:
            self._event(f"pod list failed: {exc}")
            pods = self._pods
        now = self.now_s()
        if self._acc_t is not None and now > self._acc_t:
            self._integrate(now - self._acc_t)
        self._acc_t = now
        self._pods, self._pods_t = pods, self._mono()
        for p in pods:
            if p.phase == "Pending" and p.name not in self._reported_pending:
                self._reported_pending.add(p.name)
                self._event(f"pod {p.name} Pending: {p.pending_reason or 'not scheduled yet'}")

    def _integrate(self, dt: float) -> None:
        holding = [p for p in self._pods if p.holds_device]
        self._acc[0] += dt * sum(p.gpucores for p in holding) / 100.0
        self._acc[1] += dt * sum(p.phase == "Ready" for p in self._pods)
        self._acc[2] += dt * sum(p.cpu_request for p in holding)
        self._acc[3] += dt * sum(p.gpumem_mib for p in holding)

    def advance(self, duration_s: float) -> IntervalRecord:
        ep = self.episode
        start = ep.last_end
        end = start + duration_s
        acc_before = list(self._acc)
        next_poll = self._mono() + self.options.pod_poll_s
        while (left := end - self.now_s()) > 0:
            time.sleep(max(0.0, min(left, next_poll - self._mono(), 0.5)))
            self._check_locust()
            if self._mono() >= next_poll:
                self._poll_pods()
                next_poll = self._mono() + self.options.pod_poll_s
        self._poll_pods()
        ep.last_end = end
        # mid-episode, a row flushed late counts in the next interval
        rows = ep.locust.take_until(end, final=end >= self.duration_s - 1e-9)
        vgpu, replica, cpu_req, mem = (a - b for a, b in zip(self._acc, acc_before, strict=True))
        gpu_work, cpu = self._interval_usage(duration_s, ep.t0_unix + end)
        return IntervalRecord(
            start_s=start,
            end_s=end,
            latencies_s=rows[:, 1].astype(np.float64),
            ok=rows[:, 2].astype(bool),
            vgpu_s=vgpu,
            gpu_work_s=gpu_work,
            replica_s=replica,
            cpu_s=cpu,
            cpu_request_s=cpu_req,
            gpu_memory_mib_s=mem,
            events=self._new_events(),
            users=users_at(self.profile, end),
        )

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

    def _new_events(self) -> list[str]:
        events = self.events[self._events_seen :]
        self._events_seen += len(events)
        return events

    # -- what the controller sees ------------------------------------------------------------
    def observe(self, window_s: float) -> dict[str, float]:
        key = f"{window_s:.3f}"
        if key not in self._promql:
            o = self.options
            self._promql[key] = queries(o.model, o.namespace, o.deployment, window_s)
        failed: list[str] = []
        t = time.perf_counter()
        raw: dict[str, float] = {}
        for name, promql in self._promql[key].items():
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
        self._newest_hash = _newest_hash(rss)
        self._pods, self._pods_t = pods, self._mono()
        cores, mem = _template_share(self.kube, dep)
        ready = [p.gpucores for p in pods if p.phase == "Ready"]
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
        return DeploymentState(
            spec_replicas=int(dep["spec"].get("replicas", 1)),
            ready_replicas=len(ready),
            pending_pods=sum(p.phase == "Pending" for p in pods),
            gpucores=cores,
            gpumem_mib=mem,
            serving_gpucores=sum(ready) / len(ready) if ready else 0.0,
            rollout_in_progress=bool(in_progress),
        )

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
        t0 = self._t0_unix()
        out = []
        for p in self._pods:
            m = per_pod.get(p.name, {})
            out.append(
                PodMetrics(
                    name=p.name,
                    phase=p.phase,
                    created_s=p.created_unix - t0,
                    started_s=p.started_unix - t0,
                    ready_s=p.ready_unix - t0 if p.phase == "Ready" else math.inf,
                    cpu_cores=m.get("cpu_cores", math.nan),
                    cpu_request_cores=p.cpu_request,
                    gpucores=p.gpucores,
                    rps=m.get("rps", math.nan),
                    inflight=m.get("inflight", math.nan),
                )
            )
        return out

    # -- live HPA ----------------------------------------------------------------------------
    def hpa_body(
        self,
        target_pct: float,
        min_replicas: int,
        max_replicas: int,
        behavior: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The autoscaling/v2 HPA object :meth:`install_hpa` creates."""
        o = self.options
        key, value = o.label
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {
                "name": f"{o.deployment}-k8sgpurl",
                "namespace": o.namespace,
                "labels": {key: value},
            },
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": o.deployment,
                },
                "minReplicas": int(min_replicas),
                "maxReplicas": int(max_replicas),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": int(round(target_pct)),
                            },
                        },
                    }
                ],
                "behavior": behavior if behavior is not None else hpa_behavior(),
            },
        }

    def install_hpa(
        self,
        target_pct: float,
        min_replicas: int,
        max_replicas: int,
        behavior: dict[str, Any] | None = None,
    ) -> None:
        """Create the live HPA (CPU utilisation ``target_pct``); ``apply()`` stops scaling."""
        if not 1 <= int(min_replicas) <= int(max_replicas) <= self.options.max_replicas:
            raise BackendError(
                f"HPA replicas [{min_replicas}, {max_replicas}] outside [1, "
                f"{self.options.max_replicas}] (max_replicas)"
            )
        self._attach()
        body = self.hpa_body(target_pct, min_replicas, max_replicas, behavior)
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
        o, orig = self.options, self._original
        assert orig is not None
        res: dict[str, Any] = {"limits": dict(orig.limits)}
        current = (self.kube.container(dep).get("resources") or {}).get("requests") or {}
        if any(k in current for k in orig.requests) or any(orig.requests.values()):
            res["requests"] = dict(orig.requests)
        pod_spec: dict[str, Any] = {"containers": [{"name": o.container, "resources": res}]}
        if o.scheduler_name is not None:
            pod_spec["schedulerName"] = orig.scheduler_name
        template: dict[str, Any] = {"spec": pod_spec}
        if orig.annotations:
            template["metadata"] = {"annotations": dict(orig.annotations)}
        return {"spec": {"replicas": orig.replicas, "template": template}}

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
                    errors.append(
                        f"{exc}\nRestore by hand: replicas {orig.replicas}, limits "
                        f"{orig.limits}, requests {orig.requests}, annotations "
                        f"{orig.annotations}, schedulerName {orig.scheduler_name}"
                    )
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


def hpa_behavior(scale_down_window_s: int | None = None) -> dict[str, Any]:
    """autoscaling/v2 ``spec.behavior`` with the API defaults written out
    (``k8s_gpu_rl.baselines.hpa_algorithm``), the scale-down window as given (None: 300 s)."""
    from k8s_gpu_rl.baselines.hpa_algorithm import HpaSpec, ScalingRules

    down = None if scale_down_window_s is None else ScalingRules(int(scale_down_window_s))
    spec = HpaSpec(max_replicas=1, scale_down=down)

    def rules(r: Any) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": int(r.stabilization_window_s),
            "selectPolicy": r.select_policy,
            "policies": [
                {"type": p.type, "value": int(p.value), "periodSeconds": int(p.period_s)}
                for p in r.policies
            ],
        }

    return {"scaleUp": rules(spec.scale_up_rules()), "scaleDown": rules(spec.scale_down_rules())}


# --------------------------------------------------------------------------- pod helpers


def _quantity(value: Any, default: float = 0.0) -> float:
    if value is None:
        return default
    from kubernetes.utils import parse_quantity

    try:
        return float(parse_quantity(value))
    except (ValueError, TypeError):
        return default


def _share_of(container: dict[str, Any]) -> tuple[int, int]:
    limits = (container.get("resources") or {}).get("limits") or {}
    return int(_quantity(limits.get(GPUCORES))), int(_quantity(limits.get(GPUMEM)))


def _template_share(kube: KubeApi, dep: dict[str, Any]) -> tuple[int, int]:
    return _share_of(kube.container(dep))


def _unix(stamp: str | None) -> float:
    if not stamp:
        return math.inf
    try:
        return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.inf


def _condition(pod: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def _pod_view(pod: dict[str, Any], container: str) -> PodView:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    c = next(
        (x for x in spec.get("containers") or [] if x.get("name") == container),
        (spec.get("containers") or [{}])[0],
    )
    cores, mem = _share_of(c)
    requests_ = (c.get("resources") or {}).get("requests") or {}
    cstatus = next(
        (s for s in status.get("containerStatuses") or [] if s.get("name") == c.get("name")), {}
    )
    state = cstatus.get("state") or {}
    started = _unix((state.get("running") or {}).get("startedAt"))
    ready_c = _condition(pod, "Ready")
    sched = _condition(pod, "PodScheduled")
    ready = ready_c.get("status") == "True"
    reason = ""
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    elif status.get("phase") == "Pending" and not spec.get("nodeName"):
        phase = "Pending"
        reason = " ".join(filter(None, [sched.get("reason"), sched.get("message")]))
    elif ((state.get("waiting") or {}).get("reason")) == "CrashLoopBackOff":
        phase = "CrashLoopBackOff"
    elif status.get("phase") == "Running" and ready:
        phase = "Ready"
    else:
        phase = "Starting"
    return PodView(
        name=meta["name"],
        phase=phase,
        template_hash=(meta.get("labels") or {}).get(HASH, ""),
        gpucores=cores,
        gpumem_mib=mem,
        cpu_request=_quantity(requests_.get("cpu")),
        created_unix=_unix(meta.get("creationTimestamp")),
        started_unix=started,
        ready_unix=_unix(ready_c.get("lastTransitionTime")) if ready else math.inf,
        pending_reason=reason,
    )


def _newest_hash(replicasets: list[dict[str, Any]]) -> str:
    best, rev = "", -1
    for rs in replicasets:
        meta = rs["metadata"]
        try:
            r = int((meta.get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            r = 0
        if r > rev:
            best, rev = (meta.get("labels") or {}).get(HASH, ""), r
    return best


def _rollout_complete(dep: dict[str, Any]) -> bool:
    """kubectl rollout status's rule: new generation observed, every replica updated,
    ready, and no old replica left."""
    spec, status = dep["spec"], dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (
        status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == want
        and status.get("readyReplicas", 0) == want
        and status.get("replicas", 0) == want
    )
