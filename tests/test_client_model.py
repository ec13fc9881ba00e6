"""The simulator's load-generator model (kernel.c, ``client.locust_processes`` and after).

Expected figures are hand-computed from the configured constants (closed-loop and
busy-server arithmetic) or taken from the user's table in ../shared/FACTS.md.
"""

from __future__ import annotations

import hashlib
import json
import pickle

import gymnasium as gym
import numpy as np
import pytest

import k8s_gpu_rl.envs  # noqa: F401  (registers K8sGpu-v0)
from k8s_gpu_rl.config import replace
from k8s_gpu_rl.envs.sim import state as st
from k8s_gpu_rl.envs.sim.calibration import (
    CLIENT_BOUND_CLUSTER,
    closed_form_inference_cost_ms,
    level_profile,
    simulate_client_bound,
    simulate_level,
)
from k8s_gpu_rl.envs.sim.cluster import SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config
from k8s_gpu_rl.errors import ConfigError

THINK_MEAN_S = 1.5  # between(1, 2), the levels' think time


def _default_latency_s(config: ClusterConfig) -> float:
    """One request's latency on an idle default pod, by hand from the constants: transport
    (log-normal mean median * exp(sigma^2 / 2)), the pod's CPU (5 ms at 2 cores over 2
    workers), the batcher's max_queue_delay for a lone request, and the batch's GPU time
    at gpucores 50 under ``force`` ((4.0 + 0.3) / 0.5 ms)."""
    c, s, d = config.client, config.serving, config.deployment
    transport = c.transport_median_ms * np.exp(c.transport_sigma**2 / 2)
    transport += c.tail_probability * c.tail_mean_ms
    cpu = s.cpu_ms_per_request * np.ceil(d.cpu_limit) / d.cpu_limit
    gpu = (s.batch_base_ms + s.batch_per_item_ms) / (d.gpucores / 100)
    return (transport + cpu + s.max_queue_delay_us / 1000 + gpu) / 1000


def _one_process(cost: dict[str, float], **client: object) -> ClusterConfig:
    return replace(
        ClusterConfig(), client={"locust_processes": 1, "client_cost_ms": cost, **client}
    )


def test_a_client_bound_config_plateaus_where_the_default_does_not() -> None:
    bound = _one_process({"send": 90.0, "receive": 10.0})  # 100 ms: at most 10 req/s
    default = ClusterConfig()
    seeds = (0, 1)
    b = {n: simulate_level(bound, n, seeds, 300.0) for n in (10, 50, 100)}
    d = {n: simulate_level(default, n, seeds, 300.0) for n in (10, 50, 100)}
    # 50 and 100 users ask ~30 and ~60 req/s: one busy process serves 1 / 100 ms
    for n in (50, 100):
        assert b[n]["total_rps"] == pytest.approx(10.0, rel=0.02)
    assert b[100]["p50_ms"] > 1.8 * b[50]["p50_ms"] > 1.8 * b[10]["p50_ms"]
    # the default keeps up: users / (think mean + latency), latency flat
    latency_s = _default_latency_s(default)
    for n in (10, 50, 100):
        assert d[n]["total_rps"] == pytest.approx(n / (THINK_MEAN_S + latency_s), rel=0.03)
    assert d[100]["p50_ms"] < 1.1 * d[10]["p50_ms"]
    assert all(r["success_rate"] == 1.0 for r in (*b.values(), *d.values()))


@pytest.mark.parametrize("processes", [2, 4])
def test_each_process_adds_its_capacity(processes: int) -> None:
    # 150 users ask ~90 req/s; n processes of 100 ms per request serve n x 10 req/s
    config = _one_process({"send": 90.0, "receive": 10.0}, locust_processes=processes)
    figures = simulate_level(config, 150, (0,), 300.0)
    assert figures["total_rps"] == pytest.approx(10.0 * processes, rel=0.02)


