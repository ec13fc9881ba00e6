"""HAProxy in front of the local testbed's replicas (what a Kubernetes Service does).

:class:`HAProxy` runs Debian's ``haproxy`` (2.6) in master-worker mode in the foreground
(``haproxy -W -db -f <rundir>/haproxy.cfg -S <rundir>/haproxy-master.sock``) as a child
of a :class:`~k8s_gpu_rl.envs.backends.local.procs.ProcessGroup`.

* **Balancing**: ``balance random(1)`` by default: each request goes to a server picked
  uniformly at random, as kube-proxy's default iptables mode picks a Service endpoint.
  (HAProxy's plain ``random`` draws two servers and takes the less loaded one, which is
  smarter than a Service.) ``balance="roundrobin"`` is what kube-proxy's IPVS mode does.
* **Readiness**: HTTP health checks ``GET <health_path>`` (default ``/v2/health/ready``)
  every second, ``fall 3 rise 1`` with checks every quarter second once one fails: a
  replica that starts draining (readiness 400) stops getting new requests within about
  1.5 s, as an endpoint leaves a Service when its readiness probe fails, while a single
  slow answer on a busy machine does not empty the Service. In-flight requests finish.
* **Reconfiguration**: :meth:`HAProxy.set_servers` validates the new config
  (``haproxy -c``), replaces ``haproxy.cfg`` atomically and sends SIGUSR2 to the master,
  which re-executes itself with the new config, hands the listening sockets to a new
  worker (``-x sockpair@…``: no connection is refused meanwhile) and soft-stops the old
  workers, which finish the requests they have. ``option idle-close-on-response`` makes
  an old worker keep its idle keep-alive client connections until their next request and
  answer it with ``Connection: close`` (without it, a client reusing a connection at the
  moment the old worker closes it sees "remote end closed connection", about once in
  7,000 requests over 100 reloads here); ``hard-stop-after 70s`` bounds how long an old
  worker lingers. The call returns once the master's CLI (``show proc``) lists the new
  worker. The test suite checks that clients sending requests (keep-alive and not)
  throughout reloads see no failure.
* **No servers**: an empty list is a valid config; requests get 503.
* **Metrics**: a second frontend on ``stats_port`` serves HAProxy's built-in Prometheus
  exporter at ``/metrics`` and the stats page at ``/stats`` (``/stats;csv`` for
  :meth:`HAProxy.server_states`).

Timeouts: connect 2 s, client and server 60 s, queue 30 s; ``maxconn`` 4096 by default.
A failed connection to a server is retried (``retries 3``, ``option redispatch``) on
another server, as a client of a Service would see a refused connection otherwise.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

from k8s_gpu_rl.envs.backends.local.procs import Managed, ProcessGroup, free_port, wait_http
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.io import atomic_write

__all__ = ["HAPROXY_INSTALL_HINT", "HAProxy", "Server", "haproxy_binary"]

Server = tuple[str, str, int]
"""A backend server: ``(name, host, port)``, e.g. ``("triton-0", "127.0.0.1", 8123)``."""

HAPROXY_INSTALL_HINT = "install it with `apt-get install haproxy`"
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_BALANCE = {"random": "random(1)", "roundrobin": "roundrobin", "leastconn": "leastconn"}


def haproxy_binary() -> str:
    """Path of the ``haproxy`` executable; :class:`BackendError` if it is not installed."""
    path = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)),
        None,
    )
    if path is None:
        raise BackendError(f"haproxy not found on PATH: {HAPROXY_INSTALL_HINT}")
    return path


class HAProxy:
    """A running HAProxy load balancer on ``127.0.0.1:port``; see the module docstring.

    ``balance``: ``"random"`` (default, like kube-proxy iptables), ``"roundrobin"`` or
    ``"leastconn"``. ``stats_port``: port of the metrics/stats frontend (``None``: a free
    one; ``0``: none). ``servers``: the initial server list. Starting waits until the
    frontend answers (a 503 with no servers counts) and raises :class:`BackendError` with
    the log's tail if HAProxy does not come up.
    """

    def __init__(
        self,
        group: ProcessGroup,
        port: int,
        health_path: str = "/v2/health/ready",
        *,
        balance: str = "random",
        stats_port: int | None = None,
        maxconn: int = 4096,
        check_interval_s: float = 1.0,
        servers: Sequence[Server] = (),
        name: str = "haproxy",
        start_timeout_s: float = 15.0,
    ) -> None:
        if balance not in _BALANCE:
            raise BackendError(f"balance {balance!r}: use one of {sorted(_BALANCE)}")
        if not health_path.startswith("/") or any(c.isspace() for c in health_path):
            raise BackendError(f"health_path {health_path!r}: must start with '/', no spaces")
        self.group = group
        self.port = int(port)
        """Port of the load-balanced frontend on 127.0.0.1."""
        self.health_path = health_path
        self.balance = balance
        self.stats_port = free_port() if stats_port is None else int(stats_port)
        """Port of the stats frontend (``/metrics``, ``/stats``); 0 if disabled."""
        self.maxconn = int(maxconn)
        self.check_interval_s = float(check_interval_s)
        self.name = name
        self.config_path = group.path(f"{name}.cfg")
        """``<rundir>/<name>.cfg``, the current configuration."""
        self.master_socket = group.path(f"{name}-master.sock")
        """The master CLI's UNIX socket (``show proc``)."""
        self._binary = haproxy_binary()
        self._servers: list[Server] = []
        self._reload_lock = threading.Lock()
        self._write_config(self._checked(servers))
        self.process: Managed = group.start(
            name,
            [
                self._binary, "-W", "-db", "-f", str(self.config_path),
                "-S", f"{self.master_socket},mode,600",
            ],
        )  # fmt: skip
        wait_http(self.url + "/", start_timeout_s, ok=tuple(range(200, 600)), process=self.process)
        self._wait_workers(lambda pids: bool(pids), start_timeout_s, "start")

    # --- public API ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the address clients (Locust) use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        """HAProxy's Prometheus exporter (``http://127.0.0.1:<stats_port>/metrics``)."""
        return f"http://127.0.0.1:{self.stats_port}/metrics" if self.stats_port else None

    @property
    def servers(self) -> list[Server]:
        """The servers of the current configuration."""
        return list(self._servers)

    def set_servers(self, servers: Sequence[Server], timeout_s: float = 15.0) -> None:
        """Make ``servers`` the backend's servers: rewrite the config atomically and reload.

        Validates the new config with ``haproxy -c`` first (an invalid one raises
        :class:`BackendError` and leaves the running config alone), then sends SIGUSR2 to
        the master and waits until a new worker serves it. Thread-safe (calls are
        serialised). Requests in flight finish on the
        old worker; none is refused. Raises :class:`BackendError` if HAProxy has died or
        the reload does not complete within ``timeout_s``.
        """
        checked = self._checked(servers)
        with self._reload_lock:
            self._reload(checked, timeout_s)

    def _reload(self, checked: list[Server], timeout_s: float) -> None:
        if not self.process.alive():
            raise BackendError(
                f"{self.name} has exited ({self.process.returncode}); log tail:\n"
                f"{self.process.tail(20)}"
            )
        before = self._worker_pids()
        self._write_config(checked)
        os.kill(self.process.pid, signal.SIGUSR2)
        self._wait_workers(lambda pids: bool(pids - before), timeout_s, "reload")

    def server_states(self) -> dict[str, str]:
        """Each backend server's check status from the stats page: ``"UP"``, ``"DOWN"``, …

        Needs the stats frontend (``stats_port`` not 0).
        """
        if not self.stats_port:
            raise BackendError("server_states needs the stats frontend (stats_port != 0)")
        url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        try:
            response = requests.get(url, timeout=5.0)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise BackendError(f"{self.name} stats at {url}: {exc}") from exc
        text = response.text.lstrip("# ")
        states: dict[str, str] = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == "be" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                states[row["svname"]] = row.get("status", "")
        return states

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop HAProxy (the group also stops it on close)."""
        self.group.stop(self.process, grace_s=grace_s)

    # --- internals -------------------------------------------------------------------------

    def _checked(self, servers: Sequence[Server]) -> list[Server]:
        checked: list[Server] = []
        names: set[str] = set()
        for server in servers:
            try:
                name, host, port = server
                port = int(port)
            except (TypeError, ValueError) as exc:
                raise BackendError(f"server {server!r}: expected (name, host, port)") from exc
            if not _NAME_RE.fullmatch(str(name)) or name in names:
                raise BackendError(f"server name {name!r}: must be unique, [A-Za-z0-9_.:-]+")
            if not _NAME_RE.fullmatch(str(host)) or not 0 < port < 65536:
                raise BackendError(f"server {name!r}: bad address {host!r}:{port!r}")
            names.add(name)
            checked.append((str(name), str(host), port))
        return checked

    def render_config(self, servers: Sequence[Server]) -> str:
        """The ``haproxy.cfg`` text for ``servers`` (no side effects)."""
        inter_ms = max(100, int(self.check_interval_s * 1000))
        lines = [
            "# written by k8s_gpu_rl.envs.backends.local.loadbalancer; rewritten on every set_servers",
            "global",
            f"    maxconn {self.maxconn}",
            "    log stdout format raw local0 notice",
            "    hard-stop-after 70s",
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    option dontlognull",
            "    option idle-close-on-response",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout queue 30s",
            "    timeout http-request 30s",
            "    timeout http-keep-alive 10s",
            "    retries 3",
            "    option redispatch",
            "",
            "frontend fe",
            f"    bind 127.0.0.1:{self.port}",
            f"    maxconn {self.maxconn}",
            "    default_backend be",
            "",
        ]
        if self.stats_port:
            lines += [
                "frontend stats",
                f"    bind 127.0.0.1:{self.stats_port}",
                "    http-request use-service prometheus-exporter if { path /metrics }",
                "    stats enable",
                "    stats uri /stats",
                "    stats refresh 5s",
                "",
            ]
        lines += [
            "backend be",
            f"    balance {_BALANCE[self.balance]}",
            f"    option httpchk GET {self.health_path}",
            "    http-check expect status 200",
            # three failed checks in a row mark a server DOWN (a readiness probe's
            # failureThreshold): one slow answer on a busy machine must not empty the
            # Service; after the first failure the checks run every quarter interval
            f"    default-server inter {inter_ms}ms fastinter {max(1, inter_ms // 4)}ms"
            f" downinter {inter_ms}ms fall 3 rise 1",
        ]
        lines += [f"    server {name} {host}:{port} check" for name, host, port in servers]
        return "\n".join(lines) + "\n"

    def _write_config(self, servers: list[Server]) -> None:
        """Write ``haproxy.cfg`` atomically, after ``haproxy -c`` has accepted it (a rejected
        configuration leaves the running one in place)."""
        text = self.render_config(servers)

        def write_checked(tmp: Path) -> None:
            tmp.write_text(text)
            result = subprocess.run(
                [self._binary, "-c", "-q", "-f", str(tmp)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if result.returncode != 0:
                raise BackendError(
                    f"haproxy rejected the generated config ({result.returncode}):\n"
                    f"{result.stdout}{result.stderr}\n--- config ---\n{text}"
                )

        atomic_write(self.config_path, write_checked)
        self._servers = servers

    def _master_command(self, command: str, timeout_s: float = 2.0) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(self.master_socket))
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def _worker_pids(self) -> set[int]:
        """PIDs of the current (not old) workers, from the master CLI's ``show proc``."""
        try:
            text = self._master_command("show proc")
        except OSError:
            return set()
        return _current_workers(text)

    def _wait_workers(self, done: Callable[[set[int]], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.process.alive():
                raise BackendError(
                    f"{self.name} exited ({self.process.returncode}) during {what}; log tail:\n"
                    f"{self.process.tail(30)}"
                )
            if done(self._worker_pids()):
                return
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{self.name} {what} not complete after {timeout_s:g} s; log tail:\n"
                    f"{self.process.tail(30)}"
                )
            time.sleep(0.05)


def _current_workers(show_proc: str) -> set[int]:
    """Worker PIDs in the ``# workers`` section of the master CLI's ``show proc`` output."""
    pids: set[int] = set()
    section = ""
    for line in show_proc.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").split()[0] if line.strip("# ") else ""
            continue
        fields = line.split()
        if section == "workers" and len(fields) >= 2 and fields[1] == "worker":
            with contextlib.suppress(ValueError):
                pids.add(int(fields[0]))
    return pids
