"""The simulated-cluster backend: :class:`~k8s_gpu_rl.envs.sim.cluster.SimCluster` behind the seam."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from k8s_gpu_rl.envs.backends.base import DeploymentState, IntervalRecord, PodMetrics
from k8s_gpu_rl.envs.observation import evaluate_sim
from k8s_gpu_rl.envs.sim import state as st
from k8s_gpu_rl.envs.sim.cluster import SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.pods import Phase
from k8s_gpu_rl.loadprofiles import LoadProfile

PHASE_NAMES = {
    Phase.PENDING: "Pending",
    Phase.STARTING: "Starting",
    Phase.READY: "Ready",
    Phase.BACKOFF: "CrashLoopBackOff",
    Phase.TERMINATING: "Terminating",
}


class SimBackend:
    """Runs one :class:`SimCluster` per episode, seeded by the environment."""

    def __init__(self, config: ClusterConfig, profile: LoadProfile) -> None:
        self.config = config
        self.profile = profile
        self.total_gpus = float(len(config.gpus))
        self.gpu_memory_mib = min(g.memory_mib for _, g in config.gpus)
        self.max_batch = config.serving.max_batch_size
        self.scrape_interval_s = config.metrics.scrape_interval_s
        self.duration_s = profile.duration_s
        self.cluster: SimCluster | None = None

    def reset(self, seed: int, gpucores: int | None = None, gpumem_mib: int | None = None) -> None:
        config = self.config
        if gpucores is not None and gpumem_mib is not None:
            deployment = dataclasses.replace(
                config.deployment, gpucores=gpucores, gpumem_mib=gpumem_mib
            )
            config = dataclasses.replace(config, deployment=deployment)
        self.cluster = SimCluster(config, self.profile, seed)
        self._snapshots: list[tuple[float, dict[int, np.ndarray]]] = [self._snapshot()]

    def _snapshot(self) -> tuple[float, dict[int, np.ndarray]]:
        """Per-pod counters now, keyed by pod uid (what the kubelet/Triton expose)."""
        sim = self.sim
        return sim.now_s, {p.uid: sim.s.pod_counters[p.slot].copy() for p in sim.pods}

    @property
    def sim(self) -> SimCluster:
        if self.cluster is None:
            raise RuntimeError("call reset() before using the backend")
        return self.cluster

    def apply(self, replicas: int, gpucores: int, gpumem_mib: int) -> None:
        self.sim.set_share(gpucores, gpumem_mib)
        self.sim.scale(replicas)

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        return self.sim.capacity(gpucores, gpumem_mib)

    def rollout_can_start(self, replicas: int, gpucores: int, gpumem_mib: int) -> bool:
        return self.sim.rollout_can_start(replicas, gpucores, gpumem_mib)

    def advance(self, duration_s: float) -> IntervalRecord:
        iv = self.sim.advance(duration_s)
        self._snapshots = [self._snapshots[-1], self._snapshot()]
        return IntervalRecord(
            iv.start_s,
            iv.end_s,
            iv.latencies_s,
            iv.ok,
            iv.vgpu_s,
            iv.gpu_work_s,
            iv.replica_s,
            iv.cpu_s,
            iv.cpu_request_s,
            iv.gpu_memory_mib_s,
            iv.events,
            iv.users,
            iv.tenant_gpu_s,
        )

    def observe(self, window_s: float) -> dict[str, float]:
        return evaluate_sim(self.sim.prom, self.sim.now_s, window_s)

    def deployment(self) -> DeploymentState:
        sim = self.sim
        ready = [p.template.gpucores for p in sim.pods if p.phase == Phase.READY]
        return DeploymentState(
            spec_replicas=sim.spec_replicas,
            ready_replicas=len(ready),
            pending_pods=sum(p.phase == Phase.PENDING for p in sim.pods),
            gpucores=sim.template.gpucores,
            gpumem_mib=sim.template.gpumem_mib,
            serving_gpucores=sum(ready) / len(ready) if ready else 0.0,
            rollout_in_progress=sim.rollout_in_progress(),
        )

    def pod_metrics(self) -> list[PodMetrics]:
        """metrics-server's view: usage over the window between its last two samples."""
        sim = self.sim
        (t0, before), (t1, after) = self._snapshots[0], self._snapshots[-1]
        dt = t1 - t0
        idle = self.config.serving.idle_cpu_cores
        out = []
        for pod in sim.pods:
            if pod.phase == Phase.GONE:
                continue
            cpu = rps = inflight = queue_ms = gpu_util = math.nan
            if dt > 0 and pod.uid in before and pod.uid in after:
                delta = after[pod.uid] - before[pod.uid]
                cpu = delta[st.C_CPU_S] / dt + idle
                rps = delta[st.C_SUCCESS] / dt
                inflight = delta[st.C_REQUEST_US] / 1e6 / dt
                served = delta[st.C_SUCCESS]
                queue_ms = delta[st.C_QUEUE_US] / 1000.0 / served if served > 0 else 0.0
                gpu_util = 100.0 * delta[st.C_GPU_BUSY_S] / dt
            ready_s = pod.ready_s if pod.phase in (Phase.READY, Phase.TERMINATING) else math.inf
            out.append(
                PodMetrics(
                    name=pod.name,
                    phase=PHASE_NAMES[pod.phase],
                    created_s=pod.created_s,
                    started_s=pod.started_s,
                    ready_s=ready_s,
                    cpu_cores=cpu,
                    cpu_request_cores=self.config.deployment.cpu_request,
                    gpucores=pod.template.gpucores,
                    rps=rps,
                    inflight=inflight,
                    queue_ms=queue_ms,
                    gpu_util=gpu_util,
                )
            )
        return out

    def now_s(self) -> float:
        return self.sim.now_s

    def close(self) -> None:
        self.cluster = None
