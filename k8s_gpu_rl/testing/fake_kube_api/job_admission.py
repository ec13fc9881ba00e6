"""batch/v1 Job admission: validation, defaulting and the labels that tie pods to a Job."""

from __future__ import annotations

import copy
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import _invalid
from k8s_gpu_rl.testing.fake_kube_api.kinds import _Kind
from k8s_gpu_rl.testing.fake_kube_api.validation import (
    _default_pod_spec,
    _name_causes,
    _validate_pod_spec,
)


def _job_name_causes(name: str) -> list[tuple[str, str]]:
    causes = _name_causes(name)
    if len(name) > 63:  # the job-name label must stay a valid label value
        causes.append(
            ("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters')
        )
    return causes


def _job_spec_causes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Defaults parallelism / completions / backoffLimit (and the modes), checks the counts."""
    causes: list[tuple[str, str]] = []
    for key, default in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6)):
        value = spec.setdefault(key, default)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(
                (f"spec.{key}", f"Invalid value: {value}: must be greater than or equal to 0")
            )
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    return causes


def _job_template_causes(tspec: dict[str, Any]) -> list[tuple[str, str]]:
    """The pod spec, whose restartPolicy must be OnFailure or Never."""
    causes = _validate_pod_spec(tspec, "spec.template.spec")
    policy = tspec.get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
            )
        )
    return causes


def _job_immutable_causes(spec: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"spec.{key}", f"Invalid value: {spec.get(key)}: field is immutable")
        for key in ("template", "selector")
        if spec.get(key) != old["spec"].get(key) and key in spec
    ]


def _default_new_job(obj: dict[str, Any], template: dict[str, Any]) -> None:
    """SetDefaults_Job on create: pod defaults, the job labels and the selector on them."""
    meta, spec = obj["metadata"], obj["spec"]
    name, uid = meta["name"], meta["uid"]
    _default_pod_spec(template["spec"])
    tmeta = template.setdefault("metadata", {})
    if not meta.get("labels") and tmeta.get("labels"):  # SetDefaults_Job
        meta["labels"] = dict(tmeta["labels"])
    job_labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **job_labels}
    tmeta.setdefault("creationTimestamp", None)
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    meta["generation"] = 1
    obj["status"] = {}


class JobAdmissionMixin:
    """Admits a Job on create and update (spec.template and spec.selector are immutable)."""

    def _admit_job(self, kind: _Kind, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        causes = _job_name_causes(name)
        spec = obj.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(template, dict):
            raise _invalid(kind, name, [*causes, ("spec.template", "Required value")])
        causes += _job_spec_causes(spec)
        causes += _job_template_causes(template.setdefault("spec", {}))
        if old is not None:
            causes += _job_immutable_causes(spec, old)
        if causes:
            raise _invalid(kind, name, causes)
        if old is None:
            _default_new_job(obj, template)
        else:
            obj["status"] = copy.deepcopy(old.get("status", {}))
            meta["generation"] = old["metadata"].get("generation", 1) + (spec != old["spec"])
