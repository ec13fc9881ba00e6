"""Training callbacks: the env's KPIs into TensorBoard, checkpoints, a clean stop on Ctrl-C / SIGTERM.

:class:`KpiLogger` records, once per rollout (at SB3's log step, ``num_timesteps``):

| Key | Meaning |
|-----|---------|
| ``reward/<term>`` | per-step mean over the rollout of ``info["reward/<term>"]``: ``utilisation``, ``efficiency``, ``latency``, ``qos_violation`` (unweighted) and ``total`` (the raw weighted reward) |
| ``autoscale/p95_latency_ms`` | per-step mean of each interval's client p95 latency (ms) |
| ``autoscale/gpucores`` | per-step mean of the Deployment's gpucores (%) |
| ``autoscale/replicas_ready`` | per-step mean of ready replicas |
| ``episode/p95_latency_ms`` | p95 latency over all requests of an episode (ms) |
| ``episode/p99_latency_ms`` | p99 latency over all requests of an episode (ms) |
| ``episode/qos_violation_rate`` | share of an episode's requests slower than the SLO or failed |
| ``episode/success_rate`` | share of an episode's requests that succeeded |
| ``episode/vgpu_hours`` | vGPU share held over the episode (GPU-hours) |
| ``episode/mean_replicas`` | time-averaged ready replicas |
| ``episode/gpu_util`` | GPU compute used / GPU capacity over the episode |
| ``episode/return`` | undiscounted raw (un-normalised) episode return |
| ``episode/reward_<term>`` | a reward term summed over the episode (unweighted) |
| ``episode/count`` | episodes that ended in the rollout |

``episode/*`` values are means over the episodes that ended during the rollout (nothing is
recorded for a rollout in which none ended). Non-finite values (p95 of an interval in
which every request failed) are left out of the means; ``reward/latency`` (capped at 5 x
SLO) and ``reward/qos_violation`` still count those intervals.
"""

from __future__ import annotations

import math
import signal
import sys
from collections import defaultdict
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from k8s_gpu_rl.agents.run_dir import checkpoint_paths, save_model_files

STEP_KEYS = ("autoscale/p95_latency_ms", "autoscale/gpucores", "autoscale/replicas_ready")
EPISODE_KEYS = (
    "p95_latency_ms",
    "p99_latency_ms",
    "qos_violation_rate",
    "success_rate",
    "vgpu_hours",
    "mean_replicas",
    "gpu_util",
    "return",
)


class _Means:
    """Running sums and counts of named values (non-finite values skipped)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, key: str, value: Any) -> None:
        value = float(value)
        if math.isfinite(value):
            self.sums[key] += value
            self.counts[key] += 1

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / n for key, n in self.counts.items() if n}


class KpiLogger(BaseCallback):
    """Record the env's per-step reward terms and KPIs and its whole-episode KPIs per rollout."""

    def __init__(self) -> None:
        super().__init__()
        self._steps = _Means()
        self._episodes = _Means()
        self._episode_count = 0

    def _on_rollout_start(self) -> None:
        self._steps, self._episodes, self._episode_count = _Means(), _Means(), 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            for key, value in info.items():
                if key.startswith("reward/") or key in STEP_KEYS:
                    self._steps.add(key, value)
            kpis = info.get("episode_kpis")
            if kpis is not None:
                self._add_episode(kpis)
        return True

    def _add_episode(self, kpis: dict[str, float]) -> None:
        self._episode_count += 1
        for name, value in kpis.items():
            if name in EPISODE_KEYS or name.startswith("reward_"):
                self._episodes.add(f"episode/{name}", value)

    def _on_rollout_end(self) -> None:
        for key, value in self._steps.means().items():
            self.logger.record(key, value)
        if self._episode_count:
            for key, value in self._episodes.means().items():
                self.logger.record(key, value)
            self.logger.record("episode/count", self._episode_count)


class GracefulStop:
    """While active, the first SIGINT or SIGTERM asks training to stop; a second one aborts.

    Use as a context manager around ``model.learn``; :class:`StopOnRequest` ends ``learn``
    at the next env step once :attr:`requested` is set. Signal handlers are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> GracefulStop:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"\n{name}: stopping after this step and saving the model "
            "(press Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )


class StopOnRequest(BaseCallback):
    """End training at the next step once ``stop.requested`` is set."""

    def __init__(self, stop: GracefulStop) -> None:
        super().__init__()
        self.stop = stop

    def _on_step(self) -> bool:
        return not self.stop.requested


class Checkpoint(BaseCallback):
    """Save the model and its VecNormalize statistics every ``every`` steps (all envs together).

    Like SB3's ``CheckpointCallback(save_vecnormalize=True)`` and with its file names, but
    each file is written atomically, so a run killed while saving leaves no broken checkpoint.
    """

    def __init__(self, directory: Path, every: int) -> None:
        super().__init__()
        self.directory = directory
        self.every = every
        self._next = 0

    def _on_training_start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            save_model_files(self.model, *checkpoint_paths(self.directory, self.num_timesteps))
            self._next = (self.num_timesteps // self.every + 1) * self.every
        return True
