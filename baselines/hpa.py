"""The Horizontal Pod Autoscaler as a policy: the user's baseline.

Every env step (15 s, the controller's ``--horizontal-pod-autoscaler-sync-period``) it
does what ``kube-controller-manager`` does on one sync of an autoscaling/v2 HPA:

1. lists the Deployment's pods and reads one metric per pod from
   ``backend.pod_metrics()`` (metrics-server's view over its last window);
2. runs the replica calculator (:func:`~k8s_gpu_rl.baselines.hpa_algorithm.resource_replicas` for
   CPU utilisation, :func:`~k8s_gpu_rl.baselines.hpa_algorithm.plain_metric_replicas` for a Pods
   metric) with the controller's rules for unready pods, missing metrics and the CPU
   initialisation period (5 min) and initial readiness delay (30 s);
3. applies the behaviour (:func:`~k8s_gpu_rl.baselines.hpa_algorithm.hpa_step`: scale-down
   stabilisation window, default 300 s; rate limits, default up max(+4 pods, +100 %) and
   down -100 % per 15 s) with the history it keeps between syncs.

Metrics (``metric=``, with ``target=``):

| metric | what a pod reports | target (default) |
|---|---|---|
| ``cpu`` | CPU usage / request, % (Resource metric, Utilization target) | 70 % |
| ``gpu_util`` | GPU utilisation of the pod, % (Pods metric, AverageValue target) | 70 % |
| ``rps`` | successful inferences per second (Pods metric, AverageValue target) | 100 req/s |
| ``queue_ms`` | Triton's mean queue time per request, ms (Pods metric, AverageValue) | 10 ms |
| ``inflight`` | requests in the pod, queued or executing (Pods metric, AverageValue) | 4 |

``gpu_util`` per pod: DCGM cannot attribute a shared GPU to HAMi pods (FACTS.md); the
per-container figure is HAMi's ``hami_container_device_utilization_ratio``
(``PodMetrics.gpu_util``, % of one GPU). A backend without it (NaN) falls back to DCGM's
GPU utilisation (the backend's ``gpu_util`` feature, % averaged over GPUs, times the
number of GPUs) split among the pods in proportion to the requests each served.
``queue_ms`` and ``inflight`` are Triton's per-pod figures (``PodMetrics.queue_ms``,
``PodMetrics.inflight``), served to the HPA by a Prometheus adapter as Pods metrics.

**The share.** By default the HPA never touches the vGPU share: it keeps the
Deployment's gpucores. With ``gpucores=`` (the operator's choice of the pods' share, as
in ``hpa-calibrated``) the Deployment is first rolled to that share, holding its replica
count (:func:`~k8s_gpu_rl.baselines.base.roll_share_first`); the HPA starts syncing once
the roll is done, and the share is held from then on. Replica changes go through :func:`~k8s_gpu_rl.baselines.base.encode_action` (at most +-2
per step); the scale event the history records is the change actually requested.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from k8s_gpu_rl.baselines.base import (
    BaselinePolicy,
    Desired,
    reachable_replicas,
    roll_share_first,
)
from k8s_gpu_rl.baselines.hpa_algorithm import (
    DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
    DEFAULT_TOLERANCE,
    HpaHistory,
    HpaMetricsError,
    HpaSpec,
    PodSample,
    ReplicaProposal,
    ScalingRules,
    hpa_step,
    plain_metric_replicas,
    resource_replicas,
)
from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.envs.backends.base import PodMetrics
from k8s_gpu_rl.errors import ConfigError

METRICS = ("cpu", "gpu_util", "rps", "queue_ms", "inflight")
DEFAULT_TARGETS = {"cpu": 70.0, "gpu_util": 70.0, "rps": 100.0, "queue_ms": 10.0, "inflight": 4.0}


def pod_sample(
    pod: PodMetrics, usage: float, request: float | None, now_s: float, window_s: float
) -> PodSample:
    """One pod as the HPA's pod lister and metrics client see it.

    ``usage`` and ``request`` are in metric units (cores, %, req/s; NaN usage: no sample);
    they become the integer milli-units the replica calculator takes.
    """
    ready = pod.phase == "Ready"
    started = math.isfinite(pod.started_s)
    # a pod not ready has had its Ready condition False since its container started
    transition = pod.ready_s if ready else (pod.started_s if started else pod.created_s)
    return PodSample(
        phase="Pending" if pod.phase == "Pending" else "Running",
        ready=ready,
        ready_transition_s=transition,
        start_time_s=pod.started_s if started else None,
        deleted=pod.phase == "Terminating",
        usage_milli=None if not math.isfinite(usage) else round(usage * 1000),
        metric_timestamp_s=now_s,
        metric_window_s=window_s,
        request_milli=None if request is None else round(request * 1000),
    )


def pod_gpu_util(pods: Sequence[PodMetrics], dcgm_util_pct: float, n_gpus: float) -> list[float]:
    """Per-pod GPU utilisation (%), HAMi-style; see the module docstring."""
    own = [getattr(p, "gpu_util", math.nan) for p in pods]
    if own and all(math.isfinite(v) for v in own):
        return [float(v) for v in own]
    rps = [p.rps if math.isfinite(p.rps) else math.nan for p in pods]
    total = sum(r for r in rps if math.isfinite(r))
    if not math.isfinite(dcgm_util_pct):
        return [math.nan] * len(pods)
    busy = dcgm_util_pct * n_gpus
    return [
        math.nan if not math.isfinite(r) else (busy * r / total if total > 0 else 0.0) for r in rps
    ]


class HpaPolicy(BaselinePolicy):
    """An autoscaling/v2 HPA on the Triton Deployment (see the module docstring).

    Arguments: ``metric`` (one of :data:`METRICS`), ``target`` (defaults in
    :data:`DEFAULT_TARGETS`), ``gpucores`` (the pods' share, set once; None: keep the
    Deployment's), ``min_replicas``/``max_replicas`` (None: the env's, 1 and
    8), ``scale_down_window_s`` (``behavior.scaleDown.stabilizationWindowSeconds``; None:
    the controller's 300 s), ``tolerance`` (0.1), ``scale_up``/``scale_down`` (full
    :class:`ScalingRules`, overriding the window argument), ``behavior`` (False: the HPA
    has no ``spec.behavior``, as ``kubectl autoscale`` creates it, and the controller takes
    its legacy path: at most max(2 x current, 4) replicas per sync, the highest
    recommendation of the window; the window is then the controller's flag).
    """

    name = "hpa"

    def __init__(
        self,
        metric: str = "cpu",
        target: float | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        scale_down_window_s: int | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        scale_up: ScalingRules | None = None,
        scale_down: ScalingRules | None = None,
        gpucores: int | None = None,
        behavior: bool = True,
    ) -> None:
        super().__init__()
        if metric not in METRICS:
            raise ConfigError(
                f"unknown HPA metric {metric!r}{suggest(metric, METRICS)}; available: {', '.join(METRICS)}"
            )
        self.metric = metric
        self.target = float(DEFAULT_TARGETS[metric] if target is None else target)
        if not (math.isfinite(self.target) and self.target > 0):
            raise ConfigError(f"HPA target must be a positive number, got {target!r}")
        self.behavior = bool(behavior)
        self._window_flag = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S
        if not self.behavior:  # no spec.behavior: the window is the controller's flag
            if scale_up is not None or scale_down is not None:
                raise ConfigError("an HPA without behavior takes no scale_up/scale_down rules")
            if scale_down_window_s is not None:
                self._window_flag = int(scale_down_window_s)
        elif scale_down is None and scale_down_window_s is not None:
            scale_down = ScalingRules(stabilization_window_s=int(scale_down_window_s))
        self.gpucores = None if gpucores is None else int(gpucores)
        self._limits = (min_replicas, max_replicas)
        self._rules = (scale_up, scale_down, tolerance)
        self.spec: HpaSpec | None = None
        self.history = HpaHistory()

    def bind(self, env: Any) -> HpaPolicy:
        super().bind(env)
        lo, hi = self._limits
        up, down, tolerance = self._rules
        c = self.config
        if self.gpucores is not None and self.gpucores not in c.share_levels:
            raise ConfigError(
                f"HPA gpucores {self.gpucores} is not one of the env's share_levels "
                f"{list(c.share_levels)}"
            )
        self.spec = HpaSpec(
            max_replicas=c.max_replicas if hi is None else hi,
            min_replicas=c.min_replicas if lo is None else lo,
            scale_up=up,
            scale_down=down,
            tolerance=tolerance,
            downscale_stabilization_window_s=self._window_flag,
            has_behavior=self.behavior,
        )
        return self

    def reset(self) -> None:
        super().reset()
        self.history = HpaHistory()

    def decide(self, now_s: float) -> Desired:
        dep = self.deployment()
        if self.gpucores is not None:
            rolling = roll_share_first(self.backend, Desired(dep.spec_replicas, self.gpucores))
            if rolling.gpucores != dep.gpucores or dep.rollout_in_progress:
                return rolling  # the share is set first; the HPA syncs once it is done
        current = dep.spec_replicas
        proposal = self.metric_proposal(now_s, current)
        wanted = None if proposal is None else proposal.replicas
        replicas, self.history = hpa_step(self.spec, self.history, current, wanted, now_s)
        applied = reachable_replicas(self.config, current, replicas)
        if applied != replicas:
            self.history = _correct_last_event(self.history, current, applied, now_s)
        self.status = {
            "metric_value": math.nan if proposal is None else _metric_value(self.metric, proposal),
            "metric_replicas": math.nan if wanted is None else float(wanted),
            "desired_replicas": float(replicas),
        }
        return Desired(replicas, dep.gpucores)

    def metric_proposal(self, now_s: float, current: int) -> ReplicaProposal | None:
        """The replica calculator's proposal, or None when the sync fails (no metrics)."""
        pods = self.backend.pod_metrics()
        window = self.config.decision_interval_s
        try:
            if self.metric == "cpu":
                samples = [
                    pod_sample(p, p.cpu_cores, p.cpu_request_cores, now_s, window) for p in pods
                ]
                return resource_replicas(
                    samples, current, round(self.target), now_s, tolerances=self.spec.tolerances()
                )
            values = self._pod_values(pods, now_s)
            samples = [
                pod_sample(p, v, None, now_s, window) for p, v in zip(pods, values, strict=True)
            ]
            return plain_metric_replicas(
                samples,
                current,
                round(self.target * 1000),
                now_s,
                tolerances=self.spec.tolerances(),
            )
        except HpaMetricsError:
            return None

    def _pod_values(self, pods: Sequence[PodMetrics], now_s: float) -> list[float]:
        if self.metric in ("rps", "queue_ms", "inflight"):
            return [getattr(p, self.metric) for p in pods]
        dcgm = self.backend.observe(self.config.rate_window_s).get("gpu_util", math.nan)
        return pod_gpu_util(pods, dcgm, self.backend.total_gpus)

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        down = spec.scale_down_rules().stabilization_window_s if spec else None
        return {
            "name": self.name,
            "metric": self.metric,
            "target": self.target,
            "min_replicas": spec.min_replicas if spec else None,
            "max_replicas": spec.max_replicas if spec else None,
            "scale_down_window_s": down,
            "gpucores": self.gpucores,
            "behavior": self.behavior,
        }


def _metric_value(metric: str, proposal: ReplicaProposal) -> float:
    """The figure ``kubectl get hpa`` shows: utilisation % for CPU, the average otherwise."""
    if metric == "cpu":
        return float(proposal.utilization_pct)
    return proposal.usage_milli / 1000.0


def _correct_last_event(
    history: HpaHistory, current: int, applied: int, now_s: float
) -> HpaHistory:
    """Make the scale event recorded at ``now_s`` the change the env can apply this step
    (the rate limits then count what really happened, as the controller's do)."""
    field = "scale_up_events" if applied > current else "scale_down_events"
    events = tuple(
        dataclasses.replace(e, replica_change=abs(applied - current))
        if e.timestamp_s == now_s
        else e
        for e in getattr(history, field)
    )
    return dataclasses.replace(history, **{field: events})
