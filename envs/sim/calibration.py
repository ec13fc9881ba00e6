"""The user's measured baseline (FACTS.md) and the simulator's figures for the same run.

The user ran the ``low`` profile (10 Locust users) against one Triton pod on their RTX
3080 and measured the figures in :data:`MEASURED`. :func:`simulate_baseline` runs the
same profile on the simulated cluster and reports the same figures the same way: latency
and throughput from the clients (Locust's view), GPU memory and utilisation from DCGM
as Prometheus scraped it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from k8s_gpu_rl.envs.sim.cluster import SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.prometheus import GPU_GAUGES
from k8s_gpu_rl.loadprofiles import LoadProfile, load_profile

MEASURED: dict[str, float] = {
    "mean_latency_ms": 72.0,
    "p95_latency_ms": 74.0,
    "p99_latency_ms": 81.0,
    "throughput_rps": 13.0,
    "gpu_memory_gb": 1.5,
    "gpu_util_pct": 43.0,
}
"""FACTS.md: the baseline at 10 users, 100 % success."""

UNITS = {
    "mean_latency_ms": "ms",
    "p95_latency_ms": "ms",
    "p99_latency_ms": "ms",
    "throughput_rps": "req/s",
    "gpu_memory_gb": "GB",
    "gpu_util_pct": "%",
}


@dataclass(frozen=True)
class Comparison:
    """One figure, simulated against measured."""

    name: str
    measured: float
    simulated: float

    @property
    def relative_error(self) -> float:
        return (self.simulated - self.measured) / self.measured


def simulate_baseline(
    config: ClusterConfig | None = None,
    profile: LoadProfile | str = "low",
    seeds: tuple[int, ...] = (0, 1, 2),
    warmup_s: float = 60.0,
) -> dict[str, float]:
    """The baseline's figures from the simulator, pooled over ``seeds``."""
    config = config or ClusterConfig()
    profile = load_profile(profile) if isinstance(profile, str) else profile
    latencies, ok, util, fb = [], [], [], []
    served_s = 0.0
    util_i = GPU_GAUGES.index("DCGM_FI_DEV_GPU_UTIL")
    fb_i = GPU_GAUGES.index("DCGM_FI_DEV_FB_USED")
    for seed in seeds:
        cluster = SimCluster(config, profile, seed)
        cluster.advance(warmup_s)
        step = config.metrics.scrape_interval_s
        while cluster.now_s + step <= profile.duration_s:
            iv = cluster.advance(step)
            latencies.append(iv.latencies_s)
            ok.append(iv.ok)
            served_s += step
            row = cluster.prom.latest_row(cluster.now_s)
            if row is not None:
                util.append(np.nanmean(cluster.prom.gpu_gauges[row, :, util_i]))
                fb.append(np.nansum(cluster.prom.gpu_gauges[row, :, fb_i]))
    lat_ms = np.concatenate(latencies) * 1000.0
    good = lat_ms[np.concatenate(ok)]
    return {
        "mean_latency_ms": float(good.mean()),
        "p95_latency_ms": float(np.percentile(good, 95)),
        "p99_latency_ms": float(np.percentile(good, 99)),
        "throughput_rps": good.size / served_s,
        "gpu_memory_gb": float(np.mean(fb)) / 1024.0,
        "gpu_util_pct": float(np.mean(util)),
        "success_rate": good.size / lat_ms.size,
    }


def compare(simulated: dict[str, float]) -> list[Comparison]:
    """Measured against simulated, figure by figure."""
    return [Comparison(name, MEASURED[name], simulated[name]) for name in MEASURED]
