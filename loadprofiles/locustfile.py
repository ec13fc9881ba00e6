"""Locust users that send MobileNetV4 inference requests to Triton, following a load profile.

Run headless against Triton's HTTP port::

    K8SGPURL_PROFILE=mixed locust -f loadprofiles/locustfile.py --headless \\
        --host http://<triton>:8000 --csv results/mixed --csv-full-history

Each :class:`TritonUser` posts one KServe v2 request (binary tensor extension, batch 1,
a fixed random 1x3x224x224 FP32 image) to ``/v2/models/<model>/infer``, then waits the
profile's think time. :class:`ProfileShape` sets the user count stage by stage and ends the
test when the profile ends.

Environment variables:

| variable           | default       | meaning                                    |
|--------------------|---------------|--------------------------------------------|
| K8SGPURL_PROFILE   | ``low``       | load profile: a shipped name or a YAML path |
| K8SGPURL_MODEL     | ``mobilenetv4`` | Triton model name                        |
| K8SGPURL_INPUT     | ``input0``    | the model's input tensor name              |
| K8SGPURL_OUTPUT    | ``output0``   | the model's output tensor name             |
| K8SGPURL_REQUEST_LOG | unset       | if set: a CSV file each request is appended to |
| K8SGPURL_CLIENT_CPU_MS | ``0``     | testing: CPU ms each request burns before it is sent |
| K8SGPURL_CPU_MONITOR_S | Locust's 10 | seconds between Locust's CPU samples     |
| K8SGPURL_CPU_WARNING_PCT | Locust's 90 | CPU % above which Locust warns        |

With ``K8SGPURL_REQUEST_LOG`` set, every request (success or failure) appends one line
``end_unix_s,response_time_ms,ok`` (``ok`` 1 or 0; no header) to that file. Lines are
buffered and written in one ``write`` at least once a second and when Locust quits, so a
reader tailing the file sees requests within about a second
(``k8s_gpu_rl.envs.backends.local.locust_run.RequestLog``). The file is opened for appending; with
``--processes`` each worker appends whole lines. With ``--csv`` as well, the end of the
test waits about a second so Locust's once-a-second CSV writer records the final totals
(they then equal the log's line count), and SIGTERM during the run stops the test
cleanly (final CSVs, log flushed, exit status 0 or 1) instead of killing Locust.

Locust's CPU warning (``events.cpu_warning``, fired by each Locust process whose CPU
sample, taken every 10 s, exceeds 90 %) is logged at every firing as
``k8s-gpu-rl: Locust CPU usage <x>% ...`` (Locust itself logs it once per run), so a live
backend reading the log marks each interval in which the load generator was CPU-bound
(``k8s_gpu_rl.envs.backends.loadgen``). ``K8SGPURL_CLIENT_CPU_MS`` makes every request
spend that much CPU (a busy loop on the process's CPU clock) before Locust's timer
starts, to throttle the load generator on purpose in tests.

Multiple processes: ``--processes N`` forks N workers after this file is imported; the
load shape runs in the master, each worker runs users and appends its own whole lines to
the request log (one ``write`` of complete lines on an ``O_APPEND`` descriptor).

The option ``--load-profile NAME_OR_PATH`` overrides ``K8SGPURL_PROFILE`` (Locust itself
already owns ``--profile``, a label for grouping test runs).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust.runners
from locust import FastHttpUser, LoadTestShape, between, events, task

if importlib.util.find_spec("k8s_gpu_rl") is None:  # run from outside the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k8s_gpu_rl.envs.backends.loadgen import LOCUSTFILE_CPU_LINE  # noqa: E402
from k8s_gpu_rl.errors import ConfigError  # noqa: E402
from k8s_gpu_rl.loadprofiles.kserve_v2 import build_infer_request, random_input  # noqa: E402
from k8s_gpu_rl.loadprofiles.profile import LoadProfile, load_profile  # noqa: E402

PROFILE_ENV = "K8SGPURL_PROFILE"
"""Environment variable naming the load profile (a shipped name or a YAML path)."""
REQUEST_LOG_ENV = "K8SGPURL_REQUEST_LOG"
"""Environment variable naming the per-request CSV log (unset: no log)."""
CPU_WARNING_ENV = "K8SGPURL_CPU_WARNING_PCT"
"""Environment variable: Locust's CPU warning threshold in % (its ``CPU_WARNING_THRESHOLD``)."""
CPU_MONITOR_ENV = "K8SGPURL_CPU_MONITOR_S"
"""Environment variable: seconds between Locust's CPU samples (its ``CPU_MONITOR_INTERVAL``)."""
CLIENT_CPU_MS_ENV = "K8SGPURL_CLIENT_CPU_MS"
"""Environment variable: CPU milliseconds each request burns before it is sent (testing)."""
DEFAULT_PROFILE = "low"
INPUT_SEED = 0
"""Seed of the random input image, the same in every Locust process."""