def test_same_seed_same_run_and_a_pickled_cluster_resumes_exactly() -> None:
    config = load_cluster_config(CLIENT_BOUND_CLUSTER)
    a = SimCluster(config, level_profile(50, 300.0), seed=3)
    b = SimCluster(config, level_profile(50, 300.0), seed=3)
    a.advance(100.0)
    b.advance(100.0)
    c = pickle.loads(pickle.dumps(b))
    ia, ic = a.advance(100.0), c.advance(100.0)
    assert ia.latencies_s.size > 500
    assert np.array_equal(ia.latencies_s, ic.latencies_s)
    assert np.array_equal(ia.inference, ic.inference)


def test_closed_loop_arithmetic_when_the_client_does_not_bind() -> None:
    # a process per user: the costs lengthen each cycle and the timed part the latency
    config = replace(
        ClusterConfig(),
        client={
            "tail_probability": 0.0,
            "client_cost_ms": {"build": 20, "send": 30, "receive": 10},
        },
    )
    figures = simulate_level(config, 10, (0, 1, 2), 300.0)
    latency_s = _default_latency_s(config) + 0.030 + 0.010  # 0.1111 s
    cycle_s = THINK_MEAN_S + 0.020 + latency_s  # build is outside Locust's timer
    assert figures["total_rps"] == pytest.approx(10 / cycle_s, rel=0.03)  # 6.13 req/s
    assert figures["p50_ms"] == pytest.approx(latency_s * 1000, abs=2.0)  # 111.1 ms


def test_the_task_mix_sends_cheap_gets_that_never_reach_triton() -> None:
    config = replace(
        ClusterConfig(),
        client={"request_mix": {"inference": 5, "cheap": 3, "cheap_round_trip_ms": 2.0}},
    )
    cluster = SimCluster(config, level_profile(20, 400.0), seed=0)
    cluster.advance(60.0)
    counted_before = cluster.s.pod_counters[:, st.C_SUCCESS].sum()
    iv = cluster.advance(300.0)
    n = iv.latencies_s.size
    assert iv.inference.mean() == pytest.approx(5 / 8, abs=4 * np.sqrt(5 / 8 * 3 / 8 / n))
    # a cheap GET: the default 2 ms of client CPU (half each way) plus the 2 ms round trip
    cheap_ms = np.median(iv.latencies_s[~iv.inference]) * 1000
    assert cheap_ms == pytest.approx(2.0 + 2.0, abs=0.2)
    # Triton counts inference only (requests still in flight at the ends: a few)
    counted = cluster.s.pod_counters[:, st.C_SUCCESS].sum() - counted_before
    assert abs(counted - iv.inference.sum()) <= 20


def test_without_a_ready_endpoint_both_kinds_are_refused_after_their_send() -> None:
    config = replace(load_cluster_config(CLIENT_BOUND_CLUSTER), client={"locust_processes": None})
    cluster = SimCluster(config, level_profile(10, 200.0), seed=0)
    cluster.scale(0)
    cluster.advance(40.0)  # the pod is gone (grace 30 s)
    iv = cluster.advance(60.0)
    assert iv.latencies_s.size > 100 and not iv.ok.any()
    # refused_ms 1 after the timed send: 93 ms for inference, half of 1.2 ms for a GET
    assert np.allclose(iv.latencies_s[iv.inference], 0.093 + 0.001)
    assert np.allclose(iv.latencies_s[~iv.inference], 0.0006 + 0.001)


def test_a_request_queued_past_its_timeout_fails_at_the_deadline() -> None:
    # 20 users on one process of 0.5 s per request: the queue passes the 2 s timeout
    config = _one_process({"send": 400.0, "receive": 100.0}, timeout_s=2.0)
    cluster = SimCluster(config, level_profile(20, 200.0), seed=0)
    iv = cluster.advance(200.0)
    assert (~iv.ok).sum() > 0
    assert np.all(iv.latencies_s[~iv.ok] == 2.0)
    assert np.all(iv.latencies_s[iv.ok] <= 2.0)


