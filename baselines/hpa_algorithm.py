"""The Kubernetes HPA controller's replica arithmetic, as pure functions.

A Python port of the decisions the Horizontal Pod Autoscaler controller makes in
kubernetes/kubernetes ``pkg/controller/podautoscaler`` (v1.33+: per-direction
tolerances, autoscaling/v2 behaviours). Numbers and small frozen dataclasses go in,
numbers come out: no clock (``now_s`` is an argument), no globals, no I/O. The
controller's per-HPA memory (recent recommendations, recent scale events) is an
:class:`HpaHistory` value that the caller keeps and passes back on the next sync.

Which Go function each Python function mirrors:

=========================================================  ==========================================
Go (``replica_calculator.go``, ``metrics/utilization.go``)  Python
=========================================================  ==========================================
``Tolerances.isWithin``                                     :meth:`Tolerances.is_within`
``groupPods``                                               :func:`group_pods`
``GetResourceUtilizationRatio``                             :func:`resource_utilization_ratio`
``GetMetricUsageRatio``                                     :func:`metric_usage_ratio`
``GetResourceReplicas`` (+ ``removeMetricsForPods``)        :func:`resource_replicas`
``calcPlainMetricReplicas`` (``GetMetricReplicas``)         :func:`plain_metric_replicas`
=========================================================  ==========================================

=========================================================  ==========================================
Go (``horizontal.go``, ``apis/autoscaling/v2/defaults.go``)  Python
=========================================================  ==========================================
``GenerateHPAScaleUpRules`` / ``GenerateHPAScaleDownRules``  :func:`generate_scale_up_rules` / ``_down_``
``recordInitialRecommendation``                             :func:`record_initial_recommendation`
``stabilizeRecommendationWithBehaviors``                    :func:`stabilize_recommendation_with_behaviors`
``getReplicasChangePerPeriod``                              :func:`replicas_change_per_period`
``calculateScaleUpLimitWithScalingRules``                   :func:`scale_up_limit`
``calculateScaleDownLimitWithBehaviors``                    :func:`scale_down_limit`
``convertDesiredReplicasWithBehaviorRate``                  :func:`convert_desired_replicas_with_behavior_rate`
``normalizeDesiredReplicasWithBehaviors``                   :func:`normalize_desired_replicas_with_behaviors`
``normalizeDesiredReplicas`` (no ``spec.behavior``)         :func:`normalize_desired_replicas`
``stabilizeRecommendation`` (no ``spec.behavior``)          :func:`stabilize_recommendation`
``convertDesiredReplicasWithRules`` (no ``spec.behavior``)  :func:`convert_desired_replicas_with_rules`
``calculateScaleUpLimit`` (no ``spec.behavior``)            :func:`calculate_scale_up_limit`
``markScaleEventsOutdated`` + ``storeScaleEvent``           :func:`store_scale_event`, :func:`record_scale_event`
``reconcileAutoscaler`` (the replica decision only)         :func:`hpa_step`
=========================================================  ==========================================

Units: replica counts are ints; times are seconds on any clock the caller likes;
metric values are integer milli-units as the metrics APIs report them (CPU in
millicores, a custom metric of 15 as 15000); utilisation is integer percent of request.
Comparisons of times are strict, as Go's ``Before``/``After`` are; integer divisions
truncate, as Go's int64 division does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from k8s_gpu_rl.errors import ConfigError, K8sGpuRlError

DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_CPU_INITIALIZATION_PERIOD_S = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
DEFAULT_INITIAL_READINESS_DELAY_S = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
# --horizontal-pod-autoscaler-downscale-stabilization
DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S = 300
DEFAULT_SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period
SCALE_UP_LIMIT_FACTOR = 2.0  # horizontal.go scaleUpLimitFactor (legacy path, no spec.behavior)
SCALE_UP_LIMIT_MINIMUM = 4.0  # horizontal.go scaleUpLimitMinimum
_MAX_INT32 = 2**31 - 1
_MIN_INT32 = -(2**31)

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


class HpaMetricsError(K8sGpuRlError, RuntimeError):
    """The controller would fail this sync with this message and leave the scale as it is."""


def _go_div(numerator: int, denominator: int) -> int:
    """Integer division truncating toward zero, as Go's int64 ``/``."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


