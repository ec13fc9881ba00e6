"""The request-by-request serving kernel: ``kernel.c``, compiled on first use, via ctypes.

One call of :func:`run_until` advances closed-loop Locust users, kube-proxy load
balancing, each pod's HTTP front end (CPU), Triton's dynamic batcher and the GPU to a
given instant (``kernel.c`` documents the model). Pod lifecycle (scheduling, start-up,
rolling updates, faults) is decided in ``k8s_gpu_rl.envs.sim.cluster``; it only writes the instants
a pod accepts traffic, stops accepting it, or dies.

Why C: the simulator must run about 2 million requests a second to give PPO 1,000
environment steps a second on the ``high`` profile, and one environment must fit in
150 MB. A numba version of this kernel reached 0.6 of that speed and needed 130 MB for
LLVM alone. The C file has no dependencies; it is compiled once per source version with
the system's C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into the per-user cache
(:func:`cache_dirs`: ``$K8SGPURL_CACHE``, else ``$XDG_CACHE_HOME/k8s-gpu-rl``, else
``~/.cache/k8s-gpu-rl``). ``kernel.c`` ships in the wheel as package data.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from k8s_gpu_rl.cache import user_cache_dir
from k8s_gpu_rl.envs.sim.state import N_COUNTERS, ServingState
from k8s_gpu_rl.errors import BackendError

DONE = 0
RECORDS_FULL = 1
HEAP_OVERFLOW = 2

SOURCE = Path(__file__).with_name("kernel.c")
CFLAGS = ("-O2", "-std=c11", "-fPIC", "-shared", "-fno-fast-math", "-D_DEFAULT_SOURCE")

_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double


class CState(ctypes.Structure):
    """Mirror of ``State`` in kernel.c (pointers into the ServingState arrays)."""

    _fields_ = [
        ("params", _P),
        ("rng", _P),
        ("ctr", _P),
        ("now", _P),
        ("events", _P),
        ("u_active", _P),
        ("u_gen", _P),
        ("u_waiting", _P),
        ("u_send_t", _P),
        ("u_pod", _P),
        ("n_users", _I),
        ("h_t", _P),
        ("h_u", _P),
        ("h_g", _P),
        ("heap_cap", _I),
        ("p_accept_from", _P),
        ("p_accept_until", _P),
        ("p_kill_at", _P),
        ("p_share", _P),
        ("p_gpu", _P),
        ("p_cpu_servers", _P),
        ("p_cpu_s", _P),
        ("p_busy_until", _P),
        ("p_bucket", _P),
        ("p_bucket_t", _P),
        ("p_next", _P),
        ("p_batch_n", _P),
        ("p_batch_t", _P),
        ("p_head", _P),
        ("p_tail", _P),
        ("q_enq", _P),
        ("q_arr", _P),
        ("q_user", _P),
        ("q_gen", _P),
        ("q_cap", _I),
        ("cpu_free", _P),
        ("cpu_k", _I),
        ("pod_counters", _P),
        ("n_counters", _I),
        ("g_speed", _P),
        ("g_work_s", _P),
        ("g_hist", _P),
        ("n_gpus", _I),
        ("rec_t", _P),
        ("rec_lat_s", _P),
        ("rec_ok", _P),
        ("rec_cap", _I),
        ("timeout_next", _P),
        ("tenant", _P),
        ("u_stage", _P),
        ("u_kind", _P),
        ("l_free", _P),
        ("n_procs", _I),
        ("rec_kind", _P),
    ]


def c_state(s: ServingState) -> CState:
    """A :class:`CState` pointing into ``s`` (keep ``s`` alive while it is used)."""
    sizes = {
        "n_users": s.u_gen.shape[0],
        "heap_cap": s.h_t.shape[0],
        "q_cap": s.q_enq.shape[1],
        "cpu_k": s.cpu_free.shape[1],
        "n_counters": N_COUNTERS,
        "n_gpus": s.g_work_s.shape[0],
        "rec_cap": s.rec_t.shape[0],
        "n_procs": s.l_free.shape[0],
    }
    fields = {}
    for name, kind in CState._fields_:
        if kind is _I:
            fields[name] = sizes[name]
        else:
            array = getattr(s, name)
            assert array.flags.c_contiguous, name
            fields[name] = array.ctypes.data
    return CState(**fields)


def cache_dirs() -> list[Path]:
    """Where the compiled kernel is looked for and built, in order: the per-user cache
    (:func:`k8s_gpu_rl.cache.user_cache_dir`), then the temporary directory (for a home
    that is read-only)."""
    return [user_cache_dir(), Path(tempfile.gettempdir()) / f"k8s-gpu-rl-{os.getuid()}"]


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise BackendError(
        "the simulator's kernel needs a C compiler and none was found (tried $CC, cc, gcc, "
        "clang): install one, e.g. `apt-get install gcc`"
    )


def _build(target: Path) -> None:
    from k8s_gpu_rl.io import atomic_write

    def compile_to(tmp: Path) -> None:
        cmd = [_compiler(), *CFLAGS, "-o", str(tmp), str(SOURCE), "-lm"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise BackendError(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{out.stderr}")

    # atomic: concurrent workers never load a half-written library
    atomic_write(target, compile_to)


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The compiled kernel, built if no library of the current source exists yet."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    name = f"libsimkernel-{digest}.so"
    errors = []
    for folder in cache_dirs():
        path = folder / name
        try:
            if not path.exists():
                _build(path)
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            errors.append(f"{folder}: {exc}")
            continue
        _declare(lib)
        return lib
    raise BackendError("cannot build or load the simulator's kernel: " + "; ".join(errors))


def _declare(lib: ctypes.CDLL) -> None:
    ptr = ctypes.POINTER(CState)
    lib.run_until.argtypes = [ptr, _D, _P, _P, _I]
    lib.run_until.restype = ctypes.c_int
    lib.refresh_pod.argtypes = [ptr, _I]
    lib.refresh_pod.restype = None
    lib.kill_now.argtypes = [ptr, _I, _D]
    lib.kill_now.restype = None
    lib.rates.argtypes = [_P, _P, _I, _I, _D, _D, _P]
    lib.rates.restype = None
    lib.sum_rates.argtypes = [_P, _P, _P, _I, _I, _I, _D, _D, _P]
    lib.sum_rates.restype = None


def run_until(cs: CState, t_end: float, ev_t: np.ndarray, ev_users: np.ndarray) -> int:
    """Advance to ``t_end``; ``ev_t``/``ev_users`` are the profile's user-count changes.

    Returns ``DONE``, ``RECORDS_FULL`` (grow the record buffers, rebuild the CState, call
    again: the state resumes exactly) or ``HEAP_OVERFLOW`` (an internal sizing bug).
    """
    return library().run_until(
        ctypes.byref(cs), t_end, _address(ev_t), _address(ev_users), ev_t.shape[0]
    )


def refresh_pod(cs: CState, pod: int) -> None:
    """Recompute a pod's next event after the cluster changed its fields."""
    library().refresh_pod(ctypes.byref(cs), pod)


