"""One episode of a policy on a K8sGpuEnv: the per-step time series and the episode's KPIs.

Any object with stable-baselines3's ``predict`` runs here: the baselines (bound to the
env beforehand) and the trained PPO agent alike. Actions are deterministic.

Time-series columns (one row per 15 s step): ``step``, ``time_s`` (cluster time at the
end of the step), then every ``info["autoscale/<x>"]`` as ``<x>`` (``users``,
``throughput_rps``, ``p50_latency_ms`` / ``p95_`` / ``p99_`` / ``mean_``,
``qos_violation_rate``, ``requests``, ``failures``, ``replicas_spec``,
``replicas_ready``, ``pods_pending``, ``gpucores``, ``gpumem_mib``, ``vgpu_seconds``,
``replica_seconds``, ``gpu_work_seconds``, ``gpu_util``, ``gpu_memory_util``,
``cpu_util``), every ``info["reward/<term>"]`` as ``reward_<term>`` (``reward_total``
is the step's reward), the action actually applied (``action_replica_delta``,
``action_replicas``, ``action_gpucores``, ``action_clipped`` = number of clip notes), and
a baseline's own view (``policy_<key>``, e.g. the HPA's ``policy_metric_value`` or the
KPA's ``policy_panic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.loadprofiles import LoadProfile

ACTION_KEYS = ("replica_delta", "replicas", "gpucores")


@dataclass
class Episode:
    """What one run produced."""

    timeseries: pd.DataFrame
    kpis: dict[str, float]


def make_env(
    profile: str | Path | LoadProfile,
    backend: str = "sim",
    cluster: str | None = None,
    config: dict[str, Any] | None = None,
    backend_options: dict[str, Any] | None = None,
) -> K8sGpuEnv:
    """The environment every policy is evaluated on (``config``: EnvConfig fields; none:
    the defaults; ``backend_options``: the live backend's options)."""
    return K8sGpuEnv(
        profile=profile,
        backend=backend,
        cluster=cluster,
        config=config or None,
        backend_options=backend_options or None,
    )


def step_row(step: int, info: dict[str, Any], policy: Any) -> dict[str, float]:
    """One time-series row from a step's ``info`` (see the module docstring)."""
    row: dict[str, float] = {"step": step, "time_s": float(info["time_s"])}
    for key, value in info.items():
        if key.startswith("autoscale/"):
            row[key.removeprefix("autoscale/")] = float(value)
        elif key.startswith("reward/"):
            row["reward_" + key.removeprefix("reward/")] = float(value)
    for key in ACTION_KEYS:
        if f"action/{key}" in info:
            row[f"action_{key}"] = float(info[f"action/{key}"])
    row["action_clipped"] = float(len(info.get("action/clipped", ())))
    for key, value in (getattr(policy, "status", None) or {}).items():
        row[f"policy_{key}"] = float(value)
    return row


def run_episode(env: K8sGpuEnv, policy: Any, seed: int) -> Episode:
    """Reset ``env`` with ``seed`` and let ``policy`` act until the episode ends."""
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset()
    state: Any = None
    episode_start = np.ones((1,), dtype=bool)
    rows: list[dict[str, float]] = []
    while True:
        action, state = policy.predict(
            obs, state=state, episode_start=episode_start, deterministic=True
        )
        episode_start = np.zeros((1,), dtype=bool)
        obs, _, terminated, truncated, info = env.step(action)
        rows.append(step_row(len(rows), info, policy))
        if terminated or truncated:
            break
    kpis = {k: float(v) for k, v in (info.get("episode_kpis") or {}).items()}
    return Episode(pd.DataFrame(rows), kpis)
