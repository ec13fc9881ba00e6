"""Process supervision for the local testbed, with a hard no-leak guarantee.

A :class:`ProcessGroup` owns a temporary run directory and every child process the local
backend starts (inference servers, HAProxy, Prometheus, node exporter, Locust). Children
never outlive it:

* each child runs in its own session (``start_new_session=True``), so it and anything it
  forks share one process group that :meth:`ProcessGroup.stop` signals as a whole
  (SIGTERM, a grace period, then SIGKILL);
* :meth:`ProcessGroup.close` stops all children in reverse start order; it runs from the
  context manager's exit, from :mod:`atexit`, and from a SIGTERM handler this module
  installs (it closes every open group, then exits with status 143 or calls the handler
  that was installed before). SIGINT raises :class:`KeyboardInterrupt` as usual and the
  ``with`` block's exit cleans up;
* on Linux every child gets ``PR_SET_PDEATHSIG = SIGKILL``, so the kernel kills it if
  this process is SIGKILLed. That signal fires when the *thread* that forked the child
  exits, so every group forks its children from one long-lived internal thread that
  lives until :meth:`ProcessGroup.close`: :meth:`ProcessGroup.start` may be called from
  any thread, including short-lived ones;
* a small watchdog process (the "reaper", one per group, in its own session) holds the
  read end of a pipe from this process. If this process dies without closing the group
  (SIGKILL, a crash), the pipe reaches EOF and the reaper kills every child's *process
  group* (which also catches grandchildren that ``PR_SET_PDEATHSIG`` does not cover) and
  removes the run directory unless ``keep=True``.

:meth:`ProcessGroup.dead` lists children that exited without being asked to, so a crashed
replica is noticed and reported (with :meth:`Managed.tail` of its log).

Example::

    with ProcessGroup() as group:
        port = free_port()
        server = group.start("server", [sys.executable, "-m", "http.server", str(port)])
        wait_http(f"http://127.0.0.1:{port}/", timeout_s=10)
        ...
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import requests

from k8s_gpu_rl.errors import BackendError

__all__ = ["Managed", "ProcessGroup", "free_port", "wait_http", "wait_line"]

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 64 * 1024


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now (the OS picks it; a race with others is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_http(
    url: str,
    timeout_s: float,
    ok: Sequence[int] = (200,),
    interval_s: float = 0.1,
    process: Managed | None = None,
) -> None:
    """Poll ``GET url`` until it answers with a status in ``ok``.

    Raises :class:`BackendError` naming the last error (a status or an exception) after
    ``timeout_s`` seconds, or at once if ``process`` is given and has exited (with its log's
    tail).
    """
    deadline = time.monotonic() + timeout_s
    last = "no attempt"
    while True:
        try:
            response = requests.get(url, timeout=max(0.2, min(2.0, timeout_s)))
            if response.status_code in ok:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]!r}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        if process is not None and not process.alive():
            raise BackendError(
                f"{process.name} exited with {process.returncode} while waiting for {url} "
                f"(last: {last}); log tail:\n{process.tail(30)}"
            )
        if time.monotonic() >= deadline:
            tail = f"; {process.name} log tail:\n{process.tail(30)}" if process else ""
            raise BackendError(
                f"{url} not answering {tuple(ok)} after {timeout_s:g} s: {last}{tail}"
            )
        time.sleep(interval_s)


class Managed:
    """A child process of a :class:`ProcessGroup` (create it with :meth:`ProcessGroup.start`)."""

    def __init__(
        self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None, expect_exit: bool
    ) -> None:
        self.name = name
        """The name given to :meth:`ProcessGroup.start` (unique within the group)."""
        self.popen = popen
        """The underlying :class:`subprocess.Popen`."""
        self.log_path = log_path
        """``<rundir>/<name>.log`` holding stdout and stderr, or ``None`` if not logged."""
        self.expect_exit = expect_exit
        """Whether exiting on its own is normal (then :meth:`ProcessGroup.dead` skips it)."""
        self.stopping = False
        """Set once :meth:`ProcessGroup.stop` was called for it."""

    @property
    def pid(self) -> int:
        """Process id (also its process group id: each child leads its own session)."""
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status (negative: killed by that signal), ``None`` while running."""
        return self.popen.poll()

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def tail(self, n: int = 20) -> str:
        """The last ``n`` lines of its log ('' if it has none yet)."""
        if self.log_path is None:
            return "(not logged)"
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - _TAIL_BYTES))
                data = f.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def __repr__(self) -> str:
        return f"Managed({self.name!r}, pid={self.pid}, returncode={self.returncode})"


