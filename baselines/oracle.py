"""The clairvoyant oracle: the cost lower bound the other policies are measured against.

It knows what no real controller can: the load profile's future user count
(:func:`loadprofiles.users_at`) and the simulator's serving model (``ClusterConfig``).
From them it plans, once per episode, the cheapest Deployment that serves the load in
time, and then follows the plan.

**Demand** at time t: ``users(t) / (latency + mean think time)`` requests per second
(closed-loop Locust users), with the latency of an idle pod on a whole GPU (the highest
demand the users can make).

**A pod at share s** (:class:`CapacityModel`, all from ``ClusterConfig``):

* serves at most ``max_batch / ((batch_base_ms + batch_per_item_ms * max_batch) / (s *
  speed))`` requests/s on the GPU and ``cpu_limit / cpu_ms_per_request`` on the CPU; a
  configuration is feasible only with ``headroom`` (30 %) to spare;
* answers within an estimated p95 of ``transport_median * exp(1.645 sigma) + cpu time +
  max queue delay + 1.95 * T(b)``, where ``T(b) = (batch_base_ms + batch_per_item_ms * b)
  / (s * speed)`` is the batch time at the batch size ``b = clip(rate * T(b), 1,
  max_batch)`` the dynamic batcher forms (a request waits for the batch in flight, up to
  one T, then runs for one T); feasible only if that p95 is at most ``(1 -
  latency_margin) x SLO``. This keeps the smallest share out: at gpucores 10 one
  inference alone takes 43 ms, and the estimated p95 (about 148 ms) exceeds 0.95 x the
  150 ms SLO whatever the replica count.

**Timing.** Pods take ``lead_s`` to become Ready (default: the start-up time's 97.7th
percentile, ``median * exp(2 sigma)``, plus one readiness period), so the replicas set
at step k must cover the demand from t_k to t_{k+1} + lead_s; and because a step moves
at most +-2 replicas, a larger rise starts earlier.

**One share per episode.** A share change rolls every pod and, once more than one pod
holds most of the GPU, can leave new pods Pending for good (maxUnavailable rounds down
to 0 below 4 replicas, so no old pod is deleted to make room). The oracle therefore
picks the share level whose plan costs the fewest vGPU-seconds over the whole profile
(among those whose roll from the initial Deployment can complete), moves there first
while holding the replica count (:func:`~k8s_gpu_rl.baselines.base.roll_share_first`: one rollout,
or with the env's relative share action one level per rollout, ~30 s each), and from
then on only scales replicas. The plan ignores the cost of that first roll (old and new
pods both hold a share while it runs), which is why the measured vGPU-hours sit a little
above the plan's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from k8s_gpu_rl.baselines.base import BaselinePolicy, Desired, roll_share_first
from k8s_gpu_rl.envs.config import gpumem_for
from k8s_gpu_rl.envs.sim import hami
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import LoadProfile, users_at

Z95 = 1.645  # standard normal 95th percentile


@dataclass(frozen=True)
class CapacityModel:
    """Throughput and latency of one Triton pod at a vGPU share, from the cluster config."""

    batch_base_ms: float
    batch_per_item_ms: float
    max_batch: int
    speed: float
    """The slowest GPU's speed (a pod may land on it)."""
    cpu_ms: float
    """CPU time per request on one of the pod's CPU servers."""
    cpu_rps: float
    """Requests/s the pod's CPU limit allows."""
    fixed_p95_ms: float
    """Transport (p95), CPU time and the batcher's queue delay."""
    idle_latency_s: float
    """Mean latency of an idle pod on a whole GPU (for the demand estimate)."""

    @classmethod
    def from_cluster(cls, c: ClusterConfig) -> CapacityModel:
        s, d, cl = c.serving, c.deployment, c.client
        servers = max(1, math.ceil(d.cpu_limit))
        cpu_ms = s.cpu_ms_per_request * servers / d.cpu_limit
        delay_ms = s.max_queue_delay_us / 1000.0
        batch1 = (s.batch_base_ms + s.batch_per_item_ms) / max(g.speed for _, g in c.gpus)
        return cls(
            batch_base_ms=s.batch_base_ms,
            batch_per_item_ms=s.batch_per_item_ms,
            max_batch=s.max_batch_size,
            speed=min(g.speed for _, g in c.gpus),
            cpu_ms=cpu_ms,
            cpu_rps=d.cpu_limit / s.cpu_ms_per_request * 1000.0,
            fixed_p95_ms=cl.transport_median_ms * math.exp(Z95 * cl.transport_sigma)
            + cpu_ms
            + delay_ms,
            idle_latency_s=(cl.transport_median_ms + cpu_ms + delay_ms + batch1) / 1000.0,
        )

    def batch_ms(self, batch: float, share: float) -> float:
        """GPU wall time of a batch at ``share`` (fraction of a GPU)."""
        return (self.batch_base_ms + self.batch_per_item_ms * batch) / (share * self.speed)

    def pod_rps(self, share: float) -> float:
        """Most requests/s one pod serves (full batches back to back, or its CPU limit)."""
        return min(self.max_batch / self.batch_ms(self.max_batch, share) * 1000.0, self.cpu_rps)

    def batch_size(self, rps: float, share: float) -> float:
        """The batch size that forms at ``rps``: b = rate x T(b), clipped to [1, max_batch]."""
        rate = rps / 1000.0
        denominator = 1.0 - rate * self.batch_per_item_ms / (share * self.speed)
        if denominator <= 0:
            return float(self.max_batch)
        b = rate * self.batch_base_ms / (share * self.speed) / denominator
        return float(min(max(b, 1.0), self.max_batch))

    def p95_latency_ms(self, rps: float, share: float) -> float:
        """Estimated client-side p95 of a pod serving ``rps`` at ``share``."""
        return self.fixed_p95_ms + 1.95 * self.batch_ms(self.batch_size(rps, share), share)

    def feasible(self, rps: float, share: float, headroom: float, latency_limit_ms: float) -> bool:
        return (
            rps * (1.0 + headroom) <= self.pod_rps(share)
            and self.p95_latency_ms(rps, share) <= latency_limit_ms
        )


