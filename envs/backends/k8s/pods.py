"""Pods, ReplicaSets and Deployments as the ``k8s`` backend reads them from the API.

Pure functions of the API's JSON objects: a pod's phase as the simulator names it
(:func:`pod_view`), its vGPU share from the container's HAMi limits, the newest
ReplicaSet's template hash, and ``kubectl rollout status``'s completion rule.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from k8s_gpu_rl.envs.backends.k8s.kube import GPUCORES, GPUMEM, KubeApi
from k8s_gpu_rl.envs.backends.live import PodView

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"


def quantity(value: Any, default: float = 0.0) -> float:
    """A Kubernetes quantity ("500m", "4Gi", 3) as a number; ``default`` if unset or bad."""
    if value is None:
        return default
    from kubernetes.utils import parse_quantity

    try:
        return float(parse_quantity(value))
    except (ValueError, TypeError):
        return default


def share_of(container: dict[str, Any]) -> tuple[int, int]:
    """(gpucores, gpumem MiB) of a container's HAMi limits (0 where unset)."""
    limits = (container.get("resources") or {}).get("limits") or {}
    return int(quantity(limits.get(GPUCORES))), int(quantity(limits.get(GPUMEM)))


def template_share(kube: KubeApi, dep: dict[str, Any]) -> tuple[int, int]:
    """(gpucores, gpumem MiB) of the Deployment template's Triton container."""
    return share_of(kube.container(dep))


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


def pod_view(pod: dict[str, Any], container: str) -> PodView:
    """A pod object as a :class:`~k8s_gpu_rl.envs.backends.live.PodView` (unix times)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    c = next(
        (x for x in spec.get("containers") or [] if x.get("name") == container),
        (spec.get("containers") or [{}])[0],
    )
    cores, mem = share_of(c)
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
        cpu_request=quantity(requests_.get("cpu")),
        created_t=_unix(meta.get("creationTimestamp")),
        started_t=started,
        ready_t=_unix(ready_c.get("lastTransitionTime")) if ready else math.inf,
        pending_reason=reason,
    )


def newest_hash(replicasets: list[dict[str, Any]]) -> str:
    """The ``pod-template-hash`` of the ReplicaSet with the highest revision."""
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


def rollout_complete(dep: dict[str, Any]) -> bool:
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
