"""The HPA controller's legacy path (an HPA without ``spec.behavior``), case by case.

The tables are the controller's own unit tests in kubernetes/kubernetes
``pkg/controller/podautoscaler/horizontal_test.go`` (``TestNormalizeDesiredReplicas``,
``TestConvertDesiredReplicasWithRules``), ported value for value; the sequences at the
end follow from the documented limits (legacy: max(2 x current, 4) per sync; behaviour
path default: max(+4 pods, +100 %) per 15 s).
"""

from __future__ import annotations

import pytest

from k8s_gpu_rl.baselines.hpa_algorithm import (
    HpaHistory,
    HpaSpec,
    Recommendation,
    ScalingRules,
    calculate_scale_up_limit,
    convert_desired_replicas_with_rules,
    hpa_step,
    stabilize_recommendation,
)
from k8s_gpu_rl.errors import ConfigError

NOW = 10_000.0
MIN = 60.0

# name, recommendations (replicas, seconds ago), prenormalized, expected stabilized, log length
NORMALIZE_CASES = [
    ("empty log", [], 5, 5, 1),
    ("stabilize", [(4, 2 * MIN), (5, 1 * MIN)], 3, 5, 3),
    ("no stabilize", [(1, 2 * MIN), (2, 1 * MIN)], 3, 3, 3),
    ("no stabilize - old recommendations", [(10, 10 * MIN), (9, 9 * MIN)], 3, 3, 2),
    (
        "stabilize - old recommendations",
        [(10, 10 * MIN), (4, 1 * MIN), (5, 2 * MIN), (9, 9 * MIN)],
        3,
        5,
        4,
    ),
]


@pytest.mark.parametrize(
    ("name", "recs", "desired", "expected", "log_length"),
    NORMALIZE_CASES,
    ids=[c[0] for c in NORMALIZE_CASES],
)
def test_stabilize_recommendation_matches_the_controller(
    name: str, recs: list[tuple[int, float]], desired: int, expected: int, log_length: int
) -> None:
    recommendations = [Recommendation(r, NOW - ago) for r, ago in recs]
    stabilized, kept = stabilize_recommendation(recommendations, desired, 5 * MIN, NOW)
    assert stabilized == expected
    assert len(kept) == log_length
    assert Recommendation(desired, NOW) in kept


def test_stabilize_replaces_the_last_old_entry() -> None:
    # Go keeps overwriting oldSampleIndex, so the *last* entry older than the window goes
    recs = [Recommendation(10, NOW - 10 * MIN), Recommendation(9, NOW - 9 * MIN)]
    _, kept = stabilize_recommendation(recs, 3, 5 * MIN, NOW)
    assert kept == (Recommendation(10, NOW - 10 * MIN), Recommendation(3, NOW))


# current, desired, min, max, expected, condition (annotation)
CONVERT_CASES = [
    (5, 7, 3, 8, 7, "DesiredWithinRange"),  # prenormalized desired replicas within range
    (3, 1, 2, 8, 2, "TooFewReplicas"),  # prenormalized desired replicas < minReplicas
    (1, 0, 0, 10, 0, "DesiredWithinRange"),  # prenormalized desired replicas within range
    (20, 1000, 1, 10, 10, "TooManyReplicas"),  # maxReplicas < scaleUpLimit
    (3, 1000, 1, 2000, 6, "ScaleUpLimit"),  # scaleUpLimit (calculateScaleUpLimit(3) = 6) < max
]


@pytest.mark.parametrize(("current", "desired", "lo", "hi", "expected", "condition"), CONVERT_CASES)
def test_convert_desired_replicas_with_rules_matches_the_controller(
    current: int, desired: int, lo: int, hi: int, expected: int, condition: str
) -> None:
    assert convert_desired_replicas_with_rules(current, desired, lo, hi) == (expected, condition)


@pytest.mark.parametrize(("current", "limit"), [(0, 4), (1, 4), (2, 4), (3, 6), (10, 20)])
def test_scale_up_limit_is_twice_current_but_at_least_four(current: int, limit: int) -> None:
    assert calculate_scale_up_limit(current) == limit


def test_scale_up_limit_factor_and_minimum_are_parameters() -> None:
    assert calculate_scale_up_limit(3, factor=3.0, minimum=2.0) == 9
    assert calculate_scale_up_limit(1, factor=1.5, minimum=1.0) == 1  # int32(1.5) truncates


