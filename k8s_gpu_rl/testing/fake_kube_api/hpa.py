"""autoscaling/v2 HorizontalPodAutoscaler admission and status."""

from __future__ import annotations

import copy
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import _invalid
from k8s_gpu_rl.testing.fake_kube_api.kinds import _Kind
from k8s_gpu_rl.testing.fake_kube_api.util import _now

#: spec.metrics when none are given: 80 % average CPU utilisation
_DEFAULT_METRICS = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
}


def _hpa_causes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """scaleTargetRef kind and name, 1 <= maxReplicas, minReplicas (default 1) <= maxReplicas."""
    causes: list[tuple[str, str]] = []
    ref = spec.get("scaleTargetRef") or {}
    if not ref.get("kind"):
        causes.append(("spec.scaleTargetRef.kind", "Required value"))
    if not ref.get("name"):
        causes.append(("spec.scaleTargetRef.name", "Required value"))
    max_r = spec.get("maxReplicas")
    min_r = spec.setdefault("minReplicas", 1)
    if not isinstance(max_r, int) or max_r < 1:
        causes.append(
            ("spec.maxReplicas", f"Invalid value: {max_r}: must be greater than or equal to 1")
        )
    elif isinstance(min_r, int) and min_r > max_r:
        causes.append(
            (
                "spec.minReplicas",
                f"Invalid value: {min_r}: must be less than or equal to maxReplicas",
            )
        )
    return causes


def _hpa_status(target: dict[str, Any] | None, target_name: str | None) -> dict[str, Any]:
    """The target's current replicas and whether its scale could be read (AbleToScale)."""
    current = (target or {}).get("status", {}).get("replicas", 0)
    status: dict[str, Any] = {"desiredReplicas": current}
    if current:
        status["currentReplicas"] = current
    status["conditions"] = [
        {
            "type": "AbleToScale",
            "status": "True" if target else "False",
            "lastTransitionTime": _now(),
            "reason": "SucceededGetScale" if target else "FailedGetScale",
            "message": "the HPA controller was able to get the target's current scale"
            if target
            else f'deployments/scale.apps "{target_name}" not found',
        }
    ]
    return status


class HpaMixin:
    """Validates an HPA and reports whether its target's scale can be read."""

    def _admit_hpa(
        self, kind: _Kind, ns: str, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        name = obj["metadata"]["name"]
        spec = obj.get("spec") or {}
        causes = _hpa_causes(spec)
        if causes:
            raise _invalid(kind, name, causes)
        if "metrics" not in spec:
            spec["metrics"] = [copy.deepcopy(_DEFAULT_METRICS)]
        if old is not None and spec != old.get("spec"):
            obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        ref = spec.get("scaleTargetRef") or {}
        target = self._store["deployments"].get(ns, {}).get(ref.get("name", ""))
        obj["status"] = _hpa_status(target, ref.get("name"))
