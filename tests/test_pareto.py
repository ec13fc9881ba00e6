"""Pareto fronts and cost at matched QoS: arithmetic on hand-made fronts, and the CLI end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from k8s_gpu_rl.evaluation import cli, pareto, pareto_run, runner


def _points(rows, profile="p"):
    return pd.DataFrame(
        [
            {
                "family": f,
                "params": params,
                "profile": profile,
                "vgpu_hours": c,
                "qos_violation_rate": q,
            }
            for f, params, c, q in rows
        ]
    )


BASELINES = _points(
    [
        ("hpa-calibrated", "a1", 1.0, 0.0),
        ("hpa-calibrated", "a2", 0.5, 0.001),
        ("hpa-calibrated", "a3", 0.3, 0.01),
        ("hpa-calibrated", "a4", 0.6, 0.002),  # dominated by a2
        ("static-calibrated", "b1", 0.4, 0.002),
    ]
)


def test_front_keeps_only_undominated_points() -> None:
    mask = pareto.front_mask(BASELINES["vgpu_hours"], BASELINES["qos_violation_rate"])
    assert list(BASELINES["params"][mask]) == ["a1", "a2", "a3", "b1"]
    hpa = pareto.front(BASELINES[BASELINES["family"] == "hpa-calibrated"])
    assert list(hpa["params"]) == ["a1", "a2", "a3"]  # by violation rate
    # equal points do not dominate each other
    assert list(pareto.front_mask([1.0, 1.0], [0.1, 0.1])) == [True, True]


@pytest.mark.parametrize(
    ("cost", "violations", "reference", "ratio"),
    [
        (0.45, 0.0015, "a2", 0.45 / 0.5),  # a2 is the cheapest with <= 0.15 %
        (0.2, 0.0005, "a1", 0.2 / 1.0),  # only a1 is as good
        (0.3, 0.003, "b1", 0.3 / 0.4),  # a2 (0.5), a4 (0.6), b1 (0.4), a1 (1.0) qualify
        (0.3, 0.01, "a3", 1.0),  # a3 itself: the same cost at the same QoS
        (0.6, 0.002, "b1", 0.6 / 0.4),  # exactly b1's rate counts as "no higher"
    ],
)
def test_cost_at_matched_qos_against_hand_computed_fronts(cost, violations, reference, ratio):
    policy = _points([("ppo", "m", cost, violations)])
    table = pareto.cost_at_matched_qos(policy, BASELINES)
    row = table.iloc[0]
    assert row["reference_params"] == reference
    assert row["cost_at_matched_qos"] == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("violations", "mixture"),
    [
        # BASELINES' lower hull: a1 (0, 1.0), a2 (0.1 %, 0.5), b1 (0.2 %, 0.4), a3 (1 %, 0.3)
        (0.0015, 0.5 * 0.5 + 0.5 * 0.4),  # a2 and b1 half each: the staircase says 0.5
        (0.0005, 0.5 * 1.0 + 0.5 * 0.5),  # a1 and a2 half each
        (0.006, 0.5 * 0.4 + 0.5 * 0.3),  # b1 and a3: (1 % - 0.6 %) / (1 % - 0.2 %) = 0.5 of b1
        (0.002, 0.4),  # exactly b1: no mixture is cheaper there
        (0.05, 0.3),  # past every point: the cheapest point itself
    ],
)
def test_mixtures_of_two_baseline_points_against_the_hand_computed_hull(violations, mixture):
    policy = _points([("ppo", "m", 0.3, violations)])
    row = pareto.cost_at_matched_qos(policy, BASELINES).iloc[0]
    assert row["reference_vgpu_hours_mixture"] == pytest.approx(mixture)
    assert row["cost_at_matched_qos_mixture"] == pytest.approx(0.3 / mixture)
    assert (
        row["cost_at_matched_qos_mixture"] >= row["cost_at_matched_qos"]
    )  # a mixture is never dearer


def test_cost_at_matched_qos_is_undefined_when_no_baseline_is_as_good() -> None:
    baselines = _points([("static-calibrated", "b", 0.4, 0.001)])
    table = pareto.cost_at_matched_qos(_points([("oracle", "", 0.1, 0.0)]), baselines)
    assert math.isnan(table.iloc[0]["cost_at_matched_qos"])
    assert math.isnan(table.iloc[0]["cost_at_matched_qos_mixture"])
    assert table.iloc[0]["reference_family"] is None


def test_cost_at_matched_qos_compares_within_each_profile() -> None:
    baselines = pd.concat([BASELINES, _points([("static-calibrated", "c", 0.1, 0.0)], "q")])
    policies = _points([("ppo", "m", 0.2, 0.0)], "q")
    row = pareto.cost_at_matched_qos(policies, baselines).iloc[0]
    assert (row["reference_params"], row["cost_at_matched_qos"]) == ("c", pytest.approx(2.0))


def test_summarise_points_means_and_brackets_the_runs() -> None:
    runs = pd.DataFrame(
        {
            "family": ["f"] * 4,
            "params": ["x"] * 4,
            "profile": ["p"] * 4,
            "seed": [0, 1, 2, 3],
            "vgpu_hours": [0.1, 0.2, 0.3, 0.4],
            "qos_violation_rate": [0.0, 0.0, 0.0, 0.0],
        }
    )
    row = pareto.summarise_points(runs, "grid").iloc[0]
    assert (row["n"], row["vgpu_hours"]) == (4, pytest.approx(0.25))
    assert 0.1 <= row["vgpu_hours_ci_low"] < 0.25 < row["vgpu_hours_ci_high"] <= 0.4
    # a constant sample has the zero-width interval
    assert row["qos_violation_rate_ci_low"] == row["qos_violation_rate_ci_high"] == 0.0


# --- end to end on a one-minute profile -----------------------------------------------

TINY = """\
name: tiny
description: one minute, 10 users then 80
wait_time: {min: 0.4, max: 1.0}
stages:
  - {duration: 30, users: 10, spawn_rate: 10}
  - {duration: 30, users: 80, spawn_rate: 40}
