"""An evaluation from plan to files: every policy x profile x seed, then the statistics.

:func:`build_plan` checks every user input before anything runs (unknown policy or
profile with "did you mean", ``repeats < 1``, a missing PPO model, a missing
``baselines/calibrated.yaml`` entry) and raises :class:`~k8s_gpu_rl.errors.ConfigError`.
:func:`run_evaluation` then runs and writes, each file atomically and each run's files as
soon as that run ends (a crash loses only the run in progress):

```
<out>/
  config.json                       the plan: command, policies, profiles, seeds
  runs/<policy>/<profile>/seed<k>.csv   per-step time series of one run
  runs/<policy>/<profile>/seed<k>.json  that run's episode KPIs
  runs.csv                          one row per run (policy, profile, seed, KPIs)
  summary.csv, summary.json         mean, std, 95 % CI per policy, profile and KPI
  comparisons.csv                   pairwise Welch t-tests and Hedges' g per KPI
  vgpu_vs_oracle.csv                vGPU-hours / oracle's (when the oracle ran)
  comparisons.json                  both of the above
  plots/<profile>_timeseries.png, plots/<profile>_kpis.png
  report.md
```
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from k8s_gpu_rl.baselines import BASELINES, CALIBRATED, check_policy_name, make_policy
from k8s_gpu_rl.config import suggest
from k8s_gpu_rl.envs.k8s_gpu_env import BACKENDS, DEFAULT_CLUSTER
from k8s_gpu_rl.envs.sim.config import load_cluster_config
from k8s_gpu_rl.errors import BackendError, ConfigError
from k8s_gpu_rl.evaluation.io import write_csv_atomic, write_json_atomic, write_text_atomic
from k8s_gpu_rl.evaluation.rollout import Episode, make_env, run_episode
from k8s_gpu_rl.evaluation.validity import split_valid
from k8s_gpu_rl.loadprofiles import LoadProfile, load_profile

PPO = "ppo"
POLICIES = (PPO, *BASELINES)


@dataclass(frozen=True)
class EvalPlan:
    """A checked evaluation request."""

    policies: tuple[str, ...]
    profiles: tuple[tuple[str, LoadProfile], ...]
    """(label used in file names and tables, the profile)."""
    repeats: int
    base_seed: int
    out: Path
    backend: str = "sim"
    cluster: str | None = None
    model: Path | None = None
    command: str = ""
    env_config: dict[str, Any] = field(default_factory=dict)
    """EnvConfig fields for every env: the PPO run's ``env:`` section (so the agent is judged
    on the env it was trained on, and every baseline on the same one), else empty."""
    backend_options: dict[str, Any] = field(default_factory=dict)
    """The live backend's options (``--backend-config``: LocalOptions or K8sOptions fields)."""
    allow_saturated_client: bool = False
    """Keep runs whose load generator was the bottleneck in the statistics (they are left
    out and listed in ``excluded_runs.csv`` otherwise; :mod:`~k8s_gpu_rl.evaluation.validity`)."""

    @property
    def seeds(self) -> list[int]:
        """Run i of every policy and profile uses seed base_seed + i."""
        return [self.base_seed + i for i in range(self.repeats)]


