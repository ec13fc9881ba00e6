"""Whole-episode KPIs, accumulated step by step (what ``evaluate`` and TensorBoard report)."""

from __future__ import annotations

import numpy as np

from k8s_gpu_rl.envs.backends.base import IntervalRecord


class EpisodeAccumulator:
    """Sums one episode's intervals; :meth:`kpis` gives the run's figures.

    Latency percentiles are over every request of the episode (client side), not averages
    of per-step percentiles.
    """

    def __init__(self, slo_ms: float, total_gpus: float, gpu_memory_mib: float) -> None:
        self.slo_ms = slo_ms
        self.total_gpus = total_gpus
        self.gpu_memory_mib = gpu_memory_mib
        self.latencies: list[np.ndarray] = []
        self.ok: list[np.ndarray] = []
        self.sums: dict[str, float] = {}
        self.reward_terms: dict[str, float] = {}
        self.episode_return = 0.0

    def add(self, rec: IntervalRecord, terms: dict[str, float], reward: float) -> None:
        self.latencies.append(rec.latencies_s)
        self.ok.append(rec.ok)
        for key, value in (
            ("duration_s", rec.end_s - rec.start_s),
            ("vgpu_s", rec.vgpu_s),
            ("replica_s", rec.replica_s),
            ("gpu_work_s", rec.gpu_work_s),
            ("cpu_s", rec.cpu_s),
            ("cpu_request_s", rec.cpu_request_s),
            ("gpu_memory_mib_s", rec.gpu_memory_mib_s),
            ("tenant_gpu_s", rec.tenant_gpu_s),
            ("intervals", 1.0),
            ("client_saturated_intervals", float(bool(rec.client_saturated))),
        ):
            self.sums[key] = self.sums.get(key, 0.0) + value
        for name, value in terms.items():
            self.reward_terms[name] = self.reward_terms.get(name, 0.0) + value
        self.episode_return += reward

    def kpis(self) -> dict[str, float]:
        """The episode's KPIs (latencies in ms over successful requests)."""
        lat_ms = np.concatenate(self.latencies) * 1000.0 if self.latencies else np.zeros(0)
        ok = np.concatenate(self.ok) if self.ok else np.zeros(0, bool)
        good = lat_ms[ok]
        s = self.sums
        duration = s.get("duration_s", 0.0) or 1.0
        pct = np.percentile(good, (50, 95, 99)) if good.size else (np.nan,) * 3
        n = int(lat_ms.size)
        out = {
            "requests": float(n),
            "failures": float(n - good.size),
            "success_rate": good.size / n if n else 1.0,
            "qos_violation_rate": float(np.count_nonzero(~ok | (lat_ms > self.slo_ms))) / n
            if n
            else 0.0,
            "mean_latency_ms": float(good.mean()) if good.size else float("nan"),
            "p50_latency_ms": float(pct[0]),
            "p95_latency_ms": float(pct[1]),
            "p99_latency_ms": float(pct[2]),
            "throughput_rps": good.size / duration,
            "vgpu_hours": s.get("vgpu_s", 0.0) / 3600.0,
            "replica_hours": s.get("replica_s", 0.0) / 3600.0,
            "tenant_gpu_seconds": s.get("tenant_gpu_s", 0.0),
            # live backends: intervals in which Locust, not the cluster, was the bottleneck
            "client_saturated": float(s.get("client_saturated_intervals", 0.0) > 0),
            "client_saturated_fraction": s.get("client_saturated_intervals", 0.0)
            / (s.get("intervals", 0.0) or 1.0),
            "mean_replicas": s.get("replica_s", 0.0) / duration,
            "gpu_util": s.get("gpu_work_s", 0.0) / (duration * self.total_gpus),
            "gpu_memory_util": s.get("gpu_memory_mib_s", 0.0)
            / (duration * self.total_gpus * self.gpu_memory_mib),
            "cpu_util": s.get("cpu_s", 0.0) / s["cpu_request_s"] if s.get("cpu_request_s") else 0.0,
            "duration_s": duration,
            "return": self.episode_return,
        }
        out.update({f"reward_{name}": value for name, value in self.reward_terms.items()})
        return out