# ---------------------------------------------------------------- replica calculator


@dataclass(frozen=True)
class Tolerances:
    """Dead band around a usage ratio of 1 in which the controller keeps the replica count."""

    scale_down: float = DEFAULT_TOLERANCE
    """Fraction below 1 that is tolerated (no scale down while ratio >= 1 - scale_down)."""
    scale_up: float = DEFAULT_TOLERANCE
    """Fraction above 1 that is tolerated (no scale up while ratio <= 1 + scale_up)."""

    def __post_init__(self) -> None:
        for name in ("scale_down", "scale_up"):
            value = getattr(self, name)
            _require(value >= 0, f"tolerance {name} must be >= 0, got {value!r}")

    def is_within(self, usage_ratio: float) -> bool:
        return 1.0 - self.scale_down <= usage_ratio <= 1.0 + self.scale_up


DEFAULT_TOLERANCES = Tolerances()


@dataclass(frozen=True)
class PodSample:
    """One pod as the controller sees it: status from the pod lister, usage from a metrics API."""

    phase: PodPhase = "Running"
    """``status.phase``."""
    ready: bool | None = True
    """Status of the ``Ready`` condition (True/False); None when the pod has no such condition."""
    ready_transition_s: float = 0.0
    """``lastTransitionTime`` of the ``Ready`` condition."""
    start_time_s: float | None = 0.0
    """``status.startTime``; None when the kubelet has not started the pod."""
    deleted: bool = False
    """Whether the pod has a deletion timestamp (it is terminating)."""
    usage_milli: int | None = None
    """The pod's metric value (milli-units); None when the metrics API returned none for it."""
    metric_timestamp_s: float = 0.0
    """Timestamp of the metric sample."""
    metric_window_s: float = 60.0
    """Window the metric sample was averaged over."""
    request_milli: int | None = None
    """Sum of the containers' requests for the resource (resource metrics only); None if unset."""


@dataclass(frozen=True)
class PodGroups:
    """Indices into the pod sequence, grouped as ``groupPods`` does."""

    ready_count: int
    unready: frozenset[int]
    missing: frozenset[int]
    ignored: frozenset[int]


class ReplicaProposal(NamedTuple):
    """What the replica calculator returns for one metric."""

    replicas: int
    usage_milli: int
    """Average usage over the ready pods' samples (Go's raw utilization / usage)."""
    utilization_pct: int | None
    """Utilisation in percent of request (resource metrics only)."""


def group_pods(
    pods: Sequence[PodSample],
    resource_name: str,
    now_s: float,
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S,
    initial_readiness_delay_s: float = DEFAULT_INITIAL_READINESS_DELAY_S,
) -> PodGroups:
    """Sort pods into ready, unready, missing-metric and ignored, as ``groupPods``."""
    ready_count, unready, missing, ignored = 0, set(), set(), set()
    for index, pod in enumerate(pods):
        if pod.deleted or pod.phase == "Failed":
            ignored.add(index)
        elif pod.phase == "Pending":
            unready.add(index)
        elif pod.usage_milli is None:
            missing.add(index)
        elif resource_name == "cpu" and _cpu_sample_unready(
            pod, now_s, cpu_initialization_period_s, initial_readiness_delay_s
        ):
            unready.add(index)
        else:
            ready_count += 1
    return PodGroups(ready_count, frozenset(unready), frozenset(missing), frozenset(ignored))


def _cpu_sample_unready(pod: PodSample, now_s: float, init_s: float, delay_s: float) -> bool:
    if pod.ready is None or pod.start_time_s is None:
        return True
    if pod.start_time_s + init_s > now_s:  # still within the CPU initialisation period
        stale = pod.metric_timestamp_s < pod.ready_transition_s + pod.metric_window_s
        return pod.ready is False or stale
    # Afterwards only a pod that has never been ready is left out.
    return pod.ready is False and pod.start_time_s + delay_s > pod.ready_transition_s


