"""The batch/v1 Job controller: pods per Job, backoff limit, completion, deletion policies."""

from __future__ import annotations

import copy
import time
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.pod_status import _pod_ready
from k8s_gpu_rl.testing.fake_kube_api.util import _now
from k8s_gpu_rl.testing.fake_kube_api.validation import _default_pod_spec

_JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
    'this warning"'
)


def _over_backoff_limit(spec: dict[str, Any], active: list[dict[str, Any]], failed: int) -> bool:
    """Failed pods (and, with OnFailure, container restarts) past ``backoffLimit``."""
    restarts = sum(
        c.get("restartCount", 0) for p in active for c in p["status"].get("containerStatuses", [])
    )
    limit = spec.get("backoffLimit", 6)
    if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
        return restarts + failed > 0 if limit == 0 else restarts + failed >= limit
    return failed > limit


def _set_counts(st: dict[str, Any], active: int, succeeded: int, failed: int) -> None:
    """status.active/succeeded/failed, omitted when zero."""
    for key, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
        if value:
            st[key] = value
        else:
            st.pop(key, None)


class JobMixin:
    """Runs each Job's pods to completion or the backoff limit, and deletes Jobs."""

    def _owned_pods(self, ns: str, uid: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self._store["pods"].get(ns, {}).values()
            if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))
        ]

    def _reconcile_job(self, ns: str, job: dict[str, Any], now: float) -> None:
        meta, spec = job["metadata"], job["spec"]
        pods = self._owned_pods(ns, meta["uid"])
        if "deletionTimestamp" in meta:
            self._finish_job_deletion(ns, job, pods)
            return
        status = job.get("status", {})
        if any(c["type"] in ("Complete", "Failed") for c in status.get("conditions", [])):
            return
        live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
        phases = [p["status"].get("phase") for p in live]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = [p for p in live if p["status"].get("phase") not in ("Succeeded", "Failed")]
        over = _over_backoff_limit(spec, active, failed)
        new = copy.deepcopy(job)
        st = new["status"]
        st.setdefault("startTime", _now())
        completions = spec.get("completions")
        done = succeeded >= (completions if completions is not None else 1) and (
            completions is not None or not active
        )
        if over:
            for pod in active:
                self._delete_pod(pod)
            active = []
            self._job_condition(
                ns,
                job,
                st,
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif done:
            st["completionTime"] = _now()
            self._job_condition(ns, job, st, "Complete", None, None)
        elif not spec.get("suspend"):
            active += self._start_job_pods(ns, job, len(active), succeeded, failed, now)
        _set_counts(st, len(active), succeeded, failed)
        st["ready"] = sum(1 for p in active if _pod_ready(p))
        st.setdefault("uncountedTerminatedPods", {})
        self._write("jobs", job, new)

    def _start_job_pods(
        self, ns: str, job: dict[str, Any], active: int, succeeded: int, failed: int, now: float
    ) -> list[dict[str, Any]]:
        """New pods up to ``parallelism``, none while the back-off after a failure lasts."""
        spec = job["spec"]
        completions = spec.get("completions")
        want = min(spec.get("parallelism", 1), (completions or 1) - succeeded) - active
        seen = self._pod_times.setdefault(job["metadata"]["uid"], {})  # back-off after failures
        if failed != seen.get("failed", 0):
            seen["failed"], seen["failed_at"] = failed, now
        if failed and now - seen["failed_at"] < self.job_backoff_s * 2 ** (failed - 1):
            want = 0
        return [self._create_job_pod(ns, job) for _ in range(max(0, want))]

    def _job_condition(
        self,
        ns: str,
        job: dict[str, Any],
        st: dict[str, Any],
        ctype: str,
        reason: str | None,
        message: str | None,
    ) -> None:
        stamp = _now()
        cond: dict[str, Any] = {
            "type": ctype,
            "status": "True",
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
        }
        if reason:
            cond["reason"], cond["message"] = reason, message
        st["conditions"] = [*st.get("conditions", []), cond]
        if ctype == "Complete":
            self._event(ns, job, "Normal", "Completed", "Job completed", "job-controller")
        else:
            self._event(ns, job, "Warning", reason or ctype, message or "", "job-controller")

    def _delete_job(
        self, ns: str, obj: dict[str, Any], dry_run: bool, policy: str | None
    ) -> dict[str, Any] | None:
        """DELETE of a Job: with Orphan (batch/v1's legacy default, with the warning 1.27+
        servers send) or Foreground the Job stays, marked, and is returned; with Background
        its pods go and None is returned (the caller removes the Job)."""
        if policy is None:
            policy = "Orphan"
            self._extra_headers["Warning"] = _JOB_ORPHAN_WARNING
        if policy in ("Orphan", "Foreground"):
            new = copy.deepcopy(obj)
            new["metadata"].setdefault("deletionTimestamp", _now())
            new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            fin = "orphan" if policy == "Orphan" else "foregroundDeletion"
            new["metadata"]["finalizers"] = [*new["metadata"].get("finalizers", []), fin]
            if not dry_run:
                self._write("jobs", obj, new)
                self._reconcile_job(ns, obj, time.monotonic())
            return copy.deepcopy(new)
        if not dry_run:
            for pod in self._owned_pods(ns, obj["metadata"]["uid"]):
                self._delete_pod(pod)
        return None

    def _finish_job_deletion(
        self, ns: str, job: dict[str, Any], pods: list[dict[str, Any]]
    ) -> None:
        finalizers = job["metadata"].get("finalizers", [])
        if "orphan" in finalizers:  # the garbage collector strips the owner reference
            for pod in pods:
                new = copy.deepcopy(pod)
                new["metadata"]["ownerReferences"] = [
                    o
                    for o in pod["metadata"].get("ownerReferences", [])
                    if o.get("uid") != job["metadata"]["uid"]
                ]
                self._write("pods", pod, new)
            self._remove("jobs", ns, job["metadata"]["name"])
            return
        for pod in pods:
            self._delete_pod(pod)
        if not self._owned_pods(ns, job["metadata"]["uid"]):
            self._remove("jobs", ns, job["metadata"]["name"])

    def _create_job_pod(self, ns: str, job: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(job["spec"]["template"])
        _default_pod_spec(template["spec"])
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        owner = ("batch/v1", "Job", job)
        return self._add_controlled_pod(ns, template, labels, owner, "job-controller")