try:
    PROFILE: LoadProfile = load_profile(os.environ.get(PROFILE_ENV, DEFAULT_PROFILE))
except ConfigError as exc:
    sys.exit(f"{PROFILE_ENV}: {exc}")

try:
    CLIENT_CPU_S: float = float(os.environ.get(CLIENT_CPU_MS_ENV, "0") or 0) / 1000.0
except ValueError:
    sys.exit(f"{CLIENT_CPU_MS_ENV}: not a number: {os.environ[CLIENT_CPU_MS_ENV]!r}")
if CLIENT_CPU_S < 0:
    sys.exit(f"{CLIENT_CPU_MS_ENV}: must be >= 0, got {os.environ[CLIENT_CPU_MS_ENV]!r}")

for _env, _name in (
    (CPU_MONITOR_ENV, "CPU_MONITOR_INTERVAL"),
    (CPU_WARNING_ENV, "CPU_WARNING_THRESHOLD"),
):
    if os.environ.get(_env):
        try:  # Locust's monitor greenlet reads these module globals at every sample
            _value = float(os.environ[_env])
            setattr(locust.runners, _name, int(_value) if _value.is_integer() else _value)
        except ValueError:
            sys.exit(f"{_env}: not a number: {os.environ[_env]!r}")

REQUEST = build_infer_request(
    model=os.environ.get("K8SGPURL_MODEL", "mobilenetv4"),
    input_name=os.environ.get("K8SGPURL_INPUT", "input0"),
    output_name=os.environ.get("K8SGPURL_OUTPUT", "output0"),
    tensor=random_input(INPUT_SEED),
)


def _profile_argument(value: str) -> str:
    """``--load-profile``'s check: the profile must load. The option keeps the string, not
    the profile: with ``--processes`` the master sends the parsed options to its workers
    (msgpack), which cannot carry a :class:`LoadProfile`."""
    try:
        load_profile(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


@functools.lru_cache(maxsize=8)
def _load_cached(name_or_path: str) -> LoadProfile:
    return load_profile(name_or_path)


def chosen_profile(parsed_options: Any) -> LoadProfile:
    """The ``--load-profile`` option's profile if given, else the one ``K8SGPURL_PROFILE`` named."""
    value = getattr(parsed_options, "load_profile", None)
    return _load_cached(value) if value else PROFILE


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--load-profile",
        type=_profile_argument,
        default=None,
        include_in_web_ui=False,
        help=f"Load profile: a shipped name or a YAML path (overrides ${PROFILE_ENV})",
    )


@events.init.add_listener
def _use_chosen_profile(environment: Any, **_kwargs: Any) -> None:
    profile = chosen_profile(environment.parsed_options)
    TritonUser.wait_time = between(profile.wait_time.min, profile.wait_time.max)


