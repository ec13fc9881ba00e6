"""A Triton stand-in: one process serving MobileNetV4 through ONNX Runtime (CPU, or CUDA).

Run it as::

    python -m k8s_gpu_rl.envs.backends.local.server --model-repository DIR --model mobilenetv4 \\
        --http-port 8000 --metrics-port 8002 [--host 127.0.0.1] [--gpucores 100] \\
        [--threads 1] [--pod NAME] [--exit-timeout-secs 30] [--http-max-input-size BYTES]

It speaks KServe v2 as Triton's HTTP endpoint does (JSON and the binary tensor extension),
batches like Triton's dynamic batcher, exposes Triton's metric names on its own port, and
answers errors with Triton's codes and ``{"error": "..."}`` bodies.

Error codes (Triton ``src/http_server.cc`` ``HttpCodeFromError`` maps the core's error codes;
the messages are the server's and core's own, from ``http_server.cc``, core
``infer_request.cc`` and ``model_repository_manager.cc``):

=============================================================  =====================  ====
case                                                            Triton error code      HTTP
=============================================================  =====================  ====
unknown model / version (``Request for unknown model: ...``)    NOT_FOUND              404
wrong shape, datatype, batch size > max, byte size mismatch,    INVALID_ARG            400
missing / unknown input, unknown output, bad ``Inference-
Header-Content-Length`` or ``Content-Length``, body or JSON
over ``--http-max-input-size`` (64 MiB), binary data short or
extra, bad version string
malformed JSON, a JSON field of the wrong type, JSON ``data``   INTERNAL (TritonJson   500
with too few / too many elements                                errors are INTERNAL in
                                                                http_server.cc)
model or server not ready (model ready / metadata while         UNAVAILABLE            503
draining)
ONNX Runtime failure during execution                           INTERNAL               500
unsupported feature (classification outputs)                    UNSUPPORTED            501
wrong HTTP method / unknown path                                (direct)               405 / 404
=============================================================  =====================  ====

``GET /v2/health/ready`` answers 200 or 400 with an empty body, as Triton does.

The compute share (``--gpucores S``) is enforced like HAMi-core enforces ``gpucores``: a
token bucket of *busy seconds* (see :class:`ComputeShareLimiter`) delays each model
execution so that the process's inference busy time stays near S % of wall-clock time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("k8sgpurl.server")

DEFAULT_MAX_INPUT_SIZE = 1 << 26
"""Triton's ``--http-max-input-size`` default (64 MiB, ``HTTP_DEFAULT_MAX_INPUT_SIZE``)."""
SERVER_NAME = "triton"
SERVER_VERSION = "2.x-k8sgpurl-local"
HEADER_LENGTH = "Inference-Header-Content-Length"

# KServe v2 datatype name -> numpy dtype (little-endian)
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


class TritonError(Exception):
    """An error answered as Triton would: an HTTP status and ``{"error": message}``."""

    CODES = {
        "INTERNAL": 500,
        "NOT_FOUND": 404,
        "UNAVAILABLE": 503,
        "UNSUPPORTED": 501,
        "UNKNOWN": 400,
        "INVALID_ARG": 400,
        "ALREADY_EXISTS": 400,
        "CANCELLED": 400,
        "METHOD_NOT_ALLOWED": 405,  # http_server.cc answers wrong methods directly
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return self.CODES.get(self.code, 400)


def _req(message: str) -> str:
    """Core's ``LogRequest()`` prefix (requests here carry no id unless given one)."""
    return "[request id: <id_unknown>] " + message


# ----------------------------------------------------------------------------- compute share


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
            now = self._clock()
            self._level = min(self.capacity, self._level + self.share * (now - self._last))
            self._last = now
            wait = -self._level / self.share if self._level < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def release(self, busy_s: float) -> None:
        """Charge ``busy_s`` seconds of execution to the bucket."""
        if self.share >= 1:
            return
        with self._lock:
            now = self._clock()
            self._level = min(self.capacity, self._level + self.share * (now - self._last))
            self._last = now
            self._level -= busy_s


# ----------------------------------------------------------------------------- metrics

_TRITON_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
    (
        "nv_inference_exec_count",
        "Number of model executions performed (does not include cached requests)",
    ),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds (includes cached requests)",
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include cached "
        "requests)",
    ),
)
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")
"""Triton core ``MetricModelReporter::failure_reasons_map``."""


