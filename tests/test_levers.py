"""Issue-12 levers: action masks, per-episode generated profiles, extra features, frame
stacking, the Lagrangian QoS multiplier and the lever configs. Every lever is opt-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from k8s_gpu_rl.agents.constraint import QosLagrangian, lagrangian_step
from k8s_gpu_rl.agents.ppo_config import QosConstraint, load_run_config
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.envs.observation import FEATURES
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import load_profile
from k8s_gpu_rl.loadprofiles.profile import heldout_profiles

HOLD = np.array([2, 1])  # replica delta 0, share step 0
EXTRAS = ("rate_trend", "queue_share", "starting_share", "since_share_change")
LEVERS_DIR = Path(__file__).resolve().parents[1] / "agents" / "levers"


# --------------------------------------------------------------------------- masks


def test_masks_at_the_initial_deployment_by_hand() -> None:
    # 1 replica at gpucores 50 / 5120 MiB on one 10240 MiB GPU, min_replicas 1.
    # Replicas: -2 and -1 go below 1; +1 gives 2 x 50 = 100 %: fits; +2 needs 150 %.
    # Share (maxUnavailable floor(25 % of 1) = 0, so the new pod must fit beside the old):
    # 40 % (4096 MiB) fits beside 50 % (5120 MiB); 70 % (7168 MiB) does not.
    env = K8sGpuEnv(profile="low")
    env.reset(seed=1)
    mask = env.action_masks()
    assert mask.tolist() == [False, False, True, True, False, True, True, False]


def test_masks_at_the_ends_of_the_share_levels() -> None:
    env = K8sGpuEnv(profile="low", cluster={"deployment": {"gpucores": 20, "gpumem_mib": 2048}})
    env.reset(seed=1)
    assert env.action_masks()[5:].tolist() == [False, True, True]  # no level below 20
    top = K8sGpuEnv(profile="low", cluster={"deployment": {"gpucores": 100, "gpumem_mib": 10240}})
    top.reset(seed=1)
    mask = top.action_masks()
    assert mask[7] is np.False_  # no level above 100
    assert mask[3:5].tolist() == [False, False]  # a second pod at 100 % never fits


def test_masks_agree_with_the_clipping_rules_along_a_trajectory() -> None:
    env = K8sGpuEnv(profile="mixed")
    env.reset(seed=4)
    rng = np.random.default_rng(4)
    for _ in range(60):
        mask = env.action_masks()
        for i in range(5):  # each replica choice with the share held, on a copy of the env
            assert _clipped(env, [i, 1]) == (not mask[i])
        for j in range(3):
            assert _clipped(env, [2, j]) == (not mask[5 + j])
        env.step(rng.integers(0, [5, 3]))


def test_asking_for_masks_does_not_change_the_episode() -> None:
    actions = [np.random.default_rng(9).integers(0, [5, 3]) for _ in range(40)]
    a, b = K8sGpuEnv(profile="high"), K8sGpuEnv(profile="high")
    oa, _ = a.reset(seed=2)
    ob, _ = b.reset(seed=2)
    for action in actions:
        a.action_masks()
        ra = a.step(action)
        rb = b.step(action)
        assert np.array_equal(ra[0], rb[0]) and ra[1] == rb[1]


def _clipped(env: K8sGpuEnv, action: list[int]) -> bool:
    info: dict = {}
    env._decode(np.array(action), info)
    return bool(info["action/clipped"])


# --------------------------------------------------------------------------- profiles


def test_random_profile_is_redrawn_per_reset_and_deterministic_per_seed() -> None:
    env = K8sGpuEnv(profile="random")
    names = []
    for seed in (5, 6, 7):
        _, info = env.reset(seed=seed)
        names.append(info["profile"])
    assert len(set(names)) == 3  # a new profile each time
    again = K8sGpuEnv(profile="random")
    _, info = again.reset(seed=6)
    assert info["profile"] == names[1]
    assert again.max_steps == int(np.ceil(again.profile.duration_s / 15.0 - 1e-9))
    rewards = [_episode_rewards(K8sGpuEnv(profile="random"), 6) for _ in range(2)]
    assert rewards[0] == rewards[1]


def test_random_profile_follows_its_spec_and_never_a_heldout_shape() -> None:
    env = K8sGpuEnv(
        profile="random:shape=bursts,max_users=80,min_duration_s=300,max_duration_s=600"
    )
    heldout = {h: load_profile(h).stages for h in heldout_profiles()}
    assert len(heldout) >= 6
    for seed in range(15):
        env.reset(seed=seed)
        p = env.profile
        assert p.name.startswith("random-seed_")
        assert "shape bursts" in p.description
        assert 300 <= p.duration_s <= 600
        assert max(s.users for s in p.stages) <= 80
        assert all(p.stages != stages for stages in heldout.values())


def test_random_profile_needs_the_simulator() -> None:
    with pytest.raises(ConfigError, match="needs the sim backend, not 'local'"):
        K8sGpuEnv(profile="random", backend="local")
    with pytest.raises(ConfigError, match="max_users"):
        K8sGpuEnv(profile="random:max_users=-3")


def _episode_rewards(env: K8sGpuEnv, seed: int) -> list[float]:
    env.reset(seed=seed)
    out, done = [], False
    while not done:
        _, r, _, done, _ = env.step(HOLD)
        out.append(r)
    return out


# --------------------------------------------------------------------------- features


def test_extra_features_on_a_constant_load() -> None:
    # low: 10 users, think time uniform 0.4-1.0 s (mean 0.7 s), ~75 ms per request:
    # 10 / 0.775 = 12.9 req/s. After 6 minutes both rate windows hold the same steady
    # load, so the 1 m / 5 m trend is 1; one pod serves it without queueing much.
    env = K8sGpuEnv(profile="low", extra_features=EXTRAS)
    assert env.observation_space.shape == (len(FEATURES) + 4,)
    obs, _ = env.reset(seed=3)
    for _ in range(24):  # 6 minutes
        obs, *_ = env.step(HOLD)
    trend, queue, starting, since = obs[18:]
    assert obs[0] * 200.0 == pytest.approx(12.9, rel=0.1)
    assert trend == pytest.approx(1.0, abs=0.08)
    assert 0.0 <= queue < 0.5
    assert starting == 0.0  # the one pod is Ready
    assert since == pytest.approx(24 * 15.0 / 600.0)  # no share change since the start
    obs, *_ = env.step([3, 1])  # scale to 2: the new pod starts (cold start > 15 s)
    obs, *_ = env.step(HOLD)
    assert obs[20] == pytest.approx(0.5)  # 1 of 2 wanted replicas not yet available
    for _ in range(3):  # back to 1 replica, until the second pod is gone
        obs, *_ = env.step([1, 1])
    _, _, _, _, info = env.step([2, 0])  # one level down (50 -> 40)
    assert info["action/gpucores"] == 40 and not info["action/clipped"]
    for _ in range(3):
        obs, *_ = env.step(HOLD)
    assert obs[21] == pytest.approx(4 * 15.0 / 600.0)  # changed 4 steps (60 s) ago


def test_frame_stack_keeps_the_last_observations_oldest_first() -> None:
    env = K8sGpuEnv(profile="high", frame_stack=3)
    plain = K8sGpuEnv(profile="high")
    obs, _ = env.reset(seed=8)
    first, _ = plain.reset(seed=8)
    assert obs.shape == (54,) and env.observation_space.shape == (54,)
    assert np.array_equal(obs, np.tile(first, 3))
    seen = [first]
    for _ in range(4):
        obs, *_ = env.step(HOLD)
        seen.append(plain.step(HOLD)[0])
    assert np.array_equal(obs, np.concatenate(seen[-3:]))
    assert env.feature_names[0] == "request_rate@t-2"


def test_extra_feature_typo_is_named() -> None:
    with pytest.raises(ConfigError, match="did you mean 'rate_trend'"):
        K8sGpuEnv(profile="low", extra_features=("rate_trnd",))


# --------------------------------------------------------------------------- constraint


def test_lagrangian_step_by_hand() -> None:
    c = QosConstraint(enabled=True, lr=0.5, w_min=0.0, w_max=10.0, max_ratio=10.0)
    assert lagrangian_step(2.0, 4e-4, 2e-4, c) == pytest.approx(2.5)  # 2 x budget: +0.5
    assert lagrangian_step(2.0, 0.0, 2e-4, c) == pytest.approx(1.5)  # no violation: -0.5
    assert lagrangian_step(2.0, 1e-2, 2e-4, c) == pytest.approx(6.5)  # ratio 50 capped at 10
    assert lagrangian_step(0.2, 0.0, 2e-4, c) == 0.0  # floor
    assert lagrangian_step(9.9, 1e-2, 2e-4, c) == 10.0  # ceiling


def test_lagrangian_callback_on_a_hand_made_rollout() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: K8sGpuEnv(profile="low")] * 2)
    from stable_baselines3.common.logger import Logger

    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, seed=0)
    model.set_logger(Logger(folder=None, output_formats=[]))
    cb = QosLagrangian(QosConstraint(enabled=True, lr=0.5), w_qos=2.0, budget=2e-4)
    cb.init_callback(model)
    cb.on_training_start({}, {})
    cb.on_rollout_start()
    # 100 requests without violations, then 300 at 0.1 %: 0.3 / 400 = 7.5e-4 = 3.75 x budget
    for infos in (
        [{"autoscale/requests": 100, "autoscale/qos_violation_rate": 0.0}, {}],
        [{"autoscale/requests": 300, "autoscale/qos_violation_rate": 1e-3}, {}],
    ):
        cb.update_locals({"infos": infos})
        cb.on_step()
    cb.on_rollout_end()
    expected = 2.0 + 0.5 * (3.75 - 1.0)
    assert cb.w == pytest.approx(expected)
    assert [c.reward.w_qos for c in venv.get_attr("config")] == [pytest.approx(expected)] * 2


def test_qos_constraint_checks_its_fields() -> None:
    from k8s_gpu_rl.agents.ppo_config import build_run_config, load_defaults, merge_config

    data = merge_config(load_defaults(), {"training": {"qos_w_min": 3.0, "qos_w_max": 1.0}}, "x")
    with pytest.raises(ConfigError, match=r"need 0 <= qos_w_min <= qos_w_max, got 3.0, 1.0"):
        build_run_config(data, "x")


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(p.stem for p in LEVERS_DIR.glob("*.yaml")))
def test_lever_configs_load(name: str) -> None:
    config = load_run_config(LEVERS_DIR / f"{name}.yaml")
    assert config.ppo["n_steps"] == 1024  # merged over the shipped defaults
    env = K8sGpuEnv(profile=config.training.profile or "mixed", config=config.env)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_bad_algo_is_named() -> None:
    from k8s_gpu_rl.agents.ppo_config import build_run_config, load_defaults, merge_config

    data = merge_config(load_defaults(), {"training": {"algo": "maskable"}}, "x.yaml")
    with pytest.raises(ConfigError, match="did you mean 'maskable_ppo'"):
        build_run_config(data, "x.yaml")


# --------------------------------------------------------------------------- a masked run


def test_a_masked_run_trains_loads_and_predicts_only_valid_actions(tmp_path: Path) -> None:
    import json

    import yaml

    from k8s_gpu_rl.agents.cli import main
    from k8s_gpu_rl.agents.policy import PPOPolicy

    config = tmp_path / "masked.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ppo": {"n_steps": 128, "batch_size": 64},
                "env": {"extra_features": ["rate_trend", "since_share_change"]},
                "training": {"algo": "maskable_ppo", "checkpoint_every": 0, "profile": "random"},
            }
        )
    )
    argv = ["--config", str(config), "--timesteps", "128", "--n-envs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    (run,) = tmp_path.glob("ppo-random-0-*")
    assert json.loads((run / "manifest.json").read_text())["algo"] == "MaskablePPO"
    policy = PPOPolicy.load(run)
    assert policy.masked
    env = K8sGpuEnv(profile="mixed", extra_features=("rate_trend", "since_share_change"))
    policy.bind(env)
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        mask = env.action_masks()
        action, _ = policy.predict(obs)
        assert mask[int(action[0])] and mask[5 + int(action[1])]
        obs, *_ = env.step(action)


# --------------------------------------------------------------------------- a recurrent run


def test_a_recurrent_run_trains_loads_and_carries_its_lstm_state(tmp_path: Path) -> None:
    import json

    import yaml

    from k8s_gpu_rl.agents.cli import main
    from k8s_gpu_rl.agents.policy import PPOPolicy
    from k8s_gpu_rl.evaluation.rollout import run_episode

    config = tmp_path / "recurrent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ppo": {"n_steps": 64, "batch_size": 32, "policy_kwargs": {"lstm_hidden_size": 8}},
                "training": {"algo": "recurrent_ppo", "checkpoint_every": 0},
            }
        )
    )
    argv = ["--config", str(config), "--timesteps", "64", "--n-envs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    (run,) = tmp_path.glob("ppo-mixed-0-*")
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["algo"], manifest["policy"]) == ("RecurrentPPO", "MlpLstmPolicy")
    policy = PPOPolicy.load(run)
    assert type(policy.model).__name__ == "RecurrentPPO" and not policy.masked
    env = K8sGpuEnv(profile="low")
    obs, _ = env.reset(seed=0)
    action, state = policy.predict(obs, state=None, episode_start=np.ones((1,), dtype=bool))
    assert env.action_space.contains(np.asarray(action))
    hidden, cell = state  # (LSTM layers, envs, units): the 8 units asked for, one layer
    assert hidden.shape == cell.shape == (1, 1, 8) and np.abs(hidden).sum() > 0
    episode = run_episode(env, policy, seed=3)  # evaluate's rollout, state passed along
    assert len(episode.timeseries) == env.max_steps and episode.kpis["vgpu_hours"] > 0


def test_lstm_keys_are_accepted_and_unknown_policy_keys_named() -> None:
    from k8s_gpu_rl.agents.ppo_config import build_run_config, load_defaults, merge_config

    ok = {"ppo": {"policy_kwargs": {"lstm_hidden_size": 32, "n_lstm_layers": 2}}}
    config = build_run_config(merge_config(load_defaults(), ok, "x.yaml"), "x.yaml")
    assert config.ppo["policy_kwargs"]["lstm_hidden_size"] == 32
    bad = {"ppo": {"policy_kwargs": {"lstm_hiden_size": 32}}}
    with pytest.raises(ConfigError, match="did you mean 'lstm_hidden_size'"):
        build_run_config(merge_config(load_defaults(), bad, "x.yaml"), "x.yaml")
