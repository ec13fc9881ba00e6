"""The HPA port against the Kubernetes controller's own unit tests, case by case.

Each parametrised case carries the Go test (and subtest) it comes from in its id, with the
inputs and expected numbers the Go test uses. Sources (kubernetes/kubernetes):
``pkg/controller/podautoscaler/replica_calculator_test.go`` (v1.35 layout, where the old
``TestReplicaCalcScaleUp``... functions became subtests of ``TestReplicaCalcResourceScale``),
``pkg/controller/podautoscaler/horizontal_test.go`` and
``pkg/apis/autoscaling/v2/defaults_test.go``.

Time: Go's ``time.Now()`` is ``NOW_S`` and Go's zero ``time.Time`` (what the test harness
puts in pod start times, Ready transition times and metric timestamps) is ``0.0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from k8s_gpu_rl.baselines.hpa_algorithm import (
    DEFAULT_TOLERANCES,
    HpaHistory,
    HpaMetricsError,
    HpaSpec,
    PodSample,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    Tolerances,
    convert_desired_replicas_with_behavior_rate,
    generate_scale_down_rules,
    generate_scale_up_rules,
    group_pods,
    hpa_step,
    plain_metric_replicas,
    record_scale_event,
    replicas_change_per_period,
    resource_replicas,
    scale_down_limit,
    scale_up_limit,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
)
from k8s_gpu_rl.errors import ConfigError

NOW_S = 1_000_000.0
HOT_S = NOW_S  # hotCPUCreationTime()
COOL_S = NOW_S - 180.0  # coolCPUCreationTime()
CPU_INIT_S = 120.0  # defaultTestingCPUInitializationPeriod
READINESS_DELAY_S = 10.0  # defaultTestingDelayOfInitialReadinessStatus
CONTAINERS = (
    2  # numContainersPerPod: each pod's request and usage are twice the per-container value
)


# ---------------------------------------------------------------- replica calculator harness


@dataclass(frozen=True)
class Fixture:
    """The Go harness's replicaCalcTestCase: per-pod lists, defaults as ``newFakePodClient``."""

    current: int
    levels: tuple[int, ...]
    requests_milli: tuple[int, ...] = ()
    readiness: tuple[bool, ...] = ()
    start_times_s: tuple[float, ...] = ()
    phases: tuple[str, ...] = ()
    deleted: tuple[bool, ...] = ()
    per_container: bool = True
    """Resource tests: levels and requests are per container (pod value = 2x)."""
    metric_pod_names: tuple[str, ...] = ()

    def pods(self) -> tuple[tuple[PodSample, ...], tuple[int, ...]]:
        count = max(self.current, len(self.phases))
        scale = CONTAINERS if self.per_container else 1
        usages = [scale * level for level in self.levels]
        known = [
            i
            for i in range(len(usages))
            if not self.metric_pod_names or i >= len(self.metric_pod_names)
        ]
        pods = tuple(
            PodSample(
                phase=self.phases[i] if self.phases else "Running",
                ready=self.readiness[i] if i < len(self.readiness) else True,
                start_time_s=self.start_times_s[i] if self.start_times_s else 0.0,
                deleted=bool(self.deleted) and self.deleted[i],
                usage_milli=usages[i] if i < len(usages) and i in known else None,
                request_milli=scale * self.requests_milli[i]
                if i < len(self.requests_milli)
                else None,
            )
            for i in range(count)
        )
        orphans = tuple(usages[i] for i in range(len(usages)) if i >= count or i not in known)
        return pods, orphans


def _resource(fx: Fixture, target_pct: int, tolerances: Tolerances = DEFAULT_TOLERANCES):
    pods, orphans = fx.pods()
    return resource_replicas(
        pods,
        fx.current,
        target_pct,
        NOW_S,
        tolerances=tolerances,
        cpu_initialization_period_s=CPU_INIT_S,
        initial_readiness_delay_s=READINESS_DELAY_S,
        orphan_usages_milli=orphans,
    )


def _plain(fx: Fixture, target_milli: int, tolerances: Tolerances = DEFAULT_TOLERANCES):
    pods, orphans = fx.pods()
    return plain_metric_replicas(
        pods,
        fx.current,
        target_milli,
        NOW_S,
        tolerances=tolerances,
        cpu_initialization_period_s=CPU_INIT_S,
        initial_readiness_delay_s=READINESS_DELAY_S,
        orphan_usages_milli=orphans,
    )


T, F = True, False
R, P, X = "Running", "Pending", "Failed"
ONE_CORE = 1000


def cores(*values: float) -> tuple[int, ...]:
    return tuple(round(v * 1000) for v in values)