class TritonMetrics:
    """Triton's per-model metrics, rendered exactly as Triton's ``/metrics`` does (no
    ``_total`` suffix), plus the process and compute-share metrics via prometheus_client."""

    def __init__(self, model: str, version: str, share: float) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

        self.model = model
        self.version = version
        self._lock = threading.Lock()
        self._values: dict[str, float] = {name: 0.0 for name, _ in _TRITON_COUNTERS}
        self._failures: dict[str, float] = dict.fromkeys(FAILURE_REASONS, 0.0)
        self.pending = 0
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        # No pod label here: Prometheus adds the target's own (a second would turn into
        # exported_pod); the pod name is only in the server's log lines.
        self.busy = Counter(
            "k8sgpurl_compute_busy_seconds",
            "Wall-clock seconds the inference engine was executing a batch (device busy time)",
            registry=self.registry,
        )
        self.throttled = Counter(
            "k8sgpurl_compute_throttled_seconds",
            "Seconds executions were held back by the gpucores limiter",
            registry=self.registry,
        )
        Gauge(
            "k8sgpurl_compute_share",
            "Configured compute share (gpucores / 100)",
            registry=self.registry,
        ).set(share)

    def add(self, **values: float) -> None:
        with self._lock:
            for key, value in values.items():
                self._values[key] += value

    def fail(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._failures[reason] += n

    def set_pending(self, delta: int) -> None:
        with self._lock:
            self.pending += delta

    def value(self, name: str) -> float:
        with self._lock:
            return self._values[name]

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        def num(v: float) -> str:  # Triton's counters are whole numbers (microseconds)
            return str(int(v))

        lab = f'model="{self.model}",version="{self.version}"'
        lines: list[str] = []
        with self._lock:
            for name, help_text in _TRITON_COUNTERS:
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} counter")
                if name == "nv_inference_request_failure":
                    for reason in FAILURE_REASONS:
                        lines.append(
                            f'{name}{{model="{self.model}",reason="{reason}",'
                            f'version="{self.version}"}} {num(self._failures[reason])}'
                        )
                else:
                    lines.append(f"{name}{{{lab}}} {num(self._values[name])}")
            name = "nv_inference_pending_request_count"
            lines.append(
                f"# HELP {name} Instantaneous number of pending requests awaiting execution "
                "per-model."
            )
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name}{{{lab}}} {self.pending}")
        return ("\n".join(lines) + "\n").encode() + generate_latest(self.registry)


# ----------------------------------------------------------------------------- batching


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
        item = _Pending(array=array, enqueue_ns=time.monotonic_ns())
        with self._cond:
            if self._stopping:
                raise TritonError("UNAVAILABLE", "Server not ready")
            self._queue.append(item)
            self.metrics.set_pending(+1)
            self._cond.notify()
        return item

    def busy(self) -> bool:
        with self._cond:
            return bool(self._queue) or self._executing > 0

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            target = self.preferred[-1] if self.preferred else self.max_batch_size
            expired = self.max_delay_ns == 0
            if not expired:
                deadline = self._queue[0].enqueue_ns + self.max_delay_ns
                while sum(p.batch for p in self._queue) < target and not self._stopping:
                    remaining = deadline - time.monotonic_ns()
                    if remaining <= 0:
                        expired = True
                        break
                    self._cond.wait(remaining / 1e9)
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
            self._executing += 1
            self.metrics.set_pending(-len(batch))
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
        start_ns = time.monotonic_ns()
        try:
            x = batch[0].array if len(batch) == 1 else np.concatenate([p.array for p in batch])
            input_end_ns = time.monotonic_ns()
            waited = self.limiter.acquire()
            t0 = time.monotonic()
            outputs = self._run(x)
            busy = time.monotonic() - t0
            self.limiter.release(busy)
            self.metrics.busy.inc(busy)
            if waited:
                self.metrics.throttled.inc(waited)
            output_start_ns = time.monotonic_ns()
            offset = 0
            for p in batch:
                p.output = {
                    name: np.ascontiguousarray(arr[offset : offset + p.batch])
                    for name, arr in outputs.items()
                }
                offset += p.batch
        except Exception as exc:  # the backend failed: every request in the batch fails
            LOG.exception("model execution failed")
            err = TritonError("INTERNAL", f"onnxruntime execute failure: {exc}")
            for p in batch:
                p.error = err
            self.metrics.fail("BACKEND", len(batch))
            for p in batch:
                p.done.set()
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


# ----------------------------------------------------------------------------- the model