def wait_line(managed: Managed, pattern: str, timeout_s: float) -> re.Match[str]:
    """Wait until a line of ``managed``'s log matches the regex ``pattern``; return the match.

    Raises :class:`BackendError` with the log's tail if the process exits first or after
    ``timeout_s`` seconds. The child must flush its output (children get
    ``PYTHONUNBUFFERED=1``).
    """
    if managed.log_path is None:
        raise BackendError(f"{managed.name} was started with log=False: no output to wait on")
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout_s
    offset = 0
    pending = b""
    while True:
        exited = not managed.alive()  # read once more after an exit: the line may be there
        try:
            with managed.log_path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            match = regex.search(line.decode("utf-8", "replace"))
            if match:
                return match
        if exited:
            match = regex.search(pending.decode("utf-8", "replace"))
            if match:
                return match
            raise BackendError(
                f"{managed.name} exited with {managed.returncode} before printing a line "
                f"matching {pattern!r}; log tail:\n{managed.tail(30)}"
            )
        if time.monotonic() >= deadline:
            raise BackendError(
                f"{managed.name} printed no line matching {pattern!r} in {timeout_s:g} s; "
                f"log tail:\n{managed.tail(30)}"
            )
        time.sleep(0.05)


# --- death signal ---------------------------------------------------------------------------

_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _prctl = None