# (fixture, target %, tolerances, expected replicas, expected utilisation %, expected raw milli)
RESOURCE_CASES = [
    pytest.param(
        Fixture(3, (300, 500, 700), (ONE_CORE,) * 3),
        30,
        Tolerances(),
        5,
        50,
        1000,
        id="TestReplicaCalcResourceScale/scale_up",
    ),
    pytest.param(
        Fixture(3, (300, 500, 700), (ONE_CORE,) * 3, readiness=(F, T, T)),
        30,
        Tolerances(),
        4,
        60,
        1200,
        id="TestReplicaCalcResourceScale/scale_up:_unready_pod_scales_less",
    ),
    pytest.param(
        Fixture(3, (300, 500, 700), (ONE_CORE,) * 3, start_times_s=(HOT_S, COOL_S, COOL_S)),
        30,
        Tolerances(),
        4,
        60,
        1200,
        id="TestReplicaCalcResourceScale/scale_up:_hot-CPU_pod_scales_less",
    ),
    pytest.param(
        Fixture(3, (400, 500, 700), (ONE_CORE,) * 3, readiness=(T, F, F)),
        30,
        Tolerances(),
        3,
        40,
        800,
        id="TestReplicaCalcResourceScale/no_scale:_unready_pods_ignored",
    ),
    pytest.param(
        Fixture(
            3,
            (400, 500, 700),
            (ONE_CORE,) * 3,
            readiness=(T, F, F),
            start_times_s=(COOL_S, HOT_S, HOT_S),
        ),
        30,
        Tolerances(),
        3,
        40,
        800,
        id="TestReplicaCalcResourceScale/no_scale:_hot-CPU_pods_ignored",
    ),
    pytest.param(
        Fixture(2, (500, 700), (ONE_CORE,) * 4, readiness=(T, T, F, F), phases=(R, R, X, X)),
        30,
        Tolerances(),
        4,
        60,
        1200,
        id="TestReplicaCalcResourceScale/scale_up:_failed_pods_ignored",
    ),
    pytest.param(
        Fixture(
            2,
            (500, 700),
            (ONE_CORE,) * 4,
            readiness=(T, T, F, F),
            phases=(R,) * 4,
            deleted=(F, F, T, T),
        ),
        30,
        Tolerances(),
        4,
        60,
        1200,
        id="TestReplicaCalcResourceScale/scale_up:_pods_being_deleted_are_ignored",
    ),
    pytest.param(
        Fixture(5, (100, 300, 500, 250, 250), (ONE_CORE,) * 5),
        50,
        Tolerances(),
        3,
        28,
        560,
        id="TestReplicaCalcResourceScale/scale_down",
    ),
    pytest.param(
        Fixture(5, (100, 300, 500, 250, 250), (ONE_CORE,) * 5, readiness=(T, T, T, F, F)),
        50,
        Tolerances(),
        2,
        30,
        600,
        id="TestReplicaCalcResourceScale/scale_down:_exclude_unready_pods",
    ),
    pytest.param(
        Fixture(5, (100,), (ONE_CORE,) * 5, readiness=(T, F, F, F, F), phases=(R, P, P, P, P)),
        50,
        Tolerances(),
        1,
        10,
        200,
        id="TestReplicaCalcResourceScale/scale_down:_exclude_unscheduled_pods",
    ),
    pytest.param(
        Fixture(
            5,
            (100, 300, 500, 250, 250),
            (ONE_CORE,) * 5,
            start_times_s=(COOL_S,) * 3 + (HOT_S,) * 2,
        ),
        50,
        Tolerances(),
        2,
        30,
        600,
        id="TestReplicaCalcResourceScale/scale_down:_ignore_hot-CPU_pods",
    ),
    pytest.param(
        Fixture(
            5,
            (100, 300, 500, 250, 250),
            (ONE_CORE,) * 7,
            readiness=(T,) * 5 + (F, F),
            phases=(R,) * 5 + (X, X),
        ),
        50,
        Tolerances(),
        3,
        28,
        560,
        id="TestReplicaCalcResourceScale/scale_down:_failed_pods_ignored",
    ),
    pytest.param(
        Fixture(
            5,
            (100, 300, 500, 250, 250),
            (ONE_CORE,) * 7,
            readiness=(T,) * 5 + (F, F),
            phases=(R,) * 7,
            deleted=(F,) * 5 + (T, T),
        ),
        50,
        Tolerances(),
        3,
        28,
        560,
        id="TestReplicaCalcResourceScale/scale_down:_pods_being_deleted_are_ignored",
    ),
    pytest.param(
        Fixture(3, (1010, 1030, 1020), cores(0.9, 1.0, 1.1)),
        100,
        Tolerances(),
        3,
        102,
        2040,
        id="TestReplicaCalcTolerance",
    ),
    pytest.param(
        Fixture(3, (909, 1010, 1111), cores(0.9, 1.0, 1.1)),
        100,
        Tolerances(0.0, 0.0),
        4,
        101,
        2020,
        id="TestReplicaCalcConfigurableTolerance/Outside_of_a_0%_tolerance",
    ),
    pytest.param(
        Fixture(3, (1890, 1910, 1900), cores(0.9, 1.0, 1.1)),
        100,
        Tolerances(0.1, 2.0),
        3,
        190,
        3800,
        id="TestReplicaCalcConfigurableTolerance/Within_a_200%_scale-up_tolerance",
    ),
    pytest.param(
        Fixture(3, (1100, 1080, 1090), cores(0.9, 1.0, 1.1)),
        100,
        Tolerances(2.0, 0.08),
        4,
        109,
        2180,
        id="TestReplicaCalcConfigurableTolerance/Outside_8%_scale-up_tolerance",
    ),
    pytest.param(
        Fixture(3, (660, 640, 650), cores(0.9, 1.0, 1.1)),
        100,
        Tolerances(0.36, 0.1),
        3,
        65,
        1300,
        id="TestReplicaCalcConfigurableTolerance/Within_a_36%_scale-down_tolerance",
    ),
    pytest.param(
        Fixture(3, (660, 640, 650), cores(0.9, 1.0, 1.1)),
        100,
        Tolerances(0.34, 0.1),
        2,
        65,
        1300,
        id="TestReplicaCalcConfigurableTolerance/Outside_a_34%_scale-down_tolerance",
    ),
    pytest.param(
        Fixture(4, (4000, 9500, 3000, 7000, 3200, 2000), (ONE_CORE,) * 4),
        100,
        Tolerances(),
        24,
        587,
        11750,
        id="TestReplicaCalcSuperfluousMetrics",
    ),
    pytest.param(
        Fixture(4, (400, 95), (ONE_CORE,) * 4),
        100,
        Tolerances(),
        3,
        24,
        495,
        id="TestReplicaCalcMissingMetrics",
    ),
    pytest.param(
        Fixture(2, (1000,), (ONE_CORE,) * 2),
        100,
        Tolerances(),
        2,
        100,
        2000,
        id="TestReplicaCalcMissingMetricsNoChangeEq",
    ),
    pytest.param(
        Fixture(2, (1900,), (ONE_CORE,) * 2),
        100,
        Tolerances(),
        2,
        190,
        3800,
        id="TestReplicaCalcMissingMetricsNoChangeGt",
    ),
    pytest.param(
        Fixture(2, (600,), (ONE_CORE,) * 2),
        100,
        Tolerances(),
        2,
        60,
        1200,
        id="TestReplicaCalcMissingMetricsNoChangeLt",
    ),
    pytest.param(
        Fixture(3, (100, 450), (ONE_CORE,) * 3, readiness=(F, T, T)),
        50,
        Tolerances(),
        3,
        45,
        900,
        id="TestReplicaCalcMissingMetricsUnreadyChange",
    ),
    pytest.param(
        Fixture(3, (100, 450), (ONE_CORE,) * 3, start_times_s=(HOT_S, COOL_S, COOL_S)),
        50,
        Tolerances(),
        3,
        45,
        900,
        id="TestReplicaCalcMissingMetricsHotCpuNoChange",
    ),
    pytest.param(
        Fixture(3, (100, 2000), (ONE_CORE,) * 3, readiness=(F, T, T)),
        50,
        Tolerances(),
        4,
        200,
        4000,
        id="TestReplicaCalcMissingMetricsUnreadyScaleUp",
    ),
    pytest.param(
        Fixture(
            3,
            (100, 2000),
            (ONE_CORE,) * 3,
            readiness=(F, T, T),
            start_times_s=(HOT_S, COOL_S, COOL_S),
        ),
        50,
        Tolerances(),
        4,
        200,
        4000,
        id="TestReplicaCalcMissingMetricsHotCpuScaleUp",
    ),
    pytest.param(
        Fixture(4, (100, 100, 100), (ONE_CORE,) * 4, readiness=(F, T, T, T)),
        50,
        Tolerances(),
        3,
        10,
        200,
        id="TestReplicaCalcMissingMetricsUnreadyScaleDown",
    ),
    pytest.param(
        Fixture(4, (200, 100, 100), cores(1.0, 1.0, 2.0, 2.0), readiness=(F, T, T, T)),
        300,
        Tolerances(),
        2,
        6,
        200,
        id="TestReplicaCalcMissingMetricsScaleDownTargetOver100",
    ),
    pytest.param(
        Fixture(2, (100, 100), (ONE_CORE,) * 3, phases=(R, R, R)),
        50,
        Tolerances(),
        2,
        10,
        200,
        id="TestReplicaCalcDuringRollingUpdateWithMaxSurge",
    ),
    # TestReplicaCalcComputedToleranceAlgImplementation: 10 pods using 150m per container with
    # requests around 300m; target = int32((1/(2*0.9) + .01) * 100) = 56 gives ceil(50/56*10) = 9,
    # then target = int32((1/(2*0.9) + .004) * 100) = 55 keeps 10 (50/55 is within tolerance).
    pytest.param(
        Fixture(10, (150,) * 10, (400, 200, 310, 290, 302, 298, 301, 299, 300, 300)),
        56,
        Tolerances(),
        9,
        50,
        300,
        id="TestReplicaCalcComputedToleranceAlgImplementation/scale",
    ),
    pytest.param(
        Fixture(10, (150,) * 10, (400, 200, 310, 290, 302, 298, 301, 299, 300, 300)),
        55,
        Tolerances(),
        10,
        50,
        300,
        id="TestReplicaCalcComputedToleranceAlgImplementation/no_scale",
    ),
]


