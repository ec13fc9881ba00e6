"""The HTTP endpoints: KServe v2 as Triton's HTTP server answers it, and ``/metrics`` on
its own port. Request bodies are read here; what they mean is :mod:`.codec`'s business."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from k8s_gpu_rl.envs.backends.local.server.app import TritonApp
from k8s_gpu_rl.envs.backends.local.server.codec import encode_infer_response, parse_infer_request
from k8s_gpu_rl.envs.backends.local.server.framing import (
    oversized_body_error,
    parse_content_length,
    parse_header_length,
)
from k8s_gpu_rl.envs.backends.local.server.metrics import TritonMetrics
from k8s_gpu_rl.envs.backends.local.server.protocol import (
    HEADER_LENGTH,
    SERVER_NAME,
    SERVER_VERSION,
    TritonError,
    invalid,
)

LOG = logging.getLogger("k8sgpurl.server")

_INFER_RE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]*))?/infer$")
_MODEL_RE = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]*))?(/ready|/config)?$")
_EXTENSIONS = ["binary_tensor_data", "model_configuration", "parameters"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A broken connection is the client's business: log it, keep serving."""
        LOG.debug("connection from %s failed", client_address, exc_info=True)


def _method_not_allowed() -> TritonError:
    return TritonError("METHOD_NOT_ALLOWED", "Method Not Allowed")


def _require(method: str, allowed: str) -> None:
    if method != allowed:
        raise _method_not_allowed()


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

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked), bounded by the input size limit."""
        limit = self.app.max_input_size
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = parse_content_length(self.headers.get("Content-Length"))
        if length > limit:
            # Refuse without buffering it; read (and drop) a bounded amount so the client
            # gets the answer instead of a connection reset, then close the connection.
            self.close_connection = True
            self._discard(length if length <= 4 * limit else 0)
            raise oversized_body_error(length, self.headers.get(HEADER_LENGTH), limit)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            raise invalid("unexpected end of request body")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise invalid("malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                self.close_connection = True
                raise invalid(
                    f"request body exceeds the maximum allowed input size of {limit} bytes. "
                    "Use --http-max-input-size to increase the limit."
                )
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _discard(self, remaining: int) -> None:
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

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
        m = _INFER_RE.match(path)
        if m:
            _require(method, "POST")
            self._infer(m.group(1), m.group(2), body)
        elif path in ("/v2/health/live", "/v2/health/ready"):
            _require(method, "GET")
            self._send(200 if path.endswith("live") or self.app.ready else 400)
        elif path in ("/v2", "/v2/"):
            _require(method, "GET")
            self._json(
                200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": _EXTENSIONS}
            )
        elif m := _MODEL_RE.match(path):
            _require(method, "GET")
            self._model(m.group(1), m.group(2), m.group(3))
        else:
            raise TritonError("NOT_FOUND", "Not Found")

    def _model(self, name: str, version: str | None, tail: str | None) -> None:
        """``GET /v2/models/<m>[/versions/<v>][/ready|/config]``."""
        model = self.app.lookup(name, version)
        if tail != "/config" and self.app.draining:
            raise TritonError("UNAVAILABLE", "Server not ready")
        if tail == "/ready":
            self._send(200)
        elif tail == "/config":
            self._json(200, model.config.to_json())
        else:
            self._json(200, model.metadata())

    def _infer(self, name: str, version: str | None, body: bytes) -> None:
        app = self.app
        header_length = parse_header_length(self.headers.get(HEADER_LENGTH), len(body))
        model = app.lookup(name, version)
        start_ns = time.monotonic_ns()
        parsed = parse_infer_request(model, body, header_length, app.max_input_size)
        assert model.batcher is not None
        pending = model.batcher.submit(parsed.array)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.output is not None
        head, blobs = encode_infer_response(parsed, pending.output, model.name, model.version)
        model.metrics.add(
            nv_inference_request_success=1,
            nv_inference_request_duration_us=(time.monotonic_ns() - start_ns) / 1000,
        )
        if blobs is not None:
            ctype, headers = "application/octet-stream", [(HEADER_LENGTH, str(len(head)))]
            self._send(200, head + blobs, ctype, headers)
        else:
            self._send(200, head, "application/json")


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
    """The KServe v2 server on ``host:port`` (port 0: any free one)."""
    handler = type("BoundTritonHandler", (TritonHandler,), {"app": app})
    return _Server((host, port), handler)


def make_metrics_server(metrics: TritonMetrics, host: str, port: int) -> ThreadingHTTPServer:
    """The ``/metrics`` server on ``host:port`` (port 0: any free one)."""
    handler = type("BoundMetricsHandler", (MetricsHandler,), {"metrics": metrics})
    return _Server((host, port), handler)