class ServedModel:
    """The model as the HTTP layer sees it: config, ORT session, batcher, readiness."""

    def __init__(self, repo: Path, name: str, threads: int, share: float, pod: str) -> None:
        from k8s_gpu_rl.envs.backends.local.model import read_model_config

        self.name = name
        self.version = "1"
        self.repo = repo
        self.config = read_model_config(repo, name)
        self.metrics = TritonMetrics(name, self.version, share)
        self.pod = pod
        self.limiter = ComputeShareLimiter(share)
        self.threads = threads
        self.ready = False
        self.batcher: DynamicBatcher | None = None
        self._session: Any = None

    def load(self) -> None:
        """Create the ORT session, start the batcher, run one warm-up inference."""
        import onnxruntime as ort

        path = self.repo / self.name / self.version / "model.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), opts, providers=execution_providers())
        inp = self.config.inputs[0]
        names = {i.name for i in self._session.get_inputs()}
        if len(self.config.inputs) != 1 or inp.name not in names:
            raise RuntimeError(
                f"{path}: the config's inputs {[i.name for i in self.config.inputs]} do not "
                f"match the model's {sorted(names)}"
            )
        self._output_names = [o.name for o in self.config.outputs]
        count = sum(int(g.get("count", 1)) for g in self.config.instance_groups) or 1
        self.batcher = DynamicBatcher(
            self._run,
            self.config.max_batch_size,
            self.config.preferred_batch_sizes,
            self.config.max_queue_delay_us if self.config.dynamic_batching else 0,
            self.limiter,
            self.metrics,
            instances=count,
        )
        warm = np.zeros((1, *inp.dims), dtype=DTYPES[inp.datatype])
        self._run(warm)
        self.ready = True

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._session.run(self._output_names, {self.config.inputs[0].name: x})
        return dict(zip(self._output_names, outs, strict=True))

    def metadata(self) -> dict[str, Any]:
        batch = [-1] if self.config.max_batch_size > 0 else []
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.config.platform,
            "inputs": [
                {"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)}
                for t in self.config.inputs
            ],
            "outputs": [
                {"name": t.name, "datatype": t.datatype, "shape": batch + list(t.dims)}
                for t in self.config.outputs
            ],
        }


# ----------------------------------------------------------------------------- request parsing


@dataclass
class _Parsed:
    array: np.ndarray
    outputs: list[tuple[str, bool]]
    """(output name, binary) in response order."""
    request_id: str | None


def _json_error(message: str) -> TritonError:
    return TritonError("INTERNAL", message)


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _json_error(
            f"Unable to parse '{what}': attempt to access JSON non-unsigned-integer as "
            "unsigned-integer"
        )
    if value < 0:
        raise _json_error(
            f"Unable to parse '{what}': attempt to access JSON non-unsigned-integer as "
            "unsigned-integer"
        )
    return value


def _flatten(data: Any, out: list[Any], depth: int = 0) -> None:
    if depth >= 100:
        raise TritonError("INVALID_ARG", "JSON nesting depth exceeds maximum allowed limit (100)")
    for el in data:
        if isinstance(el, list):
            _flatten(el, out, depth + 1)
        else:
            out.append(el)


