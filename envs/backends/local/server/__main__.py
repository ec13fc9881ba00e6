"""``python -m k8s_gpu_rl.envs.backends.local.server``: serve one model until SIGTERM/SIGINT,
then drain gracefully as a terminating pod does.

Prints ``READY http=<port> metrics=<port>`` on stdout once the model is loaded. Exit codes:
0 after a drain, 1 when the model fails to load, 2 for a bad argument, a missing or bad
model config, or an address that cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from k8s_gpu_rl.envs.backends.local.server.app import TritonApp
from k8s_gpu_rl.envs.backends.local.server.handlers import make_http_server, make_metrics_server
from k8s_gpu_rl.envs.backends.local.server.limiter import (
    POLICIES,
    POLICY_ENV,
    ComputeShareLimiter,
    DeviceTasks,
)
from k8s_gpu_rl.envs.backends.local.server.protocol import DEFAULT_MAX_INPUT_SIZE
from k8s_gpu_rl.envs.backends.local.server.served import ServedModel

LOG = logging.getLogger("k8sgpurl.server")


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
    p.add_argument(
        "--core-policy",
        default=os.environ.get(POLICY_ENV) or "default",
        help="HAMi-core's core-limit policy: default (only while the device is shared), force "
        f"or disable (default: ${POLICY_ENV}, else default, as HAMi-core)",
    )
    p.add_argument(
        "--device-tasks",
        type=Path,
        default=None,
        help="file holding the number of tasks on this device (HAMi-core's shared region; "
        "the local Deployment controller writes it); missing: this server alone",
    )
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


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, int]:
    """The arguments and the logging level; a bad value exits 2 with argparse's usage."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.gpucores <= 100:
        parser.error(f"--gpucores must be in 1..100, got {args.gpucores}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.core_policy not in POLICIES:
        parser.error(
            f"--core-policy must be one of {', '.join(POLICIES)}, got {args.core_policy!r}"
        )
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
    return args, level


def _served_model(args: argparse.Namespace) -> ServedModel | None:
    """The model from its config (not loaded yet); ``None`` after printing the error."""
    config_path = args.model_repository / args.model / "config.pbtxt"
    if not config_path.is_file():
        print(f"error: no model config at {config_path}", file=sys.stderr)
        return None
    try:
        limiter = ComputeShareLimiter(
            args.gpucores / 100,
            policy=args.core_policy,
            tasks_on_device=DeviceTasks(args.device_tasks),
        )
        return ServedModel(
            args.model_repository, args.model, args.threads, args.gpucores / 100, args.pod, limiter
        )
    except ValueError as exc:
        print(f"error: {config_path}: {exc}", file=sys.stderr)
        return None


def _bind(
    app: TritonApp, model: ServedModel, host: str, http_port: int, metrics_port: int
) -> tuple[ThreadingHTTPServer, ThreadingHTTPServer] | None:
    """Both listening servers; ``None`` after printing the error."""
    try:
        http = make_http_server(app, host, http_port)
        metrics = make_metrics_server(model.metrics, host, metrics_port)
    except OSError as exc:
        print(f"error: cannot bind {host}: {exc}", file=sys.stderr)
        return None
    return http, metrics


def _on_signal(app: TritonApp, stop: threading.Event) -> None:
    """SIGTERM and SIGINT start the drain: not ready any more, leave the serve loop."""

    def handler(signum: int, _frame: Any) -> None:
        if not app.draining:
            LOG.info("received %s: draining", signal.Signals(signum).name)
        app.draining = True
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _drain(
    app: TritonApp,
    model: ServedModel,
    http: ThreadingHTTPServer,
    metrics: ThreadingHTTPServer,
    exit_timeout_s: float,
) -> None:
    """Graceful drain, as a terminating pod: not ready, no new connections, finish
    in-flight and queued requests (each answer closes its connection), then stop."""
    http.shutdown()  # stops the accept loop
    http.server_close()  # closes the listening socket: new connections are refused
    deadline = time.monotonic() + exit_timeout_s
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


def main(argv: list[str] | None = None) -> int:
    """Run the server; the process's exit code."""
    args, level = _parse_args(argv)
    logging.basicConfig(
        level=level, stream=sys.stderr, format=f"%(asctime)s {args.pod} %(levelname)s %(message)s"
    )
    model = _served_model(args)
    if model is None:
        return 2
    app = TritonApp(model, args.http_max_input_size)
    servers = _bind(app, model, args.host, args.http_port, args.metrics_port)
    if servers is None:
        return 2
    http, metrics = servers
    stop = threading.Event()
    _on_signal(app, stop)
    for srv in (http, metrics):
        kwargs = {"poll_interval": 0.1}
        threading.Thread(target=srv.serve_forever, kwargs=kwargs, daemon=True).start()
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
    _drain(app, model, http, metrics, args.exit_timeout_secs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
