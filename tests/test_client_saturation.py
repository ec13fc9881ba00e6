"""A run whose load generator saturated is flagged and kept out of the statistics.

Fast tests: the closed-loop arithmetic and the process count against hand-computed
cases, Locust's own CPU-warning text (read from the installed Locust's source) against
the detector, and the validity filter on hand-written ``runs.csv`` rows. Slow tests
(``-m slow``): real headless Locust with the project's locustfile against a loopback
stdlib HTTP server, through the live backends' shared interval bookkeeping
(:class:`~k8s_gpu_rl.envs.backends.live.LiveBackend`): a Locust made CPU-bound on purpose
(``client_cpu_ms``, one process) is flagged, an unthrottled one with ``--processes 2`` is
not, and its request log holds every request Locust counted.
"""

from __future__ import annotations

import http.server
import importlib.util
import math
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from k8s_gpu_rl.envs.backends.base import IntervalRecord
from k8s_gpu_rl.envs.backends.live import EventLog, Integrals, LiveBackend
from k8s_gpu_rl.envs.backends.loadgen import (
    CPU_WARNING,
    LoadGeneratorOptions,
    LogTail,
    choose_processes,
    closed_loop_rps,
    interval_reason,
    locust_process_args,
    mean_users,
    peak_rps,
    saturation_reason,
)
from k8s_gpu_rl.envs.backends.local.locust_run import LocustRun
from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup
from k8s_gpu_rl.envs.episode import EpisodeAccumulator
from k8s_gpu_rl.envs.sim.config import load_cluster_config
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.evaluation.validity import split_valid
from k8s_gpu_rl.loadprofiles.profile import parse_profile


def _profile(users: int, seconds: float, wait: tuple[float, float], spawn: float = 100.0):
    return parse_profile(
        {
            "name": "t",
            "description": "test",
            "wait_time": {"min": wait[0], "max": wait[1]},
            "stages": [{"duration": seconds, "users": users, "spawn_rate": spawn}],
        }
    )


# --------------------------------------------------------------------- the arithmetic
def test_closed_loop_rate_hand_computed() -> None:
    # FACTS: 10 users at 72 ms with ~0.7 s think gave ~13 req/s: 10 / 0.772 = 12.953
    assert closed_loop_rps(10, 0.072, 0.7) == pytest.approx(12.9534, abs=1e-4)
    # 100 users, 3.5 s response, between(1, 2) think (mean 1.5 s): 100 / 5 = 20
    assert closed_loop_rps(100, 3.5, 1.5) == pytest.approx(20.0)
    assert closed_loop_rps(0, 0.1, 1.0) == 0.0
    assert closed_loop_rps(5, 0.0, 0.0) == math.inf


def test_peak_rate_and_process_count() -> None:
    two = parse_profile(
        {
            "name": "two",
            "wait_time": {"min": 0.4, "max": 1.0},
            "stages": [
                {"duration": 60, "users": 10, "spawn_rate": 5},
                {"duration": 60, "users": 50, "spawn_rate": 5},
            ],
        }
    )
    # peak 50 users / (0.7 s mean think + 0.1 s) = 62.5 req/s
    assert peak_rps(two, 0.1) == pytest.approx(62.5)
    opts = LoadGeneratorOptions(process_capacity_rps=20.0, expected_response_s=0.1)
    assert choose_processes(two, opts, cores=8) == 4  # ceil(62.5 / 20)
    assert choose_processes(two, opts, cores=2) == 2  # capped at the cores
    capped = LoadGeneratorOptions(process_capacity_rps=20.0, max_processes=3)
    assert choose_processes(two, capped, cores=8) == 3
    assert choose_processes(two, LoadGeneratorOptions(process_capacity_rps=1000.0)) == 1
    assert choose_processes(two, LoadGeneratorOptions(processes=5), cores=2) == 5  # as asked
    assert locust_process_args(1) == []
    assert locust_process_args(3) == ["--processes", "3"]


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"rate_tolerance must be in \(0, 1\), got 1.5"):
        LoadGeneratorOptions(rate_tolerance=1.5)
    with pytest.raises(ConfigError, match="processes must be >= 1"):
        LoadGeneratorOptions(processes=0)


