"""The Deployment controller: rolling updates (maxSurge/maxUnavailable), Recreate, scaling."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.pod_status import _pod_ready
from k8s_gpu_rl.testing.fake_kube_api.util import _SAFE_ALPHABET


def _template_hash(template: dict[str, Any]) -> str:
    """pod-template-hash: FNV-32a of the template, encoded with the k8s safe alphabet."""
    h = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    out = ""
    while True:
        h, r = divmod(h, len(_SAFE_ALPHABET))
        out += _SAFE_ALPHABET[r]
        if h == 0:
            break
    return out


def _pct_or_int(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = Fraction(int(value[:-1]), 100) * total
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value)


def _rolling_update_plan(
    rolling_update: dict[str, Any],
    desired: int,
    new_pods: list[dict[str, Any]],
    old_pods: list[dict[str, Any]],
) -> tuple[int, list[dict[str, Any]]]:
    """(pods to create, old pods to delete) for one RollingUpdate step."""
    surge = _pct_or_int(rolling_update.get("maxSurge", "25%"), desired, round_up=True)
    unavail = _pct_or_int(rolling_update.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavail == 0:
        unavail = 1
    room = desired + surge - len(new_pods) - len(old_pods)
    n_create = min(desired - len(new_pods), max(0, room))
    if not old_pods:
        return n_create, []
    # unready old pods go first; ready ones only while availability allows it
    unready = [p for p in old_pods if not _pod_ready(p)]
    ready = [p for p in old_pods if _pod_ready(p)]
    ready_total = len(ready) + sum(1 for p in new_pods if _pod_ready(p))
    can_remove = max(0, ready_total - (desired - unavail))
    excess = max(0, len(new_pods) + len(old_pods) - (desired + surge))
    return n_create, unready + ready[: max(can_remove, excess)]


def _scale_down_victims(new_pods: list[dict[str, Any]], desired: int) -> list[dict[str, Any]]:
    """Pods of the newest ReplicaSet beyond ``desired``: Pending/unready and youngest first."""
    if len(new_pods) <= desired:
        return []
    youngest_first = sorted(
        new_pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True
    )
    victims = sorted(youngest_first, key=_pod_ready)  # stable: unready first
    return victims[: len(new_pods) - desired]


class DeploymentMixin:
    """Keeps each Deployment's ReplicaSets and pods in line with its spec."""

    def _reconcile_deployment(self, ns: str, dep: dict[str, Any], now: float) -> None:
        spec = dep["spec"]
        pod_hash = _template_hash(spec["template"])
        new_rs, created = self._rs_for(ns, dep, pod_hash)
        old_rss = [r for r in self._owned_replicasets(ns, dep) if r is not new_rs]
        if not spec.get("paused"):
            self._rollout_step(ns, dep, new_rs, old_rss, pod_hash)
        new_pods = self._pods_of(ns, new_rs)
        old_pods = [p for r in old_rss for p in self._pods_of(ns, r)]
        self._sync_replicaset(ns, dep, new_rs, spec["replicas"])
        for rs in old_rss:
            self._sync_replicaset(ns, dep, rs, None)
        self._update_deployment_status(ns, dep, new_rs, old_rss, new_pods, old_pods, now, created)

    def _rollout_step(
        self,
        ns: str,
        dep: dict[str, Any],
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
        pod_hash: str,
    ) -> None:
        """Create and delete pods as the strategy allows, then scale the newest set down."""
        spec = dep["spec"]
        desired = spec["replicas"]
        new_pods = self._pods_of(ns, new_rs)
        old_pods = [p for r in old_rss for p in self._pods_of(ns, r)]
        strategy = spec.get("strategy", {})
        if strategy.get("type") == "Recreate":
            to_delete = old_pods
            n_create = (
                desired - len(new_pods)
                if not old_pods and not self._terminating(ns, old_rss)
                else 0
            )
        else:
            rolling_update = strategy.get("rollingUpdate", {})
            n_create, to_delete = _rolling_update_plan(rolling_update, desired, new_pods, old_pods)
        for _ in range(max(0, n_create)):
            self._create_pod(ns, dep, new_rs, pod_hash)
        for pod in [*to_delete, *_scale_down_victims(new_pods, desired)]:
            self._delete_pod(pod)
            self._event(
                ns,
                pod,
                "Normal",
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                "replicaset-controller",
            )

    def _terminating(self, ns: str, rss: Iterable[dict[str, Any]]) -> bool:
        uids = {r["metadata"]["uid"] for r in rss}
        return any(
            "deletionTimestamp" in p["metadata"]
            and any(o.get("uid") in uids for o in p["metadata"].get("ownerReferences", []))
            for p in self._store["pods"].get(ns, {}).values()
        )
