"""Backends that run sweep experiments: ``k8s`` (Pods on a cluster), ``local`` (child
processes under limits on this machine), ``sim`` (the simulator's serving model).

Each runner has ``run(experiment) -> Outcome``; :func:`result_row` turns an outcome into a
row of ``experiment_results.csv``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from k8s_gpu_rl.sweep.configs import ResourceConfiguration
from k8s_gpu_rl.sweep.worker import RESULT_PREFIX

BACKENDS = ("k8s", "local", "sim")


@dataclass(frozen=True)
class Experiment:
    """One configuration x task, as ``experiment_manifest.json`` lists it."""

    pod_name: str
    task: str
    config: ResourceConfiguration
    manifest: dict[str, Any] = field(default_factory=dict)
    """The rendered Pod (used by the k8s backend)."""


@dataclass
class Outcome:
    """What a backend observed for one experiment."""

    status: str
    """One of results.STATUSES."""
    error_message: str = ""
    total_time: float = 0.0
    """Wall-clock seconds from start (Pod creation, process start) to the end."""
    result: dict[str, Any] = field(default_factory=dict)
    """The worker's SWEEP_RESULT (empty when it printed none)."""


def parse_result(text: str) -> dict[str, Any]:
    """The last ``SWEEP_RESULT {json}`` line of a worker's output ({} when there is none)."""
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                return json.loads(line[len(RESULT_PREFIX) :])
            except json.JSONDecodeError:
                return {}
    return {}


def last_lines(text: str, n: int = 3, limit: int = 400) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-limit:]


def result_row(
    exp: Experiment, outcome: Outcome, backend: str, batch_sizes: list[int], repeats: int
) -> dict[str, Any]:
    """A row of experiment_results.csv (see :mod:`k8s_gpu_rl.sweep.results`)."""
    r, c = outcome.result, exp.config
    gpu_mib = r.get("gpu_memory_used_mib")
    row: dict[str, Any] = {
        "pod_name": exp.pod_name,
        "task": exp.task,
        "cpu_cores": c.cpu_cores,
        "memory_gb": c.memory_gb,
        "gpu_ratio": c.gpu_ratio,
        "gpu_memory_mb": c.gpumem_mib,
        "total_time": outcome.total_time,
        "task_execution_time": r.get("task_execution_time"),
        "gpu_memory_used": gpu_mib / 1024.0 if gpu_mib is not None else None,
        "cpu_memory_percent": r.get("cpu_memory_percent"),
        "status": outcome.status,
        "error_message": outcome.error_message,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "configuration": c.name,
        "gpucores": c.gpucores,
        "backend": backend,
        "device": r.get("device"),
        "repeats": repeats,
        "threads": r.get("threads"),
        "startup_s": r.get("startup_s"),
        "cpu_ms_per_request": r.get("cpu_ms_per_request"),
        "cpu_seconds": r.get("cpu_seconds"),
        "peak_memory_mb": r.get("peak_rss_mib"),
        "weights_mb": r.get("weights_mib"),
        "gpu_memory_used_mb": gpu_mib,
    }
    for b in batch_sizes:
        stats = r.get("latency", {}).get(str(b))
        if stats:
            row[f"latency_mean_ms_b{b}"] = stats["mean_ms"]
            row[f"latency_p50_ms_b{b}"] = stats["p50_ms"]
            row[f"latency_p95_ms_b{b}"] = stats["p95_ms"]
            row[f"throughput_b{b}"] = stats["throughput"]
    return row
