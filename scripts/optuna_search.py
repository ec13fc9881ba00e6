"""Hyper-parameter search for PPO on K8sGpu-v0 with Optuna, on training profiles only.

    python scripts/optuna_search.py --trials 4 --timesteps 8192 --out results/optuna
    python scripts/optuna_search.py --config agents/levers/maskable.yaml --trials 20 ...

Each trial samples PPO's learning rate, rollout length, discount, GAE lambda, entropy
coefficient and network width (TPE sampler, seeded), trains ``--timesteps`` steps on
``--profile`` (default ``random``: a new generated profile per episode) with the rest of
the configuration from ``agents/ppo.yaml`` merged with ``--config``, and is scored on
validation profiles that are training-side too: generated ``random:seed=S`` profiles
(seeds from 900,000 up, apart from the generator seeds training draws in practice) and
``mixed``; never the held-out shapes. Score (lower is better): mean vGPU-hours x (1 +
max(0, violation rate / qos_budget - 1)), i.e. cost, inflated by how far the QoS budget
is overshot. The study lives in ``<out>/study.db`` (SQLite; ``--study`` names it, and a
rerun continues it), and ``<out>/best.yaml`` holds the best trial's ``ppo`` section,
ready for ``python -m train --config``. The default budget is tiny: it shows the
machinery, it does not find good settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from k8s_gpu_rl.errors import K8sGpuRlError
from k8s_gpu_rl.io import write_text

VALIDATION_SEED_BASE = 900_000


def sample_ppo(trial: Any) -> dict[str, Any]:
    """One trial's PPO arguments (YAML form, as in agents/ppo.yaml)."""
    n_steps = trial.suggest_categorical("n_steps", [256, 512, 1024])
    width = trial.suggest_categorical("width", [64, 128])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True),
        "n_steps": n_steps,
        "batch_size": min(256, n_steps),
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.99, 0.995]),
        "gae_lambda": trial.suggest_float("gae_lambda", 0.9, 0.99),
        "ent_coef": trial.suggest_float("ent_coef", 1e-4, 0.05, log=True),
        "policy_kwargs": {"net_arch": [width, width], "activation_fn": "tanh"},
    }


def train_and_score(
    ppo: dict[str, Any], args: argparse.Namespace, seed: int
) -> tuple[float, dict[str, float]]:
    """Train one model in memory and score it on the validation profiles."""
    import torch

    from k8s_gpu_rl.agents.ppo_config import (
        build_run_config,
        load_defaults,
        merge_config,
        ppo_kwargs,
    )
    from k8s_gpu_rl.agents.trainer import algo_class
    from k8s_gpu_rl.agents.vec_env import build_vec_env, normalise
    from k8s_gpu_rl.config import read_yaml

    data = merge_config(load_defaults(), read_yaml(args.config) if args.config else None, "config")
    data = merge_config(data, {"ppo": ppo, "training": {"n_envs": args.n_envs}}, "trial")
    config = build_run_config(data, "trial")
    torch.set_num_threads(config.training.torch_threads)
    venv = build_vec_env(args.profile, "sim", config)
    try:
        env = normalise(venv, config, None)
        model = algo_class(config.training.algo)(
            "MlpPolicy", env, seed=seed, **ppo_kwargs(config.ppo)
        )
        model.learn(args.timesteps)
        env.training = False
        kpis = validate(model, env, config, args.validation)
    finally:
        venv.close()
    budget = config.env.reward.qos_budget
    score = kpis["vgpu_hours"] * (1.0 + max(0.0, kpis["qos_violation_rate"] / budget - 1.0))
    return score, kpis


def validate(model: Any, stats: Any, config: Any, n_generated: int) -> dict[str, float]:
    """Mean vGPU-hours and request-weighted violation rate over the validation profiles."""
    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    env_fields = {k: v for k, v in vars_of(config.env).items() if k != "initial_share"}
    profiles = ["mixed"] + [f"random:seed={VALIDATION_SEED_BASE + k}" for k in range(n_generated)]
    masked = type(model).__name__ == "MaskablePPO"
    hours, requests, violations = [], 0.0, 0.0
    for profile in profiles:
        env = K8sGpuEnv(profile=profile, config=env_fields)
        obs, _ = env.reset(seed=1)
        done, info = False, {}
        while not done:
            extra = {"action_masks": env.action_masks()} if masked else {}
            action, _ = model.predict(stats.normalize_obs(obs), deterministic=True, **extra)
            obs, _, _, done, info = env.step(action)
        k = info["episode_kpis"]
        hours.append(k["vgpu_hours"])
        requests += k["requests"]
        violations += k["qos_violation_rate"] * k["requests"]
    return {
        "vgpu_hours": float(np.mean(hours)),
        "qos_violation_rate": violations / requests if requests else 0.0,
    }


def vars_of(config: Any) -> dict[str, Any]:
    from k8s_gpu_rl.config import to_dict

    return to_dict(config)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/optuna_search.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--trials", type=int, default=4, help="trials to add to the study (default 4)")
    p.add_argument("--timesteps", type=int, default=8192, help="training steps per trial")
    p.add_argument("--profile", default="random", help="training profile (default: random)")
    p.add_argument("--config", type=Path, help="YAML merged over agents/ppo.yaml (levers)")
    p.add_argument("--validation", type=int, default=3, help="generated validation profiles")
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    p.add_argument("--study", default="ppo-k8sgpu")
    p.add_argument("--out", type=Path, default=Path("results/optuna"))
    args = p.parse_args(argv)
    import optuna

    from k8s_gpu_rl.envs.levers import ProfileSampler
    from k8s_gpu_rl.loadprofiles import load_profile
    from k8s_gpu_rl.loadprofiles.profile import heldout_profiles

    try:
        if args.profile in heldout_profiles():
            raise K8sGpuRlError(f"--profile {args.profile}: a held-out profile is not for tuning")
        if not ProfileSampler.wanted(args.profile):
            load_profile(args.profile)
        args.out.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            study_name=args.study,
            storage=f"sqlite:///{(args.out / 'study.db').resolve()}",
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=args.seed),
            load_if_exists=True,
        )

        def objective(trial: optuna.Trial) -> float:
            ppo = sample_ppo(trial)
            score, kpis = train_and_score(ppo, args, args.seed + trial.number)
            for key, value in kpis.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("ppo", ppo)
            return score

        study.optimize(objective, n_trials=args.trials, show_progress_bar=True)
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    best = study.best_trial
    text = yaml.safe_dump({"ppo": best.user_attrs["ppo"]}, sort_keys=False)
    write_text(args.out / "best.yaml", text)
    for t in study.trials:
        attrs = t.user_attrs
        print(
            f"trial {t.number}: score {t.value:.4f} vGPU-h {attrs.get('vgpu_hours', float('nan')):.4f} "
            f"violations {attrs.get('qos_violation_rate', float('nan')):.5f} {t.params}"
        )
    print(f"best: trial {best.number}, score {best.value:.4f}; wrote {args.out / 'best.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