def _json_tensor(data: Any, dtype: np.dtype, count: int) -> np.ndarray:
    """Read a JSON ``data`` array (flat or nested) as Triton's ReadDataFromJson does."""
    if not isinstance(data, list):
        raise _json_error("Unable to parse 'data': attempt to access JSON non-array as array")
    try:
        arr = np.asarray(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        flat: list[Any] = []
        _flatten(data, flat)
        for el in flat:
            ok = isinstance(el, bool) if dtype == np.dtype("?") else isinstance(el, int | float)
            if not ok or (isinstance(el, bool) and dtype != np.dtype("?")):
                raise _json_error(
                    "Unable to parse 'data': attempt to access JSON non-number as number"
                ) from None
        try:
            arr = np.asarray(flat, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _json_error(f"Unable to parse 'data': {exc}") from None
    if arr.size > count:
        raise _json_error("Unable to parse 'data': Shape does not match true shape of 'data' field")
    if arr.size < count:
        raise _json_error("Failed to parse 'data' field: shape does not match true shape")
    return arr


def parse_infer_request(
    model: ServedModel, body: bytes, header_length: int | None, max_input_size: int
) -> _Parsed:
    """Turn an infer request body into the model's input array, checking it as Triton's
    HTTP front end and core do (same order, same messages, same error codes)."""
    cfg = model.config
    name = model.name
    inp_cfg = cfg.inputs[0]
    if header_length == 0:  # raw binary request: the whole body is the only input
        if len(body) > max_input_size:
            raise TritonError(
                "INVALID_ARG",
                f"Raw input has a byte_size ({len(body)} bytes) that exceeds the maximum "
                f"allowed value of {max_input_size} bytes. Use --http-max-input-size to "
                "increase the limit.",
            )
        shape = ([1] if cfg.max_batch_size > 0 else []) + list(inp_cfg.dims)
        dtype = DTYPES[inp_cfg.datatype]
        expected = math.prod(shape) * dtype.itemsize
        if len(body) != expected:
            raise TritonError(
                "INVALID_ARG",
                _req(
                    f"input byte size mismatch for input '{inp_cfg.name}' for model '{name}'. "
                    f"Expected {expected}, got {len(body)}"
                ),
            )
        arr = np.frombuffer(body, dtype=dtype).reshape(shape)
        return _Parsed(arr, [(o.name, True) for o in cfg.outputs], None)

    hlen = len(body) if header_length is None else header_length
    if hlen > max_input_size:
        raise TritonError(
            "INVALID_ARG",
            f"request JSON size of {hlen} bytes exceeds the maximum allowed input size of "
            f"{max_input_size} bytes. Use --http-max-input-size to increase the limit.",
        )
    try:
        doc = json.loads(body[:hlen])
    except (ValueError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        msg = getattr(exc, "msg", str(exc))
        raise _json_error(f"failed to parse the request JSON buffer: {msg}. at {pos}") from None
    if not isinstance(doc, dict):
        raise _json_error("Unable to parse 'inputs': attempt to access JSON non-object as object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _json_error("Unable to parse 'id': attempt to access JSON non-string as string")
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise _json_error("Unable to parse 'parameters': attempt to access JSON non-object")
    binary_default = params.get("binary_data_output", False) is True
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        raise _json_error("Unable to parse 'inputs': attempt to access JSON non-array as array")

    offset = hlen
    parsed: dict[str, tuple[str, list[int], np.ndarray | None, bytes | None]] = {}
    for item in inputs:
        if not isinstance(item, dict):
            raise _json_error("attempt to access JSON non-object as object")
        in_params = item.get("parameters", {})
        if not isinstance(in_params, dict):
            in_params = {}
        has = [
            k
            for k, present in (
                ("'data'", "data" in item),
                ("'binary_data_size'", "binary_data_size" in in_params),
                ("'shared_memory_region'", "shared_memory_region" in in_params),
            )
            if present
        ]
        if len(has) != 1:
            detail = " no field is set" if not has else " set " + " ".join(has)
            raise TritonError(
                "INVALID_ARG",
                "Input must set only one of the following fields: 'data', 'binary_data_size' "
                "in 'parameters', 'shared_memory_region' in 'parameters'. But" + detail,
            )
        in_name = item.get("name")
        if not isinstance(in_name, str):
            raise _json_error("Unable to parse 'name': attempt to access JSON non-string as string")
        datatype = item.get("datatype")
        if not isinstance(datatype, str):
            raise _json_error(
                "Unable to parse 'datatype': attempt to access JSON non-string as string"
            )
        shape_json = item.get("shape")
        if not isinstance(shape_json, list):
            raise _json_error("Unable to parse 'shape': attempt to access JSON non-array as array")
        shape = [_uint(d, "shape") for d in shape_json]
        if in_name in parsed:
            raise TritonError("INVALID_ARG", _req(f"input '{in_name}' already exists in request"))
        if "shared_memory_region" in in_params:
            raise TritonError(
                "INVALID_ARG",
                f"Unable to find shared memory region: '{in_params.get('shared_memory_region')}'",
            )
        if "binary_data_size" in in_params:
            size = _uint(in_params["binary_data_size"], "binary_data_size")
            if header_length is None and size > 0:
                raise TritonError(
                    "INVALID_ARG",
                    "must specify valid 'Infer-Header-Content-Length' in request header and "
                    "'binary_data_size' when passing inputs in binary data format",
                )
            chunk = body[offset : offset + size]
            if len(chunk) != size:
                raise TritonError(
                    "INVALID_ARG",
                    f"unexpected size for input '{in_name}', expecting {size - len(chunk)} "
                    f"additional bytes for model '{name}'",
                )
            offset += size
            parsed[in_name] = (datatype, shape, None, chunk)
        else:
            count = math.prod(shape)
            dtype = DTYPES.get(datatype)
            if dtype is None:
                raise TritonError("INVALID_ARG", f"invalid datatype for input {in_name}")
            if dtype == np.dtype("<f2"):
                raise TritonError(
                    "INVALID_ARG",
                    "receiving FP16 data via JSON is not supported. Please use the binary data "
                    f"format for input {in_name}",
                )
            if count * dtype.itemsize > max_input_size:
                raise TritonError(
                    "INVALID_ARG",
                    f"JSON input '{in_name}' has a byte_size ({count * dtype.itemsize} bytes) "
                    f"that exceeds the maximum allowed value of {max_input_size} bytes. Use "
                    "--http-max-input-size to increase the limit.",
                )
            arr = _json_tensor(item["data"], dtype, count) if count else np.zeros(0, dtype)
            parsed[in_name] = (datatype, shape, arr, None)
    if offset != len(body):
        raise TritonError("INVALID_ARG", f"unexpected additional input data for model '{name}'")

    outputs: list[tuple[str, bool]] = []
    if "outputs" in doc:
        req_outputs = doc["outputs"]
        if not isinstance(req_outputs, list):
            raise _json_error("Unable to parse 'outputs': attempt to access JSON non-array")
        for out in req_outputs:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise _json_error(
                    "Unable to parse 'name': attempt to access JSON non-string as string"
                )
            out_params = out.get("parameters", {})
            if not isinstance(out_params, dict):
                out_params = {}
            if out_params.get("classification"):
                raise TritonError(
                    "UNSUPPORTED", "classification outputs are not supported by this server"
                )
            binary = out_params.get("binary_data", binary_default) is True
            if any(o == out["name"] for o, _ in outputs):
                raise TritonError(
                    "INVALID_ARG", _req(f"output '{out['name']}' already exists in request")
                )
            outputs.append((out["name"], binary))
    else:
        outputs = [(o.name, binary_default) for o in cfg.outputs]

    # --- the core's checks (InferenceRequest::PrepareForInference / Normalize)
    if len(parsed) != len(cfg.inputs):
        got = "[" + ",".join(f"'{n}'" for n in parsed) + "]" if parsed else "[]"
        missing = "[" + ",".join(f"'{i.name}'" for i in cfg.inputs if i.name not in parsed) + "]"
        raise TritonError(
            "INVALID_ARG",
            _req(
                f"expected {len(cfg.inputs)} inputs but got {len(parsed)} inputs for model "
                f"'{name}'. Got input(s) {got}, but missing required input(s) {missing}. "
                "Please provide all required input(s)."
            ),
        )
    in_name, (datatype, shape, arr, raw) = next(iter(parsed.items()))
    if in_name != inp_cfg.name:
        raise TritonError(
            "INVALID_ARG", f"unexpected inference input '{in_name}' for model '{name}'"
        )
    known_outputs = {o.name for o in cfg.outputs}
    for out_name, _ in outputs:
        if out_name not in known_outputs:
            raise TritonError(
                "INVALID_ARG", f"unexpected inference output '{out_name}' for model '{name}'"
            )
    dims_str = "[" + ",".join(map(str, shape)) + "]"
    if cfg.max_batch_size > 0:
        if not shape:
            raise TritonError(
                "INVALID_ARG",
                _req(
                    f"input '{in_name}' has no shape but model requires batch dimension for "
                    f"'{name}'"
                ),
            )
        batch = shape[0]
        if batch > cfg.max_batch_size:
            raise TritonError(
                "INVALID_ARG",
                _req(f"inference request batch-size must be <= {cfg.max_batch_size} for '{name}'"),
            )
        if batch < 1:  # Triton would pass an empty batch to the backend; refuse it here
            raise TritonError(
                "INVALID_ARG", _req(f"inference request batch-size must be >= 1 for '{name}'")
            )
        dims = shape[1:]
    else:
        dims = shape
    if datatype != inp_cfg.datatype:
        raise TritonError(
            "INVALID_ARG",
            _req(
                f"inference input '{in_name}' data-type is '{datatype}', but model '{name}' "
                f"expects '{inp_cfg.datatype}'"
            ),
        )
    if tuple(dims) != tuple(inp_cfg.dims):
        full = ([-1] if cfg.max_batch_size > 0 else []) + list(inp_cfg.dims)
        note = (
            "NOTE: Setting a non-zero max_batch_size in the model config requires a batch "
            "dimension to be prepended to each input shape. If you want to specify the full "
            "shape including the batch dim in your input dims config, try setting "
            "max_batch_size to zero. See the model configuration docs for more info on "
            "max_batch_size."
            if cfg.max_batch_size > 0
            else ""
        )
        raise TritonError(
            "INVALID_ARG",
            _req(
                f"unexpected shape for input '{in_name}' for model '{name}'. Expected "
                f"[{','.join(map(str, full))}], got {dims_str}. {note}"
            ),
        )
    dtype = DTYPES[inp_cfg.datatype]
    expected = math.prod(shape) * dtype.itemsize
    if raw is not None:
        if len(raw) != expected:
            raise TritonError(
                "INVALID_ARG",
                _req(
                    f"input byte size mismatch for input '{in_name}' for model '{name}'. "
                    f"Expected {expected}, got {len(raw)}"
                ),
            )
        arr = np.frombuffer(raw, dtype=dtype)
    assert arr is not None
    return _Parsed(arr.reshape(shape), outputs, request_id)


# ----------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A broken connection is the client's business: log it, keep serving."""
        LOG.debug("connection from %s failed", client_address, exc_info=True)


_INFER_RE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]*))?/infer$")
_MODEL_RE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]*))?(/ready|/config)?$")


