"""``fit``: a task's measurements -> the ``serving:`` section of a simulated cluster.

From one reference configuration (default: the most gpucores, then CPU cores, then
memory, among successful runs) it takes the mean batch latency L(b) at every measured
batch size, turns it into work at the whole GPU, w(b) = L(b) x share (the lone pod's
effective share, :func:`~k8s_gpu_rl.sweep.serving_model.effective_share`; 1 at gpucores
100), and fits w(b) = batch_base_ms + batch_per_item_ms x b by least squares (the
intercept held at 0.001 ms when the free fit would make it negative). The other figures
are read directly: ``cpu_ms_per_request`` (median preprocessing of one image),
``model_memory_mib`` (device memory used), the start-up median (import and model build).
:func:`fitted_cluster` puts them into a whole cluster config (the rest from
``--base-cluster``) that :func:`~k8s_gpu_rl.envs.sim.config.load_cluster_config` loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from k8s_gpu_rl.config import from_dict, suggest, to_dict
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.io import write_text
from k8s_gpu_rl.sweep.serving_model import batch_ms, effective_share

MIN_BASE_MS = 0.001


@dataclass
class FitResult:
    """The fitted serving figures of one task and how well they reproduce the data."""

    task: str
    reference: str
    gpucores: int
    device: str
    batch_base_ms: float
    batch_per_item_ms: float
    cpu_ms_per_request: float
    model_memory_mib: int
    startup_s: float
    host_memory_mib: float
    max_batch_size: int
    fitted_batch_sizes: list[int]
    measured_ms: dict[int, float] = field(default_factory=dict)
    """Mean batch latency measured at the reference configuration, every batch size."""

    def predicted_ms(self, batch: int, cluster: ClusterConfig) -> float:
        return batch_ms(cluster, self.gpucores, batch)

    def errors(self, cluster: ClusterConfig) -> dict[int, float]:
        """Relative error (predicted / measured - 1) of the fitted cluster, per batch size."""
        return {b: self.predicted_ms(b, cluster) / m - 1.0 for b, m in self.measured_ms.items()}

    def to_json(self, cluster: ClusterConfig | None = None) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "measured_ms"}
        out["measured_ms"] = {str(b): v for b, v in self.measured_ms.items()}
        if cluster is not None:
            out["relative_error"] = {str(b): e for b, e in self.errors(cluster).items()}
        return out

    def describe(self, cluster: ClusterConfig | None = None) -> str:
        lines = [
            f"{self.task} at {self.reference} (gpucores {self.gpucores}, {self.device}): "
            f"batch = {self.batch_base_ms:.3g} ms + {self.batch_per_item_ms:.3g} ms/item, "
            f"CPU {self.cpu_ms_per_request:.3g} ms/request, model {self.model_memory_mib} MiB, "
            f"start-up {self.startup_s:.3g} s"
        ]
        if cluster is not None:
            for b, e in self.errors(cluster).items():
                tag = "fitted" if b in self.fitted_batch_sizes else "held out"
                lines.append(
                    f"  batch {b:>3}: measured {self.measured_ms[b]:9.2f} ms, simulated "
                    f"{self.predicted_ms(b, cluster):9.2f} ms ({e:+.1%}, {tag})"
                )
        return "\n".join(lines)


def _batch_sizes(row: dict[str, str]) -> list[int]:
    sizes = [int(k.rsplit("_b", 1)[1]) for k in row if k.startswith("latency_mean_ms_b")]
    return sorted(b for b in sizes if row[f"latency_mean_ms_b{b}"] != "")


def _reference_row(rows: list[dict[str, str]], task: str, reference: str | None) -> dict:
    ok = [r for r in rows if r["task"] == task and r["status"] == "success" and _batch_sizes(r)]
    if not ok:
        tasks = sorted({r["task"] for r in rows})
        raise ConfigError(
            f"no successful runs of task {task!r}{suggest(task, tasks)}; have {tasks}"
        )
    if reference is None:
        return max(ok, key=lambda r: (float(r["gpucores"]), float(r["cpu_cores"]),
                                      float(r["memory_gb"])))  # fmt: skip
    for r in ok:
        if r["configuration"] == reference:
            return r
    names = sorted(r["configuration"] for r in ok)
    raise ConfigError(
        f"no successful run of {task!r} at configuration {reference!r}{suggest(reference, names)}"
        f"; successful: {', '.join(names)}"
    )


def linear_fit(batches: list[int], work_ms: list[float]) -> tuple[float, float]:
    """Least-squares ``work = base + per_item * b`` with ``base >= MIN_BASE_MS``."""
    b, w = np.asarray(batches, float), np.asarray(work_ms, float)
    if len(set(batches)) >= 2:
        per_item, base = np.polyfit(b, w, 1)
        if base >= MIN_BASE_MS and per_item >= 0:
            return float(base), float(per_item)
    if len(set(batches)) == 1:
        return max(MIN_BASE_MS, float(w.mean())), 0.0
    per_item = float(np.sum(b * (w - MIN_BASE_MS)) / np.sum(b * b))
    return MIN_BASE_MS, max(0.0, per_item)


def fit_task(
    rows: list[dict[str, str]],
    task: str,
    reference: str | None = None,
    max_batch_size: int | None = None,
    fit_batch_sizes: list[int] | None = None,
    base_cluster: str = "rtx3080",
) -> FitResult:
    """Fit ``task``'s serving figures (see the module docstring); ``fit_batch_sizes``
    restricts the fit to some batch sizes so the others can be held out."""
    row = _reference_row(rows, task, reference)
    sizes = _batch_sizes(row)
    measured = {b: float(row[f"latency_mean_ms_b{b}"]) for b in sizes}
    used = [b for b in sizes if fit_batch_sizes is None or b in fit_batch_sizes]
    if not used:
        raise ConfigError(f"none of the batch sizes {fit_batch_sizes} was measured; have {sizes}")
    gpucores = int(float(row["gpucores"]))
    share = effective_share(load_cluster_config(base_cluster), gpucores)
    base, per_item = linear_fit(used, [measured[b] * share for b in used])
    return FitResult(
        task=task, reference=row["configuration"], gpucores=gpucores, device=row["device"],
        batch_base_ms=base, batch_per_item_ms=per_item,
        cpu_ms_per_request=float(row["cpu_ms_per_request"] or 0.0),
        model_memory_mib=max(1, math.ceil(float(row["gpu_memory_used_mb"] or 1.0))),
        startup_s=float(row["startup_s"] or 1.0),
        host_memory_mib=float(row["peak_memory_mb"] or 0.0),
        max_batch_size=max_batch_size or max(sizes), fitted_batch_sizes=used,
        measured_ms=measured,
    )  # fmt: skip


def fitted_cluster(result: FitResult, base: str = "rtx3080") -> ClusterConfig:
    """``base`` with the fitted serving figures, start-up median and a gpumem that fits."""
    data = to_dict(load_cluster_config(base))
    data["name"] = f"{data['name']}-{result.task}"
    data["serving"].update(
        model_name=result.task,
        max_batch_size=result.max_batch_size,
        batch_base_ms=round(result.batch_base_ms, 6),
        batch_per_item_ms=round(result.batch_per_item_ms, 6),
        model_memory_mib=result.model_memory_mib,
        cpu_ms_per_request=round(result.cpu_ms_per_request, 6),
    )
    data["startup"]["median_s"] = round(result.startup_s, 3)
    need = math.ceil((result.model_memory_mib + 256) / 512) * 512  # headroom, in 512 MiB steps
    data["deployment"]["gpumem_mib"] = max(data["deployment"]["gpumem_mib"], need)
    return from_dict(ClusterConfig, data, f"fitted cluster for {result.task}")


def write_cluster_yaml(path: Path, cluster: ClusterConfig, result: FitResult) -> None:
    """The whole cluster config as YAML, with a header saying where the figures come from."""
    head = [
        f"# Fitted by `python -m sweep fit --task {result.task}` from configuration "
        f"{result.reference} (gpucores {result.gpucores}, device {result.device}).",
        f"# serving: batch time {result.batch_base_ms:.4g} ms + {result.batch_per_item_ms:.4g} "
        f"ms/item at the whole GPU, fitted on batch sizes {result.fitted_batch_sizes}.",
    ]
    if result.device == "cpu":
        head.append("# The timings are CPU timings (no GPU where they were measured): scale "
                    "nodes[].gpus[].speed for a real GPU.")  # fmt: skip
    head += [f"# {line}" for line in result.describe(cluster).splitlines()[1:]]
    text = "\n".join(head) + "\n" + yaml.safe_dump(to_dict(cluster), sort_keys=False)
    write_text(path, text)