@pytest.mark.parametrize(
    ("fx", "target", "tolerances", "replicas", "utilization", "raw"), RESOURCE_CASES
)
def test_resource_replicas_match_go(
    fx: Fixture, target: int, tolerances: Tolerances, replicas: int, utilization: int, raw: int
) -> None:
    proposal = _resource(fx, target, tolerances)
    assert (proposal.replicas, proposal.utilization_pct, proposal.usage_milli) == (
        replicas,
        utilization,
        raw,
    )


# (fixture, target milli, tolerances, expected replicas, expected usage milli)
PLAIN_CASES = [
    pytest.param(
        Fixture(3, (20000, 10000, 30000), per_container=False),
        15000,
        Tolerances(),
        4,
        20000,
        id="TestReplicaCalcScaleUpCM",
    ),
    pytest.param(
        Fixture(
            3,
            (50000, 10000, 30000),
            readiness=(T, T, F),
            start_times_s=(COOL_S, COOL_S, HOT_S),
            per_container=False,
        ),
        15000,
        Tolerances(),
        6,
        30000,
        id="TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
    ),
    pytest.param(
        Fixture(
            3,
            (50000, 15000, 30000),
            readiness=(F, T, F),
            start_times_s=(HOT_S, COOL_S, HOT_S),
            per_container=False,
        ),
        15000,
        Tolerances(),
        7,
        31666,
        id="TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
    ),
    pytest.param(
        Fixture(5, (12000,) * 5, per_container=False),
        20000,
        Tolerances(),
        3,
        12000,
        id="TestReplicaCalcScaleDownCM",
    ),
    pytest.param(
        Fixture(3, (20000, 21000, 21000), per_container=False),
        20000,
        Tolerances(),
        3,
        20666,
        id="TestReplicaCalcToleranceCM",
    ),
    pytest.param(
        Fixture(3, (20000, 21000, 21000), per_container=False),
        20000,
        Tolerances(0.1, 0.01),
        4,
        20666,
        id="TestReplicaCalcConfigurableToleranceCM",
    ),
    pytest.param(
        Fixture(5, (20000, 19000, 21000), per_container=False),
        20000,
        Tolerances(),
        5,
        20000,
        id="TestPlainMetricReplicaCalcMissingMetricsNoChangeEq",
    ),
    pytest.param(
        Fixture(2, (10000, 10000), phases=(R, R, R), per_container=False),
        17000,
        Tolerances(),
        2,
        10000,
        id="TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM",
    ),
]


@pytest.mark.parametrize(("fx", "target", "tolerances", "replicas", "usage"), PLAIN_CASES)
def test_plain_metric_replicas_match_go(
    fx: Fixture, target: int, tolerances: Tolerances, replicas: int, usage: int
) -> None:
    proposal = _plain(fx, target, tolerances)
    assert (proposal.replicas, proposal.usage_milli, proposal.utilization_pct) == (
        replicas,
        usage,
        None,
    )


@pytest.mark.parametrize(
    ("fx", "message"),
    [
        pytest.param(
            Fixture(1, (100,), (ONE_CORE,), metric_pod_names=("an-older-pod-name",)),
            "no metrics returned matched known pods",
            id="TestReplicaCalcDisjointResourcesMetrics",
        ),
        pytest.param(
            Fixture(1, (200,), ()), "missing request for", id="TestReplicaCalcEmptyCPURequest"
        ),
    ],
)
def test_resource_replicas_errors_match_go(fx: Fixture, message: str) -> None:
    with pytest.raises(HpaMetricsError, match=message):
        _resource(fx, 100)


def test_tolerance_band_is_inclusive_at_both_edges() -> None:
    """Derived from ``Tolerances.isWithin`` (1-down <= ratio <= 1+up): 90 % and 110 % of target hold."""
    assert _resource(Fixture(10, (900,) * 10, (ONE_CORE,) * 10), 100).replicas == 10
    assert _resource(Fixture(3, (1100,) * 3, (ONE_CORE,) * 3), 100).replicas == 3
    assert (
        _resource(Fixture(10, (890,) * 10, (ONE_CORE,) * 10), 100).replicas == 9
    )  # 89 %: ceil(8.9)
    assert (
        _resource(Fixture(3, (1110,) * 3, (ONE_CORE,) * 3), 100).replicas == 4
    )  # 111 %: ceil(3.33)


def test_unready_pods_are_only_rebalanced_on_scale_up() -> None:
    """Derived from ``scaleUpWithUnready := len(unreadyPods) > 0 && usageRatio > 1.0``.

    One ready pod at 95 % of target and one unready pod: the ratio is within tolerance, so
    the unready pod is not counted at 0 % (which would have given ceil(0.475 * 2) = 1).
    """
    assert _resource(Fixture(2, (950, 0), (ONE_CORE,) * 2, readiness=(T, F)), 100).replicas == 2


