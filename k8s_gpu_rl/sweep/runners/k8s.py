"""``run --backend k8s``: each experiment is a bare Pod created through the API.

For every experiment: create the Pod (``CoreV1Api.create_namespaced_pod``, never
``kubectl``), follow it with a watch on ``metadata.name=<pod>`` (no polling) until it
succeeds, fails, or stays unschedulable for ``unschedulable_timeout_s``; read its log and
the worker's ``SWEEP_RESULT`` line; delete it; go on with the next whatever happened.

Status: ``success``; ``OOM`` when the container was OOM-killed (terminated reason
``OOMKilled``, the kernel's host-memory kill); ``GPU-OOM`` when the worker reports a CUDA
out-of-memory or the log shows HAMi-core's ``Device 0 OOM`` (such a container ends with
reason ``Error``, not ``OOMKilled``); ``unschedulable`` with the scheduler's message
(``PodScheduled=False``, reason ``Unschedulable``); ``failed`` otherwise (API errors,
other exit codes, the overall timeout).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.sweep.runners import Experiment, Outcome, last_lines, parse_result

TERMINAL = ("Succeeded", "Failed")
GPU_OOM_MARKERS = ("Device 0 OOM", "CUDA out of memory", "OutOfMemoryError")


def load_api_client(kubeconfig: Path | None = None, context: str | None = None) -> Any:
    """An ApiClient from a kubeconfig (default ~/.kube/config) or the in-cluster account."""
    from kubernetes import config

    try:
        if kubeconfig is None and context is None:
            try:
                return config.new_client_from_config()
            except (config.ConfigException, FileNotFoundError, TypeError):
                config.load_incluster_config()
                from kubernetes import client

                return client.ApiClient()
        return config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=context
        )
    except (config.ConfigException, FileNotFoundError) as exc:
        raise BackendError(f"cannot load a Kubernetes configuration: {exc}") from None


def _unschedulable(pod: Any) -> str | None:
    for cond in (pod.status.conditions or []) if pod.status else []:
        if (cond.type, cond.status, cond.reason) == ("PodScheduled", "False", "Unschedulable"):
            return cond.message or "Unschedulable"
    return None


class K8sRunner:
    """Run experiments as Pods (see the module docstring)."""

    def __init__(
        self,
        api_client: Any,
        timeout_s: float = 900.0,
        unschedulable_timeout_s: float = 120.0,
        delete_timeout_s: float = 60.0,
    ) -> None:
        from kubernetes import client

        self.v1 = client.CoreV1Api(api_client)
        self.timeout_s = timeout_s
        self.unschedulable_timeout_s = unschedulable_timeout_s
        self.delete_timeout_s = delete_timeout_s

    def run(self, exp: Experiment) -> Outcome:
        from kubernetes.client.rest import ApiException

        ns = exp.manifest.get("metadata", {}).get("namespace") or "default"
        name = exp.manifest["metadata"]["name"]
        t0 = time.monotonic()
        try:
            self._delete(ns, name)  # a leftover of an interrupted sweep
            created = self.v1.create_namespaced_pod(ns, exp.manifest)
        except ApiException as exc:
            return Outcome("failed", f"create: {exc.status} {exc.reason}: {_body(exc)}")
        try:
            pod, unschedulable = self._wait(ns, name, created.metadata.resource_version, t0)
            elapsed = time.monotonic() - t0
            if unschedulable is not None:
                return Outcome("unschedulable", f"Pending: {unschedulable}", elapsed)
            if pod is None:
                return Outcome("failed", f"timeout after {self.timeout_s:g} s", elapsed)
            return self._finished(ns, name, pod, elapsed)
        except ApiException as exc:
            return Outcome("failed", f"{exc.status} {exc.reason}: {_body(exc)}")
        finally:
            self._delete(ns, name)

    def _wait(self, ns: str, name: str, rv: str, t0: float) -> tuple[Any, str | None]:
        """Watch the Pod: (terminal pod, None), (None, scheduler message) or (None, None)."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        pending_since: float | None = None
        message = ""
        while True:
            now = time.monotonic()
            deadline = t0 + self.timeout_s
            if pending_since is not None:
                deadline = min(deadline, pending_since + self.unschedulable_timeout_s)
            if now >= deadline:
                return None, (message if pending_since is not None else None)
            w = watch.Watch()
            try:
                for event in w.stream(
                    self.v1.list_namespaced_pod,
                    ns,
                    field_selector=f"metadata.name={name}",
                    resource_version=rv,
                    timeout_seconds=max(1, math.ceil(deadline - now)),
                ):
                    pod = event["object"]
                    rv = pod.metadata.resource_version
                    if event["type"] == "DELETED":
                        return None, None
                    if pod.status and pod.status.phase in TERMINAL:
                        return pod, None
                    reason = _unschedulable(pod)
                    if reason is not None and pending_since is None:
                        pending_since, message = time.monotonic(), reason
                        break  # restart the watch with the unschedulable deadline
                    if reason is None:
                        pending_since = None
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: the resourceVersion expired, re-read
                    raise
                rv = self.v1.read_namespaced_pod(name, ns).metadata.resource_version
            finally:
                w.stop()

    def _finished(self, ns: str, name: str, pod: Any, elapsed: float) -> Outcome:
        logs = self._logs(ns, name)
        result = parse_result(logs)
        term = _terminated(pod)
        if pod.status.phase == "Succeeded":
            if not result:
                return Outcome("failed", f"no SWEEP_RESULT line: {last_lines(logs)}", elapsed)
            return Outcome(result.get("status", "success"), result.get("error_message", ""),
                           elapsed, result)  # fmt: skip
        reason = term.reason if term is not None else (pod.status.reason or "Failed")
        code = term.exit_code if term is not None else None
        if reason == "OOMKilled":
            limit = _memory_limit(pod)
            return Outcome("OOM", f"OOMKilled (exit code {code}) at the {limit} memory limit",
                           elapsed, result)  # fmt: skip
        if result.get("status") == "GPU-OOM" or any(m in logs for m in GPU_OOM_MARKERS):
            msg = result.get("error_message") or last_lines(logs)
            return Outcome("GPU-OOM", f"{reason} (exit code {code}): {msg}", elapsed, result)
        if result.get("status") == "OOM":
            return Outcome("OOM", result.get("error_message", ""), elapsed, result)
        detail = pod.status.message or last_lines(logs)
        return Outcome("failed", f"{reason} (exit code {code}): {detail}", elapsed, result)

    def _logs(self, ns: str, name: str) -> str:
        from kubernetes.client.rest import ApiException

        try:
            return self.v1.read_namespaced_pod_log(name, ns)
        except ApiException:
            return ""

    def _delete(self, ns: str, name: str) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.v1.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise BackendError(
                f"cannot delete pod {ns}/{name}: {exc.status} {exc.reason}"
            ) from None
        self._wait_gone(ns, name)

    def _wait_gone(self, ns: str, name: str) -> None:
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        try:
            pods = self.v1.list_namespaced_pod(ns, field_selector=f"metadata.name={name}")
        except ApiException:
            return
        if not pods.items:
            return
        w = watch.Watch()
        try:
            for event in w.stream(
                self.v1.list_namespaced_pod, ns, field_selector=f"metadata.name={name}",
                resource_version=pods.metadata.resource_version,
                timeout_seconds=max(1, int(self.delete_timeout_s)),
            ):  # fmt: skip
                if event["type"] == "DELETED":
                    return
        finally:
            w.stop()


def _terminated(pod: Any) -> Any:
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.state and cs.state.terminated:
            return cs.state.terminated
    return None


def _memory_limit(pod: Any) -> str:
    try:
        return str(pod.spec.containers[0].resources.limits["memory"])
    except (AttributeError, IndexError, KeyError, TypeError):
        return "container's"


def _body(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")[:200]