def _child_setup(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets ``PR_SET_PDEATHSIG = SIGKILL`` (Linux), else ``None``."""
    prctl = _prctl
    if prctl is None:
        return None

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


# --- the reaper (watchdog for a SIGKILLed parent) -----------------------------------------

_REAPER_SOURCE = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
rundir = sys.argv[1]
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line.startswith("+"):
        groups.add(int(line[1:]))
    elif line.startswith("-"):
        groups.discard(int(line[1:]))
    elif line == "keep":
        rundir = ""
def signal_all(sig):
    alive = set()
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
            alive.add(pgid)
        except ProcessLookupError:
            pass
        except PermissionError:
            pass
    return alive
if groups:
    remaining = signal_all(signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = signal_all(0)
    signal_all(signal.SIGKILL)
if rundir:
    time.sleep(0.2)
    shutil.rmtree(rundir, ignore_errors=True)
"""


# --- the registry of open groups, atexit and SIGTERM ---------------------------------------

_OPEN: list[ProcessGroup] = []
_OPEN_LOCK = threading.RLock()
_HANDLER_INSTALLED = False
_PREVIOUS_SIGTERM: Any = signal.SIG_DFL


def _close_all() -> None:
    with _OPEN_LOCK:
        groups = list(reversed(_OPEN))
    for group in groups:
        with contextlib.suppress(Exception):
            group.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _close_all()
    previous = _PREVIOUS_SIGTERM
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _HANDLER_INSTALLED, _PREVIOUS_SIGTERM
    if _HANDLER_INSTALLED:
        return
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not _on_sigterm:
            _PREVIOUS_SIGTERM = previous
            signal.signal(signal.SIGTERM, _on_sigterm)
        _HANDLER_INSTALLED = True
    # from another thread: atexit only; a later group made on the main thread adds the handler


@dataclass
class _SpawnRequest:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path | None
    cwd: str | os.PathLike[str] | None
    expect_exit: bool
    done: threading.Event = field(default_factory=threading.Event)
    managed: Managed | None = None
    error: BaseException | None = None


class ProcessGroup:
    """Owns a run directory and the child processes started in it; see the module docstring.

    ``keep=True`` leaves the run directory (configs, logs, data) in place after
    :meth:`close`; ``base_dir`` is where the run directory is created (default: the system
    temporary directory); ``reaper=False`` skips the watchdog process (then only
    ``PR_SET_PDEATHSIG`` covers a SIGKILLed parent).
    """

    def __init__(
        self,
        prefix: str = "k8sgpurl-local-",
        keep: bool = False,
        base_dir: str | os.PathLike[str] | None = None,
        reaper: bool = True,
    ) -> None:
        self.rundir = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir))
        """The run directory: configs, logs (``<name>.log``) and data of the children."""
        self.keep = keep
        self._children: list[Managed] = []
        self._lock = threading.RLock()
        self._closed = False
        self._spawner: threading.Thread | None = None
        self._spawn_queue: queue.Queue[_SpawnRequest | None] = queue.Queue()
        self._reaper: subprocess.Popen[bytes] | None = None
        if reaper:
            self._reaper = subprocess.Popen(
                [sys.executable, "-c", _REAPER_SOURCE, str(self.rundir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if keep:
                self._tell_reaper("keep")
        with _OPEN_LOCK:
            _OPEN.append(self)
        _install_handlers()

    # context manager
    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    @property
    def children(self) -> list[Managed]:
        """All children started so far, in start order (stopped ones included)."""
        with self._lock:
            return list(self._children)

    def path(self, name: str) -> Path:
        """``<rundir>/<name>``."""
        return self.rundir / name

    def _tell_reaper(self, line: str) -> None:
        if self._reaper is None or self._reaper.stdin is None:
            return
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._reaper.stdin.write(f"{line}\n".encode())
            self._reaper.stdin.flush()

    def start(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        env: Mapping[str, str] | None = None,
        log: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        expect_exit: bool = False,
    ) -> Managed:
        """Start ``argv`` as a child named ``name`` (unique in the group).

        ``env`` is added to (overrides) this process's environment; ``PYTHONUNBUFFERED=1``
        is set unless ``env`` says otherwise. stdout and stderr go to ``<rundir>/<name>.log``
        (or ``/dev/null`` with ``log=False``). ``expect_exit=True`` marks a child that
        finishes by itself (a load generator) so :meth:`dead` does not report it.
        Raises :class:`BackendError` if the group is closed, the name is taken or the
        executable cannot be started.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", name):
            raise BackendError(f"process name {name!r}: use letters, digits, '_', '.', '@', '-'")
        request = _SpawnRequest(
            name=name,
            argv=[os.fspath(a) for a in argv],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            log_path=self.rundir / f"{name}.log" if log else None,
            cwd=cwd,
            expect_exit=expect_exit,
        )
        with self._lock:
            if self._closed:
                raise BackendError(f"process group {self.rundir} is closed; cannot start {name}")
            if self._spawner is None or not self._spawner.is_alive():
                self._spawner = threading.Thread(
                    target=self._spawn_loop, name=f"spawner-{self.rundir.name}", daemon=True
                )
                self._spawner.start()
            self._spawn_queue.put(request)
            spawner = self._spawner
        while not request.done.wait(0.5):
            if not spawner.is_alive():  # pragma: no cover - the loop catches everything
                raise BackendError(f"the process spawner thread died while starting {name}")
        if request.error is not None:
            raise request.error
        assert request.managed is not None
        return request.managed

    def _spawn_loop(self) -> None:
        """Start requested children from this one long-lived thread (see ``PR_SET_PDEATHSIG``)."""
        while True:
            request = self._spawn_queue.get()
            if request is None:
                return
            try:
                request.managed = self._spawn(request)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                request.error = exc
            finally:
                request.done.set()

    def _spawn(self, request: _SpawnRequest) -> Managed:
        name = request.name
        with self._lock:
            if any(m.name == name for m in self._children):
                raise BackendError(f"a process named {name!r} was already started in this group")
            if self._closed:
                raise BackendError(f"process group {self.rundir} is closed; cannot start {name}")
            out: Any = subprocess.DEVNULL
            if request.log_path is not None:
                out = request.log_path.open("ab")
            try:
                popen = subprocess.Popen(
                    request.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=request.env,
                    cwd=request.cwd,
                    start_new_session=True,
                    preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509 - PDEATHSIG needs it
                )
            except OSError as exc:
                raise BackendError(f"cannot start {name} ({request.argv[0]}): {exc}") from exc
            finally:
                if request.log_path is not None:
                    out.close()
            # registered under the lock: close() either sees it or has not begun
            managed = Managed(name, popen, request.log_path, request.expect_exit)
            self._children.append(managed)
            self._tell_reaper(f"+{popen.pid}")
            return managed

    def stop(self, managed: Managed, grace_s: float = 10.0) -> int | None:
        """Stop a child: SIGTERM to its process group, wait ``grace_s``, then SIGKILL.

        Whatever is left of its process group after the leader exits is killed too. Returns
        the exit status. Safe to call on a child that has already exited.
        """
        managed.stopping = True
        popen = managed.popen
        pgid = popen.pid
        if popen.poll() is None:
            _killpg(pgid, signal.SIGTERM)
            try:
                popen.wait(timeout=max(0.0, grace_s))
            except subprocess.TimeoutExpired:
                _killpg(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=10.0)
        # stragglers in its group (e.g. grandchildren that ignored SIGTERM)
        _killpg(pgid, signal.SIGKILL)
        self._tell_reaper(f"-{pgid}")
        return popen.poll()

    def dead(self) -> list[Managed]:
        """Children that exited although nobody stopped them (and not ``expect_exit``)."""
        with self._lock:
            children = list(self._children)
        return [m for m in children if not m.stopping and not m.expect_exit and not m.alive()]

    def check_alive(self) -> None:
        """Raise :class:`BackendError` naming each unexpectedly dead child with its log tail."""
        dead = self.dead()
        if dead:
            details = "\n".join(
                f"--- {m.name} (pid {m.pid}) exited with {m.returncode}; log tail:\n{m.tail(15)}"
                for m in dead
            )
            raise BackendError(f"{len(dead)} process(es) died: {[m.name for m in dead]}\n{details}")

    def close(self, grace_s: float = 10.0) -> None:
        """Stop every child (reverse start order), end the reaper, remove the run directory.

        Idempotent; the run directory stays if ``keep=True``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            children = list(reversed(self._children))
        try:
            for managed in children:
                with contextlib.suppress(Exception):
                    self.stop(managed, grace_s=grace_s)
        finally:
            self._spawn_queue.put(None)
            spawner = self._spawner
            if spawner is not None and spawner is not threading.current_thread():
                spawner.join(timeout=5.0)
            reaper = self._reaper
            if reaper is not None:
                if reaper.stdin is not None:
                    with contextlib.suppress(OSError, ValueError):
                        reaper.stdin.close()
                try:
                    reaper.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    reaper.kill()
                    reaper.wait()
            if not self.keep:
                shutil.rmtree(self.rundir, ignore_errors=True)
            with _OPEN_LOCK:
                if self in _OPEN:
                    _OPEN.remove(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._children)} children"
        return f"ProcessGroup({str(self.rundir)!r}, {state})"


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:  # pragma: no cover - a reused pgid of another user
        if exc.errno != errno.EPERM:
            raise
