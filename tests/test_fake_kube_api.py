"""The fake Kubernetes API server (k8s_gpu_rl.testing.fake_kube_api) against the REAL client.

Each test drives the unmodified official client over HTTP on loopback and checks what the
client sees (typed models, ApiException status/reason/headers) and what the fake recorded.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from fractions import Fraction

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from k8s_gpu_rl.testing.fake_kube_api import (
    ApiError,
    FakeKubeApi,
    PodFate,
    json_merge_patch,
    json_patch,
    matches_label_selector,
    parse_quantity,
    strategic_merge_patch,
    wait_until,
    write_multi_kubeconfig,
)

pytestmark = pytest.mark.timeout(60)

NS = "gpu-infer"
DEP = "triton"
SIDECAR = {
    "name": "metrics-proxy",
    "image": "registry.k8s.io/pause:3.9",
    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
}


@pytest.fixture
def api():
    with FakeKubeApi(pod_ready_delay_s=0.2) as fake:
        fake.add_deployment(
            NS,
            DEP,
            replicas=2,
            labels={"app": DEP, "tier": "inference"},
            annotations={"team": "rl"},
            limits={
                "nvidia.com/gpu": "1",
                "nvidia.com/gpucores": "30",
                "nvidia.com/gpumem": "4000",
            },
            scheduler_name="hami-scheduler",
            extra_containers=[SIDECAR],
        )
        yield fake


@pytest.fixture
def kube(api):
    api_client = client.ApiClient(api.configuration())
    yield (
        client.AppsV1Api(api_client),
        client.CoreV1Api(api_client),
        client.AutoscalingV2Api(api_client),
    )
    api_client.close()


def _raw(api: FakeKubeApi, path: str, method: str = "GET") -> tuple[int, dict, dict]:
    req = urllib.request.Request(api.url + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def _ready_pods(core, selector: str = f"app={DEP}"):
    pods = core.list_namespaced_pod(NS, label_selector=selector).items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def _hash(pod) -> str:
    return pod.metadata.labels["pod-template-hash"]


# --------------------------------------------------------------------------- reads


def test_read_deployment_has_realistic_shape(api, kube):
    apps, _, _ = kube
    dep = apps.read_namespaced_deployment(DEP, NS)
    assert isinstance(dep, client.V1Deployment)
    assert dep.kind == "Deployment" and dep.api_version == "apps/v1"
    assert dep.metadata.uid and dep.metadata.generation == 1
    assert (
        isinstance(dep.metadata.resource_version, str) and dep.metadata.resource_version.isdigit()
    )
    assert dep.metadata.creation_timestamp is not None
    assert dep.metadata.annotations["team"] == "rl"
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert dep.spec.replicas == 2
    assert dep.spec.selector.match_labels == {"app": DEP, "tier": "inference"}
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.strategy.rolling_update.max_surge == "25%"
    assert dep.spec.strategy.rolling_update.max_unavailable == "25%"
    pod_spec = dep.spec.template.spec
    assert pod_spec.scheduler_name == "hami-scheduler"
    assert [c.name for c in pod_spec.containers] == ["triton", "metrics-proxy"]
    assert pod_spec.containers[0].resources.limits["nvidia.com/gpucores"] == "30"
    st = dep.status
    assert st.observed_generation == 1
    assert (st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas) == (
        2,
        2,
        2,
        2,
    )
    assert st.unavailable_replicas is None  # zero counters are omitted, like the real server
    conds = {c.type: c for c in st.conditions}
    assert conds["Available"].status == "True"
    assert conds["Available"].reason == "MinimumReplicasAvailable"
    assert conds["Progressing"].reason == "NewReplicaSetAvailable"

    code, raw, headers = _raw(api, f"/apis/apps/v1/namespaces/{NS}/deployments/{DEP}")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert "unavailableReplicas" not in raw["status"]
    code, listing, _ = _raw(api, f"/apis/apps/v1/namespaces/{NS}/deployments")
    assert listing["kind"] == "DeploymentList" and listing["apiVersion"] == "apps/v1"
    assert listing["metadata"]["resourceVersion"].isdigit()
    assert "kind" not in listing["items"][0]  # list items carry no kind/apiVersion


def test_list_deployments_replicasets_and_pods_by_selector(api, kube):
    apps, core, _ = kube
    api.add_deployment(NS, "other", replicas=1, labels={"app": "other"})
    deps = apps.list_namespaced_deployment(NS, label_selector="tier=inference").items
    assert [d.metadata.name for d in deps] == [DEP]
    assert len(apps.list_namespaced_deployment(NS).items) == 2

    rss = apps.list_namespaced_replica_set(NS, label_selector=f"app={DEP}").items
    assert len(rss) == 1
    rs = rss[0]
    dep = apps.read_namespaced_deployment(DEP, NS)
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.owner_references[0].uid == dep.metadata.uid
    assert rs.spec.replicas == 2 and rs.status.ready_replicas == 2

    pods = core.list_namespaced_pod(NS, label_selector=f"app={DEP}").items
    assert len(pods) == 2
    for pod in pods:
        assert re.fullmatch(rf"{DEP}-{_hash(pod)}-[a-z0-9]{{5}}", pod.metadata.name)
        assert rs.metadata.name == f"{DEP}-{_hash(pod)}"
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.uid, owner.controller) == ("ReplicaSet", rs.metadata.uid, True)
        assert pod.status.phase == "Running" and pod.spec.node_name
        # requests default to limits on pods (SetDefaults_Pod)
        assert pod.spec.containers[0].resources.requests["nvidia.com/gpucores"] == "30"
        read = core.read_namespaced_pod(pod.metadata.name, NS)
        assert read.metadata.uid == pod.metadata.uid

    assert len(core.list_namespaced_pod(NS, label_selector="app in (triton,other)").items) == 3
    assert len(core.list_namespaced_pod(NS, label_selector="app in (other)").items) == 1
    assert len(core.list_namespaced_pod(NS, label_selector="app notin (other)").items) == 2
    assert len(core.list_namespaced_pod(NS, label_selector="app!=triton").items) == 1
    assert len(core.list_namespaced_pod(NS, label_selector="app=triton,tier=inference").items) == 2
    assert len(core.list_namespaced_pod(NS, label_selector="app=triton,tier=batch").items) == 0
    assert len(core.list_namespaced_pod(NS, label_selector="tier").items) == 2
    assert core.list_namespaced_pod("elsewhere").items == []
    running = core.list_namespaced_pod(NS, field_selector="status.phase=Running").items
    assert len(running) == 3


# --------------------------------------------------------------------------- scale


def test_patch_scale_creates_pods_that_become_ready_then_scale_down(api, kube):
    apps, core, _ = kube
    scale = apps.read_namespaced_deployment_scale(DEP, NS)
    assert isinstance(scale, client.V1Scale)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert (scale.spec.replicas, scale.status.replicas) == (2, 2)
    assert scale.status.selector == "app=triton,tier=inference"

    api.clear_requests()
    out = apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 4}})
    assert out.spec.replicas == 4
    (req,) = api.requests_matching("PATCH", r"/deployments/triton/scale$")
    assert req.headers["Content-Type"] == "application/strategic-merge-patch+json"
    assert req.body == {"spec": {"replicas": 4}}

    dep = apps.read_namespaced_deployment(DEP, NS)
    assert dep.spec.replicas == 4 and dep.metadata.generation == 2
    wait_until(lambda: len(_ready_pods(core)) == 4, timeout=10)
    wait_until(lambda: apps.read_namespaced_deployment(DEP, NS).status.ready_replicas == 4, 10)
    dep = apps.read_namespaced_deployment(DEP, NS)
    assert dep.status.observed_generation == 2 and dep.status.available_replicas == 4
    assert len({_hash(p) for p in _ready_pods(core)}) == 1  # scaling keeps the template hash
    events = core.list_namespaced_event(NS).items
    assert any(e.reason == "ScalingReplicaSet" and "from 2 to 4" in e.message for e in events)

    scale = apps.read_namespaced_deployment_scale(DEP, NS)
    scale.spec.replicas = 1
    apps.replace_namespaced_deployment_scale(DEP, NS, scale)
    wait_until(
        lambda: len(core.list_namespaced_pod(NS, label_selector=f"app={DEP}").items) == 1, 10
    )
    wait_until(lambda: apps.read_namespaced_deployment(DEP, NS).status.replicas == 1, 10)


def test_new_pods_pass_through_pending_before_ready(kube, api):
    apps, core, _ = kube
    api.pod_ready_delay_s = 1.0
    apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 3}})
    pod = wait_until(
        lambda: next(
            (p for p in core.list_namespaced_pod(NS).items if p.status.phase == "Pending"), None
        ),
        timeout=5,
    )
    ready = (
        next(c for c in pod.status.conditions or [] if c.type == "Ready")
        if pod.status.conditions
        else None
    )
    assert ready is None or ready.status == "False"
    dep = apps.read_namespaced_deployment(DEP, NS)
    assert dep.status.ready_replicas == 2
    assert dep.status.unavailable_replicas == 1
    wait_until(lambda: len(_ready_pods(core)) == 3, timeout=10)


def test_pods_pending_keeps_rollout_stuck_until_released():
    with FakeKubeApi(pod_ready_delay_s=0.1) as fake:
        fake.add_deployment(NS, DEP, replicas=1, progress_deadline_s=1)
        c = client.ApiClient(fake.configuration())
        apps, core = client.AppsV1Api(c), client.CoreV1Api(c)
        fake.pods_pending = True
        apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 2}})

        def unschedulable():
            for p in core.list_namespaced_pod(NS).items:
                for cond in p.status.conditions or []:
                    if cond.type == "PodScheduled" and cond.status == "False":
                        return p, cond
            return None

        pod, cond = wait_until(unschedulable, timeout=5)
        assert pod.status.phase == "Pending" and pod.spec.node_name is None
        assert cond.reason == "Unschedulable"
        assert "no available node" in cond.message
        time.sleep(0.5)
        assert core.read_namespaced_pod(pod.metadata.name, NS).status.phase == "Pending"

        def deadline_exceeded():
            d = apps.read_namespaced_deployment(DEP, NS)
            prog = next(x for x in d.status.conditions if x.type == "Progressing")
            return d if prog.reason == "ProgressDeadlineExceeded" else None

        dep = wait_until(deadline_exceeded, timeout=6)
        prog = next(x for x in dep.status.conditions if x.type == "Progressing")
        assert prog.status == "False"
        assert dep.status.ready_replicas == 1 and dep.status.unavailable_replicas == 1
        events = core.list_namespaced_event(
            NS, field_selector=f"involvedObject.name={pod.metadata.name}"
        )
        assert any(e.reason == "FailedScheduling" and e.type == "Warning" for e in events.items)

        fake.pods_pending = False
        wait_until(lambda: len(_ready_pods(core)) == 2, timeout=10)
        wait_until(
            lambda: (
                apps.read_namespaced_deployment(DEP, NS).status.conditions[1].reason
                == "NewReplicaSetAvailable"
            ),
            timeout=5,
        )
        c.close()


# --------------------------------------------------------------------------- patches


def test_strategic_merge_patch_of_limits_keeps_other_fields_and_rolls_pods(api, kube):
    apps, core, _ = kube
    before = apps.read_namespaced_deployment(DEP, NS)
    old_hashes = {_hash(p) for p in core.list_namespaced_pod(NS).items}
    assert len(old_hashes) == 1
    api.clear_requests()

    body = {
        "metadata": {"annotations": {"rl.k8s-gpu/step": "7"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "triton",
                            "resources": {
                                "limits": {"nvidia.com/gpucores": "60", "nvidia.com/gpumem": "6000"}
                            },
                        }
                    ]
                }
            }
        },
    }
    out = apps.patch_namespaced_deployment(DEP, NS, body)
    (req,) = api.requests_matching("PATCH", rf"/deployments/{DEP}$")
    assert req.headers["Content-Type"] == "application/strategic-merge-patch+json"

    triton, sidecar = out.spec.template.spec.containers
    assert triton.name == "triton" and sidecar.name == "metrics-proxy"
    assert triton.resources.limits == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpucores": "60",
        "nvidia.com/gpumem": "6000",
    }
    assert triton.image == before.spec.template.spec.containers[0].image
    assert [p.container_port for p in triton.ports] == [8000, 8001, 8002]
    assert sidecar.to_dict() == before.spec.template.spec.containers[1].to_dict()
    assert out.metadata.annotations["team"] == "rl"
    assert out.metadata.annotations["rl.k8s-gpu/step"] == "7"
    assert out.metadata.labels == before.metadata.labels
    assert out.spec.replicas == 2
    assert out.metadata.generation == 2
    assert int(out.metadata.resource_version) > int(before.metadata.resource_version)

    # the template changed: pods are replaced by a new ReplicaSet, availability kept (surge 1,
    # maxUnavailable 0 for 2 replicas)
    min_ready = 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = api.ready_pods(NS, f"app={DEP}")
        min_ready = min(min_ready, len(ready))
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in api.pods(NS)}
        if len(ready) == 2 and hashes and not hashes & old_hashes:
            break
        time.sleep(0.01)
    else:
        pytest.fail("rollout did not finish")
    assert min_ready == 2
    new_pods = _ready_pods(core)
    assert {_hash(p) for p in new_pods}.isdisjoint(old_hashes)
    assert all(
        p.spec.containers[0].resources.limits["nvidia.com/gpucores"] == "60" for p in new_pods
    )
    rss = {r.metadata.name: r for r in apps.list_namespaced_replica_set(NS).items}
    assert len(rss) == 2
    new_rs = rss[f"{DEP}-{_hash(new_pods[0])}"]
    assert new_rs.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert new_rs.spec.replicas == 2
    (old_rs,) = [r for n, r in rss.items() if n != new_rs.metadata.name]
    assert old_rs.spec.replicas == 0
    wait_until(lambda: apps.read_namespaced_deployment(DEP, NS).status.updated_replicas == 2, 5)
    dep = apps.read_namespaced_deployment(DEP, NS)
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"


def test_metadata_only_patch_does_not_bump_generation_or_roll(api, kube):
    apps, core, _ = kube
    pods_before = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    out = apps.patch_namespaced_deployment(DEP, NS, {"metadata": {"labels": {"rl": "on"}}})
    assert out.metadata.generation == 1 and out.metadata.labels["rl"] == "on"
    time.sleep(0.3)
    assert {p.metadata.name for p in core.list_namespaced_pod(NS).items} == pods_before
    # a no-op patch does not change resourceVersion
    again = apps.patch_namespaced_deployment(DEP, NS, {"metadata": {"labels": {"rl": "on"}}})
    assert (
        again.metadata.resource_version
        == apps.read_namespaced_deployment(DEP, NS).metadata.resource_version
    )


def test_json_patch_and_merge_patch_content_types(api, kube):
    apps, _, _ = kube
    api.clear_requests()
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/annotations/hami.io~1note", "value": "x"},
    ]
    out = apps.patch_namespaced_deployment(DEP, NS, ops)
    assert out.spec.replicas == 3 and out.metadata.annotations["hami.io/note"] == "x"
    assert api.requests[-1].headers["Content-Type"] == "application/json-patch+json"

    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(
            DEP, NS, [{"op": "test", "path": "/spec/replicas", "value": 9}]
        )
    assert exc.value.status == 422
    assert apps.read_namespaced_deployment(DEP, NS).spec.replicas == 3

    # merge patch replaces lists wholesale: the sidecar goes away
    out = apps.patch_namespaced_deployment(
        DEP,
        NS,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "triton", "image": "triton:next"}]}}
            },
            "metadata": {"annotations": {"team": None}},
        },
        _content_type="application/merge-patch+json",
    )
    assert api.requests[-1].headers["Content-Type"] == "application/merge-patch+json"
    assert [c.name for c in out.spec.template.spec.containers] == ["triton"]
    assert "team" not in out.metadata.annotations


# --------------------------------------------------------------------------- errors


def test_not_found_unknown_path_and_already_exists(api, kube):
    apps, core, auto = kube
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("nope", NS)
    assert exc.value.status == 404
    status = json.loads(exc.value.body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["reason"] == "NotFound" and status["code"] == 404
    assert status["message"] == 'deployments.apps "nope" not found'
    assert status["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("nope", NS)
    assert (
        exc.value.status == 404 and json.loads(exc.value.body)["message"] == 'pods "nope" not found'
    )

    code, body, _ = _raw(api, "/apis/bogus.io/v1/namespaces/x/widgets")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    code, body, _ = _raw(api, "/healthz/nothing")
    assert code == 404 and body["kind"] == "Status"

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="rl-state"), data={"step": "1"})
    created = core.create_namespaced_config_map(NS, cm)
    assert created.metadata.uid and created.data == {"step": "1"}
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(NS, cm)
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "AlreadyExists"


def test_put_with_stale_resource_version_conflicts(api, kube):
    apps, _, _ = kube
    dep = apps.read_namespaced_deployment(DEP, NS)
    dep.spec.replicas = 3
    updated = apps.replace_namespaced_deployment(DEP, NS, dep)  # current RV: accepted
    assert updated.spec.replicas == 3
    assert updated.metadata.resource_version != dep.metadata.resource_version

    dep.spec.replicas = 4  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment(DEP, NS, dep)
    assert exc.value.status == 409
    body = json.loads(exc.value.body)
    assert body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    assert apps.read_namespaced_deployment(DEP, NS).spec.replicas == 3

    with pytest.raises(ApiException) as exc:  # patches carrying a stale RV conflict too
        apps.patch_namespaced_deployment(
            DEP, NS, {"metadata": {"resourceVersion": dep.metadata.resource_version}}
        )
    assert exc.value.status == 409


def test_validation_errors_are_422(api, kube):
    apps, _, _ = kube
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": -1}})
    assert exc.value.status == 422 and json.loads(exc.value.body)["reason"] == "Invalid"

    # extended resources need requests == limits (the real apiserver rule)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "triton",
                            "resources": {
                                "limits": {"nvidia.com/gpucores": "50"},
                                "requests": {"nvidia.com/gpucores": "30"},
                            },
                        }
                    ]
                }
            }
        }
    }
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(DEP, NS, patch)
    assert exc.value.status == 422
    assert (
        "must be equal to nvidia.com/gpucores limit of 50" in json.loads(exc.value.body)["message"]
    )

    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(
            DEP, NS, {"spec": {"selector": {"matchLabels": {"app": "x"}}}}
        )
    assert exc.value.status == 422
    assert apps.read_namespaced_deployment(DEP, NS).metadata.generation == 1


# --------------------------------------------------------------------------- HPA & configmaps


def test_hpa_create_read_replace_delete(api, kube):
    _, _, auto = kube
    hpa = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="triton-hpa", labels={"app": DEP}),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name=DEP
            ),
            min_replicas=1,
            max_replicas=4,
            metrics=[
                client.V2MetricSpec(
                    type="Resource",
                    resource=client.V2ResourceMetricSource(
                        name="cpu",
                        target=client.V2MetricTarget(type="Utilization", average_utilization=70),
                    ),
                )
            ],
        ),
    )
    created = auto.create_namespaced_horizontal_pod_autoscaler(NS, hpa)
    assert created.kind == "HorizontalPodAutoscaler"
    assert created.api_version == "autoscaling/v2"
    assert created.metadata.uid and created.metadata.resource_version
    assert created.status.desired_replicas == 2 and created.status.current_replicas == 2
    (req,) = api.requests_matching(
        "POST", "/apis/autoscaling/v2/namespaces/gpu-infer/horizontalpodautoscalers$"
    )
    assert req.body["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": DEP,
    }

    read = auto.read_namespaced_horizontal_pod_autoscaler("triton-hpa", NS)
    assert read.spec.max_replicas == 4
    assert read.spec.metrics[0].resource.target.average_utilization == 70
    assert [h.metadata.name for h in auto.list_namespaced_horizontal_pod_autoscaler(NS).items] == [
        "triton-hpa"
    ]
    with pytest.raises(ApiException) as exc:
        auto.create_namespaced_horizontal_pod_autoscaler(NS, hpa)
    assert exc.value.status == 409

    read.spec.max_replicas = 6
    replaced = auto.replace_namespaced_horizontal_pod_autoscaler("triton-hpa", NS, read)
    assert replaced.spec.max_replicas == 6 and replaced.metadata.generation == 2
    patched = auto.patch_namespaced_horizontal_pod_autoscaler(
        "triton-hpa", NS, {"spec": {"minReplicas": 2}}
    )
    assert patched.spec.min_replicas == 2 and patched.spec.max_replicas == 6

    status = auto.delete_namespaced_horizontal_pod_autoscaler("triton-hpa", NS)
    if not isinstance(status, dict):  # kubernetes>=37 types the answer as a plain object
        status = client.ApiClient().sanitize_for_serialization(status)
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "triton-hpa" and status["details"]["group"] == "autoscaling"
    with pytest.raises(ApiException) as exc:
        auto.read_namespaced_horizontal_pod_autoscaler("triton-hpa", NS)
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        auto.delete_namespaced_horizontal_pod_autoscaler("triton-hpa", NS)
    assert exc.value.status == 404


def test_configmap_crud_and_dry_run_stores_nothing(api, kube):
    apps, core, _ = kube
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="policy"), data={"ckpt": "a"})
    dry = core.create_namespaced_config_map(NS, cm, dry_run="All")
    assert dry.metadata.name == "policy" and dry.data == {"ckpt": "a"}
    assert api.requests[-1].query == {"dryRun": "All"}
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("policy", NS)
    assert exc.value.status == 404

    core.create_namespaced_config_map(NS, cm)
    assert core.read_namespaced_config_map("policy", NS).data == {"ckpt": "a"}
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["policy"]
    core.delete_namespaced_config_map("policy", NS, dry_run="All")
    assert core.read_namespaced_config_map("policy", NS).data == {"ckpt": "a"}
    core.delete_namespaced_config_map("policy", NS)
    assert core.list_namespaced_config_map(NS).items == []

    rv = apps.read_namespaced_deployment(DEP, NS).metadata.resource_version
    out = apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 5}}, dry_run="All")
    assert out.spec.replicas == 5
    dep = apps.read_namespaced_deployment(DEP, NS)
    assert dep.spec.replicas == 2 and dep.metadata.resource_version == rv
    out = apps.patch_namespaced_deployment(DEP, NS, {"spec": {"replicas": 7}}, dry_run="All")
    assert out.spec.replicas == 7
    assert apps.read_namespaced_deployment(DEP, NS).spec.replicas == 2
    time.sleep(0.2)
    assert len(api.pods(NS)) == 2

    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(DEP, NS, {"spec": {"replicas": 7}}, dry_run="Bogus")
    assert exc.value.status == 400


# --------------------------------------------------------------------------- faults


def test_fail_next_500_then_success(api, kube):
    apps, _, _ = kube
    api.fail_next("PATCH", r"/deployments/triton/scale$", 500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 3}})
        assert exc.value.status == 500
        assert json.loads(exc.value.body)["reason"] == "InternalError"
    assert apps.read_namespaced_deployment(DEP, NS).spec.replicas == 2  # GET not affected
    out = apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 3}})
    assert out.spec.replicas == 3
    assert len(api.requests_matching("PATCH", r"/scale$")) == 3


def test_fail_next_429_carries_retry_after_and_other_codes(api, kube):
    apps, core, _ = kube
    api.fail_next("PATCH", rf"/deployments/{DEP}/scale$", 429, retry_after=2)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 3}})
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "2"
    body = json.loads(exc.value.body)
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 2
    assert apps.read_namespaced_deployment(DEP, NS).spec.replicas == 2

    # urllib3's default Retry inside the client retries idempotent verbs (GET, PUT, DELETE) on a
    # 429/503 that carries Retry-After, after sleeping it: the caller sees the success.
    api.clear_requests()
    api.fail_next("GET", rf"/deployments/{DEP}$", 429, retry_after=1)
    t0 = time.monotonic()
    assert apps.read_namespaced_deployment(DEP, NS).metadata.name == DEP
    assert time.monotonic() - t0 >= 0.9
    assert len(api.requests_matching("GET", rf"/deployments/{DEP}$")) == 2

    api.fail_next("*", r"/pods$", 503)
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod(NS)
    assert exc.value.status == 503
    assert json.loads(exc.value.body)["reason"] == "ServiceUnavailable"

    api.fail_next("PUT", rf"/deployments/{DEP}$", 409)
    dep = apps.read_namespaced_deployment(DEP, NS)
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment(DEP, NS, dep)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    assert apps.replace_namespaced_deployment(DEP, NS, dep).spec.replicas == 2


def test_down_refuses_connections_and_up_restores_same_port(api, kube):
    apps, _, _ = kube
    port = api.port
    apps.read_namespaced_deployment(DEP, NS)  # warm a keep-alive connection in the pool
    api.down()
    assert not api.is_up
    with pytest.raises(Exception) as exc:  # urllib3 MaxRetryError/ProtocolError
        apps.read_namespaced_deployment(DEP, NS, _request_timeout=2)
    assert not isinstance(exc.value, ApiException)
    with pytest.raises(OSError):
        urllib.request.urlopen(api.url + "/version", timeout=2)
    api.up()
    assert api.port == port and api.is_up
    assert apps.read_namespaced_deployment(DEP, NS).metadata.name == DEP
    assert client.VersionApi(apps.api_client).get_code().git_version.startswith("v1.")


# --------------------------------------------------------------------------- kubeconfig & recording


def test_kubeconfig_is_accepted_by_load_kube_config(tmp_path):
    with FakeKubeApi(require_auth=True, token="s3cret") as fake:
        fake.add_deployment("team-a", "triton", replicas=1)
        path = fake.write_kubeconfig(tmp_path / "kube" / "config", namespace="team-a")
        contexts, active = config.list_kube_config_contexts(config_file=str(path))
        assert active["context"]["namespace"] == "team-a"
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=cfg)
        assert cfg.host == fake.url
        with client.ApiClient(cfg) as api_client:
            dep = client.AppsV1Api(api_client).read_namespaced_deployment("triton", "team-a")
            assert dep.spec.replicas == 1
        assert fake.requests[-1].headers["Authorization"] == "Bearer s3cret"

        # without the token the fake answers 401, like an apiserver with authentication
        with client.ApiClient(client.Configuration(host=fake.url)) as anon:
            with pytest.raises(ApiException) as exc:
                client.AppsV1Api(anon).read_namespaced_deployment("triton", "team-a")
            assert exc.value.status == 401


def test_requests_are_recorded_and_can_be_cleared(api, kube):
    apps, core, _ = kube
    api.clear_requests()
    assert api.requests == []
    core.list_namespaced_pod(NS, label_selector="app=triton")
    apps.patch_namespaced_deployment(DEP, NS, {"spec": {"replicas": 2}})
    method, path, query, headers, body = api.requests[0]
    assert (method, path) == ("GET", f"/api/v1/namespaces/{NS}/pods")
    assert query == {"labelSelector": "app=triton"}
    assert body is None
    assert "Content-Type" not in headers
    assert api.requests[1].body == {"spec": {"replicas": 2}}
    assert len(api.requests_matching("*", "/pods")) == 1
    assert len(api.requests_matching("PATCH")) == 1
    api.clear_requests()
    assert api.requests_matching() == []


def test_deleted_pod_is_replaced(api, kube):
    _, core, _ = kube
    victim = core.list_namespaced_pod(NS).items[0].metadata.name
    core.delete_namespaced_pod(victim, NS)
    wait_until(
        lambda: (
            len(_ready_pods(core)) == 2
            and victim not in {p.metadata.name for p in core.list_namespaced_pod(NS).items}
        ),
        timeout=10,
    )


def test_terminating_pods_and_recreate_strategy():
    with FakeKubeApi(pod_ready_delay_s=0.1, pod_termination_delay_s=0.6) as fake:
        fake.add_deployment(NS, DEP, replicas=2, strategy={"type": "Recreate"})
        with client.ApiClient(fake.configuration()) as c:
            apps, core = client.AppsV1Api(c), client.CoreV1Api(c)
            apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 1}})
            pods = wait_until(
                lambda: [
                    p for p in core.list_namespaced_pod(NS).items if p.metadata.deletion_timestamp
                ],
                timeout=5,
            )
            assert pods[0].metadata.deletion_grace_period_seconds == 30
            dep = apps.read_namespaced_deployment_status(DEP, NS)
            assert dep.status.replicas == 1  # terminating pods are not counted
            wait_until(lambda: len(core.list_namespaced_pod(NS).items) == 1, timeout=5)

            old = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
            apps.patch_namespaced_deployment(
                DEP,
                NS,
                {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}},
            )
            # Recreate: the old pod terminates before any new one is created
            (old_name,) = old

            def old_terminating():
                pod = fake.get("pods", NS, old_name)
                return pod is None or "deletionTimestamp" in pod["metadata"]

            wait_until(old_terminating, timeout=5)
            assert all(p["metadata"]["name"] in old for p in fake.pods(NS))
            wait_until(
                lambda: [p for p in _ready_pods(core) if p.metadata.name not in old], timeout=5
            )
            new = core.list_namespaced_pod(NS).items[0]
            assert new.metadata.annotations == {"restartedAt": "now"}


# --------------------------------------------------------------------------- pure helpers


def test_patch_helpers_and_quantities():
    doc = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
            "tolerations": [{"key": "t"}],
        }
    }
    out = strategic_merge_patch(
        doc,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [
                    {"name": "a", "env": [{"name": "J", "value": "2"}]},
                    {"name": "b", "$patch": "delete"},
                    {"name": "c", "image": "z"},
                ],
                "tolerations": [],
            }
        },
    )
    assert [c["name"] for c in out["spec"]["containers"]] == ["a", "c"]
    assert out["spec"]["containers"][0]["env"] == [
        {"name": "K", "value": "1"},
        {"name": "J", "value": "2"},
    ]
    assert out["spec"]["containers"][0]["image"] == "x"
    assert out["spec"]["tolerations"] == []
    assert doc["spec"]["containers"][1]["name"] == "b"  # input untouched
    assert json_merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
    assert json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3}]) == {
        "a": [1, 2, 3]
    }
    assert json_patch({"a": [1, 2]}, [{"op": "remove", "path": "/a/0"}]) == {"a": [2]}
    assert json_patch({"a": 1}, [{"op": "move", "from": "/a", "path": "/b"}]) == {"b": 1}
    with pytest.raises(ValueError):
        json_patch({"a": 1}, [{"op": "replace", "path": "/missing", "value": 2}])
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("4Gi") == 4 * 2**30 and parse_quantity(3) == 3
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError):
        parse_quantity("12XB")
    assert matches_label_selector({"a": "1"}, "a in (1, 2),!b")
    assert not matches_label_selector({"a": "1", "b": "x"}, "a in (1, 2),!b")


# --------------------------------------------------------------------------- bare pods, logs,
# watches, batch/v1 Jobs, programmable pod fate, several servers (issues 13 and 14)

FAST = {"start_delay_s": 0.03, "run_s": 0.05}


def _pod_body(name: str | None = "task", restart: str = "Never", **container) -> dict:
    c = {"name": "main", "image": "busybox:1.36", **container}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"sweep": "s1"}, "annotations": {"hami.io/resource-pool": "a"}},
        "spec": {"restartPolicy": restart, "schedulerName": "hami-scheduler", "containers": [c]},
    }
    if name:
        body["metadata"]["name"] = name
    return body


def _job_body(name: str, backoff: int | None = None, restart: str = "Never") -> dict:
    spec = {
        "template": {
            "metadata": {"labels": {"queue": "q1"}, "annotations": {"hami.io/resource-pool": "b"}},
            "spec": {
                "restartPolicy": restart,
                "schedulerName": "hami-scheduler",
                "containers": [{"name": "train", "image": "pytorch/pytorch:2.4.0"}],
            },
        }
    }
    if backoff is not None:
        spec["backoffLimit"] = backoff
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def fast():
    with FakeKubeApi(tick_s=0.01, pod_fate=lambda pod: PodFate(**FAST)) as fake:
        yield fake


@pytest.fixture
def core(fast):
    return client.CoreV1Api(fast.api_client())


@pytest.fixture
def batch(fast):
    return client.BatchV1Api(fast.api_client())


def _phase(core, name, ns="default"):
    return core.read_namespaced_pod(name, ns).status.phase


def test_bare_pod_create_get_delete_and_admission(fast, core):
    created = core.create_namespaced_pod("default", _pod_body())
    assert created.metadata.uid and created.status.phase == "Pending"
    assert created.spec.scheduler_name == "hami-scheduler"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"
    got = core.read_namespaced_pod("task", "default")
    assert got.metadata.annotations == {"hami.io/resource-pool": "a"}
    # duplicate name: 409 AlreadyExists
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_pod("default", _pod_body())
    assert dup.value.status == 409 and json.loads(dup.value.body)["reason"] == "AlreadyExists"
    # generateName gets a 5-character suffix from the safe alphabet
    gen = _pod_body(None)
    gen["metadata"]["generateName"] = "sweep-"
    named = core.create_namespaced_pod("default", gen).metadata.name
    assert re.fullmatch(r"sweep-[bcdfghjklmnpqrstvwxz2456789]{5}", named)
    # validation: each error names its field, as FieldValueInvalid causes
    bad = _pod_body("Bad_Name", restart="Sometimes", image="")
    with pytest.raises(ApiException) as inv:
        core.create_namespaced_pod("default", bad)
    body = json.loads(inv.value.body)
    assert inv.value.status == 422 and body["reason"] == "Invalid"
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"metadata.name", "spec.restartPolicy", "spec.containers[0].image"}
    # extended resources: requests must equal limits (HAMi's nvidia.com/gpucores)
    res = {"limits": {"nvidia.com/gpucores": "50"}, "requests": {"nvidia.com/gpucores": "25"}}
    with pytest.raises(ApiException) as ext:
        core.create_namespaced_pod("default", _pod_body("gpu", resources=res))
    assert ext.value.status == 422
    assert "spec.containers[0].resources.requests[nvidia.com/gpucores]" in ext.value.body
    assert "must be equal to nvidia.com/gpucores limit of 50" in ext.value.body
    # delete: the pod is returned with a deletionTimestamp and then is gone
    gone = core.delete_namespaced_pod("task", "default")
    assert gone.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as nf:
        core.read_namespaced_pod("task", "default")
    assert nf.value.status == 404


def test_pod_lifecycle_to_succeeded_with_real_container_statuses(fast, core):
    core.create_namespaced_pod("default", _pod_body())
    wait_until(lambda: _phase(core, "task") == "Running", timeout=2)
    running = core.read_namespaced_pod("task", "default")
    assert running.spec.node_name == "node-1"
    assert running.status.container_statuses[0].state.running.started_at is not None
    assert {c.type: c.status for c in running.status.conditions}["Ready"] == "True"
    wait_until(lambda: _phase(core, "task") == "Succeeded", timeout=2)
    term = core.read_namespaced_pod("task", "default").status.container_statuses[0]
    assert term.state.terminated.exit_code == 0 and term.state.terminated.reason == "Completed"
    assert term.state.terminated.finished_at is not None and term.ready is False


def test_unschedulable_pod_stays_pending_with_failed_scheduling_event(fast, core):
    fast.set_pod_fate(lambda pod: PodFate(schedule=False))
    core.create_namespaced_pod("default", _pod_body())

    def unschedulable():
        pod = core.read_namespaced_pod("task", "default")
        return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None), pod

    cond, pod = wait_until(lambda: unschedulable()[0] and unschedulable(), timeout=2)
    assert pod.status.phase == "Pending" and cond.status == "False"
    assert cond.reason == "Unschedulable"
    assert cond.message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpumem."
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=task")
    [ev] = [e for e in events.items if e.reason == "FailedScheduling"]
    assert ev.type == "Warning" and ev.source.component == "hami-scheduler"
    time.sleep(0.1)  # still Pending, never bound to a node
    assert (
        _phase(core, "task") == "Pending"
        and not core.read_namespaced_pod("task", "default").spec.node_name
    )
    # a new fate re-decides pods still waiting for the scheduler
    fast.set_pod_fate(lambda pod: PodFate(**FAST))
    wait_until(lambda: _phase(core, "task") == "Succeeded", timeout=2)


def test_oom_killed_pod_fails_with_exit_code_137(fast, core):
    fast.set_pod_fate(lambda pod: PodFate.oom_killed(**FAST))
    core.create_namespaced_pod("default", _pod_body())
    wait_until(lambda: _phase(core, "task") == "Failed", timeout=2)
    pod = core.read_namespaced_pod("task", "default")
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (137, "OOMKilled")
    assert pod.status.container_statuses[0].restart_count == 0
    ready = {c.type: c for c in pod.status.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("False", "PodFailed")


def test_pod_logs_400_before_start_then_text(fast, core):
    fast.set_pod_fate(lambda pod: PodFate(start_delay_s=0.4, run_s=0.05, logs="RESULT t=1.5\n"))
    core.create_namespaced_pod("default", _pod_body())
    wait_until(lambda: core.read_namespaced_pod("task", "default").spec.node_name, timeout=2)
    with pytest.raises(ApiException) as early:
        core.read_namespaced_pod_log("task", "default")
    assert early.value.status == 400
    message = json.loads(early.value.body)["message"]
    assert message == 'container "main" in pod "task" is waiting to start: ContainerCreating'
    wait_until(lambda: _phase(core, "task") == "Succeeded", timeout=3)
    assert core.read_namespaced_pod_log("task", "default") == "RESULT t=1.5\n"
    raw = core.read_namespaced_pod_log("task", "default", _preload_content=False)
    assert raw.headers["Content-Type"] == "text/plain" and raw.data == b"RESULT t=1.5\n"
    with pytest.raises(ApiException) as wrong:
        core.read_namespaced_pod_log("task", "default", container="sidecar")
    assert (
        wrong.value.status == 400
        and "container sidecar is not valid for pod task" in wrong.value.body
    )


def test_watch_sees_added_modified_deleted_in_order_and_ends_after_timeout(fast, core):
    core.create_namespaced_pod("default", _pod_body("other"))  # not selected below
    other = _pod_body("other-2")
    other["metadata"]["labels"] = {"sweep": "s2"}
    core.create_namespaced_pod("default", other)
    start = time.monotonic()
    quiet = list(
        watch.Watch().stream(
            core.list_namespaced_pod, "default", label_selector="sweep=s1,app=x", timeout_seconds=1
        )
    )
    elapsed = time.monotonic() - start
    # nothing matched "app=x": the stream still ends cleanly after timeoutSeconds
    assert quiet == [] and 1.0 <= elapsed < 1.8
    seen: list[tuple[str, str | None]] = []
    pod = _pod_body()
    pod["metadata"]["labels"]["app"] = "x"
    core.create_namespaced_pod("default", pod)
    seen = []
    for ev in watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="app=x", timeout_seconds=1
    ):
        obj = ev["object"]
        seen.append((ev["type"], obj.status.phase))
        assert obj.kind == "Pod" and obj.api_version == "v1"
        if (
            ev["type"] == "MODIFIED"
            and obj.status.phase == "Succeeded"
            and not obj.metadata.deletion_timestamp
        ):
            core.delete_namespaced_pod("task", "default")
        if ev["type"] == "DELETED":
            break
    types = [t for t, _ in seen]
    assert types[0] == "ADDED" and types[-1] == "DELETED"
    assert set(types[1:-1]) == {"MODIFIED"}
    phases = [p for _, p in seen]
    order = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert order[-3:] == ["Pending", "Running", "Succeeded"][-len(order[-3:]) :]
    assert "Running" in order and order.index("Running") < order.index("Succeeded")


def _watch_until_succeeded(core, name, **kwargs):
    """(type, name, resourceVersion) of each pod event until ``name`` has Succeeded."""
    w, out = watch.Watch(), []
    for ev in w.stream(core.list_namespaced_pod, "default", timeout_seconds=3, **kwargs):
        meta = ev["object"].metadata
        out.append((ev["type"], meta.name, meta.resource_version))
        if meta.name == name and ev["object"].status.phase == "Succeeded":
            w.stop()
    return out


def test_watch_resumes_from_resource_version_without_repeats(fast, core):
    rv0 = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", _pod_body("a"))
    first = _watch_until_succeeded(core, "a", resource_version=rv0)
    assert first[0][:2] == ("ADDED", "a")  # from rv0 on: the real ADDED, no synthetic replay
    last_rv = first[-1][2]
    core.create_namespaced_pod("default", _pod_body("b"))
    second = _watch_until_succeeded(core, "b", resource_version=last_rv)
    assert not set(second) & set(first)
    assert second[0][:2] == ("ADDED", "b")
    assert all(int(rv) > int(last_rv) for _, _, rv in second)
    rvs = [int(rv) for _, _, rv in first + second]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    # without a resourceVersion: a synthetic ADDED for each existing pod, then live events
    core.create_namespaced_pod("default", _pod_body("c"))
    third = _watch_until_succeeded(core, "c")
    assert [(t, n) for t, n, _ in third[:2]] == [("ADDED", "a"), ("ADDED", "b")]
    assert ("ADDED", "c") in [(t, n) for t, n, _ in third]


def test_watch_too_old_resource_version_is_410_expired():
    with FakeKubeApi(tick_s=0.01, history_limit=5) as fake:
        core = client.CoreV1Api(fake.api_client())
        rv0 = core.list_namespaced_pod("default").metadata.resource_version
        for i in range(4):
            fake.add_object("configmaps", "default", {"metadata": {"name": f"c{i}"}, "data": {}})
            core.create_namespaced_pod("default", _pod_body(f"p{i}"))
        time.sleep(0.1)
        with pytest.raises(ApiException) as gone:
            list(
                watch.Watch().stream(
                    core.list_namespaced_pod, "default", resource_version=rv0, timeout_seconds=1
                )
            )
        assert gone.value.status == 410 and "too old resource version" in gone.value.reason


def test_down_ends_an_open_watch(fast, core):
    import threading

    result: dict = {}

    def consume():  # no timeout_seconds: only the server going away ends this stream
        result["events"] = list(watch.Watch().stream(core.list_namespaced_pod, "default"))
        result["ended"] = time.monotonic()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(0.2)
    assert t.is_alive()
    downed = time.monotonic()
    fast.down()
    t.join(timeout=3)
    assert not t.is_alive() and result["events"] == []
    assert result["ended"] - downed < 1.0


def test_job_runs_to_complete_with_labelled_owned_pods(fast, batch, core):
    fast.set_pod_fate(lambda pod: PodFate(logs="done\n", **FAST))
    created = batch.create_namespaced_job("default", _job_body("train-1"))
    uid = created.metadata.uid
    assert created.spec.backoff_limit == 6 and created.spec.completions == 1
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    wait_until(
        lambda: any(
            c.type == "Complete"
            for c in batch.read_namespaced_job("train-1", "default").status.conditions or []
        ),
        timeout=3,
    )
    job = batch.read_namespaced_job("train-1", "default")
    assert job.status.succeeded == 1 and not job.status.active and not job.status.failed
    assert job.status.start_time is not None and job.status.completion_time is not None
    [pod] = core.list_namespaced_pod("default", label_selector="job-name=train-1").items
    labels = pod.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == "train-1" and labels["controller-uid"] == uid
    assert labels["queue"] == "q1" and pod.metadata.annotations == {"hami.io/resource-pool": "b"}
    assert pod.spec.scheduler_name == "hami-scheduler" and pod.metadata.name.startswith("train-1-")
    [owner] = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", "train-1", uid, True)
    assert core.read_namespaced_pod_log(pod.metadata.name, "default") == "done\n"


def test_failing_job_retries_up_to_backoff_limit_then_fails(fast, batch, core):
    fast.set_pod_fate(lambda pod: PodFate(exit_code=1, start_delay_s=0.01, run_s=0.01))
    batch.create_namespaced_job("default", _job_body("flaky", backoff=2))

    def failed():
        conds = batch.read_namespaced_job("flaky", "default").status.conditions or []
        return next((c for c in conds if c.type == "Failed"), None)

    cond = wait_until(failed, timeout=3)
    assert cond.reason == "BackoffLimitExceeded" and cond.status == "True"
    time.sleep(0.1)
    pods = core.list_namespaced_pod("default", label_selector="job-name=flaky").items
    assert len(pods) == 3  # the first try and backoffLimit=2 retries
    assert {p.status.phase for p in pods} == {"Failed"}
    job = batch.read_namespaced_job("flaky", "default")
    assert job.status.failed == 3 and not job.status.succeeded
    creates = [
        e for e in core.list_namespaced_event("default").items if e.reason == "SuccessfulCreate"
    ]
    assert len(creates) == 3


def test_on_failure_job_restarts_in_place_and_counts_restarts(fast, batch, core):
    fast.set_pod_fate(lambda pod: PodFate(exit_code=2, start_delay_s=0.01, run_s=0.01))
    batch.create_namespaced_job("default", _job_body("restarting", backoff=2, restart="OnFailure"))
    wait_until(
        lambda: any(
            c.type == "Failed"
            for c in batch.read_namespaced_job("restarting", "default").status.conditions or []
        ),
        timeout=3,
    )
    # one pod, restarted in place until restarts reached backoffLimit, then deleted
    assert (
        len(
            [
                e
                for e in core.list_namespaced_event("default").items
                if e.reason == "SuccessfulCreate"
            ]
        )
        == 1
    )


def test_job_validation_and_delete_propagation(fast, batch, core):
    with pytest.raises(ApiException) as bad:
        batch.create_namespaced_job("default", _job_body("bad", restart="Always"))
    assert bad.value.status == 422 and "spec.template.spec.restartPolicy" in bad.value.body
    slow = lambda pod: PodFate(start_delay_s=0.01, run_s=60)  # noqa: E731
    fast.set_pod_fate(slow)
    for name in ("bg", "orphan", "fg"):
        batch.create_namespaced_job("default", _job_body(name))
    wait_until(lambda: len(core.list_namespaced_pod("default").items) == 3, timeout=2)
    batch.delete_namespaced_job("bg", "default", propagation_policy="Background")
    resp = batch.delete_namespaced_job("orphan", "default", _preload_content=False)
    assert "child pods are preserved by default" in resp.headers["Warning"]
    batch.delete_namespaced_job("fg", "default", propagation_policy="Foreground")
    wait_until(lambda: not batch.list_namespaced_job("default").items, timeout=2)
    [left] = core.list_namespaced_pod("default").items
    assert left.metadata.labels["job-name"] == "orphan" and not left.metadata.owner_references


def test_job_watch_with_batch_client(fast, batch):
    batch.create_namespaced_job("default", _job_body("w1"))
    done = None
    for ev in watch.Watch().stream(batch.list_namespaced_job, "default", timeout_seconds=3):
        assert ev["object"].kind == "Job"
        if any(c.type == "Complete" for c in ev["object"].status.conditions or []):
            done = ev["type"]
            break
    assert done == "MODIFIED"


def test_two_servers_one_multi_context_kubeconfig(tmp_path):
    with FakeKubeApi(tick_s=0.01) as a, FakeKubeApi(tick_s=0.01) as b:
        assert a.port != b.port
        path = write_multi_kubeconfig(tmp_path / "kubeconfig", {"site-a": a, "site-b": b})
        core_a = client.CoreV1Api(config.new_client_from_config(str(path), context="site-a"))
        core_b = client.CoreV1Api(config.new_client_from_config(str(path), context="site-b"))
        core_a.create_namespaced_pod("default", _pod_body("only-on-a"))
        assert [p.metadata.name for p in core_a.list_namespaced_pod("default").items] == [
            "only-on-a"
        ]
        assert core_b.list_namespaced_pod("default").items == []
        assert (
            a.get("pods", "default", "only-on-a") and b.get("pods", "default", "only-on-a") is None
        )
        contexts, current = config.list_kube_config_contexts(str(path))
        assert [c["name"] for c in contexts] == ["site-a", "site-b"] and current["name"] == "site-a"


def test_raw_watch_is_chunked_ndjson_and_serves_all_namespaces(fast, core):
    fast.add_namespace("team-b")
    core.create_namespaced_pod("team-b", _pod_body("elsewhere"))
    url = f"{fast.url}/api/v1/pods?watch=1&timeoutSeconds=1&allowWatchBookmarks=true"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
        lines = [json.loads(line) for line in resp.read().splitlines()]
    first = lines[0]
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Pod"
    assert first["object"]["apiVersion"] == "v1"
    assert first["object"]["metadata"]["namespace"] == "team-b"
    phases = [e["object"]["status"]["phase"] for e in lines]
    assert phases[-1] == "Succeeded" and {e["type"] for e in lines} == {"ADDED", "MODIFIED"}
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(f"{fast.url}/api/v1/pods?watch=true&labelSelector=a%20in%20b")
    assert bad.value.code == 400


def test_field_selector_watch_sees_pods_enter_and_leave_as_added_deleted(fast, core):
    core.create_namespaced_pod("default", _pod_body())
    w, seen = watch.Watch(), []
    for ev in w.stream(
        core.list_namespaced_pod,
        "default",
        field_selector="status.phase=Running",
        allow_watch_bookmarks=True,
        timeout_seconds=3,
    ):
        seen.append((ev["type"], ev["object"].status.phase))
        if ev["type"] == "DELETED":
            w.stop()
    # it enters the selection when Running and leaves it (DELETED) when it Succeeds
    assert seen == [("ADDED", "Running"), ("DELETED", "Succeeded")]


def test_followed_log_streams_until_the_pod_ends(fast, core):
    fast.set_pod_fate(lambda pod: PodFate(start_delay_s=0.01, run_s=0.3, logs="line 1\nline 2\n"))
    core.create_namespaced_pod("default", _pod_body())
    wait_until(lambda: _phase(core, "task") == "Running", timeout=2)
    start = time.monotonic()
    resp = core.read_namespaced_pod_log("task", "default", follow=True, _preload_content=False)
    assert resp.data == b"line 1\nline 2\n"
    assert time.monotonic() - start > 0.15 and _phase(core, "task") == "Succeeded"
    tail = core.read_namespaced_pod_log("task", "default", tail_lines=1)
    assert tail == "line 2\n"


def test_job_names_are_idempotent(fast, batch):
    batch.create_namespaced_job("default", _job_body("once"))
    with pytest.raises(ApiException) as again:
        batch.create_namespaced_job("default", _job_body("once"))
    body = json.loads(again.value.body)
    assert again.value.status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'jobs.batch "once" already exists'


# --------------------------------------------------------------------------- the package's parts
# Unit tests of the pure functions behind the server, on hand-written documents; expected
# values come from the RFCs' and the Kubernetes documentation's own examples.

#: every name the single-module fake (k8s_gpu_rl/testing/fake_kube_api.py) defined
_OLD_MODULE_NAMES = [
    "HAMI_UNSCHEDULABLE_MESSAGE",
    "DEFAULT_IMAGE",
    "DEFAULT_LIMITS",
    "_SAFE_ALPHABET",
    "_Kind",
    "_ALL",
    "KINDS",
    "_PATH_RE",
    "_ALL_NS_RE",
    "_NS_RE",
    "_REASONS",
    "_DEFAULT_MESSAGES",
    "ApiError",
    "_not_found",
    "_invalid",
    "_conflict",
    "_now",
    "_rand_suffix",
    "_template_hash",
    "_selector_string",
    "_pct_or_int",
    "_QUANTITY_RE",
    "_SUFFIX",
    "parse_quantity",
    "_is_overcommit_allowed",
    "wait_until",
    "_split_selector",
    "_SET_RE",
    "_EQ_RE",
    "_KEY_RE",
    "_parse_selector",
    "matches_label_selector",
    "_matches_field_selector",
    "_MERGE_KEYS",
    "_PRIMITIVE_MERGE",
    "_strip_directives",
    "strategic_merge_patch",
    "_merge_keyed_list",
    "json_merge_patch",
    "_pointer",
    "_resolve",
    "json_patch",
    "_add",
    "_remove",
    "RecordedRequest",
    "_Fault",
    "_Server",
    "_Handler",
    "_Text",
    "_Stream",
    "_Change",
    "PodFate",
    "FakeKubeApi",
    "_name_key",
    "_strip_type",
    "_condition",
    "_pod_ready",
    "_scheduler",
    "_qos_class",
    "_pod_status_creating",
    "_validate_resources",
    "_JOB_ORPHAN_WARNING",
    "_SUBDOMAIN_RE",
    "_LABEL_RE",
    "_RESTART_POLICIES",
    "_is_watch",
    "_selected",
    "_event_line",
    "_tail",
    "_delete_policy",
    "_owned_by_kind",
    "_name_causes",
    "_validate_pod_spec",
    "_default_pod_spec",
    "_cond",
    "_image_id",
    "_started_pod",
    "_terminated_pod",
    "_write_yaml",
    "write_multi_kubeconfig",
]


def test_package_root_still_exports_every_name_of_the_old_module():
    import k8s_gpu_rl.testing.fake_kube_api as pkg

    assert len(set(_OLD_MODULE_NAMES)) == 80
    missing = [n for n in _OLD_MODULE_NAMES if not hasattr(pkg, n)]
    assert missing == []
    assert sorted(pkg.__all__) == sorted(
        [
            "ApiError",
            "FakeKubeApi",
            "PodFate",
            "RecordedRequest",
            "write_multi_kubeconfig",
            "matches_label_selector",
            "parse_quantity",
            "strategic_merge_patch",
            "json_merge_patch",
            "json_patch",
            "wait_until",
        ]
    )


# RFC 7386 Appendix A: (target, patch, result), the whole table
_RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), _RFC7386)
def test_json_merge_patch_rfc7386_appendix_a(target, patch, result):
    before = json.dumps(target)
    assert json_merge_patch(target, patch) == result
    assert json.dumps(target) == before  # the target is not modified


def test_json_patch_rfc6902_appendix_a_examples():
    # A.1 adding an object member, A.2 adding an array element
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == {
        "baz": "qux",
        "foo": "bar",
    }
    assert json_patch(
        {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]
    ) == {"foo": ["bar", "qux", "baz"]}
    # A.3 removing an object member, A.4 removing an array element
    assert json_patch({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}]) == {
        "foo": "bar"
    }
    assert json_patch({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]) == {
        "foo": ["bar", "baz"]
    }
    # A.5 replacing a value, A.6 moving a value, A.7 moving an array element
    assert json_patch(
        {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]
    ) == {"baz": "boo", "foo": "bar"}
    moved = json_patch(
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
    )
    assert moved == {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}
    assert json_patch(
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
    ) == {"foo": ["all", "cows", "eat", "grass"]}
    # A.8 testing a value: success; A.9: failure
    doc = {"baz": "qux", "foo": ["a", 2, "c"]}
    ops = [
        {"op": "test", "path": "/baz", "value": "qux"},
        {"op": "test", "path": "/foo/1", "value": 2},
    ]
    assert json_patch(doc, ops) == doc
    with pytest.raises(ValueError, match="testing value /baz failed"):
        json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
    # A.10 adding a nested member object; A.12 adding to a nonexistent target is an error
    assert json_patch(
        {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}]
    ) == {"foo": "bar", "child": {"grandchild": {}}}
    with pytest.raises(ValueError, match="doc is missing path: /baz/bat"):
        json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])
    # A.14 ~ escaping: "/" is ~1 and "~" is ~0 in a pointer
    assert json_patch({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}]) == {
        "/": 9,
        "~1": 10,
    }
    # A.16 adding an array value
    assert json_patch(
        {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]
    ) == {"foo": ["bar", ["abc", "def"]]}


def test_strategic_merge_patch_as_the_kubectl_patch_docs_show():
    """kubernetes.io "Update API Objects in Place Using kubectl patch": containers merge
    by name, tolerations (no patchMergeKey) are replaced, $retainKeys drops rollingUpdate."""
    dep = {
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "spec": {
                    "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                    "tolerations": [
                        {"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}
                    ],
                }
            },
        }
    }
    added = strategic_merge_patch(
        dep,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}
                }
            }
        },
    )
    assert added["spec"]["template"]["spec"]["containers"] == [
        {"name": "patch-demo-ctr", "image": "nginx"},
        {"name": "patch-demo-ctr-2", "image": "redis"},
    ]
    replaced = strategic_merge_patch(
        dep,
        {
            "spec": {
                "template": {
                    "spec": {
                        "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]
                    }
                }
            }
        },
    )
    assert replaced["spec"]["template"]["spec"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "disktype", "value": "ssd"}
    ]
    recreate = strategic_merge_patch(
        dep, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    )
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}
    assert recreate["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"  # input untouched


def test_strategic_merge_patch_directives_on_hand_written_documents():
    pod = {
        "metadata": {"finalizers": ["a", "b", "c"], "labels": {"x": "1", "y": "2"}},
        "spec": {
            "containers": [
                {"name": "c", "ports": [{"containerPort": 80, "name": "http"}]},
            ]
        },
    }
    out = strategic_merge_patch(
        pod,
        {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "labels": {"x": None}},
            "spec": {
                "containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]
            },
        },
    )
    assert out["metadata"] == {"finalizers": ["a", "c"], "labels": {"y": "2"}}
    assert out["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "name": "http", "protocol": "TCP"}  # merged by containerPort
    ]
    whole = strategic_merge_patch(pod, {"metadata": {"labels": {"$patch": "replace", "z": "3"}}})
    assert whole["metadata"]["labels"] == {"z": "3"}
    listed = strategic_merge_patch(
        pod, {"spec": {"containers": [{"$patch": "replace"}, {"name": "d", "image": "i"}]}}
    )
    assert listed["spec"]["containers"] == [{"name": "d", "image": "i"}]
    gone = strategic_merge_patch(pod, {"metadata": {"labels": {"$patch": "delete"}}})
    assert "labels" not in gone["metadata"]
    assert strategic_merge_patch(pod, {"metadata": {"finalizers": ["c", "d"]}})["metadata"][
        "finalizers"
    ] == ["a", "b", "c", "d"]  # a primitive merge list: appended, no duplicates
    with pytest.raises(ApiError, match="does not contain declared merge key: name"):
        strategic_merge_patch(pod, {"spec": {"containers": [{"image": "no-name"}]}})


def test_apply_patch_picks_the_patch_by_content_type_and_answers_like_the_server():
    from k8s_gpu_rl.testing.fake_kube_api.patches import _apply_patch

    cur = {"metadata": {"name": "x"}, "data": {"a": "1"}}
    smp = "application/strategic-merge-patch+json; charset=utf-8"
    assert _apply_patch(cur, smp, {"data": {"b": "2"}})["data"] == {"a": "1", "b": "2"}
    merge = _apply_patch(cur, "application/merge-patch+json", {"data": {"a": None}})
    assert merge["data"] == {}
    ops = [{"op": "replace", "path": "/data/a", "value": "3"}]
    assert _apply_patch(cur, "application/json-patch+json", ops)["data"] == {"a": "3"}
    with pytest.raises(ApiError, match="server-side apply is not supported") as err:
        _apply_patch(cur, "application/apply-patch+yaml", {})
    assert err.value.code == 415
    with pytest.raises(ApiError, match="json patch result is not an object") as err:
        _apply_patch(
            cur, "application/json-patch+json", [{"op": "replace", "path": "", "value": 1}]
        )
    assert err.value.code == 422
    with pytest.raises(ApiError, match="merge patch must be a JSON object") as err:
        _apply_patch(cur, "application/merge-patch+json", [])
    assert err.value.code == 400


def test_label_selectors_as_the_kubernetes_labels_docs_define_them():
    """kubernetes.io "Labels and Selectors": != and notin also select objects without the key."""
    prod_front = {"environment": "production", "tier": "frontend"}
    qa = {"environment": "qa"}
    none: dict[str, str] = {}
    assert matches_label_selector(prod_front, "environment = production")
    assert matches_label_selector(prod_front, "environment==production,tier=frontend")
    assert not matches_label_selector(prod_front, "environment=production,tier!=frontend")
    assert matches_label_selector(qa, "tier!=frontend")  # no tier key: selected
    assert matches_label_selector(qa, "environment in (production, qa)")
    assert not matches_label_selector(none, "environment in (production, qa)")
    assert matches_label_selector(qa, "tier notin (frontend, backend)")
    assert not matches_label_selector(prod_front, "tier notin (frontend, backend)")
    assert matches_label_selector(prod_front, "tier") and not matches_label_selector(qa, "tier")
    assert matches_label_selector(qa, "!tier") and not matches_label_selector(prod_front, "!tier")
    assert matches_label_selector(none, "") and matches_label_selector(none, None)
    with pytest.raises(ApiError, match="unable to parse requirement") as err:
        matches_label_selector(qa, "environment in production")
    assert err.value.code == 400


def test_field_selectors_on_a_hand_written_pod():
    from k8s_gpu_rl.testing.fake_kube_api.selectors import _matches_field_selector

    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}, "status": {"phase": "Running"}}
    assert _matches_field_selector(pod, "status.phase=Running,metadata.name==p")
    assert not _matches_field_selector(pod, "status.phase!=Running")
    assert _matches_field_selector(pod, "spec.nodeName=")  # absent field: the empty string
    assert not _matches_field_selector(pod, "spec.nodeName=node-1")
    with pytest.raises(ApiError, match="invalid field selector") as err:
        _matches_field_selector(pod, "status.phase")
    assert err.value.code == 400


def test_quantities_as_the_kubernetes_docs_write_them():
    """kubernetes.io "Resource Management for Pods and Containers": 128974848, 123Mi and
    128974848000m are the same number of bytes; 129e6 and 129M are too; 0.1 CPU is 100m."""
    assert parse_quantity("128974848") == parse_quantity("123Mi") == parse_quantity("128974848000m")
    assert parse_quantity("129e6") == parse_quantity("129M") == 129_000_000
    assert parse_quantity("0.1") == parse_quantity("100m") == Fraction(1, 10)
    assert parse_quantity("1Ki") == 1024 and parse_quantity("1k") == 1000
    assert parse_quantity(".5") == Fraction(1, 2) and parse_quantity(2.5) == Fraction(5, 2)
    for bad in ("1KB", "Mi", "", True, "1 Gi"):
        with pytest.raises(ValueError, match="invalid quantity"):
            parse_quantity(bad)


def test_resource_requirements_validation_on_hand_written_resources():
    from k8s_gpu_rl.testing.fake_kube_api.quantities import (
        _is_overcommit_allowed,
        _validate_resources,
    )

    assert _is_overcommit_allowed("cpu") and _is_overcommit_allowed("memory")
    assert _is_overcommit_allowed("example.kubernetes.io/thing")
    assert not _is_overcommit_allowed("hugepages-2Mi")
    assert not _is_overcommit_allowed("nvidia.com/gpucores")
    ok = {"limits": {"cpu": 2, "nvidia.com/gpu": 1.0}, "requests": {"cpu": 0.5}}
    assert _validate_resources(ok, "r") == []
    assert ok == {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}, "requests": {"cpu": "0.5"}}
    bad = {
        "limits": {"cpu": "1", "nvidia.com/gpumem": "4096"},
        "requests": {"cpu": "2", "nvidia.com/gpumem": "2048", "nvidia.com/gpucores": "50"},
    }
    assert _validate_resources(bad, "r") == [
        ("r.requests[cpu]", 'Invalid value: "2": must be less than or equal to cpu limit of 1'),
        (
            "r.requests[nvidia.com/gpumem]",
            'Invalid value: "2048": must be equal to nvidia.com/gpumem limit of 4096',
        ),
        (
            "r.limits[nvidia.com/gpucores]",
            "Required value: Limit must be set for non overcommitable resources",
        ),
    ]
    causes = _validate_resources({"limits": {"memory": "-1Gi", "cpu": "lots"}}, "r")
    assert [f for f, _ in causes] == ["r.limits[memory]", "r.limits[cpu]"]
    assert "must be greater than or equal to 0" in causes[0][1]
    assert "quantities must match the regular expression" in causes[1][1]
    assert _validate_resources("2 cpus", "r") == [("r", "must be an object")]


def _pod(name: str, ready: bool, created: str = "2024-01-01T00:00:00Z") -> dict:
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"conditions": conds},
    }


def test_rolling_update_step_follows_the_documented_rounding():
    """kubernetes.io Deployments: maxSurge rounds up, maxUnavailable rounds down (25 % each
    by default), so 4 replicas may go to 5 pods and 3 ready; 3 replicas never drop below 3."""
    from k8s_gpu_rl.testing.fake_kube_api.deployments import _pct_or_int, _rolling_update_plan

    assert (_pct_or_int("25%", 3, round_up=True), _pct_or_int("25%", 3, round_up=False)) == (1, 0)
    assert _pct_or_int(2, 10, round_up=False) == 2
    ru = {"maxSurge": "25%", "maxUnavailable": "25%"}
    old4 = [_pod(f"old{i}", True) for i in range(4)]
    n_create, to_delete = _rolling_update_plan(ru, 4, [], old4)
    assert n_create == 1 and [p["metadata"]["name"] for p in to_delete] == ["old0"]
    old3 = [_pod(f"old{i}", True) for i in range(3)]
    assert _rolling_update_plan(ru, 3, [], old3) == (1, [])
    # one new pod ready: one old pod may go (3 ready of 3 must stay)
    n_create, to_delete = _rolling_update_plan(ru, 3, [_pod("new0", True)], old3)
    assert n_create == 0 and len(to_delete) == 1
    # unready old pods are deleted first, whatever the availability
    mixed = [_pod("sick", False), *old3[:2]]
    assert [p["metadata"]["name"] for p in _rolling_update_plan(ru, 3, [], mixed)[1]] == ["sick"]


def test_scale_down_removes_unready_then_youngest_pods_first():
    from k8s_gpu_rl.testing.fake_kube_api.deployments import _scale_down_victims

    pods = [
        _pod("old-ready", True, "2024-01-01T00:00:00Z"),
        _pod("young-ready", True, "2024-01-03T00:00:00Z"),
        _pod("old-unready", False, "2024-01-02T00:00:00Z"),
    ]
    names = [p["metadata"]["name"] for p in _scale_down_victims(pods, 1)]
    assert names == ["old-unready", "young-ready"]
    assert _scale_down_victims(pods, 3) == []


def test_log_tail_and_delete_policy_helpers():
    from k8s_gpu_rl.testing.fake_kube_api.logs import _tail
    from k8s_gpu_rl.testing.fake_kube_api.routing import _delete_policy

    assert _tail("a\nb\nc\n", "2") == "b\nc\n"
    assert _tail("a\nb", None) == "a\nb" and _tail("a\nb", "0") == ""
    assert _delete_policy({"propagationPolicy": "Background"}, None) == "Background"
    assert _delete_policy({}, {"propagationPolicy": "Foreground"}) == "Foreground"
    assert _delete_policy({}, {"orphanDependents": True}) == "Orphan"
    assert _delete_policy({}, None) is None
    with pytest.raises(ApiError, match='Unsupported value: "Sometimes"') as err:
        _delete_policy({"propagationPolicy": "Sometimes"}, None)
    assert err.value.code == 400


def test_no_two_parts_of_the_fake_define_the_same_method():
    """FakeKubeApi is made of mixins; a name defined twice would silently shadow one."""
    owners: dict[str, list[str]] = {}
    for part in FakeKubeApi.__mro__[1:-1]:
        for name in vars(part):
            if not (name.startswith("__") and name.endswith("__")):
                owners.setdefault(name, []).append(part.__name__)
    assert {n: o for n, o in owners.items() if len(o) > 1} == {}
    public = (
        "start stop down up is_up url configuration api_client kubeconfig_dict write_kubeconfig "
        "fail_next clear_faults requests_matching clear_requests add_namespace add_deployment "
        "add_object get list deployment pods events ready_pods resource_version reconcile_now "
        "set_pod_fate"
    )
    assert [n for n in public.split() if not hasattr(FakeKubeApi, n)] == []
