"""An interrupted sweep keeps complete rows and resumes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k8s_gpu_rl.sweep.cli import main
from k8s_gpu_rl.sweep.results import read_rows
from k8s_gpu_rl.sweep.runners.sim import SimRunner

ROOT = Path(__file__).resolve().parents[1]


def test_ctrl_c_then_run_again_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    assert main(["generate", "--out", str(out), "--tasks", "mobilenetv4"]) == 0
    real_run, calls = SimRunner.run, []

    def interrupted(self: SimRunner, exp: object) -> object:
        calls.append(exp)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_run(self, exp)

    monkeypatch.setattr(SimRunner, "run", interrupted)
    assert main(["run", "--backend", "sim", "--out", str(out)]) == 130
    first = read_rows(out / "experiment_results.csv")
    assert len(first) == 3
    monkeypatch.setattr(SimRunner, "run", real_run)
    assert main(["run", "--backend", "sim", "--out", str(out)]) == 0
    assert "resuming: 3 of 9 already in" in capsys.readouterr().out
    rows = read_rows(out / "experiment_results.csv")
    assert len(rows) == 9 and len({r["pod_name"] for r in rows}) == 9
    assert rows[:3] == first  # the finished rows are kept as they were
    assert not list(out.glob(".experiment_results.csv.*"))  # no temporary file left


def test_a_killed_local_sweep_leaves_whole_rows_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    configs = "cpu-constrained,high-resource-1,low-resource"
    cmd = [sys.executable, "-m", "k8s_gpu_rl.sweep", "run", "--backend", "local", "--out",
           str(out), "--tasks", "mobilenetv4", "--configs", configs]  # fmt: skip
    main(["generate", "--out", str(out), "--tasks", "mobilenetv4", "--configs", configs,
          "--batch-sizes", "1", "--repeats", "1"])  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    results = out / "experiment_results.csv"
    deadline = time.monotonic() + 120
    while not results.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-experiment
    proc.wait()
    rows = read_rows(results)
    assert 1 <= len(rows) < 3 and all(r["status"] == "success" for r in rows)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming: {len(rows)} of 3" in done.stdout
    again = read_rows(results)
    assert [r["configuration"] for r in again] == configs.split(",")
    assert again[: len(rows)] == rows
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")):  # the killed one's
        assert not list(root.glob(f"k8s-gpu-rl-sweep-{proc.pid}-*"))  # cleaned up on resume


def test_later_steps_find_the_newest_sweep_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--tasks", "mobilenetv4", "--configs", "low-resource"]) == 0
    assert main(["run", "--backend", "sim"]) == 0
    assert main(["analyze"]) == 0
    (sweep,) = (tmp_path / "sweeps").iterdir()
    assert (sweep / "experiment_results.csv").exists()
    assert (sweep / "optimal_configurations.json").exists()
