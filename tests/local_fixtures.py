"""Fixtures for the local testbed's tests: the ONNX export (once per session) and real
inference-server subprocesses on loopback ports chosen at run time.

Import the fixtures into a test module (``from local_fixtures import onnx_model, ...``).
"""

from __future__ import annotations

import http.client
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_gpu_rl.procenv import python_child_env

STARTUP_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MobileNetV4-Conv-Small exported once per test session (seed 0), never downloaded."""
    from k8s_gpu_rl.envs.backends.local.model import export_onnx

    return export_onnx(tmp_path_factory.mktemp("onnx") / "mobilenetv4_conv_small.onnx", seed=0)


@pytest.fixture(scope="session")
def model_repository(onnx_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Triton model repository: mobilenetv4, max_batch_size 8, no queue delay."""
    from k8s_gpu_rl.envs.backends.local.model import write_model_repository

    repo = tmp_path_factory.mktemp("repo")
    write_model_repository(repo, onnx_model, max_batch_size=8, instance_kind="KIND_CPU")
    return repo


class ServerProcess:
    """One ``python -m k8s_gpu_rl.envs.backends.local.server`` subprocess (ports picked by the OS)."""

    def __init__(self, repo: Path, *extra: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "k8s_gpu_rl.envs.backends.local.server",
            "--model-repository",
            str(repo),
            "--model",
            "mobilenetv4",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            *extra,
        ]
        self.proc = subprocess.Popen(
            cmd,
            env=python_child_env(),  # imports this k8s_gpu_rl whatever the working directory
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()
        self.http_port, self.metrics_port = self._wait_ready()

    def _pump(self, stream, is_stdout: bool) -> None:
        for line in stream:
            if is_stdout:
                self.stdout.put(line)
            else:
                self.stderr_lines.append(line)

    def _wait_ready(self) -> tuple[int, int]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.stdout.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("READY "):
                fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                return int(fields["http"]), int(fields["metrics"])
        self.kill()
        raise RuntimeError("server did not become ready:\n" + "".join(self.stderr_lines[-30:]))

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def conn(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self.conn(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def metrics_text(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200
            return resp.read().decode()
        finally:
            conn.close()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample (exact name, labels a subset), summed over matches."""
        total, found = 0.0, False
        for line in self.metrics_text().splitlines():
            if not line or line.startswith("#"):
                continue
            key, value = line.rsplit(" ", 1)
            sample, _, lab = key.partition("{")
            if sample != name:
                continue
            pairs = dict(p.split("=", 1) for p in lab.rstrip("}").split(",") if p)
            if all(pairs.get(k) == f'"{v}"' for k, v in labels.items()):
                total += float(value)
                found = True
        if not found:
            raise KeyError(name)
        return total

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_server(model_repository: Path) -> Iterator:
    """A factory: ``start_server("--gpucores", "25")`` -> a ready :class:`ServerProcess`;
    every server it started is stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        server = ServerProcess(model_repository, *extra)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def server(model_repository: Path) -> Iterator[ServerProcess]:
    """One shared server (gpucores 100, 1 thread, 8 MiB input limit) for a test module."""
    srv = ServerProcess(model_repository, "--http-max-input-size", str(8 * 2**20))
    try:
        yield srv
    finally:
        srv.stop()
