"""Fault injection for the simulated cluster: GPU and node failures, pod crashes, scrape gaps.

A cluster config's ``faults:`` list names what fails and when; :class:`FaultsMixin` (part
of :class:`~k8s_gpu_rl.envs.sim.cluster.SimCluster`) applies each at its instant and recovers GPUs
and nodes after their duration. Every fault and recovery is reported in the interval's
``events``, so the environment can put it in ``info``.
"""

from __future__ import annotations

import math

from k8s_gpu_rl.envs.sim import kernel
from k8s_gpu_rl.envs.sim.pods import Phase


class FaultsMixin:
    """The fault verbs of :class:`~k8s_gpu_rl.envs.sim.cluster.SimCluster` (which owns the state)."""

    def _next_fault_s(self) -> float:
        if self._fault_pos < len(self._faults):
            return self._faults[self._fault_pos].at_s
        return math.inf

    def _apply_faults(self, t: float) -> None:
        for at, kind, target in [r for r in self._recover_at if r[0] <= t]:
            self._recover_at.remove((at, kind, target))
            (self.gpu_healthy if kind == "gpu" else self.node_healthy)[target] = True
            if kind == "gpu":
                self.s.g_speed[target] = self.gpu_list[target][1].speed
            self._events.append(f"{t:.0f}s {kind} {target} recovered")
            self._reconcile()
        while self._fault_pos < len(self._faults) and self._faults[self._fault_pos].at_s <= t:
            fault = self._faults[self._fault_pos]
            self._fault_pos += 1
            self._inject(fault.kind, fault.target, fault.duration_s, t)

    def _inject(self, kind: str, target: int, duration_s: float, t: float) -> None:
        if kind == "scrape_gap":
            self._scrape_gap_until = t + duration_s
            self._events.append(f"{t:.0f}s Prometheus misses scrapes for {duration_s:.0f}s")
            return
        if kind == "pod_crash":
            running = [p for p in self.pods if p.phase in (Phase.READY, Phase.STARTING)]
            if running:
                pod = running[target % len(running)]
                kernel.kill_now(self._cs, pod.slot, t)
                pod.restarts += 1
                self._events.append(f"{t:.0f}s {pod.name} crashed, restarting")
                self._start_container(pod, t)
                self._reconcile()
            return
        index = target % (len(self.gpu_list) if kind == "gpu_failure" else len(self.config.nodes))
        if kind == "gpu_failure":
            self.gpu_healthy[index] = False
            self.s.g_speed[index] = 0.0
            hit = [p for p in self.pods if p.gpu == index]
            self._recover_at.append((t + duration_s, "gpu", index))
        else:
            self.node_healthy[index] = False
            hit = [p for p in self.pods if p.gpu >= 0 and self.gpu_list[p.gpu][0] == index]
            self._recover_at.append((t + duration_s, "node", index))
        self._events.append(f"{t:.0f}s {kind} {index}: {len(hit)} pod(s) lost")
        for pod in hit:
            kernel.kill_now(self._cs, pod.slot, t)
            self._remove(pod)
        self._reconcile()
