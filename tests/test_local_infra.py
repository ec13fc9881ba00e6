"""The local testbed's infrastructure with the REAL binaries: HAProxy, Prometheus, the node
exporter and Locust, on loopback ports chosen at run time, plus the process supervision's
no-leak guarantee (normal exit, SIGINT, SIGTERM and SIGKILL of the supervising process).

Backends are tiny stdlib HTTP servers in threads; the metrics exporter is a
``prometheus_client`` registry served in-process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from k8s_gpu_rl.envs.backends.local.loadbalancer import HAProxy
from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun, RequestLog
from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port, wait_http, wait_line
from k8s_gpu_rl.envs.backends.local.promserver import NodeExporter, PrometheusServer
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.procenv import python_child_env

# --- helpers -------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(interval_s)


class QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print clients' connection resets."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class Backend:
    """A tiny HTTP server: ``GET /v2/health/ready`` (200 or 400) and any POST (200, or a
    500 every ``fail_every``-th request), counting the POSTs it answered."""

    def __init__(self, name: str, fail_every: int = 0) -> None:
        self.name = name
        self.ready = True
        self.fail_every = fail_every
        self.posts = 0
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/v2/health/ready":
                    self._answer(200 if backend.ready else 400, b"")
                else:
                    self._answer(404, b"not found")

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with backend.lock:
                    backend.posts += 1
                    n = backend.posts
                failed = backend.fail_every and n % backend.fail_every == 0
                self._answer(500 if failed else 200, backend.name.encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def server(self) -> tuple[str, str, int]:
        return (self.name, "127.0.0.1", self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def backends() -> Iterator[Callable[..., Backend]]:
    """A factory of :class:`Backend` servers, all shut down at the end."""
    made: list[Backend] = []

    def make(name: str, fail_every: int = 0) -> Backend:
        made.append(Backend(name, fail_every))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def group() -> Iterator[ProcessGroup]:
    g = ProcessGroup(prefix="k8sgpurl-test-")
    yield g
    g.close(grace_s=5)
    assert not g.rundir.exists()


class MetricsExporter:
    """A ``prometheus_client`` registry served on 127.0.0.1 at a free port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def exporters() -> Iterator[Callable[[], MetricsExporter]]:
    made: list[MetricsExporter] = []

    def make() -> MetricsExporter:
        made.append(MetricsExporter())
        return made[-1]

    yield make
    for exporter in made:
        exporter.close()


# --- procs ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_process_group_dead_wait_line_and_stop(group: ProcessGroup) -> None:
    sleeper = group.start("sleeper", ["sleep", "1000"])
    talker = group.start(
        "talker",
        ["sh", "-c", "echo starting; sleep 0.3; echo READY http=123 metrics=456; exec sleep 1000"],
    )
    finisher = group.start("finisher", ["true"], expect_exit=True)
    match = wait_line(talker, r"READY http=(\d+) metrics=(\d+)", timeout_s=10)
    assert match.groups() == ("123", "456")
    assert "starting" in talker.tail(5) and talker.log_path == group.rundir / "talker.log"
    assert finisher.popen.wait(timeout=10) == 0
    assert group.dead() == []

    os.kill(sleeper.pid, signal.SIGKILL)  # killed from outside: reported
    assert wait_until(lambda: group.dead() == [sleeper], 5)
    assert sleeper.returncode == -signal.SIGKILL
    with pytest.raises(BackendError, match="sleeper"):
        group.check_alive()

    group.stop(talker, grace_s=5)  # stopped on purpose: not reported
    assert not talker.alive() and group.dead() == [sleeper]

    quitter = group.start("quitter", ["sh", "-c", "echo bye; exit 3"])
    with pytest.raises(BackendError, match="exited with 3"):
        wait_line(quitter, "READY", timeout_s=10)
    with pytest.raises(BackendError, match="already started"):
        group.start("quitter", ["true"])
    with pytest.raises(BackendError, match="cannot start"):
        group.start("missing", ["/nonexistent/binary"])