def test_percent_scale_down_limit_truncates_toward_zero() -> None:
    """Derived from Go's ``int32(float64(start) * (1 - value/100))``: -1.5 becomes -1, not -2."""
    over = ScalingRules(0, "Max", (ScalingPolicy("Percent", 150, 15),))
    assert scale_down_limit(3, (), (), over, NOW_S) == -1


def _gp(
    phase: str = "Succeeded",
    ready: bool | None = None,
    ltt_ago_s: float = 0.0,
    start_ago_s: float | None = None,
    usage: int | None = None,
    metric_ago_s: float | None = None,
    window_s: float = 0.0,
    deleted: bool = False,
) -> PodSample:
    """A TestGroupPods pod: times given as seconds before now; None/absent = Go's zero value."""
    return PodSample(
        phase=phase,
        ready=ready,
        ready_transition_s=NOW_S - ltt_ago_s if ready is not None else 0.0,
        start_time_s=None if start_ago_s is None else NOW_S - start_ago_s,
        deleted=deleted,
        usage_milli=usage,
        metric_timestamp_s=0.0 if metric_ago_s is None else NOW_S - metric_ago_s,
        metric_window_s=window_s,
    )


# (pods, resource, ready count, unready, missing, ignored) — indices stand for the Go pod names
GROUP_CASES = [
    pytest.param((), "cpu", 0, set(), set(), set(), id="TestGroupPods/void"),
    pytest.param(
        (_gp(usage=1, metric_ago_s=0, window_s=60),),
        "memory",
        1,
        set(),
        set(),
        set(),
        id="TestGroupPods/count_in_a_ready_pod_-_memory",
    ),
    pytest.param(
        (_gp(start_ago_s=0, usage=1),),
        "cpu",
        0,
        {0},
        set(),
        set(),
        id="TestGroupPods/unready_a_pod_without_ready_condition_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=60, ready=True, ltt_ago_s=30, usage=1, metric_ago_s=0, window_s=30),),
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="TestGroupPods/count_in_a_ready_pod_with_fresh_metrics_during_initialization_period_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=60, ready=True, ltt_ago_s=30, usage=1, metric_ago_s=0, window_s=60),),
        "cpu",
        0,
        {0},
        set(),
        set(),
        id="TestGroupPods/unready_a_ready_pod_without_fresh_metrics_during_initialization_period_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=600, ready=False, ltt_ago_s=594, usage=1),),
        "cpu",
        0,
        {0},
        set(),
        set(),
        id="TestGroupPods/unready_an_unready_pod_during_initialization_period_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=180, ready=True, ltt_ago_s=180, usage=1, metric_ago_s=120, window_s=60),),
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="TestGroupPods/count_in_a_ready_pod_without_fresh_metrics_after_initialization_period_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=600, ready=False, ltt_ago_s=540, usage=1),),
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="TestGroupPods/count_in_an_unready_pod_that_was_ready_after_initialization_period_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=600, ready=False, ltt_ago_s=590, usage=1),),
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="TestGroupPods/unready_pod_that_has_never_been_ready_after_initialization_period_-_CPU",
    ),
    pytest.param(
        (_gp(start_ago_s=180),), "cpu", 0, set(), {0}, set(), id="TestGroupPods/a_missing_pod"
    ),
    pytest.param(
        (
            _gp(start_ago_s=0, usage=1),
            _gp(start_ago_s=180, ready=True, ltt_ago_s=180, usage=1),
            _gp(start_ago_s=180),
        ),
        "cpu",
        1,
        {0},
        {2},
        set(),
        id="TestGroupPods/several_pods",
    ),
    pytest.param(
        (_gp(phase="Pending"),),
        "cpu",
        0,
        {0},
        set(),
        set(),
        id="TestGroupPods/pending_pods_are_unreadied",
    ),
    pytest.param(
        (_gp(phase="Pending", deleted=True, usage=1),),
        "cpu",
        0,
        set(),
        set(),
        {0},
        id="TestGroupPods/ignore_pods_with_deletion_timestamps",
    ),
    pytest.param(
        (_gp(phase="Failed", usage=1),),
        "cpu",
        0,
        set(),
        set(),
        {0},
        id="TestGroupPods/ignore_pods_in_a_failed_state",
    ),
]


@pytest.mark.parametrize(
    ("pods", "resource", "ready", "unready", "missing", "ignored"), GROUP_CASES
)
def test_group_pods_matches_go(pods, resource, ready, unready, missing, ignored) -> None:
    groups = group_pods(pods, resource, NOW_S, CPU_INIT_S, READINESS_DELAY_S)
    assert (groups.ready_count, groups.unready, groups.missing, groups.ignored) == (
        ready,
        unready,
        missing,
        ignored,
    )


# ---------------------------------------------------------------- behaviour


def rules(
    pods: int, pods_period: int, percent: int, percent_period: int, window_s: int
) -> ScalingRules:
    """horizontal_test.go ``generateScalingRules`` (select policy Max)."""
    policies = []
    if pods:
        policies.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(
        stabilization_window_s=window_s, select_policy="Max", policies=tuple(policies) or None
    )


def uniform_events(changes: list[int], period_s: int) -> tuple[ScaleEvent, ...]:
    """horizontal_test.go ``generateEventsUniformDistribution``: events centred in equal slices."""
    segment = period_s / len(changes)
    return tuple(
        ScaleEvent(change, NOW_S - int(period_s - segment * (idx + 1) + segment / 2))
        for idx, change in enumerate(changes)
    )


@dataclass(frozen=True)
class RateCase:
    current: int
    desired: int
    min_replicas: int
    max_replicas: int
    expected: int
    reason: str
    up: ScalingRules | None = None
    down: ScalingRules | None = None
    up_events: tuple[ScaleEvent, ...] = field(default=())
    down_events: tuple[ScaleEvent, ...] = field(default=())


