"""Pod fate: what happens to bare and Job pods (scheduling, run time, exit code)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.pod_status import (
    _condition,
    _pod_status_creating,
    _scheduler,
    _started_pod,
    _terminated_pod,
)


@dataclass(frozen=True)
class PodFate:
    """What happens to one bare or Job pod (see :meth:`FakeKubeApi.set_pod_fate`)."""

    #: False: the pod stays Pending, PodScheduled=False/Unschedulable, FailedScheduling event
    schedule: bool = True
    #: the scheduler's message while ``schedule`` is False
    unschedulable_message: str = "0/1 nodes are available: 1 Insufficient nvidia.com/gpumem."
    #: node the pod is bound to
    node_name: str = "node-1"
    #: seconds from scheduling to the containers running (Pending/ContainerCreating until then)
    start_delay_s: float = 0.05
    #: seconds the containers run (Running, Ready) before they terminate
    run_s: float = 0.1
    #: the containers' exit code
    exit_code: int = 0
    #: terminated reason; None: "Completed" for exit code 0, "Error" otherwise
    reason: str | None = None
    #: text the log endpoint returns once the container has started
    logs: str = ""

    @classmethod
    def oom_killed(cls, **kwargs: Any) -> PodFate:
        """The kernel's OOM killer ends the container: exit code 137, reason OOMKilled."""
        return cls(exit_code=137, reason="OOMKilled", **kwargs)

    @property
    def terminated_reason(self) -> str:
        return self.reason or ("Completed" if self.exit_code == 0 else "Error")


class FateMixin:
    """Moves bare and Job pods through the :class:`PodFate` decided for each."""

    def set_pod_fate(self, fate: Callable[[dict[str, Any]], PodFate] | None) -> None:
        """Decide what happens to bare and Job pods from now on: ``fate(pod_dict)`` returns a
        :class:`PodFate`.  Pods already decided keep their fate, except those still waiting
        to be scheduled: they are decided again (so an unschedulable pod can be let through)."""
        with self._lock:
            self._pod_fate = fate
            for uid in [
                u for u in self._pod_fates if "scheduled" not in self._pod_times.get(u, {})
            ]:
                del self._pod_fates[uid]

    def _decide_fate(self, pod: dict[str, Any]) -> PodFate:
        if self._pod_fate is None:
            return PodFate()
        try:
            fate = self._pod_fate(copy.deepcopy(pod))
            if not isinstance(fate, PodFate):
                raise TypeError(f"pod_fate returned {type(fate).__name__}, not PodFate")
            return fate
        except Exception as exc:  # noqa: BLE001 - reported through fate_errors
            self.fate_errors.append(exc)
            return PodFate(schedule=False, unschedulable_message=f"pod_fate raised: {exc!r}")

    def _tick_fate_pod(
        self, ns: str, pod: dict[str, Any], times: dict[str, float], now: float
    ) -> None:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            return
        uid = pod["metadata"]["uid"]
        fate = self._pod_fates.get(uid)
        if fate is None:
            fate = self._pod_fates[uid] = self._decide_fate(pod)
        if "scheduled" not in times:
            if fate.schedule or pod["spec"].get("nodeName"):
                self._schedule_fate_pod(ns, pod, times, fate, now)
            else:
                self._mark_unschedulable(ns, pod, fate.unschedulable_message)
        elif "started" not in times:
            if now - times["scheduled"] >= fate.start_delay_s:
                times["started"] = now
                self._pod_logs[uid] = fate.logs
                self._write("pods", pod, _started_pod(pod))
                name = pod["spec"]["containers"][0]["name"]
                self._event(ns, pod, "Normal", "Started", f"Started container {name}", "kubelet")
        elif now - times["started"] >= fate.run_s:
            self._finish_fate_pod(pod, times, fate, now)

    def _mark_unschedulable(self, ns: str, pod: dict[str, Any], message: str) -> None:
        cond = _condition(pod, "PodScheduled")
        if cond is not None and cond.get("message") == message:
            return
        self._write_unschedulable(ns, pod, message)

    def _schedule_fate_pod(
        self, ns: str, pod: dict[str, Any], times: dict[str, float], fate: PodFate, now: float
    ) -> None:
        times["scheduled"] = now
        preset = bool(pod["spec"].get("nodeName"))  # bound by the client: no scheduler involved
        new = copy.deepcopy(pod)
        node = new["spec"].setdefault("nodeName", fate.node_name)
        self._ip_counter += 1
        new["status"] = _pod_status_creating(pod, self._ip_counter)
        self._write("pods", pod, new)
        if not preset:
            self._event(
                ns,
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {ns}/{pod['metadata']['name']} to {node}",
                _scheduler(pod),
            )

    def _finish_fate_pod(
        self, pod: dict[str, Any], times: dict[str, float], fate: PodFate, now: float
    ) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and fate.exit_code != 0)
        new = _terminated_pod(pod, fate, restart)
        if restart:  # the kubelet restarts the container in place (after a back-off)
            times.pop("started", None)
            times["scheduled"] = now
            self._write("pods", pod, new)
            self._pod_fates[pod["metadata"]["uid"]] = self._decide_fate(pod)
            return
        self._write("pods", pod, new)