@pytest.mark.timeout(60)
def test_stop_escalates_to_sigkill_and_wait_http_reports(group: ProcessGroup) -> None:
    stubborn = group.start("stubborn", ["sh", "-c", "trap '' TERM; echo trapped; exec sleep 1000"])
    wait_line(stubborn, "trapped", timeout_s=10)
    t0 = time.monotonic()
    assert group.stop(stubborn, grace_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5

    port = free_port()
    with pytest.raises(BackendError, match=rf"127\.0\.0\.1:{port}.*ConnectionError"):
        wait_http(f"http://127.0.0.1:{port}/", timeout_s=0.5)


CLEANUP_SCRIPT = textwrap.dedent(
    """\
    import json, signal, sys, threading, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port, wait_line
    from k8s_gpu_rl.envs.backends.local.loadbalancer import HAProxy

    mode = sys.argv[1]
    reaper = mode != "pdeathsig"  # without the reaper only PR_SET_PDEATHSIG protects

    def run(group):
        # started from a thread that ends at once: children must not die with it
        started = []
        thread = threading.Thread(
            target=lambda: started.extend(
                group.start(n, ["sleep", "1000"]) for n in ("sleep-a", "sleep-b")
            )
        )
        thread.start()
        thread.join()
        tree = group.start("tree", ["sh", "-c", "sleep 1000 & echo CHILD=$!; wait"])
        grandchild = int(wait_line(tree, r"CHILD=(\\d+)", 10).group(1))
        lb = HAProxy(group, free_port())
        direct = [m.pid for m in started] + [tree.pid, lb.process.pid, *lb._worker_pids()]
        extra = [group._reaper.pid] if group._reaper is not None else []
        info = {{"direct": direct, "grandchild": grandchild, "extra": extra}}
        print(json.dumps({{**info, "rundir": str(group.rundir)}}), flush=True)
        if mode in ("exit", "atexit"):
            sys.stdin.readline()  # the test says when to exit
        else:
            time.sleep(1000)

    if mode == "atexit":
        run(ProcessGroup())  # no with: the atexit hook must clean up
    else:
        with ProcessGroup(reaper=reaper) as group:
            run(group)
    """
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["exit", "atexit", "sigint", "sigterm", "sigkill", "pdeathsig"])
def test_no_process_outlives_its_group(how: str, tmp_path: Path) -> None:
    """(a) normal exit (context manager or atexit), (b) SIGINT, (c) SIGTERM, (d) SIGKILL:
    no child, grandchild or HAProxy worker survives; the run dir goes. ``pdeathsig``:
    SIGKILL without the reaper, where the kernel's death signal still kills every direct
    child (even those started from a thread that has ended)."""
    script = tmp_path / "supervisor.py"
    script.write_text(CLEANUP_SCRIPT.format())  # (the template escapes its braces)
    proc = subprocess.Popen(
        [sys.executable, str(script), how],
        env=python_child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    rundir: Path | None = None
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        rundir = Path(info["rundir"])
        pids = [*info["direct"], info["grandchild"], *info["extra"]]
        # 2 sleeps, a shell, the HAProxy master and >= 1 worker; the shell's child; the reaper
        assert len(info["direct"]) >= 5 and len(info["extra"]) == (how != "pdeathsig")
        assert not any(_gone(p) for p in pids), pids
        assert rundir.is_dir()
        signals = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
        signals |= {"sigkill": signal.SIGKILL, "pdeathsig": signal.SIGKILL}
        if how in signals:
            os.kill(proc.pid, signals[how])
        elif proc.stdin:
            proc.stdin.write("exit\n")
            proc.stdin.flush()
        code = proc.wait(timeout=30)
        if how == "sigterm":
            assert code == 128 + signal.SIGTERM
        elif how in ("sigkill", "pdeathsig"):
            assert code == -signal.SIGKILL
        elif how in ("exit", "atexit"):
            assert code == 0, proc.stderr.read() if proc.stderr else ""
        if how == "pdeathsig":  # the grandchild is the reaper's job: not checked here
            pids = info["direct"]
        assert wait_until(lambda: all(_gone(p) for p in pids), 10), [
            p for p in pids if not _gone(p)
        ]
        if how != "pdeathsig":
            # (a)-(c) remove the run dir on the way out; after SIGKILL the reaper does
            assert wait_until(lambda: not rundir.exists(), 10), sorted(os.listdir(rundir))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pids:  # never leak, even when the test fails
            for pid in {*pids, info["grandchild"]}:
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)
        if how == "pdeathsig" and rundir is not None:
            shutil.rmtree(rundir, ignore_errors=True)


# --- HAProxy -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_haproxy_balances_and_reloads_without_failures(
    group: ProcessGroup, backends: Callable[..., Backend]
) -> None:
    a, b = backends("a"), backends("b")
    lb = HAProxy(group, free_port(), servers=[a.server, b.server])
    assert lb.config_path.read_text().count(" check") == 2
    with requests.Session() as http:
        for _ in range(60):
            assert http.post(lb.url + "/x", data=b"hello", timeout=10).status_code == 200
    assert a.posts > 5 and b.posts > 5 and a.posts + b.posts == 60  # both serve (random)

    # a client sends continuously (keep-alive and fresh connections) while we reload
    errors: list[str] = []
    sent = [0]
    stop = threading.Event()

    def client(keep_alive: bool) -> None:
        session = requests.Session() if keep_alive else None
        while not stop.is_set():
            try:
                poster = session.post if session else requests.post
                response = poster(lb.url + "/x", data=b"x" * 1000, timeout=10)
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")
            except requests.RequestException as exc:
                errors.append(repr(exc))
            sent[0] += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in (True, False)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        old_workers = lb._worker_pids()
        for servers in ([a.server], [a.server, b.server], [b.server], [a.server, b.server]) * 3:
            before = sent[0]
            lb.set_servers(servers)
            assert wait_until(lambda before=before: sent[0] > before + 5, 5)
        assert lb._worker_pids().isdisjoint(old_workers)  # the reloads made new workers
        # removing a server stops traffic to it
        lb.set_servers([a.server])
        time.sleep(0.3)  # requests already sent to b by old workers finish
        b_before, sent_before = b.posts, sent[0]
        assert wait_until(lambda: sent[0] > sent_before + 100, 20)
        assert b.posts == b_before
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert sent[0] > 200
    assert errors == [], errors[:5]
    assert lb.process.alive()
    assert group.dead() == []


