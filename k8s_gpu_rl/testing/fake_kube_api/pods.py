"""Pod lifecycle: Deployment pods from creation to deletion, and the pod store itself."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.kinds import _owner_reference
from k8s_gpu_rl.testing.fake_kube_api.pod_status import (
    _condition,
    _image_id,
    _owned_by_kind,
    _pod_status_creating,
    _scheduler,
    _unschedulable_status,
)
from k8s_gpu_rl.testing.fake_kube_api.util import _now, _rand_suffix
from k8s_gpu_rl.testing.fake_kube_api.validation import _default_replicaset_pod_spec, _qos_class


class PodMixin:
    """Schedules, starts, deletes and removes pods (Deployment pods; others follow their PodFate)."""

    def _tick_pod(self, ns: str, pod: dict[str, Any], now: float) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        if "deleted" in times:
            if now - times["deleted"] >= self.pod_termination_delay_s:
                self._remove_pod(pod)
            return
        if not _owned_by_kind(pod, "ReplicaSet"):  # bare and Job pods follow their PodFate
            self._tick_fate_pod(ns, pod, times, now)
            return
        if pod["status"].get("phase") != "Pending":
            return
        if "scheduled" not in times:
            if not self.pods_pending:
                self._schedule_pod(ns, pod, times, now)
            elif _condition(pod, "PodScheduled") is None:
                self._write_unschedulable(ns, pod, self.pending_message)
            return
        if now - times["scheduled"] >= self.pod_ready_delay_s:
            self._set_pod_running(pod)
            self._event(
                ns,
                pod,
                "Normal",
                "Started",
                f"Started container {pod['spec']['containers'][0]['name']}",
                "kubelet",
            )

    def _write_unschedulable(self, ns: str, pod: dict[str, Any], message: str) -> None:
        """Pending, PodScheduled=False/Unschedulable, and the scheduler's FailedScheduling."""
        new = copy.deepcopy(pod)
        new["status"] = _unschedulable_status(pod, message)
        self._write("pods", pod, new)
        self._event(ns, pod, "Warning", "FailedScheduling", message, _scheduler(pod))

    def _schedule_pod(
        self, ns: str, pod: dict[str, Any], times: dict[str, float], now: float
    ) -> None:
        """Bind a Deployment pod to ``node_name``; its containers are then being created."""
        times["scheduled"] = now
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = self.node_name
        self._ip_counter += 1
        new["status"] = _pod_status_creating(pod, self._ip_counter)
        self._write("pods", pod, new)
        self._event(
            ns,
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {ns}/{pod['metadata']['name']} to {self.node_name}",
            _scheduler(pod),
        )

    def _set_pod_running(self, pod: dict[str, Any]) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        times.setdefault("scheduled", time.monotonic())
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = self.node_name
        if not new["status"].get("podIP"):
            self._ip_counter += 1
            new["status"] = _pod_status_creating(pod, self._ip_counter)
        st, now = new["status"], _now()
        st["phase"] = "Running"
        for c in st["conditions"]:
            c["status"], c["lastTransitionTime"] = "True", now
            c.pop("reason", None)
            c.pop("message", None)
        st["containerStatuses"] = [
            {
                "name": c["name"],
                "state": {"running": {"startedAt": now}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": c["image"],
                "imageID": _image_id(c["image"]),
                "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
                "started": True,
            }
            for c in new["spec"]["containers"]
        ]
        self._write("pods", pod, new)

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        if "deleted" in times:
            return
        times["deleted"] = time.monotonic()
        new = copy.deepcopy(pod)
        new["metadata"]["deletionTimestamp"] = _now()
        new["metadata"]["deletionGracePeriodSeconds"] = pod["spec"].get(
            "terminationGracePeriodSeconds", 30
        )
        self._write("pods", pod, new)
        self._event(
            pod["metadata"]["namespace"],
            pod,
            "Normal",
            "Killing",
            f"Stopping container {pod['spec']['containers'][0]['name']}",
            "kubelet",
        )
        if self.pod_termination_delay_s <= 0:
            self._remove_pod(pod)

    def _remove_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self._remove("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for table in (self._pod_times, self._pod_fates, self._pod_logs):
            table.pop(uid, None)

    def _create_pod(self, ns: str, dep: dict[str, Any], rs: dict[str, Any], pod_hash: str) -> None:
        """A ReplicaSet's new pod (``dep``, its Deployment, is not read)."""
        template = copy.deepcopy(rs["spec"]["template"])
        _default_replicaset_pod_spec(template["spec"])
        tlabels = (template.get("metadata") or {}).get("labels") or {}
        labels = {**tlabels, "pod-template-hash": pod_hash}
        owner = ("apps/v1", "ReplicaSet", rs)
        self._add_controlled_pod(ns, template, labels, owner, "replicaset-controller")

    def _add_controlled_pod(
        self,
        ns: str,
        template: dict[str, Any],
        labels: dict[str, str],
        owner: tuple[str, str, dict[str, Any]],
        component: str,
    ) -> dict[str, Any]:
        """Store the pod a controller (``component``) makes from a defaulted ``template``;
        ``owner`` is (apiVersion, kind, object) of its controlling owner."""
        tmeta = template.get("metadata") or {}
        owner_obj = owner[2]
        prefix = f"{owner_obj['metadata']['name']}-"
        pods = self._store["pods"].setdefault(ns, {})
        name = prefix + _rand_suffix()
        while name in pods:
            name = prefix + _rand_suffix()
        spec = template["spec"]
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": prefix,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_rv(),
                "creationTimestamp": _now(),
                "labels": labels,
                "ownerReferences": [_owner_reference(owner[0], owner[1], owner_obj)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": _qos_class(spec)},
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        pods[name] = pod
        self._emit("ADDED", "pods", pod)
        self._pod_times[pod["metadata"]["uid"]] = {}
        self._event(ns, owner_obj, "Normal", "SuccessfulCreate", f"Created pod: {name}", component)
        return pod
