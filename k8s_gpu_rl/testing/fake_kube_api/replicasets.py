"""ReplicaSets: one per pod template of a Deployment, with its revision and status."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.kinds import _owner_reference
from k8s_gpu_rl.testing.fake_kube_api.pod_status import _pod_ready
from k8s_gpu_rl.testing.fake_kube_api.util import _now

_REVISION = "deployment.kubernetes.io/revision"


def _replicaset_doc(
    ns: str, dep: dict[str, Any], pod_hash: str, revision: int, rv: str
) -> dict[str, Any]:
    """A new, empty ReplicaSet for the Deployment's current template."""
    spec = dep["spec"]
    template = copy.deepcopy(spec["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{dep['metadata']['name']}-{pod_hash}",
            "namespace": ns,
            "uid": str(uuid.uuid4()),
            "resourceVersion": rv,
            "generation": 1,
            "creationTimestamp": _now(),
            "labels": {
                **(spec["template"].get("metadata", {}).get("labels") or {}),
                "pod-template-hash": pod_hash,
            },
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": str(spec["replicas"]),
                "deployment.kubernetes.io/max-replicas": str(spec["replicas"]),
                _REVISION: str(revision),
            },
            "ownerReferences": [_owner_reference("apps/v1", "Deployment", dep)],
        },
        "spec": {
            "replicas": 0,
            "selector": {
                "matchLabels": {**spec["selector"]["matchLabels"], "pod-template-hash": pod_hash}
            },
            "template": template,
        },
        "status": {"replicas": 0, "observedGeneration": 1},
    }


def _replicaset_status(rs: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """status of a ReplicaSet with ``pods`` (zero counters omitted, like the real server)."""
    ready = sum(1 for p in pods if _pod_ready(p))
    st: dict[str, Any] = {"replicas": len(pods), "observedGeneration": rs["metadata"]["generation"]}
    for key, val in (
        ("fullyLabeledReplicas", len(pods)),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
    ):
        if val:
            st[key] = val
    return st


class ReplicaSetMixin:
    """Finds, creates and updates the ReplicaSets a Deployment owns."""

    def _rs_for(self, ns: str, dep: dict[str, Any], pod_hash: str) -> tuple[dict[str, Any], bool]:
        """The ReplicaSet of the current template, created (or made newest again) if needed."""
        owned = self._owned_replicasets(ns, dep)
        top = max((int(r["metadata"]["annotations"][_REVISION]) for r in owned), default=0)
        rs = next(
            (r for r in owned if r["metadata"]["labels"]["pod-template-hash"] == pod_hash), None
        )
        if rs is None:
            rs = _replicaset_doc(ns, dep, pod_hash, top + 1, self._next_rv())
            self._store["replicasets"].setdefault(ns, {})[rs["metadata"]["name"]] = rs
            self._emit("ADDED", "replicasets", rs)
            return rs, True
        if int(rs["metadata"]["annotations"][_REVISION]) < top:
            new = copy.deepcopy(rs)  # rollback to an older template: it becomes the newest
            new["metadata"]["annotations"][_REVISION] = str(top + 1)
            self._write("replicasets", rs, new)
        return rs, False

    def _owned_replicasets(self, ns: str, dep: dict[str, Any]) -> list[dict[str, Any]]:
        uid = dep["metadata"]["uid"]
        return [
            r
            for r in self._store["replicasets"].get(ns, {}).values()
            if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences", []))
        ]

    def _pods_of(self, ns: str, rs: dict[str, Any]) -> list[dict[str, Any]]:
        uid = rs["metadata"]["uid"]
        return [
            p
            for p in self._store["pods"].get(ns, {}).values()
            if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))
            and "deletionTimestamp" not in p["metadata"]
        ]

    def _sync_replicaset(
        self, ns: str, dep: dict[str, Any], rs: dict[str, Any], desired: int | None
    ) -> None:
        """Record the ReplicaSet's pods in its spec and status (``desired``: the newest
        ReplicaSet's desired-replicas annotation, None for an old one)."""
        pods = self._pods_of(ns, rs)
        old_count = rs["spec"]["replicas"]
        if len(pods) != old_count:
            verb = "up" if len(pods) > old_count else "down"
            self._event(
                ns,
                dep,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs['metadata']['name']} from {old_count} to {len(pods)}",
                "deployment-controller",
            )
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = len(pods)
        new["status"] = _replicaset_status(new, pods)
        if desired is not None:
            new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(
                desired
            )
        self._write("replicasets", rs, new)