"""


def test_run_pareto_writes_the_fronts_and_leads_the_report_with_them(tmp_path: Path) -> None:
    profile = tmp_path / "tiny.yaml"
    profile.write_text(TINY)
    plan = runner.build_plan(["hpa", "static"], [str(profile)], 2, 1000, tmp_path / "out")
    tasks = [t for t in pareto_run.grid_tasks(plan) if t.index < 2]  # 2 points per family
    pareto_run.run_pareto(plan, (), jobs=1, progress=False, tasks=tasks)
    out = tmp_path / "out"
    points = pd.read_csv(out / "pareto.csv")
    assert set(points["kind"]) == {"grid", "policy"}
    assert len(points[points["kind"] == "grid"]) == len(tasks)
    assert (points["n"] == 2).all()
    matched = pd.read_csv(out / "cost_at_matched_qos.csv")
    assert list(matched["policy"]) == ["hpa", "static"]
    assert (out / "plots" / "tiny_pareto.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert report.index("## Cost against QoS") < report.index("## Profile `tiny`")
    assert "![tiny Pareto fronts](plots/tiny_pareto.png)" in report


def test_several_models_need_pareto(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(["--model", "a", "--model", "b"])
    assert exc.value.code == 2
    assert "several --model are only allowed with --pareto" in capsys.readouterr().err


def test_pareto_rejects_a_missing_model(tmp_path: Path) -> None:
    from k8s_gpu_rl.errors import ConfigError

    with pytest.raises(ConfigError, match="no such file or directory"):
        pareto_run.check_models([tmp_path / "nothing"])


def test_an_earlier_grid_is_reused_point_by_point() -> None:
    import pandas as pd

    from k8s_gpu_rl.baselines.calibration import Task, point_label, split_done

    a = Task("static", 0, {"gpucores": 40, "replicas": 1}, (("mixed", "mixed"),), (1000, 1001))
    b = Task("static", 1, {"gpucores": 30, "replicas": 1}, (("mixed", "mixed"),), (1000, 1001))
    rows = [
        {"family": "static", "params": point_label(a.params), "profile": "mixed", "seed": s}
        for s in (1000, 1001, 1002)  # a: both seeds asked for, and one more
    ] + [{"family": "static", "params": point_label(b.params), "profile": "mixed", "seed": 1000}]
    kept, todo = split_done([a, b], pd.DataFrame(rows))
    assert todo == [b]  # b lacks seed 1001: run again
    assert kept["seed"].tolist() == [1000, 1001]  # a's rows for the asked seeds only
    kept, todo = split_done([a, b], pd.DataFrame())
    assert todo == [a, b] and kept.empty