def test_the_users_client_bound_table_is_reproduced_within_the_bounds() -> None:
    comparisons = simulate_client_bound(seeds=(0, 1, 2, 3, 4), duration_s=300.0)
    for c in comparisons:
        assert c.simulated["success_rate"] == 1.0  # the user saw zero failures
        assert abs(c.error("total_rps")) <= 0.20, (c.level.label, c.simulated)
        assert abs(c.error("inference_rps")) <= 0.20, (c.level.label, c.simulated)
        assert abs(c.error("p50_ms")) <= 0.30, (c.level.label, c.simulated)
    # the saturated levels run at the process's capacity: 1 / (5/8 x 149.5 + 3/8 x 1.2) ms
    capacity = 1000.0 / (5 / 8 * 149.5 + 3 / 8 * 1.2)  # 10.65 req/s
    for c in comparisons[2:]:
        assert c.simulated["total_rps"] == pytest.approx(capacity, rel=0.02)


def test_the_shipped_client_cost_is_the_closed_form_total() -> None:
    config = load_cluster_config(CLIENT_BOUND_CLUSTER)
    # mean of 10.4, 11.5, 10.1 req/s = 10.667 -> 93.75 ms per request; GETs 3/8 x 1.2 ms
    assert closed_form_inference_cost_ms(config) == pytest.approx((93.75 - 0.45) / 0.625)
    assert config.client.client_cost_ms.total_ms == pytest.approx(149.28, abs=0.5)
    assert config.client.process_capacity_rps() == pytest.approx(10.65, abs=0.01)


def test_the_default_cluster_does_not_model_the_load_generator() -> None:
    assert not ClusterConfig().client.models_load_generator
    assert ClusterConfig().client.process_capacity_rps() == float("inf")
    cluster = SimCluster(ClusterConfig(), level_profile(10, 30.0), seed=0)
    assert cluster.s.params[st.P_CLIENT_MODE] == 0.0


DEFAULT_EPISODES_SHA256 = "972f6f9a8fcdb05d1a8511665b7956f17a78ee85dc5a52d797dd529513d32ed8"
"""The default cluster's episodes (seed 7, random actions, low/mixed/high) before the
load-generator model was added. Regenerate only on a deliberate change of the default
simulator, and say so in the commit."""
LATER_KPIS = ("tenant_gpu_seconds", "client_saturated", "client_saturated_fraction")
"""KPIs added after the hash was taken (0 on the default cluster, which has no tenant and
never saturates its load generator); every earlier KPI, observation and reward is hashed."""


def test_default_episodes_are_bit_identical_to_before_the_client_model() -> None:
    digest = hashlib.sha256()
    for profile in ("low", "mixed", "high"):
        env = gym.make("K8sGpu-v0", profile=profile)
        obs, _ = env.reset(seed=7)
        env.action_space.seed(7)
        digest.update(obs.tobytes())
        done = False
        while not done:
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            digest.update(obs.tobytes())
            digest.update(np.float64(reward).tobytes())
            done = term or trunc
        kpis = {k: v for k, v in info["episode_kpis"].items() if k not in LATER_KPIS}
        digest.update(json.dumps(kpis, sort_keys=True, default=str).encode())
    assert digest.hexdigest() == DEFAULT_EPISODES_SHA256


@pytest.mark.parametrize(
    ("client", "needle"),
    [
        (
            {"locust_processes": 0},
            r"locust_processes must be >= 1 \(or null: one per user\), got 0",
        ),
        ({"client_cost_ms": {"send": -1}}, r"client_cost_ms.send must be >= 0 ms, got -1"),
        ({"client_cost_ms": {"bild": 3}}, r"unknown field 'bild' \(did you mean 'build'\?\)"),
        ({"request_mix": {"inference": 0}}, r"request_mix.inference must be > 0, got 0"),
        ({"request_mix": {"cheep": 3}}, r"unknown field 'cheep' \(did you mean 'cheap'\?\)"),
        (
            {"request_mix": {"cheap_round_trip_ms": 0}},
            r"request_mix.cheap_round_trip_ms must be > 0, got 0",
        ),
    ],
)
def test_bad_client_fields_are_named(client: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_cluster_config({"client": client})
