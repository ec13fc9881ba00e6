"""The thin seam between the k8s backend and the official ``kubernetes`` client.

:class:`KubeApi` loads the configuration (in-cluster ServiceAccount, or a kubeconfig and
context), and sends every request through :meth:`KubeApi._call`, which

* retries **409 Conflict** at once after re-reading the Deployment (a patch is rebuilt
  from the fresh object and sent again),
* retries **429 Too Many Requests** after the ``Retry-After`` the server sent,
* retries **5xx** and connection errors with exponential back-off (0.5 s, doubling, at
  most 10 s),

for at most ``api_retries`` attempts in all, then raises :class:`BackendError` naming the
call and the last status. Other errors (403, 404, 422...) raise at once.

Responses are read as plain JSON dicts (the API's own camelCase field names), not the
client's model objects. In dry-run mode every mutating call prints its exact request
(method, path, content type, body) as one JSON line on stderr and sends nothing; reads
still go to the server.

The backend touches only the Deployment carrying ``K8sOptions.managed_by_label``
(:meth:`KubeApi.read_deployment` refuses any other) and the HPA it creates.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions
from k8s_gpu_rl.errors import BackendError

GPUCORES = "nvidia.com/gpucores"
GPUMEM = "nvidia.com/gpumem"
POLICY_ENV = "GPU_CORE_UTILIZATION_POLICY"  # HAMi-core's core-limit policy (container env)
KEEP = object()
"""``template_patch``'s scheduler argument for "leave ``schedulerName`` alone"."""


def template_patch(
    container: dict[str, Any], scheduler_name: Any, annotations: dict[str, Any]
) -> dict[str, Any]:
    """The pod-template part of a strategic-merge patch: one container entry (merged by
    name), ``schedulerName`` unless ``KEEP``, and the annotations if any."""
    pod_spec: dict[str, Any] = {"containers": [container]}
    if scheduler_name is not KEEP:
        pod_spec["schedulerName"] = scheduler_name
    template: dict[str, Any] = {"spec": pod_spec}
    if annotations:
        template["metadata"] = {"annotations": dict(annotations)}
    return template


SMP = "application/strategic-merge-patch+json"
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 10.0
RETRY_AFTER_CAP_S = 60.0


