"""The vGPU compute share (``--gpucores``), enforced as HAMi-core enforces ``gpucores``.

A token bucket of *busy seconds* delays each model execution so that the process's
inference busy time stays near the share of wall-clock time, under HAMi-core's
``GPU_CORE_UTILIZATION_POLICY``: ``force`` always, ``disable`` never, ``default`` only
while another task shares the device (HAMi issue 737: a lone pod is not throttled). Who
shares the device is read, as HAMi-core reads its shared region, from a small file the
local Deployment controller keeps (:class:`DeviceTasks`), re-read at most every 120 ms
(HAMi-core's watcher period).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

POLICIES = ("default", "force", "disable")
"""HAMi-core's GPU_CORE_UTILIZATION_POLICY values; an unset variable means ``default``."""
POLICY_ENV = "GPU_CORE_UTILIZATION_POLICY"


class DeviceTasks:
    """The number of tasks on this server's device, from a file holding one integer.

    A missing or unreadable file counts as one task (this server alone). The file is read
    at most every ``every_s`` seconds.
    """

    def __init__(
        self,
        path: str | Path | None,
        every_s: float = 0.12,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.every_s = every_s
        self._clock = clock
        self._count = 1
        self._read_at = -float("inf")

    def __call__(self) -> int:
        now = self._clock()
        if self.path is not None and now - self._read_at >= self.every_s:
            self._read_at = now
            try:
                self._count = max(1, int(self.path.read_text().strip() or 1))
            except (OSError, ValueError):
                self._count = 1
        return self._count


class ComputeShareLimiter:
    """HAMi-style compute share: a token bucket of busy seconds.

    The bucket fills at ``share`` busy-seconds per wall-clock second (``share`` =
    gpucores / 100) up to ``capacity = share * window_s``. The exact rule:

    1. before a model execution: refill by ``share * (now - last_refill)`` (capped at the
       capacity); if the level is negative, sleep ``-level / share`` seconds (then the
       level is 0);
    2. after an execution that kept the "device" busy ``t`` seconds: ``level -= t``.

    So over any interval the busy time is at most ``share * elapsed + capacity``: under
    sustained load a batch taking ``t`` is followed by an idle gap of ``t * (1 - share) /
    share``, holding the busy fraction at ``share``. ``share >= 1`` never waits. Like
    HAMi-core, which delays kernel launches, the wait happens after the batch is formed,
    inside the execution (it shows in ``nv_inference_compute_infer_duration_us``), and
    requests that arrive meanwhile queue up.
    """

    def __init__(
        self,
        share: float,
        window_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        policy: str = "force",
        tasks_on_device: Callable[[], int] = lambda: 1,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.share = share
        self.policy = policy
        self._tasks = tasks_on_device
        self.capacity = share * window_s
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def limited(self) -> bool:
        """Whether the share is enforced now (the policy, and who shares the device)."""
        if self.share >= 1 or self.policy == "disable":
            return False
        return self.policy == "force" or self._tasks() > 1

    def acquire(self) -> float:
        """Wait until the bucket allows an execution; return the seconds waited."""
        if not self.limited():
            return 0.0
        with self._lock:
            self._refill()
            wait = -self._level / self.share if self._level < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def release(self, busy_s: float) -> None:
        """Charge ``busy_s`` seconds of execution to the bucket (nothing while unlimited)."""
        if not self.limited():
            return
        with self._lock:
            self._refill()
            self._level -= busy_s

    def _refill(self) -> None:
        """Add ``share`` busy-seconds per second since the last refill (lock held)."""
        now = self._clock()
        self._level = min(self.capacity, self._level + self.share * (now - self._last))
        self._last = now