@dataclass
class EvalOutputs:
    """In-memory results, as written to the output folder."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    oracle_ratios: pd.DataFrame
    report: Any
    """The :class:`k8s_gpu_rl.evaluation.report.ReportInputs` of ``report.md``."""
    first_series: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)


def newest_model(runs_root: Path) -> Path | None:
    """The newest run directory under ``runs_root`` that holds a ``model.zip``."""
    found = sorted(Path(runs_root).glob("**/model.zip"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def _profiles(specs: list[str]) -> tuple[tuple[str, LoadProfile], ...]:
    out: dict[str, LoadProfile] = {}
    for spec in specs:
        profile = load_profile(spec)
        label = profile.name if spec == profile.name else Path(spec).stem
        if label in out and out[label] != profile:
            raise ConfigError(f"two profiles are both named {label!r}; rename one of the files")
        out[label] = profile
    return tuple(out.items())


def _ppo_model(model: Path | None, runs_root: Path) -> Path:
    if model is None:
        model = newest_model(runs_root)
        if model is None:
            raise ConfigError(
                f"--policy ppo needs a trained model: none found under {runs_root}/ "
                "(train one with `python -m train`, or pass --model PATH)"
            )
    if not Path(model).exists():
        raise ConfigError(f"--model {model}: no such file or directory")
    return Path(model)


TRAINING_ONLY = ("initial_share",)
"""EnvConfig fields that shape training, not the task: evaluation keeps their defaults
(every policy starts from the Deployment as deployed)."""


def _run_env_config(model: Path) -> dict[str, Any]:
    """The fields of the PPO run's ``env:`` section (``config.yml``) that differ from the
    EnvConfig defaults (empty when there is none), except the training-only ones."""
    from k8s_gpu_rl.agents.run_dir import find_saved_model
    from k8s_gpu_rl.config import from_dict, read_yaml, to_dict
    from k8s_gpu_rl.envs.config import EnvConfig

    config_file = find_saved_model(model).run_file("config.yml")
    if config_file is None:
        return {}
    data = read_yaml(config_file) or {}
    env = (data.get("env") or {}) if isinstance(data, dict) else {}
    given = to_dict(from_dict(EnvConfig, env, f"{config_file}: env"))  # validated early
    default = to_dict(EnvConfig())
    return {
        key: value
        for key, value in given.items()
        if value != default[key] and key not in TRAINING_ONLY
    }


def build_plan(
    policies: list[str],
    profiles: list[str],
    repeats: int = 5,
    base_seed: int = 1000,
    out: Path | None = None,
    backend: str = "sim",
    cluster: str | None = None,
    model: Path | None = None,
    command: str = "",
    runs_root: Path = Path("runs"),
    backend_config: Path | None = None,
) -> EvalPlan:
    """Check every input and return the plan (raises ConfigError on any mistake)."""
    names = list(dict.fromkeys(p.strip() for p in policies if p.strip()))
    if not names:
        raise ConfigError(f"--policy: name at least one of {', '.join(POLICIES)}")
    for name in names:
        check_policy_name(name, extra=(PPO,))
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    if not profiles:
        raise ConfigError("--profile: name at least one load profile")
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}{suggest(backend, BACKENDS)}; available: {', '.join(BACKENDS)}"
        )
    load_cluster_config(cluster)
    backend_options = _backend_options(backend, backend_config)
    for name in names:
        if name in CALIBRATED:  # a missing or stale calibrated.yaml fails before any run
            from k8s_gpu_rl.baselines.calibrated import load_calibrated

            load_calibrated(name)
    env_config: dict[str, Any] = {}
    if PPO in names:
        model = _ppo_model(model, runs_root)
        env_config = _run_env_config(model)
    out = out or Path("results") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return EvalPlan(
        tuple(names),
        _profiles(profiles),
        repeats,
        base_seed,
        Path(out),
        backend,
        cluster,
        model,
        command,
        env_config,
        backend_options,
    )


def _backend_options(backend: str, path: Path | None) -> dict[str, Any]:
    """``--backend-config``'s fields, checked against the backend's options class."""
    if path is None:
        return {}
    from k8s_gpu_rl.config import from_dict, read_yaml

    if backend == "local":
        from k8s_gpu_rl.envs.backends.local.backend import LocalOptions as options_class
    elif backend == "k8s":
        from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions as options_class
    else:
        raise ConfigError(
            f"--backend-config is for the live backends (local, k8s), not {backend!r}"
        )
    if not Path(path).is_file():
        raise ConfigError(f"--backend-config {path}: no such file")
    data = read_yaml(path) or {}
    from_dict(options_class, data, str(path))  # a bad key or value fails here, with its name
    return dict(data)


def _policy(name: str, env: Any, ppo: Any) -> Any:
    if name != PPO:
        return make_policy(name, env)
    spaces = (ppo.observation_space.shape, tuple(ppo.action_space.nvec))
    if spaces != (env.observation_space.shape, tuple(env.action_space.nvec)):
        raise ConfigError(
            f"the PPO model's spaces (observation {spaces[0]}, action {list(spaces[1])}) do not match the "
            f"env's ({env.observation_space.shape}, {list(env.action_space.nvec)}): it was trained on "
            "another version of K8sGpu-v0; retrain it"
        )
    return ppo.bind(env) if hasattr(ppo, "bind") else ppo  # a MaskablePPO reads the masks


def _load_ppo(model: Path) -> Any:
    try:
        from k8s_gpu_rl.agents.policy import PPOPolicy
    except ImportError as exc:
        raise ConfigError(f"--policy ppo: cannot import k8s_gpu_rl.agents.policy ({exc})") from None
    return PPOPolicy.load(model)


def _settings(policy: Any) -> str:
    describe = getattr(policy, "describe", None)
    if describe is None:
        return repr(policy)
    return ", ".join(f"{k}={_short(v)}" for k, v in describe().items() if k != "name")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


class _RunWriter:
    """Writes each run's files the moment it ends."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: list[dict[str, Any]] = []

    def add(self, policy: str, profile: str, seed: int, episode: Episode) -> None:
        folder = self.out / "runs" / policy / profile
        write_csv_atomic(folder / f"seed{seed}.csv", episode.timeseries)
        row = {"policy": policy, "profile": profile, "seed": seed, **episode.kpis}
        write_json_atomic(folder / f"seed{seed}.json", row)
        self.rows.append(row)
        write_csv_atomic(self.out / "runs.csv", pd.DataFrame(self.rows))