E159 = uniform_events([1, 5, 9], 120)
E_OUT = uniform_events([8, 12, 9, 11], 120)
W = "TestScalingWithRules/"
RATE_CASES = [
    pytest.param(
        RateCase(5, 7, 3, 8, 7, "DesiredWithinRange"),
        id=W + "prenormalized_desired_replicas_within_range",
    ),
    pytest.param(
        RateCase(3, 1, 2, 8, 2, "TooFewReplicas"),
        id=W + "prenormalized_desired_replicas_<_minReplicas",
    ),
    pytest.param(
        RateCase(1, 0, 0, 10, 0, "DesiredWithinRange"),
        id=W + "prenormalized_desired_replicas_within_range_when_minReplicas_is_0",
    ),
    pytest.param(
        RateCase(20, 1000, 1, 10, 10, "TooManyReplicas"),
        id=W + "maxReplicas_is_the_limit_because_maxReplicas_<_scaleUpLimit",
    ),
    pytest.param(
        RateCase(100, 1000, 100, 150, 150, "TooManyReplicas"),
        id=W + "desired_replica_count_is_more_than_the_maximum_replica_count",
    ),
    pytest.param(
        RateCase(3, 1000, 1, 2000, 4, "ScaleUpLimit", up=rules(0, 0, 1, 60, 0)),
        id=W + "scaleUpLimit_is_the_limit_because_scaleUpLimit_<_maxReplicas_with_user_policies",
    ),
    pytest.param(
        RateCase(1000, 3, 3, 2000, 980, "ScaleDownLimit", down=rules(20, 60, 0, 0, 0)),
        id=W
        + "scaleDownLimit_is_the_limit_because_scaleDownLimit_>_minReplicas_with_user_defined_policies",
    ),
    pytest.param(
        RateCase(10, 50, 1, 1000, 20, "ScaleUpLimit"), id=W + "scaleUp_with_default_behavior"
    ),
    pytest.param(
        RateCase(10, 500, 1, 1000, 110, "ScaleUpLimit", up=rules(100, 60, 100, 60, 0)),
        id=W + "scaleUp_with_pods_policy_larger_than_percent_policy",
    ),
    pytest.param(
        RateCase(10, 500, 1, 1000, 20, "ScaleUpLimit", up=rules(2, 60, 100, 60, 0)),
        id=W + "scaleUp_with_percent_policy_larger_than_pods_policy",
    ),
    pytest.param(
        RateCase(10, 50, 1, 1000, 50, "DesiredWithinRange", up=rules(100, 60, 0, 0, 0)),
        id=W + "scaleUp_with_spec_MaxReplicas_limitation_with_large_pod_policy",
    ),
    pytest.param(
        RateCase(10, 50, 1, 1000, 50, "DesiredWithinRange", up=rules(10000, 60, 0, 0, 0)),
        id=W + "scaleUp_with_spec_MaxReplicas_limitation_with_large_percent_policy",
    ),
    pytest.param(
        RateCase(10, 50, 1, 1000, 40, "ScaleUpLimit", up=rules(30, 60, 0, 0, 0)),
        id=W + "scaleUp_with_pod_policy_limitation",
    ),
    pytest.param(
        RateCase(10, 50, 1, 1000, 30, "ScaleUpLimit", up=rules(0, 0, 200, 60, 0)),
        id=W + "scaleUp_with_percent_policy_limitation",
    ),
    pytest.param(
        RateCase(100, 2, 1, 1000, 80, "ScaleDownLimit", down=rules(20, 60, 1, 60, 300)),
        id=W + "scaleDown_with_percent_policy_larger_than_pod_policy",
    ),
    pytest.param(
        RateCase(100, 2, 1, 1000, 98, "ScaleDownLimit", down=rules(2, 60, 1, 60, 300)),
        id=W + "scaleDown_with_pod_policy_larger_than_percent_policy",
    ),
    pytest.param(
        RateCase(10, 0, 1, 1000, 1, "TooFewReplicas", down=rules(100, 60, 0, 0, 300)),
        id=W + "scaleDown_with_spec_MinReplicas_limitation_with_large_pod_policy",
    ),
    pytest.param(
        RateCase(10, 2, 5, 1000, 5, "TooFewReplicas", down=rules(0, 0, 100, 60, 300)),
        id=W + "scaleDown_with_spec_MinReplicas_limitation_with_large_percent_policy",
    ),
    pytest.param(
        RateCase(10, 2, 1, 1000, 5, "ScaleDownLimit", down=rules(5, 60, 0, 0, 300)),
        id=W + "scaleDown_with_pod_policy_limitation",
    ),
    pytest.param(
        RateCase(10, 5, 1, 1000, 5, "DesiredWithinRange", down=rules(0, 0, 50, 60, 300)),
        id=W + "scaleDown_with_percent_policy_limitation",
    ),
    pytest.param(
        RateCase(
            100, 500, 1, 200, 200, "TooManyReplicas", up=rules(300, 60, 0, 0, 0), up_events=E159
        ),
        id=W + "scaleUp_with_spec_MaxReplicas_limitation_with_large_pod_policy_and_events",
    ),
    pytest.param(
        RateCase(
            100, 500, 1, 200, 200, "TooManyReplicas", up=rules(0, 0, 10000, 60, 0), up_events=E159
        ),
        id=W + "scaleUp_with_spec_MaxReplicas_limitation_with_large_percent_policy_and_events",
    ),
    pytest.param(
        RateCase(100, 500, 1, 1000, 100, "ScaleUpLimit", up=rules(5, 120, 0, 0, 0), up_events=E159),
        id=W
        + "scaleUp_with_currentReplicas_limitation_with_rate.PeriodSeconds_with_a_lot_of_recent_scale_up_events",
    ),
    pytest.param(
        RateCase(
            100, 500, 1, 1000, 235, "ScaleUpLimit", up=rules(150, 120, 0, 0, 0), up_events=E159
        ),
        id=W + "scaleUp_with_pod_policy_and_previous_scale_up_events",
    ),
    pytest.param(
        RateCase(
            100, 500, 1, 1000, 255, "ScaleUpLimit", up=rules(0, 0, 200, 120, 0), up_events=E159
        ),
        id=W + "scaleUp_with_percent_policy_and_previous_scale_up_events",
    ),
    pytest.param(
        RateCase(
            6,
            24,
            1,
            1000,
            16,
            "ScaleUpLimit",
            up=rules(0, 0, 300, 300, 0),
            up_events=uniform_events([4], 120),
            down_events=uniform_events([2], 120),
        ),
        id=W + "scaleUp_with_percent_policy_and_previous_scale_up_and_down_events",
    ),
    pytest.param(
        RateCase(10, 5, 1, 1000, 5, "DesiredWithinRange", down_events=E159),
        id=W + "scaleDown_with_default_policy_and_previous_events",
    ),
    pytest.param(
        RateCase(
            100, 0, 1, 1000, 1, "TooFewReplicas", down=rules(115, 120, 0, 0, 300), down_events=E159
        ),
        id=W
        + "scaleDown_with_spec_MinReplicas=nil_limitation_with_large_pod_policy_and_previous_events",
    ),
    pytest.param(
        RateCase(
            100, 0, 5, 1000, 5, "TooFewReplicas", down=rules(130, 120, 0, 0, 300), down_events=E159
        ),
        id=W
        + "scaleDown_with_spec_MinReplicas_limitation_with_large_pod_policy_and_previous_events",
    ),
    pytest.param(
        RateCase(
            100, 2, 5, 1000, 5, "TooFewReplicas", down=rules(0, 0, 100, 120, 300), down_events=E159
        ),
        id=W
        + "scaleDown_with_spec_MinReplicas_limitation_with_large_percent_policy_and_previous_events",
    ),
    pytest.param(
        RateCase(
            100, 2, 1, 1000, 100, "ScaleDownLimit", down=rules(5, 120, 0, 0, 300), down_events=E159
        ),
        id=W + "scaleDown_with_pod_policy_limitation_and_previous_events",
    ),
    pytest.param(
        RateCase(
            100,
            0,
            1,
            1000,
            56,
            "ScaleDownLimit",
            down=rules(0, 0, 50, 120, 300),
            down_events=uniform_events([2, 4, 6], 120),
        ),
        id=W + "scaleDown_with_percent_policy_limitation_and_previous_events",
    ),
    pytest.param(
        RateCase(
            10,
            1,
            1,
            1000,
            6,
            "ScaleDownLimit",
            down=rules(0, 0, 50, 180, 0),
            up_events=uniform_events([2], 120),
            down_events=uniform_events([4], 120),
        ),
        id=W + "scaleDown_with_percent_policy_and_previous_scale_up_and_down_events",
    ),
    pytest.param(
        RateCase(
            100,
            0,
            1,
            1000,
            100,
            "ScaleDownLimit",
            down=rules(0, 0, 10, 120, 300),
            down_events=uniform_events([10, 10, 10], 120),
        ),
        id=W + "scaleDown_with_previous_events_preventing_further_scale_down",
    ),
    pytest.param(
        RateCase(
            10,
            5,
            1,
            1000,
            5,
            "DesiredWithinRange",
            down=rules(0, 0, 1000, 120, 300),
            down_events=uniform_events([10, 10, 10], 120),
        ),
        id=W + "scaleDown_with_with_previous_events_still_allowing_more_scale_down",
    ),
    pytest.param(
        RateCase(
            100,
            200,
            1,
            1000,
            200,
            "DesiredWithinRange",
            up=rules(1000, 60, 0, 0, 0),
            up_events=E_OUT,
        ),
        id=W + "check_'outdated'_flag_for_events_for_one_behavior_for_up",
    ),
    pytest.param(
        RateCase(
            100,
            200,
            1,
            1000,
            200,
            "DesiredWithinRange",
            up=rules(1000, 120, 100, 60, 0),
            up_events=E_OUT,
        ),
        id=W
        + "check_that_events_were_not_marked_'outdated'_for_two_different_policies_in_the_behavior_for_up",
    ),
    pytest.param(
        RateCase(
            100,
            200,
            1,
            1000,
            200,
            "DesiredWithinRange",
            up=rules(1000, 30, 100, 60, 0),
            up_events=E_OUT,
        ),
        id=W
        + "check_that_events_were_marked_'outdated'_for_two_different_policies_in_the_behavior_for_up",
    ),
    pytest.param(
        RateCase(
            100,
            5,
            1,
            1000,
            5,
            "DesiredWithinRange",
            down=rules(1000, 60, 0, 0, 300),
            down_events=E_OUT,
        ),
        id=W + "check_'outdated'_flag_for_events_for_one_behavior_for_down",
    ),
    pytest.param(
        RateCase(
            100,
            5,
            1,
            1000,
            5,
            "DesiredWithinRange",
            down=rules(1000, 120, 100, 60, 300),
            down_events=E_OUT,
        ),
        id=W
        + "check_that_events_were_not_marked_'outdated'_for_two_different_policies_in_the_behavior_for_down",
    ),
    pytest.param(
        RateCase(
            100,
            5,
            1,
            1000,
            5,
            "DesiredWithinRange",
            down=rules(1000, 30, 100, 60, 300),
            down_events=E_OUT,
        ),
        id=W
        + "check_that_events_were_marked_'outdated'_for_two_different_policies_in_the_behavior_for_down",
    ),
]


