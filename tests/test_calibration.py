"""Calibration: the default simulated cluster reproduces the user's measured baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from k8s_gpu_rl.config import replace
from k8s_gpu_rl.envs.sim.calibration import MEASURED, compare, simulate_baseline
from k8s_gpu_rl.envs.sim.config import ClusterConfig

ROOT = Path(__file__).resolve().parents[1]


def test_low_profile_reproduces_the_measured_baseline_within_10_percent() -> None:
    figures = simulate_baseline(seeds=(0, 1, 2))
    assert figures["success_rate"] == 1.0
    for c in compare(figures):
        assert abs(c.relative_error) <= 0.10, (
            f"{c.name}: simulated {c.simulated:.1f}, measured {c.measured}"
        )


def test_calibration_is_sensitive_to_the_constants() -> None:
    slower = replace(ClusterConfig(), client={"transport_median_ms": 80.0})
    figures = simulate_baseline(slower, seeds=(0,))
    assert figures["mean_latency_ms"] > MEASURED["mean_latency_ms"] * 1.2


@pytest.mark.parametrize(
    ("args", "code"), [([], 0), (["--tolerance", "0.001"], 1), (["--cluster", "nope"], 2)]
)
def test_calibrate_script_exit_codes(args: list[str], code: int) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/calibrate.py", "--seeds", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == code, out.stdout + out.stderr
    if code == 2:
        assert "unknown cluster 'nope'" in out.stderr and "Traceback" not in out.stderr
    else:
        assert "p95_latency_ms" in out.stdout
