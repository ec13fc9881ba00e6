"""Is the load generator the bottleneck? Locust's process count and the saturation checks.

A live run measures the cluster only while Locust can drive the load its users ask for.
One Locust process is one gevent loop on one core; once its users need more client CPU
than that core has, the achieved rate stops at the process's capacity and the latency
Locust records grows with the client's own queue (FACTS: the user's JSON-body runs stayed
at about 10 requests/s from 20 to 100 users and Locust logged "CPU usage above 90%").
Such an interval measures Locust, not Triton. Two checks mark it, per decision interval:

* ``cpu``: Locust's own CPU warning. Every Locust process samples its CPU every 10 s
  (``locust.runners.CPU_MONITOR_INTERVAL``) and above 90 % (``CPU_WARNING_THRESHOLD``)
  fires ``events.cpu_warning`` and logs, once per run, ``CPU usage above 90%! This may
  constrain your throughput ...`` (the master of a ``--processes`` run: ``Worker <id>
  (index <i>) exceeded cpu threshold``). The project's locustfile logs a line
  (:data:`LOCUSTFILE_CPU_LINE`) at every such event, so each interval sees its own.
* ``rate``: the closed-loop rate. ``N`` users that each send a request, wait its response
  time ``R`` and then think ``Z`` on average complete ``N / (R + Z)`` requests per second
  (Little's law on the closed loop) — whatever the server does, because a slow server
  only lengthens ``R``. A busy client also spends time in neither: building a request
  before Locust's timer starts, or a think time that overruns because the loop is busy.
  So an achieved rate below ``(1 - rate_tolerance) x N / (R + Z)`` (``N`` the profile's
  mean user count over the interval, ``spawn_lag_s`` later; ``R`` the mean recorded
  latency; ``Z`` the profile's mean think time) means the client could not keep its
  users' pace. Intervals in which fewer than ``min_expected_requests`` requests are
  expected are not judged.

:func:`choose_processes` sizes ``--processes`` from the profile's peak rate and a
per-process capacity, capped at the machine's cores.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from k8s_gpu_rl.config import check
from k8s_gpu_rl.loadprofiles import LoadProfile
from k8s_gpu_rl.loadprofiles.profile import user_events

__all__ = [
    "CLIENT_CPU_MS_ENV",
    "CPU_MONITOR_ENV",
    "CPU_WARNING_ENV",
    "LOCUSTFILE_CPU_LINE",
    "LoadGeneratorOptions",
    "LogTail",
    "choose_processes",
    "closed_loop_rps",
    "interval_reason",
    "locust_env",
    "locust_process_args",
    "mean_users",
    "peak_rps",
    "saturation_reason",
]

CLIENT_CPU_MS_ENV = "K8SGPURL_CLIENT_CPU_MS"
"""Environment variable the locustfile reads an artificial client CPU cost from (ms of
CPU burnt per request before it is sent; for testing the checks)."""
CPU_MONITOR_ENV = "K8SGPURL_CPU_MONITOR_S"
"""Environment variable the locustfile sets Locust's CPU sampling period from."""
CPU_WARNING_ENV = "K8SGPURL_CPU_WARNING_PCT"
"""Environment variable the locustfile sets Locust's CPU warning threshold from."""
LOCUSTFILE_CPU_LINE = "k8s-gpu-rl: Locust CPU usage"
"""Start of the line the locustfile logs at every ``events.cpu_warning``."""
CPU_WARNING = re.compile(
    r"CPU usage above \d+(?:\.\d+)?%!|exceeded cpu threshold|" + re.escape(LOCUSTFILE_CPU_LINE)
)
"""Locust's own CPU warnings (``locust/runners.py``) and the locustfile's per-event line."""