class TritonApp:
    """State shared by the HTTP handlers: the model, readiness, in-flight accounting."""

    def __init__(self, model: ServedModel, max_input_size: int) -> None:
        self.model = model
        self.max_input_size = max_input_size
        self.draining = False
        self._inflight = 0
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.model.ready and not self.draining

    def enter(self) -> None:
        with self._lock:
            self._inflight += 1

    def leave(self) -> None:
        with self._lock:
            self._inflight -= 1

    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    def lookup(self, name: str, version: str | None) -> ServedModel:
        """The model, or Triton's errors for a bad version string / unknown model."""
        if version:
            try:
                v = int(version)
            except ValueError:
                raise TritonError(
                    "INVALID_ARG",
                    f"failed to get model version from specified version string '{version}' "
                    "(details: stol), version should be an integral value > 0",
                ) from None
            if v < 0:
                raise TritonError(
                    "INVALID_ARG",
                    f"invalid model version specified '{version}' , version should be an "
                    "integral value > 0",
                )
        if name != self.model.name:
            raise TritonError("NOT_FOUND", f"Request for unknown model: '{name}' is not found")
        if version and version != self.model.version and int(version) != 0:
            raise TritonError(
                "NOT_FOUND", f"Request for unknown model: '{name}' version {version} is not found"
            )
        if not self.model.ready:
            raise TritonError(
                "NOT_FOUND", f"Request for unknown model: '{name}' has no available versions"
            )
        return self.model