def test_mean_users_follows_the_ramp() -> None:
    # spawn_rate 5: batches of 5 users at t = 0 and t = 1 s, then 10 users
    p = _profile(10, 60, (0.4, 1.0), spawn=5.0)
    assert mean_users(p, 0.0, 2.0) == pytest.approx(7.5)  # 5 for 1 s, 10 for 1 s
    assert mean_users(p, 0.0, 4.0) == pytest.approx(8.75)  # (5 + 10 + 10 + 10) / 4
    assert mean_users(p, 10.0, 25.0) == pytest.approx(10.0)


OPTS = LoadGeneratorOptions()  # tolerance 0.15, at least 30 expected requests


def test_rate_check_on_the_users_table() -> None:
    # FACTS, 91-100 users: 10.1 req/s achieved; 100 / (3.5 s + 1.5 s) = 20 expected
    reason = saturation_reason(303, 30.0, 100, 3.5, 1.5, [], OPTS)
    assert reason.startswith("rate: 10.1 req/s achieved, 20.0 expected")
    # 10 users: 6.2 req/s achieved, 10 / (0.15 + 1.5) = 6.06 expected: not saturated
    assert saturation_reason(186, 30.0, 10, 0.15, 1.5, [], OPTS) == ""
    # the tolerance: below 0.85 x 20 = 17 req/s is saturated
    assert saturation_reason(171, 10.0, 100, 3.5, 1.5, [], OPTS) == ""
    assert saturation_reason(169, 10.0, 100, 3.5, 1.5, [], OPTS).startswith("rate:")
    # 2 users x 15 s / 1.5 s = 20 expected requests < 30: not judged, even with none
    assert saturation_reason(0, 15.0, 2, float("nan"), 1.5, [], OPTS) == ""
    # a slow server is not a slow client: 50 users at 2 s + 1.5 s think give 14.3 req/s
    assert saturation_reason(429, 30.0, 50, 2.0, 1.5, [], OPTS) == ""


def test_interval_reason_counts_the_users_late_by_the_spawn_lag() -> None:
    # 20 users from t = 0, started 0.75 s late: 20 x 4.25 / 5 = 17 users over [0, 5];
    # at 1 ms + 250 ms think that is 17 / 0.251 = 67.73 req/s, 0.85 x = 57.57 req/s
    profile = _profile(20, 60, (0.2, 0.3))
    opts = LoadGeneratorOptions(spawn_lag_s=0.75)

    def rows(n: int) -> np.ndarray:
        return np.column_stack([np.linspace(0.1, 4.9, n), np.full(n, 0.001), np.ones(n)])

    assert interval_reason(profile, opts, rows(288), 0.0, 5.0, []) == ""  # 57.6 req/s
    reason = interval_reason(profile, opts, rows(280), 0.0, 5.0, [])  # 56.0 req/s
    assert reason == (
        "rate: 56.0 req/s achieved, 67.7 expected from 17.0 users / (1 ms + 250 ms think)"
    )


def _locust_cpu_messages() -> list[str]:
    """The CPU warnings in the installed Locust's own source (``locust/runners.py``), read
    as text: importing Locust here would monkey-patch this test process with gevent."""
    spec = importlib.util.find_spec("locust")
    assert spec is not None and spec.submodule_search_locations
    src = (Path(next(iter(spec.submodule_search_locations))) / "runners.py").read_text()
    threshold = re.search(r"^CPU_WARNING_THRESHOLD = (\d+)$", src, re.M)
    assert threshold is not None
    found = [
        line.strip().removeprefix('f"').removesuffix('"')
        for line in src.splitlines()
        if "CPU usage above" in line or "exceeded cpu threshold" in line
    ]
    return [m.replace("{CPU_WARNING_THRESHOLD}", threshold.group(1)) for m in found]


