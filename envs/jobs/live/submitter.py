"""Send placements to real clusters and follow them with watches.

One kubeconfig context per cluster (``contexts``: cluster name -> context). The three
failures the user met on 100-job queues are rules here, each tested against one fake API
server per cluster (``tests/test_jobs_live.py``):

* **a job submitted twice / to two nodes**: a job has at most one live attempt; a second
  :meth:`LiveSubmitter.submit` of it raises :class:`SubmitError` unless the first ended,
  and an attempt's name is fixed (``<job>-a<n>``), so a retried create meets 409
  AlreadyExists instead of making a second Job;
* **a job submitted without a reservation**: :meth:`LiveSubmitter.reserve` books a node for
  a hungry job; any other job's submission to that node raises :class:`SubmitError`; the
  owner's Job carries the reservation as an annotation;
* **a failed-to-schedule job never re-assigned**: a watch on each cluster's pods sees
  ``PodScheduled=False/Unschedulable``; after ``unschedulable_grace_s`` the Job is deleted
  (Background propagation) and the job re-queued (:meth:`LiveSubmitter.requeued`) for the
  scheduler to place again, on any cluster.

Progress comes from watches (event-driven, no periodic scan): Job conditions Complete /
Failed end an attempt (a pod terminated ``OOMKilled`` or exit code 137 marks it OOM).
:meth:`LiveSubmitter.metrics` reads each cluster's Prometheus (HAMi's metric names).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from k8s_gpu_rl.envs.jobs.live.manifest import LABEL, MANAGED, LiveOptions, job_manifest, job_name
from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec
from k8s_gpu_rl.errors import BackendError, K8sGpuRlError


class SubmitError(K8sGpuRlError, RuntimeError):
    """A submission that would break a rule (twice, reserved node, unknown cluster)."""


@dataclass
class Attempt:
    job_id: str
    attempt: int
    cluster: str
    node: str
    name: str
    state: str = "submitted"
    """submitted, running, succeeded, failed, oom, unschedulable."""
    unschedulable_since: float = -1.0


@dataclass
class _Cluster:
    name: str
    batch: Any
    core: Any
    threads: list[threading.Thread] = field(default_factory=list)


class LiveSubmitter:
    """Submits Jobs to several clusters and follows them."""

    def __init__(
        self,
        kubeconfig: str,
        contexts: dict[str, str],
        options: LiveOptions | None = None,
        prometheus: dict[str, str] | None = None,
        on_change: Callable[[Attempt], None] | None = None,
    ) -> None:
        from kubernetes import client, config

        self.options = options or LiveOptions()
        self.clusters: dict[str, _Cluster] = {}
        for name, ctx in contexts.items():
            api = config.new_client_from_config(config_file=kubeconfig, context=ctx)
            self.clusters[name] = _Cluster(name, client.BatchV1Api(api), client.CoreV1Api(api))
        self.prometheus = prometheus or {}
        self.on_change = on_change
        self.attempts: dict[str, Attempt] = {}
        """Latest attempt per job."""
        self.reservations: dict[tuple[str, str], str] = {}
        """(cluster, node) -> job id."""
        self._requeued: list[str] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()

    # -- submission -----------------------------------------------------------------------
    def reserve(self, job_id: str, cluster: str, node: str) -> None:
        with self._lock:
            owner = self.reservations.get((cluster, node))
            if owner not in (None, job_id):
                raise SubmitError(f"node {cluster}/{node} is already reserved for {owner}")
            self.reservations[(cluster, node)] = job_id

    def submit(
        self, spec: JobSpec, cluster: str, node: str, gpumem_mib: int, gpucores: int = 0
    ) -> Attempt:
        """Create the Job of the job's next attempt on ``cluster``, pinned to ``node``."""
        from kubernetes.client.exceptions import ApiException

        if cluster not in self.clusters:
            raise SubmitError(f"unknown cluster {cluster!r}; known: {', '.join(self.clusters)}")
        with self._lock:
            last = self.attempts.get(spec.job_id)
            if last is not None and last.state in ("submitted", "running"):
                raise SubmitError(
                    f"job {spec.job_id} already runs as {last.name} on {last.cluster}/{last.node}; not submitting it again"
                )
            owner = self.reservations.get((cluster, node))
            if owner not in (None, spec.job_id):
                raise SubmitError(
                    f"node {cluster}/{node} is reserved for {owner}; {spec.job_id} may not use it"
                )
            n = 0 if last is None else last.attempt + 1
            attempt = Attempt(spec.job_id, n, cluster, node, job_name(spec.job_id, n))
            self.attempts[spec.job_id] = attempt
            if owner == spec.job_id:
                del self.reservations[(cluster, node)]
        body = job_manifest(spec, n, cluster, node, gpumem_mib, gpucores, self.options, owner)
        try:
            self.clusters[cluster].batch.create_namespaced_job(self.options.namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: this attempt exists already, which is what we want
                with self._lock:
                    self.attempts[spec.job_id] = last if last is not None else attempt
                    if last is None:
                        del self.attempts[spec.job_id]
                raise BackendError(
                    f"{cluster}: creating Job {attempt.name} failed: {exc.status} {exc.reason}"
                ) from None
        return attempt

    def requeued(self) -> list[str]:
        """Job ids whose attempt could not be scheduled, since the last call."""
        with self._lock:
            out, self._requeued = self._requeued, []
        return out

    # -- watches --------------------------------------------------------------------------
    def start(self) -> LiveSubmitter:
        for c in self.clusters.values():
            for target in (self._watch_jobs, self._watch_pods):
                t = threading.Thread(target=target, args=(c,), daemon=True, name=f"watch-{c.name}")
                t.start()
                c.threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for c in self.clusters.values():
            for t in c.threads:
                t.join(timeout=5.0)

    def _selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in MANAGED.items())

    def _watch(
        self, c: _Cluster, list_fn: Callable[..., Any], handle: Callable[[_Cluster, Any], None]
    ) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(
                    list_fn,
                    self.options.namespace,
                    label_selector=self._selector(),
                    timeout_seconds=1,
                ):
                    handle(c, event["object"])
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - a dropped stream is re-opened
                time.sleep(0.2)
            finally:
                w.stop()
            self._check_unschedulable(c)

    def _watch_jobs(self, c: _Cluster) -> None:
        self._watch(c, c.batch.list_namespaced_job, self._on_job)

    def _watch_pods(self, c: _Cluster) -> None:
        self._watch(c, c.core.list_namespaced_pod, self._on_pod)

    def _attempt_of(self, c: _Cluster, name: str) -> Attempt | None:
        with self._lock:
            for a in self.attempts.values():
                if a.name == name and a.cluster == c.name:
                    return a
        return None

    def _set(self, a: Attempt, state: str) -> None:
        if a.state != state:
            a.state = state
            if self.on_change:
                self.on_change(a)

    def _on_job(self, c: _Cluster, job: Any) -> None:
        a = self._attempt_of(c, job.metadata.name)
        if a is None or a.state in ("succeeded", "failed", "oom", "unschedulable"):
            return
        for cond in job.status.conditions or []:
            if cond.status == "True" and cond.type == "Complete":
                self._set(a, "succeeded")
            elif cond.status == "True" and cond.type == "Failed" and a.state != "oom":
                self._set(a, "failed")

    def _on_pod(self, c: _Cluster, pod: Any) -> None:
        owner = (pod.metadata.labels or {}).get("job-name")
        a = self._attempt_of(c, owner) if owner else None
        if a is None or a.state not in ("submitted", "running"):
            return
        for st in (pod.status.container_statuses or []) if pod.status else []:
            term = st.state.terminated if st.state else None
            if term is not None and (term.reason == "OOMKilled" or term.exit_code == 137):
                self._set(a, "oom")
                return
        conds = {x.type: x for x in (pod.status.conditions or [])} if pod.status else {}
        sched = conds.get("PodScheduled")
        if sched is not None and sched.status == "False" and sched.reason == "Unschedulable":
            if a.unschedulable_since < 0:
                a.unschedulable_since = time.monotonic()
            self._check_unschedulable(c)
        elif pod.status and pod.status.phase == "Running":
            self._set(a, "running")

    def _check_unschedulable(self, c: _Cluster) -> None:
        now = time.monotonic()
        with self._lock:
            stuck = [
                a
                for a in self.attempts.values()
                if a.cluster == c.name
                and a.state == "submitted"
                and a.unschedulable_since >= 0
                and now - a.unschedulable_since >= self.options.unschedulable_grace_s
            ]
            for a in stuck:
                self._set(a, "unschedulable")
                self._requeued.append(a.job_id)
        for a in stuck:
            with contextlib.suppress(Exception):  # already gone is fine
                c.batch.delete_namespaced_job(
                    a.name, self.options.namespace, propagation_policy="Background"
                )

    # -- metrics --------------------------------------------------------------------------
    def metrics(self, cluster: str) -> dict[str, list[tuple[dict[str, str], float]]]:
        """The cluster's HAMi figures from its Prometheus (as late as its scrapes)."""
        from k8s_gpu_rl.envs.backends.promql import PrometheusClient

        url = self.prometheus.get(cluster)
        if url is None:
            raise SubmitError(f"no Prometheus URL for cluster {cluster!r}")
        prom = PrometheusClient(url)
        try:
            return {
                q: [(dict(labels), value) for labels, value in prom.query(q)]
                for q in (
                    "hami_host_gpu_memory_used_bytes",
                    "hami_vgpu_memory_limit_bytes",
                    "hami_gpu_core_allocated_ratio",
                )
            }
        finally:
            prom.close()


__all__ = ["LABEL", "Attempt", "LiveOptions", "LiveSubmitter", "SubmitError"]