@pytest.mark.parametrize("case", RATE_CASES)
def test_convert_desired_replicas_with_behavior_rate_matches_go(case: RateCase) -> None:
    result = convert_desired_replicas_with_behavior_rate(
        case.current,
        case.desired,
        case.min_replicas,
        case.max_replicas,
        generate_scale_up_rules(case.up),
        generate_scale_down_rules(case.down),
        case.up_events,
        case.down_events,
        NOW_S,
    )
    assert result == (case.expected, case.reason)


def _recs(*pairs: tuple[int, float]) -> tuple[Recommendation, ...]:
    """Recommendations given as (replicas, minutes before now)."""
    return tuple(Recommendation(replicas, NOW_S - minutes * 60) for replicas, minutes in pairs)


N = "TestNormalizeDesiredReplicasWithBehavior/"
# (recommendations, current, desired, up window s, down window s, stabilised, stored replicas or None)
STABILIZE_CASES = [
    pytest.param((), 100, 5, 0, 0, 5, [5], id=N + "empty_recommendations_for_scaling_down"),
    pytest.param(
        _recs((4, 2), (5, 1)),
        100,
        3,
        0,
        180,
        5,
        [4, 5, 3],
        id=N + "simple_scale_down_stabilization",
    ),
    pytest.param(
        _recs((4, 2), (5, 1)), 1, 7, 300, 0, 4, [4, 5, 7], id=N + "simple_scale_up_stabilization"
    ),
    pytest.param(
        _recs((1, 2), (2, 1)), 100, 3, 300, 0, 3, [1, 2, 3], id=N + "no_scale_down_stabilization"
    ),
    pytest.param(
        _recs((4, 2), (5, 1)), 1, 3, 0, 300, 3, [4, 5, 3], id=N + "no_scale_up_stabilization"
    ),
    pytest.param(
        _recs((10, 10), (9, 9)),
        100,
        3,
        0,
        0,
        3,
        [10, 3],
        id=N + "no_scale_down_stabilization,_reuse_recommendation_element",
    ),
    pytest.param(
        _recs((10, 10), (9, 9)),
        1,
        100,
        0,
        0,
        100,
        [10, 100],
        id=N + "no_scale_up_stabilization,_reuse_recommendation_element",
    ),
    pytest.param(
        _recs((10, 10), (4, 1), (5, 2), (9, 9)),
        100,
        3,
        0,
        180,
        5,
        [10, 4, 5, 3],
        id=N + "scale_down_stabilization,_reuse_one_of_obsolete_recommendation_element",
    ),
    pytest.param(
        _recs((10, 100), (6, 1), (5, 2), (9, 3)),
        1,
        100,
        300,
        0,
        5,
        [100, 6, 5, 9],
        id=N + "scale_up_stabilization,_reuse_one_of_obsolete_recommendation_element",
    ),
    pytest.param(
        _recs((2, 100), (3, 3)),
        2,
        1,
        300,
        300,
        2,
        None,
        id=N + "scale_up_and_down_stabilization,_do_not_scale_up_when_prenormalized_rec_goes_down",
    ),
    pytest.param(
        _recs((2, 100), (1, 3)),
        2,
        3,
        300,
        300,
        2,
        None,
        id=N + "scale_up_and_down_stabilization,_do_not_scale_down_when_prenormalized_rec_goes_up",
    ),
]


