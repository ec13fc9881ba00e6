"""``GpuJobScheduling-v0``: place a queue of GPU jobs on several HAMi clusters.

import gymnasium as gym, k8s_gpu_rl
env = gym.make("GpuJobScheduling-v0", queue="memory-heavy")
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from k8s_gpu_rl.config import from_dict
from k8s_gpu_rl.envs.jobs import observe
from k8s_gpu_rl.envs.jobs.config import JobEnvConfig
from k8s_gpu_rl.envs.jobs.predictor import JobPredictor, default_predictor
from k8s_gpu_rl.envs.jobs.sim.config import WorldConfig, load_world
from k8s_gpu_rl.envs.jobs.sim.jobs import GeneratorConfig, JobSpec, generate_queue, load_queue
from k8s_gpu_rl.envs.jobs.sim.state import Phase
from k8s_gpu_rl.envs.jobs.sim.world import Placement, World
from k8s_gpu_rl.envs.sim.hami import GpuSlot


class GpuJobSchedulingEnv(gym.Env):
    """Multi-cluster GPU job scheduling with HAMi, transfers, OOM and deadlock.

    ## Description
    A queue of training jobs (annotations ``model_name``, ``data_size``, ``epoch``; a
    worker count; HAMi ``gpumem``/``gpucores`` requests) arrives over time at a
    controller that places them on several Kubernetes clusters shared through HAMi
    (:mod:`k8s_gpu_rl.envs.jobs.sim`). A start pays the transfer of what the cluster's
    cache lacks; a worker whose true memory need exceeds its limit, or whose card's use
    would exceed the physical memory, dies of OOM and the job is retried with back-off;
    jobs that hold GPUs while waiting for more can deadlock the queue.

    ## Action Space
    ``Discrete(window x nodes + 1)``: ``k x nodes + n`` binds the remaining workers of the
    k-th oldest waiting job that fits somewhere now to GPUs of node ``n`` (nodes numbered across clusters in
    config order; GPUs chosen by the cluster's HAMi GPU policy), as many as fit with
    ``partial_placement`` (the job holds them until all are bound), all of them
    otherwise; the last action waits until the next event or tick (``tick_s``). Steps
    happen at decision points: some job fits somewhere (at the env's request or at the
    user's, so baselines that use the user's requests get asked too).
    ``action_masks()`` marks the valid ones (for sb3-contrib's ``MaskablePPO``); a masked
    action waits and costs ``reward/invalid``. A policy may set :attr:`hint` to an exact
    :class:`~k8s_gpu_rl.envs.jobs.sim.world.Placement`; the step whose action encodes it
    (:meth:`encode`) applies it as given.

    ## Observation Space
    ``Box(0, 1, (window x (10 + clusters) + GPUs x 6 + 3,), float32)``, laid out in
    :mod:`k8s_gpu_rl.envs.jobs.observe`:

    | Num | Observation | Min | Max | Unit |
    |---|---|---|---|---|
    | per job slot 0 | slot holds a waiting job | 0 | 1 | flag |
    | 1 | remaining workers / 16 | 0 | 1 | GPUs |
    | 2, 3 | env's and user's gpumem request / 80 GiB | 0 | 1 | MiB |
    | 4 | log1p(predicted run time) / log1p(1e6) | 0 | 1 | s |
    | 5 | log1p(waiting time) / log1p(1e6) | 0 | 1 | s |
    | 6 | OOM failures / (backoff_limit + 1) | 0 | 1 | count |
    | 7, 8, 9 | holds GPUs; has a reservation; model unseen by the predictor | 0 | 1 | flag |
    | 10.. | log1p(transfer time to cluster c) / log1p(1e5) | 0 | 1 | s |
    | per GPU 0, 1 | free memory, free cores in HAMi's ledger | 0 | 1 | fraction |
    | 2 | task slots used / split count | 0 | 1 | fraction |
    | 3 | memory in use, last Prometheus sample (lags) | 0 | 1 | fraction |
    | 4, 5 | reserved; a job runs on it | 0 | 1 | flag |
    | globals | waiting jobs / 100; sample age / scrape interval; running jobs / GPUs | 0 | 1 | |

    ## Rewards
    Named terms, weighted by :class:`~k8s_gpu_rl.envs.jobs.config.JobRewardConfig`, each in
    ``info["reward/<name>"]``: ``jct`` (minus job-hours in the system per queued job),
    ``oom``, ``failed``, ``reservation`` (violations), ``deadlock``, ``invalid``.

    ## Starting State
    Time 0 of the queue (a shipped name, a YAML/CSV path, a list of
    :class:`~k8s_gpu_rl.envs.jobs.sim.jobs.JobSpec`, or ``"random"`` for a fresh generated
    queue per episode); the seed draws every job's true memory need and run time.

    ## Episode End
    Terminated when every job has completed or been given up, or on deadlock
    (``info["jobs/deadlocked"]``); truncated at the world's ``max_time_s`` or after
    ``max_decisions`` decisions. Steps happen only at decision points: when no placement
    is valid the env lets time pass by itself.

    ## Arguments
    ``queue`` (default ``"small"``), ``world`` (a shipped name, YAML path, mapping or
    :class:`WorldConfig`), ``config`` (:class:`JobEnvConfig` or mapping), ``predictor``
    (a :class:`JobPredictor`, a saved file, or a kind: ``random-forest`` default,
    ``gradient-boosting``, ``linear``), ``generator`` (for ``queue="random"``).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        queue: str | Path | list[JobSpec] = "small",
        world: str | Path | WorldConfig | dict | None = None,
        config: JobEnvConfig | dict | None = None,
        predictor: JobPredictor | str | Path = "random-forest",
        generator: GeneratorConfig | dict | None = None,
    ) -> None:
        self.world_config = load_world(world)
        self.config = (
            from_dict(JobEnvConfig, config or {}, "config")
            if not isinstance(config, JobEnvConfig)
            else config
        )
        self.generator = from_dict(GeneratorConfig, generator or {}, "generator")
        self.queue_source = queue
        self.fixed_queue = (
            None
            if queue == "random"
            else (list(queue) if isinstance(queue, list) else load_queue(queue))
        )
        self.predictor = self._predictor(predictor)
        self._layout()
        self.action_space = spaces.Discrete(self.config.window * self.n_nodes + 1)
        size = observe.observation_size(
            self.config.window, len(self.world_config.clusters), len(self.physical_mib)
        )
        self.observation_space = spaces.Box(0.0, 1.0, (size,), np.float32)
        self.hint: Placement | None = None
        self.world: World | None = None

    @staticmethod
    def _predictor(predictor: JobPredictor | str | Path) -> JobPredictor:
        if isinstance(predictor, JobPredictor):
            return predictor
        if str(predictor) in ("random-forest", "gradient-boosting", "linear"):
            return default_predictor(str(predictor))
        return JobPredictor.load(predictor)

    def _layout(self) -> None:
        w = self.world_config
        self.nodes = [(c, n) for c, cl in enumerate(w.clusters) for n in range(len(cl.nodes))]
        self.n_nodes = len(self.nodes)
        sizes = [node.gpus for cl in w.clusters for node in cl.nodes]
        self.node_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        per_cluster = [sum(node.gpus for node in cl.nodes) for cl in w.clusters]
        self.cluster_offset = np.concatenate([[0], np.cumsum(per_cluster)[:-1]]).astype(int)
        self.cluster_of_gpu = np.repeat(np.arange(len(w.clusters)), per_cluster)
        from k8s_gpu_rl.envs.jobs.sim.truth import GPU_TYPES

        types = [node.gpu_type for cl in w.clusters for node in cl.nodes for _ in range(node.gpus)]
        self.physical_mib = np.array([GPU_TYPES[t].memory_mib for t in types], dtype=float)
        self.max_card_mib = float(self.physical_mib.max())
        self.gpu_types = sorted(set(types))

    # -- Gymnasium API --------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(2**63 - 1))
        if self.fixed_queue is None:
            jobs = generate_queue(self.generator, self.np_random)
        else:
            jobs = self.fixed_queue
        self.jobs = jobs
        if self.fixed_queue is None or getattr(self, "_predicted_for", None) is not jobs:
            self.pred_runtime, self.pred_memory = self.predictor.predict_jobs(jobs, self.gpu_types)
            self._predicted_for = jobs  # a fixed queue is predicted once
        self.type_index = {t: k for k, t in enumerate(self.gpu_types)}
        self.request_cache: dict[int, tuple[float, float]] = {}
        self.world = World(self.world_config, jobs, world_seed, self._estimate)
        self.decisions = 0
        self.hint = None
        self._mask: np.ndarray | None = None
        self._mask_at = -1
        self._user_fit_at, self._user_fit = -1, False
        self._counted_at, self._counts = -1, (0, 0)
        self._to_decision()
        return observe.observation(self), self._info({})

    def _estimate(self, spec: JobSpec, gpu_type: str) -> float:
        return float(self.pred_runtime[self.world.index[spec.job_id], self.type_index[gpu_type]])

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        w = self.world
        before = self._counters()
        in_system_before = self._job_seconds()
        action = int(action)
        invalid = 0.0
        hint, self.hint = self.hint, None
        if hint is not None and self.encode(hint) == action:
            w.place(hint)
        elif action == self.action_space.n - 1:
            self._advance_one()
        elif self.action_masks()[action]:
            w.place(self.decode(action))
        else:
            invalid = 1.0
            self._advance_one()
        self.decisions += 1
        self._to_decision()
        terms = self._terms(before, in_system_before, invalid)
        reward = float(sum(terms.values()))
        terminated = w.deadlocked or w.done()
        truncated = not terminated and (
            w.now_s >= w.config.max_time_s or self.decisions >= self.config.max_decisions
        )
        return observe.observation(self), reward, terminated, truncated, self._info(terms)

    def action_masks(self) -> np.ndarray:
        """Valid actions (sb3-contrib's ``MaskablePPO`` calls this)."""
        if self._mask is None or self._mask_at != self.world.changes:
            self._mask, self._window = observe.action_mask(self)
            self._mask_at = self.world.changes
        return self._mask

    # -- actions --------------------------------------------------------------------------
    def window_jobs(self) -> list[int]:
        """World indices of the jobs in the visible slots: the ``window`` oldest waiting
        jobs that can be placed somewhere now."""
        self.action_masks()
        return self._window

    def node_index(self, cluster: int, node: int) -> int:
        return self.nodes.index((cluster, node))

    def encode(self, p: Placement) -> int:
        """The action of placement ``p`` (slot of its job, node of its first GPU); the
        wait action when its job is not in a visible slot (a hint still applies then)."""
        slots = self.window_jobs()
        if p.job not in slots:
            return self.action_space.n - 1
        node = self.world.node_of[p.cluster][p.gpus[0]]
        return slots.index(p.job) * self.n_nodes + self.node_index(p.cluster, node)

    def decode(self, action: int) -> Placement:
        """The placement the env makes for a (valid) non-wait action."""
        k, n = divmod(action, self.n_nodes)
        i = self.window_jobs()[k]
        c, node = self.nodes[n]
        mem, cores = observe.env_request(self, i)
        gpus = self.world.fitting_gpus(i, c, mem, node, cores)
        policy = self.world_config.clusters[c].hami.gpu_scheduler_policy
        slots = self.world.slots[c]
        sign = 1.0 if policy == "spread" else -1.0
        gpus.sort(key=lambda g: (sign * _usage(slots[g]), g))
        return Placement(i, c, tuple(gpus[: self.world.jobs[i].remaining_workers]), mem, cores)

    # -- time -----------------------------------------------------------------------------
    def _advance_one(self) -> None:
        w = self.world
        w.advance_to(min(w.next_event_s(), w.now_s + w.config.tick_s))

    def _to_decision(self) -> None:
        """Let time pass until a placement is possible or the run is over."""
        w = self.world
        self._mask = None
        while not w.finished() and not self._decision_possible():
            self._advance_one()

    def _decision_possible(self) -> bool:
        if self.action_masks()[:-1].any():
            return True
        if self._user_fit_at != w_changes(self):
            self._user_fit = observe.any_user_fit(self)
            self._user_fit_at = w_changes(self)
        return self._user_fit

    # -- reward and info ------------------------------------------------------------------
    def _counters(self) -> tuple[int, int, int, bool]:
        w = self.world
        return w.oom_failures, self._phase_counts()[1], w.reservation_violations, w.deadlocked

    def _phase_counts(self) -> tuple[int, int]:
        """(done, failed) jobs, counted once per world change."""
        w = self.world
        if self._counted_at != w.changes:
            phases = [j.phase for j in w.jobs]
            self._counts = (phases.count(Phase.DONE), phases.count(Phase.FAILED))
            self._counted_at = w.changes
        return self._counts

    def _job_seconds(self) -> float:
        return self.world.integrals.in_system

    def _terms(
        self, before: tuple[int, int, int, bool], seconds_before: float, invalid: float
    ) -> dict[str, float]:
        r = self.config.reward
        oom, failed, viol, dead = self._counters()
        hours = (self._job_seconds() - seconds_before) / 3600.0
        return {
            "reward/jct": -r.w_jct * hours / max(1, len(self.jobs)),
            "reward/oom": -r.w_oom * (oom - before[0]),
            "reward/failed": -r.w_failed * (failed - before[1]),
            "reward/reservation": -r.w_reservation * (viol - before[2]),
            "reward/deadlock": -r.w_deadlock * float(dead and not before[3]),
            "reward/invalid": -r.w_invalid * invalid,
        }

    def _info(self, terms: dict[str, float]) -> dict[str, Any]:
        w = self.world
        info: dict[str, Any] = dict(terms)
        info.update(
            {
                "jobs/time_s": w.now_s,
                "jobs/done": self._phase_counts()[0],
                "jobs/failed": self._phase_counts()[1],
                "jobs/waiting": len(w.waiting()),
                "jobs/oom_failures": w.oom_failures,
                "jobs/reservation_violations": w.reservation_violations,
                "jobs/deadlocked": w.deadlocked,
            }
        )
        return info


def w_changes(env: GpuJobSchedulingEnv) -> int:
    return env.world.changes


def _usage(slot: GpuSlot) -> float:
    return slot.usage if math.isfinite(slot.usage) else 0.0
