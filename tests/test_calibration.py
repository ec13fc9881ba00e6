"""Calibration: the default simulated cluster reproduces the user's measured baseline, and
``scripts/calibrate.py`` prints it beside the client-bound table (tests/test_client_model.py
checks that table itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from k8s_gpu_rl.config import replace
from k8s_gpu_rl.envs.sim.calibration import (
    CLIENT_BOUND_CLUSTER,
    MEASURED,
    closed_form_inference_cost_ms,
    compare,
    fit_client_split,
    simulate_baseline,
)
from k8s_gpu_rl.envs.sim.config import ClusterConfig, load_cluster_config

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
    ("args", "code", "needle"),
    [
        ([], 0, "within the bounds"),
        (["--fit"], 0, "closed-form total 149.3 ms per inference request"),
        (["--tolerance", "0.001"], 1, "OUTSIDE the 0% target"),
        (["--cluster", "nope"], 2, "unknown cluster 'nope'"),
        (["--client-cluster", "nope"], 2, "unknown cluster 'nope'"),
        (["--seeds", "0"], 2, "--seeds must be >= 1"),
    ],
)
def test_calibrate_script_exit_codes(args: list[str], code: int, needle: str) -> None:
    out = _calibrate(*args)
    assert out.returncode == code, out.stdout + out.stderr
    if code == 2:
        assert needle in out.stderr and "Traceback" not in out.stderr
    else:
        assert needle in out.stdout
        assert "p95_latency_ms" in out.stdout  # the baseline table
        for label in ("10 ", "20-30", "46-60", "91-100"):  # the client-bound table
            assert f"\n{label}" in out.stdout


def test_calibrate_script_fails_when_the_client_bound_table_is_off(tmp_path: Path) -> None:
    # half the fitted client cost: the plateau doubles, far past the 20 % bound
    text = (ROOT / "envs/sim/clusters/rtx3080-locust-json.yaml").read_text()
    text = text.replace("build: 52.0", "build: 26.0").replace("send: 93.0", "send: 46.5")
    path = tmp_path / "half.yaml"
    path.write_text(text.replace("name: rtx3080-locust-json", "name: half"))
    out = _calibrate("--client-cluster", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "OUTSIDE the bounds" in out.stdout and "within the 10% target" in out.stdout


def test_the_split_search_prefers_an_untimed_build_share() -> None:
    # all 149 ms timed: even an unqueued inference takes ~190 ms at 10 users, and their
    # aggregated p50 (110 ms) is then off by far more than the 30 % bound
    config = load_cluster_config(CLIENT_BOUND_CLUSTER)
    scored = fit_client_split(config, build_shares=(0.0, 0.35), receive_shares=(0.03,))
    (best, best_cost), (worse, _) = scored
    assert best <= 1.0 < worse
    assert best_cost["build"] == pytest.approx(0.35 * closed_form_inference_cost_ms(config))


def _calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/calibrate.py", "--seeds", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
