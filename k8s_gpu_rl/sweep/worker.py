"""One sweep experiment in one process: build a task's model, time it, print the result.

    python -m k8s_gpu_rl.sweep.worker --task captioning [--batch-sizes 1,4,8] [--repeats 3]
        [--cpu-cores 2] [--memory-limit-bytes N] [--gpucores 25] [--gpumem-mib 6000]
        [--emulate-gpu] [--seed 0]

This is the command of every generated Pod and the child process of the ``local`` backend.
The last line of its output is ``SWEEP_RESULT {json}`` (:data:`RESULT_PREFIX`), with the
figures described in :func:`measure`. Exit status: 0 success, 1 failure (a CUDA
out-of-memory included: HAMi-core makes the allocation fail, the container ends with reason
``Error``), 137 when the host memory ran out (as the kernel's OOM kill reports it).

Limits: on Kubernetes the kubelet (CPU, memory) and HAMi-core (gpucores, gpumem) enforce
them; the worker only sizes its thread pool to ``--cpu-cores``. With ``--emulate-gpu``
(the ``local`` backend on a machine without a GPU) the worker stands in for HAMi-core:
``gpucores`` through the local testbed's token-bucket :class:`ComputeShareLimiter`
around every batch, ``gpumem`` by failing like CUDA when the model's device footprint
(weights and buffers, then the peak working set of a batch) exceeds the limit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from typing import Any

import numpy as np

RESULT_PREFIX = "SWEEP_RESULT "
EXIT_FAILED, EXIT_OOM = 1, 137
MIB = 2**20


class GpuOutOfMemory(RuntimeError):
    """The device memory limit (nvidia.com/gpumem) is exceeded."""


def _rss_mib() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _weights_mib(model: Any) -> float:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


def _check_gpumem(used_mib: float, limit_mib: int | None) -> None:
    if limit_mib is not None and used_mib > limit_mib:
        raise GpuOutOfMemory(
            f"CUDA out of memory (emulated HAMi-core): Device 0 OOM "
            f"{int(used_mib * MIB)} / {int(limit_mib * MIB)}"
        )


def _threads(cpu_cores: float | None) -> int:
    allowed = len(os.sched_getaffinity(0))
    wanted = math.floor(cpu_cores) if cpu_cores else allowed
    return max(1, min(wanted, allowed))


def _latency_stats(times_s: list[float], batch: int) -> dict[str, float]:
    ms = np.asarray(times_s) * 1000.0
    mean = float(ms.mean())
    return {
        "mean_ms": mean,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "min_ms": float(ms.min()),
        "throughput": batch / (mean / 1000.0),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up and time the task. Figures: ``startup_s`` (import and build),
    ``cpu_ms_per_request`` (median preprocessing of one image), per batch size the
    latency mean / p50 / p95 / min of ``repeats`` timed batches and the throughput
    (items / mean latency; the timed batches run back to back after a warm-up),
    ``task_execution_time`` (all timed work), ``cpu_seconds``
    (process CPU time during it), ``peak_rss_mib``, ``weights_mib``, ``gpu_memory_used_mib``
    (device memory: CUDA's peak allocation, or on a CPU the weights plus the batch's extra
    working set), ``device`` and ``threads``."""
    t0 = time.perf_counter()
    import torch

    from k8s_gpu_rl.sweep.tasks import get_task, synthetic_image

    threads = _threads(args.cpu_cores)
    torch.set_num_threads(threads)
    task = get_task(args.task)
    device = "cuda" if torch.cuda.is_available() and not args.emulate_gpu else "cpu"
    if device == "cuda" and args.gpumem_mib:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpumem_mib * MIB / total))
    emulated_limit = args.gpumem_mib if device == "cpu" and args.emulate_gpu else None
    torch.manual_seed(args.seed)
    model = task.build()
    weights = _weights_mib(model)
    _check_gpumem(weights, emulated_limit)
    model = model.to(device)
    rss_loaded = _current_rss_mib()
    startup_s = time.perf_counter() - t0
    limiter = _limiter(args.gpucores if args.emulate_gpu else None)

    image = synthetic_image(seed=args.seed)
    pre_ms = []
    for _ in range(max(3, args.repeats)):
        t = time.perf_counter()
        item = task.preprocess(image)
        pre_ms.append((time.perf_counter() - t) * 1000.0)
    latency: dict[str, dict[str, float]] = {}
    t_exec, cpu0 = time.perf_counter(), _cpu_s()
    with torch.inference_mode():
        for b in args.batch_sizes:
            batch = item.unsqueeze(0).repeat(b, 1, 1, 1).contiguous().to(device)
            _warm_up(task, model, batch, limiter, device)
            times = [_run_batch(task, model, batch, limiter, device) for _ in range(args.repeats)]
            latency[str(b)] = _latency_stats(times, b)
    exec_s, cpu_s = time.perf_counter() - t_exec, _cpu_s() - cpu0
    if device == "cuda":
        gpu_used = torch.cuda.max_memory_allocated() / MIB
    else:
        gpu_used = weights + max(0.0, _rss_mib() - rss_loaded)
    _check_gpumem(gpu_used, emulated_limit)
    return {
        "status": "success",
        "error_message": "",
        "startup_s": startup_s,
        "cpu_ms_per_request": float(np.median(pre_ms)),
        "latency": latency,
        "task_execution_time": exec_s,
        "cpu_seconds": cpu_s,
        "peak_rss_mib": _rss_mib(),
        "weights_mib": weights,
        "gpu_memory_used_mib": gpu_used,
        "device": device,
        "threads": threads,
    }


