"""The resource kinds the fake serves, and the defaults of its Deployments."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

#: Message a HAMi-scheduled pod shows while it cannot be placed (see HAMi issues #591/#1069).
HAMI_UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 CardInsufficientCore. "
    "no available node, all node scores do not meet"
)

DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"

DEFAULT_LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "50", "nvidia.com/gpumem": "8192"}


class _Kind(NamedTuple):
    resource: str  # plural, as in the URL
    kind: str
    group: str  # "" for the core group
    version: str
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def qualified(self) -> str:  # e.g. deployments.apps, as in error messages
        return f"{self.resource}.{self.group}" if self.group else self.resource


_ALL = frozenset({"list", "get", "create", "update", "patch", "delete"})

KINDS: dict[str, _Kind] = {
    k.resource: k
    for k in (
        _Kind("deployments", "Deployment", "apps", "v1", _ALL),
        _Kind("replicasets", "ReplicaSet", "apps", "v1", frozenset({"list", "get"})),
        _Kind("pods", "Pod", "", "v1", frozenset({"list", "get", "create", "delete"})),
        _Kind("jobs", "Job", "batch", "v1", _ALL),
        _Kind("configmaps", "ConfigMap", "", "v1", _ALL),
        _Kind("events", "Event", "", "v1", frozenset({"list", "get"})),
        _Kind("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v2", _ALL),
    )
}


def _name_key(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


def _strip_type(obj: dict[str, Any]) -> dict[str, Any]:
    """List items carry no kind/apiVersion on the real server."""
    out = copy.deepcopy(obj)
    out.pop("kind", None)
    out.pop("apiVersion", None)
    return out


def _owner_reference(api_version: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The controller ownerReference ``obj``'s children carry."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