def run_evaluation(plan: EvalPlan, progress: bool = True) -> EvalOutputs:
    """Run every policy on every profile with every seed, then write the results."""
    plan.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan.out / "config.json", _plan_json(plan))
    ppo = _load_ppo(plan.model) if PPO in plan.policies else None
    writer, first, settings = _RunWriter(plan.out), {}, {}
    total = len(plan.policies) * len(plan.profiles) * plan.repeats
    with tqdm(total=total, desc="runs", unit="run", file=sys.stderr, disable=not progress) as bar:
        for label, profile in plan.profiles:
            for name in plan.policies:
                env = make_env(
                    profile, plan.backend, plan.cluster, plan.env_config, plan.backend_options
                )
                try:  # a live backend's processes must stop whatever happens
                    policy = _policy(name, env, ppo)
                    settings[name] = _settings(policy)
                    live_hpa = _install_live_hpa(plan, name, env, policy)
                    try:
                        for seed in plan.seeds:
                            bar.set_postfix_str(f"{name} {label} seed {seed}")
                            episode = run_episode(env, policy, seed)
                            writer.add(name, label, seed, episode)
                            first.setdefault(label, {}).setdefault(name, episode.timeseries)
                            bar.update()
                    finally:
                        if live_hpa:
                            env.backend.remove_hpa()
                    settings[name] = _settings(policy)  # with what the last run found (oracle)
                    slo_ms = env.config.slo_ms
                finally:
                    env.close()
    runs = _valid_runs(plan, pd.DataFrame(writer.rows))
    return _finish(plan, runs, first, settings, slo_ms)


