"""Pod status documents: conditions, container states, readiness, QoS."""

from __future__ import annotations

import copy
import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from k8s_gpu_rl.testing.fake_kube_api.util import _now

if TYPE_CHECKING:
    from k8s_gpu_rl.testing.fake_kube_api.fate import PodFate


def _condition(pod: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == ctype), None)


def _pod_ready(pod: dict[str, Any]) -> bool:
    c = _condition(pod, "Ready")
    return bool(c and c["status"] == "True") and "deletionTimestamp" not in pod["metadata"]


def _scheduler(pod: dict[str, Any]) -> str:
    return pod["spec"].get("schedulerName", "default-scheduler")


def _owned_by_kind(obj: dict[str, Any], kind: str) -> bool:
    return any(o.get("kind") == kind for o in obj["metadata"].get("ownerReferences", []))


def _pod_status_creating(pod: dict[str, Any], ip_suffix: int) -> dict[str, Any]:
    now = _now()
    names = [c["name"] for c in pod["spec"]["containers"]]
    not_ready = f"containers with unready status: [{' '.join(names)}]"
    pod_ip = f"10.244.0.{ip_suffix % 250 + 2}"

    def c(ctype: str, status: str, reason: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        if reason:
            out["reason"], out["message"] = reason, not_ready
        return out

    return {
        "phase": "Pending",
        "conditions": [
            c("PodReadyToStartContainers", "False"),
            c("Initialized", "True"),
            c("Ready", "False", "ContainersNotReady"),
            c("ContainersReady", "False", "ContainersNotReady"),
            c("PodScheduled", "True"),
        ],
        "hostIP": "10.0.0.10",
        "hostIPs": [{"ip": "10.0.0.10"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": [
            {
                "name": ct["name"],
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": ct["image"],
                "imageID": "",
                "started": False,
            }
            for ct in pod["spec"]["containers"]
        ],
        "qosClass": pod["status"].get("qosClass", "BestEffort"),
    }


def _cond(
    ctype: str, status: str, stamp: str, reason: str | None = None, message: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _image_id(image: str) -> str:
    return f"{image.split(':')[0]}@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def _started_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod once its containers run (restart count and last state kept)."""
    new, stamp = copy.deepcopy(pod), _now()
    st = new["status"]
    st["phase"] = "Running"
    st["conditions"] = [
        _cond(t, "True", stamp)
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ] + [_cond("PodScheduled", "True", stamp)]
    old = {c["name"]: c for c in st.get("containerStatuses", [])}
    st["containerStatuses"] = [
        {
            "name": c["name"],
            "state": {"running": {"startedAt": stamp}},
            "lastState": old.get(c["name"], {}).get("lastState", {}),
            "ready": True,
            "restartCount": old.get(c["name"], {}).get("restartCount", 0),
            "image": c["image"],
            "imageID": _image_id(c["image"]),
            "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
            "started": True,
        }
        for c in new["spec"]["containers"]
    ]
    return new


def _terminated_pod(pod: dict[str, Any], fate: PodFate, restart: bool) -> dict[str, Any]:
    """The pod when its containers exit: terminal (Succeeded/Failed) or, if the restart
    policy restarts them, Running with the containers in CrashLoopBackOff."""
    new, stamp = copy.deepcopy(pod), _now()
    st, meta = new["status"], new["metadata"]
    names = [c["name"] for c in new["spec"]["containers"]]
    statuses = []
    for cs in st.get("containerStatuses", []):
        term = {
            "exitCode": fate.exit_code,
            "reason": fate.terminated_reason,
            "startedAt": cs.get("state", {}).get("running", {}).get("startedAt", stamp),
            "finishedAt": stamp,
            "containerID": cs.get("containerID", ""),
        }
        cs = {**cs, "ready": False, "started": False}
        if restart:
            back_off = (
                f"back-off 10s restarting failed container={cs['name']} "
                f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"
            )
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": back_off}}
            cs["lastState"] = {"terminated": term}
            cs["restartCount"] = cs.get("restartCount", 0) + 1
        else:
            cs["state"] = {"terminated": term}
        statuses.append(cs)
    st["containerStatuses"] = statuses
    if restart:
        msg = f"containers with unready status: [{' '.join(names)}]"
        reason, sandbox = "ContainersNotReady", "True"
    else:
        st["phase"] = "Succeeded" if fate.exit_code == 0 else "Failed"
        msg, reason, sandbox = None, "PodCompleted" if fate.exit_code == 0 else "PodFailed", "False"
    st["conditions"] = [
        _cond("PodReadyToStartContainers", sandbox, stamp),
        _cond("Initialized", "True", stamp, None if restart else "PodCompleted"),
        _cond("Ready", "False", stamp, reason, msg),
        _cond("ContainersReady", "False", stamp, reason, msg),
        _cond("PodScheduled", "True", stamp),
    ]
    return new


def _unschedulable_status(pod: dict[str, Any], message: str) -> dict[str, Any]:
    """The status of a pod the scheduler cannot place (``message`` says why)."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": _now(),
                "reason": "Unschedulable",
                "message": message,
            }
        ],
        "qosClass": pod["status"].get("qosClass", "BestEffort"),
    }
