"""Admission: defaulting and validation on create and update."""

from __future__ import annotations

import copy
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError, _invalid
from k8s_gpu_rl.testing.fake_kube_api.kinds import _Kind
from k8s_gpu_rl.testing.fake_kube_api.quantities import _validate_resources
from k8s_gpu_rl.testing.fake_kube_api.validation import (
    _default_pod_spec,
    _name_causes,
    _qos_class,
    _validate_pod_spec,
)


class AdmissionMixin:
    """Defaulting and validation per kind, plus what the server manages."""

    def _admit(self, kind: _Kind, ns: str, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        """Defaulting and validation, plus what the server manages (status, generation)."""
        name = obj["metadata"]["name"]
        for key in ("labels", "annotations"):
            value = obj["metadata"].get(key)
            if value is not None and (
                not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
            ):
                raise _invalid(kind, name, [(f"metadata.{key}", "values must be strings")])
        if kind.resource == "deployments":
            self._admit_deployment(kind, old, obj)
        elif kind.resource == "pods":
            self._admit_pod(kind, obj)
        elif kind.resource == "jobs":
            self._admit_job(kind, old, obj)
        elif kind.resource == "configmaps":
            for key in ("data",):
                data = obj.get(key) or {}
                if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                    raise ApiError(
                        400,
                        "json: cannot unmarshal into Go struct field ConfigMap.data of type string",
                    )
        elif kind.resource == "horizontalpodautoscalers":
            self._admit_hpa(kind, ns, old, obj)

    def _admit_deployment(
        self, kind: _Kind, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        name = obj["metadata"]["name"]
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise _invalid(kind, name, [("spec", "Required value")])
        replicas = spec.setdefault("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise ApiError(
                400,
                f"json: cannot unmarshal {type(replicas).__name__} into Go struct field "
                "DeploymentSpec.spec.replicas of type int32",
            )
        causes: list[tuple[str, str]] = []
        if replicas < 0:
            causes.append(
                ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
            )
        _default_deployment_spec(spec)
        template = spec.get("template") or {}
        causes += _selector_causes(spec, template, old)
        causes += _admit_template(template)
        if causes:
            raise _invalid(kind, name, causes)
        if old is None:
            obj["status"] = {}
        else:
            obj["status"] = copy.deepcopy(old.get("status", {}))  # status is the controller's
            if spec != old["spec"]:
                obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1

    def _admit_pod(self, kind: _Kind, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        causes = _name_causes(name)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise _invalid(kind, name, [*causes, ("spec.containers", "Required value")])
        causes += _validate_pod_spec(spec, "spec")
        if causes:
            raise _invalid(kind, name, causes)
        _default_pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


def _default_deployment_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Deployment: history limit, progress deadline, RollingUpdate 25%/25%."""
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxSurge", "25%")
        ru.setdefault("maxUnavailable", "25%")


def _selector_causes(
    spec: dict[str, Any], template: dict[str, Any], old: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """The selector is required, must match the template's labels and cannot change."""
    causes: list[tuple[str, str]] = []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    tlabels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    elif not tlabels.items() >= selector.items():
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {tlabels}: `selector` does not match template `labels`",
            )
        )
    if old is not None and old["spec"].get("selector") != spec.get("selector"):
        causes.append(
            ("spec.selector", f"Invalid value: {spec.get('selector')}: field is immutable")
        )
    return causes


def _admit_template(template: dict[str, Any]) -> list[tuple[str, str]]:
    """Defaults and validates a Deployment's pod template (containers, ports, resources)."""
    causes: list[tuple[str, str]] = []
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or []
    if not containers:
        causes.append(("spec.template.spec.containers", "Required value"))
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("terminationGracePeriodSeconds", 30)
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    pod_spec.setdefault("securityContext", {})
    pod_spec.setdefault("schedulerName", "default-scheduler")
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    seen: set[str] = set()
    for i, c in enumerate(containers):
        base = f"spec.template.spec.containers[{i}]"
        if not isinstance(c, dict) or not c.get("name"):
            causes.append((f"{base}.name", "Required value"))
            continue
        if c["name"] in seen:
            causes.append((f"{base}.name", f'Duplicate value: "{c["name"]}"'))
        seen.add(c["name"])
        if not c.get("image"):
            causes.append((f"{base}.image", "Required value"))
        _default_template_container(c)
        causes.extend(_validate_resources(c["resources"], f"{base}.resources"))
    return causes


def _default_template_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image") or ""
    c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") else "IfNotPresent")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
