"""From command-line arguments to a checked training plan, before anything heavy is started.

Every user mistake (unknown profile, bad config key, missing ``--resume`` path, bad backend)
is found here and raised as a :class:`~k8s_gpu_rl.errors.ConfigError`, before any env
worker starts and before a run directory is created.

On ``--resume`` the resumed run's ``config.yml`` replaces the shipped defaults as the base
that ``--config`` merges over, and its ``args.yml`` supplies the profile, seed and backend
unless they are given again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_gpu_rl.agents.ppo_config import (
    DEFAULTS_PATH,
    RunConfig,
    build_run_config,
    load_defaults,
    merge_config,
)
from k8s_gpu_rl.agents.run_dir import SavedModel, find_saved_model, looks_like_path
from k8s_gpu_rl.config import read_yaml
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import load_profile

DEFAULT_PROFILE = "mixed"
DEFAULT_BACKEND = "sim"
DEFAULT_SEED = 0


@dataclass(frozen=True)
class TrainRequest:
    """What the command line asked for; None where an option was not given."""

    profile: str | None = None
    timesteps: int | None = None
    seed: int | None = None
    n_envs: int | None = None
    config: Path | None = None
    backend: str | None = None
    cluster: str | None = None
    """--cluster: a shipped cluster name or a YAML path (e.g. one ``python -m sweep fit`` wrote)."""
    resume: Path | None = None
    out: Path = Path("runs")
    progress: bool | None = None
    argv: tuple[str, ...] = ()
    """The arguments as typed, for command.txt."""
    prog: str = "python -m train"
    """How the command was called (``python -m train`` or ``k8s-gpu-rl train``)."""


@dataclass(frozen=True)
class TrainPlan:
    """A checked plan: every default resolved, the configuration validated."""

    request: TrainRequest
    profile: str
    """A shipped profile name, or an absolute path to a profile YAML file."""
    seed: int
    backend: str
    config: RunConfig
    resume: SavedModel | None
    extra_timesteps: int | None
    """On resume, ``--timesteps``: steps to train beyond those already done."""
    progress: bool

    def args_record(self) -> dict[str, Any]:
        """The arguments with defaults filled in (args.yml)."""
        r = self.request
        return {
            "profile": self.profile,
            "timesteps": self.extra_timesteps if self.resume else self.config.training.timesteps,
            "seed": self.seed,
            "n_envs": self.config.training.n_envs,
            "config": str(r.config) if r.config else None,
            "backend": self.backend,
            "resume": str(r.resume) if r.resume else None,
            "out": str(r.out),
            "progress": self.progress,
        }


def plan_run(request: TrainRequest, stdout_is_tty: bool = False) -> TrainPlan:
    """Resolve defaults and check everything a user can get wrong."""
    resume = _resume_point(request.resume) if request.resume is not None else None
    prior = _prior_args(resume)
    config = _config(request, resume)
    profile = _profile(
        request.profile or prior.get("profile") or config.training.profile or DEFAULT_PROFILE
    )
    backend = request.backend or prior.get("backend") or DEFAULT_BACKEND
    seed = request.seed if request.seed is not None else int(prior.get("seed", DEFAULT_SEED))
    _probe_env(profile, backend, config)
    progress = request.progress if request.progress is not None else stdout_is_tty
    extra = request.timesteps if resume else None
    return TrainPlan(request, profile, seed, backend, config, resume, extra, progress)


def _resume_point(path: Path) -> SavedModel:
    saved = find_saved_model(path)
    if saved.vecnormalize is None:
        raise ConfigError(
            f"{path}: no VecNormalize statistics beside {saved.model} "
            "(vecnormalize.pkl, or ppo_vecnormalize_<steps>_steps.pkl for a checkpoint)"
        )
    return saved


def _prior_args(resume: SavedModel | None) -> dict[str, Any]:
    path = resume.run_file("args.yml") if resume else None
    data = read_yaml(path) if path else None
    return data if isinstance(data, dict) else {}


def _profile(profile: str) -> str:
    from k8s_gpu_rl.envs.levers import ProfileSampler

    if ProfileSampler.wanted(profile):  # a new generated profile per episode
        ProfileSampler(profile)  # raises ConfigError naming a bad generator field
        return profile
    load_profile(profile)  # raises ConfigError naming an unknown profile or a bad file
    return str(Path(profile).resolve()) if looks_like_path(profile) else profile


def _config(request: TrainRequest, resume: SavedModel | None) -> RunConfig:
    base_path = resume.run_file("config.yml") if resume else None
    base = read_yaml(base_path) if base_path else load_defaults()
    where = str(request.config or base_path or DEFAULTS_PATH)
    override = read_yaml(request.config) if request.config is not None else None
    merged = merge_config(base, override, where)
    if request.cluster is not None:  # --cluster wins over the config files' cluster
        cluster = (
            str(Path(request.cluster).resolve())
            if looks_like_path(request.cluster)
            else request.cluster
        )
        merged = merge_config(merged, {"cluster": cluster}, "--cluster")
    config = build_run_config(merged, where)
    if request.n_envs is not None:
        config = config.with_training(n_envs=request.n_envs)
    if request.timesteps is not None and resume is None:
        config = config.with_training(timesteps=request.timesteps)
    return config


def _probe_env(profile: str, backend: str, config: RunConfig) -> None:
    """Build the env once here so that a bad backend or env setting fails before workers start."""
    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    K8sGpuEnv(profile=profile, backend=backend, cluster=config.cluster, config=config.env).close()
