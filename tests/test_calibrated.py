"""Calibrated baselines: the choice rule, the grids, the file they read, and the share knob."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from k8s_gpu_rl.baselines import calibration, grids, make_policy
from k8s_gpu_rl.baselines.calibrated import CalibratedStaticPolicy, load_calibrated
from k8s_gpu_rl.baselines.hpa import HpaPolicy
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.evaluation.rollout import run_episode

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 0.0002


def _runs(points):
    """Per-run rows: points = {(family, point): {profile: [(vgpu_h, violation_rate), ...]}}."""
    rows = []
    for (family, point), per_profile in points.items():
        for profile, runs in per_profile.items():
            for seed, (vgpu, viol) in enumerate(runs):
                rows.append(
                    {
                        "family": family,
                        "point": point,
                        "params": f"p{point}",
                        "profile": profile,
                        "seed": seed,
                        "vgpu_hours": vgpu,
                        "qos_violation_rate": viol,
                        "p95_latency_ms": 80.0,
                    }
                )
    return pd.DataFrame(rows)


def test_point_table_means_over_seeds_and_sums_over_profiles() -> None:
    runs = _runs({("f", 0): {"low": [(0.1, 0.0), (0.3, 0.0004)], "high": [(0.5, 0.0001)] * 2}})
    row = calibration.point_table(runs, BUDGET).iloc[0]
    assert row["vgpu_hours:low"] == pytest.approx(0.2)
    assert row["qos_violation_rate:low"] == pytest.approx(0.0002)  # mean of 0 and 0.0004
    assert row["vgpu_hours_total"] == pytest.approx(0.2 + 0.5)
    assert row["worst_violation_rate"] == pytest.approx(0.0002)
    assert bool(row["within_budget"])  # exactly at the budget counts as within
    assert row["seeds"] == 2


def test_choice_is_the_cheapest_within_budget_on_every_profile() -> None:
    runs = _runs(
        {
            # cheapest, but over budget on high
            ("f", 0): {"low": [(0.05, 0.0)], "high": [(0.05, 0.0009)]},
            # within budget on both, 0.3 vGPU-h in total
            ("f", 1): {"low": [(0.1, 0.0)], "high": [(0.2, 0.00015)]},
            # within budget, same total, fewer violations: wins the tie
            ("f", 2): {"low": [(0.15, 0.0)], "high": [(0.15, 0.0001)]},
            # within budget, dearer
            ("f", 3): {"low": [(0.3, 0.0)], "high": [(0.3, 0.0)]},
        }
    )
    table = calibration.point_table(runs, BUDGET)
    chosen = calibration.choose(table)
    assert chosen["point"] == 2
    assert list(table["within_budget"]) == [False, True, True, True]


def test_choice_without_any_point_in_budget_takes_the_fewest_violations() -> None:
    runs = _runs(
        {
            ("f", 0): {"mixed": [(0.1, 0.002)]},
            ("f", 1): {"mixed": [(0.5, 0.0005)]},
            ("f", 2): {"mixed": [(0.9, 0.001)]},
        }
    )
    chosen = calibration.choose(calibration.point_table(runs, BUDGET))
    assert (chosen["point"], bool(chosen["within_budget"])) == (1, False)


def test_every_family_gets_the_same_budget() -> None:
    assert grids.seeds_for(160, 480) == 3
    assert grids.seeds_for(12, 480) == 40
    assert grids.seeds_for(40, 480) == 12
    with pytest.raises(ConfigError, match="tuning budget 10 is smaller than the grid"):
        grids.seeds_for(12, 10)


def test_reachable_shares_on_the_rtx3080() -> None:
    # one 10 GiB GPU; gpumem follows the share (20 % -> 2048 MiB ...). Pods per GPU:
    # min(100 // cores, 10240 // gpumem): 20 -> 5, 30 -> 3, 40 -> 2, 50 -> 2. From the
    # initial 1 x 50 % a surge pod of 70 % or 100 % never fits beside the old pod, and
    # maxUnavailable 25 % of 1 rounds down to 0: those rollouts cannot start.
    space = grids.reachable_shares(K8sGpuEnv(profile="low"))
    assert space.capacity == {20: 5, 30: 3, 40: 2, 50: 2}
    static = grids.family_grid("static-calibrated", space)
    assert len(static) == 5 + 3 + 2 + 2
    hpa = grids.family_grid("hpa-calibrated", space)
    assert len(hpa) == 4 * 5 * 4 * 2  # shares x metrics x targets x windows
    assert {p["metric"] for p in hpa} == set(grids.HPA_TARGETS)


def test_load_calibrated_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no calibrated parameters; run"):
        load_calibrated("hpa-calibrated", tmp_path / "none.yaml")
    path = tmp_path / "c.yaml"
    path.write_text("families:\n  static-calibrated:\n    params: {replicas: 2, gpucores: 30}\n")
    with pytest.raises(ConfigError, match="no entry for 'kpa-calibrated'"):
        load_calibrated("kpa-calibrated", path)
    with pytest.raises(ConfigError, match="did you mean 'hpa-calibrated'"):
        load_calibrated("hpa-calibrate", path)
    policy = CalibratedStaticPolicy(path=path)
    assert (policy.replicas, policy.gpucores) == (2, 30)


def test_calibration_script_writes_a_file_the_policies_read(tmp_path: Path) -> None:
    out = tmp_path / "calibrated.yaml"
    cmd = [sys.executable, str(ROOT / "scripts/calibrate_baselines.py"), "--quick"]
    subprocess.run([*cmd, "--jobs", "1", "--out", str(out)], check=True, capture_output=True)
    grid = pd.read_csv(tmp_path / "calibrated_grid.csv")
    assert set(grid["family"]) == set(grids.FAMILIES)
    assert grid.groupby("family")["chosen"].sum().eq(1).all()  # one choice per family
    for family in grids.FAMILIES:
        row = grid[(grid["family"] == family) & grid["chosen"]].iloc[0]
        ok = grid[(grid["family"] == family) & grid["within_budget"]]
        if not ok.empty:  # the rule, re-applied to the written table
            assert row["vgpu_hours_total"] == ok["vgpu_hours_total"].min()
        env = K8sGpuEnv(profile="low")
        policy = make_policy(family, env, path=out)
        assert grids.point_label(load_calibrated(family, out)) == row["params"]
        assert policy.describe()["name"] == family


def test_a_bad_family_name_is_an_error_with_exit_2() -> None:
    cmd = [
        sys.executable,
        str(ROOT / "scripts/calibrate_baselines.py"),
        "--family",
        "hpa-calibrate",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2
    assert "error: unknown baseline family 'hpa-calibrate'" in res.stderr


# --- the share knob and the new HPA metrics -------------------------------------------


def test_hpa_with_a_share_rolls_first_then_holds_it() -> None:
    env = K8sGpuEnv(profile="medium")
    policy = HpaPolicy(metric="rps", target=50, gpucores=30).bind(env)
    series = run_episode(env, policy, 3).timeseries
    rolled = series.index[series["gpucores"] == 30]
    assert len(rolled) > 0
    first = int(rolled[0])
    assert (series["gpucores"].iloc[first:] == 30).all()  # held from then on
    # while the Deployment was still at 50 % the replica count did not move
    assert (series["replicas_spec"].iloc[:first] == 1).all()
    # ~65 req/s at a 50 req/s target: ratio 1.3, beyond the 0.1 tolerance, ceil(1.3) = 2
    # pods; then 2 x ~32 req/s, ratio 0.65: ceil(2 x 0.65) = 2 stays
    assert series["replicas_spec"].iloc[-1] == 2


@pytest.mark.parametrize(
    ("metric", "target", "replicas"), [("inflight", 0.05, 5), ("queue_ms", 1e6, 1)]
)
def test_hpa_on_triton_metrics_scales_with_them(metric, target, replicas) -> None:
    # medium load keeps every pod busy: a tiny in-flight target asks for the most pods
    # (5 of 20 % fit the GPU), an unreachable queue-time target never scales up
    env = K8sGpuEnv(profile="medium")
    policy = HpaPolicy(metric=metric, target=target, gpucores=20).bind(env)
    series = run_episode(env, policy, 3).timeseries
    assert series["replicas_spec"].max() == replicas
    assert policy.describe()["metric"] == metric
