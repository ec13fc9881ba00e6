"""The real Locust CLI runs ``loadprofiles/locustfile.py`` against a KServe-v2-like server.

A small threaded HTTP server on loopback checks every request the way Triton would read it
(binary tensor extension: header length, JSON inputs, body length) and counts them. Locust
runs headless as a subprocess with a short profile written to ``tmp_path``; its per-second
stats history must show the user count following the stages.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO_ROOT / "loadprofiles" / "locustfile.py"
TENSOR_BYTES = 1 * 3 * 224 * 224 * 4  # FP32 [1, 3, 224, 224]
MODEL = "mobilenetv4"

# (start_s, end_s, users) of the profile written below
STAGES = [(0, 6, 3), (6, 12, 8), (12, 18, 2)]
PROFILE_YAML = """\
name: tiny
description: three short stages for the real Locust test
wait_time: {min: 0.05, max: 0.1}
stages:
  - {duration: 6, users: 3, spawn_rate: 10}
  - {duration: 6, users: 8, spawn_rate: 10}
  - {duration: 6, users: 2, spawn_rate: 10}
"""
LAG_S = 2.5  # Locust ticks the shape once a second; history timestamps are whole seconds


@dataclass
class Counts:
    """What the fake server saw."""

    ok: int = 0
    bad: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_infer_request(path: str, headers: dict[str, str], body: bytes) -> str | None:
    """``None`` if the request is a valid binary-extension request, else what is wrong."""
    if path != f"/v2/models/{MODEL}/infer":
        return f"path {path}"
    if headers.get("content-type") != "application/octet-stream":
        return f"content type {headers.get('content-type')}"
    json_len = int(headers.get("inference-header-content-length", "-1"))
    if not 0 < json_len < len(body):
        return f"header length {json_len}"
    header = json.loads(body[:json_len])
    (inp,) = header["inputs"]
    expected = (inp["name"], inp["shape"], inp["datatype"], inp["parameters"]["binary_data_size"])
    if expected != ("input0", [1, 3, 224, 224], "FP32", TENSOR_BYTES):
        return f"input {inp}"
    if header["outputs"] != [{"name": "output0", "parameters": {"binary_data": True}}]:
        return f"outputs {header['outputs']}"
    if len(body) != json_len + TENSOR_BYTES:
        return f"body length {len(body)} != {json_len} + {TENSOR_BYTES}"
    return None


def make_handler(counts: Counts) -> type[BaseHTTPRequestHandler]:
    """A handler that validates, counts and answers inference requests."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                problem = check_infer_request(self.path, headers, body)
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unreadable: {exc!r}"
            with counts.lock:
                if problem is None:
                    counts.ok += 1
                else:
                    counts.bad.append(problem)
            self._answer(400 if problem else 200, problem)

        def _answer(self, status: int, problem: str | None) -> None:
            output = {"name": "output0", "datatype": "FP32", "shape": [1, 2], "data": [0.1, 0.9]}
            reply = {"error": problem} if problem else {"model_name": MODEL, "outputs": [output]}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Counts]]:
    """A KServe-v2-like server on 127.0.0.1 at a free port; yields (url, counts)."""
    counts = Counts()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(counts))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", counts
    httpd.shutdown()
    httpd.server_close()


def run_locust(url: str, profile_path: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """The real Locust CLI, headless, following the profile at ``profile_path``."""
    env = {**os.environ, "K8SGPURL_PROFILE": str(profile_path)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", url, "--csv", str(prefix), "--csv-full-history",
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def aggregated_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a Locust CSV whose Name is 'Aggregated'."""
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row["Name"] == "Aggregated"]


def user_count_by_second(prefix: Path) -> dict[int, int]:
    """Seconds since the first row with users -> the 'User Count' Locust recorded then."""
    rows = aggregated_rows(Path(f"{prefix}_stats_history.csv"))
    points = [(int(r["Timestamp"]), int(r["User Count"])) for r in rows]
    start = min(t for t, users in points if users > 0)
    return {t - start: users for t, users in points if t >= start}


@pytest.mark.slow
def test_locust_follows_profile_and_requests_succeed(
    server: tuple[str, Counts], tmp_path: Path
) -> None:
    url, counts = server
    profile_path = tmp_path / "tiny.yaml"
    profile_path.write_text(PROFILE_YAML)
    prefix = tmp_path / "run"

    proc = run_locust(url, profile_path, prefix)
    log = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, log

    users = user_count_by_second(prefix)
    for start_s, end_s, target in STAGES:
        window = [users[t] for t in sorted(users) if start_s + LAG_S <= t <= end_s - 2]
        assert window and all(u == target for u in window), (start_s, target, users)
    assert max(users.values()) == max(u for _, _, u in STAGES), users

    (total,) = aggregated_rows(Path(f"{prefix}_stats.csv"))
    assert int(total["Failure Count"]) == 0, log
    assert counts.bad == [], counts.bad[:5]
    # 2 to 8 users at <= 0.1 s think time over 18 s: hundreds of requests
    assert int(total["Request Count"]) > 100
    # in-flight requests at the end may reach the server without Locust recording them
    assert 0 <= counts.ok - int(total["Request Count"]) <= 8
