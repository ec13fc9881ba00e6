"""A queue-aware autoscaler: Knative's Pod Autoscaler (KPA) decision on Triton's in-flight requests.

The decision is ``autoscaler.Scale`` of knative/serving (``pkg/autoscaler/scaling``):

* the observed **stable** value is the average of the metric over the stable window
  (60 s), the **panic** value its average over the panic window (10 % of it, 6 s); the
  metric is the Deployment's total in-flight requests (Triton's pending + executing,
  ``PodMetrics.inflight``, summed over the pods) or its total requests per second;
* desired pods ``ceil(stable / target)`` and ``ceil(panic / target)``, each kept within
  ``[floor(ready / max_scale_down_rate), ceil(max_scale_up_rate * ready)]`` (rates 2 and
  1000), where ``target = target_per_pod * target_utilization`` and ``ready`` is the
  ready pods (at least 1);
* **panic** starts (or is extended) when ``ceil(panic / target) / ready >= 2`` (200 %);
  in panic the KPA takes the larger of the two and only scales up (it keeps the most it
  asked for); it leaves panic a stable window after the last time it was over the
  threshold.

**Approximation of the 2 s tick.** Knative's autoscaler ticks every 2 s on per-second
samples. Here the controller sees the cluster once per env step (15 s): each step adds
one sample (the pods' averages over the last 15 s metrics window), the window averages
are over the samples taken within the window, and the panic window (6 s) therefore holds
exactly the newest sample, a 15 s average. A burst is seen at most 15 s late and the
panic decision is smoother than Knative's.

Defaults for Triton with ``max_batch_size`` 8: 4 in-flight requests per pod at 70 %
target utilisation (2.8 per pod), i.e. about half a batch waiting beside the one
executing. min/max scale are the env's replica bounds. Like the HPA, the KPA keeps the
Deployment's vGPU share unless ``gpucores=`` names one: then the Deployment is rolled to
it first, holding its replica count, and the KPA starts deciding once the roll is done
(as ``kpa-calibrated`` does). Scale to zero is off (``min_scale`` >= 1).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from k8s_gpu_rl.baselines.base import BaselinePolicy, Desired, roll_share_first
from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.errors import ConfigError

KPA_METRICS = ("concurrency", "rps")
DEFAULT_KPA_TARGETS = {"concurrency": 4.0, "rps": 100.0}


def kpa_scale(
    stable: float,
    panic: float,
    ready_pods: int,
    target: float,
    max_scale_up_rate: float,
    max_scale_down_rate: float,
    panic_threshold: float,
) -> tuple[int, int, bool]:
    """``Scale``'s arithmetic: (desired stable pods, desired panic pods, over threshold)."""
    ready = max(1.0, float(ready_pods))
    max_up = math.ceil(max_scale_up_rate * ready)
    max_down = math.floor(ready / max_scale_down_rate)
    dspc = math.ceil(stable / target)
    dppc = math.ceil(panic / target)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    return stable_pods, panic_pods, dppc / ready >= panic_threshold


