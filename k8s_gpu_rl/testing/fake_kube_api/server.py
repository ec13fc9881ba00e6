"""HTTP plumbing: the threaded loopback server, its handler and the listening lifecycle."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from k8s_gpu_rl.testing.fake_kube_api.api import FakeKubeApi


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: FakeKubeApi) -> None:
        self.api = api
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # TCP_NODELAY as Go's net/http (kube-apiserver) sets it: http.server sends headers
        # and body separately, and with Nagle's algorithm a kept-alive connection's body
        # would wait ~40 ms for the client's delayed ACK, a cost no real API server has
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet resets
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real server
    server_version = "fake-kube-apiserver"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        code, body, extra = self.server.api._handle(self.command, self.path, self.headers, raw)
        if isinstance(body, _Stream):
            self._send_stream(code, body, extra)
            return
        if isinstance(body, _Text):
            data, ctype = body.text.encode(), "text/plain"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, code: int, body: _Stream, extra: dict[str, str]) -> None:
        """A chunked response (watch events, followed logs), ended by the zero chunk."""
        self.send_response(code)
        self.send_header("Content-Type", body.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            for chunk in body.chunks:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # client went away, or down() reset the connection
            self.close_connection = True
        finally:
            close = getattr(body.chunks, "close", None)
            if close is not None:
                close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Text(NamedTuple):
    """A text/plain response body (pod logs)."""

    text: str


class _Stream(NamedTuple):
    """A streamed (chunked) response body; ``chunks`` runs in the handler's thread."""

    content_type: str
    chunks: Iterator[bytes]


class ServerMixin:
    """The listening port: :meth:`down` / :meth:`up`, the URL and client configuration."""

    def down(self) -> None:
        """Stop accepting connections (listening socket closed, open connections reset)."""
        self._close_server()

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        if self._server is None:
            assert self.port is not None, "start() first"
            self._serve(self.port)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def _serve(self, port: int) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _Server(("127.0.0.1", port), self)
                break
            except OSError:
                if port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._server = server
        self.port = server.server_address[1]
        self._server_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._server_thread.start()

    def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        with self._changed:  # open watch streams see the server gone and end
            self._changed.notify_all()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
            self._server_thread = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"http://127.0.0.1:{self.port}"

    def configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` pointing at this server (bearer token set)."""
        from kubernetes import client

        cfg = client.Configuration(host=self.url)
        cfg.api_key = {"BearerToken": self.token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cfg

    def api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient(self.configuration())
