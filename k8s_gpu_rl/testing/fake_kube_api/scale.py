"""The Deployment ``/scale`` subresource (autoscaling/v1 Scale)."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError, _conflict
from k8s_gpu_rl.testing.fake_kube_api.kinds import KINDS


def _selector_string(match_labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


class ScaleMixin:
    """GET, PUT and PATCH of ``deployments/{name}/scale``."""

    def _scale_of(self, dep: dict[str, Any]) -> dict[str, Any]:
        meta = dep["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {
                "replicas": dep.get("status", {}).get("replicas", 0),
                "selector": _selector_string(dep["spec"]["selector"].get("matchLabels", {})),
            },
        }

    def _scale(
        self, method: str, ns: str, name: str, ctype: str, body: Any, dry_run: bool
    ) -> tuple[int, dict[str, Any]]:
        kind = KINDS["deployments"]
        dep = self._get(kind, ns, name)
        scale = self._scale_of(dep)
        if method == "GET":
            return 200, scale
        if method == "PUT":
            new_scale = self._require_object(body)
        elif method == "PATCH":
            new_scale = self._apply_patch(scale, ctype, body)
        else:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != dep["metadata"]["resourceVersion"]:
            raise _conflict(kind, name)
        replicas = (new_scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise ApiError(
                400,
                "json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of type int32",
            )
        if replicas < 0:
            raise ApiError(
                422,
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                "must be greater than or equal to 0",
                "Invalid",
                {"name": name, "group": "autoscaling", "kind": "Scale"},
            )
        dep["spec"]["replicas"] = replicas
        dep["metadata"].pop("resourceVersion", None)
        updated = self._update(kind, ns, name, dep, dry_run)
        return 200, self._scale_of(updated)
