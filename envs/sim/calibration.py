"""The user's measurements (FACTS.md) and the simulator's figures for the same runs.

Two calibrations:

* **The baseline** (:data:`MEASURED`): the ``low`` profile (10 Locust users) against one
  Triton pod on the user's RTX 3080. :func:`simulate_baseline` runs the same profile on
  the default simulated cluster and reports the same figures the same way: latency and
  throughput from the clients (Locust's view), GPU memory and utilisation from DCGM as
  Prometheus scraped it. Target: every figure within 10 %.
* **The client-bound runs** (:data:`CLIENT_BOUND`): the user's Locust runs with JSON
  bodies, ``between(1, 2)`` think time and one Locust process, whose throughput stopped
  at about 10-11.5 requests/s from 20 to 100 users while the latency grew: the load
  generator was the bottleneck. :func:`simulate_client_bound` runs each load level on
  ``clusters/rtx3080-locust-json.yaml`` (the simulator's load-generator model,
  ``kernel.c``). Targets: throughput within 20 %, p50 within 30 % (p95 for information).

How the client cost of that cluster was fitted (:func:`closed_form_inference_cost_ms`,
:func:`fit_client_split`): a saturated Locust process is busy all the time, so its rate
is 1 / (its mean CPU per request). The three saturated levels' total rates average
10.67 requests/s, i.e. 93.8 ms per request; with the task mix (5/8 inference, 3/8 cheap
GETs at 1.2 ms) that is 149 ms per inference request. How that splits between building
the request (before Locust's timer starts), sending it and reading the reply (timed) only
moves latency, not capacity: a grid over the build share (0.30 ... 0.60) and the receive
share (3 % or 10 %), two seeds per point, picked the split with the smallest worst error
in units of the bounds: build 35 %, receive 3 % (52, 93 and 4.5 ms, rounded in the YAML).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from k8s_gpu_rl.config import replace
from k8s_gpu_rl.envs.sim.cluster import SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config
from k8s_gpu_rl.envs.sim.prometheus import GPU_GAUGES
from k8s_gpu_rl.loadprofiles import LoadProfile, load_profile
from k8s_gpu_rl.loadprofiles.profile import Stage, WaitTime

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


# --- the client-bound runs --------------------------------------------------------


@dataclass(frozen=True)
class LoadLevel:
    """One row of the user's Locust table (FACTS.md, "The user's Locust runs")."""

    label: str
    """The user count as the table gives it (a range where runs varied)."""
    users: int
    """The user count simulated: the middle of the range."""
    total_rps: float
    """Locust's total requests/s, cheap GETs included."""
    inference_rps: float
    """Inference requests/s."""
    p50_ms: float
    """Median latency over all requests (Locust's Aggregated row)."""
    p95_ms: float
    """95th percentile latency over all requests."""


CLIENT_BOUND: tuple[LoadLevel, ...] = (
    LoadLevel("10", 10, 6.2, 3.9, 110.0, 375.0),
    LoadLevel("20-30", 25, 10.4, 6.5, 720.0, 1900.0),
    LoadLevel("46-60", 53, 11.5, 7.5, 1800.0, 3600.0),
    LoadLevel("91-100", 95, 10.1, 6.2, 3300.0, 5800.0),
)
"""FACTS.md: medians over 5-minute runs, JSON bodies, one Locust process, GPU deployment."""

CLIENT_BOUND_CLUSTER = "rtx3080-locust-json"
"""The shipped cluster that describes that setup."""
CLIENT_BOUND_WAIT = WaitTime(1.0, 2.0)
"""Their users' think time, Locust ``between(1, 2)``."""
THROUGHPUT_BOUND = 0.20
"""Allowed relative error of the simulated throughput (total and inference)."""
P50_BOUND = 0.30
"""Allowed relative error of the simulated median latency."""