def kill_now(cs: CState, pod: int, t: float) -> None:
    """The pod's container dies at ``t``: every request it holds fails."""
    library().kill_now(ctypes.byref(cs), pod, t)


def rates(
    times: np.ndarray, values: np.ndarray, range_start: float, range_end: float
) -> np.ndarray:
    """Prometheus ``rate()`` of each column of ``values`` (rows: samples at ``times``)."""
    times = np.ascontiguousarray(times, dtype=np.float64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty(values.shape[1])
    library().rates(
        times.ctypes.data,
        values.ctypes.data,
        values.shape[0],
        values.shape[1],
        range_start,
        range_end,
        out.ctypes.data,
    )
    return out


def sum_rates(
    times: np.ndarray,
    block: np.ndarray,
    range_start: float,
    range_end: float,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """``sum(rate(...))`` over series for each counter of ``block[sample, series, counter]``.

    ``rows`` (int64) picks and orders the samples of ``times``/``block`` in place (a ring
    buffer is read without copying); by default every row, in order.
    """
    times = np.ascontiguousarray(times, dtype=np.float64)
    block = np.ascontiguousarray(block, dtype=np.float64)
    if rows is None:
        rows = np.arange(block.shape[0], dtype=np.int64)
    return sum_rates_at(_address(times), _address(block), block.shape, rows, range_start, range_end)


def sum_rates_at(
    times_ptr: int,
    block_ptr: int,
    shape: tuple[int, ...],
    rows: np.ndarray,
    range_start: float,
    range_end: float,
) -> np.ndarray:
    """:func:`sum_rates` on arrays given by address (callers with fixed buffers keep them)."""
    rows = np.ascontiguousarray(rows, np.int64)
    out = np.empty(shape[2])
    library().sum_rates(
        times_ptr,
        block_ptr,
        _address(rows),
        rows.shape[0],
        shape[1],
        shape[2],
        range_start,
        range_end,
        _address(out),
    )
    return out


def _address(array: np.ndarray) -> int:
    """The data address of a C-contiguous array (cheaper than ``array.ctypes.data``)."""
    return array.__array_interface__["data"][0]
