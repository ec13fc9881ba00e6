"""The live submitter against one fake Kubernetes API server per cluster (HTTP level, the
real ``kubernetes`` client), with the failures the user met on 100-job queues: a job
submitted twice / to two nodes, a job submitted without its reservation, a job that
failed to schedule and was never re-assigned."""

from __future__ import annotations

import pytest

from k8s_gpu_rl.envs.jobs.live.manifest import LiveOptions
from k8s_gpu_rl.envs.jobs.live.submitter import LiveSubmitter, SubmitError
from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec
from k8s_gpu_rl.testing.fake_kube_api import (
    FakeKubeApi,
    PodFate,
    wait_until,
    write_multi_kubeconfig,
)


def spec(name: str, gpus: int = 1) -> JobSpec:
    return JobSpec(name, 0.0, "densenet121", 20.0, 100, gpus, 9000, 50)


@pytest.fixture()
def two_sites(tmp_path):
    a = FakeKubeApi(
        pod_fate=lambda pod: PodFate(
            node_name=pod["spec"]["nodeSelector"]["kubernetes.io/hostname"], run_s=0.3
        )
    )
    b = FakeKubeApi(pod_fate=lambda pod: PodFate(node_name="b-node1", run_s=0.2))
    with a, b:
        kubeconfig = write_multi_kubeconfig(tmp_path / "kubeconfig", {"ctx-a": a, "ctx-b": b})
        sub = LiveSubmitter(
            str(kubeconfig),
            {"site-a": "ctx-a", "site-b": "ctx-b"},
            LiveOptions(unschedulable_grace_s=0.3),
        )
        sub.start()
        try:
            yield sub, a, b
        finally:
            sub.stop()


def jobs_on(api: FakeKubeApi) -> list[dict]:
    return api.list("jobs", "default")


def test_a_job_is_a_hami_job_with_the_users_annotations_and_completes(two_sites) -> None:
    sub, a, _ = two_sites
    sub.submit(spec("densenet-1", gpus=2), "site-a", "a-node1", 9000, 50)
    (job,) = jobs_on(a)
    assert job["metadata"]["name"] == "densenet-1-a0"
    ann = job["metadata"]["annotations"]
    assert (ann["model_name"], ann["data_size"], ann["epoch"]) == ("densenet121", "20.0", "100")
    tpl = job["spec"]["template"]
    assert tpl["spec"]["schedulerName"] == "hami-scheduler"
    assert tpl["metadata"]["annotations"]["hami.io/resource-pool"] == "poc"
    limits = tpl["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem": "9000",
        "nvidia.com/gpucores": "50",
    }
    assert job["spec"]["parallelism"] == 2 and tpl["spec"]["nodeSelector"] == {
        "kubernetes.io/hostname": "a-node1"
    }
    wait_until(lambda: sub.attempts["densenet-1"].state == "succeeded", timeout=10)
    pods = a.pods("default")
    assert {p["spec"]["nodeName"] for p in pods} == {"a-node1"}  # both workers on the chosen node


def test_a_job_is_never_submitted_twice_nor_to_a_second_node(two_sites) -> None:
    sub, a, b = two_sites
    sub.submit(spec("once"), "site-a", "a-node1", 9000)
    with pytest.raises(SubmitError, match="already runs as once-a0 on site-a/a-node1"):
        sub.submit(spec("once"), "site-b", "b-node1", 9000)
    with pytest.raises(SubmitError, match="already runs"):
        sub.submit(spec("once"), "site-a", "a-node2", 9000)
    assert len(jobs_on(a)) == 1 and jobs_on(b) == []
    assert len(a.requests_matching("POST", r".*/jobs$")) == 1


def test_a_reserved_node_takes_only_its_owner_and_the_owner_carries_it(two_sites) -> None:
    sub, a, _ = two_sites
    sub.reserve("hungry", "site-a", "a-node1")
    with pytest.raises(SubmitError, match="reserved for hungry"):
        sub.submit(spec("small"), "site-a", "a-node1", 4000)
    sub.submit(spec("hungry", gpus=2), "site-a", "a-node1", 20000)
    (job,) = jobs_on(a)
    assert job["metadata"]["annotations"]["k8s-gpu-rl/reservation"] == "hungry"
    assert ("site-a", "a-node1") not in sub.reservations  # used up by its owner


