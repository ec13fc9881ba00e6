"""Baselines as policies on a real K8sGpuEnv: static, HPA, tuned HPA, KPA, oracle, registry."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from k8s_gpu_rl.baselines import BASELINES, make_policy
from k8s_gpu_rl.baselines.base import Desired, encode_action, reachable_replicas
from k8s_gpu_rl.baselines.hpa import HpaPolicy, pod_gpu_util, pod_sample
from k8s_gpu_rl.baselines.kpa import KpaPolicy, kpa_scale
from k8s_gpu_rl.baselines.oracle import OraclePolicy
from k8s_gpu_rl.baselines.static import StaticPolicy
from k8s_gpu_rl.envs.backends.base import PodMetrics
from k8s_gpu_rl.envs.config import EnvConfig
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.envs.sim.config import ClusterConfig, DeploymentConfig
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.evaluation.rollout import run_episode
from k8s_gpu_rl.loadprofiles import parse_profile

SEED = 7


def episode(policy, profile="mixed", seed=SEED, **env_kwargs) -> tuple[pd.DataFrame, dict]:
    env = K8sGpuEnv(profile=profile, **env_kwargs)
    ep = run_episode(env, policy.bind(env), seed)
    return ep.timeseries, ep.kpis


def burst_profile():
    """10 users, a 3-minute burst to 150, back to 10."""
    return parse_profile(
        {
            "name": "burst",
            "wait_time": {"min": 0.4, "max": 1.0},
            "stages": [
                {"duration": 120, "users": 10, "spawn_rate": 5},
                {"duration": 180, "users": 150, "spawn_rate": 50},
                {"duration": 300, "users": 10, "spawn_rate": 50},
            ],
        }
    )


# --- the shared action encoding ----------------------------------------------------


@pytest.mark.parametrize(
    ("current", "wanted", "expected_delta"),
    [(1, 1, 0), (1, 2, 1), (1, 6, 2), (5, 1, -2), (3, 2, -1)],
)
def test_encode_action_moves_at_most_the_largest_delta(current, wanted, expected_delta) -> None:
    config = EnvConfig()
    action = encode_action(config, current, Desired(wanted, 50), current_gpucores=50)
    assert config.replica_deltas[action[0]] == expected_delta
    assert reachable_replicas(config, current, wanted) == current + expected_delta


def test_encode_action_share_absolute_and_relative() -> None:
    absolute = EnvConfig(share_action="absolute")
    assert absolute.share_levels[encode_action(absolute, 1, Desired(1, 50))[1]] == 50
    assert absolute.share_levels[encode_action(absolute, 1, Desired(1, 12))[1]] == 20
    relative = EnvConfig(share_action="relative")
    step = relative.share_steps
    assert step[encode_action(relative, 1, Desired(1, 20), current_gpucores=50)[1]] == -1
    assert step[encode_action(relative, 1, Desired(1, 100), current_gpucores=50)[1]] == 1
    assert step[encode_action(relative, 1, Desired(1, 50), current_gpucores=50)[1]] == 0


@pytest.mark.parametrize("share_action", ["absolute", "relative"])
def test_baseline_actions_agree_with_the_env_encoding(share_action) -> None:
    env = K8sGpuEnv(profile="low", share_action=share_action)
    env.reset(seed=0)
    for desired in (Desired(3, 30), Desired(1, 50), Desired(8, 100)):
        assert list(encode_action(env.config, 1, desired, 50)) == list(env.action_for(*desired))


# --- static ------------------------------------------------------------------------


def test_static_holds_one_pod_at_50_percent() -> None:
    series, kpis = episode(StaticPolicy(), profile="low")
    assert (series["replicas_spec"] == 1).all()
    assert (series["gpucores"] == 50).all()
    assert (series["action_replica_delta"] == 0).all()
    # The pod is Ready at reset (the Deployment runs before the load test) and holds its
    # share for the whole 600 s: 1 x 0.5 x 600 s = 300 vGPU-s = 1/12 = 0.08333 vGPU-h
    # (README: 0.0833 for static on low), 7.5 vGPU-s in each of the 40 steps.
    assert series["vgpu_seconds"].tolist() == pytest.approx([7.5] * 40)
    assert kpis["duration_s"] == 600.0
    assert kpis["vgpu_hours"] == pytest.approx(1 * 0.5 * 600.0 / 3600.0, rel=1e-12)
    assert kpis["replica_hours"] == pytest.approx(600.0 / 3600.0, rel=1e-12)
    assert kpis["mean_replicas"] == pytest.approx(1.0, rel=1e-12)
    # the model's 1536 MiB resident all along, on the 10240 MiB RTX 3080: 0.15
    assert kpis["gpu_memory_util"] == pytest.approx(1536.0 / 10240.0, rel=1e-12)
    # efficiency 1 - 0.5 / 1 GPU in each of the 40 steps
    assert kpis["reward_efficiency"] == pytest.approx(40 * 0.5, rel=1e-12)


def test_static_other_setting_rolls_the_share_first_then_scales() -> None:
    series, _ = episode(StaticPolicy(replicas=3, gpucores=30), profile="low")
    end = series.iloc[-1]
    assert (end["replicas_ready"], end["gpucores"], end["pods_pending"]) == (3, 30, 0)


# --- HPA ---------------------------------------------------------------------------


def scale_downs(series: pd.DataFrame) -> list[int]:
    """Rows where the Deployment went from more than one replica back to one."""
    spec = series["replicas_spec"].to_numpy()
    return [i for i in range(1, len(spec)) if spec[i - 1] > 1 and spec[i] == 1]


def test_hpa_on_mixed_scales_up_for_each_burst_and_down_300_s_after_the_last_wish() -> None:
    """mixed has two bursts (150 users at 12:00, 120 at 20:00): two scale-ups above the
    70 % target, each undone exactly one stabilisation window (300 s) after the last sync
    that recommended 2 replicas (the decision of a row is taken at its step's start)."""
    series, _ = episode(HpaPolicy(target=70), profile="mixed")
    decided_s = series["time_s"] - 15.0
    ups = [i for i in range(1, len(series)) if series["replicas_spec"].iloc[i - 1] == 1
           and series["replicas_spec"].iloc[i] > 1]  # fmt: skip
    downs = scale_downs(series)
    assert len(ups) == 2 and len(downs) == 2
    assert 12 * 60 <= decided_s[ups[0]] < 13 * 60  # during the 150-user minute
    assert 20 * 60 <= decided_s[ups[1]] < 20 * 60 + 45  # during the 45 s burst to 120
    for up, down in zip(ups, downs, strict=True):
        assert up < down
        assert series.loc[up, "policy_metric_value"] > 70 * 1.1  # outside the tolerance
        wishes = series.index[(series.index < down) & (series["policy_metric_replicas"] >= 2)]
        assert decided_s[down] - decided_s[wishes[-1]] == pytest.approx(300.0, abs=15.0)
    assert series["replicas_spec"].iloc[-1] == 1


def test_hpa_on_high_scales_up_at_the_first_sync_and_never_down() -> None:
    """high holds 100 users for 10 minutes; at a 50 % target the first sync with CPU metrics
    recommends 2 and the recommendation never stays at 1 for a whole 300 s window."""
    series, _ = episode(HpaPolicy(target=50), profile="high")
    spec = series["replicas_spec"].to_numpy()
    assert spec[0] == 1 and (spec[1:] == 2).all()
    assert series.loc[1, "policy_metric_value"] > 50 * 1.1
    assert scale_downs(series) == []


def test_hpa_never_changes_gpucores() -> None:
    cluster = ClusterConfig(deployment=DeploymentConfig(gpucores=30, gpumem_mib=3072))
    series, _ = episode(HpaPolicy(), profile="mixed", cluster=cluster)
    assert (series["gpucores"] == 30).all()
    assert (series["action_gpucores"] == 30).all()


@pytest.mark.parametrize(
    ("metric", "target", "profile"),
    # gpu_util is HAMi's per-container figure: a 50 % pod at medium load (~65 req/s of
    # (4 + 0.3 n) ms batches) computes about a quarter of the GPU, above a 20 % target
    [("rps", 50.0, "high"), ("gpu_util", 20.0, "medium")],
)
def test_hpa_on_pods_metrics_scales_up(metric, target, profile) -> None:
    series, _ = episode(HpaPolicy(metric=metric, target=target), profile=profile)
    assert series["replicas_spec"].max() >= 2
    assert (series["gpucores"] == 50).all()


def _pod(phase: str, **kw) -> PodMetrics:
    base = dict(
        name="p",
        phase=phase,
        created_s=0.0,
        started_s=1.0,
        ready_s=30.0,
        cpu_cores=0.5,
        cpu_request_cores=1.0,
        gpucores=50,
        rps=10.0,
        inflight=1.0,
    )
    return PodMetrics(**{**base, **kw})


def test_pod_sample_maps_pod_states_as_the_controller_sees_them() -> None:
    ready = pod_sample(_pod("Ready"), 0.5, 1.0, 100.0, 15.0)
    assert (
        ready.phase,
        ready.ready,
        ready.ready_transition_s,
        ready.usage_milli,
        ready.request_milli,
    ) == ("Running", True, 30.0, 500, 1000)
    starting = pod_sample(_pod("Starting", ready_s=math.inf), math.nan, 1.0, 100.0, 15.0)
    assert (starting.ready, starting.usage_milli, starting.ready_transition_s) == (False, None, 1.0)
    pending = pod_sample(
        _pod("Pending", started_s=math.inf, ready_s=math.inf), math.nan, 1.0, 100.0, 15.0
    )
    assert (pending.phase, pending.start_time_s) == ("Pending", None)
    assert pod_sample(_pod("Terminating"), 0.5, 1.0, 100.0, 15.0).deleted


def test_pod_gpu_util_splits_the_gpu_by_requests() -> None:
    pods = [_pod("Ready", rps=30.0), _pod("Ready", rps=10.0), _pod("Starting", rps=math.nan)]
    split = pod_gpu_util(pods, 80.0, 1.0)
    assert split[:2] == [60.0, 20.0] and math.isnan(split[2])


def test_hpa_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cpu'"):
        HpaPolicy(metric="cpuu")
    with pytest.raises(ConfigError, match="positive"):
        HpaPolicy(target=0)


# --- KPA ---------------------------------------------------------------------------


def test_kpa_scale_arithmetic() -> None:
    # stable 10 and panic 30 in flight, 2 ready pods, 2.8 per pod
    assert kpa_scale(10.0, 30.0, 2, 2.8, 1000.0, 2.0, 2.0) == (4, 11, True)
    # scale-down is limited to halving per decision; 0 ready counts as 1
    assert kpa_scale(0.0, 0.0, 8, 2.8, 1000.0, 2.0, 2.0) == (4, 4, False)
    assert kpa_scale(1.0, 1.0, 0, 2.8, 1000.0, 2.0, 2.0) == (1, 1, False)


@pytest.mark.parametrize(("metric", "target"), [("concurrency", None), ("rps", 60.0)])
def test_kpa_panics_on_a_burst_and_scales_up(metric, target) -> None:
    series, _ = episode(KpaPolicy(metric=metric, target=target), profile=burst_profile())
    burst = series[(series["time_s"] > 120) & (series["time_s"] <= 300)]
    assert burst["policy_panic"].max() == 1.0
    assert burst["replicas_spec"].max() >= 2
    first_panic = series.index[series["policy_panic"] == 1.0][0]
    assert series.loc[first_panic, "replicas_spec"] >= 2  # scaled up in the same decision
    assert series["policy_panic"].iloc[-1] == 0.0 and series["replicas_spec"].iloc[-1] == 1
    assert (series["gpucores"] == 50).all()


# --- oracle ------------------------------------------------------------------------


def test_oracle_serves_mixed_cheaper_than_static_and_hpa() -> None:
    _, oracle = episode(OraclePolicy())
    _, static = episode(StaticPolicy())
    _, hpa = episode(HpaPolicy())
    assert oracle["qos_violation_rate"] <= 0.0002  # the reward's QoS budget, which it verifies
    assert oracle["vgpu_hours"] < static["vgpu_hours"]
    assert oracle["vgpu_hours"] < hpa["vgpu_hours"]


@pytest.mark.parametrize("share_action", ["absolute", "relative"])
def test_oracle_moves_to_its_share_once_and_stays(share_action) -> None:
    policy = OraclePolicy()
    series, _ = episode(policy, share_action=share_action)
    cores = series["gpucores"].to_numpy()
    assert cores[-1] == policy.share
    settled = int(np.argmax(cores == policy.share))
    assert (cores[settled:] == policy.share).all()  # no share change after reaching it
    assert (np.diff(cores[: settled + 1]) <= 0).all() if policy.share < 50 else True
    assert (series["pods_pending"] == 0).all()


# --- registry and SB3 -------------------------------------------------------------


def test_registry_builds_and_binds_every_baseline() -> None:
    env = K8sGpuEnv(profile="low")
    for name in BASELINES:
        policy = make_policy(name, env)
        obs, _ = env.reset(seed=0)
        action, state = policy.predict(obs)
        assert env.action_space.contains(action) and state is None


def test_registry_errors_name_the_mistake() -> None:
    with pytest.raises(ConfigError, match="did you mean 'hpa'"):
        make_policy("hpx")
    with pytest.raises(ConfigError, match="static"):
        make_policy("static", replicas=1, bogus=2)


def test_baselines_work_with_sb3_evaluate_policy() -> None:
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = DummyVecEnv([lambda: Monitor(K8sGpuEnv(profile="low"))])
    policy = make_policy("hpa", vec)
    vec.seed(SEED)
    returns, lengths = evaluate_policy(
        policy, vec, n_eval_episodes=2, deterministic=True, return_episode_rewards=True
    )
    # low is 600 s: 40 decisions of 15 s. The first episode starts from seed SEED, so its
    # return must be the sum of the 40 rewards of the project's own rollout of that seed.
    assert lengths == [40, 40]
    env = K8sGpuEnv(profile="low")
    mine = run_episode(env, HpaPolicy().bind(env), SEED).timeseries["reward_total"]
    assert len(mine) == 40
    assert returns[0] == pytest.approx(float(mine.sum()), rel=1e-9)
