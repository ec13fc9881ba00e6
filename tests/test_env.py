"""The environment's API: Gymnasium and SB3 checks, determinism, pickling, vector envs, clipping."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from k8s_gpu_rl import envs
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.envs.observation import FEATURE_NAMES, FEATURES
from k8s_gpu_rl.errors import ConfigError

HOLD = np.array([2, 1])  # replica delta 0, share step 0: keep the initial Deployment


def rollout(
    env: gym.Env, seed: int, actions: list[np.ndarray]
) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, _, _, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    return observations, rewards


def test_registered_and_made_by_id() -> None:
    env = gym.make(envs.ENV_ID, profile="high")
    assert isinstance(env.unwrapped, K8sGpuEnv)
    assert env.unwrapped.profile.name == "high"
    assert env.observation_space.shape == (len(FEATURES),)


def test_gymnasium_check_env() -> None:
    gym_check_env(K8sGpuEnv(profile="low"), skip_render_check=True)


def test_sb3_check_env() -> None:
    from stable_baselines3.common.env_checker import check_env

    check_env(K8sGpuEnv(profile="low"), warn=True)


def test_same_seed_same_episode_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    actions = [rng.integers(0, [5, 3]) for _ in range(30)]
    obs_a, rew_a = rollout(K8sGpuEnv(profile="mixed"), 11, actions)
    obs_b, rew_b = rollout(K8sGpuEnv(profile="mixed"), 11, actions)
    assert all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b, strict=True))
    assert rew_a == rew_b
    _, rew_c = rollout(K8sGpuEnv(profile="mixed"), 12, actions)
    assert rew_c != rew_a


def test_pickled_env_continues_identically() -> None:
    env = K8sGpuEnv(profile="medium")
    env.reset(seed=5)
    for _ in range(4):
        env.step(HOLD)
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(4):
        a = env.step(np.array([3, 0]))
        b = clone.step(np.array([3, 0]))
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_episode_is_one_pass_over_the_profile() -> None:
    env = K8sGpuEnv(profile="low")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, info = env.step(HOLD)
        assert not terminated
        steps += 1
    assert steps == int(np.ceil(env.profile.duration_s / 15.0))
    assert info["time_s"] == pytest.approx(steps * 15.0)


def test_info_reports_every_reward_term_and_kpi() -> None:
    env = K8sGpuEnv(profile="low")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(HOLD)
    terms = ("utilisation", "efficiency", "latency", "qos_violation")
    w = env.config.reward
    expected = (
        w.w_utilisation * info["reward/utilisation"]
        + w.w_efficiency * info["reward/efficiency"]
        - w.w_latency * info["reward/latency"]
        - w.w_qos * info["reward/qos_violation"]
    )
    assert reward == pytest.approx(expected)
    assert all(f"reward/{t}" in info for t in terms)
    assert info["autoscale/requests"] > 100  # 10 users for 15 s at ~13 req/s
    assert 60 < info["autoscale/p95_latency_ms"] < 100
    assert info["autoscale/vgpu_seconds"] == pytest.approx(0.5 * 15.0)
    assert info["reward/efficiency"] == pytest.approx(1.0 - 0.5 * 15.0 / 15.0)


def test_out_of_range_actions_are_clipped_and_reported() -> None:
    env = K8sGpuEnv(profile="low", max_replicas=3)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2, -4]))
    assert info["action/gpucores"] == 40  # clipped to step -1: 50 -> 40
    assert any("outside the action space" in c for c in info["action/clipped"])
    for _ in range(12):
        _, _, _, _, info = env.step(np.array([2, 0]))  # one level down whenever no rollout runs
    assert info["action/gpucores"] == 20
    assert any("beyond the share levels" in c for c in info["action/clipped"])
    for _ in range(2):
        _, _, _, _, info = env.step(np.array([9, 1]))  # +2 replicas each step (index clipped to 4)
    assert info["action/replicas"] == 3
    assert any("outside [1, 3]" in c for c in info["action/clipped"])
    _, _, _, _, info = env.step(np.array([np.nan, 1]))
    assert any("malformed" in c for c in info["action/clipped"])


def test_absolute_share_action() -> None:
    env = K8sGpuEnv(profile="low", share_action="absolute")
    assert env.action_space.nvec.tolist() == [5, 6]
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2, 1]))
    assert info["action/gpucores"] == 30


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_action_for_moves_towards_a_desired_state(mode: str) -> None:
    env = K8sGpuEnv(profile="low", share_action=mode)
    env.reset(seed=0)
    for _ in range(12):
        _, _, _, _, info = env.step(env.action_for(replicas=5, gpucores=20))
    assert info["action/replicas"] == 5 and info["action/gpucores"] == 20
    _, _, _, _, info = env.step(env.action_for(replicas=5, gpucores=20))
    assert info["action/replica_delta"] == 0 and not info["action/clipped"]


def test_replicas_clipped_to_what_hami_can_place() -> None:
    env = K8sGpuEnv(profile="low", max_replicas=8, share_action="absolute")
    env.reset(seed=0)
    for _ in range(3):
        _, _, _, _, info = env.step(np.array([4, 5]))  # gpucores 100: exclusive, one per GPU
    assert info["action/replicas"] == 1
    assert any("HAMi can place" in c for c in info["action/clipped"])


def test_rollout_that_cannot_finish_is_clipped() -> None:
    env = K8sGpuEnv(profile="low")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(np.array([2, 2]))  # 50 -> 70: no room beside the old pod
    assert info["action/gpucores"] == 50 and info["autoscale/pods_pending"] == 0
    assert any("would not fit beside the current ones" in c for c in info["action/clipped"])
    assert obs[FEATURE_NAMES.index("gpucores_target")] == pytest.approx(0.5)


def test_rollout_in_progress_shows_serving_and_target_share() -> None:
    env = K8sGpuEnv(profile="low")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(np.array([2, 0]))  # 50 -> 40: the new pod is starting
    assert info["action/gpucores"] == 40 and not info["action/clipped"]
    assert obs[FEATURE_NAMES.index("gpucores_serving")] == pytest.approx(0.5)
    assert obs[FEATURE_NAMES.index("gpucores_target")] == pytest.approx(0.4)
    for _ in range(3):
        obs, *_ = env.step(HOLD)
    assert obs[FEATURE_NAMES.index("gpucores_serving")] == pytest.approx(0.4)


def test_observation_names_and_share_feature() -> None:
    env = K8sGpuEnv(profile="low")
    obs, info = env.reset(seed=0)
    assert info["feature_names"] == FEATURE_NAMES
    assert obs[FEATURE_NAMES.index("gpucores_serving")] == pytest.approx(0.5)
    for _ in range(6):
        obs, *_ = env.step(HOLD)
    rate = obs[FEATURE_NAMES.index("request_rate")] * env.config.rps_scale
    assert 10 < rate < 16  # the user's 13 req/s, seen through rate()[1m]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"profile": "hihg"}, "did you mean 'high'"),
        ({"backend": "simm"}, "did you mean 'sim'"),
        ({"slo_msec": 10}, "did you mean 'slo_ms'"),
        ({"slo_ms": -5}, "slo_ms must be positive"),
        ({"cluster": "rtx308"}, "did you mean 'rtx3080'"),
        ({"reward": {"w_qos": -1}}, "w_qos must be >= 0"),
        ({"share_levels": [20, 10]}, "increasing"),
        ({"share_levels": [10, 20]}, "initial gpucores 50"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_value(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        K8sGpuEnv(**kwargs)


def test_sb3_vector_envs() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    def make() -> gym.Env:
        return K8sGpuEnv(profile="low")

    # VecEnv.seed(0) seeds its env i with 0 + i: each must replay a plain env of that seed
    expected = [rollout(make(), seed, [HOLD] * 3) for seed in (0, 1)]
    for cls in (DummyVecEnv, SubprocVecEnv):
        venv = cls([make, make])
        venv.seed(0)
        obs = venv.reset()
        assert obs.shape == (2, len(FEATURES))
        for i in (0, 1):
            assert np.array_equal(obs[i], expected[i][0][0])
        for step in range(3):
            obs, rewards, dones, infos = venv.step(np.array([HOLD, HOLD]))
            for i in (0, 1):
                assert np.array_equal(obs[i], expected[i][0][step + 1])
                assert rewards[i] == pytest.approx(expected[i][1][step], rel=1e-6)
                assert infos[i]["reward/efficiency"] == 0.5  # one 50 % pod on one GPU
        assert not dones.any() and len(infos) == 2
        venv.close()


def test_random_initial_share_draws_levels_from_the_seed() -> None:
    env = K8sGpuEnv(profile="low", initial_share="random")
    starts = []
    for seed in range(12):
        env.reset(seed=seed)
        starts.append(env.backend.deployment().gpucores)
    assert set(starts) <= set(env.config.share_levels) and len(set(starts)) >= 3
    env.reset(seed=3)
    assert env.backend.deployment().gpucores == starts[3]
    assert K8sGpuEnv(profile="low").config.initial_share == "deployment"