@dataclass(frozen=True)
class LoadGeneratorOptions:
    """How many Locust processes a live backend starts and when it calls Locust saturated."""

    processes: int | None = None
    """Locust processes (``--processes``; 1: a single process, no master). None: chosen by
    :func:`choose_processes` from the profile's peak rate."""
    process_capacity_rps: float = 1000.0
    """Requests per second one Locust process is sized for, with the project's locustfile
    (FastHttpUser, one 602 KB binary-tensor body per request). Measured: 0.43 ms of
    Locust CPU per request (2470 requests in 1.06 CPU-seconds, psutil, over 6 s of a
    20-user zero-think run against a loopback stub server), i.e. about 2300 per second
    at a full core; the default keeps a process near 45 % of its core, well below
    Locust's 90 % warning, leaving room for parsing real responses. A JSON-body client is
    far slower (the user's runs plateaued at about 10 per second per process)."""
    expected_response_s: float = 0.1
    """The response time assumed when sizing the processes (peak users / (mean think +
    this) is the peak rate)."""
    max_processes: int | None = None
    """Cap on the chosen count; None: the cores this process may run on."""
    rate_tolerance: float = 0.15
    """The ``rate`` check's slack: an interval whose achieved rate is below ``(1 - this)``
    of the closed-loop rate is saturated (covers edge effects: requests in flight at the
    interval's ends, ramps). In (0, 1)."""
    spawn_lag_s: float = 0.75
    """How long after the load shape's tick Locust's users start (or stop): the ``rate``
    check's users are the profile's, this much later. Measured from "Shape test
    starting" to the first request's end: 0.65 s to 0.9 s with ``--processes 2`` (the master
    dispatches the users to its workers), less with one process."""
    min_expected_requests: float = 30.0
    """Intervals expecting fewer requests than this are not judged by the ``rate`` check."""
    cpu_monitor_s: float | None = None
    """How often each Locust process samples its CPU (the locustfile sets
    ``locust.runners.CPU_MONITOR_INTERVAL`` from ``K8SGPURL_CPU_MONITOR_S``); None:
    Locust's own 10 s. Note psutil's first sample of a process reads 0 %, so the first
    warning can come two periods after Locust starts."""
    cpu_warning_pct: float | None = None
    """Locust's CPU warning threshold, % of one core (the locustfile sets
    ``locust.runners.CPU_WARNING_THRESHOLD`` from ``K8SGPURL_CPU_WARNING_PCT``); None:
    Locust's own 90 %. (A ``--processes`` master's per-worker log line keeps its literal
    90 %; the workers' own warnings follow this.)"""
    client_cpu_ms: float = 0.0
    """Testing only: CPU ms each Locust request burns before it is sent (the locustfile's
    ``K8SGPURL_CLIENT_CPU_MS``), to throttle the load generator on purpose."""

    def __post_init__(self) -> None:
        check(
            self.processes is None or self.processes >= 1,
            f"processes must be >= 1 (or null: chosen from the profile), got {self.processes}",
        )
        check(
            self.process_capacity_rps > 0,
            f"process_capacity_rps must be > 0, got {self.process_capacity_rps}",
        )
        check(
            self.expected_response_s >= 0,
            f"expected_response_s must be >= 0, got {self.expected_response_s}",
        )
        check(
            self.max_processes is None or self.max_processes >= 1,
            f"max_processes must be >= 1 (or null: the cores), got {self.max_processes}",
        )
        check(
            0 < self.rate_tolerance < 1,
            f"rate_tolerance must be in (0, 1), got {self.rate_tolerance}",
        )
        check(self.spawn_lag_s >= 0, f"spawn_lag_s must be >= 0, got {self.spawn_lag_s}")
        check(
            self.min_expected_requests >= 0,
            f"min_expected_requests must be >= 0, got {self.min_expected_requests}",
        )
        check(
            self.cpu_monitor_s is None or self.cpu_monitor_s > 0,
            f"cpu_monitor_s must be > 0 (or null: Locust's 10 s), got {self.cpu_monitor_s}",
        )
        check(
            self.cpu_warning_pct is None or 0 < self.cpu_warning_pct <= 100,
            f"cpu_warning_pct must be in (0, 100] (or null: Locust's 90), got {self.cpu_warning_pct}",
        )
        check(self.client_cpu_ms >= 0, f"client_cpu_ms must be >= 0, got {self.client_cpu_ms}")


def closed_loop_rps(users: float, mean_response_s: float, mean_think_s: float) -> float:
    """Requests per second ``users`` closed-loop users complete: ``users / (R + Z)``."""
    cycle = mean_response_s + mean_think_s
    if users <= 0:
        return 0.0
    return users / cycle if cycle > 0 else math.inf


