"""The simulated-cluster backend: :class:`~envs.sim.cluster.SimCluster` behind the seam."""

from __future__ import annotations

from envs.backends.base import DeploymentState, IntervalRecord
from envs.observation import evaluate_sim
from envs.sim.cluster import SimCluster
from envs.sim.config import ClusterConfig
from envs.sim.pods import Phase
from loadprofiles import LoadProfile


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

    def reset(self, seed: int) -> None:
        self.cluster = SimCluster(self.config, self.profile, seed)

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

    def advance(self, duration_s: float) -> IntervalRecord:
        iv = self.sim.advance(duration_s)
        return IntervalRecord(
            iv.start_s, iv.end_s, iv.latencies_s, iv.ok, iv.vgpu_s, iv.gpu_work_s, iv.replica_s, iv.events
        )

    def observe(self, window_s: float) -> dict[str, float]:
        return evaluate_sim(self.sim.prom, self.sim.now_s, window_s)

    def deployment(self) -> DeploymentState:
        sim = self.sim
        return DeploymentState(
            spec_replicas=sim.spec_replicas,
            ready_replicas=sum(p.phase == Phase.READY for p in sim.pods),
            pending_pods=sum(p.phase == Phase.PENDING for p in sim.pods),
            gpucores=sim.template.gpucores,
            gpumem_mib=sim.template.gpumem_mib,
        )

    def close(self) -> None:
        self.cluster = None