def test_a_job_that_cannot_be_scheduled_is_requeued_and_runs_elsewhere(tmp_path) -> None:
    stuck = FakeKubeApi(pod_fate=lambda pod: PodFate(schedule=False))
    fine = FakeKubeApi(pod_fate=lambda pod: PodFate(node_name="b-node1", run_s=0.2))
    with stuck, fine:
        kubeconfig = write_multi_kubeconfig(tmp_path / "kc", {"a": stuck, "b": fine})
        sub = LiveSubmitter(
            str(kubeconfig), {"site-a": "a", "site-b": "b"}, LiveOptions(unschedulable_grace_s=0.3)
        ).start()
        try:
            sub.submit(spec("pending"), "site-a", "a-node1", 9000)
            back = wait_until(lambda: sub.requeued(), timeout=10)
            assert back == ["pending"]
            assert sub.attempts["pending"].state == "unschedulable"
            wait_until(lambda: not jobs_on(stuck), timeout=10)  # its Job is deleted there
            again = sub.submit(spec("pending"), "site-b", "b-node1", 9000)
            assert again.name == "pending-a1"  # a new attempt, a new idempotent name
            wait_until(lambda: sub.attempts["pending"].state == "succeeded", timeout=10)
        finally:
            sub.stop()


# --------------------------------------------------------------------------- Prometheus read


@pytest.mark.timeout(90)
def test_metrics_reads_each_clusters_hami_series_from_a_real_prometheus(tmp_path) -> None:
    """A real Prometheus scrapes HAMi's metric names (device plugin and scheduler, FACTS:
    v2.9+ names and labels); the submitter reads them per cluster, labels intact."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port
    from k8s_gpu_rl.envs.backends.local.promserver import PrometheusServer

    registry = CollectorRegistry()
    device = ["node", "device_uuid"]
    used = Gauge("hami_host_gpu_memory_used_bytes", "", device, registry=registry)
    used.labels("a-node1", "GPU-0").set(3 * 2**30)
    used.labels("a-node1", "GPU-1").set(2**30)
    limit = Gauge(
        "hami_vgpu_memory_limit_bytes", "", [*device, "namespace", "pod", "container"],
        registry=registry,
    )  # fmt: skip
    limit.labels("a-node1", "GPU-0", "default", "train-7", "main").set(9000 * 2**20)
    Gauge("hami_gpu_core_allocated_ratio", "", device, registry=registry).labels(
        "a-node1", "GPU-0"
    ).set(0.5)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    group = ProcessGroup(prefix="k8sgpurl-test-")
    a = FakeKubeApi(pod_fate=lambda pod: PodFate(node_name="a-node1", run_s=0.1))
    try:
        prom = PrometheusServer(group, free_port(), scrape_interval_s=0.5)
        prom.set_targets("hami", [(f"127.0.0.1:{port}", {})])
        prom.wait_for_samples("hami_gpu_core_allocated_ratio", timeout_s=30)
        with a:
            kubeconfig = write_multi_kubeconfig(tmp_path / "kubeconfig", {"ctx-a": a})
            sub = LiveSubmitter(
                str(kubeconfig), {"site-a": "ctx-a"}, prometheus={"site-a": prom.url}
            )
            got = sub.metrics("site-a")
            with pytest.raises(SubmitError, match="no Prometheus URL for cluster 'site-b'"):
                sub.metrics("site-b")
    finally:
        group.close(grace_s=5)
        server.shutdown()
        thread.join(5)
    memory = {s["device_uuid"]: v for s, v in got["hami_host_gpu_memory_used_bytes"]}
    assert memory == {"GPU-0": 3 * 2**30, "GPU-1": 2**30}
    ((series, value),) = got["hami_vgpu_memory_limit_bytes"]
    assert value == 9000 * 2**20
    assert (series["namespace"], series["pod"], series["container"]) == (
        "default",
        "train-7",
        "main",
    )
    ((series, value),) = got["hami_gpu_core_allocated_ratio"]
    assert value == 0.5 and series["node"] == "a-node1" and series["job"] == "hami"