def test_locusts_own_cpu_warning_is_detected(tmp_path: Path) -> None:
    messages = _locust_cpu_messages()
    assert any(m.startswith("CPU usage above 90%! This may constrain") for m in messages)
    assert any("exceeded cpu threshold" in m for m in messages)  # a --processes master
    log = tmp_path / "locust.log"
    single = messages[0]
    log.write_text(
        "[2026-12-01 10:00:00,000] vm/INFO/locust.runners: Shape test starting.\n"
        f"[2026-12-01 10:00:10,000] vm/WARNING/root: {single}\n"
        "[2026-12-01 10:00:20,000] vm/WARNING/locustfile: k8s-gpu-rl: Locust CPU usage 9"
    )
    tail = LogTail(log)
    found = tail.cpu_warnings()
    assert len(found) == 1 and "CPU usage above 90%!" in found[0]  # the partial line waits
    with log.open("a") as f:
        f.write("7% above the warning threshold (pid 12)\n")
    assert tail.cpu_warnings() == [
        "[2026-12-01 10:00:20,000] vm/WARNING/locustfile: "
        "k8s-gpu-rl: Locust CPU usage 97% above the warning threshold (pid 12)"
    ]
    assert tail.cpu_warnings() == []
    assert not CPU_WARNING.search("vm/INFO/locust.runners: Shape test stopping")
    reason = saturation_reason(300, 30.0, 10, 0.01, 1.0, found, OPTS)
    assert reason.startswith("cpu: Locust warned 1x: ") and "rate" not in reason


# --------------------------------------------------------------------- validity filter
def test_validity_filter_on_runs_csv_rows(tmp_path: Path) -> None:
    rows = [
        {"policy": "hpa", "profile": "high", "seed": 1000, "vgpu_hours": 0.5,
         "client_saturated": 0.0, "client_saturated_fraction": 0.0},
        {"policy": "hpa", "profile": "high", "seed": 1001, "vgpu_hours": 0.4,
         "client_saturated": 1.0, "client_saturated_fraction": 0.25},
        {"policy": "ppo", "profile": "high", "seed": 1000, "vgpu_hours": 0.3,
         "client_saturated": "", "client_saturated_fraction": ""},  # unknown: kept
    ]  # fmt: skip
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    kept, excluded = split_valid(pd.read_csv(path))
    assert list(zip(kept["policy"], kept["seed"], strict=True)) == [("hpa", 1000), ("ppo", 1000)]
    assert [(e.policy, e.profile, e.seed) for e in excluded] == [("hpa", "high", 1001)]
    assert (
        excluded[0].reason
        == "load generator saturated in 25% of its intervals (the run measures Locust)"
    )
    kept_all, none = split_valid(rows, allow_saturated_client=True)
    assert len(kept_all) == 3 and none == []
    sim_rows = pd.DataFrame([{"policy": "kpa", "profile": "low", "seed": 1, "vgpu_hours": 1.0}])
    kept_sim, excluded_sim = split_valid(sim_rows)  # no validity columns (sim): all valid
    assert len(kept_sim) == 1 and excluded_sim == []


