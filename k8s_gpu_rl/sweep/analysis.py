"""``analyze``: per-run efficiency, a summary, and the optimal configuration per task.

Definitions (per run; a run that did not succeed scores 0 on every efficiency):

- **CPU efficiency** = ``cpu_seconds / (cpu_cores x task_execution_time)``: the share of the
  allocated cores the task kept busy while it ran (process CPU time over core-seconds
  allocated), clipped to [0, 1].
- **Memory efficiency** = ``cpu_memory_percent / 100``: peak resident memory over the memory
  limit, clipped to [0, 1].
- **GPU efficiency** = ``gpu_memory_used x 1024 / gpu_memory_mb``: device memory used over
  the gpumem limit, clipped to [0, 1].
- **Overall efficiency** = ``w_cpu x CPU + w_memory x memory + w_gpu x GPU`` with weights
  summing to 1 (default 1/3 each).
- **Cost** = the mean of the configuration's four shares of a reference node (16 cores,
  16 GiB, one 24000 MiB GPU): ``(cpu_cores/16 + memory_gb/16 + gpu_ratio + gpu_memory_mb/24000) / 4``.

``optimal_configurations.json`` gives per task the cheapest configuration whose p95 batch
latency at the target batch size is at most ``latency_ms`` and whose throughput is at least
``throughput`` (ties: the lower latency), and the configuration with the highest overall
efficiency.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from k8s_gpu_rl.io import atomic_write

REFERENCE_NODE = {"cpu_cores": 16.0, "memory_gb": 16.0, "gpu_ratio": 1.0, "gpu_memory_mb": 24000.0}


@dataclass(frozen=True)
class Targets:
    """What "meets the target" means for the cheapest configuration."""

    latency_ms: float = 1000.0
    """Largest acceptable p95 batch latency (ms) at ``batch_size``."""
    throughput: float = 0.0
    """Smallest acceptable throughput (items/s) at ``batch_size``."""
    batch_size: int = 1
    """Batch size the targets refer to."""
    w_cpu: float = 1 / 3
    """Weight of CPU efficiency in the overall score."""
    w_memory: float = 1 / 3
    """Weight of memory efficiency."""
    w_gpu: float = 1 / 3
    """Weight of GPU efficiency."""


def first_batch_size(rows: list[dict[str, str]]) -> int:
    sizes = [
        int(k.rsplit("_b", 1)[1]) for k in (rows[0] if rows else {}) if k.startswith("throughput_b")
    ]
    return min(sizes) if sizes else 1


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _clip(x: float) -> float:
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))


def efficiencies(row: dict[str, Any], t: Targets = Targets()) -> dict[str, float]:
    """The four efficiencies and the cost of one results row (see the module docstring)."""
    cost = sum(_num(row[k]) / v for k, v in REFERENCE_NODE.items()) / len(REFERENCE_NODE)
    if row["status"] != "success":
        return {"cpu_efficiency": 0.0, "memory_efficiency": 0.0, "gpu_efficiency": 0.0,
                "overall_efficiency": 0.0, "cost": cost}  # fmt: skip
    cpu = _clip(
        _num(row["cpu_seconds"]) / (_num(row["cpu_cores"]) * _num(row["task_execution_time"]))
    )
    mem = _clip(_num(row["cpu_memory_percent"]) / 100.0)
    gpu = _clip(_num(row["gpu_memory_used"]) * 1024.0 / _num(row["gpu_memory_mb"]))
    overall = t.w_cpu * cpu + t.w_memory * mem + t.w_gpu * gpu
    return {"cpu_efficiency": cpu, "memory_efficiency": mem, "gpu_efficiency": gpu,
            "overall_efficiency": overall, "cost": cost}  # fmt: skip


def analyse(rows: list[dict[str, str]], targets: Targets = Targets()) -> pd.DataFrame:
    """One analysis row per results row: identity, limits, status, efficiencies, figures."""
    out = []
    b = targets.batch_size
    for row in rows:
        rec: dict[str, Any] = {k: row[k] for k in ("pod_name", "task", "configuration", "status")}
        rec.update({k: _num(row[k]) for k in REFERENCE_NODE})
        rec.update(efficiencies(row, targets))
        rec["latency_mean_ms"] = _num(row.get(f"latency_mean_ms_b{b}"))
        rec["latency_p95_ms"] = _num(row.get(f"latency_p95_ms_b{b}"))
        rec["throughput"] = _num(row.get(f"throughput_b{b}"))
        rec["meets_target"] = bool(
            row["status"] == "success"
            and rec["latency_p95_ms"] <= targets.latency_ms
            and rec["throughput"] >= targets.throughput
        )
        rec["error_message"] = row.get("error_message", "")
        out.append(rec)
    return pd.DataFrame(out)


def optimal(table: pd.DataFrame, targets: Targets) -> dict[str, Any]:
    """Per task: the cheapest configuration meeting the targets, and the most efficient."""
    result: dict[str, Any] = {"targets": asdict(targets), "tasks": {}}
    for task, group in table.groupby("task", sort=False):
        ok = group[group["meets_target"]].sort_values(["cost", "latency_p95_ms"])
        done = group[group["status"] == "success"].sort_values(
            ["overall_efficiency", "cost"], ascending=[False, True]
        )
        result["tasks"][task] = {
            "cheapest_meeting_target": _pick(ok.iloc[0]) if len(ok) else None,
            "most_efficient": _pick(done.iloc[0]) if len(done) else None,
            "candidates_meeting_target": list(ok["configuration"]),
        }
    return result


def _pick(r: pd.Series) -> dict[str, Any]:
    keys = ("configuration", "cost", "latency_p95_ms", "throughput", "overall_efficiency")
    out = {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in keys}
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Counts by status and mean efficiencies, per task and in all."""

    def part(g: pd.DataFrame) -> dict[str, Any]:
        ok = g[g["status"] == "success"]
        eff = ["cpu_efficiency", "memory_efficiency", "gpu_efficiency", "overall_efficiency"]
        return {
            "runs": int(len(g)),
            "by_status": {str(k): int(v) for k, v in g["status"].value_counts().items()},
            "mean_of_successful": {k: _finite(ok[k].mean()) for k in eff},
            "fastest_p95_ms": _finite(ok["latency_p95_ms"].min()),
        }

    return {"all": part(table), "tasks": {t: part(g) for t, g in table.groupby("task", sort=False)}}


def _finite(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def write_outputs(out: Path, table: pd.DataFrame, targets: Targets) -> None:
    """experiment_analysis.csv, experiment_summary.json, optimal_configurations.json."""
    atomic_write(out / "experiment_analysis.csv", lambda tmp: table.to_csv(tmp, index=False))
    for name, obj in (("experiment_summary.json", summary(table)),
                      ("optimal_configurations.json", optimal(table, targets))):  # fmt: skip
        text = json.dumps(obj, indent=2, default=_json_default) + "\n"
        atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")
