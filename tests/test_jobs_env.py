"""GpuJobScheduling-v0's API: Gymnasium's and SB3's checkers, determinism, pickling,
action masks, named reward terms, the SB3 predict of every baseline, the CLIs."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import k8s_gpu_rl  # noqa: F401  (registers the envs)
from k8s_gpu_rl.baselines.jobs import POLICIES, make_job_policy
from k8s_gpu_rl.envs.jobs.env import GpuJobSchedulingEnv
from k8s_gpu_rl.envs.jobs.sim.world import PlacementError
from k8s_gpu_rl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env() -> GpuJobSchedulingEnv:
    return GpuJobSchedulingEnv("small")


def rollout(env: GpuJobSchedulingEnv, seed: int, steps: int = 200) -> list[tuple]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [(obs.copy(),)]
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        obs, r, term, trunc, info = env.step(action)
        out.append((obs.copy(), r, term, trunc, info["jobs/time_s"]))
        if term or trunc:
            break
    return out


def test_gymnasium_and_sb3_checkers_pass() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # any checker warning fails the test
        check_env(GpuJobSchedulingEnv("small"), skip_render_check=True)
    sb3_check(GpuJobSchedulingEnv("small"), warn=True)


def test_registered_id_builds_the_env() -> None:
    made = gym.make("GpuJobScheduling-v0", queue="small")
    assert isinstance(made.unwrapped, GpuJobSchedulingEnv)
    made.close()


def test_same_seed_same_episode_other_seed_differs(env: GpuJobSchedulingEnv) -> None:
    a = rollout(env, 5)
    b = rollout(GpuJobSchedulingEnv("small"), 5)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert all(np.array_equal(u, v) for u, v in zip(x, y, strict=True))
    c = rollout(env, 6)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=False))


def test_pickled_env_continues_identically(env: GpuJobSchedulingEnv) -> None:
    rollout(env, 3, steps=20)
    clone = pickle.loads(pickle.dumps(env))
    mask = env.action_masks()
    action = int(np.flatnonzero(mask)[0])
    o1, r1, *_ = env.step(action)
    o2, r2, *_ = clone.step(action)
    assert np.array_equal(o1, o2) and r1 == r2


def test_every_unmasked_action_is_a_placement_hami_accepts(env: GpuJobSchedulingEnv) -> None:
    env.reset(seed=1)
    for _ in range(60):
        mask = env.action_masks()
        assert mask[-1]  # wait is always allowed
        for a in np.flatnonzero(mask[:-1]):
            p = env.decode(int(a))
            try:
                env.world.fitting_gpus(p.job, p.cluster, p.gpumem_mib, gpucores=p.gpucores)
            except PlacementError:  # pragma: no cover - the assertion below reports it
                pytest.fail(f"action {a} decodes to an invalid placement {p}")
            assert set(p.gpus) <= set(
                env.world.fitting_gpus(p.job, p.cluster, p.gpumem_mib, gpucores=p.gpucores)
            )
        _, _, term, trunc, _ = env.step(int(np.flatnonzero(mask)[0]))
        if term or trunc:
            break


def test_a_masked_action_waits_and_costs_the_invalid_term(env: GpuJobSchedulingEnv) -> None:
    env.reset(seed=2)
    invalid = np.flatnonzero(~env.action_masks())
    assert len(invalid), "the first decision should leave some actions masked"
    busy_before = sum(len(j.gpus) for j in env.world.jobs)
    _, reward, _, _, info = env.step(int(invalid[0]))
    assert info["reward/invalid"] == -env.config.reward.w_invalid
    assert sum(len(j.gpus) for j in env.world.jobs if j.phase == 1) <= busy_before
    assert reward == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward/")))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_baseline_runs_a_queue_through_predict(name: str) -> None:
    env = GpuJobSchedulingEnv("small")
    policy = make_job_policy(name, env)
    obs, _ = env.reset(seed=0)
    done, steps = False, 0
    while not done:
        action, _ = policy.predict(obs)
        assert env.action_space.contains(int(action))
        obs, _, term, trunc, _ = env.step(action)
        done, steps = term or trunc, steps + 1
    assert env.world.done() or env.world.deadlocked


def test_unknown_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="did you mean 'fifo'"):
        make_job_policy("fifi", GpuJobSchedulingEnv("small"))
    with pytest.raises(ConfigError, match="unknown field 'windw'"):
        GpuJobSchedulingEnv("small", config={"windw": 4})


def test_evaluate_cli_writes_runs_csv_and_a_user_mistake_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "res"
    cmd = [
        sys.executable,
        "-m",
        "evaluate",
        "--env",
        "jobs",
        "--queue",
        "small",
        "--policy",
        "fifo,optimal-allocation",
        "--repeats",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv")
    for col in (
        "policy",
        "queue",
        "seed",
        "makespan_s",
        "mean_jct_s",
        "p95_jct_s",
        "oom_failures",
        "deadlocked",
    ):
        assert col in runs.columns
    assert len(runs) == 4 and (out / "gantt-fifo.png").is_file() and (out / "report.md").is_file()
    bad = subprocess.run(
        [*cmd[:5], "--queue", "smal"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert (
        bad.returncode == 2
        and "error: queue 'smal' is unknown (did you mean 'small'?)" in bad.stderr
    )


def test_train_cli_trains_a_tiny_masked_ppo(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "train",
        "--env",
        "jobs",
        "--queue",
        "small",
        "--timesteps",
        "256",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (run,) = tmp_path.glob("ppo-jobs-small-0-*")
    assert (run / "model.zip").is_file() and (run / "config.yml").is_file()
    from k8s_gpu_rl.agents.jobs import load_masked_policy

    env = GpuJobSchedulingEnv("small")
    policy = load_masked_policy(run, env)
    obs, _ = env.reset(seed=0)
    action, _ = policy.predict(obs)
    assert env.action_masks()[int(action)]  # the mask is obeyed


def test_work_conserving_masks_wait_only_while_a_placement_is_possible() -> None:
    env = GpuJobSchedulingEnv("small", config={"work_conserving": True})
    env.reset(seed=0)
    mask = env.action_masks()
    assert mask[:-1].any() and not mask[-1]
    loose = GpuJobSchedulingEnv("small")
    loose.reset(seed=0)
    assert loose.action_masks()[-1]
    assert np.array_equal(loose.action_masks()[:-1], mask[:-1])
