"""Pod spec validation and defaulting (names, containers, restart policy, QoS)."""

from __future__ import annotations

import re
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.quantities import _validate_resources

_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _name_causes(name: str, field: str = "metadata.name") -> list[tuple[str, str]]:
    if len(name) <= 253 and _SUBDOMAIN_RE.match(name):
        return []
    return [
        (
            field,
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    ]


def _validate_pod_spec(spec: dict[str, Any], base: str) -> list[tuple[str, str]]:
    """ValidatePodSpec for what the fake models: containers (name, image, resources) and
    restartPolicy (defaulted to Always first, as SetDefaults_PodSpec does)."""
    causes: list[tuple[str, str]] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append((f"{base}.containers", "Required value"))
        containers = []
    policy = spec.setdefault("restartPolicy", "Always")
    if policy not in _RESTART_POLICIES:
        causes.append(
            (
                f"{base}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    seen: set[str] = set()
    for i, c in enumerate(containers):
        field = f"{base}.containers[{i}]"
        if not isinstance(c, dict) or not c.get("name"):
            causes.append((f"{field}.name", "Required value"))
            continue
        if not _LABEL_RE.match(c["name"]) or len(c["name"]) > 63:
            causes.append(
                (
                    f"{field}.name",
                    f'Invalid value: "{c["name"]}": a lowercase RFC 1123 label must consist of '
                    "lower case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            )
        if c["name"] in seen:
            causes.append((f"{field}.name", f'Duplicate value: "{c["name"]}"'))
        seen.add(c["name"])
        if not c.get("image"):
            causes.append((f"{field}.image", "Required value"))
        causes.extend(_validate_resources(c.setdefault("resources", {}), f"{field}.resources"))
    return causes


def _default_requests(container: dict[str, Any]) -> None:
    """SetDefaults_Pod: a container's requests default to its limits."""
    res = container.setdefault("resources", {})
    if res.get("limits"):
        req = res.setdefault("requests", {})
        for k, v in res["limits"].items():
            req.setdefault(k, v)


def _default_pod_extras(spec: dict[str, Any]) -> None:
    """The service account, priority and tolerations every stored pod gets."""
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault(
        "tolerations",
        [
            {
                "key": f"node.kubernetes.io/{t}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for t in ("not-ready", "unreachable")
        ],
    )


def _default_replicaset_pod_spec(spec: dict[str, Any]) -> None:
    """What a ReplicaSet's pod adds to its template (defaulted when the Deployment was)."""
    for c in spec.get("containers", []):
        _default_requests(c)
    _default_pod_extras(spec)


def _default_pod_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Pod / SetDefaults_PodSpec / SetDefaults_Container for a validated spec."""
    for c in spec.get("containers", []):
        _default_requests(c)
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image") or ""
        c.setdefault(
            "imagePullPolicy",
            "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent",
        )
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    _default_pod_extras(spec)


def _qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers", [])
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        if lim or req:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
