"""The test-side helpers that set up and read the fake's state directly."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.kinds import DEFAULT_IMAGE, DEFAULT_LIMITS, KINDS
from k8s_gpu_rl.testing.fake_kube_api.pod_status import _pod_ready
from k8s_gpu_rl.testing.fake_kube_api.selectors import matches_label_selector
from k8s_gpu_rl.testing.fake_kube_api.util import _now


def _triton_container(
    name: str, image: str, limits: dict[str, Any] | None, requests: dict[str, Any] | None
) -> dict[str, Any]:
    """The Triton container of :meth:`StateMixin.add_deployment` (None limits: one vGPU of
    50 % cores and 8 GiB; empty: none)."""
    resources: dict[str, Any] = {}
    if limits is None:
        limits = dict(DEFAULT_LIMITS)
    if limits:
        resources["limits"] = dict(limits)
    if requests:
        resources["requests"] = dict(requests)
    return {
        "name": name,
        "image": image,
        "args": ["tritonserver", "--model-repository=/models"],
        "ports": [
            {"name": "http", "containerPort": 8000, "protocol": "TCP"},
            {"name": "grpc", "containerPort": 8001, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 8002, "protocol": "TCP"},
        ],
        "resources": resources,
    }


class StateMixin:
    """Setting up objects as if applied earlier, and reading them back (copies)."""

    def add_namespace(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self._namespaces:
                self._namespaces[name] = {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": name,
                        "uid": str(uuid.uuid4()),
                        "resourceVersion": self._next_rv(),
                        "creationTimestamp": _now(),
                        "labels": {"kubernetes.io/metadata.name": name},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }
            return copy.deepcopy(self._namespaces[name])

    def add_deployment(
        self,
        namespace: str,
        name: str,
        replicas: int = 1,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        container_name: str = "triton",
        limits: dict[str, Any] | None = None,
        requests: dict[str, Any] | None = None,
        scheduler_name: str | None = None,
        image: str = DEFAULT_IMAGE,
        extra_containers: list[dict[str, Any]] | None = None,
        progress_deadline_s: int = 600,
        strategy: dict[str, Any] | None = None,
        pods_ready: bool = True,
    ) -> dict[str, Any]:
        """Create an apps/v1 Deployment (as if applied earlier); its pods exist and, with
        ``pods_ready``, are already Running+Ready when this returns."""
        labels = dict(labels or {"app": name})
        container = _triton_container(container_name, image, limits, requests)
        pod_spec: dict[str, Any] = {"containers": [container, *(extra_containers or [])]}
        if scheduler_name:
            pod_spec["schedulerName"] = scheduler_name
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
                "progressDeadlineSeconds": progress_deadline_s,
            },
        }
        if annotations:
            body["metadata"]["annotations"] = dict(annotations)
        if strategy:
            body["spec"]["strategy"] = strategy
        with self._lock:
            self.add_namespace(namespace)
            self._create(KINDS["deployments"], namespace, body, dry_run=False)
            self._reconcile()
            if pods_ready:
                for pod in self._store["pods"].get(namespace, {}).values():
                    if pod["metadata"]["labels"].items() >= labels.items():
                        self._set_pod_running(pod)
                self._reconcile()
            return copy.deepcopy(self._store["deployments"][namespace][name])

    def add_object(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create any supported object (e.g. "configmaps", "horizontalpodautoscalers")."""
        with self._lock:
            self.add_namespace(namespace)
            return copy.deepcopy(self._create(KINDS[resource], namespace, body, dry_run=False))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._store[resource].get(namespace, {}).get(name)
            return copy.deepcopy(obj)

    def list(
        self, resource: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(o)
                for o in self._store[resource].get(namespace, {}).values()
                if matches_label_selector(o["metadata"].get("labels"), label_selector)
            ]

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("deployments", namespace, name)

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return self.list("pods", namespace, label_selector)

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self.list("events", namespace)

    def ready_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.pods(namespace, label_selector) if _pod_ready(p)]

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)
