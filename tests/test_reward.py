"""``envs/reward.py`` against numbers computed by hand from the README's definitions.

README, Environment: reward = w1·utilisation + w2·efficiency − w3·latency − w4·qos_violation
(defaults 0.2, 1.0, 1.0, 2.0);
* utilisation = GPU compute used / vGPU share held (capped at 1),
* efficiency = 1 − share held / the cluster's GPUs,
* latency = how far p95 is above 60 % of the SLO, as a share of the rest of the way to the
  SLO (0 below 90 ms, 1 at the SLO, capped at 5),
* qos_violation = share of requests slower than the SLO or failed, relative to the error
  budget (0.02 % of requests), capped at 1.
The SLO is 150 ms. Every expected value below is written out as arithmetic in a comment.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.envs.reward import (
    IntervalKpis,
    RewardConfig,
    combine,
    interval_kpis,
    percentile_sorted,
    reward_terms,
)
from k8s_gpu_rl.errors import ConfigError

SLO_MS = 150.0
HOLD = np.array([2, 1])  # replica delta 0, share step 0


def kpis(
    *,
    p95_ms: float = 80.0,
    requests: int = 10_000,
    violations: int = 0,
    duration_s: float = 15.0,
    vgpu_s: float = 7.5,
    gpu_work_s: float = 3.0,
) -> IntervalKpis:
    """An interval with only the fields the reward reads set on purpose."""
    return IntervalKpis(
        duration_s=duration_s,
        requests=requests,
        failures=0,
        violations=violations,
        mean_ms=p95_ms,
        p50_ms=p95_ms,
        p95_ms=p95_ms,
        p99_ms=p95_ms,
        vgpu_s=vgpu_s,
        gpu_work_s=gpu_work_s,
        replica_s=duration_s,
    )


def terms(k: IntervalKpis, total_gpus: float = 1.0) -> dict[str, float]:
    return reward_terms(k, SLO_MS, total_gpus, headroom=0.6, qos_budget=0.0002)


# --- the documented constants -------------------------------------------------------


def test_defaults_are_the_documented_constants() -> None:
    w = RewardConfig()
    assert (w.w_utilisation, w.w_efficiency, w.w_latency, w.w_qos) == (0.2, 1.0, 1.0, 2.0)
    assert w.qos_budget == 0.0002  # 0.02 % of requests
    assert w.latency_headroom == 0.6  # 60 % of the SLO
    # reward_terms' own defaults are the same numbers: calling it without them changes nothing
    k = kpis(p95_ms=120.0, violations=1)
    assert reward_terms(k, SLO_MS, 1.0) == terms(k)


# --- latency: 0 below 60 % of the SLO, 1 at the SLO, linear between, cap 5 ----------


@pytest.mark.parametrize(
    ("p95_ms", "expected"),
    [
        (0.0, 0.0),  # no latency at all
        (60.0, 0.0),  # 60/150 = 0.4 < 0.6
        (89.9, 0.0),  # just under 0.6 * 150 = 90 ms
        (90.0, 0.0),  # (90/150 - 0.6) / 0.4 = 0
        (105.0, 0.25),  # (0.7 - 0.6) / 0.4 = 0.25
        (120.0, 0.5),  # (0.8 - 0.6) / 0.4 = 0.5
        (150.0, 1.0),  # at the SLO: (1.0 - 0.6) / 0.4 = 1
        (210.0, 2.0),  # (1.4 - 0.6) / 0.4 = 2
        (390.0, 5.0),  # (2.6 - 0.6) / 0.4 = 5: exactly the cap
        (450.0, 5.0),  # (3.0 - 0.6) / 0.4 = 6, capped at 5
        (math.inf, 5.0),  # every request failed: p95 is inf, the cap holds
    ],
)
def test_latency_headroom_is_linear_from_60_percent_to_the_slo(p95_ms, expected) -> None:
    assert terms(kpis(p95_ms=p95_ms))["latency"] == pytest.approx(expected, abs=1e-12)


def test_latency_term_follows_the_configured_headroom() -> None:
    k = kpis(p95_ms=120.0)
    # h = 0: p95 / SLO = 120 / 150 = 0.8
    assert reward_terms(k, SLO_MS, 1.0, headroom=0.0)["latency"] == pytest.approx(0.8)
    # h = 0.5: (0.8 - 0.5) / 0.5 = 0.6
    assert reward_terms(k, SLO_MS, 1.0, headroom=0.5)["latency"] == pytest.approx(0.6)
    # SLO 100 ms, h = 0.6: (1.2 - 0.6) / 0.4 = 1.5
    assert reward_terms(k, 100.0, 1.0, headroom=0.6)["latency"] == pytest.approx(1.5)


def test_an_interval_without_requests_has_no_latency_or_qos_penalty() -> None:
    t = terms(kpis(p95_ms=0.0, requests=0))
    assert (t["latency"], t["qos_violation"]) == (0.0, 0.0)


# --- QoS: violation rate / 0.02 % budget, cap 1 -------------------------------------


@pytest.mark.parametrize(
    ("violations", "requests", "expected"),
    [
        (0, 10_000, 0.0),  # no violation
        (1, 10_000, 0.5),  # 1e-4 / 2e-4 = 0.5
        (2, 10_000, 1.0),  # 2e-4 / 2e-4 = 1: the budget is spent
        (3, 10_000, 1.0),  # 3e-4 / 2e-4 = 1.5, capped at 1
        (1, 20_000, 0.25),  # 5e-5 / 2e-4 = 0.25
        (1, 1_000, 1.0),  # 1e-3 / 2e-4 = 5, capped at 1
        (195, 195, 1.0),  # everything failed or was slow
    ],
)
def test_qos_term_spends_a_002_percent_budget(violations, requests, expected) -> None:
    t = terms(kpis(violations=violations, requests=requests))
    assert t["qos_violation"] == pytest.approx(expected, abs=1e-12)


def test_qos_term_follows_the_configured_budget() -> None:
    k = kpis(violations=1, requests=10_000)  # rate 1e-4
    # budget 0.1 %: 1e-4 / 1e-3 = 0.1
    assert reward_terms(k, SLO_MS, 1.0, qos_budget=0.001)["qos_violation"] == pytest.approx(0.1)
    # budget 0.005 %: 1e-4 / 5e-5 = 2, capped at 1
    assert reward_terms(k, SLO_MS, 1.0, qos_budget=0.00005)["qos_violation"] == 1.0


# --- utilisation and efficiency -------------------------------------------------------


@pytest.mark.parametrize(
    ("vgpu_s", "gpu_work_s", "expected"),
    [
        (7.5, 3.0, 0.4),  # one 50 % pod for 15 s holds 7.5 GPU-s; 3 / 7.5 = 0.4
        (7.5, 7.5, 1.0),  # used all it held
        (7.5, 9.0, 1.0),  # 9 / 7.5 = 1.2 (a lone pod is not throttled), capped at 1
        (15.0, 3.0, 0.2),  # two 50 % pods: 3 / 15 = 0.2
        (0.0, 0.0, 0.0),  # nothing held (no pod placed): defined as 0
    ],
)
def test_utilisation_is_work_done_over_share_held(vgpu_s, gpu_work_s, expected) -> None:
    t = terms(kpis(vgpu_s=vgpu_s, gpu_work_s=gpu_work_s))
    assert t["utilisation"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("vgpu_s", "total_gpus", "expected"),
    [
        (7.5, 1.0, 0.5),  # 1 - 7.5 / (15 s * 1 GPU) = 0.5
        (3.0, 1.0, 0.8),  # a 20 % pod: 1 - 3 / 15 = 0.8
        (7.5, 2.0, 0.75),  # v100x2: 1 - 7.5 / (15 * 2) = 0.75
        (15.0, 1.0, 0.0),  # the whole GPU held: 1 - 15 / 15 = 0
        (22.5, 1.0, 0.0),  # 150 % held during a rollout's overlap: 1 - 1.5 < 0, floored at 0
        (0.0, 1.0, 1.0),  # nothing held
    ],
)
def test_efficiency_is_the_share_of_the_cluster_left_free(vgpu_s, total_gpus, expected) -> None:
    assert terms(kpis(vgpu_s=vgpu_s), total_gpus)["efficiency"] == pytest.approx(expected)


# --- weights and the total ---------------------------------------------------------


def test_combine_weights_the_terms() -> None:
    t = {"utilisation": 0.4, "efficiency": 0.5, "latency": 0.5, "qos_violation": 0.5}
    # 0.2 * 0.4 + 1.0 * 0.5 - 1.0 * 0.5 - 2.0 * 0.5 = 0.08 + 0.5 - 0.5 - 1.0 = -0.92
    assert combine(t, RewardConfig()) == pytest.approx(-0.92)
    w = RewardConfig(w_utilisation=1.0, w_efficiency=2.0, w_latency=3.0, w_qos=4.0)
    # 1 * 0.4 + 2 * 0.5 - 3 * 0.5 - 4 * 0.5 = 0.4 + 1.0 - 1.5 - 2.0 = -2.1
    assert combine(t, w) == pytest.approx(-2.1)


def test_total_of_one_interval_by_hand() -> None:
    # one 50 % pod on one GPU for 15 s, 3 GPU-s of work, p95 120 ms, 1 of 10,000 over the SLO
    t = terms(kpis(p95_ms=120.0, violations=1, requests=10_000, vgpu_s=7.5, gpu_work_s=3.0))
    assert t == pytest.approx(
        {"utilisation": 0.4, "efficiency": 0.5, "latency": 0.5, "qos_violation": 0.5}
    )
    assert combine(t, RewardConfig()) == pytest.approx(-0.92)  # as above
    # a calm interval: p95 80 ms (< 90), no violation: 0.2 * 0.4 + 0.5 = 0.58
    assert combine(terms(kpis()), RewardConfig()) == pytest.approx(0.58)
    # an overload: p95 1 s, all 500 requests over the SLO: 0.2 * 0.4 + 0.5 - 5 - 2 = -6.42
    overload = terms(kpis(p95_ms=1000.0, violations=500, requests=500))
    assert combine(overload, RewardConfig()) == pytest.approx(-6.42)


# --- the KPIs the terms read ----------------------------------------------------------


def test_interval_kpis_by_hand() -> None:
    # ten requests of 10, 20, ..., 100 ms; the 30 ms one failed; SLO 60 ms
    latencies_s = np.arange(1, 11) / 100.0
    ok = np.ones(10, dtype=bool)
    ok[2] = False
    k = interval_kpis(latencies_s, ok, 60.0, 15.0, 7.5, 3.0, 15.0)
    # successes: 10, 20, 40, 50, 60, 70, 80, 90, 100 ms (9 values, positions 0..8)
    assert (k.requests, k.failures) == (10, 1)
    # failed (30) + slower than 60 ms (70, 80, 90, 100) = 5; 60 ms itself is not over the SLO
    assert k.violations == 5 and k.violation_rate == 0.5
    assert k.mean_ms == pytest.approx(520.0 / 9)  # (10+20+40+50+60+70+80+90+100) / 9
    assert k.p50_ms == pytest.approx(60.0)  # position 0.5 * 8 = 4 -> the 5th value
    assert k.p95_ms == pytest.approx(96.0)  # position 7.6: 90 + 0.6 * (100 - 90)
    assert k.p99_ms == pytest.approx(99.2)  # position 7.92: 90 + 0.92 * 10
    assert k.throughput_rps == pytest.approx(9 / 15.0)  # successes per second
    assert (k.vgpu_s, k.gpu_work_s, k.replica_s, k.duration_s) == (7.5, 3.0, 15.0, 15.0)


def test_interval_where_everything_failed_is_as_bad_as_the_penalty_allows() -> None:
    k = interval_kpis(np.full(4, 10.0), np.zeros(4, dtype=bool), SLO_MS, 15.0, 7.5, 0.0, 15.0)
    assert (k.requests, k.failures, k.violations) == (4, 4, 4)
    assert k.p95_ms == math.inf and k.throughput_rps == 0.0
    assert terms(k)["latency"] == 5.0 and terms(k)["qos_violation"] == 1.0


def test_empty_interval() -> None:
    k = interval_kpis(np.array([]), np.array([], dtype=bool), SLO_MS, 15.0, 0.0, 0.0, 0.0)
    assert (k.requests, k.p95_ms, k.violation_rate) == (0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 95.0, 5.0),  # one value is every percentile
        ([1.0, 3.0], 50.0, 2.0),  # halfway between
        ([1.0, 2.0, 3.0, 4.0, 5.0], 95.0, 4.8),  # position 3.8: 4 + 0.8 * 1
        ([1.0, 2.0, 3.0, 4.0, 5.0], 100.0, 5.0),
    ],
)
def test_percentile_of_sorted_values_by_hand(values, q, expected) -> None:
    assert percentile_sorted(np.array(values), q) == pytest.approx(expected)


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"w_qos": -1.0}, r"reward\.w_qos must be >= 0, got -1\.0"),
        ({"w_utilisation": -0.1}, r"reward\.w_utilisation must be >= 0, got -0\.1"),
        ({"qos_budget": 0.0}, r"reward\.qos_budget must be in \(0, 1\], got 0\.0"),
        ({"qos_budget": 1.5}, r"reward\.qos_budget must be in \(0, 1\], got 1\.5"),
        ({"latency_headroom": 1.0}, r"reward\.latency_headroom must be in \[0, 1\), got 1\.0"),
        ({"latency_headroom": -0.1}, r"reward\.latency_headroom must be in \[0, 1\), got -0\.1"),
    ],
)
def test_bad_reward_settings_are_config_errors(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        RewardConfig(**kwargs)


# --- the env hands the reward its configuration ---------------------------------------


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ("rtx3080", 0.5),  # 1 - 0.5 share / 1 GPU
        ("rtx3090", 0.5),  # the same on the 24 GB card
        ("v100x2", 0.75),  # 1 - 0.5 / 2 GPUs
    ],
)
def test_env_efficiency_of_the_initial_deployment(cluster: str, expected: float) -> None:
    """One 50 % pod, Ready at reset, held for 3 steps of 15 s: vgpu_seconds 0.5 * 15 = 7.5
    and efficiency 1 - 7.5 / (15 * GPUs) every step."""
    env = K8sGpuEnv(profile="low", cluster=cluster, reward={"w_utilisation": 0.0})
    env.reset(seed=0)
    for _ in range(3):
        _, reward, _, _, info = env.step(HOLD)
        assert info["autoscale/vgpu_seconds"] == pytest.approx(7.5)
        assert info["reward/efficiency"] == pytest.approx(expected)
        # low's p95 is about 76 ms (README, Calibration), under 90 ms: no latency term
        assert info["autoscale/p95_latency_ms"] < 90.0 and info["reward/latency"] == 0.0
        # 0.2 * 0 + 1 * efficiency - 1 * 0 - 2 * qos
        assert reward == pytest.approx(expected - 2.0 * info["reward/qos_violation"])


def test_env_caps_both_penalties_when_every_request_misses_the_slo() -> None:
    """SLO 1 ms: every request (~70 ms) violates it. latency = min(5, (76 / 1 - 0.6) / 0.4)
    = min(5, 188.5) = 5, qos = min(1, 1 / 0.0002) = 1; with w_utilisation 0 and efficiency
    0.5: 0 + 0.5 - 5 - 2 x 1 = -6.5."""
    env = K8sGpuEnv(profile="low", slo_ms=1.0, reward={"w_utilisation": 0.0})
    env.reset(seed=0)
    _, reward, _, _, info = env.step(HOLD)
    assert info["autoscale/qos_violation_rate"] == 1.0
    assert (info["reward/latency"], info["reward/qos_violation"]) == (5.0, 1.0)
    assert reward == pytest.approx(-6.5)


def test_env_passes_headroom_and_budget_from_its_config() -> None:
    """SLO 1000 ms and headroom 0: latency = (p95 / 1000 - 0) / (1 - 0) = p95 / 1000.
    A budget of 1 (100 %) makes the QoS term min(1, rate / 1) = the violation rate itself."""
    free = K8sGpuEnv(profile="low", slo_ms=1000.0, reward={"latency_headroom": 0.0})
    free.reset(seed=0)
    _, _, _, _, info = free.step(HOLD)
    assert info["reward/latency"] == pytest.approx(info["autoscale/p95_latency_ms"] / 1000.0)
    assert 0.06 < info["reward/latency"] < 0.09  # p95 60-90 ms on low
    strict = K8sGpuEnv(profile="low", slo_ms=72.0, reward={"qos_budget": 1.0})
    strict.reset(seed=0)
    _, _, _, _, info = strict.step(HOLD)
    rate = info["autoscale/qos_violation_rate"]
    assert 0.1 < rate < 0.9  # a 72 ms SLO is about low's median latency
    assert info["reward/qos_violation"] == pytest.approx(rate)