def _limiter(gpucores: int | None) -> Any:
    if not gpucores or gpucores >= 100:
        return None
    from k8s_gpu_rl.envs.backends.local.server import ComputeShareLimiter

    return ComputeShareLimiter(gpucores / 100.0)


def _warm_up(task: Any, model: Any, batch: Any, limiter: Any, device: str) -> None:
    """One untimed batch; with a limiter, as many more as empty its token bucket, so the
    timed batches see the steady state of back-to-back work (HAMi-core's bucket starts
    full: a light load is not throttled)."""
    first = _run_batch(task, model, batch, limiter, device)
    if limiter is not None:
        for _ in range(min(50, math.ceil(limiter.capacity / max(first, 1e-4)) + 1)):
            _run_batch(task, model, batch, limiter, device)


def _run_batch(task: Any, model: Any, batch: Any, limiter: Any, device: str) -> float:
    t = time.perf_counter()
    if limiter is not None:
        limiter.acquire()
    busy_t = time.perf_counter()
    task.infer(model, batch)
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    if limiter is not None:
        limiter.release(time.perf_counter() - busy_t)
    return time.perf_counter() - t


def _is_host_oom(exc: BaseException) -> bool:
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or "can't allocate memory" in text
        or ("DefaultCPUAllocator" in text)
    )


def _batch_sizes(text: str) -> list[int]:
    sizes = [int(t) for t in text.split(",") if t.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"need positive batch sizes, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m k8s_gpu_rl.sweep.worker")
    p.add_argument("--task", required=True)
    p.add_argument("--batch-sizes", type=_batch_sizes, default=[1, 4, 8])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpu-cores", type=float)
    p.add_argument("--memory-limit-bytes", type=int, help="for cpu_memory_percent")
    p.add_argument("--gpucores", type=int)
    p.add_argument("--gpumem-mib", type=int)
    p.add_argument("--emulate-gpu", action="store_true", help="stand in for HAMi-core on a CPU")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = 0
    try:
        result = measure(args)
    except ModuleNotFoundError as exc:
        hint = " (pip install 'k8s-gpu-rl[sweep]')" if exc.name == "transformers" else ""
        result, code = {"status": "failed", "error_message": f"{exc}{hint}"}, EXIT_FAILED
    except GpuOutOfMemory as exc:
        result, code = {"status": "GPU-OOM", "error_message": str(exc)}, EXIT_FAILED
    except (MemoryError, RuntimeError) as exc:
        if not _is_host_oom(exc):
            raise
        result = {"status": "OOM", "error_message": f"host memory: {str(exc)[:300]}"}
        code = EXIT_OOM
    if args.memory_limit_bytes:
        result["cpu_memory_percent"] = 100.0 * _rss_mib() * MIB / args.memory_limit_bytes
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
