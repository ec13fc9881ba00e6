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

The parts, one module each: :mod:`.protocol` (error type, datatypes, constants),
:mod:`.limiter` (the compute share), :mod:`.metrics` (Triton's ``/metrics``),
:mod:`.batcher` (the dynamic batcher), :mod:`.served` (the ONNX Runtime model),
:mod:`.codec` (KServe v2 requests and responses) with :mod:`.checks` (the core's checks
against the model config), :mod:`.app` (shared state, model lookup), :mod:`.handlers` (the
HTTP endpoints) and :mod:`.__main__` (the command line).
"""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.envs.backends.local.server.app import TritonApp
from k8s_gpu_rl.envs.backends.local.server.batcher import DynamicBatcher
from k8s_gpu_rl.envs.backends.local.server.codec import (
    ParsedRequest,
    encode_infer_response,
    parse_infer_request,
)
from k8s_gpu_rl.envs.backends.local.server.handlers import (
    MetricsHandler,
    TritonHandler,
    make_http_server,
    make_metrics_server,
)
from k8s_gpu_rl.envs.backends.local.server.limiter import ComputeShareLimiter
from k8s_gpu_rl.envs.backends.local.server.metrics import FAILURE_REASONS, TritonMetrics
from k8s_gpu_rl.envs.backends.local.server.protocol import (
    DEFAULT_MAX_INPUT_SIZE,
    DTYPES,
    HEADER_LENGTH,
    SERVER_NAME,
    SERVER_VERSION,
    TritonError,
)
from k8s_gpu_rl.envs.backends.local.server.served import ServedModel, execution_providers

__all__ = [
    "DEFAULT_MAX_INPUT_SIZE",
    "DTYPES",
    "FAILURE_REASONS",
    "HEADER_LENGTH",
    "SERVER_NAME",
    "SERVER_VERSION",
    "ComputeShareLimiter",
    "DynamicBatcher",
    "MetricsHandler",
    "ParsedRequest",
    "ServedModel",
    "TritonApp",
    "TritonError",
    "TritonHandler",
    "TritonMetrics",
    "encode_infer_response",
    "execution_providers",
    "main",
    "make_http_server",
    "make_metrics_server",
    "parse_infer_request",
]


def __getattr__(name: str) -> Any:
    """``main`` from :mod:`.__main__`, imported on first use: importing it here eagerly
    would make ``python -m`` warn that the module was imported before it ran."""
    if name == "main":
        from k8s_gpu_rl.envs.backends.local.server.__main__ import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
