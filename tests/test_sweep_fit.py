"""``fit`` and ``run --backend sim``: measurements -> the simulator's serving model -> back.

The fitted-cluster checks run the real local backend (child processes, the token-bucket
limiter) on a task whose compute is known by construction: it holds the "device" for
BASE + PER_ITEM x b ms (a sleep), so the measurements are exact enough on a loaded CI
machine for a 15 % criterion; the figures on real models are in
``scripts/sweep_demo.py`` (README: "What we measured").
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from k8s_gpu_rl.envs.sim.config import load_cluster_config
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.sweep.cli import main
from k8s_gpu_rl.sweep.configs import ResourceConfiguration
from k8s_gpu_rl.sweep.fit import fit_task, fitted_cluster, linear_fit
from k8s_gpu_rl.sweep.results import ResultsWriter, read_rows
from k8s_gpu_rl.sweep.runners import Experiment, result_row
from k8s_gpu_rl.sweep.runners.local import LocalRunner
from k8s_gpu_rl.sweep.runners.sim import SimRunner
from k8s_gpu_rl.sweep.tasks import TASK_FILES_ENV

BASE_MS, PER_ITEM_MS = 20.0, 6.0
TASK_FILE = textwrap.dedent(f'''
    import time
    import torch
    from k8s_gpu_rl.sweep.tasks import Task, register

    @register
    class Known(Task):
        name = "known-cost"
        summary = "{BASE_MS} ms + {PER_ITEM_MS} ms per item of device time"
        input_size = (8, 8)

        def build(self):
            return torch.nn.Linear(4, 4)

        def infer(self, model, batch):
            time.sleep(({BASE_MS} + {PER_ITEM_MS} * batch.shape[0]) / 1000.0)
''')
SIZES = [1, 2, 4, 6, 8]


def _exp(name: str, gpucores: int) -> Experiment:
    config = ResourceConfiguration(name, 1, "1Gi", gpucores, 6000)
    return Experiment(f"sweep-known-cost-{name}", "known-cost", config)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    path = tmp_path_factory.mktemp("task") / "known.py"
    path.write_text(TASK_FILE)
    mp = pytest.MonkeyPatch()
    mp.setenv(TASK_FILES_ENV, str(path))
    try:
        runner = LocalRunner(SIZES, repeats=4)
        out = tmp_path_factory.mktemp("sweep") / "experiment_results.csv"
        writer = ResultsWriter(out, SIZES)
        for exp in (_exp("whole", 100), _exp("half", 50)):
            outcome = runner.run(exp)
            assert outcome.status == "success", outcome.error_message
            writer.append(result_row(exp, outcome, "local", SIZES, 4))
    finally:
        mp.undo()
    return read_rows(out)


def test_linear_fit_recovers_a_line_and_keeps_the_base_positive() -> None:
    assert linear_fit([1, 4, 8], [6.0, 12.0, 20.0]) == pytest.approx((4.0, 2.0))
    base, per_item = linear_fit([1, 2], [1.0, 3.0])  # free fit: base -1 -> held at 0.001
    assert base == 0.001
    assert per_item == pytest.approx((1 * 0.999 + 2 * 2.999) / 5)
    assert linear_fit([4], [9.0]) == (9.0, 0.0)


def test_fitted_simulator_matches_what_it_was_fitted_to_and_held_out_sizes(
    measured: list[dict[str, str]],
) -> None:
    result = fit_task(measured, "known-cost", reference="whole", fit_batch_sizes=[1, 4, 8])
    assert result.batch_base_ms == pytest.approx(BASE_MS, rel=0.15)
    assert result.batch_per_item_ms == pytest.approx(PER_ITEM_MS, rel=0.15)
    cluster = fitted_cluster(result)
    errors = result.errors(cluster)
    assert set(errors) == set(SIZES)
    for b, err in errors.items():  # 1, 4, 8 fitted; 2 and 6 held out
        assert abs(err) < 0.15, (b, err, result.describe(cluster))


def test_a_fit_at_half_a_gpu_predicts_the_whole_gpu(measured: list[dict[str, str]]) -> None:
    """Fitted at gpucores 50 (work = latency x 0.5), simulated at gpucores 100, compared
    with the run measured at gpucores 100."""
    half = fit_task(measured, "known-cost", reference="half")
    cluster = fitted_cluster(half)
    sim = SimRunner(SIZES, cluster=None)
    sim.serving_for = lambda task: (cluster, {})  # type: ignore[method-assign]
    predicted = sim.run(_exp("whole", 100)).result["latency"]
    whole = next(r for r in measured if r["configuration"] == "whole")
    for b in SIZES:
        measured_ms = float(whole[f"latency_mean_ms_b{b}"])
        assert predicted[str(b)]["mean_ms"] == pytest.approx(measured_ms, rel=0.15), b


def test_fit_cli_writes_a_cluster_that_loads(
    tmp_path: Path, measured: list[dict[str, str]]
) -> None:
    writer = ResultsWriter(tmp_path / "experiment_results.csv", SIZES)
    for row in measured:
        writer.append(row)
    assert main(["fit", "--out", str(tmp_path), "--task", "known-cost"]) == 0
    cluster = load_cluster_config(tmp_path / "fit" / "known-cost.yaml")
    result = fit_task(measured, "known-cost")
    assert result.reference == "whole"  # most gpucores
    assert cluster.serving.model_name == "known-cost"
    assert cluster.serving.max_batch_size == 8
    assert cluster.serving.batch_base_ms == pytest.approx(result.batch_base_ms, abs=1e-6)
    assert cluster.startup.median_s == pytest.approx(result.startup_s, abs=1e-3)
    assert cluster.deployment.gpumem_mib >= cluster.serving.model_memory_mib
    base = load_cluster_config("rtx3080")
    assert cluster.client == base.client and cluster.hami == base.hami  # the rest kept
    assert main(["fit", "--out", str(tmp_path), "--task", "captioning"]) == 2


def test_sim_backend_uses_the_serving_model_by_hand() -> None:
    """rtx3080: batch = 4 ms + 0.3 ms/item at the whole GPU; model 1536 MiB."""
    sim = SimRunner([1, 8])
    half = sim.run(Experiment("p", "mobilenetv4", ResourceConfiguration("h", 2, "2Gi", 50, 6000)))
    assert half.status == "success"
    assert half.result["latency"]["8"]["mean_ms"] == pytest.approx((4 + 0.3 * 8) / 0.5)  # 12.8
    assert half.result["latency"]["1"]["throughput"] == pytest.approx(1000 / 8.6)
    small = sim.run(Experiment("p", "mobilenetv4", ResourceConfiguration("s", 2, "2Gi", 50, 1000)))
    assert (
        small.status == "GPU-OOM" and "Device 0 OOM 1610612736 / 1048576000" in small.error_message
    )
    with pytest.raises(ConfigError, match="no serving model for task 'captioning'"):
        sim.run(Experiment("p", "captioning", ResourceConfiguration("s", 2, "2Gi", 50, 1000)))