class TritonHandler(BaseHTTPRequestHandler):
    """KServe v2 endpoints as Triton's HTTP server answers them."""

    protocol_version = "HTTP/1.1"
    server_version = "k8sgpurl-triton-local"
    app: TritonApp  # set on the subclass built by make_http_server

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        LOG.debug("%s - " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (unparseable request line, headers too long): an HTTP/1.1
        status line and a JSON error body, then the connection is closed."""
        self.close_connection = True
        body = json.dumps({"error": message or self.responses.get(code, ("Error",))[0]}).encode()
        head = (
            f"HTTP/1.1 {code} {self.responses.get(code, ('',))[0]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            self.wfile.write(head.encode("latin-1") + body)

    # -- responses

    def _send(
        self, status: int, body: bytes = b"", ctype: str | None = None, headers: Any = ()
    ) -> None:
        close = self.close_connection or self.app.draining
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.append(f"Content-Length: {len(body)}")
        if close:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.wfile.write(body)
        self.log_request(status, len(body))

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    def _error(self, err: TritonError) -> None:
        self._json(err.status, {"error": err.message})

    # -- body

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            value = int(raw.strip())
        except ValueError:
            raise TritonError(
                "INVALID_ARG", f"Unable to parse Content-Length, got: {raw}"
            ) from None
        if not -(2**31) <= value < 2**31:
            raise TritonError(
                "INVALID_ARG",
                f"Unable to parse Content-Length, value is out of range [ -2147483648, "
                f"2147483647 ], got: {raw}",
            )
        if value < 0:
            raise TritonError("INVALID_ARG", f"Unable to parse Content-Length, got: {raw}")
        return value

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked), bounded by the input size limit."""
        limit = self.app.max_input_size
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise TritonError("INVALID_ARG", "malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > limit:
                    self.close_connection = True
                    raise TritonError(
                        "INVALID_ARG",
                        f"request body exceeds the maximum allowed input size of {limit} bytes. "
                        "Use --http-max-input-size to increase the limit.",
                    )
                parts.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self._content_length()
        if length > limit:
            # Refuse without buffering it; read (and drop) a bounded amount so the client
            # gets the answer instead of a connection reset, then close the connection.
            self.close_connection = True
            remaining = length if length <= 4 * limit else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            hdr = self.headers.get(HEADER_LENGTH)
            if hdr is not None and hdr.strip() == "0":
                raise TritonError(
                    "INVALID_ARG",
                    f"Raw input has a byte_size ({length} bytes) that exceeds the maximum "
                    f"allowed value of {limit} bytes. Use --http-max-input-size to increase "
                    "the limit.",
                )
            json_len = length if hdr is None else min(length, _safe_int(hdr, length))
            what = "request JSON" if json_len > limit else "request body"
            raise TritonError(
                "INVALID_ARG",
                f"{what} size of {json_len if json_len > limit else length} bytes exceeds the "
                f"maximum allowed input size of {limit} bytes. Use --http-max-input-size to "
                "increase the limit.",
            )
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            raise TritonError("INVALID_ARG", "unexpected end of request body")
        return body

    def _header_length(self, content_length: int) -> int | None:
        raw = self.headers.get(HEADER_LENGTH)
        if raw is None:
            return None
        try:
            value = int(raw.strip())
        except ValueError:
            raise TritonError(
                "INVALID_ARG", f"Unable to parse {HEADER_LENGTH}, got: {raw}"
            ) from None
        if not -(2**31) <= value < 2**31:
            raise TritonError(
                "INVALID_ARG",
                f"Unable to parse {HEADER_LENGTH}, value is out of range [ -2147483648, "
                f"2147483647 ], got: {raw}",
            )
        if value < 0 or value > content_length:
            raise TritonError(
                "INVALID_ARG",
                f"inference header size should be in range (0, {content_length}), got: {raw}",
            )
        return value

    # -- routing

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self.app.enter()
        try:
            path = self.path.split("?", 1)[0]
            try:
                body = self._read_body()
            except TritonError as err:
                self._error(err)
                return
            try:
                self._route(method, path, body)
            except TritonError as err:
                self._error(err)
            except (ConnectionError, TimeoutError):
                raise
            except Exception as exc:  # never let a request take the server down
                LOG.exception("unexpected error handling %s %s", method, path)
                self._error(TritonError("INTERNAL", f"internal error: {exc}"))
        finally:
            self.app.leave()

    def _route(self, method: str, path: str, body: bytes) -> None:
        app = self.app
        m = _INFER_RE.match(path)
        if m:
            if method != "POST":
                raise _method_not_allowed()
            self._infer(m.group(1), m.group(2), body)
            return
        if path in ("/v2/health/live", "/v2/health/ready"):
            if method != "GET":
                raise _method_not_allowed()
            ok = True if path.endswith("live") else app.ready
            self._send(200 if ok else 400)
            return
        if path in ("/v2", "/v2/"):
            if method != "GET":
                raise _method_not_allowed()
            self._json(
                200,
                {
                    "name": SERVER_NAME,
                    "version": SERVER_VERSION,
                    "extensions": ["binary_tensor_data", "model_configuration", "parameters"],
                },
            )
            return
        m = _MODEL_RE.match(path)
        if m:
            if method != "GET":
                raise _method_not_allowed()
            name, version, tail = m.group(1), m.group(2), m.group(3)
            model = app.lookup(name, version)
            if tail == "/ready":
                if app.draining:
                    raise TritonError("UNAVAILABLE", "Server not ready")
                self._send(200)
            elif tail == "/config":
                self._json(200, model.config.to_json())
            else:
                if app.draining:
                    raise TritonError("UNAVAILABLE", "Server not ready")
                self._json(200, model.metadata())
            return
        raise TritonError("NOT_FOUND", "Not Found")

    def _infer(self, name: str, version: str | None, body: bytes) -> None:
        app = self.app
        header_length = self._header_length(len(body))
        model = app.lookup(name, version)
        start_ns = time.monotonic_ns()
        parsed = parse_infer_request(model, body, header_length, app.max_input_size)
        assert model.batcher is not None
        pending = model.batcher.submit(parsed.array)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.output is not None
        out_json: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for out_name, binary in parsed.outputs:
            arr = pending.output[out_name]
            entry: dict[str, Any] = {
                "name": out_name,
                "datatype": _datatype(arr.dtype),
                "shape": list(arr.shape),
            }
            if binary:
                raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
                entry["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                entry["data"] = arr.reshape(-1).tolist()
            out_json.append(entry)
        resp: dict[str, Any] = {}
        if parsed.request_id is not None:
            resp["id"] = parsed.request_id
        resp.update({"model_name": model.name, "model_version": model.version})
        resp["outputs"] = out_json
        head = json.dumps(resp, separators=(",", ":")).encode()
        model.metrics.add(
            nv_inference_request_success=1,
            nv_inference_request_duration_us=(time.monotonic_ns() - start_ns) / 1000,
        )
        if blobs:
            self._send(
                200,
                head + b"".join(blobs),
                "application/octet-stream",
                [(HEADER_LENGTH, str(len(head)))],
            )
        else:
            self._send(200, head, "application/json")


def _safe_int(text: str, default: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def _method_not_allowed() -> TritonError:
    return TritonError("METHOD_NOT_ALLOWED", "Method Not Allowed")


def _datatype(dtype: np.dtype) -> str:
    for name, dt in DTYPES.items():
        if dt == dtype.newbyteorder("<") or dt == dtype:
            return name
    raise TritonError("INTERNAL", f"unsupported output dtype {dtype}")


class MetricsHandler(BaseHTTPRequestHandler):
    """``GET /metrics`` in Prometheus text format."""

    protocol_version = "HTTP/1.1"
    metrics: TritonMetrics

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOG.debug("metrics %s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            body, status, ctype = b'{"error":"Not Found"}', 404, "application/json"
        else:
            body, status = self.metrics.render(), 200
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_http_server(app: TritonApp, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundTritonHandler", (TritonHandler,), {"app": app})
    return _Server((host, port), handler)


def make_metrics_server(metrics: TritonMetrics, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundMetricsHandler", (MetricsHandler,), {"metrics": metrics})
    return _Server((host, port), handler)


# ----------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m k8s_gpu_rl.envs.backends.local.server",
        description="Serve MobileNetV4 through ONNX Runtime, speaking KServe v2 as Triton does.",
    )
    p.add_argument("--model-repository", required=True, type=Path, help="Triton model repository")
    p.add_argument("--model", default="mobilenetv4", help="model to serve (default mobilenetv4)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000, help="KServe v2 port (0 = any free)")
    p.add_argument("--metrics-port", type=int, default=8002, help="/metrics port (0 = any free)")
    p.add_argument("--gpucores", type=int, default=100, help="compute share in percent, 1-100")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    p.add_argument(
        "--pod", default=os.environ.get("HOSTNAME", "local"), help="pod name (in log lines)"
    )
    p.add_argument(
        "--exit-timeout-secs",
        type=float,
        default=30.0,
        help="bound on the graceful drain after SIGTERM/SIGINT (Triton's default 30)",
    )
    p.add_argument(
        "--http-max-input-size",
        type=int,
        default=DEFAULT_MAX_INPUT_SIZE,
        help=f"largest accepted request body/JSON in bytes (default {DEFAULT_MAX_INPUT_SIZE})",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p


def execution_providers() -> list[str]:
    """ONNX Runtime's CUDA provider where one is installed and a GPU is visible (the
    ``onnxruntime-gpu`` package), else the CPU. ``K8SGPURL_DEVICE=cpu`` forces the CPU.

    On a GPU the vGPU share still holds through the limiter below (as HAMi-core throttles
    kernel launches); the testbed also sets ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` to the
    share, which caps the SMs a process may use where an MPS daemon runs."""
    import onnxruntime as ort

    if os.environ.get("K8SGPURL_DEVICE", "auto") != "cpu" and (
        "CUDAExecutionProvider" in ort.get_available_providers()
    ):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.gpucores <= 100:
        parser.error(f"--gpucores must be in 1..100, got {args.gpucores}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    for flag in ("http_port", "metrics_port"):
        if not 0 <= getattr(args, flag) <= 65535:
            parser.error(f"--{flag.replace('_', '-')} must be in 0..65535")
    if args.http_max_input_size < 1:
        parser.error("--http-max-input-size must be >= 1")
    if args.exit_timeout_secs < 0:
        parser.error("--exit-timeout-secs must be >= 0")
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        parser.error(f"--log-level: unknown level {args.log_level!r}")
    logging.basicConfig(
        level=level, stream=sys.stderr, format=f"%(asctime)s {args.pod} %(levelname)s %(message)s"
    )
    config_path = args.model_repository / args.model / "config.pbtxt"
    if not config_path.is_file():
        print(f"error: no model config at {config_path}", file=sys.stderr)
        return 2
    try:
        model = ServedModel(
            args.model_repository, args.model, args.threads, args.gpucores / 100, args.pod
        )
    except ValueError as exc:
        print(f"error: {config_path}: {exc}", file=sys.stderr)
        return 2
    app = TritonApp(model, args.http_max_input_size)
    try:
        http = make_http_server(app, args.host, args.http_port)
        metrics = make_metrics_server(model.metrics, args.host, args.metrics_port)
    except OSError as exc:
        print(f"error: cannot bind {args.host}: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not app.draining:
            LOG.info("received %s: draining", signal.Signals(signum).name)
        app.draining = True
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        for srv in (http, metrics)
    ]
    for t in threads:
        t.start()
    try:
        model.load()
    except Exception as exc:
        LOG.error("failed to load model '%s': %s", args.model, exc)
        http.shutdown()
        metrics.shutdown()
        return 1
    LOG.info(
        "serving '%s' on %s: gpucores=%d threads=%d max_batch_size=%d",
        args.model,
        args.host,
        args.gpucores,
        args.threads,
        model.config.max_batch_size,
    )
    print(f"READY http={http.server_address[1]} metrics={metrics.server_address[1]}", flush=True)
    while not stop.wait(0.5):
        pass

    # Graceful drain, as a terminating pod: not ready, no new connections, finish in-flight
    # and queued requests (each answer closes its connection), then exit.
    http.shutdown()  # stops the accept loop
    http.server_close()  # closes the listening socket: new connections are refused
    deadline = time.monotonic() + args.exit_timeout_secs
    assert model.batcher is not None
    while time.monotonic() < deadline and (app.inflight() > 0 or model.batcher.busy()):
        time.sleep(0.02)
    left = app.inflight()
    model.batcher.stop(timeout=1.0)
    metrics.shutdown()
    metrics.server_close()
    if left:
        LOG.warning("exit timeout: %d requests still in flight", left)
    LOG.info("drained; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
