"""The vGPU compute share (``--gpucores``), enforced as HAMi-core enforces ``gpucores``.

A token bucket of *busy seconds* delays each model execution so that the process's
inference busy time stays near the share of wall-clock time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.share = share
        self.capacity = share * window_s
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until the bucket allows an execution; return the seconds waited."""
        if self.share >= 1:
            return 0.0
        with self._lock:
            self._refill()
            wait = -self._level / self.share if self._level < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def release(self, busy_s: float) -> None:
        """Charge ``busy_s`` seconds of execution to the bucket."""
        if self.share >= 1:
            return
        with self._lock:
            self._refill()
            self._level -= busy_s

    def _refill(self) -> None:
        """Add ``share`` busy-seconds per second since the last refill (lock held)."""
        now = self._clock()
        self._level = min(self.capacity, self._level + self.share * (now - self._last))
        self._last = now