class OraclePolicy(BaselinePolicy):
    """Clairvoyant planner (see the module docstring). ``share`` forces a share level."""

    name = "oracle"

    def __init__(
        self,
        headroom: float = 0.3,
        latency_margin: float = 0.05,
        lead_s: float | None = None,
        share: int | None = None,
    ) -> None:
        super().__init__()
        if headroom < 0 or not 0 <= latency_margin < 1:
            raise ConfigError(
                f"need headroom >= 0 and 0 <= latency_margin < 1, got {headroom}, {latency_margin}"
            )
        self.headroom = float(headroom)
        self.latency_margin = float(latency_margin)
        self._lead_s = lead_s
        self._forced_share = share
        self.share: int = 0
        self.plan: np.ndarray = np.zeros(0, dtype=np.int64)
        self.plan_costs: dict[int, float] = {}

    def bind(self, env: Any) -> OraclePolicy:
        super().bind(env)
        cluster: ClusterConfig = self.env.cluster_config
        self.model = CapacityModel.from_cluster(cluster)
        startup = cluster.startup
        self.lead_s = (
            startup.median_s * math.exp(2 * startup.sigma) + startup.readiness_period_s
            if self._lead_s is None
            else float(self._lead_s)
        )
        self._plan_episode(self.env.profile, cluster)
        return self

    # --- planning -------------------------------------------------------------
    def _plan_episode(self, profile: LoadProfile, cluster: ClusterConfig) -> None:
        levels = self.config.share_levels if self._forced_share is None else (self._forced_share,)
        plans = {
            s: self._plan_for(s, profile, cluster) for s in levels if self._reachable(s, cluster)
        }
        if not plans:
            raise ConfigError(
                f"oracle: no share level in {list(levels)} can be rolled out from the initial Deployment"
            )
        interval = self.config.decision_interval_s
        self.plan_costs = {s: float(p.sum() * s / 100.0 * interval) for s, (p, _) in plans.items()}
        # fewest steps the plan cannot serve, then fewest vGPU-seconds, then the larger share
        self.share = min(plans, key=lambda s: (plans[s][1], self.plan_costs[s], -s))
        self.plan = plans[self.share][0]

    def _plan_for(
        self, share: int, profile: LoadProfile, cluster: ClusterConfig
    ) -> tuple[np.ndarray, int]:
        """Replicas per decision step at ``share``, and how many steps it cannot serve."""
        c = self.config
        room = min(c.max_replicas, hami.capacity(_gpu_slots(cluster), self._gpumem(share), share))
        interval, steps = c.decision_interval_s, self.env.max_steps
        wait = profile.wait_time.mean_s
        need, short = np.zeros(steps, dtype=np.int64), 0
        for k in range(steps):
            t = np.arange(k * interval, (k + 1) * interval + self.lead_s + 1.0, 1.0)
            users = float(np.max(users_at(profile, np.minimum(t, profile.duration_s - 1e-9))))
            n = self.replicas_for(users / (self.model.idle_latency_s + wait), share, room)
            short += n is None
            need[k] = max(c.min_replicas, room if n is None else n)
        step_up = max(c.replica_deltas)
        for k in range(steps - 2, -1, -1):  # +-2 per step: start a large rise earlier
            need[k] = max(need[k], need[k + 1] - step_up)
        return need, short

    def replicas_for(self, rps: float, share: int, room: int) -> int | None:
        """Fewest pods at ``share`` that serve ``rps`` (None: not even ``room`` pods do)."""
        limit = self.config.slo_ms * (1.0 - self.latency_margin)
        for n in range(1, max(1, room) + 1):
            if self.model.feasible(rps / n, share / 100.0, self.headroom, limit):
                return n
        return None

    def _reachable(self, share: int, cluster: ClusterConfig) -> bool:
        """Whether every rollout on the way from the initial share to ``share`` completes
        (one hop with absolute share actions; one per level with relative ones)."""
        levels, start = self.config.share_levels, cluster.deployment.gpucores
        if getattr(self.config, "share_action", "absolute") == "absolute" or start not in levels:
            path = [start, share]
        else:
            i, j = levels.index(start), levels.index(share)
            path = list(levels[min(i, j) : max(i, j) + 1])[:: 1 if j >= i else -1]
        return all(
            _roll_completes(cluster, a, self._gpumem(a), b, self._gpumem(b))
            for a, b in itertools.pairwise(path)
        )

    def _gpumem(self, share: int) -> int:
        return gpumem_for(
            share,
            self.backend.gpu_memory_mib,
            self.env.cluster_config.serving.model_memory_mib,
            self.config.gpumem_headroom,
        )

    # --- acting ---------------------------------------------------------------
    def decide(self, now_s: float) -> Desired:
        k = min(int(round(now_s / self.config.decision_interval_s)), len(self.plan) - 1)
        planned = Desired(int(self.plan[k]), self.share)
        desired = roll_share_first(self.backend, planned)
        self.status = {
            "planned_replicas": float(planned.replicas),
            "rolling": float(desired != planned),
        }
        return desired

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "share": self.share,
            "headroom": self.headroom,
            "latency_margin": self.latency_margin,
            "lead_s": getattr(self, "lead_s", None),
            "plan_vgpu_hours": {s: v / 3600.0 for s, v in self.plan_costs.items()},
        }


def _gpu_slots(cluster: ClusterConfig) -> list[hami.GpuSlot]:
    return hami.cluster_slots(cluster)


def _roll_completes(cluster: ClusterConfig, old: int, old_mem: int, new: int, new_mem: int) -> bool:
    """Whether a rolling update of the initial replica count from share ``old`` to ``new``
    can finish: some old pod may go first (maxUnavailable >= 1), or a new pod fits beside
    all the old ones."""
    d = cluster.deployment
    if old == new or d.replicas == 0 or math.floor(d.max_unavailable * d.replicas + 1e-9) >= 1:
        return True
    slots = _gpu_slots(cluster)
    for _ in range(d.replicas):
        chosen = hami.place(slots, old_mem, old)
        if chosen is None:
            break
        slots[chosen] = hami.allocate(slots[chosen], old_mem, old)
    return hami.place(slots, new_mem, new) is not None
