"""The ``k8s`` backend's safety rails: the bounds every request is checked against before
it is sent, and the Deployment's original state that ``close()`` puts back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k8s_gpu_rl.envs.backends.k8s.kube import (
    GPUCORES,
    GPUMEM,
    KEEP,
    POLICY_ENV,
    KubeApi,
    template_patch,
)
from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions
from k8s_gpu_rl.errors import BackendError


def check_bounds(options: K8sOptions, replicas: int, gpucores: int, gpumem_mib: int) -> None:
    """Raise :class:`BackendError` unless the request is within the safety bounds."""
    o = options
    if not 1 <= int(replicas) <= o.max_replicas:
        raise BackendError(f"replicas {replicas} outside [1, {o.max_replicas}] (max_replicas)")
    if not 1 <= int(gpucores) <= 100:
        raise BackendError(f"gpucores {gpucores} outside [1, 100]")
    cap = o.gpus_total * o.max_gpucores_per_gpu
    if int(replicas) * int(gpucores) > cap:
        raise BackendError(
            f"replicas x gpucores = {replicas} x {gpucores} exceeds the GPUs' cores "
            f"{o.gpus_total} x {o.max_gpucores_per_gpu} = {cap}"
        )
    if not int(gpumem_mib) > 0:
        raise BackendError(f"gpumem {gpumem_mib} MiB must be > 0")


@dataclass
class Original:
    """What close() restores: the Deployment as the backend first found it."""

    replicas: int
    limits: dict[str, str | None]
    requests: dict[str, str | None]
    annotations: dict[str, str | None]
    scheduler_name: str | None
    core_policy: str | None = None
    """The container's GPU_CORE_UTILIZATION_POLICY (None: it had none)."""

    @classmethod
    def capture(cls, kube: KubeApi, dep: dict[str, Any], options: K8sOptions) -> Original:
        """The replicas, vGPU limits and requests, the pod-template annotations the backend
        may set, and the schedulerName of ``dep``."""
        res = kube.container(dep).get("resources") or {}
        tmpl = dep["spec"]["template"]
        keys = (GPUCORES, GPUMEM)
        return cls(
            replicas=int(dep["spec"].get("replicas", 1)),
            limits={k: (res.get("limits") or {}).get(k) for k in keys},
            requests={k: (res.get("requests") or {}).get(k) for k in keys},
            annotations={
                k: ((tmpl.get("metadata") or {}).get("annotations") or {}).get(k)
                for k in options.pod_annotations
            },
            scheduler_name=tmpl["spec"].get("schedulerName"),
            core_policy=kube.core_policy(dep),
        )

    def restore_patch(
        self, kube: KubeApi, dep: dict[str, Any], options: K8sOptions
    ) -> dict[str, Any]:
        """The strategic-merge patch that puts back the original replicas and template
        (requests only where the container has or had them)."""
        res: dict[str, Any] = {"limits": dict(self.limits)}
        current = (kube.container(dep).get("resources") or {}).get("requests") or {}
        if any(k in current for k in self.requests) or any(self.requests.values()):
            res["requests"] = dict(self.requests)
        container: dict[str, Any] = {"name": options.container, "resources": res}
        if options.core_utilization_policy is not None:
            container["env"] = [
                {"name": POLICY_ENV, "$patch": "delete"}
                if self.core_policy is None
                else {"name": POLICY_ENV, "value": self.core_policy}
            ]
        scheduler = self.scheduler_name if options.scheduler_name is not None else KEEP
        template = template_patch(container, scheduler, self.annotations)
        return {"spec": {"replicas": self.replicas, "template": template}}

    def by_hand(self) -> str:
        """What to restore by hand when the API cannot be reached."""
        return (
            f"Restore by hand: replicas {self.replicas}, limits {self.limits}, requests "
            f"{self.requests}, annotations {self.annotations}, schedulerName {self.scheduler_name}"
        )
