"""Real Locust, headless, as the local testbed's load generator.

:class:`LocustRun` starts, as a child of a
:class:`~k8s_gpu_rl.envs.backends.local.procs.ProcessGroup`::

    python -m locust -f <k8s_gpu_rl.loadprofiles>/locustfile.py --headless --host HOST
        --csv PREFIX --csv-full-history --only-summary --load-profile PROFILE

(plus ``--processes N`` when the backend asks for several processes) in the group's run
directory, with :func:`~k8s_gpu_rl.procenv.python_child_env` (so it
imports the same ``k8s_gpu_rl`` as this process, from a checkout or a wheel) and
``K8SGPURL_REQUEST_LOG=<request_log>`` in its environment, so the locustfile appends
``end_unix_s,response_time_ms,ok`` per request to that file (flushed at least once a
second and at quit). The run ends by itself when the profile ends (exit status 0, or 1 if
any request failed, Locust's convention); :meth:`LocustRun.stop` ends it early with
SIGTERM, on which Locust still writes its CSV files.

:class:`RequestLog` tails the request log incrementally (:meth:`RequestLog.read_new`);
:meth:`LocustRun.stats` and :meth:`LocustRun.history` read Locust's ``PREFIX_stats.csv``
and ``PREFIX_stats_history.csv`` (the "Aggregated" rows).
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import k8s_gpu_rl.loadprofiles
from k8s_gpu_rl.envs.backends.loadgen import LogTail
from k8s_gpu_rl.envs.backends.local.procs import Managed, ProcessGroup, wait_line
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.procenv import python_child_env

__all__ = [
    "LOCUSTFILE",
    "REQUEST_LOG_ENV",
    "HistoryRow",
    "LocustRun",
    "LocustStats",
    "RequestLog",
    "read_history",
    "read_stats",
]

LOCUSTFILE = Path(k8s_gpu_rl.loadprofiles.__file__).resolve().parent / "locustfile.py"
"""The project's locustfile (KServe v2 users following a load profile), found beside the
package in use (a checkout's ``loadprofiles/`` or an installed wheel's)."""
REQUEST_LOG_ENV = "K8SGPURL_REQUEST_LOG"
"""The environment variable the locustfile reads the request log's path from."""
FLUSH_WAIT_S = 5.0
"""How long :meth:`LocustRun.take_until` waits at the profile's end for Locust to quit
(it flushes the request log at quit)."""


