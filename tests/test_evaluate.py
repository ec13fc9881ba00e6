"""``python -m evaluate``: a subprocess smoke run, the statistics by hand, user mistakes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from k8s_gpu_rl.evaluation import aggregate
from k8s_gpu_rl.evaluation.io import write_json_atomic
from k8s_gpu_rl.evaluation.stats import hedges_g, mean_ci, welch_test

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "evaluate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- smoke run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "results"
    proc = run_cli(
        "--policy", "static,hpa", "--profile", "low", "--repeats", "2", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "static" in proc.stdout and "results:" in proc.stdout
    return out


def test_smoke_run_writes_every_output(results: Path) -> None:
    for name in (
        "summary.csv",
        "summary.json",
        "comparisons.csv",
        "comparisons.json",
        "vgpu_vs_oracle.csv",
        "report.md",
        "runs.csv",
        "config.json",
        "plots/low_timeseries.png",
        "plots/low_kpis.png",
    ):
        assert (results / name).is_file(), name
    for policy in ("static", "hpa"):
        for seed in (1000, 1001):
            series = pd.read_csv(results / "runs" / policy / "low" / f"seed{seed}.csv")
            assert len(series) == 40
            assert {
                "time_s",
                "users",
                "throughput_rps",
                "p95_latency_ms",
                "qos_violation_rate",
                "replicas_spec",
                "replicas_ready",
                "gpucores",
                "vgpu_seconds",
                "gpu_util",
                "cpu_util",
                "reward_total",
            } <= set(series)
            assert (
                json.loads((results / "runs" / policy / "low" / f"seed{seed}.json").read_text())[
                    "seed"
                ]
                == seed
            )
    assert not list(results.rglob("*.tmp"))


def test_smoke_summary_is_finite_with_nonnegative_ci(results: Path) -> None:
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["policy"]) == {"static", "hpa"} and set(summary["profile"]) == {"low"}
    assert (summary["n"] == 2).all()
    assert np.isfinite(summary["mean"]).all()
    assert np.isfinite(summary["ci95"]).all() and (summary["ci95"] >= 0).all()
    nested = json.loads((results / "summary.json").read_text())
    assert nested["low"]["hpa"]["vgpu_hours"]["n"] == 2


def test_smoke_comparisons_and_report(results: Path) -> None:
    comparisons = pd.read_csv(results / "comparisons.csv")
    assert set(zip(comparisons["policy_a"], comparisons["policy_b"], strict=True)) == {
        ("static", "hpa")
    }
    assert "vgpu_hours" in set(comparisons["kpi"])
    report = (results / "report.md").read_text()
    assert (
        "plots/low_timeseries.png" in report and "python -m evaluate" in report and "1000" in report
    )


# --- statistics by hand -----------------------------------------------------------


def test_mean_ci_by_hand() -> None:
    m = mean_ci([1.0, 2.0, 3.0, 4.0])
    s = math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3)  # sample std, n-1
    assert (m.mean, m.n) == (2.5, 4)
    assert m.std == pytest.approx(s)
    assert m.half_width == pytest.approx(3.182446305284263 * s / 2.0)  # t_{0.975, 3}
    assert math.isnan(mean_ci([5.0]).half_width) and mean_ci([5.0]).mean == 5.0
    assert mean_ci([1.0, math.nan, 3.0]).n == 2


def test_welch_by_hand_and_against_scipy() -> None:
    a, b = np.array([1.0, 2.0, 4.0, 7.0]), np.array([3.0, 5.0, 6.0, 9.0, 12.0])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    w = welch_test(a, b)
    assert w.t == pytest.approx(t) and w.dof == pytest.approx(dof)
    assert w.p_value == pytest.approx(2 * st.t.sf(abs(t), dof))
    assert w.p_value == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_test([1.0, 1.0], [1.0, 1.0])[:2] == (0.0, 1.0)  # no spread, equal means
    assert math.isnan(welch_test([1.0], [2.0, 3.0]).p_value)


def test_hedges_g_by_hand() -> None:
    a, b = [1.0, 2.0, 4.0, 7.0], [3.0, 5.0, 6.0, 9.0, 12.0]
    pooled = math.sqrt((3 * np.var(a, ddof=1) + 4 * np.var(b, ddof=1)) / 7)
    expected = (1 - 3 / (4 * 9 - 9)) * (np.mean(a) - np.mean(b)) / pooled
    assert hedges_g(a, b) == pytest.approx(expected)
    assert hedges_g([2.0, 2.0], [2.0, 2.0]) == 0.0
    assert math.isnan(hedges_g([1.0], [1.0, 2.0]))


def test_aggregate_tables_from_a_synthetic_run_table() -> None:
    runs = pd.DataFrame(
        {
            "policy": ["a"] * 3 + ["oracle"] * 3,
            "profile": ["p"] * 6,
            "seed": [0, 1, 2] * 2,
            "vgpu_hours": [2.0, 2.2, 2.4, 1.0, 1.1, 1.2],
            "qos_violation_rate": [0.0] * 6,
        }
    )
    summary = aggregate.summarise(runs)
    row = summary[(summary["policy"] == "a") & (summary["kpi"] == "vgpu_hours")].iloc[0]
    assert row["mean"] == pytest.approx(2.2) and row["ci95"] == pytest.approx(
        mean_ci([2.0, 2.2, 2.4]).half_width
    )
    comparisons = aggregate.compare(runs)
    assert len(comparisons) == 2 and comparisons.iloc[0]["policy_a"] == "a"
    ratios = aggregate.vs_oracle(summary).set_index("policy")
    assert ratios.loc["a", "ratio_to_oracle"] == pytest.approx(2.0)


def test_json_writer_turns_non_finite_into_null(tmp_path: Path) -> None:
    path = tmp_path / "x" / "data.json"
    write_json_atomic(path, {"a": math.nan, "b": [math.inf, 1.5], "c": np.float64(2.0)})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.5], "c": 2.0}
    assert [p.name for p in path.parent.iterdir()] == ["data.json"]


# --- user mistakes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--policy", "hpx", "--profile", "low"), "did you mean 'hpa'"),
        (("--policy", "static", "--profile", "lowe"), "did you mean 'low'"),
        (("--policy", "static", "--profile", "low", "--repeats", "0"), "--repeats must be >= 1"),
        (("--policy", "ppo", "--profile", "low", "--model", "no/such/run"), "no such file"),
        (("--policy", "static", "--profile", "low", "--backend", "kube"), "unknown backend"),
        (("--policy", "static", "--repeats", "two"), "invalid int value"),
    ],
)
def test_user_mistakes_exit_2_without_traceback(args, message, tmp_path: Path) -> None:
    proc = run_cli(*args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "error:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_ppo_without_any_trained_model_is_a_user_mistake(tmp_path: Path) -> None:
    proc = run_cli("--policy", "ppo", "--profile", "low", cwd=tmp_path)  # no runs/ here
    assert (
        proc.returncode == 2 and "python -m train" in proc.stderr and "Traceback" not in proc.stderr
    )


@pytest.mark.slow
def test_ppo_from_the_newest_run_directory(tmp_path: Path) -> None:
    """A tiny trained agent is found under runs/ and evaluated beside a baseline."""
    config = tmp_path / "tiny.yaml"
    config.write_text("ppo:\n  n_steps: 64\n  batch_size: 32\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    train = subprocess.run(
        [sys.executable, "-m", "train", "--profile", "low", "--timesteps", "64", "--n-envs", "1",
         "--config", str(config), "--out", str(tmp_path / "runs"), "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    proc = run_cli("--policy", "ppo,static", "--profile", "low", "--repeats", "2", "--out", "res",
                   "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(tmp_path / "res" / "summary.csv")
    assert set(summary["policy"]) == {"ppo", "static"}
    assert json.loads((tmp_path / "res" / "config.json").read_text())["model"].startswith("runs")


def test_runs_finished_before_a_crash_are_on_disk(tmp_path: Path, monkeypatch) -> None:
    from k8s_gpu_rl.evaluation import runner

    calls = {"n": 0}
    real = runner.run_episode

    def crash_on_second(env, policy, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real(env, policy, seed)

    monkeypatch.setattr(runner, "run_episode", crash_on_second)
    plan = runner.build_plan(["static"], ["low"], repeats=3, out=tmp_path / "out")
    with pytest.raises(RuntimeError, match="simulated crash"):
        runner.run_evaluation(plan, progress=False)
    assert (tmp_path / "out" / "runs" / "static" / "low" / "seed1000.csv").is_file()
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 1
    assert not (tmp_path / "out" / "runs" / "static" / "low" / "seed1001.csv").exists()


def test_training_only_env_fields_are_not_evaluated(tmp_path) -> None:
    from k8s_gpu_rl.evaluation import runner

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.zip").write_bytes(b"")
    (run / "config.yml").write_text("env:\n  initial_share: random\n  slo_ms: 120.0\n")
    assert runner._run_env_config(run) == {"slo_ms": 120.0}