# --------------------------------------------------------------------- live runs
class _StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    BODY = b'{"model_name":"mobilenetv4","outputs":[]}'

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *_args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # Locust hung up at its end
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def stub_url() -> Iterator[str]:
    """A loopback HTTP server answering every POST with 200 at once (an ideal Triton)."""
    server = _Server(("127.0.0.1", 0), _StubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _LocustOnly(LiveBackend):
    """The live backends' interval bookkeeping with Locust as the only real process."""

    def __init__(self, profile, options: LoadGeneratorOptions) -> None:
        super().__init__(load_cluster_config("local"), profile, 1.0, 10240, options)
        self.group = ProcessGroup(prefix="k8sgpurl-sat-")
        self.log = EventLog()
        self.locust: LocustRun | None = None

    def start(self, url: str) -> None:
        self.locust = self._start_locust(self.group, url, 60.0)
        self._begin_intervals(self.locust.t0_unix)

    def _locust(self) -> LocustRun:
        assert self.locust is not None
        return self.locust

    def _integrals(self) -> Integrals:
        return Integrals()

    def _usage(self, duration_s: float, end_s: float) -> tuple[float, float]:
        return 0.0, 0.0

    def _events(self) -> EventLog:
        return self.log

    def _during_wait(self) -> None:
        code = self._locust().returncode
        assert code in (None, 0, 1), self._locust().proc.tail(30)

    def _series_labels(self) -> tuple[str, str, str]:
        return "mobilenetv4", "default", "triton"


def _run(url: str, options: LoadGeneratorOptions, seconds: float, interval_s: float):
    """Run the profile through ``advance``; the records, Locust's argv, every CPU-warning
    line, the request log's rows and Locust's own request count."""
    # 20 users thinking 0.2-0.3 s against a ~1 ms server: 20 / 0.251 = ~80 req/s
    backend = _LocustOnly(_profile(20, seconds, (0.2, 0.3)), options)
    try:
        backend.start(url)
        records: list[IntervalRecord] = [
            backend.advance(interval_s) for _ in range(round(seconds / interval_s))
        ]
        locust = backend._locust()
        locust.wait(30.0)
        locust.cpu_warnings()  # lines logged after the last interval
        return (
            backend,
            records,
            locust.argv,
            locust.cpu_warning_lines,
            locust.requests.read_all(),
            locust.stats().requests,
        )
    finally:
        backend.group.close()


def _kpis(records: list[IntervalRecord]) -> dict[str, float]:
    acc = EpisodeAccumulator(500.0, 1.0, 10240.0)
    for rec in records:
        acc.add(rec, {}, 0.0)
    return acc.kpis()


@pytest.mark.slow
def test_throttled_locust_is_flagged(stub_url: str) -> None:
    # one process burning 40 ms of CPU per request: at most 25 req/s of the ~80 asked.
    # Locust warns above 90 % of a core; on a shared test machine the process may get
    # less than that, so it warns here above 5 % (its CPU sample every second)
    options = LoadGeneratorOptions(
        processes=1, client_cpu_ms=40.0, cpu_monitor_s=1.0, cpu_warning_pct=5.0
    )
    backend, records, argv, cpu_lines, _, _ = _run(stub_url, options, 15.0, 5.0)
    assert "--processes" not in argv
    reasons = [r.client_saturated for r in records]
    rates = [len(r.latencies_s) / 5.0 for r in records]
    print("throttled: req/s per interval", rates, "reasons", reasons)
    print("throttled: CPU warnings", cpu_lines)
    assert all(rate < 26.0 for rate in rates)  # 1000 / 40 ms, the burn's ceiling
    # each interval is flagged by one check or both: while the client's queue delays the
    # responses the recorded latency absorbs it and the rate can look closed-loop (as in
    # the user's 20-30-user runs); the CPU warning still marks it
    assert all(reasons)
    assert any(r.startswith("rate: ") or "; rate: " in r for r in reasons)
    # Locust's first CPU sample reads 0 %: its warnings mark the intervals after that
    assert any(r.startswith("cpu: Locust warned") for r in reasons[1:])
    assert any("CPU usage above 5%! This may constrain" in line for line in cpu_lines)
    assert any("k8s-gpu-rl: Locust CPU usage" in line for line in cpu_lines)
    kpis = _kpis(records)
    assert kpis["client_saturated"] == 1.0 and kpis["client_saturated_fraction"] == 1.0
    assert any("load generator saturated" in e for e in backend.log)


@pytest.mark.slow
def test_unthrottled_locust_with_two_processes_is_not_flagged(stub_url: str) -> None:
    options = LoadGeneratorOptions(processes=2, cpu_monitor_s=1.0)  # warns above 90 %
    backend, records, argv, cpu_lines, rows, counted = _run(stub_url, options, 15.0, 5.0)
    assert argv[-2:] == ["--processes", "2"]
    rates = [len(r.latencies_s) / 5.0 for r in records]
    print("unthrottled: req/s per interval", rates, [r.client_saturated for r in records])
    assert [r.client_saturated for r in records] == ["", "", ""]
    kpis = _kpis(records)
    assert kpis["client_saturated"] == 0.0 and kpis["client_saturated_fraction"] == 0.0
    # each worker appended whole lines: the log holds exactly what Locust counted
    assert len(rows) == counted > 0.85 * 80 * 15
    assert np.all(rows[:, 2] == 1.0)
    # the intervals took every request that ended within the profile's 15 s (the workers
    # run on for a moment after the shape's end: those are in the log, not the intervals)
    within = int(np.count_nonzero(rows[:, 0] - backend._locust().t0_unix < 15.0))
    assert sum(len(r.latencies_s) for r in records) == within
    assert cpu_lines == []
