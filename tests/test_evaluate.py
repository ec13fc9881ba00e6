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


def test_smoke_summary_by_hand(results: Path) -> None:
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["policy"]) == {"static", "hpa"} and set(summary["profile"]) == {"low"}
    assert (summary["n"] == 2).all()
    by = summary.set_index(["policy", "kpi"])
    for policy in ("static", "hpa"):
        # One pod at gpucores 50, Ready from the start, for 600 s in every run (the HPA never
        # scales on 10 users): 1 x 0.5 x 600 s / 3600 = 1/12 vGPU-h, 1/6 replica-h, no spread.
        assert by.loc[(policy, "vgpu_hours"), "mean"] == pytest.approx(0.5 * 600 / 3600, 1e-12)
        assert by.loc[(policy, "replica_hours"), "mean"] == pytest.approx(600 / 3600, 1e-12)
        assert by.loc[(policy, "mean_replicas"), "mean"] == pytest.approx(1.0, 1e-12)
        assert by.loc[(policy, "vgpu_hours"), "std"] == 0.0
        assert by.loc[(policy, "vgpu_hours"), "ci95"] == 0.0
    # Every row from the two runs in runs.csv: n = 2, sample std = |a - b| / sqrt(2), the 95 %
    # half width t_{0.975, 1} * std / sqrt(2) with t_{0.975, 1} = 12.706204736174698.
    runs = pd.read_csv(results / "runs.csv")
    for row in summary.itertuples():
        a, b = runs.loc[runs["policy"] == row.policy, row.kpi].to_numpy()
        std = abs(a - b) / math.sqrt(2)
        assert row.mean == pytest.approx((a + b) / 2, rel=1e-12, abs=1e-15), row
        assert row.std == pytest.approx(std, rel=1e-9, abs=1e-15), row
        assert row.ci95 == pytest.approx(
            12.706204736174698 * std / math.sqrt(2), rel=1e-9, abs=1e-15
        )
        assert (row.ci_low, row.ci_high) == pytest.approx(
            (row.mean - row.ci95, row.mean + row.ci95)
        )
    nested = json.loads((results / "summary.json").read_text())
    assert nested["low"]["hpa"]["vgpu_hours"]["n"] == 2
    assert nested["low"]["hpa"]["vgpu_hours"]["mean"] == pytest.approx(1 / 12, rel=1e-12)


def test_smoke_comparisons_and_report(results: Path) -> None:
    comparisons = pd.read_csv(results / "comparisons.csv")
    assert set(zip(comparisons["policy_a"], comparisons["policy_b"], strict=True)) == {
        ("static", "hpa")
    }
    assert {"vgpu_hours", "qos_violation_rate", "p95_latency_ms"} <= set(comparisons["kpi"])
    # On low (10 users, CPU ~8 % of the request) the HPA never leaves 1 replica, and both
    # policies replay seeds 1000 and 1001: the runs are identical, so every difference is 0,
    # Welch's t 0 with p = 1, Hedges' g 0.
    assert (comparisons["diff"] == 0.0).all() and (comparisons["t"] == 0.0).all()
    assert (comparisons["p_value"] == 1.0).all() and (comparisons["hedges_g"] == 0.0).all()
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


def test_share_rules_script_on_low() -> None:
    """scripts/share_rules.py through the evaluation's rollout: on low (10 users, ~13 req/s,
    under every threshold) the static rule holds 1 x 50 % for 600 s = 1/12 vGPU-h in both
    runs, and the 40/50 rules roll once to 40 % at the first step: 0.4 x 600 s, plus the old
    pod's 0.5 until the new one is Ready and the old one drained, T s. The start-up is
    log-normal (median 25 s, sigma 0.25: within 3 sigma 11.8-52.9 s), plus at most one 5 s
    readiness period and ~2 s of draining: T in [11.8, 59.9] s."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "share_rules.py"), "--profile", "low",
         "--repeats", "2"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {
        cells[0]: cells[1:]
        for line in proc.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 5
    }
    assert rows["50 (static)"][:2] == ["0.083 ± 0.000", "-"]
    for rule in ("40/50 @65", "40/50 @125"):
        mean = float(rows[rule][0].split(" ± ")[0])
        # printed to 3 decimals: +-0.0005
        low, high = (0.4 * 600 + 0.5 * 11.8) / 3600, (0.4 * 600 + 0.5 * 59.9) / 3600
        assert low - 0.0005 <= mean <= high + 0.0005, (rule, mean)


def test_profile_lists_keep_generator_specs_whole() -> None:
    from k8s_gpu_rl.evaluation.cli import _split

    assert _split(["random:seed=7,shape=diurnal,low", "mixed"], "x") == [
        "random:seed=7,shape=diurnal",
        "low",
        "mixed",
    ]
    assert _split(None, "ppo,hpa") == ["ppo", "hpa"]


def test_runs_whose_load_generator_saturated_are_left_out_and_listed(tmp_path) -> None:
    import dataclasses

    import pandas as pd

    from k8s_gpu_rl.errors import BackendError
    from k8s_gpu_rl.evaluation.runner import EvalPlan, _valid_runs

    plan = EvalPlan(("hpa",), (), 2, 1000, tmp_path)
    runs = pd.DataFrame(
        {
            "policy": ["hpa", "hpa"],
            "profile": ["low", "low"],
            "seed": [1000, 1001],
            "vgpu_hours": [0.08, 0.09],
            "client_saturated": [0.0, 1.0],
            "client_saturated_fraction": [0.0, 0.25],
        }
    )
    kept = _valid_runs(plan, runs)
    assert kept["seed"].tolist() == [1000]
    excluded = pd.read_csv(tmp_path / "excluded_runs.csv")
    assert excluded[["policy", "profile", "seed"]].values.tolist() == [["hpa", "low", 1001]]
    kept = _valid_runs(dataclasses.replace(plan, allow_saturated_client=True), runs)
    assert kept["seed"].tolist() == [1000, 1001]
    with pytest.raises(BackendError, match="every run's load generator was saturated"):
        _valid_runs(plan, runs.assign(client_saturated=1.0))
