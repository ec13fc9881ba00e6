"""The local Triton stand-in as a real subprocess: KServe v2 with NVIDIA's own client,
dynamic batching, Triton's errors and metric names, the gpucores limiter, SIGTERM drain."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from k8s_gpu_rl.envs.backends.local.server import ComputeShareLimiter
from k8s_gpu_rl.envs.backends.local.server.limiter import DeviceTasks
from k8s_gpu_rl.loadprofiles.kserve_v2 import HEADER_LENGTH, build_infer_request, random_input

if TYPE_CHECKING:
    from local_fixtures import ServerProcess

pytest_plugins = ["local_fixtures"]  # onnx_model, model_repository, server, start_server

MODEL = "mobilenetv4"
IMAGE_BYTES = 3 * 224 * 224 * 4


def _reference(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input0": x})[0]


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def _binary_body(shape, datatype="FP32", data: bytes | None = None, name="input0", **extra):
    raw = data if data is not None else np.zeros(shape, np.float32).tobytes()
    header = {
        "inputs": [
            {
                "name": name,
                "shape": list(shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": extra.pop("size", len(raw))},
            }
        ],
        **extra,
    }
    head = json.dumps(header).encode()
    return head + raw, {HEADER_LENGTH: str(len(head)), "Content-Type": "application/octet-stream"}


def _infer_client(server: ServerProcess, x: np.ndarray, binary: bool):
    with triton_http.InferenceServerClient(server.url, network_timeout=60) as client:
        inp = triton_http.InferInput("input0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = triton_http.InferRequestedOutput("output0", binary_data=binary)
        return client.infer(MODEL, [inp], outputs=[out]).as_numpy("output0")


# ----------------------------------------------------------------------------- protocol


def test_health_and_metadata_with_tritonclient(server: ServerProcess) -> None:
    with triton_http.InferenceServerClient(server.url) as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert not client.is_model_ready("no-such-model")
        meta = client.get_model_metadata(MODEL)
        assert meta["name"] == MODEL and meta["platform"] == "onnxruntime_onnx"
        assert meta["inputs"] == [
            {"name": "input0", "datatype": "FP32", "shape": [-1, 3, 224, 224]}
        ]
        assert meta["outputs"] == [{"name": "output0", "datatype": "FP32", "shape": [-1, 1000]}]
        config = client.get_model_config(MODEL)
        assert config["max_batch_size"] == 8 and config["platform"] == "onnxruntime_onnx"
        assert client.get_server_metadata()["extensions"]
        with pytest.raises(InferenceServerException, match="Request for unknown model"):
            client.get_model_metadata("no-such-model")


@pytest.mark.parametrize(("binary", "batch"), [(True, 3), (False, 2)], ids=["binary", "json"])
def test_infer_matches_onnxruntime(
    server: ServerProcess, onnx_model: Path, binary: bool, batch: int
) -> None:
    # (JSON at batch 2 stays under the fixture's 8 MiB --http-max-input-size)
    x = np.random.default_rng(7).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    got = _infer_client(server, x, binary)
    assert got.shape == (batch, 1000) and got.dtype == np.float32
    _close(got, _reference(onnx_model, x))


def test_locustfile_request_and_raw_binary(server: ServerProcess, onnx_model: Path) -> None:
    x = random_input(seed=3)
    req = build_infer_request(MODEL, "input0", "output0", x)
    status, headers, body = server.request("POST", req.path, req.body, req.headers)
    assert status == 200, body[:300]
    hlen = int(headers[HEADER_LENGTH])
    header = json.loads(body[:hlen])
    assert header["model_name"] == MODEL and header["outputs"][0]["shape"] == [1, 1000]
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 4000
    ref = _reference(onnx_model, x)
    _close(np.frombuffer(body[hlen:], dtype="<f4").reshape(1, 1000), ref)
    # Triton's raw binary request: Inference-Header-Content-Length 0, body = the tensor
    status, headers, body = server.request(
        "POST", f"/v2/models/{MODEL}/infer", x.tobytes(), {HEADER_LENGTH: "0"}
    )
    assert status == 200
    hlen = int(headers[HEADER_LENGTH])
    _close(np.frombuffer(body[hlen:], dtype="<f4").reshape(1, 1000), ref)
    # the versioned path and JSON output with a request id
    raw = x.tobytes()
    head = json.dumps(
        {
            "id": "abc",
            "inputs": [
                {
                    "name": "input0",
                    "shape": [1, 3, 224, 224],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
        }
    ).encode()
    status, headers, body = server.request(
        "POST", f"/v2/models/{MODEL}/versions/1/infer", head + raw, {HEADER_LENGTH: str(len(head))}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["id"] == "abc" and doc["model_version"] == "1"
    _close(np.asarray(doc["outputs"][0]["data"], np.float32).reshape(1, 1000), ref)


def test_concurrent_requests_are_batched(server: ServerProcess) -> None:
    count0 = server.metric("nv_inference_count", model=MODEL)
    exec0 = server.metric("nv_inference_exec_count", model=MODEL)
    ok0 = server.metric("nv_inference_request_success", model=MODEL)
    x = random_input(seed=1)
    req = build_infer_request(MODEL, "input0", "output0", x)
    errors: list[str] = []
    barrier = threading.Barrier(12)

    def client() -> None:
        conn = server.conn()
        try:
            barrier.wait(timeout=30)
            for _ in range(6):
                conn.request("POST", req.path, req.body, req.headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(str(resp.status))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    inferences = server.metric("nv_inference_count", model=MODEL) - count0
    executions = server.metric("nv_inference_exec_count", model=MODEL) - exec0
    assert inferences == 72
    assert server.metric("nv_inference_request_success", model=MODEL) - ok0 == 72
    assert executions < inferences  # requests were batched
    assert server.metric("nv_inference_pending_request_count", model=MODEL) == 0


# ----------------------------------------------------------------------------- errors


def _bad_cases() -> list[tuple[str, str, str, bytes, dict[str, str], int, str]]:
    infer = f"/v2/models/{MODEL}/infer"
    cases = []

    def add(cid, path, body_headers, status, text, method="POST"):
        body, headers = body_headers
        cases.append((cid, method, path, body, headers, status, text))

    add("wrong-shape", infer, _binary_body((1, 3, 224)), 400, "unexpected shape for input 'input0'")
    add(
        "wrong-datatype",
        infer,
        _binary_body((1, 3, 224, 224), "INT32"),
        400,
        "data-type is 'INT32', but model 'mobilenetv4' expects 'FP32'",
    )
    add(
        "malformed-json",
        infer,
        (b'{"inputs": [', {"Content-Type": "application/json"}),
        500,
        "failed to parse the request JSON buffer",
    )
    add("no-inputs", infer, (b"{}", {}), 500, "Unable to parse 'inputs'")
    add(
        "unknown-model",
        "/v2/models/resnet50/infer",
        _binary_body((1, 3, 224, 224)),
        404,
        "Request for unknown model: 'resnet50' is not found",
    )
    add(
        "unknown-version",
        f"/v2/models/{MODEL}/versions/7/infer",
        _binary_body((1, 3, 224, 224)),
        404,
        "version 7 is not found",
    )
    add(
        "bad-version",
        f"/v2/models/{MODEL}/versions/abc/infer",
        _binary_body((1, 3, 224, 224)),
        400,
        "failed to get model version",
    )
    add(
        "body-too-large",
        infer,
        (b"x" * (9 * 2**20), {HEADER_LENGTH: "100"}),
        400,
        "exceeds the maximum allowed input size of 8388608 bytes",
    )
    body, headers = _binary_body((1, 3, 224, 224))
    add(
        "header-length-too-big",
        infer,
        (body, {HEADER_LENGTH: str(len(body) + 10)}),
        400,
        "inference header size should be in range",
    )
    add(
        "header-length-not-a-number",
        infer,
        (body, {HEADER_LENGTH: "ten"}),
        400,
        "Unable to parse Inference-Header-Content-Length",
    )
    add(
        "binary-data-short",
        infer,
        _binary_body((1, 3, 224, 224), size=IMAGE_BYTES + 8),
        400,
        "unexpected size for input 'input0'",
    )
    short_body, short_headers = _binary_body((1, 3, 224, 224), data=b"\0" * IMAGE_BYTES)
    add(
        "extra-binary-data",
        infer,
        (short_body + b"\0" * 16, short_headers),
        400,
        "unexpected additional input data",
    )
    add(
        "byte-size-mismatch",
        infer,
        _binary_body((1, 3, 224, 224), data=b"\0" * 400),
        400,
        "input byte size mismatch for input 'input0'",
    )
    add("batch-too-large", infer, _binary_body((9, 3, 224, 224)), 400, "batch-size must be <= 8")
    add(
        "unknown-input",
        infer,
        _binary_body((1, 3, 224, 224), name="images"),
        400,
        "unexpected inference input 'images'",
    )
    add(
        "unknown-output",
        infer,
        _binary_body((1, 3, 224, 224), outputs=[{"name": "probs"}]),
        400,
        "unexpected inference output 'probs'",
    )
    short_json = json.dumps(
        {"inputs": [{"name": "input0", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": [1]}]}
    ).encode()
    add("json-data-short", infer, (short_json, {}), 500, "shape does not match true shape")
    add("get-on-infer", infer, (b"", {}), 405, "Method Not Allowed", method="GET")
    add("unknown-path", "/v2/nothing/here", (b"", {}), 404, "Not Found", method="GET")
    return cases


_CASES = _bad_cases()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "text"),
    [c[1:] for c in _CASES],
    ids=[c[0] for c in _CASES],
)
def test_bad_request_gets_tritons_error_and_server_stays_up(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    text: str,
) -> None:
    got, resp_headers, resp_body = server.request(method, path, body or None, headers)
    assert got == status, resp_body[:300]
    assert resp_headers["Content-Type"] == "application/json"
    doc = json.loads(resp_body)
    assert list(doc) == ["error"]
    assert text in doc["error"]
    live, _, _ = server.request("GET", "/v2/health/live")
    ready, _, _ = server.request("GET", "/v2/health/ready")
    assert (live, ready) == (200, 200)
    x = random_input(seed=0)
    req = build_infer_request(MODEL, "input0", "output0", x)
    assert server.request("POST", req.path, req.body, req.headers)[0] == 200


# ----------------------------------------------------------------------------- metrics

TRITON_COUNTERS = [
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
]


def test_metric_names_are_exactly_tritons(server: ServerProcess) -> None:
    _infer_client(server, random_input(seed=2), binary=True)
    text = server.metrics_text()
    types: dict[str, str] = {}
    samples: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            key = line.rsplit(" ", 1)[0]
            name, _, lab = key.partition("{")
            labels = dict(p.split("=", 1) for p in lab.rstrip("}").split(",") if p)
            samples.setdefault(name, []).append({k: v.strip('"') for k, v in labels.items()})
    for name in TRITON_COUNTERS:
        assert types.get(name) == "counter", name
        assert name in samples and f"{name}_total" not in samples, name
    assert types["nv_inference_pending_request_count"] == "gauge"
    for name in [*TRITON_COUNTERS, "nv_inference_pending_request_count"]:
        for labels in samples[name]:
            assert labels.get("model") == MODEL and labels.get("version") == "1"
            expected = {"model", "version", "reason"} if "failure" in name else {"model", "version"}
            assert set(labels) == expected, (name, labels)
    reasons = {labels["reason"] for labels in samples["nv_inference_request_failure"]}
    assert reasons == {"REJECTED", "CANCELED", "BACKEND", "OTHER"}
    assert not [n for n in samples if n.startswith("nv_") and n.endswith("_total")]
    assert "process_cpu_seconds_total" in samples
    assert "k8sgpurl_compute_busy_seconds_total" in samples
    assert server.metric("nv_inference_compute_infer_duration_us", model=MODEL) > 0
    assert server.metric("k8sgpurl_compute_busy_seconds_total") > 0


# ----------------------------------------------------------------------------- gpucores


def test_limiter_rule_holds_busy_fraction() -> None:
    """The token-bucket rule on a fake clock: busy time tracks the share."""
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    limiter = ComputeShareLimiter(0.25, clock=lambda: now[0], sleep=sleep)
    busy = 0.0
    for _ in range(1000):
        limiter.acquire()
        now[0] += 0.01  # a 10 ms batch
        busy += 0.01
        limiter.release(0.01)
    assert busy / now[0] == pytest.approx(0.25, rel=0.05)
    full = ComputeShareLimiter(1.0, clock=lambda: now[0], sleep=sleep)
    assert full.acquire() == 0.0


def _closed_loop_throughput(server: ServerProcess, clients: int, seconds: float) -> float:
    req = build_infer_request(MODEL, "input0", "output0", random_input(seed=5))
    done = [0] * clients
    stop_at = time.monotonic() + seconds
    errors: list[int] = []

    def client(i: int) -> None:
        conn = server.conn()
        try:
            while time.monotonic() < stop_at:
                conn.request("POST", req.path, req.body, req.headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(resp.status)
                    return
                done[i] += 1
        finally:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    assert not errors
    return sum(done) / (time.monotonic() - t0)


@pytest.mark.slow
def test_gpucores_limits_throughput(start_server) -> None:
    full = start_server("--gpucores", "100")
    _closed_loop_throughput(full, 4, 0.5)  # warm-up
    busy0 = full.metric("k8sgpurl_compute_busy_seconds_total")
    rate_full = _closed_loop_throughput(full, 4, 4.0)
    full.stop()
    quarter = start_server("--gpucores", "25", "--core-policy", "force")
    _closed_loop_throughput(quarter, 4, 0.5)
    busy0 = quarter.metric("k8sgpurl_compute_busy_seconds_total")
    t0 = time.monotonic()
    rate_quarter = _closed_loop_throughput(quarter, 4, 4.0)
    busy_ratio = (quarter.metric("k8sgpurl_compute_busy_seconds_total") - busy0) / (
        time.monotonic() - t0
    )
    assert rate_full > 20  # the unthrottled server really serves
    assert rate_quarter / rate_full < 0.5, (rate_quarter, rate_full)
    assert busy_ratio < 0.35, busy_ratio  # held near 25 % of wall-clock time
    assert quarter.metric("k8sgpurl_compute_throttled_seconds_total") > 0
    quarter.stop()
    # HAMi-core's default policy (no GPU_CORE_UTILIZATION_POLICY): a lone task is not throttled
    lone = start_server("--gpucores", "25")
    _closed_loop_throughput(lone, 4, 0.5)
    rate_lone = _closed_loop_throughput(lone, 4, 4.0)
    assert rate_lone / rate_full > 0.7, (rate_lone, rate_full)
    assert lone.metric("k8sgpurl_compute_throttled_seconds_total") == 0


def test_limiter_policies_on_a_fake_clock(tmp_path) -> None:
    """force always waits, disable never, default only while the device has another task."""
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    def busy_fraction(limiter: ComputeShareLimiter) -> float:
        start, busy = now[0], 0.0
        for _ in range(500):
            limiter.acquire()
            now[0] += 0.01
            busy += 0.01
            limiter.release(0.01)
        return busy / (now[0] - start)

    tasks = tmp_path / "device0-tasks"
    shared = DeviceTasks(tasks, clock=lambda: now[0])
    clock = {"clock": lambda: now[0], "sleep": sleep}
    assert busy_fraction(ComputeShareLimiter(0.25, policy="force", **clock)) == pytest.approx(
        0.25, rel=0.05
    )
    assert busy_fraction(ComputeShareLimiter(0.25, policy="disable", **clock)) == pytest.approx(1.0)
    default = ComputeShareLimiter(0.25, policy="default", tasks_on_device=shared, **clock)
    assert busy_fraction(default) == pytest.approx(1.0)  # no file: alone on the device
    tasks.write_text("2\n")
    now[0] += 0.2  # past the 120 ms re-read period
    assert busy_fraction(default) == pytest.approx(0.25, rel=0.05)
    tasks.write_text("1")
    now[0] += 0.2
    assert busy_fraction(default) == pytest.approx(1.0)
    with pytest.raises(
        ValueError, match="policy must be one of default, force, disable, got 'forced'"
    ):
        ComputeShareLimiter(0.5, policy="forced")


def test_device_tasks_file_is_reread_at_most_every_120_ms(tmp_path) -> None:
    now = [0.0]
    path = tmp_path / "tasks"
    path.write_text("3")
    tasks = DeviceTasks(path, clock=lambda: now[0])
    assert tasks() == 3
    path.write_text("1")
    now[0] = 0.1
    assert tasks() == 3  # HAMi-core's watcher re-reads every ~120 ms
    now[0] = 0.13
    assert tasks() == 1
    path.write_text("garbage")
    now[0] = 0.3
    assert tasks() == 1  # unreadable: alone


# ----------------------------------------------------------------------------- shutdown


def test_sigterm_drains_in_flight_requests_then_exits_zero(start_server) -> None:
    srv = start_server("--gpucores", "10", "--core-policy", "force")
    keepalive = srv.conn()
    keepalive.request("GET", "/v2/health/ready")
    first = keepalive.getresponse()
    first.read()
    assert first.status == 200
    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224), dtype=np.float32)
    results: list[int] = []

    def client() -> None:
        try:
            with triton_http.InferenceServerClient(srv.url, network_timeout=60) as c:
                inp = triton_http.InferInput("input0", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                c.infer(MODEL, [inp])
                results.append(200)
        except InferenceServerException as exc:
            results.append(int(exc.status() or 0))
        except Exception:
            results.append(-1)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30

    def arrived() -> float:
        # queued + finished; one more executes whenever any are queued. A client that has
        # not connected when SIGTERM comes is refused, so all six must be in first.
        return srv.metric("nv_inference_pending_request_count", model=MODEL) + srv.metric(
            "nv_inference_request_success", model=MODEL
        )

    while arrived() < len(threads) - 1:
        assert time.monotonic() < deadline, "requests never queued"
        time.sleep(0.02)
    srv.terminate(signal.SIGTERM)
    time.sleep(0.1)
    keepalive.request("GET", "/v2/health/ready")
    during = keepalive.getresponse()
    during.read()
    keepalive.close()
    assert during.status == 400  # not ready while draining
    for t in threads:
        t.join(timeout=60)
    assert results == [200] * 6
    assert srv.wait(timeout=30) == 0


def test_sigint_exits_zero_when_idle(start_server) -> None:
    srv = start_server()
    srv.terminate(signal.SIGINT)
    assert srv.wait(timeout=15) == 0
    with pytest.raises(OSError):
        srv.request("GET", "/v2/health/live", timeout=2)


def test_malformed_http_chunked_body_and_dropped_clients(server: ServerProcess) -> None:
    def raw(payload: bytes, read: bool = True) -> bytes:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as s:
            s.sendall(payload)
            if not read:
                return b""
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    assert raw(b"\x16\x03\x01 not http at all\r\n\r\n").startswith(b"HTTP/1.")
    # a client that promises a body and goes away
    body, headers = _binary_body((1, 3, 224, 224))
    head = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    raw(
        head.encode() + f"{HEADER_LENGTH}: {headers[HEADER_LENGTH]}\r\n\r\n".encode() + body[:999],
        read=False,
    )
    # a chunked request body (as Triton accepts)
    chunked = head.replace(f"Content-Length: {len(body)}", "Transfer-Encoding: chunked").encode()
    chunked += f"{HEADER_LENGTH}: {headers[HEADER_LENGTH]}\r\nConnection: close\r\n\r\n".encode()
    for i in range(0, len(body), 200_000):
        part = body[i : i + 200_000]
        chunked += f"{len(part):X}\r\n".encode() + part + b"\r\n"
    reply = raw(chunked + b"0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert server.request("GET", "/v2/health/ready")[0] == 200


def test_dynamic_batcher_preferred_size_and_queue_delay() -> None:
    from k8s_gpu_rl.envs.backends.local.server import DynamicBatcher, TritonMetrics

    metrics = TritonMetrics(MODEL, "1", 1.0)
    sizes: list[int] = []

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        sizes.append(x.shape[0])
        return {"out": x.reshape(x.shape[0], -1).sum(axis=1, keepdims=True)}

    batcher = DynamicBatcher(run, 8, (4,), 300_000, ComputeShareLimiter(1.0), metrics)
    try:
        items = [batcher.submit(np.full((1, 2), i, np.float32)) for i in range(5)]
        for item in items:
            assert item.done.wait(10)
        t0 = time.monotonic()
        late = batcher.submit(np.ones((1, 2), np.float32))
        assert late.done.wait(10)
        waited = time.monotonic() - t0
    finally:
        batcher.stop()
    assert sizes[0] == 4  # a preferred-size batch goes at once, the fifth request waits
    assert sizes == [4, 1, 1]
    assert [float(it.output["out"][0, 0]) for it in items] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert waited >= 0.25  # a lone request is held for the queue delay (300 ms)
    assert metrics.value("nv_inference_count") == 6
    assert metrics.value("nv_inference_exec_count") == len(sizes)


# ----------------------------------------------------------------------------- command line


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "k8s_gpu_rl.envs.backends.local.server", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_cli_exit_codes_for_bad_arguments_missing_model_and_busy_port(
    model_repository: Path, tmp_path: Path
) -> None:
    """2 with argparse's usage for a bad value, 2 with ``error: ...`` for a missing config
    or a port in use, 1 when the model cannot be loaded; nothing on stdout (no READY)."""
    bad = _cli("--model-repository", str(model_repository), "--gpucores", "0")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("usage: python -m k8s_gpu_rl.envs.backends.local.server")
    assert "error: --gpucores must be in 1..100, got 0" in bad.stderr
    missing = _cli("--model-repository", str(tmp_path))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"error: no model config at {tmp_path / MODEL / 'config.pbtxt'}\n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = _cli("--model-repository", str(model_repository), "--http-port", port)
    assert busy.returncode == 2 and busy.stdout == ""
    assert busy.stderr.startswith("error: cannot bind 127.0.0.1: ")
    # a config with no model.onnx beside it: the servers bind, the load fails
    (tmp_path / MODEL).mkdir()
    shutil.copy(model_repository / MODEL / "config.pbtxt", tmp_path / MODEL / "config.pbtxt")
    unloadable = _cli(
        "--model-repository", str(tmp_path), "--http-port", "0", "--metrics-port", "0"
    )
    assert unloadable.returncode == 1 and unloadable.stdout == ""
    assert f"ERROR failed to load model '{MODEL}'" in unloadable.stderr
