"""``experiment_results.csv``: one row per experiment, written row by row and atomically.

The user's columns come first (``USER_COLUMNS``), then the sweep's own: the backend,
repeats, start-up time, CPU time per request, and per batch size b the latency mean /
p50 / p95 (ms) and throughput (items/s) as ``latency_mean_ms_b<b>`` ... ``throughput_b<b>``.
Every append rewrites the whole file through :func:`k8s_gpu_rl.io.atomic_write`, so an
interrupted sweep leaves a complete file and ``run`` resumes after its last row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.io import atomic_write

USER_COLUMNS = (
    "pod_name",
    "task",
    "cpu_cores",
    "memory_gb",
    "gpu_ratio",
    "gpu_memory_mb",
    "total_time",
    "task_execution_time",
    "gpu_memory_used",
    "cpu_memory_percent",
    "status",
    "error_message",
    "timestamp",
)
"""The user's own results columns (SEEDS.md A); ``gpu_memory_used`` is in GB."""
EXTRA_COLUMNS = (
    "configuration",
    "gpucores",
    "backend",
    "device",
    "repeats",
    "threads",
    "startup_s",
    "cpu_ms_per_request",
    "cpu_seconds",
    "peak_memory_mb",
    "weights_mb",
    "gpu_memory_used_mb",
)
STATUSES = ("success", "failed", "OOM", "GPU-OOM", "unschedulable")
"""success; failed (any other error, a timeout included); OOM (host memory: the kernel's
OOM kill, reason OOMKilled); GPU-OOM (CUDA out of memory under nvidia.com/gpumem: the
container exits with reason Error); unschedulable (Pending: the scheduler's reason)."""


def batch_columns(batch_sizes: Iterable[int]) -> list[str]:
    cols = []
    for b in batch_sizes:
        cols += [f"latency_mean_ms_b{b}", f"latency_p50_ms_b{b}", f"latency_p95_ms_b{b}"]
        cols.append(f"throughput_b{b}")
    return cols


def columns(batch_sizes: Iterable[int]) -> list[str]:
    """Every column of a sweep measured at ``batch_sizes``."""
    return [*USER_COLUMNS, *EXTRA_COLUMNS, *batch_columns(batch_sizes)]


class ResultsWriter:
    """Rows of ``experiment_results.csv``; existing rows are kept (resume)."""

    def __init__(self, path: str | Path, batch_sizes: Iterable[int]) -> None:
        self.path = Path(path)
        self.columns = columns(batch_sizes)
        self.rows: list[dict[str, str]] = read_rows(self.path) if self.path.exists() else []
        if self.rows and list(self.rows[0]) != self.columns:
            raise ConfigError(
                f"{self.path}: its columns differ from this sweep's (other batch sizes?); "
                "use another --out or the same settings"
            )

    def done(self) -> set[str]:
        """Pod names that already have a row."""
        return {r["pod_name"] for r in self.rows}

    def append(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        self.rows.append({c: _text(row.get(c, "")) for c in self.columns})
        atomic_write(self.path, self._write)

    def _write(self, tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