@dataclass(frozen=True)
class LevelComparison:
    """One load level: measured against simulated."""

    level: LoadLevel
    simulated: dict[str, float]
    """total_rps, inference_rps, p50_ms, p95_ms, success_rate."""

    def error(self, figure: str) -> float:
        """Relative error of ``figure`` (a LoadLevel field name)."""
        measured = getattr(self.level, figure)
        return (self.simulated[figure] - measured) / measured

    @property
    def worst(self) -> float:
        """The largest error in units of its bound (<= 1: within every bound)."""
        return max(
            abs(self.error("total_rps")) / THROUGHPUT_BOUND,
            abs(self.error("inference_rps")) / THROUGHPUT_BOUND,
            abs(self.error("p50_ms")) / P50_BOUND,
        )


def level_profile(users: int, duration_s: float, wait: WaitTime = CLIENT_BOUND_WAIT) -> LoadProfile:
    """A constant load of ``users`` (all started within a second) for ``duration_s``."""
    return LoadProfile(
        f"{users}-users",
        f"{users} users, {wait.min}-{wait.max} s think",
        wait,
        (Stage(duration_s, users, float(max(users, 1))),),
    )


def simulate_level(
    config: ClusterConfig,
    users: int,
    seeds: tuple[int, ...] = (0, 1, 2),
    duration_s: float = 300.0,
    warmup_s: float = 60.0,
) -> dict[str, float]:
    """Locust's figures for ``users`` closed-loop users, pooled over ``seeds``: requests/s
    (all, and inference), p50 and p95 over all successful requests, the success rate."""
    lat, ok, inference = [], [], []
    for seed in seeds:
        cluster = SimCluster(config, level_profile(users, warmup_s + duration_s), seed)
        cluster.advance(warmup_s)
        iv = cluster.advance(duration_s)
        lat.append(iv.latencies_s)
        ok.append(iv.ok)
        inference.append(iv.inference)
    good = np.concatenate(ok)
    lat_ms = np.concatenate(lat)[good] * 1000.0
    served_s = duration_s * len(seeds)
    return {
        "total_rps": lat_ms.size / served_s,
        "inference_rps": float(np.concatenate(inference)[good].sum()) / served_s,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p95_ms": float(np.percentile(lat_ms, 95)),
        "success_rate": float(good.mean()),
    }


def simulate_client_bound(
    config: ClusterConfig | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    duration_s: float = 300.0,
) -> list[LevelComparison]:
    """Every level of :data:`CLIENT_BOUND` on ``config`` (default: the shipped cluster)."""
    config = config or load_cluster_config(CLIENT_BOUND_CLUSTER)
    return [
        LevelComparison(level, simulate_level(config, level.users, seeds, duration_s))
        for level in CLIENT_BOUND
    ]


def closed_form_inference_cost_ms(config: ClusterConfig) -> float:
    """Locust CPU per inference request that makes one saturated process reach the mean
    total rate of the saturated levels (all but the first): a busy process serves one
    request per mean CPU cost; the cheap GETs of ``config``'s mix take their share."""
    saturated = float(np.mean([level.total_rps for level in CLIENT_BOUND[1:]]))
    mix = config.client.request_mix
    per_request_ms = 1000.0 / saturated
    return (per_request_ms - mix.cheap_fraction * mix.cheap_cost_ms) / (1 - mix.cheap_fraction)


def fit_client_split(
    config: ClusterConfig,
    build_shares: tuple[float, ...] = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60),
    receive_shares: tuple[float, ...] = (0.03, 0.10),
    seeds: tuple[int, ...] = (0, 1),
) -> list[tuple[float, dict[str, float]]]:
    """The documented search: at the closed-form total cost, each (build, receive) share
    of the grid, scored by the worst error over the levels in units of the bounds.
    Returns ``(score, client_cost_ms)`` pairs, best first."""
    total = closed_form_inference_cost_ms(config)
    scored = []
    for build in build_shares:
        for receive in receive_shares:
            cost = {
                "build": float(total * build),
                "send": float(total * (1 - build - receive)),
                "receive": float(total * receive),
            }
            trial = replace(config, client={"client_cost_ms": cost})
            worst = max(c.worst for c in simulate_client_bound(trial, seeds))
            scored.append((worst, cost))
    return sorted(scored, key=lambda pair: pair[0])
