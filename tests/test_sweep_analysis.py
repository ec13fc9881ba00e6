"""``analyze``: the efficiency arithmetic against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8s_gpu_rl.sweep.analysis import Targets, analyse, efficiencies, optimal, summary
from k8s_gpu_rl.sweep.cli import main
from k8s_gpu_rl.sweep.results import ResultsWriter


def _row(config: str, cpu: float, mem_gb: float, ratio: float, gpumem: int, **kw: object) -> dict:
    row = {
        "pod_name": f"sweep-t-{config}", "task": "t", "configuration": config,
        "cpu_cores": str(cpu), "memory_gb": str(mem_gb), "gpu_ratio": str(ratio),
        "gpu_memory_mb": str(gpumem), "status": "success", "error_message": "",
        "cpu_seconds": "3", "task_execution_time": "2", "cpu_memory_percent": "50",
        "gpu_memory_used": "1.5", "latency_mean_ms_b1": "80", "latency_p95_ms_b1": "100",
        "throughput_b1": "12.5",
    }  # fmt: skip
    row.update({k: str(v) for k, v in kw.items()})
    return row


def test_efficiencies_by_hand() -> None:
    # 3 CPU-seconds over 2 cores x 2 s = 0.75; 50 % of the memory limit = 0.5;
    # 1.5 GB = 1536 MiB of a 6144 MiB gpumem = 0.25; overall (0.75 + 0.5 + 0.25) / 3 = 0.5
    # cost: (2/16 + 2/16 + 0.5 + 12000/24000) / 4 = (0.125 + 0.125 + 0.5 + 0.5) / 4 = 0.3125
    e = efficiencies(_row("a", 2, 2, 0.5, 6144, gpu_memory_mb=6144))
    assert e["cpu_efficiency"] == pytest.approx(0.75)
    assert e["memory_efficiency"] == pytest.approx(0.5)
    assert e["gpu_efficiency"] == pytest.approx(0.25)
    assert e["overall_efficiency"] == pytest.approx(0.5)
    e = efficiencies(_row("a", 2, 2, 0.5, 12000))
    assert e["cost"] == pytest.approx(0.3125)
    assert e["gpu_efficiency"] == pytest.approx(1536 / 12000)


def test_weights_and_clipping_and_failures() -> None:
    t = Targets(w_cpu=0.5, w_memory=0.25, w_gpu=0.25)
    # 10 CPU-s over 1 core x 2 s would be 5: clipped to 1; memory 150 % clipped to 1
    e = efficiencies(_row("a", 1, 1, 1, 3072, cpu_seconds=10, cpu_memory_percent=150), t)
    assert (e["cpu_efficiency"], e["memory_efficiency"]) == (1.0, 1.0)
    assert e["gpu_efficiency"] == pytest.approx(0.5)  # 1536 / 3072
    assert e["overall_efficiency"] == pytest.approx(0.5 + 0.25 + 0.125)
    oom = efficiencies(_row("b", 8, 1, 1, 24000, status="OOM"))
    assert oom["overall_efficiency"] == 0.0 and oom["cpu_efficiency"] == 0.0
    assert oom["cost"] == pytest.approx((0.5 + 1 / 16 + 1 + 1) / 4)


def test_cheapest_meeting_target_and_most_efficient() -> None:
    rows = [
        # cost (1/16+1/16+0.25+0.25)/4 = 0.15625 but too slow (p95 900 ms)
        _row("small", 1, 1, 0.25, 6000, latency_p95_ms_b1=900),
        # cost (2/16+2/16+0.5+0.5)/4 = 0.3125, p95 100 ms: the cheapest that meets 500 ms
        _row("medium", 2, 2, 0.5, 12000),
        # cost (8/16+8/16+1+1)/4 = 0.75, fast, most efficient (cpu 6/16 over 8 x 2 s...)
        _row("big", 8, 8, 1, 24000, latency_p95_ms_b1=20, cpu_seconds=16,
             cpu_memory_percent=90, gpu_memory_used=23.4375),
        _row("broken", 1, 1, 0.25, 6000, status="OOM", latency_p95_ms_b1=""),
    ]  # fmt: skip
    t = Targets(latency_ms=500)
    table = analyse(rows, t)
    best = optimal(table, t)["tasks"]["t"]
    assert best["cheapest_meeting_target"]["configuration"] == "medium"
    assert best["cheapest_meeting_target"]["cost"] == pytest.approx(0.3125)
    assert best["candidates_meeting_target"] == ["medium", "big"]
    # big: cpu 16/(8*2) = 1, memory 0.9, gpu 23.4375*1024/24000 = 1.0 -> overall 0.9667
    assert best["most_efficient"]["configuration"] == "big"
    assert best["most_efficient"]["overall_efficiency"] == pytest.approx((1 + 0.9 + 1) / 3)
    t = Targets(latency_ms=500, throughput=20.0)  # nobody reaches 20 items/s
    assert optimal(analyse(rows, t), t)["tasks"]["t"]["cheapest_meeting_target"] is None
    s = summary(table)
    assert s["all"]["by_status"] == {"success": 3, "OOM": 1}
    assert s["tasks"]["t"]["fastest_p95_ms"] == 20.0


def test_analyze_writes_the_three_outputs_and_the_plots(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "experiment_results.csv", [1])
    for r in (_row("small", 1, 1, 0.25, 6000), _row("big", 8, 8, 1, 24000, status="OOM")):
        writer.append({k: v for k, v in r.items() if k in writer.columns})
    assert main(["analyze", "--out", str(tmp_path), "--latency-target-ms", "150"]) == 0
    for name in (
        "experiment_analysis.csv",
        "experiment_summary.json",
        "optimal_configurations.json",
        "plots/heatmap.png",
        "plots/resources_t.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name  # fmt: skip
    best = json.loads((tmp_path / "optimal_configurations.json").read_text())
    assert best["tasks"]["t"]["cheapest_meeting_target"]["configuration"] == "small"
    assert best["targets"]["latency_ms"] == 150.0