def peak_rps(profile: LoadProfile, expected_response_s: float) -> float:
    """The profile's peak request rate: its largest user count at ``expected_response_s``."""
    peak_users = max((s.users for s in profile.stages), default=0)
    return closed_loop_rps(peak_users, expected_response_s, profile.wait_time.mean_s)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def choose_processes(
    profile: LoadProfile, options: LoadGeneratorOptions, cores: int | None = None
) -> int:
    """Locust processes for ``profile``: ``options.processes`` if set, else
    ``ceil(peak rate / process capacity)``, at least 1, at most ``options.max_processes``
    (default ``cores``, default the cores this process may use)."""
    if options.processes is not None:
        return options.processes
    cap = options.max_processes or cores or _cores()
    need = math.ceil(peak_rps(profile, options.expected_response_s) / options.process_capacity_rps)
    return max(1, min(need, cap))


def locust_process_args(processes: int) -> list[str]:
    """Locust's command-line arguments for ``processes`` (none for one: no master/worker)."""
    return [] if processes <= 1 else ["--processes", str(processes)]


def locust_env(options: LoadGeneratorOptions) -> dict[str, str]:
    """The locustfile's environment variables for ``options`` (only those set)."""
    env = {}
    if options.client_cpu_ms > 0:
        env[CLIENT_CPU_MS_ENV] = f"{options.client_cpu_ms:g}"
    if options.cpu_monitor_s is not None:
        env[CPU_MONITOR_ENV] = f"{options.cpu_monitor_s:g}"
    if options.cpu_warning_pct is not None:
        env[CPU_WARNING_ENV] = f"{options.cpu_warning_pct:g}"
    return env


def mean_users(profile: LoadProfile, start_s: float, end_s: float) -> float:
    """The profile's user count averaged over ``[start_s, end_s]`` (its step function)."""
    if end_s <= start_s:
        return 0.0
    times, counts = user_events(profile)
    edges = np.clip(np.append(times, np.inf), start_s, end_s)
    return float(np.sum(counts * np.diff(edges)) / (end_s - start_s))


def saturation_reason(
    requests: int,
    duration_s: float,
    users: float,
    mean_response_s: float,
    mean_think_s: float,
    cpu_warnings: list[str],
    options: LoadGeneratorOptions,
) -> str:
    """Why the interval is saturated (``""``: it is not); see the module docstring.

    ``requests`` ended in the interval of ``duration_s`` seconds with ``users`` mean users,
    ``mean_response_s`` their mean latency (NaN when there were none), ``cpu_warnings``
    the CPU-warning log lines Locust wrote during the interval.
    """
    reasons = []
    if cpu_warnings:
        reasons.append(f"cpu: Locust warned {len(cpu_warnings)}x: {cpu_warnings[0].strip()[:160]}")
    response = mean_response_s if math.isfinite(mean_response_s) else 0.0
    expected = closed_loop_rps(users, response, mean_think_s)
    achieved = requests / duration_s if duration_s > 0 else 0.0
    if (
        expected * duration_s >= options.min_expected_requests
        and achieved < (1.0 - options.rate_tolerance) * expected
    ):
        reasons.append(
            f"rate: {achieved:.1f} req/s achieved, {expected:.1f} expected from {users:.1f} "
            f"users / ({response * 1000:.0f} ms + {mean_think_s * 1000:.0f} ms think)"
        )
    return "; ".join(reasons)


def interval_reason(
    profile: LoadProfile,
    options: LoadGeneratorOptions,
    rows: np.ndarray,
    start_s: float,
    end_s: float,
    cpu_warnings: list[str],
) -> str:
    """:func:`saturation_reason` for the interval ``[start_s, end_s]`` of ``profile``, from
    its request-log ``rows`` (``(n, 3)``: end time, latency s, ok) and the CPU-warning lines
    Locust logged meanwhile; the users are the profile's, ``spawn_lag_s`` later."""
    lag = options.spawn_lag_s
    return saturation_reason(
        requests=len(rows),
        duration_s=end_s - start_s,
        users=mean_users(profile, start_s - lag, end_s - lag),
        mean_response_s=float(rows[:, 1].mean()) if len(rows) else math.nan,
        mean_think_s=profile.wait_time.mean_s,
        cpu_warnings=cpu_warnings,
        options=options,
    )


class LogTail:
    """Incremental reader of a log file: :meth:`cpu_warnings` returns the CPU-warning
    lines written since the previous call (a partly written last line waits)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._offset = 0
        self._pending = b""

    def new_lines(self) -> list[str]:
        """Complete lines appended since the previous call."""
        if self.path is None:
            return []
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def cpu_warnings(self) -> list[str]:
        """New lines that are Locust CPU warnings (:data:`CPU_WARNING`)."""
        return [line for line in self.new_lines() if CPU_WARNING.search(line)]