@pytest.mark.parametrize(
    ("recs", "current", "desired", "up_s", "down_s", "expected", "stored"), STABILIZE_CASES
)
def test_stabilize_recommendation_with_behaviors_matches_go(
    recs, current, desired, up_s, down_s, expected, stored
) -> None:
    replicas, kept = stabilize_recommendation_with_behaviors(
        recs, current, desired, up_s, down_s, NOW_S
    )
    assert replicas == expected
    if stored is not None:
        assert [rec.replicas for rec in kept] == stored


def _events(*pairs: tuple[int, float]) -> tuple[ScaleEvent, ...]:
    """Scale events given as (change, seconds before now)."""
    return tuple(ScaleEvent(change, NOW_S - ago_s) for change, ago_s in pairs)


S = "TestStoreScaleEvents/"
# (previous events, rules, change in the last 60 s, stored (change, outdated) after a change of 5)
STORE_CASES = [
    pytest.param(
        (),
        rules(10, 60, 100, 60, 0),
        0,
        [(5, False)],
        id=S + "empty_entries_with_two-policy-behavior",
    ),
    pytest.param(
        _events((7, 61)),
        rules(10, 60, 100, 60, 0),
        0,
        [(5, False)],
        id=S + "one_outdated_entry_to_be_replaced_with_behavior",
    ),
    pytest.param(
        _events((7, 58)),
        rules(10, 60, 100, 60, 0),
        7,
        [(7, False), (5, False)],
        id=S + "one_actual_entry_to_be_not_touched_with_behavior",
    ),
    pytest.param(
        _events((7, 61), (6, 59)),
        rules(10, 60, 0, 0, 0),
        6,
        [(5, False), (6, False)],
        id=S + "two_entries,_one_of_them_to_be_replaced",
    ),
    pytest.param(
        _events((8, 29), (6, 59), (7, 61), (9, 61)),
        rules(10, 60, 100, 30, 0),
        14,
        [(8, False), (6, False), (7, True), (5, False)],
        id=S + "replace_one_entry,_use_policies_with_different_periods",
    ),
    pytest.param(
        _events((7, 58), (6, 59)),
        rules(10, 120, 100, 30, 0),
        13,
        [(7, False), (6, False), (5, False)],
        id=S + "two_entries,_both_actual",
    ),
]


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize(("previous", "scaling", "change_60s", "stored"), STORE_CASES)
def test_store_scale_events_matches_go(previous, scaling, change_60s, stored, direction) -> None:
    assert replicas_change_per_period(60, previous, NOW_S) == change_60s
    spec = (
        HpaSpec(max_replicas=100, scale_up=scaling)
        if direction == "up"
        else HpaSpec(max_replicas=100, scale_down=scaling)
    )
    new_replicas = 15 if direction == "up" else 5
    history = HpaHistory(recommendations=(), scale_up_events=previous, scale_down_events=previous)
    after = record_scale_event(spec, history, 10, new_replicas, NOW_S)
    events = after.scale_up_events if direction == "up" else after.scale_down_events
    untouched = after.scale_down_events if direction == "up" else after.scale_up_events
    assert [(e.replica_change, e.outdated) for e in events] == stored
    assert untouched == previous
    longest = max(p.period_s for p in scaling.policies)
    assert store_scale_event(previous, longest, 5, NOW_S) == events


def test_calculate_scale_limits_with_min_policy_match_go() -> None:
    """TestCalculateScaleUpLimitWithScalingRules and TestCalculateScaleDownLimitWithBehaviors."""
    min_rules = ScalingRules(
        300, "Min", (ScalingPolicy("Pods", 2, 60), ScalingPolicy("Percent", 50, 60))
    )
    assert scale_up_limit(1, (), (), min_rules, NOW_S) == 2
    assert scale_down_limit(5, (), (), min_rules, NOW_S) == 3


UP_DEFAULT = (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))


@pytest.mark.parametrize(
    ("given", "policies", "window_s", "select"),
    [
        pytest.param(
            ScalingRules(), UP_DEFAULT, 0, "Max", id="TestGenerateScaleUpRules/Default_values"
        ),
        pytest.param(
            ScalingRules(25, "Max", (ScalingPolicy("Pods", 1, 2), ScalingPolicy("Percent", 3, 4))),
            (ScalingPolicy("Pods", 1, 2), ScalingPolicy("Percent", 3, 4)),
            25,
            "Max",
            id="TestGenerateScaleUpRules/All_parameters_are_specified",
        ),
        pytest.param(
            ScalingRules(None, "Min", (ScalingPolicy("Pods", 1, 2),)),
            (ScalingPolicy("Pods", 1, 2),),
            0,
            "Min",
            id="TestGenerateScaleUpRules/Pod_policy_is_specified",
        ),
        pytest.param(
            ScalingRules(None, None, (ScalingPolicy("Percent", 7, 10),)),
            (ScalingPolicy("Percent", 7, 10),),
            0,
            "Max",
            id="TestGenerateScaleUpRules/Percent_policy_is_specified",
        ),
        pytest.param(
            ScalingRules(25, None, (ScalingPolicy("Pods", 4, 2),)),
            (ScalingPolicy("Pods", 4, 2),),
            25,
            "Max",
            id="TestGenerateScaleUpRules/Pod_policy_and_stabilization_window_are_specified",
        ),
        pytest.param(
            ScalingRules(25, None, (ScalingPolicy("Percent", 7, 60),)),
            (ScalingPolicy("Percent", 7, 60),),
            25,
            "Max",
            id="TestGenerateScaleUpRules/Percent_policy_and_stabilization_window_are_specified",
        ),
    ],
)
def test_generate_scale_up_rules_matches_go(given, policies, window_s, select) -> None:
    up = generate_scale_up_rules(given)
    assert (up.policies, up.stabilization_window_s, up.select_policy) == (
        policies,
        window_s,
        select,
    )


