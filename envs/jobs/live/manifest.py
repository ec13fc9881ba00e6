"""The Kubernetes Job a placement becomes (what the user's controller submits).

* ``metadata.name``: ``<job_id>-a<attempt>`` (DNS-1123): the same attempt always has the
  same name, so a repeated create is a 409 AlreadyExists, never a second Job;
* annotations ``model_name``, ``data_size``, ``epoch`` (the user's) plus the placement
  (``k8s-gpu-rl/cluster``, ``k8s-gpu-rl/node``, ``k8s-gpu-rl/reservation``);
* pod template: ``schedulerName`` HAMi's, annotation ``hami.io/resource-pool`` (the user's
  ``poc``), pinned to the chosen node, limits ``nvidia.com/gpu`` / ``gpumem`` / ``gpucores``
  (requests equal to limits, as extended resources require); one pod per worker
  (``parallelism`` = ``completions`` = workers), ``restartPolicy: Never``,
  ``backoffLimit: 0`` (the controller retries itself, with back-off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec

LABEL = "k8s-gpu-rl/job"
MANAGED = {"app.kubernetes.io/managed-by": "k8s-gpu-rl"}


@dataclass(frozen=True)
class LiveOptions:
    """How jobs are submitted to every cluster."""

    namespace: str = "default"
    """Namespace of the Jobs."""
    image: str = "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"
    """Training image (the simulator's per-family images stand for this)."""
    scheduler_name: str = "hami-scheduler"
    """HAMi's scheduler."""
    resource_pool: str = "poc"
    """Value of the pod annotation ``hami.io/resource-pool``."""
    unschedulable_grace_s: float = 30.0
    """A pod Unschedulable this long gets its Job deleted and the job re-queued."""


def job_name(job_id: str, attempt: int) -> str:
    """Idempotent DNS-1123 name of one attempt."""
    stem = re.sub(r"[^a-z0-9-]", "-", job_id.lower()).strip("-")[:50] or "job"
    return f"{stem}-a{attempt}"


def job_manifest(
    spec: JobSpec,
    attempt: int,
    cluster: str,
    node: str,
    gpumem_mib: int,
    gpucores: int,
    options: LiveOptions,
    reservation: str | None = None,
) -> dict[str, Any]:
    annotations = {
        "model_name": spec.model_name,
        "data_size": str(spec.data_size),
        "epoch": str(spec.epoch),
        "k8s-gpu-rl/cluster": cluster,
        "k8s-gpu-rl/node": node,
    }
    if reservation:
        annotations["k8s-gpu-rl/reservation"] = reservation
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(int(gpumem_mib))}
    if gpucores:
        limits["nvidia.com/gpucores"] = str(int(gpucores))
    labels = {**MANAGED, LABEL: job_name(spec.job_id, 0)[:-3]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec.job_id, attempt),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "parallelism": spec.gpus,
            "completions": spec.gpus,
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"hami.io/resource-pool": options.resource_pool, **annotations},
                },
                "spec": {
                    "schedulerName": options.scheduler_name,
                    "restartPolicy": "Never",
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [
                        {
                            "name": "train",
                            "image": options.image,
                            "args": [
                                "--model",
                                spec.model_name,
                                "--data-size",
                                str(spec.data_size),
                                "--epochs",
                                str(spec.epoch),
                            ],
                            "resources": {"limits": limits, "requests": dict(limits)},
                        }
                    ],
                },
            },
        },
    }
