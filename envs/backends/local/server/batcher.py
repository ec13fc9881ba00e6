"""Triton-like dynamic batching: worker threads that form batches from a FIFO queue, wait
for the compute-share limiter, run the model once per batch and count Triton's metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from k8s_gpu_rl.envs.backends.local.server.limiter import ComputeShareLimiter
from k8s_gpu_rl.envs.backends.local.server.metrics import TritonMetrics
from k8s_gpu_rl.envs.backends.local.server.protocol import TritonError

LOG = logging.getLogger("k8sgpurl.server")


@dataclass
class _Pending:
    """One request waiting for (or done with) execution."""

    array: np.ndarray
    enqueue_ns: int
    done: threading.Event = field(default_factory=threading.Event)
    output: dict[str, np.ndarray] | None = None
    error: TritonError | None = None

    @property
    def batch(self) -> int:
        """The request's batch size (its first axis)."""
        return int(self.array.shape[0])


class DynamicBatcher:
    """Triton-like dynamic batching over one model.

    Worker threads (one per model instance) take queued requests in arrival order. A
    worker waits, at most ``max_queue_delay_us`` after the oldest queued request arrived,
    until the queued batch reaches ``max_batch_size`` or the largest preferred batch size;
    then it takes the longest FIFO run of requests that fits ``max_batch_size`` (cut at
    the largest preferred size it can hit when it did not have to wait out the delay),
    concatenates them, waits for the compute-share limiter, runs the model once and hands
    each request its slice of the outputs. Requests that arrive while a batch executes
    queue up, so batches grow with load even with no delay configured.
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], dict[str, np.ndarray]],
        max_batch_size: int,
        preferred: tuple[int, ...],
        max_queue_delay_us: int,
        limiter: ComputeShareLimiter,
        metrics: TritonMetrics,
        instances: int = 1,
    ) -> None:
        self._run = run
        self.max_batch_size = max(1, max_batch_size)
        self.preferred = tuple(sorted(b for b in preferred if 1 <= b <= self.max_batch_size))
        self.max_delay_ns = max(0, max_queue_delay_us) * 1000
        self.limiter = limiter
        self.metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._executing = 0
        self._threads = [
            threading.Thread(target=self._worker, name=f"batcher-{i}", daemon=True)
            for i in range(max(1, instances))
        ]
        for t in self._threads:
            t.start()

    def submit(self, array: np.ndarray) -> _Pending:
        """Queue one request (its first axis is its batch size); ``UNAVAILABLE`` once stopping."""
        item = _Pending(array=array, enqueue_ns=time.monotonic_ns())
        with self._cond:
            if self._stopping:
                raise TritonError("UNAVAILABLE", "Server not ready")
            self._queue.append(item)
            self.metrics.set_pending(+1)
            self._cond.notify()
        return item

    def busy(self) -> bool:
        """Whether any request is queued or a batch is executing."""
        with self._cond:
            return bool(self._queue) or self._executing > 0

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers once the queue is empty; join each for at most ``timeout`` s."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _next_batch(self) -> list[_Pending] | None:
        """Block until a batch is due, take it off the queue; ``None`` once stopping."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            expired = self._wait_for_target()
            batch = self._take(expired)
            self._executing += 1
            self.metrics.set_pending(-len(batch))
            return batch

    def _wait_for_target(self) -> bool:
        """Wait (lock held) until the queue holds the target batch or the oldest request's
        queue delay has passed; return whether the delay expired (always, with none set)."""
        if self.max_delay_ns == 0:
            return True
        target = self.preferred[-1] if self.preferred else self.max_batch_size
        deadline = self._queue[0].enqueue_ns + self.max_delay_ns
        while sum(p.batch for p in self._queue) < target and not self._stopping:
            remaining = deadline - time.monotonic_ns()
            if remaining <= 0:
                return True
            self._cond.wait(remaining / 1e9)
        return False

    def _take(self, expired: bool) -> list[_Pending]:
        """Pop the longest FIFO run that fits ``max_batch_size`` (lock held), cut at the
        largest preferred size it hits unless the queue delay expired."""
        batch: list[_Pending] = []
        size = 0
        cut = 0  # requests up to the largest preferred size hit
        for p in self._queue:
            if size + p.batch > self.max_batch_size:
                break
            batch.append(p)
            size += p.batch
            if size in self.preferred:
                cut = len(batch)
        if self.preferred and not expired and 0 < cut < len(batch):
            batch = batch[:cut]
        for _ in batch:
            self._queue.popleft()
        return batch

    def _worker(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._execute(batch)
            finally:
                with self._cond:
                    self._executing -= 1

    def _execute(self, batch: list[_Pending]) -> None:
        """Run one batch and hand each request its slice (or the backend's error)."""
        start_ns = time.monotonic_ns()
        try:
            x = batch[0].array if len(batch) == 1 else np.concatenate([p.array for p in batch])
            input_end_ns = time.monotonic_ns()
            outputs = self._run_throttled(x)
            output_start_ns = time.monotonic_ns()
            _scatter(batch, outputs)
        except Exception as exc:  # the backend failed: every request in the batch fails
            LOG.exception("model execution failed")
            self._fail(batch, TritonError("INTERNAL", f"onnxruntime execute failure: {exc}"))
            return
        end_ns = time.monotonic_ns()
        n = len(batch)
        self.metrics.add(
            nv_inference_exec_count=1,
            nv_inference_count=sum(p.batch for p in batch),
            nv_inference_queue_duration_us=sum(start_ns - p.enqueue_ns for p in batch) / 1000,
            nv_inference_compute_input_duration_us=n * (input_end_ns - start_ns) / 1000,
            nv_inference_compute_infer_duration_us=n * (output_start_ns - input_end_ns) / 1000,
            nv_inference_compute_output_duration_us=n * (end_ns - output_start_ns) / 1000,
        )
        for p in batch:
            p.done.set()

    def _run_throttled(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Wait for the limiter, run the model, charge its busy time."""
        waited = self.limiter.acquire()
        t0 = time.monotonic()
        outputs = self._run(x)
        busy = time.monotonic() - t0
        self.limiter.release(busy)
        self.metrics.busy.inc(busy)
        if waited:
            self.metrics.throttled.inc(waited)
        return outputs

    def _fail(self, batch: list[_Pending], err: TritonError) -> None:
        for p in batch:
            p.error = err
        self.metrics.fail("BACKEND", len(batch))
        for p in batch:
            p.done.set()


def _scatter(batch: list[_Pending], outputs: dict[str, np.ndarray]) -> None:
    """Give each request its rows of every output, in queue order."""
    offset = 0
    for p in batch:
        p.output = {
            name: np.ascontiguousarray(arr[offset : offset + p.batch])
            for name, arr in outputs.items()
        }
        offset += p.batch