@pytest.mark.parametrize(
    ("given", "policies", "window_s", "select"),
    [
        pytest.param(
            ScalingRules(),
            (ScalingPolicy("Percent", 100, 15),),
            None,
            "Max",
            id="TestGenerateScaleDownRules/Default_values",
        ),
        pytest.param(
            ScalingRules(25, "Max", (ScalingPolicy("Pods", 1, 2), ScalingPolicy("Percent", 3, 4))),
            (ScalingPolicy("Pods", 1, 2), ScalingPolicy("Percent", 3, 4)),
            25,
            "Max",
            id="TestGenerateScaleDownRules/All_parameters_are_specified",
        ),
        pytest.param(
            ScalingRules(None, "Min", (ScalingPolicy("Percent", 1, 2),)),
            (ScalingPolicy("Percent", 1, 2),),
            None,
            "Min",
            id="TestGenerateScaleDownRules/Percent_policy_is_specified",
        ),
        pytest.param(
            ScalingRules(None, None, (ScalingPolicy("Pods", 3, 4),)),
            (ScalingPolicy("Pods", 3, 4),),
            None,
            "Max",
            id="TestGenerateScaleDownRules/Pods_policy_is_specified",
        ),
    ],
)
def test_generate_scale_down_rules_matches_go(given, policies, window_s, select) -> None:
    down = generate_scale_down_rules(given)
    assert (down.policies, down.stabilization_window_s, down.select_policy) == (
        policies,
        window_s,
        select,
    )


def test_spec_scale_down_window_defaults_to_controller_flag() -> None:
    """maybeInitScaleDownStabilizationWindow: an unset window takes --...-downscale-stabilization."""
    assert HpaSpec(max_replicas=5).scale_down_rules().stabilization_window_s == 300
    assert (
        HpaSpec(max_replicas=5, downscale_stabilization_window_s=60)
        .scale_down_rules()
        .stabilization_window_s
        == 60
    )
    assert (
        HpaSpec(max_replicas=5, scale_down=ScalingRules(stabilization_window_s=0))
        .scale_down_rules()
        .stabilization_window_s
        == 0
    )


# ---------------------------------------------------------------- controller sync (hpa_step)


@pytest.mark.parametrize(
    ("min_replicas", "max_replicas", "current", "expected"),
    [
        pytest.param(2, 6, 1, 2, id="TestScaleUpRCImmediately"),
        pytest.param(2, 5, 6, 5, id="TestScaleDownRCImmediately"),
    ],
)
def test_out_of_range_targets_are_rescaled_immediately(
    min_replicas, max_replicas, current, expected
) -> None:
    spec = HpaSpec(max_replicas=max_replicas, min_replicas=min_replicas)
    desired, history = hpa_step(spec, HpaHistory(), current, None, NOW_S)
    assert desired == expected
    events = history.scale_up_events if expected > current else history.scale_down_events
    assert events == (ScaleEvent(abs(expected - current), NOW_S),)


def test_default_scale_up_rate_is_max_of_4_pods_and_100_percent_per_15s() -> None:
    """Derived from the API defaults (not a Go table): 1 -> 5 -> 10 -> 20 at one sync per 15 s."""
    spec, history, replicas, seen = HpaSpec(max_replicas=100), HpaHistory(), 1, []
    for sync in range(3):
        replicas, history = hpa_step(spec, history, replicas, 50, 15.0 * sync)
        seen.append(replicas)
    assert seen == [5, 10, 20]


def test_default_scale_down_waits_for_the_300s_window() -> None:
    """Derived: after a recommendation of 10 at t=0, demand for 2 is held until t=300 s."""
    spec, history, replicas = HpaSpec(max_replicas=20), HpaHistory(), 10
    replicas, history = hpa_step(spec, history, replicas, 10, 0.0)
    first_drop = None
    for sync in range(1, 30):
        replicas, history = hpa_step(spec, history, replicas, 2, 15.0 * sync)
        if replicas < 10 and first_drop is None:
            first_drop = (15.0 * sync, replicas)
    assert first_drop == (300.0, 2)


def test_hpa_step_is_pure() -> None:
    spec = HpaSpec(max_replicas=10, scale_down=ScalingRules(stabilization_window_s=60))
    history = HpaHistory(recommendations=_recs((8, 0.5)), scale_up_events=_events((3, 10)))
    first = hpa_step(spec, history, 6, 2, NOW_S)
    assert first == hpa_step(spec, history, 6, 2, NOW_S)
    assert history == HpaHistory(recommendations=_recs((8, 0.5)), scale_up_events=_events((3, 10)))
    assert first[0] == 6  # held by the 8 recommended 30 s ago, capped at current


def test_zero_replicas_disables_scaling_and_failed_metrics_keep_the_count() -> None:
    spec = HpaSpec(max_replicas=5)
    assert hpa_step(spec, HpaHistory(), 0, 4, NOW_S)[0] == 0
    desired, history = hpa_step(spec, HpaHistory(), 3, None, NOW_S)
    assert desired == 3 and history.recommendations == (Recommendation(3, NOW_S),)


def test_per_direction_tolerance_overrides_the_controller_flag() -> None:
    spec = HpaSpec(max_replicas=5, scale_up=ScalingRules(tolerance=0.01))
    assert spec.tolerances() == Tolerances(scale_down=0.1, scale_up=0.01)


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: _resource(Fixture(1, (100,), (ONE_CORE,)), 0), "target must be > 0, got 0"),
        (lambda: _plain(Fixture(1, (100,), per_container=False), -5), "target must be > 0, got -5"),
        (lambda: Tolerances(scale_up=-0.1), "scale_up must be >= 0, got -0.1"),
        (
            lambda: ScalingPolicy("Replicas", 1, 15),
            "policy type must be 'Pods' or 'Percent', got 'Replicas'",
        ),
        (lambda: ScalingPolicy("Pods", 0, 15), "policy value must be > 0, got 0"),
        (lambda: ScalingPolicy("Pods", 1, 0), r"period_s must be in \(0, 1800\], got 0"),
        (
            lambda: ScalingRules(select_policy="Fastest"),
            "select_policy must be Max, Min or Disabled, got 'Fastest'",
        ),
        (
            lambda: HpaSpec(max_replicas=2, min_replicas=3),
            "max_replicas must be >= 1 and >= min_replicas",
        ),
    ],
)
def test_invalid_inputs_name_the_bad_value(build, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build()