def resource_utilization_ratio(
    samples: Sequence[tuple[int, int | None]], target_utilization_pct: int
) -> tuple[float, int, int]:
    """``(usage_milli, request_milli)`` samples to (usage ratio, utilisation %, raw average).

    A request of None marks a metric for a pod the lister does not know; it is skipped.
    """
    matched = [(usage, request) for usage, request in samples if request is not None]
    usage_total = sum(usage for usage, _ in matched)
    request_total = sum(request for _, request in matched)
    if request_total == 0:
        raise HpaMetricsError("no metrics returned matched known pods")
    utilization_pct = _go_div(usage_total * 100, request_total)
    raw_average = _go_div(usage_total, len(matched))
    return utilization_pct / target_utilization_pct, utilization_pct, raw_average


def metric_usage_ratio(usages_milli: Sequence[int], target_usage_milli: int) -> tuple[float, int]:
    """Per-pod usages to (usage ratio, average usage), as ``GetMetricUsageRatio``."""
    usage = _go_div(sum(usages_milli), len(usages_milli))
    return usage / target_usage_milli, usage


def _validate_calc_args(pods: Sequence[PodSample], current_replicas: int, target: int) -> None:
    _require(current_replicas >= 0, f"current_replicas must be >= 0, got {current_replicas!r}")
    _require(target > 0, f"target must be > 0, got {target!r}")
    if not pods:
        raise HpaMetricsError("no pods returned by selector while calculating replica count")


def _ready_indices(pods: Sequence[PodSample], groups: PodGroups) -> list[int]:
    dropped = groups.unready | groups.ignored  # removeMetricsForPods
    return [i for i, pod in enumerate(pods) if pod.usage_milli is not None and i not in dropped]