def _valid_runs(plan: EvalPlan, runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the statistics use; the others go to ``excluded_runs.csv`` with reasons."""
    kept, excluded = split_valid(runs, plan.allow_saturated_client)
    columns = ["policy", "profile", "seed", "reason"]
    rows = [dataclasses.asdict(e) for e in excluded]
    write_csv_atomic(plan.out / "excluded_runs.csv", pd.DataFrame(rows, columns=columns))
    if len(kept) == 0 and len(runs) > 0:
        raise BackendError(
            f"every run's load generator was saturated (see {plan.out / 'excluded_runs.csv'}): "
            "the figures would measure Locust, not the cluster; give Locust more processes "
            "(load_generator in --backend-config) or pass --allow-saturated-client"
        )
    return kept


LIVE_HPA_POLICIES = ("hpa", "hpa-autoscale", "hpa-tuned")


def _install_live_hpa(plan: EvalPlan, name: str, env: Any, policy: Any) -> bool:
    """On the ``k8s`` backend the HPA baselines are the cluster's own HPA controller: create
    an autoscaling/v2 HPA with the policy's settings (the backend then never scales; the
    policy only observes). Whether one was installed."""
    if plan.backend != "k8s" or name not in LIVE_HPA_POLICIES:
        return False
    from k8s_gpu_rl.envs.backends.k8s.backend import hpa_behavior

    d = policy.describe()
    if d.get("metric", "cpu") != "cpu":
        raise ConfigError(
            f"--backend k8s runs {name} as a live HPA on CPU utilisation; its metric is "
            f"{d.get('metric')!r}"
        )
    env.backend.install_hpa(
        target_pct=float(d["target"]),
        min_replicas=int(d["min_replicas"]),
        max_replicas=int(d["max_replicas"]),
        behavior=hpa_behavior(d.get("scale_down_window_s")),
        with_behavior=bool(d.get("behavior", True)),
    )
    return True


def _cluster_name(plan: EvalPlan) -> str:
    """The cluster config the runs used: the one given, else the backend's default."""
    return plan.cluster or DEFAULT_CLUSTER[plan.backend] or "rtx3080"


def _plan_json(plan: EvalPlan) -> dict[str, Any]:
    return {
        "command": plan.command,
        "policies": list(plan.policies),
        "profiles": {label: p.source or p.name for label, p in plan.profiles},
        "repeats": plan.repeats,
        "base_seed": plan.base_seed,
        "seeds": plan.seeds,
        "backend": plan.backend,
        "cluster": _cluster_name(plan),
        "model": str(plan.model) if plan.model else None,
        "env_config": plan.env_config,
        "backend_options": plan.backend_options,
    }


def _finish(
    plan: EvalPlan, runs: pd.DataFrame, first: dict, settings: dict, slo_ms: float
) -> EvalOutputs:
    from k8s_gpu_rl.evaluation import (  # scipy and matplotlib: only once there is data
        aggregate,
        plots,
        report,
    )

    out = plan.out
    summary = aggregate.summarise(runs)
    comparisons = aggregate.compare(runs)
    ratios = aggregate.vs_oracle(summary)
    write_csv_atomic(out / "summary.csv", summary)
    write_json_atomic(out / "summary.json", aggregate.summary_json(summary))
    write_csv_atomic(out / "comparisons.csv", comparisons)
    write_csv_atomic(out / "vgpu_vs_oracle.csv", ratios)
    write_json_atomic(
        out / "comparisons.json",
        {
            "pairwise": comparisons.to_dict(orient="records"),
            "vgpu_vs_oracle": ratios.to_dict(orient="records"),
        },
    )
    figures: dict[str, list[str]] = {}
    for label, _ in plan.profiles:
        names = [f"plots/{label}_timeseries.png", f"plots/{label}_kpis.png"]
        plots.plot_timeseries(first[label], label, slo_ms, out / names[0])
        plots.plot_kpis(summary, label, out / names[1])
        figures[label] = names
    inputs = report.ReportInputs(
        command=plan.command,
        created=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        policies=list(plan.policies),
        profiles=[label for label, _ in plan.profiles],
        seeds=plan.seeds,
        backend=plan.backend,
        cluster=_cluster_name(plan),
        slo_ms=slo_ms,
        summary=summary,
        comparisons=comparisons,
        oracle_ratios=ratios,
        policy_settings=settings,
        plots=figures,
        env_config=plan.env_config,
    )
    write_text_atomic(out / "report.md", report.render_markdown(inputs))
    return EvalOutputs(runs, summary, comparisons, ratios, inputs, first)
