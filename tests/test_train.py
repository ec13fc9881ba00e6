"""``python -m train`` end to end: CLI runs through subprocess with tiny budgets, resume,
interrupt, a user's mistakes, and the trained agent as a :class:`PPOPolicy`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from k8s_gpu_rl.agents.callbacks import GracefulStop
from k8s_gpu_rl.agents.ppo_config import TrainingConfig, load_defaults, load_run_config
from k8s_gpu_rl.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = {"ppo": {"n_steps": 128, "batch_size": 64}, "training": {"checkpoint_every": 256}}
RUN_FILES = (
    "model.zip",
    "vecnormalize.pkl",
    "config.yml",
    "args.yml",
    "command.txt",
    "manifest.json",
)


def train(*args: object, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "train", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def only_run(out: Path) -> Path:
    (run_dir,) = out.iterdir()
    return run_dir


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_yaml(tmp_path_factory.mktemp("config") / "tiny.yaml", TINY)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path) -> Path:
    out = tmp_path_factory.mktemp("runs")
    done = train(
        "--profile", "low", "--timesteps", 512, "--n-envs", 1, "--out", out, "--config", tiny_config
    )
    assert done.returncode == 0, done.stderr
    return only_run(out)


def test_smoke_run_writes_model_manifest_and_tensorboard(first_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert first_run.name.startswith("ppo-low-0-")
    for name in RUN_FILES:
        assert (first_run / name).is_file(), name
    m = manifest(first_run)
    assert (m["status"], m["timesteps"], m["seed"], m["profile"]) == ("completed", 512, 0, "low")
    assert set(m["versions"]) == {"python", "torch", "stable_baselines3", "gymnasium", "numpy"}
    assert "git_commit" in m and m["start_time"] <= m["end_time"]
    config = yaml.safe_load((first_run / "config.yml").read_text())
    assert config["ppo"]["n_steps"] == 128
    assert config["ppo"]["policy_kwargs"]["net_arch"] == [64, 64]
    assert config["training"]["timesteps"] == 512 and config["training"]["n_envs"] == 1
    assert yaml.safe_load((first_run / "args.yml").read_text())["profile"] == "low"
    assert "--profile low" in (first_run / "command.txt").read_text()
    assert (first_run / "checkpoints" / "ppo_256_steps.zip").is_file()
    assert (first_run / "checkpoints" / "ppo_vecnormalize_256_steps.pkl").is_file()
    events = EventAccumulator(str(first_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "episode/vgpu_hours",
        "reward/qos_violation",
        "rollout/ep_rew_mean",
        "episode/p95_latency_ms",
        "episode/reward_qos_violation",
        "autoscale/replicas_ready",
        "train/value_loss",
    } <= tags
    # 512 steps of one env in rollouts of 128; low's episodes are 40 steps, so they end at
    # steps 40, 80, ..., 480: three in each rollout, logged at steps 128, 256, 384, 512.
    count = events.Scalars("episode/count")
    assert [(e.step, e.value) for e in count] == [(128, 3), (256, 3), (384, 3), (512, 3)]
    # Each episode holds at least one pod at >= 20 % (the lowest share level) and, with HAMi
    # capping one GPU's cores at 100 %, at most the whole RTX 3080, for 600 s:
    # 0.2 * 600 / 3600 = 0.0333 <= vGPU-h <= 1.0 * 600 / 3600 = 0.1667.
    vgpu = [e.value for e in events.Scalars("episode/vgpu_hours")]
    assert len(vgpu) == 4
    assert all(0.2 * 600 / 3600 - 1e-6 <= v <= 600 / 3600 + 1e-6 for v in vgpu), vgpu


def test_resume_continues_counting_timesteps(first_run: Path, tmp_path: Path) -> None:
    done = train("--resume", first_run, "--timesteps", 256, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    resumed = only_run(tmp_path)
    m = manifest(resumed)
    assert (m["status"], m["timesteps_at_start"], m["timesteps"]) == ("completed", 512, 768)
    assert m["resumed_from"] == str(first_run / "model.zip") and m["profile"] == "low"
    assert yaml.safe_load((resumed / "config.yml").read_text())["ppo"]["n_steps"] == 128


@pytest.mark.slow
def test_sigint_saves_a_resumable_model(tiny_config: Path, tmp_path: Path) -> None:
    from k8s_gpu_rl.agents.policy import PPOPolicy

    out = tmp_path / "runs"
    args = ["--profile", "mixed", "--timesteps", "1000000", "--n-envs", "2", "--out", out]
    proc = subprocess.Popen(
        [sys.executable, "-m", "train", *map(str, args), "--config", str(tiny_config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*/checkpoints/*.zip")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the env workers get it too
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    run_dir = only_run(out)
    m = manifest(run_dir)
    assert m["status"] == "interrupted" and m["timesteps"] >= 256
    assert PPOPolicy.load(run_dir).num_timesteps == m["timesteps"]
    done = train(
        "--resume", run_dir, "--timesteps", 256, "--n-envs", 1, "--out", tmp_path / "resumed"
    )
    assert done.returncode == 0, done.stderr
    assert manifest(only_run(tmp_path / "resumed"))["timesteps"] >= m["timesteps"] + 256


@pytest.mark.parametrize("case", ["profile", "config_key", "resume"])
def test_user_mistakes_exit_2_without_traceback(case: str, tmp_path: Path) -> None:
    bad_config = write_yaml(tmp_path / "bad.yaml", {"ppo": {"n_step": 64}})
    args, expected = {
        "profile": (["--profile", "mixd"], ["'mixd'", "did you mean 'mixed'"]),
        "config_key": (
            ["--config", bad_config],
            ["bad.yaml", "'n_step'", "did you mean 'n_steps'"],
        ),
        "resume": (["--resume", tmp_path / "missing"], ["missing", "no such run directory"]),
    }[case]
    done = train(*args, "--out", tmp_path / "runs", timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    for text in expected:
        assert text in done.stderr
    assert not (tmp_path / "runs").exists()


def test_policy_predicts_valid_actions_deterministically(first_run: Path) -> None:
    from k8s_gpu_rl.agents.policy import PPOPolicy
    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    policy = PPOPolicy.load(first_run)
    count = policy.obs_stats.obs_rms.count
    env = K8sGpuEnv(profile="low")
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        action, state = policy.predict(obs)
        assert env.action_space.contains(action) and state is None
        assert np.array_equal(action, policy.predict(obs, deterministic=True)[0])
        obs, *_ = env.step(action)
    assert policy.obs_stats.obs_rms.count == count  # statistics frozen
    assert policy.describe()["num_timesteps"] == 512 and policy.run_config["env"]["slo_ms"] == 150.0
    assert PPOPolicy.load(first_run / "checkpoints" / "ppo_256_steps.zip").num_timesteps == 256


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"env\.reward: unknown field 'w_qoss' \(did you mean 'w_qos'\?\)"
    ):
        load_run_config(write_yaml(tmp_path / "a.yaml", {"env": {"reward": {"w_qoss": 1}}}))
    with pytest.raises(
        ConfigError, match=r"unknown section 'trainig' \(did you mean 'training'\?\)"
    ):
        load_run_config(write_yaml(tmp_path / "b.yaml", {"trainig": {}}))
    with pytest.raises(ConfigError, match=r"ppo\.seed.*--seed"):
        load_run_config(write_yaml(tmp_path / "c.yaml", {"ppo": {"seed": 1}}))
    with pytest.raises(ConfigError, match=r"activation_fn: unknown activation 'tahn'"):
        load_run_config(
            write_yaml(tmp_path / "d.yaml", {"ppo": {"policy_kwargs": {"activation_fn": "tahn"}}})
        )


def test_config_merges_over_the_shipped_defaults(tmp_path: Path) -> None:
    cfg = load_run_config(
        write_yaml(
            tmp_path / "c.yaml",
            {
                "ppo": {"learning_rate": "1e-4", "policy_kwargs": {"net_arch": [32]}},
                "env": {"slo_ms": 120, "reward": {"w_qos": 6}},
                "cluster": {"startup": {"median_s": 30.0}},
            },
        )
    )
    assert cfg.ppo["learning_rate"] == 1e-4 and cfg.ppo["n_steps"] == 1024
    assert cfg.ppo["policy_kwargs"] == {"net_arch": [32], "activation_fn": "tanh"}
    assert cfg.env.slo_ms == 120 and cfg.env.reward.w_qos == 6
    assert cfg.env.reward.w_efficiency == 1.0
    assert cfg.cluster.startup.median_s == 30.0 and cfg.cluster.name == "rtx3080"
    assert load_run_config(None, cfg.to_yaml_dict()) == cfg  # config.yml reads back unchanged
    assert load_defaults()["training"] == vars(TrainingConfig())  # YAML and dataclass agree


def test_graceful_stop_asks_once_then_aborts() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == before


def test_cluster_option_picks_the_simulated_cluster(tmp_path: Path) -> None:
    from k8s_gpu_rl.agents.plan import TrainRequest, plan_run

    plan = plan_run(TrainRequest(cluster="v100x2", timesteps=64, out=tmp_path))
    assert plan.config.cluster.name == "v100x2"
    assert len(plan.config.cluster.nodes[0].gpus) == 2
    fitted = tmp_path / "fitted.yaml"
    fitted.write_text("name: fitted\nserving: {batch_base_ms: 40.0, batch_per_item_ms: 12.0}\n")
    plan = plan_run(TrainRequest(cluster=str(fitted), timesteps=64, out=tmp_path))
    assert (plan.config.cluster.name, plan.config.cluster.serving.batch_base_ms) == ("fitted", 40.0)
    with pytest.raises(ConfigError, match=r"unknown cluster 'rtx308' \(did you mean 'rtx3080'\?\)"):
        plan_run(TrainRequest(cluster="rtx308", timesteps=64, out=tmp_path))