class RequestLog:
    """Incremental reader of the per-request CSV log the locustfile writes.

    Each :meth:`read_new` returns the complete lines appended since the previous call (a
    partly written last line waits for the next call) as an ``(n, 3)`` float64 array of
    ``(end_time_unix_s, latency_s, ok)``, ``ok`` 1.0 or 0.0. A missing file reads as empty.
    """

    COLUMNS = ("end_time_unix_s", "latency_s", "ok")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._pending = b""
        self.rows_read = 0
        """Rows returned so far."""

    def read_new(self) -> np.ndarray:
        """Rows appended since the last call, shape ``(n, 3)``."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return np.zeros((0, 3))
        self._offset += len(data)
        data = self._pending + data
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        rows = _parse_lines(data[:cut])
        self.rows_read += len(rows)
        return rows

    def read_all(self) -> np.ndarray:
        """Every complete row in the file (does not move :meth:`read_new`'s position)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return np.zeros((0, 3))
        return _parse_lines(data[: data.rfind(b"\n") + 1])


def _parse_lines(data: bytes) -> np.ndarray:
    out: list[tuple[float, float, float]] = []
    for line in data.splitlines():
        fields = line.split(b",")
        if len(fields) != 3:
            continue  # not ours (blank or damaged): skip rather than fail a whole episode
        try:
            end, ms, ok = float(fields[0]), float(fields[1]), float(fields[2])
        except ValueError:
            continue
        out.append((end, ms / 1000.0, 1.0 if ok else 0.0))
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


@dataclass(frozen=True)
class LocustStats:
    """The "Aggregated" row of ``PREFIX_stats.csv`` (times in milliseconds)."""

    requests: int
    failures: int
    median_ms: float
    average_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rps: float
    """Requests per second over the whole run."""
    failures_per_s: float


@dataclass(frozen=True)
class HistoryRow:
    """One "Aggregated" row of ``PREFIX_stats_history.csv`` (per second; NaN where N/A)."""

    timestamp: int
    """Unix time, whole seconds."""
    user_count: int
    rps: float
    """Current requests per second (Locust's recent window)."""
    failures_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    total_requests: int
    total_failures: int


def _num(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


def _aggregated(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return [row for row in csv.DictReader(f) if row.get("Name") == "Aggregated"]
    except FileNotFoundError:
        raise BackendError(f"Locust wrote no {path.name} (is the run finished?)") from None


def read_stats(csv_prefix: str | os.PathLike[str]) -> LocustStats:
    """Parse the Aggregated row of ``<csv_prefix>_stats.csv``."""
    path = Path(f"{os.fspath(csv_prefix)}_stats.csv")
    rows = _aggregated(path)
    if not rows:
        raise BackendError(f"{path} has no Aggregated row")
    row = rows[-1]
    return LocustStats(
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        median_ms=_num(row["Median Response Time"]),
        average_ms=_num(row["Average Response Time"]),
        p95_ms=_num(row["95%"]),
        p99_ms=_num(row["99%"]),
        max_ms=_num(row["Max Response Time"]),
        rps=_num(row["Requests/s"]),
        failures_per_s=_num(row["Failures/s"]),
    )


def read_history(csv_prefix: str | os.PathLike[str]) -> list[HistoryRow]:
    """The Aggregated rows of ``<csv_prefix>_stats_history.csv``, oldest first."""
    rows = _aggregated(Path(f"{os.fspath(csv_prefix)}_stats_history.csv"))
    return [
        HistoryRow(
            timestamp=int(r["Timestamp"]),
            user_count=int(r["User Count"]),
            rps=_num(r["Requests/s"]),
            failures_per_s=_num(r["Failures/s"]),
            p50_ms=_num(r["50%"]),
            p95_ms=_num(r["95%"]),
            p99_ms=_num(r["99%"]),
            total_requests=int(r["Total Request Count"]),
            total_failures=int(r["Total Failure Count"]),
        )
        for r in rows
    ]


class LocustRun:
    """A headless Locust run against ``host`` following ``profile``; see the module docstring.

    ``profile``: a shipped profile name or a YAML path (``--load-profile``). ``csv_prefix``:
    Locust's ``--csv`` prefix. ``request_log``: the per-request CSV (created empty now,
    truncating an old one). ``extra_env`` is added to Locust's environment (e.g.
    ``K8SGPURL_MODEL``); ``extra_args`` to its command line. The child is named ``name``
    in the group and started with ``expect_exit=True``, so its normal end is not reported
    by :meth:`ProcessGroup.dead`.
    """

    def __init__(
        self,
        group: ProcessGroup,
        host: str,
        profile: str | os.PathLike[str],
        csv_prefix: str | os.PathLike[str],
        request_log: str | os.PathLike[str],
        extra_env: Mapping[str, str] | None = None,
        *,
        extra_args: Sequence[str] = (),
        locustfile: str | os.PathLike[str] = LOCUSTFILE,
        name: str = "locust",
    ) -> None:
        self.group = group
        self.host = host
        self.csv_prefix = Path(csv_prefix)
        self.request_log_path = Path(request_log)
        self.csv_prefix.parent.mkdir(parents=True, exist_ok=True)
        self.request_log_path.parent.mkdir(parents=True, exist_ok=True)
        self.request_log_path.write_bytes(b"")
        self.requests = RequestLog(self.request_log_path)
        """The incremental reader of the request log."""
        # the locustfile imports k8s_gpu_rl.loadprofiles: the same copy as this process's
        env = python_child_env({**(extra_env or {}), REQUEST_LOG_ENV: str(self.request_log_path)})
        self.argv = [
            sys.executable, "-m", "locust", "-f", os.fspath(locustfile),
            "--headless", "--host", host,
            "--csv", str(self.csv_prefix), "--csv-full-history", "--only-summary",
            "--load-profile", os.fspath(profile),
            *extra_args,
        ]  # fmt: skip
        self.proc: Managed = group.start(
            name, self.argv, env=env, cwd=group.rundir, expect_exit=True
        )
        """The Locust process."""
        self.t0_unix = time.time()
        """Unix time of the profile's start (launch time until :meth:`wait_started`)."""
        self._later = np.zeros((0, 3))
        self._log = LogTail(self.proc.log_path)
        self.cpu_warning_lines: list[str] = []
        """Every CPU-warning line Locust logged so far (:meth:`cpu_warnings` appends)."""

    def cpu_warnings(self) -> list[str]:
        """Locust's CPU-warning log lines written since the previous call (its own once-per-
        process warning and the locustfile's line per ``events.cpu_warning``)."""
        new = self._log.cpu_warnings()
        self.cpu_warning_lines.extend(new)
        return new

    def alive(self) -> bool:
        """Whether Locust is still running."""
        return self.proc.alive()

    def wait_started(self, timeout_s: float = 60.0) -> float:
        """Wait until Locust's load shape starts (its profile clock's 0, a second or two
        after launch); that moment as unix time, also kept as :attr:`t0_unix`."""
        wait_line(self.proc, r"Shape test starting", timeout_s)
        self.t0_unix = time.time()
        return self.t0_unix

    def take_until(self, end_s: float, final: bool = False) -> np.ndarray:
        """Requests that ended before ``end_s`` seconds of the profile's clock, as
        :meth:`read_new` rows; later ones wait for the next call. ``final``: the profile
        is over, so first give Locust up to ``FLUSH_WAIT_S`` to quit and flush its log."""
        if final:
            deadline = time.monotonic() + FLUSH_WAIT_S
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        rows = np.concatenate([self._later, self.read_new()])
        mine = rows[:, 0] - self.t0_unix < end_s
        self._later = rows[~mine]
        return rows[mine]

    @property
    def returncode(self) -> int | None:
        """Locust's exit status: 0, 1 if any request failed; ``None`` while running."""
        return self.proc.returncode

    def read_new(self) -> np.ndarray:
        """Requests finished since the last call: ``(n, 3)`` rows (end_unix_s, latency_s, ok)."""
        return self.requests.read_new()

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for Locust to exit; its status. :class:`BackendError` on timeout or a crash.

        Exit statuses 0 and 1 (some requests failed) are normal ends.
        """
        try:
            code = self.proc.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"Locust still running after {timeout_s:g} s; log tail:\n{self.proc.tail(20)}"
            ) from None
        if code not in (0, 1) and not self.proc.stopping:
            raise BackendError(f"Locust exited with {code}; log tail:\n{self.proc.tail(30)}")
        return code

    def stop(self, grace_s: float = 15.0) -> int | None:
        """End the run early (SIGTERM: Locust stops its users and writes its CSV files)."""
        return self.group.stop(self.proc, grace_s=grace_s)

    def stats(self) -> LocustStats:
        """The whole run's aggregated statistics (after the run has ended)."""
        return read_stats(self.csv_prefix)

    def history(self) -> list[HistoryRow]:
        """Locust's per-second aggregated history (written during the run)."""
        return read_history(self.csv_prefix)
