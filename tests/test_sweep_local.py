"""``run --backend local``: real child processes under real limits on this machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from k8s_gpu_rl.sweep.configs import ResourceConfiguration
from k8s_gpu_rl.sweep.runners import Experiment
from k8s_gpu_rl.sweep.runners.local import LocalRunner, cgroups_writable
from k8s_gpu_rl.sweep.tasks import TASK_FILES_ENV

MOBILENET_PARAMS = 3_774_024  # MobileNetV4-Conv-Small at 1000 classes (timm's 3.77 M)


def _exp(task: str, name: str, cpu: float, memory: str, gpucores: int, gpumem: int) -> Experiment:
    return Experiment(f"sweep-{task}-{name}", task,
                      ResourceConfiguration(name, cpu, memory, gpucores, gpumem))  # fmt: skip


def test_a_task_runs_under_its_limits_with_real_timings() -> None:
    runner = LocalRunner([1, 2], repeats=2)
    outcome = runner.run(_exp("mobilenetv4", "small", 1, "1Gi", 100, 6000))
    assert outcome.status == "success", outcome.error_message
    r = outcome.result
    assert r["threads"] == 1 and r["device"] == "cpu"  # one core: one torch thread
    assert r["weights_mib"] * 2**20 >= MOBILENET_PARAMS * 4  # fp32 weights, plus BN buffers
    assert r["weights_mib"] * 2**20 < MOBILENET_PARAMS * 4 * 1.05
    assert r["gpu_memory_used_mib"] >= r["weights_mib"]
    assert 0 < r["latency"]["1"]["mean_ms"] < r["latency"]["2"]["mean_ms"]
    assert r["latency"]["2"]["throughput"] == pytest.approx(2000 / r["latency"]["2"]["mean_ms"])
    # peak RSS (torch + model) against the 1 GiB limit
    assert r["cpu_memory_percent"] == pytest.approx(100 * r["peak_rss_mib"] / 1024)
    assert 5 < r["cpu_memory_percent"] < 100
    assert r["cpu_seconds"] > 0 and 0 < r["task_execution_time"] < outcome.total_time


@pytest.mark.parametrize("use_cgroups", [True, False], ids=["cgroup", "rlimit"])
def test_a_memory_limit_below_the_model_is_a_real_oom(use_cgroups: bool) -> None:
    if use_cgroups and not cgroups_writable():
        pytest.skip("this machine does not let us create a memory cgroup (the rlimit case runs)")
    runner = LocalRunner([1], repeats=1, use_cgroups=use_cgroups)
    # ViT-GPT2's fp32 weights alone are ~0.95 GB; with torch itself they exceed 1 GiB
    outcome = runner.run(_exp("captioning", "tight", 1, "1Gi", 100, 24000))
    assert outcome.status == "OOM", outcome.error_message
    if use_cgroups:
        assert outcome.error_message.startswith("OOMKilled: the kernel killed the process")
    else:
        assert "can't allocate memory" in outcome.error_message


def test_gpu_memory_beyond_gpumem_fails_like_cuda_under_hami() -> None:
    runner = LocalRunner([1], repeats=1)
    outcome = runner.run(_exp("mobilenetv4", "tinygpu", 1, "1Gi", 100, 10))
    assert outcome.status == "GPU-OOM"
    m = re.search(r"Device 0 OOM (\d+) / (\d+)", outcome.error_message)
    assert m is not None and int(m.group(2)) == 10 * 2**20
    assert MOBILENET_PARAMS * 4 <= int(m.group(1)) < MOBILENET_PARAMS * 4 * 1.05


def test_gpucores_holds_the_model_to_its_share() -> None:
    """The token bucket (share 0.25, 25 ms of tokens) makes back-to-back batches wait
    ~(1 - s)/s = 3x their run time: a batch takes ~4x as long as at gpucores 100."""
    runner = LocalRunner([4], repeats=3)
    full = runner.run(_exp("mobilenetv4", "full", 1, "1Gi", 100, 6000))
    quarter = runner.run(_exp("mobilenetv4", "quarter", 1, "1Gi", 25, 6000))
    assert full.status == quarter.status == "success"
    ratio = quarter.result["latency"]["4"]["mean_ms"] / full.result["latency"]["4"]["mean_ms"]
    assert 2.0 < ratio < 8.0


def test_a_missing_library_is_a_failed_run_that_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = tmp_path / "needs_lib.py"
    task.write_text(
        "from k8s_gpu_rl.sweep.tasks import Task, register\n\n"
        "@register\nclass NeedsLib(Task):\n    name = 'needs-lib'\n    summary = 'x'\n\n"
        "    def build(self):\n        import no_such_library_here\n"
    )
    monkeypatch.setenv(TASK_FILES_ENV, str(task))
    outcome = LocalRunner([1], repeats=1).run(_exp("needs-lib", "x", 1, "1Gi", 100, 6000))
    assert outcome.status == "failed"
    assert outcome.error_message == "No module named 'no_such_library_here'"