def burn_cpu(seconds: float) -> None:
    """Keep this process's CPU busy for ``seconds`` of CPU time (not wall time: under
    contention it takes longer), without yielding to other greenlets."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@events.cpu_warning.add_listener
def _log_cpu_warning(environment: Any = None, cpu_usage: float = 0.0, **_kwargs: Any) -> None:
    """Log every ``events.cpu_warning`` (Locust's own warning is logged once per run)."""
    logging.getLogger(__name__).warning(
        "%s %.0f%% above the warning threshold (pid %d)",
        LOCUSTFILE_CPU_LINE,
        cpu_usage,
        os.getpid(),
    )


class TritonUser(FastHttpUser):
    """One closed-loop client: an inference request, then the profile's think time."""

    host = "http://localhost:8000"
    wait_time = between(PROFILE.wait_time.min, PROFILE.wait_time.max)

    @task
    def infer(self) -> None:
        """POST one binary-extension inference request; anything but 200 is a failure."""
        if CLIENT_CPU_S > 0:
            burn_cpu(CLIENT_CPU_S)
        with self.client.post(
            REQUEST.path, data=REQUEST.body, headers=REQUEST.headers, catch_response=True
        ) as response:
            if response.status_code == 200:
                response.success()
            else:
                text = (response.text or "")[:200]
                response.failure(f"HTTP {response.status_code}: {text}")


class ProfileShape(LoadTestShape):
    """Follows the chosen load profile's stages; stops the test at the profile's end."""

    def profile(self) -> LoadProfile:
        """The profile this run follows (``--load-profile`` if given, else the env var's)."""
        options = self.runner.environment.parsed_options if self.runner is not None else None
        return chosen_profile(options)

    def tick(self) -> tuple[int, float] | None:
        """``(users, spawn_rate)`` of the current stage, ``None`` after the last one."""
        return self.profile().tick(self.get_run_time())


class RequestLogWriter:
    """Appends ``end_unix_s,response_time_ms,ok`` per request to a file, flushed every second."""

    FLUSH_INTERVAL_S = 1.0

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lines: list[str] = []
        self._last_flush = time.monotonic()
        self._flusher: Any = None

    def on_request(self, response_time: float, exception: Any = None, **_kwargs: Any) -> None:
        """``events.request`` listener: buffer one line; flush if a second has passed."""
        ok = 0 if exception is not None else 1
        self._lines.append(f"{time.time():.6f},{float(response_time or 0.0):.3f},{ok}\n")
        if time.monotonic() - self._last_flush >= self.FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines in one ``write`` (whole lines, appended)."""
        self._last_flush = time.monotonic()
        if not self._lines or self._fd < 0:
            return
        data = "".join(self._lines).encode()
        self._lines = []
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def start_flusher(self) -> None:
        """A greenlet that flushes every second, so idle periods are flushed too."""
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(self.FLUSH_INTERVAL_S / 2)
            if time.monotonic() - self._last_flush >= self.FLUSH_INTERVAL_S:
                self.flush()

    def close(self, **_kwargs: Any) -> None:
        """Flush and stop the flusher (``events.quitting`` / ``events.quit`` listener).

        Idempotent; the file descriptor stays open (requests that end later are still
        written at the next call) and closes with the process.
        """
        self.flush()
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None


def _let_csv_writer_catch_up(environment: Any = None, **_kwargs: Any) -> None:
    """``events.test_stop`` listener: wait out one tick of Locust's CSV writer.

    Locust rewrites ``_stats.csv`` (and appends to ``_stats_history.csv``) only once a
    second, not at exit, so the files could miss the last second's requests. The users
    have stopped when ``test_stop`` fires; waiting a little over a tick makes the files
    final, so their totals equal the request log's line count.
    """
    options = getattr(environment, "parsed_options", None)
    if getattr(options, "csv_prefix", None):
        gevent.sleep(1.2)


def _graceful_sigterm(environment: Any = None, **_kwargs: Any) -> None:
    """``events.init`` listener: make SIGTERM end a headless shape run cleanly.

    Locust 2.x installs its own SIGTERM handler only after a headless ``LoadTestShape`` run
    has finished, so a SIGTERM during the run kills the process without writing the final
    CSV files or firing ``quitting``/``quit``. Until then, this handler quits the runner;
    Locust then shuts down as at the profile's end (stats, CSVs, exit status 0 or 1).
    """
    runner = getattr(environment, "runner", None)
    if runner is None or type(runner).__name__ == "WorkerRunner":
        return

    def quit_runner() -> None:
        logging.getLogger(__name__).info("SIGTERM: stopping the load test")
        runner.quit()

    gevent.signal_handler(signal.SIGTERM, quit_runner)


def _install_request_log(path: str) -> RequestLogWriter:
    writer = RequestLogWriter(path)
    events.request.add_listener(writer.on_request)
    events.init.add_listener(lambda **_kw: writer.start_flusher())
    events.init.add_listener(_graceful_sigterm)
    events.test_stop.add_listener(_let_csv_writer_catch_up)
    # quitting fires before the runner stops on SIGTERM, quit after: flush at both
    events.quitting.add_listener(writer.close)
    events.quit.add_listener(writer.close)
    return writer


REQUEST_LOG: RequestLogWriter | None = (
    _install_request_log(os.environ[REQUEST_LOG_ENV]) if os.environ.get(REQUEST_LOG_ENV) else None
)
"""The request log writer when ``K8SGPURL_REQUEST_LOG`` is set, else ``None``."""