def _rebalanced_replicas(
    ratio: float, new_ratio: float, sample_count: int, current: int, tolerances: Tolerances
) -> int:
    """Second pass once missing/unready pods are filled in: keep ``current`` on any flip."""
    if tolerances.is_within(new_ratio) or ratio < 1.0 < new_ratio or ratio > 1.0 > new_ratio:
        return current
    replicas = math.ceil(new_ratio * sample_count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_replicas(
    pods: Sequence[PodSample],
    current_replicas: int,
    target_utilization_pct: int,
    now_s: float,
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    resource_name: str = "cpu",
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S,
    initial_readiness_delay_s: float = DEFAULT_INITIAL_READINESS_DELAY_S,
    orphan_usages_milli: Sequence[int] = (),
) -> ReplicaProposal:
    """Replicas for a resource utilisation target, as ``GetResourceReplicas``.

    ``orphan_usages_milli`` are samples the metrics API returned for pods the lister
    does not list (Go keeps them in the metrics map; they count in the final ``len``).
    """
    _validate_calc_args(pods, current_replicas, target_utilization_pct)
    groups = group_pods(
        pods, resource_name, now_s, cpu_initialization_period_s, initial_readiness_delay_s
    )
    ready = _ready_indices(pods, groups)
    samples = [(pods[i].usage_milli, pods[i].request_milli) for i in ready]
    samples += [(usage, None) for usage in orphan_usages_milli]
    if not samples:
        raise HpaMetricsError("did not receive metrics for targeted pods (pods might be unready)")
    if any(pod.request_milli is None for pod in pods):
        raise HpaMetricsError(f"missing request for {resource_name}")
    ratio, utilization, raw = resource_utilization_ratio(samples, target_utilization_pct)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(ratio):
            return ReplicaProposal(current_replicas, raw, utilization)
        return ReplicaProposal(math.ceil(ratio * groups.ready_count), raw, utilization)
    fallback_pct = max(100, target_utilization_pct)
    for i in sorted(groups.missing):
        request = pods[i].request_milli
        if ratio < 1.0:  # scale down: a missing pod is taken to use its request (or the target)
            samples.append((_go_div(request * fallback_pct, 100), request))
        elif ratio > 1.0:  # scale up: a missing pod is taken to use nothing
            samples.append((0, request))
    if scale_up_with_unready:
        samples += [(0, pods[i].request_milli) for i in sorted(groups.unready)]
    new_ratio = resource_utilization_ratio(samples, target_utilization_pct)[0]
    replicas = _rebalanced_replicas(ratio, new_ratio, len(samples), current_replicas, tolerances)
    return ReplicaProposal(replicas, raw, utilization)


def plain_metric_replicas(
    pods: Sequence[PodSample],
    current_replicas: int,
    target_usage_milli: int,
    now_s: float,
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    resource_name: str = "",
    cpu_initialization_period_s: float = DEFAULT_CPU_INITIALIZATION_PERIOD_S,
    initial_readiness_delay_s: float = DEFAULT_INITIAL_READINESS_DELAY_S,
    orphan_usages_milli: Sequence[int] = (),
) -> ReplicaProposal:
    """Replicas for an average-value-per-pod target, as ``calcPlainMetricReplicas``.

    Pods metrics pass ``resource_name=""`` (readiness then only excludes Pending pods);
    a resource metric with an AverageValue target passes its resource name.
    """
    _validate_calc_args(pods, current_replicas, target_usage_milli)
    groups = group_pods(
        pods, resource_name, now_s, cpu_initialization_period_s, initial_readiness_delay_s
    )
    usages = [pods[i].usage_milli for i in _ready_indices(pods, groups)]
    usages += list(orphan_usages_milli)
    if not usages:
        raise HpaMetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = metric_usage_ratio(usages, target_usage_milli)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(ratio):
            return ReplicaProposal(current_replicas, usage, None)
        return ReplicaProposal(math.ceil(ratio * groups.ready_count), usage, None)
    if groups.missing and ratio != 1.0:
        fill = target_usage_milli if ratio < 1.0 else 0
        usages += [fill] * len(groups.missing)
    if scale_up_with_unready:
        usages += [0] * len(groups.unready)
    new_ratio = metric_usage_ratio(usages, target_usage_milli)[0]
    replicas = _rebalanced_replicas(ratio, new_ratio, len(usages), current_replicas, tolerances)
    return ReplicaProposal(replicas, usage, None)


# ---------------------------------------------------------------- behaviour (autoscaling/v2)


@dataclass(frozen=True)
class ScalingPolicy:
    """One ``HPAScalingPolicy``: change at most ``value`` pods or percent per ``period_s``."""

    type: PolicyType
    value: int
    period_s: int

    def __post_init__(self) -> None:
        _require(
            self.type in ("Pods", "Percent"),
            f"policy type must be 'Pods' or 'Percent', got {self.type!r}",
        )
        _require(self.value > 0, f"policy value must be > 0, got {self.value!r}")
        _require(
            0 < self.period_s <= 1800,
            f"policy period_s must be in (0, 1800], got {self.period_s!r}",
        )


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``spec.behavior``; None fields are unset and take the API defaults."""

    stabilization_window_s: int | None = None
    select_policy: SelectPolicy | None = None
    policies: tuple[ScalingPolicy, ...] | None = None
    tolerance: float | None = None
    """Per-direction tolerance (HPAConfigurableTolerance); None: the controller's flag."""

    def __post_init__(self) -> None:
        window = self.stabilization_window_s
        _require(
            window is None or 0 <= window <= 3600,
            f"stabilization_window_s must be in [0, 3600], got {window!r}",
        )
        select = self.select_policy
        _require(
            select in (None, "Max", "Min", "Disabled"),
            f"select_policy must be Max, Min or Disabled, got {select!r}",
        )
        _require(self.policies != (), "policies must name at least one policy when set, got ()")
        _require(
            self.tolerance is None or self.tolerance >= 0,
            f"tolerance must be >= 0, got {self.tolerance!r}",
        )


DEFAULT_SCALE_UP_RULES = ScalingRules(
    stabilization_window_s=0,
    select_policy="Max",
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
)
DEFAULT_SCALE_DOWN_RULES = ScalingRules(
    stabilization_window_s=None,  # the controller's --horizontal-pod-autoscaler-downscale-stabilization
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


def _fill_rules(given: ScalingRules | None, defaults: ScalingRules) -> ScalingRules:
    if given is None:
        return defaults
    return ScalingRules(
        stabilization_window_s=defaults.stabilization_window_s
        if given.stabilization_window_s is None
        else given.stabilization_window_s,
        select_policy=given.select_policy or defaults.select_policy,
        policies=defaults.policies if given.policies is None else given.policies,
        tolerance=defaults.tolerance if given.tolerance is None else given.tolerance,
    )


def generate_scale_up_rules(rules: ScalingRules | None = None) -> ScalingRules:
    """Fill unset scale-up fields with the API defaults (``GenerateHPAScaleUpRules``)."""
    return _fill_rules(rules, DEFAULT_SCALE_UP_RULES)


def generate_scale_down_rules(rules: ScalingRules | None = None) -> ScalingRules:
    """Fill unset scale-down fields with the API defaults; the window may stay None."""
    return _fill_rules(rules, DEFAULT_SCALE_DOWN_RULES)


@dataclass(frozen=True)
class HpaSpec:
    """The parts of an autoscaling/v2 HPA and of the controller's flags that decide replicas."""

    max_replicas: int
    min_replicas: int = 1
    scale_up: ScalingRules | None = None
    """``spec.behavior.scaleUp``; unset fields take the API defaults."""
    scale_down: ScalingRules | None = None
    """``spec.behavior.scaleDown``; unset fields take the API defaults."""
    tolerance: float = DEFAULT_TOLERANCE
    """Controller flag; a direction's ``ScalingRules.tolerance`` overrides it."""
    downscale_stabilization_window_s: int = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S
    """Controller flag; used when ``scale_down`` sets no stabilisation window."""
    has_behavior: bool = True
    """False: the object has no ``spec.behavior`` (what ``kubectl autoscale`` creates). The
    API server then fills in none, and the controller takes its legacy path
    (:func:`normalize_desired_replicas`): scale-up at most to max(2 x current, 4) per sync,
    the highest recommendation of the downscale window, no scale events; ``scale_up`` and
    ``scale_down`` must then be None."""

    def __post_init__(self) -> None:
        _require(self.min_replicas >= 0, f"min_replicas must be >= 0, got {self.min_replicas!r}")
        _require(
            self.max_replicas >= max(1, self.min_replicas),
            f"max_replicas must be >= 1 and >= min_replicas ({self.min_replicas}), got {self.max_replicas!r}",
        )
        _require(self.tolerance >= 0, f"tolerance must be >= 0, got {self.tolerance!r}")
        _require(
            self.has_behavior or (self.scale_up is None and self.scale_down is None),
            "an HPA without spec.behavior has no scale_up/scale_down rules",
        )

    def scale_up_rules(self) -> ScalingRules:
        return generate_scale_up_rules(self.scale_up)

    def scale_down_rules(self) -> ScalingRules:
        """Defaults filled in, window from the controller flag (``maybeInitScaleDownStabilizationWindow``)."""
        rules = generate_scale_down_rules(self.scale_down)
        if rules.stabilization_window_s is None:
            rules = replace(rules, stabilization_window_s=self.downscale_stabilization_window_s)
        return rules

    def tolerances(self) -> Tolerances:
        down, up = self.scale_down_rules().tolerance, self.scale_up_rules().tolerance
        return Tolerances(
            scale_down=self.tolerance if down is None else down,
            scale_up=self.tolerance if up is None else up,
        )


@dataclass(frozen=True)
class Recommendation:
    """An unstabilised recommendation the controller remembers (``timestampedRecommendation``)."""

    replicas: int
    timestamp_s: float


@dataclass(frozen=True)
class ScaleEvent:
    """A rescale the controller remembers (``timestampedScaleEvent``); change is non-negative."""

    replica_change: int
    timestamp_s: float
    outdated: bool = False


@dataclass(frozen=True)
class HpaHistory:
    """The controller's per-HPA memory; start with ``HpaHistory()`` and thread it through syncs."""

    recommendations: tuple[Recommendation, ...] | None = None
    """None until the first sync records the current size (Go's nil slice)."""
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()


def record_initial_recommendation(
    history: HpaHistory, current_replicas: int, now_s: float
) -> HpaHistory:
    """On the first sync, remember the current size as a recommendation."""
    if history.recommendations is not None:
        return history
    return replace(history, recommendations=(Recommendation(current_replicas, now_s),))


def stabilize_recommendation_with_behaviors(
    recommendations: Sequence[Recommendation],
    current_replicas: int,
    desired_replicas: int,
    scale_up_window_s: float,
    scale_down_window_s: float,
    now_s: float,
) -> tuple[int, tuple[Recommendation, ...]]:
    """Clamp ``current`` between the lowest recent (up) and highest recent (down) recommendation.

    Returns the stabilised replicas and the recommendations with ``desired`` recorded:
    it replaces the last entry older than both windows, or is appended.
    """
    up_cutoff, down_cutoff = now_s - scale_up_window_s, now_s - scale_down_window_s
    up_recommendation = down_recommendation = desired_replicas
    old_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp_s > up_cutoff:
            up_recommendation = min(rec.replicas, up_recommendation)
        if rec.timestamp_s > down_cutoff:
            down_recommendation = max(rec.replicas, down_recommendation)
        if rec.timestamp_s < up_cutoff and rec.timestamp_s < down_cutoff:
            old_index = index
    stabilized = min(max(current_replicas, up_recommendation), down_recommendation)
    return stabilized, _record(recommendations, old_index, Recommendation(desired_replicas, now_s))


def _record(
    recommendations: Sequence[Recommendation], old_index: int | None, new: Recommendation
) -> tuple[Recommendation, ...]:
    """``new`` in place of the entry at ``old_index`` (one too old to matter), else appended:
    how both of the controller's stabilisers keep their memory bounded."""
    kept = list(recommendations)
    if old_index is None:
        kept.append(new)
    else:
        kept[old_index] = new
    return tuple(kept)


def replicas_change_per_period(period_s: float, events: Sequence[ScaleEvent], now_s: float) -> int:
    """Sum of the replica changes of events strictly newer than ``now_s - period_s``."""
    return sum(event.replica_change for event in events if event.timestamp_s > now_s - period_s)


def _period_start_replicas(
    current: int,
    policy: ScalingPolicy,
    up: Sequence[ScaleEvent],
    down: Sequence[ScaleEvent],
    now_s: float,
) -> int:
    added = replicas_change_per_period(policy.period_s, up, now_s)
    deleted = replicas_change_per_period(policy.period_s, down, now_s)
    return current - added + deleted


def _resolved_policies(rules: ScalingRules) -> tuple[ScalingPolicy, ...]:
    _require(
        rules.select_policy is not None and rules.policies is not None,
        f"scaling rules must be filled in by generate_scale_*_rules first, got {rules!r}",
    )
    return rules.policies  # type: ignore[return-value]


def scale_up_limit(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now_s: float,
) -> int:
    """Most replicas the scale-up policies allow now (``calculateScaleUpLimitWithScalingRules``)."""
    policies = _resolved_policies(rules)
    if rules.select_policy == "Disabled":
        return current_replicas
    proposals = []
    for policy in policies:
        start = _period_start_replicas(
            current_replicas, policy, scale_up_events, scale_down_events, now_s
        )
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small percentage would never add a pod
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    if rules.select_policy == "Min":
        return min(proposals, default=_MAX_INT32)
    return max(proposals, default=_MIN_INT32)


def scale_down_limit(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now_s: float,
) -> int:
    """Fewest replicas the scale-down policies allow now (``calculateScaleDownLimitWithBehaviors``)."""
    policies = _resolved_policies(rules)
    if rules.select_policy == "Disabled":
        return current_replicas
    proposals = []
    for policy in policies:
        start = _period_start_replicas(
            current_replicas, policy, scale_up_events, scale_down_events, now_s
        )
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:  # Go's int32(float64) conversion truncates toward zero
            proposals.append(int(start * (1 - policy.value / 100)))
    if rules.select_policy == "Min":
        return max(proposals, default=_MIN_INT32)
    return min(proposals, default=_MAX_INT32)


def convert_desired_replicas_with_behavior_rate(
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    scale_up_rules: ScalingRules,
    scale_down_rules: ScalingRules,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    now_s: float,
) -> tuple[int, str]:
    """Apply the rate policies and min/max; returns replicas and the ScalingLimited reason."""
    events = (scale_up_events, scale_down_events)
    if desired_replicas > current_replicas:
        limit = max(
            scale_up_limit(current_replicas, *events, scale_up_rules, now_s), current_replicas
        )
        allowed, reason = (
            (limit, "ScaleUpLimit") if max_replicas > limit else (max_replicas, "TooManyReplicas")
        )
        if desired_replicas > allowed:
            return allowed, reason
    elif desired_replicas < current_replicas:
        limit = min(
            scale_down_limit(current_replicas, *events, scale_down_rules, now_s), current_replicas
        )
        allowed, reason = (
            (limit, "ScaleDownLimit") if min_replicas < limit else (min_replicas, "TooFewReplicas")
        )
        if desired_replicas < allowed:
            return allowed, reason
    return desired_replicas, "DesiredWithinRange"


def normalize_desired_replicas_with_behaviors(
    spec: HpaSpec, history: HpaHistory, current_replicas: int, desired_replicas: int, now_s: float
) -> tuple[int, HpaHistory]:
    """Stabilise, then rate-limit and clamp; returns replicas and the updated history."""
    up, down = spec.scale_up_rules(), spec.scale_down_rules()
    stabilized, recommendations = stabilize_recommendation_with_behaviors(
        history.recommendations or (),
        current_replicas,
        desired_replicas,
        up.stabilization_window_s,
        down.stabilization_window_s,
        now_s,
    )
    replicas, _ = convert_desired_replicas_with_behavior_rate(
        current_replicas,
        stabilized,
        spec.min_replicas,
        spec.max_replicas,
        up,
        down,
        history.scale_up_events,
        history.scale_down_events,
        now_s,
    )
    return replicas, replace(history, recommendations=recommendations)


# --- the legacy path: an HPA without spec.behavior ---------------------------------------


def stabilize_recommendation(
    recommendations: Sequence[Recommendation],
    desired_replicas: int,
    window_s: float,
    now_s: float,
) -> tuple[int, tuple[Recommendation, ...]]:
    """The highest recommendation not older than ``window_s`` (``stabilizeRecommendation``).

    Returns it and the recommendations with ``desired`` recorded: it replaces the last
    entry older than the window (Go's ``Before(cutoff)``), or is appended.
    """
    cutoff = now_s - window_s
    highest = desired_replicas
    old_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp_s < cutoff:
            old_index = index
        elif rec.replicas > highest:
            highest = rec.replicas
    return highest, _record(recommendations, old_index, Recommendation(desired_replicas, now_s))


def calculate_scale_up_limit(
    current_replicas: int,
    factor: float = SCALE_UP_LIMIT_FACTOR,
    minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> int:
    """Most replicas one legacy sync may scale up to: ``int32(max(factor x current, minimum))``."""
    return int(max(factor * current_replicas, minimum))


def convert_desired_replicas_with_rules(
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    factor: float = SCALE_UP_LIMIT_FACTOR,
    minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, str]:
    """Clamp to [min, min(max, scale-up limit)]; returns replicas and the condition reason."""
    limit = calculate_scale_up_limit(current_replicas, factor, minimum)
    if max_replicas > limit:
        allowed, reason = limit, "ScaleUpLimit"
    else:
        allowed, reason = max_replicas, "TooManyReplicas"
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired_replicas > allowed:
        return allowed, reason
    return desired_replicas, "DesiredWithinRange"


def normalize_desired_replicas(
    spec: HpaSpec,
    history: HpaHistory,
    current_replicas: int,
    desired_replicas: int,
    now_s: float,
    factor: float = SCALE_UP_LIMIT_FACTOR,
    minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, HpaHistory]:
    """The legacy path (``normalizeDesiredReplicas``): stabilise over the controller's
    downscale window, then clamp with the fixed scale-up limit."""
    stabilized, recommendations = stabilize_recommendation(
        history.recommendations or (),
        desired_replicas,
        spec.downscale_stabilization_window_s,
        now_s,
    )
    replicas, _ = convert_desired_replicas_with_rules(
        current_replicas, stabilized, spec.min_replicas, spec.max_replicas, factor, minimum
    )
    return replicas, replace(history, recommendations=recommendations)


def store_scale_event(
    events: Sequence[ScaleEvent], longest_period_s: float, replica_change: int, now_s: float
) -> tuple[ScaleEvent, ...]:
    """Mark events older than the longest policy period outdated; the new one replaces the last."""
    cutoff = now_s - longest_period_s
    marked = [replace(e, outdated=True) if e.timestamp_s < cutoff else e for e in events]
    outdated = [index for index, event in enumerate(marked) if event.outdated]
    new = ScaleEvent(replica_change, now_s)
    if outdated:
        marked[outdated[-1]] = new
    else:
        marked.append(new)
    return tuple(marked)


def record_scale_event(
    spec: HpaSpec, history: HpaHistory, previous_replicas: int, new_replicas: int, now_s: float
) -> HpaHistory:
    """Remember a rescale in the direction's event list (``storeScaleEvent``)."""
    up = new_replicas > previous_replicas
    rules = spec.scale_up_rules() if up else spec.scale_down_rules()
    longest_period_s = max((p.period_s for p in _resolved_policies(rules)), default=0)
    change = abs(new_replicas - previous_replicas)
    if up:
        events = store_scale_event(history.scale_up_events, longest_period_s, change, now_s)
        return replace(history, scale_up_events=events)
    events = store_scale_event(history.scale_down_events, longest_period_s, change, now_s)
    return replace(history, scale_down_events=events)


def hpa_step(
    spec: HpaSpec,
    history: HpaHistory,
    current_replicas: int,
    metric_desired_replicas: int | None,
    now_s: float,
) -> tuple[int, HpaHistory]:
    """One controller sync: the new replica count and the history to pass to the next sync.

    The behaviour path (:func:`normalize_desired_replicas_with_behaviors`) when the HPA has
    a ``spec.behavior``, the legacy one (:func:`normalize_desired_replicas`) when it has not.

    ``metric_desired_replicas`` is the largest proposal over the HPA's metrics (e.g. a
    :func:`resource_replicas` result), or None when every metric failed this sync.
    """
    _require(current_replicas >= 0, f"current_replicas must be >= 0, got {current_replicas!r}")
    history = record_initial_recommendation(history, current_replicas, now_s)
    if current_replicas == 0 and spec.min_replicas != 0:
        return current_replicas, history  # autoscaling is disabled for a target scaled to zero
    if current_replicas > spec.max_replicas:
        desired = spec.max_replicas
    elif current_replicas < spec.min_replicas:
        desired = spec.min_replicas
    elif metric_desired_replicas is None:
        return current_replicas, history
    else:
        normalize = (
            normalize_desired_replicas_with_behaviors
            if spec.has_behavior
            else normalize_desired_replicas
        )
        desired, history = normalize(
            spec, history, current_replicas, max(metric_desired_replicas, 0), now_s
        )
    if desired != current_replicas and spec.has_behavior:  # Go stores no events without one
        history = record_scale_event(spec, history, current_replicas, desired, now_s)
    return desired, history