def _climb(spec: HpaSpec, syncs: int, wanted: int = 100) -> list[int]:
    replicas, history, seen = 1, HpaHistory(), [1]
    for k in range(syncs):
        replicas, history = hpa_step(spec, history, replicas, wanted, NOW + 15.0 * k)
        seen.append(replicas)
    return seen


def test_behaviourless_hpa_climbs_1_4_8_where_the_default_behaviour_climbs_1_5_10() -> None:
    assert _climb(HpaSpec(max_replicas=100, has_behavior=False), 2) == [1, 4, 8]
    assert _climb(HpaSpec(max_replicas=100), 2) == [1, 5, 10]


@pytest.mark.parametrize(("current", "legacy", "behaviour"), [(1, 4, 5), (2, 4, 6), (3, 6, 7)])
def test_one_sync_limits_of_both_paths(current: int, legacy: int, behaviour: int) -> None:
    """The issue's table: from current = 1, 2, 3 the legacy limit is 4, 4, 6 where the
    behaviour path allows max(current + 4, 2 x current) = 5, 6, 7."""
    old, _ = hpa_step(HpaSpec(max_replicas=100, has_behavior=False), HpaHistory(), current, 50, NOW)
    new, _ = hpa_step(HpaSpec(max_replicas=100), HpaHistory(), current, 50, NOW)
    assert (old, new) == (legacy, behaviour)


def test_legacy_scale_down_holds_the_highest_recommendation_of_the_window() -> None:
    spec = HpaSpec(max_replicas=10, has_behavior=False)
    history = HpaHistory()
    replicas, history = hpa_step(spec, history, 4, 4, NOW)  # records 4 (initial) and 4
    replicas, history = hpa_step(spec, history, replicas, 1, NOW + 15)
    assert replicas == 4  # the 4s of the last 300 s win
    replicas, history = hpa_step(spec, history, replicas, 1, NOW + 301)
    assert replicas == 1  # both 4s are older than 300 s now
    assert history.scale_up_events == () and history.scale_down_events == ()


def test_legacy_spec_refuses_behaviour_rules() -> None:
    with pytest.raises(ConfigError, match="without spec.behavior has no scale_up/scale_down"):
        HpaSpec(max_replicas=4, has_behavior=False, scale_up=ScalingRules())


def test_the_hpa_autoscale_baseline_takes_the_legacy_path_in_the_env() -> None:
    """From 1 replica the behaviour-less HPA's first scale-up decision is at most
    max(2 x 1, 4) = 4 replicas, the default behaviour's max(1 + 4, 2 x 1) = 5, when 5 or more
    are wanted (the env then moves at most 2 replicas a step, whichever path decided)."""
    import gymnasium as gym

    from k8s_gpu_rl.baselines import make_policy

    def first_scale_up(name: str) -> int:
        env = gym.make("k8s_gpu_rl:K8sGpu-v0", profile="high")
        # CPU target 10 %: 100 users want far more than 5 pods from the first sync on
        policy = make_policy(name, env, target=10.0)
        obs, _ = env.reset(seed=0)
        for _ in range(40):
            action, _ = policy.predict(obs)
            obs, *_, info = env.step(action)
            if policy.status.get("desired_replicas", 1) > 1:
                assert policy.status["metric_replicas"] >= 5  # the calculator wanted more
                return int(policy.status["desired_replicas"])
        raise AssertionError("never scaled up")

    assert (
        make_policy("hpa-autoscale", gym.make("k8s_gpu_rl:K8sGpu-v0")).describe()["behavior"]
        is False
    )
    assert first_scale_up("hpa-autoscale") == 4
    assert first_scale_up("hpa") == 5


def test_the_live_hpa_object_has_no_behavior_when_asked() -> None:
    from k8s_gpu_rl.envs.backends.k8s.hpa import hpa_body
    from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions

    legacy = hpa_body(K8sOptions(), 70, 1, 8, with_behavior=False)["spec"]
    assert "behavior" not in legacy  # what `kubectl autoscale` creates
    assert legacy["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert "behavior" in hpa_body(K8sOptions(), 70, 1, 8)["spec"]
