"""``run --backend k8s`` against the HTTP-level fake API server (real kubernetes client)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8s_gpu_rl.sweep.cli import main
from k8s_gpu_rl.sweep.results import read_rows
from k8s_gpu_rl.testing.fake_kube_api import FakeKubeApi, PodFate

UNSCHEDULABLE = "0/1 nodes are available: 1 Insufficient nvidia.com/gpumem."
RESULT = {
    "status": "success", "error_message": "", "startup_s": 2.5, "cpu_ms_per_request": 1.5,
    "latency": {"1": {"mean_ms": 10.0, "p50_ms": 9.0, "p95_ms": 12.0, "min_ms": 8.0,
                      "throughput": 100.0}},
    "task_execution_time": 0.5, "cpu_seconds": 0.4, "peak_rss_mib": 300.0,
    "weights_mib": 14.5, "gpu_memory_used_mib": 512.0, "device": "cuda", "threads": 1,
    "cpu_memory_percent": 29.3,
}  # fmt: skip
SUCCESS_LOG = "building model\nSWEEP_RESULT " + json.dumps(RESULT) + "\n"
GPU_OOM_LOG = (
    "[HAMI-core ERROR]: Device 0 OOM 6442450944 / 6291456000\n"
    "torch.OutOfMemoryError: CUDA out of memory.\n"
)
FATES = {
    "low-resource": PodFate(schedule=False, unschedulable_message=UNSCHEDULABLE),
    "memory-constrained": PodFate.oom_killed(logs="loading weights\n"),
    "gpu-memory-constrained": PodFate(exit_code=1, logs=GPU_OOM_LOG),  # reason: Error
    "cpu-constrained": PodFate(logs=SUCCESS_LOG),
    "medium-resource-1": PodFate(exit_code=2, logs="Traceback ...\nValueError: boom\n"),
}


def _fate(pod: dict) -> PodFate:
    return FATES[pod["metadata"]["labels"]["k8s-gpu-rl/configuration"]]


@pytest.fixture()
def api():
    with FakeKubeApi(pod_fate=_fate) as fake:
        yield fake


def test_each_fate_gets_its_status_and_every_pod_is_deleted(
    api: FakeKubeApi, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    api.write_kubeconfig(kubeconfig)
    out = tmp_path / "sweep"
    configs = ",".join(FATES)
    assert main(["generate", "--out", str(out), "--tasks", "mobilenetv4", "--configs", configs,
                 "--batch-sizes", "1"]) == 0  # fmt: skip
    code = main(["run", "--backend", "k8s", "--out", str(out), "--kubeconfig", str(kubeconfig),
                 "--unschedulable-timeout-s", "1", "--timeout-s", "30"])  # fmt: skip
    assert code == 0
    rows = {r["configuration"]: r for r in read_rows(out / "experiment_results.csv")}
    assert {k: r["status"] for k, r in rows.items()} == {
        "low-resource": "unschedulable",
        "memory-constrained": "OOM",
        "gpu-memory-constrained": "GPU-OOM",
        "cpu-constrained": "success",
        "medium-resource-1": "failed",
    }
    assert rows["low-resource"]["error_message"] == f"Pending: {UNSCHEDULABLE}"
    assert (
        "OOMKilled (exit code 137) at the 1Gi memory limit"
        in rows["memory-constrained"]["error_message"]
    )
    assert "Error (exit code 1)" in rows["gpu-memory-constrained"]["error_message"]
    assert "Device 0 OOM" in rows["gpu-memory-constrained"]["error_message"]
    assert "exit code 2" in rows["medium-resource-1"]["error_message"]
    ok = rows["cpu-constrained"]
    assert (ok["latency_mean_ms_b1"], ok["latency_p95_ms_b1"], ok["throughput_b1"]) == (
        "10",
        "12",
        "100",
    )
    assert (ok["gpu_memory_used"], ok["cpu_memory_percent"]) == ("0.5", "29.3")  # 512 MiB = 0.5 GB
    assert api.pods("default") == []  # every Pod deleted, failures included


def test_pods_are_created_through_the_api_and_followed_by_watches(
    api: FakeKubeApi, tmp_path: Path
) -> None:
    from k8s_gpu_rl.sweep.commands import experiments
    from k8s_gpu_rl.sweep.runners.k8s import K8sRunner

    out = tmp_path / "sweep"
    main(["generate", "--out", str(out), "--tasks", "mobilenetv4", "--configs", "cpu-constrained"])
    (exp,) = experiments(out, None, None)
    outcome = K8sRunner(api.api_client(), timeout_s=30).run(exp)
    assert outcome.status == "success" and outcome.result["latency"]["1"]["mean_ms"] == 10.0
    creates = api.requests_matching("POST", r"/api/v1/namespaces/default/pods$")
    assert len(creates) == 1
    lists = api.requests_matching("GET", r"/api/v1/namespaces/default/pods$")
    watches = [r for r in lists if r.query.get("watch") in ("true", "True", "1")]
    assert watches
    assert all(r.query.get("fieldSelector") == f"metadata.name={exp.pod_name}" for r in watches)
    # no polling: apart from watches, at most the one list that checks the Pod is gone
    assert len(lists) - len(watches) <= 2
    assert api.requests_matching("GET", r"/pods/sweep-mobilenetv4-cpu-constrained/log$")


def test_a_pod_that_never_schedules_is_given_up_after_the_timeout(
    api: FakeKubeApi, tmp_path: Path
) -> None:
    from k8s_gpu_rl.sweep.commands import experiments
    from k8s_gpu_rl.sweep.runners.k8s import K8sRunner

    out = tmp_path / "sweep"
    main(["generate", "--out", str(out), "--tasks", "mobilenetv4", "--configs", "low-resource"])
    (exp,) = experiments(out, None, None)
    outcome = K8sRunner(api.api_client(), timeout_s=30, unschedulable_timeout_s=0.5).run(exp)
    assert outcome.status == "unschedulable"
    assert outcome.error_message == f"Pending: {UNSCHEDULABLE}"
    assert 0.5 <= outcome.total_time < 10
    assert api.pods("default") == []


def test_a_missing_kubeconfig_is_a_users_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    main(["generate", "--out", str(out), "--tasks", "mobilenetv4", "--configs", "low-resource"])
    code = main(
        ["run", "--backend", "k8s", "--out", str(out), "--kubeconfig", str(tmp_path / "no")]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("error: cannot load a Kubernetes configuration")
