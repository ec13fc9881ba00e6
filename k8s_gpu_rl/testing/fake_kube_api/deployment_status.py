"""Deployment status: counters and the Available / Progressing conditions."""

from __future__ import annotations

import copy
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.deployments import _pct_or_int
from k8s_gpu_rl.testing.fake_kube_api.pod_status import _pod_ready
from k8s_gpu_rl.testing.fake_kube_api.util import _now

#: (status, reason, message, whether lastUpdateTime moves) of a condition
_Verdict = tuple[str, str, str, bool]


def _available(ready: int, desired: int, max_unavailable: int) -> _Verdict:
    if ready >= desired - max_unavailable:
        return "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", False
    return (
        "False",
        "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.",
        False,
    )


def _progressing(
    rs_name: str, complete: bool, timed_out: bool, created: bool, progressed: bool
) -> _Verdict:
    if complete:
        return (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            False,
        )
    if timed_out:
        return (
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
            False,
        )
    if created:
        return "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"', True
    return "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', progressed


def _deployment_condition(
    prev: dict[str, Any] | None, ctype: str, verdict: _Verdict, stamp: str
) -> dict[str, Any]:
    """A condition; its times stay those of ``prev`` while nothing it reports changed."""
    status, reason, message, bump = verdict
    c = {
        "type": ctype,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }
    if prev is not None:
        if prev["status"] == status:
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        if prev["status"] == status and prev["reason"] == reason and not bump:
            c["lastUpdateTime"] = prev["lastUpdateTime"]
    return c


class DeploymentStatusMixin:
    """Writes a Deployment's status after each controller pass."""

    def _update_deployment_status(
        self,
        ns: str,
        dep: dict[str, Any],
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
        new_pods: list[dict[str, Any]],
        old_pods: list[dict[str, Any]],
        now: float,
        created: bool,
    ) -> None:
        spec = dep["spec"]
        desired = spec["replicas"]
        ready = sum(1 for p in new_pods + old_pods if _pod_ready(p))
        total_spec = sum(r["spec"]["replicas"] for r in [new_rs, *old_rss])
        counts = {
            "replicas": len(new_pods) + len(old_pods),
            "updatedReplicas": len(new_pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, total_spec - ready),
        }
        ru = spec.get("strategy", {}).get("rollingUpdate", {})
        unavail = _pct_or_int(ru.get("maxUnavailable", "25%"), desired, round_up=False) if ru else 0
        complete = len(new_pods) == desired and not old_pods and ready == desired
        new_ready = sum(1 for p in new_pods if _pod_ready(p))
        signature = (len(new_pods), len(old_pods), ready, new_ready, desired)
        progressed, last_t = self._note_progress(dep["metadata"]["uid"], signature, now)
        timed_out = now - last_t > spec.get("progressDeadlineSeconds", 600)
        old_status = dep.get("status", {})
        old_conds = {c["type"]: c for c in old_status.get("conditions", [])}
        stamp = _now()
        rs_name = new_rs["metadata"]["name"]
        verdicts = {
            "Available": _available(ready, desired, unavail),
            "Progressing": _progressing(rs_name, complete, timed_out, created, progressed),
        }
        status: dict[str, Any] = {"observedGeneration": dep["metadata"]["generation"]}
        status.update({k: v for k, v in counts.items() if v})  # omitempty, like the real server
        status["conditions"] = [
            _deployment_condition(old_conds.get(t), t, v, stamp) for t, v in verdicts.items()
        ]
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        new = copy.deepcopy(dep)
        new["status"] = status
        revision = new_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        new["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = (
            revision
        )
        self._write("deployments", dep, new)

    def _note_progress(self, uid: str, signature: Any, now: float) -> tuple[bool, float]:
        """Whether the rollout moved since the last pass, and when it last did."""
        last_sig, last_t = self._progress.get(uid, (None, now))
        progressed = signature != last_sig
        if progressed:
            self._progress[uid] = (signature, now)
            last_t = now
        return progressed, last_t