@pytest.mark.timeout(60)
def test_haproxy_stops_sending_to_an_unready_server(
    group: ProcessGroup, backends: Callable[..., Backend]
) -> None:
    a, b = backends("a"), backends("b")
    lb = HAProxy(group, free_port(), servers=[a.server, b.server])
    assert wait_until(lambda: lb.server_states() == {"a": "UP", "b": "UP"}, 5)
    b.ready = False  # draining: readiness 400
    t0 = time.monotonic()
    assert wait_until(lambda: lb.server_states().get("b") == "DOWN", 5), lb.server_states()
    assert time.monotonic() - t0 < 3.5
    b_before = b.posts
    with requests.Session() as http:
        for _ in range(40):
            assert http.post(lb.url + "/x", data=b"x", timeout=10).status_code == 200
    assert b.posts == b_before
    b.ready = True  # rise 1: back within about a second
    assert wait_until(lambda: lb.server_states().get("b") == "UP", 5), lb.server_states()
    # the built-in Prometheus exporter on the stats port
    metrics = requests.get(lb.metrics_url or "", timeout=5).text
    assert 'haproxy_server_status{proxy="be",server="b"' in metrics


@pytest.mark.timeout(60)
def test_haproxy_empty_server_list_answers_503(
    group: ProcessGroup, backends: Callable[..., Backend]
) -> None:
    lb = HAProxy(group, free_port(), balance="roundrobin")
    assert requests.post(lb.url + "/x", data=b"x", timeout=5).status_code == 503
    a = backends("a")
    lb.set_servers([a.server])
    assert requests.post(lb.url + "/x", data=b"x", timeout=5).status_code == 200
    lb.set_servers([])
    assert lb.servers == []
    assert requests.post(lb.url + "/x", data=b"x", timeout=5).status_code == 503
    with pytest.raises(BackendError, match="unique"):
        lb.set_servers([a.server, a.server])
    assert lb.process.alive() and group.dead() == []


