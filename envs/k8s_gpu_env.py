"""``K8sGpuEnv``: autoscaling Triton MobileNetV4 on HAMi-shared GPUs as a Gymnasium env."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from k8s_gpu_rl.config import from_dict, read_yaml, replace, suggest
from k8s_gpu_rl.envs.backends.base import Backend, DeploymentState
from k8s_gpu_rl.envs.config import EnvConfig, encode_action, gpumem_for, nearest_index
from k8s_gpu_rl.envs.episode import EpisodeAccumulator
from k8s_gpu_rl.envs.levers import (
    FrameStack,
    ProfileSampler,
    ShareClock,
    action_masks,
    check_sampler_backend,
    feature_names,
    observation_high,
)
from k8s_gpu_rl.envs.observation import (
    HIGH,
    extra_from_raw,
    extra_vector,
    normalisers,
    to_vector,
)
from k8s_gpu_rl.envs.reward import combine, interval_kpis, reward_terms
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.loadprofiles import LoadProfile, load_profile

BACKENDS = ("sim", "local", "k8s")
DEFAULT_CLUSTER = {"sim": None, "local": "local", "k8s": "rtx3080"}
"""The cluster config each backend uses when none is given (None: the simulator's default)."""


class K8sGpuEnv(gym.Env):
    """Scale a Triton MobileNetV4 Deployment's replicas and vGPU share under Locust load.

    ## Description
    A Kubernetes cluster serves MobileNetV4-Conv-Small with Triton Inference Server, one
    GPU shared between pods through HAMi (``nvidia.com/gpucores``, ``nvidia.com/gpumem``).
    Locust users replay a load profile. Every ``decision_interval_s`` (15 s) the agent sees
    what Prometheus holds (Triton, DCGM, HAMi, kube-state-metrics, cAdvisor), then sets the
    Deployment's replicas and vGPU share. The default backend, ``"sim"``, simulates the
    cluster request by request (``k8s_gpu_rl.envs.sim``), calibrated to the user's RTX 3080 cluster.

    ## Action Space
    ``MultiDiscrete([len(replica_deltas), len(share_steps)])`` (default ``[5, 3]``):

    | Num | Action | Values |
    |-----|--------|--------|
    | 0 | replica change | index into ``replica_deltas``, default (-2, -1, 0, +1, +2) |
    | 1 | vGPU share level | index into ``share_steps`` (-1, 0, +1): one step down or up the
    gpucores levels (20, 30, 40, 50, 70, 100), or keep; with
    ``share_action="absolute"`` an index into ``share_levels`` instead |

    gpumem follows gpucores (:func:`k8s_gpu_rl.envs.config.gpumem_for`): the same fraction of the
    GPU's memory, at least 1.25 x the model's 1.5 GiB. A new share rolls the pods
    (maxSurge/maxUnavailable 25 %). Replicas are clipped to ``[min_replicas, max_replicas]``
    and to what HAMi can place at that share. A new share is taken only when no rollout
    is under way and its pods fit beside the current ones while maxUnavailable is 0
    (otherwise the rollout could never finish, as on a real cluster); replicas do not
    grow while a rollout is under way. Out-of-range indices are clipped too. Every clip
    is reported in ``info["action/clipped"]``, never raised.

    ## Observation Space
    ``Box(0, high, (18,), float32)``, the PromQL results of ``k8s_gpu_rl.envs.observation``:

    | Num | Observation | Min | Max | Unit (before normalising) |
    |-----|-------------|-----|-----|------|
    | 0 | request_rate (1 m) | 0 | 5 | req/s / rps_scale |
    | 1 | request_rate (5 m) | 0 | 5 | req/s / rps_scale |
    | 2 | failure_rate | 0 | 5 | req/s / rps_scale |
    | 3 | server_latency | 0 | 10 | ms / SLO |
    | 4 | queue_latency | 0 | 10 | ms / SLO |
    | 5 | batch_size | 0 | 1 | / max_batch_size |
    | 6 | pending_requests | 0 | 5 | requests / 100 |
    | 7 | gpu_util (DCGM) | 0 | 1 | % / 100 |
    | 8 | gpu_memory used | 0 | 1 | fraction |
    | 9 | cpu_util | 0 | 4 | usage / request |
    | 10 | replicas_available | 0 | 2 | / max_replicas |
    | 11 | replicas_desired | 0 | 2 | / max_replicas |
    | 12 | replicas_unavailable | 0 | 2 | / max_replicas |
    | 13 | gpu_cores_allocated (HAMi) | 0 | 2 | ratio |
    | 14 | metrics_age | 0 | 10 | s / scrape interval |
    | 15 | gpucores_serving (Ready pods) | 0 | 1 | % / 100 |
    | 16 | gpucores_target (template) | 0 | 1 | % / 100 |
    | 17 | pods_pending | 0 | 2 | / max_replicas |

    Values lag the cluster by the scrape interval and the 1-minute rate window, as on a
    real cluster. Missing data (no scrape yet) reads 0.

    ## Rewards
    ``w_utilisation * utilisation + w_efficiency * efficiency - w_latency * latency
    - w_qos * qos_violation`` (``k8s_gpu_rl.envs.reward``), each term in ``info["reward/<term>"]``.

    ## Starting State
    The Deployment as the cluster config gives it (default 1 replica, gpucores 50,
    gpumem 5120 MiB), already Ready, at the start of the load profile. With
    ``initial_share="random"`` (training) the share is a level drawn at each reset.

    ## Episode End
    Truncated after one pass over the load profile (``ceil(duration / interval)`` steps);
    never terminated.

    ## Arguments
    ``gymnasium.make("K8sGpu-v0", profile="mixed", backend="sim", cluster=None,
    config=None, backend_options=None, **overrides)``: ``profile`` is a name or a YAML
    path; ``backend`` ``"sim"`` (the simulated cluster), ``"local"`` (real servers,
    HAProxy, Prometheus and Locust on this machine, in wall-clock time) or ``"k8s"`` (the
    Triton Deployment of a real cluster, its Prometheus and a real Locust; wall-clock
    time); ``cluster`` a shipped cluster name, YAML path, dict or :class:`ClusterConfig`
    (default: ``rtx3080`` for ``sim`` and ``k8s``, ``local`` for ``local``); ``config`` an
    :class:`EnvConfig`, dict or YAML path; ``backend_options`` the live backend's options
    (:class:`~k8s_gpu_rl.envs.backends.local.backend.LocalOptions` or
    :class:`~k8s_gpu_rl.envs.backends.k8s.options.K8sOptions` fields); ``overrides`` replace
    ``EnvConfig`` fields (e.g. ``slo_ms=120``, ``reward={"w_qos": 200}``).

    ## Opt-in levers (issue 12; all off by default, the default env is unchanged)
    ``profile="random"`` (or ``"random:shape=bursts,..."``, a generator spec without a
    seed) draws a new generated profile at every reset, seeded from ``np_random`` (sim
    backend only); ``extra_features=(...)`` appends operator features
    (:data:`k8s_gpu_rl.envs.observation.EXTRA_FEATURES`); ``frame_stack=k`` stacks the last k
    observations; :meth:`action_masks` gives sb3-contrib's ``MaskablePPO`` the choices the
    env would take unclipped; :meth:`set_reward_weights` lets a Lagrangian callback move
    ``w_qos`` (``k8s_gpu_rl.agents.constraint``).

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        profile: str | Path | LoadProfile = "mixed",
        backend: str = "sim",
        cluster: str | Path | dict | ClusterConfig | None = None,
        config: EnvConfig | dict | str | Path | None = None,
        backend_options: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        self._sampler = ProfileSampler(str(profile)) if ProfileSampler.wanted(profile) else None
        if self._sampler is not None:
            check_sampler_backend(backend)
            self.profile = self._sampler.first()
        else:
            self.profile = profile if isinstance(profile, LoadProfile) else load_profile(profile)
        if backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend {backend!r}{suggest(backend, BACKENDS)}; "
                f"available: {', '.join(BACKENDS)}"
            )
        if cluster is None:
            cluster = DEFAULT_CLUSTER[backend]
        self.cluster_config = load_cluster_config(cluster)
        self.config = _env_config(config, overrides)
        self._check_share_levels()
        self.backend: Backend = _make_backend(
            backend, self.cluster_config, self.profile, backend_options or {}
        )
        c = self.config
        n_share = len(c.share_steps) if c.share_action == "relative" else len(c.share_levels)
        self.action_space = spaces.MultiDiscrete([len(c.replica_deltas), n_share])
        self.observation_space = spaces.Box(0.0, observation_high(c), dtype=np.float32)
        self.feature_names = feature_names(c)
        self._norm = normalisers(
            c.rps_scale,
            c.slo_ms,
            self.backend.max_batch,
            c.max_replicas,
            self.backend.scrape_interval_s,
        )
        self.max_steps = int(np.ceil(self.backend.duration_s / c.decision_interval_s - 1e-9))
        self.steps = 0
        self._stack = FrameStack(c.frame_stack, len(HIGH) + len(c.extra_features))
        self._clock = ShareClock()

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        backend_seed = int(self.np_random.integers(0, 2**63 - 1))
        if self._sampler is not None:
            self._use_profile(self._sampler.draw(self.np_random))
        if self.config.initial_share == "random":
            gpucores = int(self.np_random.choice(self.config.share_levels))
            gpumem = gpumem_for(
                gpucores,
                self.backend.gpu_memory_mib,
                self.cluster_config.serving.model_memory_mib,
                self.config.gpumem_headroom,
            )
            self.backend.reset(backend_seed, gpucores, gpumem)
        else:
            self.backend.reset(backend_seed)
        self.steps = 0
        self._episode = EpisodeAccumulator(
            self.config.slo_ms, self.backend.total_gpus, self.backend.gpu_memory_mib
        )
        info: dict[str, Any] = {"time_s": 0.0, "feature_names": self.feature_names}
        if self._sampler is not None:
            info["profile"] = self.profile.name
        if not self._levers_on():
            return self._observe(), info
        self._clock.reset(self.backend.deployment().gpucores)
        return self._stack.reset(self._observe()), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        info: dict[str, Any] = {}
        replicas, gpucores, gpumem = self._decode(action, info)
        if self._levers_on():
            self._clock.note(gpucores, self.backend.now_s())
        self.backend.apply(replicas, gpucores, gpumem)
        rec = self.backend.advance(self.config.decision_interval_s)
        c = self.config
        k = interval_kpis(
            rec.latencies_s,
            rec.ok,
            c.slo_ms,
            rec.end_s - rec.start_s,
            rec.vgpu_s,
            rec.gpu_work_s,
            rec.replica_s,
        )
        terms = reward_terms(
            k, c.slo_ms, self.backend.total_gpus, c.reward.latency_headroom, c.reward.qos_budget
        )
        reward = float(combine(terms, c.reward))
        self.steps += 1
        self._episode.add(rec, terms, reward)
        dep = self.backend.deployment()
        dt = rec.end_s - rec.start_s
        info.update({f"reward/{name}": value for name, value in terms.items()})
        info.update(
            {
                "reward/total": reward,
                "autoscale/requests": k.requests,
                "autoscale/failures": k.failures,
                "autoscale/mean_latency_ms": k.mean_ms,
                "autoscale/p50_latency_ms": k.p50_ms,
                "autoscale/p95_latency_ms": k.p95_ms,
                "autoscale/p99_latency_ms": k.p99_ms,
                "autoscale/throughput_rps": k.throughput_rps,
                "autoscale/qos_violation_rate": k.violation_rate,
                "autoscale/vgpu_seconds": k.vgpu_s,
                "autoscale/replica_seconds": k.replica_s,
                "autoscale/gpu_work_seconds": k.gpu_work_s,
                "autoscale/tenant_gpu_seconds": rec.tenant_gpu_s,
                "autoscale/replicas_spec": dep.spec_replicas,
                "autoscale/replicas_ready": dep.ready_replicas,
                "autoscale/pods_pending": dep.pending_pods,
                "autoscale/gpucores": dep.gpucores,
                "autoscale/gpumem_mib": dep.gpumem_mib,
                "autoscale/users": rec.users,
                "autoscale/gpu_util": rec.gpu_work_s / (dt * self.backend.total_gpus),
                "autoscale/gpu_memory_util": rec.gpu_memory_mib_s
                / (dt * self.backend.total_gpus * self.backend.gpu_memory_mib),
                "autoscale/cpu_util": rec.cpu_s / rec.cpu_request_s
                if rec.cpu_request_s > 0
                else 0.0,
                "events": rec.events,
                "client/saturated": rec.client_saturated,
                "time_s": rec.end_s,
            }
        )
        truncated = self.steps >= self.max_steps
        if truncated:
            info["episode_kpis"] = self._episode.kpis()
        obs = self._observe(dep)
        if self._levers_on():
            obs = self._stack.push(obs)
        return obs, reward, False, truncated, info

    def _decode(self, action: Any, info: dict[str, Any]) -> tuple[int, int, int]:
        """Action indices to (replicas, gpucores, gpumem), clipping and reporting."""
        c = self.config
        clipped: list[str] = []
        dep = self.backend.deployment()
        n_share = int(self.action_space.nvec[1])
        hold = (
            c.replica_deltas.index(0),
            c.share_steps.index(0) if c.share_action == "relative" else self._current_level(dep),
        )
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 2 or not np.isfinite(a).all():
            clipped.append(f"malformed action {action!r}: held the current setting")
            a = np.array(hold, dtype=np.float64)
        x, y = float(a[0]), float(a[1])
        i = min(max(round(x), 0), len(c.replica_deltas) - 1)
        j = min(max(round(y), 0), n_share - 1)
        if (i, j) != (x, y):
            clipped.append(f"action {a.tolist()} outside the action space: clipped to [{i}, {j}]")
        level = j
        if c.share_action == "relative":
            level = self._current_level(dep) + c.share_steps[j]
            if not 0 <= level < len(c.share_levels):
                clipped.append(f"share step {c.share_steps[j]:+d} beyond the share levels")
                level = min(max(level, 0), len(c.share_levels) - 1)
        gpucores = c.share_levels[level]
        gpumem = gpumem_for(
            gpucores,
            self.backend.gpu_memory_mib,
            self.cluster_config.serving.model_memory_mib,
            c.gpumem_headroom,
        )
        requested = dep.spec_replicas + c.replica_deltas[i]
        replicas = min(max(requested, c.min_replicas), c.max_replicas)
        if replicas != requested:
            clipped.append(f"replicas {requested} outside [{c.min_replicas}, {c.max_replicas}]")
        if dep.rollout_in_progress and replicas > dep.spec_replicas:
            clipped.append(
                "scale-up waits for the rollout under way (new pods could take its room)"
            )
            replicas = dep.spec_replicas
        replicas = self._fit_replicas(replicas, gpucores, gpumem, clipped)
        if not self.backend.rollout_can_start(replicas, gpucores, gpumem):
            clipped.append(
                f"gpucores {gpucores}: a rollout is under way, or the new pods would not fit "
                f"beside the current ones (maxUnavailable 0): kept {dep.gpucores}"
            )
            gpucores, gpumem = dep.gpucores, dep.gpumem_mib
            replicas = self._fit_replicas(replicas, gpucores, gpumem, clipped)
        info.update(
            {
                "action/replica_delta": c.replica_deltas[i],
                "action/requested_replicas": requested,
                "action/replicas": replicas,
                "action/gpucores": gpucores,
                "action/clipped": clipped,
            }
        )
        return replicas, gpucores, gpumem

    def _fit_replicas(self, replicas: int, gpucores: int, gpumem: int, clipped: list[str]) -> int:
        """``replicas``, or fewer if HAMi cannot place that many pods of this share."""
        room = self.backend.capacity(gpucores, gpumem)
        if replicas > room >= self.config.min_replicas:
            clipped.append(
                f"replicas {replicas} exceed what HAMi can place at gpucores={gpucores}: {room}"
            )
            return room
        return replicas

    def action_for(self, replicas: int, gpucores: int) -> np.ndarray:
        """The action that moves the Deployment towards (replicas, gpucores) this step.

        Controllers written as "desired state" (HPA, KPA, static, oracle) use this to act
        through the same action space as the agent: the share moves one step (relative
        actions) or to the level closest to ``gpucores`` (absolute actions), and the
        replica change is the allowed delta closest to the wish. While the share still
        has to change, replicas only go down: new pods would otherwise take the room the
        rollout needs.
        """
        dep = self.backend.deployment()
        return encode_action(self.config, dep.spec_replicas, dep.gpucores, replicas, gpucores)

    def _observe(self, dep: DeploymentState | None = None) -> np.ndarray:
        raw = self.backend.observe(self.config.rate_window_s)
        dep = dep or self.backend.deployment()
        raw["gpucores_serving"] = dep.serving_gpucores
        raw["gpucores_target"] = float(dep.gpucores)
        raw["pods_pending"] = float(dep.pending_pods)
        extras = self.config.extra_features
        if not extras:
            return to_vector(raw, self._norm)
        raw.update(extra_from_raw(raw))
        raw["since_share_change"] = self._clock.since(self.backend.now_s())
        return np.concatenate([to_vector(raw, self._norm), extra_vector(raw, extras, self._norm)])

    # --- levers (issue 12; all off by default) -------------------------------
    def _levers_on(self) -> bool:
        return bool(self.config.extra_features) or self.config.frame_stack > 1

    def _use_profile(self, profile: LoadProfile) -> None:
        """Run the next episode on ``profile`` (the sim backend reads it at reset)."""
        self.profile = profile
        self.backend.profile = profile  # type: ignore[attr-defined]
        self.backend.duration_s = profile.duration_s  # type: ignore[attr-defined]
        self.max_steps = int(np.ceil(profile.duration_s / self.config.decision_interval_s - 1e-9))

    def action_masks(self) -> np.ndarray:
        """The choices the env would take unclipped now, for sb3-contrib's ``MaskablePPO``
        (:func:`k8s_gpu_rl.envs.levers.action_masks`)."""
        return action_masks(self)

    def _unclipped(self, i: int, j: int) -> bool:
        info: dict[str, Any] = {}
        self._decode(np.array([i, j]), info)
        return not info["action/clipped"]

    def set_reward_weights(self, **weights: float) -> None:
        """Replace reward weights (e.g. ``w_qos`` from a Lagrangian multiplier) from now on."""
        self.config = replace(self.config, "config", reward=weights)

    def _current_level(self, dep: DeploymentState | None = None) -> int:
        return nearest_index(self.config.share_levels, (dep or self.backend.deployment()).gpucores)

    def _check_share_levels(self) -> None:
        cores = self.cluster_config.deployment.gpucores
        if cores not in self.config.share_levels:
            raise ConfigError(
                f"the Deployment's initial gpucores {cores} is not one of share_levels "
                f"{list(self.config.share_levels)}: add it, or change deployment.gpucores"
            )

    def close(self) -> None:
        self.backend.close()


def _env_config(
    config: EnvConfig | dict | str | Path | None, overrides: dict[str, Any]
) -> EnvConfig:
    if isinstance(config, str | Path):
        config = from_dict(EnvConfig, read_yaml(config), str(config))
    base = config if isinstance(config, EnvConfig) else from_dict(EnvConfig, config or {}, "config")
    fields = {f.name for f in dataclasses.fields(EnvConfig)}
    for key in overrides:
        if key not in fields:
            raise ConfigError(
                f"K8sGpuEnv: unknown argument {key!r}{suggest(key, fields)}; "
                f"allowed: profile, backend, cluster, config, {', '.join(sorted(fields))}"
            )
    return replace(base, "config", **overrides) if overrides else base


def _make_backend(
    name: str, cluster: ClusterConfig, profile: LoadProfile, options: dict[str, Any]
) -> Backend:
    if name == "sim":
        from k8s_gpu_rl.envs.backends.sim import SimBackend

        if options:
            raise ConfigError(f"the sim backend takes no backend_options, got {sorted(options)}")
        return SimBackend(cluster, profile)
    if name == "local":
        from k8s_gpu_rl.envs.backends.local.backend import LocalBackend, LocalOptions

        return LocalBackend(cluster, profile, from_dict(LocalOptions, options, "backend_options"))
    if name == "k8s":
        from k8s_gpu_rl.envs.backends.k8s.backend import K8sBackend
        from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions

        return K8sBackend(cluster, profile, from_dict(K8sOptions, options, "backend_options"))
    raise ConfigError(
        f"unknown backend {name!r}{suggest(name, BACKENDS)}; available: {', '.join(BACKENDS)}"
    )