class KubeApi:
    """Typed-enough access to one namespace's Deployment, pods, ReplicaSets and HPAs."""

    def __init__(self, options: K8sOptions, configuration: Any = None) -> None:
        from kubernetes import client

        self.options = options
        cfg = configuration or _load_configuration(options)
        cfg.retries = 0  # urllib3 must not retry on its own: _call decides
        self.api_client = client.ApiClient(cfg)
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.autoscaling = client.AutoscalingV2Api(self.api_client)
        self.host = cfg.host
        self.dry_run = options.dry_run
        self.sleep: Callable[[float], None] = time.sleep
        self.requests_sent = 0
        """Requests that reached the wire (retries included)."""
        self.last_deployment: dict[str, Any] | None = None

    def close(self) -> None:
        self.api_client.close()

    # -- the retry loop ---------------------------------------------------------------------
    def _call(
        self,
        name: str,
        request: Callable[[], Any],
        on_conflict: Callable[[], None] | None = None,
        retry_conflict: bool = True,
    ) -> Any:
        """Run ``request`` (one API call) with the module's retry rules; its decoded JSON.

        ``on_conflict`` runs before a 409 is retried (re-read, rebuild the body);
        ``retry_conflict=False`` makes a 409 final (a create whose object exists)."""
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        attempts = self.options.api_retries
        delay = BACKOFF_BASE_S
        last = ""
        for attempt in range(1, attempts + 1):
            wait = 0.0
            try:
                self.requests_sent += 1
                response = request()
                data = getattr(response, "data", b"")
                return json.loads(data) if data else None
            except ApiException as exc:
                status = int(exc.status or 0)
                last = f"HTTP {status} {exc.reason or ''}: {_message(exc)}".strip()
                if status == 409 and not retry_conflict:
                    raise BackendError(f"Kubernetes API {name} at {self.host}: {last}") from None
                if status == 409:
                    if on_conflict is not None and attempt < attempts:
                        on_conflict()
                    wait = 0.0
                elif status == 429:
                    wait = _retry_after(exc, delay)
                elif status >= 500:
                    wait, delay = delay, min(delay * 2, BACKOFF_CAP_S)
                else:
                    raise BackendError(
                        f"Kubernetes API {name} at {self.host}: {last}"
                        + _hint(status, self.options)
                    ) from None
            except (HTTPError, OSError) as exc:
                last = f"connection error: {exc}"
                wait, delay = delay, min(delay * 2, BACKOFF_CAP_S)
            if attempt < attempts and wait > 0:
                self.sleep(wait)
        raise BackendError(
            f"Kubernetes API {name} at {self.host} failed after {attempts} attempts; last: {last}"
        )

    def _timeout(self) -> tuple[float, float]:
        return (min(5.0, self.options.api_timeout_s), self.options.api_timeout_s)

    def _print(self, method: str, path: str, body: Any, content_type: str | None = None) -> None:
        line = {"dry_run": True, "method": method, "path": path}
        if content_type:
            line["content_type"] = content_type
        line["body"] = body
        print(json.dumps(line, sort_keys=True), file=sys.stderr, flush=True)

    @property
    def _dep_path(self) -> str:
        o = self.options
        return f"/apis/apps/v1/namespaces/{o.namespace}/deployments/{o.deployment}"

    # -- reads ------------------------------------------------------------------------------
    def read_deployment(self) -> dict[str, Any]:
        """The Deployment, after checking it carries the managed-by label."""
        o = self.options
        dep = self._call(
            f"read deployment {o.namespace}/{o.deployment}",
            lambda: self.apps.read_namespaced_deployment(
                o.deployment, o.namespace, _preload_content=False, _request_timeout=self._timeout()
            ),
        )
        key, value = o.label
        labels = (dep.get("metadata") or {}).get("labels") or {}
        if labels.get(key) != value:
            raise BackendError(
                f"Deployment {o.namespace}/{o.deployment} does not carry the label "
                f"{key}={value} (it has {labels}); the k8s backend touches only Deployments "
                f"so labelled: add it (`kubectl -n {o.namespace} label deployment "
                f"{o.deployment} {key}={value}`) or set backend_options.managed_by_label"
            )
        self.container(dep)  # the container must exist
        self.last_deployment = dep
        return dep

    def container(self, dep: dict[str, Any]) -> dict[str, Any]:
        """The patched container of ``dep``'s pod template."""
        name = self.options.container
        containers = dep["spec"]["template"]["spec"].get("containers") or []
        for c in containers:
            if c.get("name") == name:
                return c
        raise BackendError(
            f"Deployment {self.options.namespace}/{self.options.deployment} has no container "
            f"{name!r} (it has {[c.get('name') for c in containers]}): set "
            "backend_options.container"
        )

    def selector(self, dep: dict[str, Any]) -> str:
        labels = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def list_pods(self, dep: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The Deployment's pods (by its selector)."""
        dep = dep or self.last_deployment or self.read_deployment()
        o = self.options
        sel = self.selector(dep)
        out = self._call(
            f"list pods {o.namespace} -l {sel}",
            lambda: self.core.list_namespaced_pod(
                o.namespace,
                label_selector=sel,
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
        )
        return list(out.get("items") or [])

    def list_replicasets(self, dep: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The ReplicaSets the Deployment's selector matches."""
        dep = dep or self.last_deployment or self.read_deployment()
        o = self.options
        sel = self.selector(dep)
        out = self._call(
            f"list replicasets {o.namespace} -l {sel}",
            lambda: self.apps.list_namespaced_replica_set(
                o.namespace,
                label_selector=sel,
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
        )
        return list(out.get("items") or [])

    # -- writes -----------------------------------------------------------------------------
    def scale(self, replicas: int) -> dict[str, Any] | None:
        """Set ``spec.replicas`` through the scale subresource."""
        o = self.options
        body = {"spec": {"replicas": int(replicas)}}
        if self.dry_run:
            self._print("PATCH", f"{self._dep_path}/scale", body, SMP)
            return None
        return self._call(
            f"PATCH deployments/{o.deployment}/scale (replicas={replicas})",
            lambda: self.apps.patch_namespaced_deployment_scale(
                o.deployment,
                o.namespace,
                body,
                _content_type=SMP,
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
            on_conflict=self.read_deployment,
        )

    def share_patch(self, dep: dict[str, Any], gpucores: int, gpumem_mib: int) -> dict[str, Any]:
        """The strategic-merge patch that sets the container's vGPU share (and requests,
        annotations and schedulerName as configured), built against ``dep``."""
        o = self.options
        resources = self.container(dep).get("resources") or {}
        values = {GPUCORES: str(int(gpucores)), GPUMEM: str(int(gpumem_mib))}
        res: dict[str, Any] = {"limits": dict(values)}
        requests = resources.get("requests") or {}
        if any(k in requests for k in values):  # extended resources: requests == limits
            res["requests"] = dict(values)
        container: dict[str, Any] = {"name": o.container, "resources": res}
        if o.core_utilization_policy is not None:  # env is merged by name
            container["env"] = [{"name": POLICY_ENV, "value": o.core_utilization_policy}]
        scheduler = o.scheduler_name if o.scheduler_name is not None else KEEP
        return {"spec": {"template": template_patch(container, scheduler, o.pod_annotations)}}

    def core_policy(self, dep: dict[str, Any]) -> str | None:
        """The container's ``GPU_CORE_UTILIZATION_POLICY`` (None: unset, HAMi's default)."""
        for item in self.container(dep).get("env") or []:
            if item.get("name") == POLICY_ENV:
                return item.get("value")
        return None

    def patch_share(self, gpucores: int, gpumem_mib: int) -> dict[str, Any] | None:
        """Patch the container's ``nvidia.com/gpucores``/``gpumem`` (rolls the pods)."""
        dep = self.last_deployment or self.read_deployment()
        return self.patch_deployment(
            f"PATCH deployments/{self.options.deployment} (gpucores={gpucores}, "
            f"gpumem={gpumem_mib}MiB)",
            lambda d: self.share_patch(d, gpucores, gpumem_mib),
            dep,
        )

    def patch_deployment(
        self,
        name: str,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        dep: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Send the strategic-merge patch ``build(deployment)``; on 409 re-read and rebuild."""
        o = self.options
        state = {"body": build(dep or self.last_deployment or self.read_deployment())}
        if self.dry_run:
            self._print("PATCH", self._dep_path, state["body"], SMP)
            return None

        def reread() -> None:
            state["body"] = build(self.read_deployment())

        out = self._call(
            name,
            lambda: self.apps.patch_namespaced_deployment(
                o.deployment,
                o.namespace,
                state["body"],
                _content_type=SMP,
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
            on_conflict=reread,
        )
        if out is not None:
            self.last_deployment = out
        return out

    def apply_hpa(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create the autoscaling/v2 HPA ``body`` (replace it if one of that name exists)."""
        o = self.options
        name = body["metadata"]["name"]
        path = f"/apis/autoscaling/v2/namespaces/{o.namespace}/horizontalpodautoscalers"
        if self.dry_run:
            self._print("POST", path, body)
            return None
        try:
            return self._call(
                f"create horizontalpodautoscaler {name}",
                lambda: self.autoscaling.create_namespaced_horizontal_pod_autoscaler(
                    o.namespace, body, _preload_content=False, _request_timeout=self._timeout()
                ),
                retry_conflict=False,
            )
        except BackendError as exc:
            if "HTTP 409" not in str(exc):
                raise
        return self._call(
            f"patch horizontalpodautoscaler {name}",
            lambda: self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                name,
                o.namespace,
                {"spec": body["spec"]},
                _content_type="application/merge-patch+json",
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
        )

    def delete_hpa(self, name: str) -> None:
        """Delete the HPA ``name``; one already gone is fine."""
        o = self.options
        path = f"/apis/autoscaling/v2/namespaces/{o.namespace}/horizontalpodautoscalers/{name}"
        if self.dry_run:
            self._print("DELETE", path, None)
            return
        try:
            self._call(
                f"delete horizontalpodautoscaler {name}",
                lambda: self.autoscaling.delete_namespaced_horizontal_pod_autoscaler(
                    name, o.namespace, _preload_content=False, _request_timeout=self._timeout()
                ),
            )
        except BackendError as exc:
            if "HTTP 404" not in str(exc):
                raise


def _load_configuration(options: K8sOptions) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if options.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(
                config_file=options.kubeconfig,
                context=options.context,
                client_configuration=cfg,
            )
    except (config.ConfigException, OSError, TypeError) as exc:
        where = options.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise BackendError(
            f"cannot load the Kubernetes configuration ({where}, context "
            f"{options.context or 'current'}): {exc}"
        ) from None
    return cfg


def _message(exc: Any) -> str:
    try:
        body = json.loads(exc.body)
        return str(body.get("message", ""))
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")[:200]


def _retry_after(exc: Any, default: float) -> float:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(RETRY_AFTER_CAP_S, max(0.0, float(value)))
    except (TypeError, ValueError):
        return default


def _hint(status: int, o: K8sOptions) -> str:
    if status in (401, 403):
        return (
            f" (the credentials lack this permission: apply scripts/k8s/base/rbac.yaml and use "
            f"the k8s-gpu-rl-agent ServiceAccount's token, namespace {o.namespace})"
        )
    if status == 404:
        return " (is the Deployment deployed? `kubectl apply -k scripts/k8s/base`)"
    return ""
