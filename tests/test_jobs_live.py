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