class KpaPolicy(BaselinePolicy):
    """Knative KPA on in-flight requests (or rps) per pod; see the module docstring."""

    name = "kpa"

    def __init__(
        self,
        metric: str = "concurrency",
        target: float | None = None,
        target_utilization: float = 0.7,
        stable_window_s: float = 60.0,
        panic_window_pct: float = 10.0,
        panic_threshold_pct: float = 200.0,
        max_scale_up_rate: float = 1000.0,
        max_scale_down_rate: float = 2.0,
        min_scale: int | None = None,
        max_scale: int | None = None,
        gpucores: int | None = None,
    ) -> None:
        super().__init__()
        if metric not in KPA_METRICS:
            raise ConfigError(
                f"unknown KPA metric {metric!r}{suggest(metric, KPA_METRICS)}; available: {', '.join(KPA_METRICS)}"
            )
        self.metric = metric
        self.target_per_pod = float(DEFAULT_KPA_TARGETS[metric] if target is None else target)
        _check(self.target_per_pod > 0, f"KPA target must be > 0, got {target!r}")
        _check(
            0 < target_utilization <= 1,
            f"target_utilization must be in (0, 1], got {target_utilization!r}",
        )
        _check(stable_window_s > 0, f"stable_window_s must be > 0, got {stable_window_s!r}")
        _check(
            0 < panic_window_pct <= 100,
            f"panic_window_pct must be in (0, 100], got {panic_window_pct!r}",
        )
        _check(
            panic_threshold_pct > 100,
            f"panic_threshold_pct must be > 100, got {panic_threshold_pct!r}",
        )
        _check(
            max_scale_up_rate > 1 and max_scale_down_rate > 1, "max scale-up/down rates must be > 1"
        )
        self.target_utilization = float(target_utilization)
        self.stable_window_s = float(stable_window_s)
        self.panic_window_s = stable_window_s * panic_window_pct / 100.0
        self.panic_threshold = panic_threshold_pct / 100.0
        self.max_scale_up_rate = float(max_scale_up_rate)
        self.max_scale_down_rate = float(max_scale_down_rate)
        self._bounds = (min_scale, max_scale)
        self.gpucores = None if gpucores is None else int(gpucores)
        self.reset()

    def bind(self, env: Any) -> KpaPolicy:
        super().bind(env)
        levels = self.config.share_levels
        _check(
            self.gpucores is None or self.gpucores in levels,
            f"KPA gpucores {self.gpucores} is not one of the env's share_levels {list(levels)}",
        )
        return self

    @property
    def target(self) -> float:
        """Per-pod target value (``TargetValue``): target x utilisation."""
        return self.target_per_pod * self.target_utilization

    def reset(self) -> None:
        super().reset()
        self.samples: deque[tuple[float, float]] = deque()
        self.panic_since_s: float | None = None
        self.max_panic_pods = 0

    def decide(self, now_s: float) -> Desired:
        dep = self.deployment()
        if self.gpucores is not None:
            rolling = roll_share_first(self.backend, Desired(dep.spec_replicas, self.gpucores))
            if rolling.gpucores != dep.gpucores or dep.rollout_in_progress:
                return rolling  # the share is set first; the KPA decides once it is done
        self._add_sample(now_s)
        if not self.samples:  # no data yet: Knative keeps the scale (invalid ScaleResult)
            return Desired(dep.spec_replicas, dep.gpucores)
        stable, panic = (
            self._window_average(self.stable_window_s, now_s),
            self._window_average(self.panic_window_s, now_s),
        )
        stable_pods, panic_pods, over = kpa_scale(
            stable,
            panic,
            dep.ready_replicas,
            self.target,
            self.max_scale_up_rate,
            self.max_scale_down_rate,
            self.panic_threshold,
        )
        desired = self._panic_mode(stable_pods, panic_pods, over, now_s)
        lo, hi = self._bounds
        lo = self.config.min_replicas if lo is None else lo
        hi = self.config.max_replicas if hi is None else hi
        desired = min(max(desired, lo), hi)
        self.status = {
            "stable_value": stable,
            "panic_value": panic,
            "panic": float(self.panic_since_s is not None),
            "desired_replicas": float(desired),
        }
        return Desired(desired, dep.gpucores)

    def _panic_mode(self, stable_pods: int, panic_pods: int, over: bool, now_s: float) -> int:
        if over:
            self.panic_since_s = now_s  # start, or extend, panicking
        elif self.panic_since_s is not None and self.panic_since_s + self.stable_window_s < now_s:
            self.panic_since_s = None  # the surge has reached the stable metric
            self.max_panic_pods = 0
        if self.panic_since_s is None:
            return stable_pods
        self.max_panic_pods = max(self.max_panic_pods, stable_pods, panic_pods)
        return self.max_panic_pods

    def _add_sample(self, now_s: float) -> None:
        pods = [p for p in self.backend.pod_metrics() if p.phase in ("Ready", "Terminating")]
        values = [p.inflight if self.metric == "concurrency" else p.rps for p in pods]
        values = [v for v in values if math.isfinite(v)]
        if values:
            self.samples.append((now_s, float(sum(values))))
        horizon = max(self.stable_window_s, self.panic_window_s)
        while self.samples and self.samples[0][0] <= now_s - horizon:
            self.samples.popleft()

    def _window_average(self, window_s: float, now_s: float) -> float:
        """Mean of the samples in ``(now - window, now]``; the newest one if none is."""
        inside = [v for t, v in self.samples if t > now_s - window_s]
        return sum(inside) / len(inside) if inside else self.samples[-1][1]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "target_per_pod": self.target_per_pod,
            "target_utilization": self.target_utilization,
            "stable_window_s": self.stable_window_s,
            "panic_window_s": self.panic_window_s,
            "panic_threshold": self.panic_threshold,
            "gpucores": self.gpucores,
        }


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