# --- Prometheus and the node exporter ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_prometheus_file_sd_labels_and_rate(
    group: ProcessGroup, exporters: Callable[[], MetricsExporter]
) -> None:
    one, two = exporters(), exporters()
    g1 = Gauge("testbed_queue", "queue length", registry=one.registry)
    g1.set(7)
    g2 = Gauge("testbed_queue", "queue length", registry=two.registry)
    g2.set(11)
    counter = Counter("testbed_requests", "requests", registry=one.registry)
    stop = threading.Event()

    def tick() -> None:  # 20 increments per second
        while not stop.wait(0.05):
            counter.inc()

    threading.Thread(target=tick, daemon=True).start()
    try:
        prom = PrometheusServer(group, free_port(), scrape_interval_s=0.5)
        assert math.isnan(prom.query_scalar("testbed_queue"))
        labels = {"namespace": "default", "pod": "triton-0", "container": "triton"}
        prom.set_targets("triton", [(one.address, labels)])  # a new job: config reload
        assert prom.jobs == ["triton"]
        ((series, value),) = prom.wait_for_samples("testbed_queue", timeout_s=20)
        assert value == 7.0
        assert {k: series[k] for k in labels} == labels
        assert series["job"] == "triton" and series["instance"] == one.address
        assert prom.targets_up() == {("triton", one.address): True}

        # rate() of a counter scraped twice a second (20 increments per second)
        query = 'rate(testbed_requests_total{pod="triton-0"}[3s])'
        samples = 'count_over_time(testbed_requests_total{pod="triton-0"}[5s])'
        assert wait_until(lambda: prom.query_scalar(samples) >= 8, 20)  # older than the window
        assert 10.0 < prom.query_scalar(query) < 30.0, prom.query_scalar(query)
        assert prom.query_scalar("vector(3)") == 3.0
        with pytest.raises(BackendError, match="parse error"):
            prom.query("rate(")

        # change the targets: picked up without a restart
        pid = prom.process.pid
        prom.set_targets("triton", [(one.address, labels), (two.address, {"pod": "triton-1"})])
        prom.wait_for_samples('testbed_queue{pod="triton-1"}', timeout_s=20)
        assert prom.query_scalar('testbed_queue{pod="triton-1"}') == 11.0
        with pytest.raises(BackendError, match="2 series"):
            prom.query_scalar("testbed_queue")
        assert sorted(v for _, v in prom.query("testbed_queue")) == [7.0, 11.0]
        prom.set_targets("triton", [(two.address, {"pod": "triton-1"})])
        # the dropped target's series go stale at once: one series left
        assert wait_until(lambda: len(prom.query("testbed_queue")) == 1, 10)
        assert prom.query_scalar("testbed_queue") == 11.0
        assert prom.targets_up() == {("triton", two.address): True}
        assert prom.process.pid == pid and prom.process.alive()
    finally:
        stop.set()


@pytest.mark.timeout(90)
def test_node_exporter_cpu_reaches_prometheus(group: ProcessGroup) -> None:
    node = NodeExporter(group, free_port())
    text = requests.get(node.url + "/metrics", timeout=5).text
    assert "node_cpu_seconds_total" in text and "node_memory_MemAvailable_bytes" in text
    assert "node_filesystem" not in text  # only the collectors asked for
    prom = PrometheusServer(group, free_port(), scrape_interval_s=1.0, jobs=["node"])
    prom.set_targets("node", [(node.address, {})])
    series = prom.wait_for_samples('node_cpu_seconds_total{mode="idle"}', timeout_s=20)
    assert len(series) == os.cpu_count()
    assert prom.query_scalar("node_memory_MemTotal_bytes") > 0


def test_prometheus_missing_binary_is_a_clear_error(
    group: ProcessGroup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendError, match="apt-get install prometheus"):
        PrometheusServer(group, free_port())


# --- Locust --------------------------------------------------------------------------------

PROFILE_YAML = """\
name: tiny
description: short load for the LocustRun test
wait_time: {min: 0.05, max: 0.1}
stages:
  - {duration: 4, users: 3, spawn_rate: 10}
  - {duration: 4, users: 5, spawn_rate: 10}
"""


def test_request_log_reads_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    log = RequestLog(path)
    assert log.read_new().shape == (0, 3)
    path.write_text("100.5,20.000,1\n101.0,30")
    np.testing.assert_allclose(log.read_new(), [[100.5, 0.02, 1.0]])
    with path.open("a") as f:
        f.write(".000,0\n102.0,5.000,1\n")
    np.testing.assert_allclose(log.read_new(), [[101.0, 0.03, 0.0], [102.0, 0.005, 1.0]])
    assert log.read_new().shape == (0, 3) and log.rows_read == 3
    assert log.read_all().shape == (3, 3)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_locust_run_request_log_is_incremental_and_matches_stats(
    group: ProcessGroup, backends: Callable[..., Backend], tmp_path: Path
) -> None:
    server = backends("kserve", fail_every=10)  # every 10th request fails with a 500
    profile = tmp_path / "tiny.yaml"
    profile.write_text(PROFILE_YAML)
    run = LocustRun(
        group,
        host=f"http://127.0.0.1:{server.port}",
        profile=str(profile),
        csv_prefix=str(tmp_path / "out" / "locust"),
        request_log=str(tmp_path / "requests.csv"),
    )
    chunks: list[np.ndarray] = []
    deadline = time.monotonic() + 60
    while run.alive() and time.monotonic() < deadline:
        chunks.append(run.read_new())
        time.sleep(0.5)
    code = run.wait(timeout_s=30)
    chunks.append(run.read_new())
    assert code == 1, run.proc.tail(20)  # Locust exits 1 when any request failed
    assert group.dead() == []  # a normal end is not a death

    # rows arrived during the run, not only at its end
    during = [len(c) for c in chunks[:-1]]
    assert sum(1 for n in during if n > 0) >= 4, during
    rows = np.concatenate(chunks)
    stats = run.stats()
    assert stats.requests > 100
    assert len(rows) == stats.requests
    assert int((rows[:, 2] == 0).sum()) == stats.failures > 0
    assert server.posts >= stats.requests
    assert np.all(rows[:, 1] > 0) and np.all(rows[:, 1] < 5)
    assert np.all(np.diff(rows[:, 0]) > -1.5)  # roughly in time order (flushes per second)
    span = rows[-1, 0] - rows[0, 0]
    assert 5 < span < 15, span
    assert abs(stats.average_ms - 1000 * rows[:, 1].mean()) < 1.0
    assert stats.rps > 0 and stats.p99_ms >= stats.p95_ms >= 0
    history = run.history()
    assert history and max(h.user_count for h in history) == 5
    assert history[-1].total_requests == stats.requests


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_locust_run_stopped_early_still_writes_matching_stats(
    group: ProcessGroup, backends: Callable[..., Backend], tmp_path: Path
) -> None:
    server = backends("kserve")
    profile = tmp_path / "long.yaml"
    profile.write_text(PROFILE_YAML.replace("duration: 4", "duration: 300"))
    run = LocustRun(
        group,
        host=f"http://127.0.0.1:{server.port}",
        profile=profile,
        csv_prefix=tmp_path / "locust",
        request_log=tmp_path / "requests.csv",
    )
    seen = [0]

    def enough() -> bool:
        seen[0] += len(run.read_new())
        return seen[0] > 50

    assert wait_until(enough, 30), run.proc.tail(20)
    t0 = time.monotonic()
    assert run.stop(grace_s=20) == 0, run.proc.tail(20)  # SIGTERM: a clean, early end
    assert time.monotonic() - t0 < 10
    assert not run.alive() and group.dead() == []
    rows = RequestLog(tmp_path / "requests.csv").read_all()
    stats = run.stats()
    assert len(rows) == stats.requests > 50
    assert stats.failures == 0 and np.all(rows[:, 2] == 1.0)
