"""The Kubernetes manifests and install scripts under ``scripts/k8s/``, checked offline.

* Every YAML document under ``scripts/k8s/`` belongs to a kustomization, and every
  kustomization lists only files that exist. Each kustomization is rendered here (resources,
  namespace, configMapGenerator: the subset of kustomize these files use; anything else in a
  kustomization fails the test) and every rendered core object is validated against
  Kubernetes' own OpenAPI schemas (``kubernetes-validate``, strict: unknown fields fail).
* PodMonitor / ServiceMonitor are prometheus-operator CRDs, absent from the core schemas and
  from every PyPI schema package: their structure is checked field by field against the
  fields of the CRD (monitoring.coreos.com/v1) that they use.
* Cross-references: Service -> pods, PodMonitor -> container port, HPA -> Deployment,
  RBAC -> what the Kubernetes backend does, HAMi limits and rollout settings -> the simulated
  cluster's defaults (``envs/sim/clusters/rtx3080.yaml``), ``config.pbtxt`` (read by the
  project's Triton config reader) -> the Locust requests, the Locust Job -> the project
  files it mounts (imported from that layout alone).
* The shell scripts run for real against fake ``helm``/``kubectl``/``microk8s``/``sudo`` that
  record their arguments (the only tools on PATH besides a few coreutils; nothing reaches a
  network): the exact pinned commands, namespaces and the files that reach the PVC are
  checked, and ``--dry-run`` prints exactly the commands the real run executes, calling none.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from k8s_gpu_rl.baselines.hpa_algorithm import (
    DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
    DEFAULT_SCALE_DOWN_RULES,
    DEFAULT_SCALE_UP_RULES,
)
from k8s_gpu_rl.baselines.hpa_algorithm import (
    DEFAULT_SYNC_PERIOD_S as HPA_SYNC_PERIOD_S,
)
from k8s_gpu_rl.envs.backends.local.model import read_model_config

REPO_ROOT = Path(__file__).resolve().parents[1]
K8S_DIR = REPO_ROOT / "scripts" / "k8s"
KUSTOMIZATIONS = ("base", "hpa", "locust")
NAMESPACE = "k8s-gpu-rl"
MANAGED_BY = ("app.kubernetes.io/managed-by", "k8s-gpu-rl")
PROMETHEUS_RELEASE = "kube-prom-stack"
CLUSTER_FILE = REPO_ROOT / "envs" / "sim" / "clusters" / "rtx3080.yaml"
# Kubernetes versions to validate against (MicroK8s 1.30 and a newer release).
K8S_VERSIONS = ("1.30.0", "1.33.0")
# The Service port names HAMi's chart (v2.10, release `hami`) gives its metrics endpoints.
HAMI_SERVICE_PORTS = {
    "hami-device-plugin": ("monitorport", 9394),  # hami-device-plugin-monitor
    "hami-scheduler": ("monitor", 9395),  # hami-scheduler
}

KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "configMapGenerator",
    "generatorOptions",
}


# --- loading and rendering --------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_kustomization(name: str) -> dict[str, Any]:
    (doc,) = load_docs(K8S_DIR / name / "kustomization.yaml")
    return doc


def render(name: str) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` makes of ``scripts/k8s/<name>``, for the features used."""
    kdir = K8S_DIR / name
    kust = load_kustomization(name)
    unknown = set(kust) - KUSTOMIZATION_KEYS
    assert not unknown, f"{name}/kustomization.yaml uses {unknown}: extend render() first"
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kust["kind"] == "Kustomization"
    docs: list[dict[str, Any]] = []
    for resource in kust.get("resources", []):
        path = kdir / resource
        assert path.is_file(), f"{name}/kustomization.yaml lists {resource}, which does not exist"
        docs.extend(load_docs(path))
    options = kust.get("generatorOptions", {})
    assert set(options) <= {"disableNameSuffixHash", "labels"}
    for generator in kust.get("configMapGenerator", []):
        assert set(generator) <= {"name", "files"}
        data = {}
        for spec in generator["files"]:
            key, _, source = spec.rpartition("=") if "=" in spec else ("", "", spec)
            path = (kdir / source).resolve()
            assert path.is_file(), f"{name}: configMapGenerator file {source} does not exist"
            data[key or path.name] = path.read_text(encoding="utf-8")
        assert options.get("disableNameSuffixHash") is True, "names are referenced verbatim"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"], "labels": dict(options.get("labels", {}))},
                "data": data,
            }
        )
    docs = copy.deepcopy(docs)
    for doc in docs:
        if "namespace" in kust and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kust["namespace"]
    return docs


ALL = {name: render(name) for name in KUSTOMIZATIONS}


def find(kind: str, name: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    pool = docs if docs is not None else [d for docs_ in ALL.values() for d in docs_]
    matches = [d for d in pool if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def all_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for kname, docs in ALL.items():
        for doc in docs:
            yield f"{kname}:{doc['kind']}/{doc['metadata']['name']}", doc


DEPLOYMENT = find("Deployment", "triton")
POD_SPEC = DEPLOYMENT["spec"]["template"]["spec"]
(TRITON,) = POD_SPEC["containers"]
CLUSTER = yaml.safe_load(CLUSTER_FILE.read_text(encoding="utf-8"))


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


# --- every file, every document ---------------------------------------------------------


def test_every_yaml_file_belongs_to_a_kustomization() -> None:
    listed = set()
    for name in KUSTOMIZATIONS:
        listed.add((K8S_DIR / name / "kustomization.yaml").resolve())
        for resource in load_kustomization(name).get("resources", []):
            listed.add((K8S_DIR / name / resource).resolve())
    files = {p.resolve() for p in K8S_DIR.rglob("*") if p.suffix in (".yaml", ".yml")}
    assert files, "no manifests found"
    assert files - listed == set(), "YAML files no kustomization applies"
    dirs = {p.parent.name for p in K8S_DIR.rglob("kustomization.yaml")}
    assert dirs == set(KUSTOMIZATIONS), "a kustomization these tests do not render"


def test_hpa_is_not_in_the_default_resources() -> None:
    kinds = {d["kind"] for d in ALL["base"]}
    assert "HorizontalPodAutoscaler" not in kinds
    assert "Job" not in kinds
    assert [d["kind"] for d in ALL["hpa"]] == ["HorizontalPodAutoscaler"]


def test_documents_have_namespace_and_names() -> None:
    for label, doc in all_documents():
        meta = doc["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), label
        if doc["kind"] == "Namespace":
            assert meta["name"] == NAMESPACE
        else:
            assert meta["namespace"] == NAMESPACE, label


CORE_DOCS = [
    (label, doc)
    for label, doc in all_documents()
    if "monitoring.coreos.com" not in doc["apiVersion"]
]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("label", "doc"), CORE_DOCS, ids=[label for label, _ in CORE_DOCS])
def test_core_objects_match_the_kubernetes_schema(label: str, doc: dict, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_rejects_mistakes() -> None:
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["replica"] = 1  # typo of replicas
    with pytest.raises(kubernetes_validate.ValidationError, match="'replica' was unexpected"):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(
        kubernetes_validate.ValidationError, match="'8000' is not of type 'integer'"
    ):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    monitor = find("PodMonitor", "triton")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError) as missing:
        kubernetes_validate.validate(monitor, K8S_VERSIONS[0], strict=True)
    # its str() is empty; the message names the kind and API version it has no schema for
    assert missing.value.message == (
        "Couldn't find schema for kind PodMonitor with api version monitoring.coreos.com/v1"
        " for kubernetes version 1.30"  # kubernetes-validate's own spelling of 1.30.0
    )


# --- prometheus-operator CRDs -----------------------------------------------------------

# The fields of monitoring.coreos.com/v1 these manifests may use (a subset of the CRDs').
MONITOR_SPEC_FIELDS = {
    "PodMonitor": {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel"},
    "ServiceMonitor": {"selector", "namespaceSelector", "endpoints", "jobLabel"},
}
ENDPOINT_FIELDS = {
    "port",
    "path",
    "interval",
    "scrapeTimeout",
    "scheme",
    "honorLabels",
    "relabelings",
    "metricRelabelings",
}
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def monitor_problems(doc: dict[str, Any]) -> list[str]:
    """Where a PodMonitor/ServiceMonitor departs from the CRD's structure (empty: none)."""
    problems = []
    kind = doc.get("kind")
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"apiVersion {doc.get('apiVersion')!r}")
    if kind not in MONITOR_SPEC_FIELDS:
        return [*problems, f"kind {kind!r}"]
    if set(doc) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"top-level fields {set(doc)}")
    spec = doc.get("spec", {})
    if set(spec) - MONITOR_SPEC_FIELDS[kind]:
        problems.append(f"spec fields {set(spec) - MONITOR_SPEC_FIELDS[kind]}")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or set(selector) - {"matchLabels", "matchExpressions"}:
        problems.append("spec.selector must be a label selector")
    elif not all(isinstance(v, str) for v in selector.get("matchLabels", {}).values()):
        problems.append("matchLabels values must be strings")
    ns_selector = spec.get("namespaceSelector", {})
    if set(ns_selector) - {"any", "matchNames"} or not all(
        isinstance(n, str) for n in ns_selector.get("matchNames", [])
    ):
        problems.append("spec.namespaceSelector: any (bool) or matchNames (strings)")
    endpoints_key = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
    endpoints = spec.get(endpoints_key)
    if not isinstance(endpoints, list) or not endpoints:
        problems.append(f"spec.{endpoints_key} must be a non-empty list")
        endpoints = []
    for endpoint in endpoints:
        if set(endpoint) - ENDPOINT_FIELDS:
            problems.append(f"endpoint fields {set(endpoint) - ENDPOINT_FIELDS}")
        if not isinstance(endpoint.get("port"), str) or not endpoint["port"]:
            problems.append("endpoint.port must name a port")
        if not str(endpoint.get("path", "/metrics")).startswith("/"):
            problems.append("endpoint.path must start with /")
        for field in ("interval", "scrapeTimeout"):
            if field in endpoint and not DURATION.match(str(endpoint[field])):
                problems.append(f"endpoint.{field} {endpoint[field]!r} is not a duration")
    return problems


MONITORS = [
    (label, doc) for label, doc in all_documents() if "monitoring.coreos.com" in doc["apiVersion"]
]


@pytest.mark.parametrize(("label", "doc"), MONITORS, ids=[label for label, _ in MONITORS])
def test_monitors_match_the_crd_structure(label: str, doc: dict) -> None:
    assert monitor_problems(doc) == []
    # kube-prometheus-stack (release kube-prom-stack) selects monitors by this label.
    assert doc["metadata"]["labels"]["release"] == PROMETHEUS_RELEASE


def test_the_monitor_check_rejects_mistakes() -> None:
    good = find("PodMonitor", "triton")
    assert monitor_problems(good) == []
    for mutate in (
        lambda d: d["spec"].pop("podMetricsEndpoints"),
        lambda d: d["spec"]["podMetricsEndpoints"][0].update(port=8002),
        lambda d: d["spec"]["podMetricsEndpoints"][0].update(interval="30 seconds"),
        lambda d: d["spec"].update(endpoints=[{"port": "metrics"}]),
        lambda d: d.update(apiVersion="monitoring.coreos.com/v1beta1"),
    ):
        broken = copy.deepcopy(good)
        mutate(broken)
        assert monitor_problems(broken), broken


def test_podmonitor_scrapes_the_triton_pods_metrics_port() -> None:
    monitor = find("PodMonitor", "triton")
    pod_labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert monitor["metadata"]["namespace"] == DEPLOYMENT["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = container_ports(TRITON)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert ports[endpoint["port"]] == 8002
    assert endpoint["path"] == "/metrics"
    # The simulated Prometheus scrapes at the same interval.
    assert endpoint["interval"] == f"{CLUSTER['metrics']['scrape_interval_s']:.0f}s"


def test_hami_servicemonitors_match_the_charts_services() -> None:
    script = (K8S_DIR / "helm-install.sh").read_text(encoding="utf-8")
    release = re.search(r'^HAMI_RELEASE="([^"]+)"', script, re.M).group(1)
    namespace = re.search(r'^HAMI_NAMESPACE="([^"]+)"', script, re.M).group(1)
    for name, (port, target) in HAMI_SERVICE_PORTS.items():
        monitor = find("ServiceMonitor", name)
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [namespace]}
        assert spec["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "hami",
            "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": name,
        }
        assert [e["port"] for e in spec["endpoints"]] == [port], f"{name} serves :{target}"


# --- Triton ------------------------------------------------------------------------------


def test_deployment_labels_and_selector() -> None:
    meta = DEPLOYMENT["metadata"]
    assert meta["labels"][MANAGED_BY[0]] == MANAGED_BY[1]
    assert meta["labels"]["app.kubernetes.io/name"] == "triton"
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "triton"}
    assert selector.items() <= DEPLOYMENT["spec"]["template"]["metadata"]["labels"].items()
    # Only the Deployment carries the backend's label: pods are not "managed" objects.
    assert MANAGED_BY[0] not in DEPLOYMENT["spec"]["template"]["metadata"]["labels"]


def test_hami_vgpu_limits_equal_the_simulated_clusters_defaults() -> None:
    deployment = CLUSTER["deployment"]
    limits = TRITON["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert limits["nvidia.com/gpucores"] == deployment["gpucores"] == 50
    assert limits["nvidia.com/gpumem"] == deployment["gpumem_mib"] == 5120
    assert "nvidia.com/gpumem-percentage" not in limits  # ignored when gpumem is set
    requests = TRITON["resources"]["requests"]
    assert float(requests["cpu"]) == deployment["cpu_request"]
    assert float(limits["cpu"]) == deployment["cpu_limit"]
    assert DEPLOYMENT["spec"]["replicas"] == deployment["replicas"]
    # The model (~1.5 GiB) must fit its gpumem, or HAMi-core fails the load (Device 0 OOM).
    assert limits["nvidia.com/gpumem"] >= CLUSTER["serving"]["model_memory_mib"]


def test_hami_scheduling() -> None:
    script = (K8S_DIR / "helm-install.sh").read_text(encoding="utf-8")
    scheduler = re.search(r"--set schedulerName=(\S+)", script).group(1)
    assert POD_SPEC["schedulerName"] == scheduler == "hami-scheduler"
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    hami = CLUSTER["hami"]
    assert annotations["hami.io/node-scheduler-policy"] == hami["node_scheduler_policy"]
    assert annotations["hami.io/gpu-scheduler-policy"] == hami["gpu_scheduler_policy"]
    assert f"nodeSchedulerPolicy={hami['node_scheduler_policy']}" in script
    assert f"gpuSchedulerPolicy={hami['gpu_scheduler_policy']}" in script
    assert f"deviceSplitCount={hami['device_split_count']}" in script
    assert f"deviceMemoryScaling={hami['device_memory_scaling']:g}" in script
    assert f"deviceCoreScaling={hami['device_core_scaling']:g}" in script
    # HAMi's device plugin runs where gpu=on; the pods go there too.
    assert POD_SPEC["nodeSelector"] == {"gpu": "on"}
    assert "devicePlugin.nvidiaNodeSelector.gpu=on" in script


def test_rollout_and_probes_match_the_simulated_cluster() -> None:
    deployment = CLUSTER["deployment"]
    strategy = DEPLOYMENT["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"] == {
        "maxSurge": f"{deployment['max_surge']:.0%}",
        "maxUnavailable": f"{deployment['max_unavailable']:.0%}",
    }
    assert strategy["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert POD_SPEC["terminationGracePeriodSeconds"] == deployment["termination_grace_s"] == 30
    ready = TRITON["readinessProbe"]
    assert ready["httpGet"]["path"] == "/v2/health/ready"
    assert container_ports(TRITON)[ready["httpGet"]["port"]] == 8000
    assert ready["periodSeconds"] == CLUSTER["startup"]["readiness_period_s"] == 5
    assert TRITON["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_triton_container() -> None:
    image = TRITON["image"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", image), image
    assert container_ports(TRITON) == {"http": 8000, "grpc": 8001, "metrics": 8002}
    args = TRITON["args"]
    assert args[0] == "tritonserver"
    assert "--model-repository=/models" in args
    assert args[args.index("--metrics-config") + 1] == "summary_latencies=true"
    assert "--allow-metrics=true" in args
    assert "--allow-gpu-metrics=true" in args


def test_model_repository_volumes() -> None:
    mounts = {m["mountPath"]: m for m in TRITON["volumeMounts"]}
    volumes = {v["name"]: v for v in POD_SPEC["volumes"]}
    repo = mounts["/models"]
    claim = volumes[repo["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = find("PersistentVolumeClaim", claim, ALL["base"])
    assert claim == "triton-models"
    assert pvc["spec"]["storageClassName"] == "microk8s-hostpath"
    model = CLUSTER["serving"]["model_name"]
    config_mount = mounts[f"/models/{model}/config.pbtxt"]
    assert config_mount["subPath"] == "config.pbtxt"
    config_map = volumes[config_mount["name"]]["configMap"]["name"]
    assert "config.pbtxt" in find("ConfigMap", config_map, ALL["base"])["data"]


def test_triton_config_pbtxt(tmp_path: Path) -> None:
    """The ConfigMap's config.pbtxt, read by the project's Triton config reader (the one the
    local inference server loads), against the simulated cluster's serving constants."""
    text = find("ConfigMap", "triton-config")["data"]["config.pbtxt"]
    serving = CLUSTER["serving"]
    model_dir = tmp_path / serving["model_name"]
    model_dir.mkdir()
    (model_dir / "config.pbtxt").write_text(text, encoding="utf-8")
    config = read_model_config(tmp_path, serving["model_name"])
    assert (config.name, config.platform) == (serving["model_name"], "onnxruntime_onnx")
    assert config.max_batch_size == serving["max_batch_size"] == 8
    assert [(t.name, t.data_type, t.dims) for t in config.inputs] == [
        ("input0", "TYPE_FP32", (3, 224, 224))
    ]
    assert [(t.name, t.data_type, t.dims) for t in config.outputs] == [
        ("output0", "TYPE_FP32", (1000,))
    ]
    assert config.dynamic_batching
    assert config.max_queue_delay_us == serving["max_queue_delay_us"] == 500
    assert config.instance_groups == ({"count": 1, "kind": "KIND_GPU"},)
    # What the Locust users send by default.
    locustfile = (REPO_ROOT / "loadprofiles" / "locustfile.py").read_text(encoding="utf-8")
    assert '"K8SGPURL_MODEL", "mobilenetv4"' in locustfile
    assert '"K8SGPURL_INPUT", "input0"' in locustfile
    assert '"K8SGPURL_OUTPUT", "output0"' in locustfile


def test_service_routes_to_the_triton_pods() -> None:
    service = find("Service", "triton")
    pod_labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = container_ports(TRITON)
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports, port
        assert port["port"] == ports[port["targetPort"]]
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "grpc", "metrics"}


# --- HPA ---------------------------------------------------------------------------------


def test_hpa_targets_the_deployment_with_the_default_behaviour() -> None:
    hpa = find("HorizontalPodAutoscaler", "triton")
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "triton",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 8)  # the baseline HPA's bounds
    (metric,) = spec["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    # Utilisation is usage / request: the container needs a CPU request.
    assert "cpu" in TRITON["resources"]["requests"]

    def rules(direction: dict[str, Any]) -> tuple:
        policies = tuple((p["type"], p["value"], p["periodSeconds"]) for p in direction["policies"])
        return direction["stabilizationWindowSeconds"], direction["selectPolicy"], policies

    def expected(defaults: Any, window: int) -> tuple:
        policies = tuple((p.type, p.value, p.period_s) for p in defaults.policies)
        return window, defaults.select_policy, policies

    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert rules(up) == expected(
        DEFAULT_SCALE_UP_RULES, DEFAULT_SCALE_UP_RULES.stabilization_window_s
    )
    assert rules(down) == expected(
        DEFAULT_SCALE_DOWN_RULES, DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S
    )
    assert rules(up) == (0, "Max", (("Pods", 4, 15), ("Percent", 100, 15)))
    assert rules(down) == (300, "Max", (("Percent", 100, 15),))
    assert HPA_SYNC_PERIOD_S == 15


# --- RBAC --------------------------------------------------------------------------------


def allowed(role: dict[str, Any], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in role["rules"]
    )


BACKEND_NEEDS = [
    ("apps", "deployments", ("get", "list", "watch", "patch")),
    ("apps", "deployments/scale", ("get", "patch", "update")),
    ("apps", "replicasets", ("get", "list")),
    ("", "pods", ("get", "list", "watch")),
    ("autoscaling", "horizontalpodautoscalers", ("get", "list", "create", "delete", "patch")),
    ("batch", "jobs", ("get", "list", "create", "delete")),
    ("", "configmaps", ("get", "list", "create", "delete", "patch")),
    ("", "events", ("list",)),
]


def test_rbac_covers_the_backend_and_nothing_else() -> None:
    role = find("Role", "k8s-gpu-rl-agent")
    for group, resource, verbs in BACKEND_NEEDS:
        for verb in verbs:
            assert allowed(role, group, resource, verb), (group, resource, verb)
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {(g, r, v) for g, r, verbs in BACKEND_NEEDS for v in verbs}
    assert granted == needed, f"more than the backend uses: {granted - needed}"
    assert not allowed(role, "apps", "deployments", "delete")
    binding = find("RoleBinding", "k8s-gpu-rl-agent")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    (subject,) = binding["subjects"]
    account = find("ServiceAccount", subject["name"])
    assert subject["kind"] == "ServiceAccount"
    assert subject["namespace"] == account["metadata"]["namespace"] == NAMESPACE


# --- Locust Job --------------------------------------------------------------------------

JOB = find("Job", "locust")
(LOCUST,) = JOB["spec"]["template"]["spec"]["containers"]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def mounted_files(tmp: Path) -> Path:
    """Lay out the `files` volume of the Job as the kubelet would; returns its mount path."""
    spec = JOB["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if "configMap" in v]
    config_map = find("ConfigMap", volume["configMap"]["name"], ALL["locust"])
    (mount,) = [m for m in LOCUST["volumeMounts"] if m["name"] == volume["name"]]
    root = tmp / mount["mountPath"].lstrip("/")
    for item in volume["configMap"]["items"]:
        path = root / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config_map["data"][item["key"]], encoding="utf-8")
    return root


def test_locust_job_runs_against_the_triton_service() -> None:
    args = LOCUST["args"]
    service = find("Service", "triton")
    http = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert option(args, "--host") == f"http://{service['metadata']['name']}:{http}"
    assert "--headless" in args
    assert option(args, "--csv").startswith("/results/")
    assert re.fullmatch(r"locustio/locust:2\.\d+\.\d+", LOCUST["image"])
    assert JOB["spec"]["backoffLimit"] == 0
    assert JOB["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    (init,) = JOB["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == LOCUST["image"], "the same Python must install the dependencies"
    results = next(m for m in LOCUST["volumeMounts"] if m["mountPath"] == "/results")
    volume = next(
        v for v in JOB["spec"]["template"]["spec"]["volumes"] if v["name"] == results["name"]
    )
    find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], ALL["locust"])


def test_locust_job_mounts_every_generated_file_and_only_those() -> None:
    volume = next(v for v in JOB["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    config_map = find("ConfigMap", volume["configMap"]["name"], ALL["locust"])
    keys = [item["key"] for item in volume["configMap"]["items"]]
    assert sorted(keys) == sorted(config_map["data"])
    for item in volume["configMap"]["items"]:
        # key "package.module.py" -> path "package/module.py", the file it was made from
        assert item["path"] == item["key"].replace(".", "/", 1)
        source = REPO_ROOT / item["path"]
        assert config_map["data"][item["key"]] == source.read_text(encoding="utf-8")
    # Every profile the repository ships goes along.
    profiles = {p.name for p in (REPO_ROOT / "loadprofiles").glob("*.yaml")}
    assert profiles <= {Path(item["path"]).name for item in volume["configMap"]["items"]}


def test_the_mounted_files_alone_run_the_locustfile(tmp_path: Path) -> None:
    """Import the locustfile from the Job's layout, with /locust as PYTHONPATH, and check
    that every project module comes from that layout (nothing from the checkout)."""
    root = mounted_files(tmp_path)
    env_vars = {e["name"]: e["value"] for e in LOCUST["env"]}
    pythonpath = env_vars["PYTHONPATH"].split(":")
    assert pythonpath[0] == "/locust"
    locustfile = option(LOCUST["args"], "-f")
    profile = option(LOCUST["args"], "--load-profile")
    code = textwrap.dedent(
        f"""
        import runpy, sys
        runpy.run_path({str(tmp_path / locustfile.lstrip("/"))!r})
        import k8s_gpu_rl.config, k8s_gpu_rl.loadprofiles.profile, k8s_gpu_rl.loadprofiles.kserve_v2
        for module in (k8s_gpu_rl.config, k8s_gpu_rl.loadprofiles.profile, k8s_gpu_rl.loadprofiles.kserve_v2):
            print(module.__file__)
        print("profile", k8s_gpu_rl.loadprofiles.profile.load_profile({profile!r}).name)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        **{k: v for k, v in env_vars.items() if k.startswith("K8SGPURL_")},
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    for line in lines[:3]:
        assert Path(line).resolve().is_relative_to(root.resolve()), line
    assert lines[-1] == f"profile {profile}"


def test_locust_accepts_the_jobs_command_line(tmp_path: Path) -> None:
    """Run the Job's command line (a 2-second profile, a closed port) from the mounted
    layout: Locust must parse every option and write the CSV and HTML results."""
    root = mounted_files(tmp_path)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        "name: tiny\ndescription: two seconds\nwait_time: {min: 0.1, max: 0.2}\n"
        "stages:\n  - {duration: 2, users: 2, spawn_rate: 2}\n",
        encoding="utf-8",
    )
    results = tmp_path / "results"
    results.mkdir()
    args = list(LOCUST["args"])
    args[args.index("--host") + 1] = "http://127.0.0.1:9"
    args[args.index("--load-profile") + 1] = str(tiny)
    args = [
        str(tmp_path / a.lstrip("/")) if a.startswith(("/locust/", "/results/")) else a
        for a in args
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", *LOCUST["command"], *args]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr  # every request failed: Locust exits 1
    prefix = Path(option(args, "--csv"))
    for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv"):
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    assert Path(option(args, "--html")).is_file()


# --- shell scripts -----------------------------------------------------------------------

SCRIPTS = sorted(K8S_DIR.glob("*.sh"))
# What the scripts may call besides the cluster tools; nothing else is on PATH in the runs.
SYSTEM_TOOLS = ("bash", "sh", "sed", "tail", "dirname", "mktemp", "rm", "mkdir", "cp", "cat")

# A stand-in for helm, kubectl, microk8s and sudo: appends its argv (and its stdin for
# `apply -f -`) as one JSON line to $FAKE_LOG, answers from $FAKE_RULES (argv prefix ->
# stdout, exit code), copies `kubectl cp SRC POD:DST` into $FAKE_PVC, and runs `sudo CMD`.
FAKE_TOOL = """\
import json, os, pathlib, shutil, subprocess, sys
argv = [pathlib.Path(sys.argv[0]).name, *sys.argv[1:]]
entry = {"argv": argv}
if argv[-2:] == ["-f", "-"]:
    entry["stdin"] = sys.stdin.read()
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(entry) + "\\n")
if argv[0] == "sudo":
    sys.exit(subprocess.run(argv[1:]).returncode)
words = [w for w in argv if w not in ("--namespace", os.environ.get("FAKE_NS", ""))]
if argv[0] == "kubectl" and "cp" in words:
    src, dst = words[words.index("cp") + 1 : words.index("cp") + 3]
    target = pathlib.Path(os.environ["FAKE_PVC"]) / dst.split(":", 1)[1].lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
for prefix, out, code in json.loads(os.environ.get("FAKE_RULES", "[]")):
    if argv[: len(prefix)] == prefix:
        sys.stdout.write(out)
        sys.exit(code)
"""


class FakeCluster:
    """Fake cluster tools first on a PATH that holds nothing else but ``SYSTEM_TOOLS``."""

    def __init__(self, tmp: Path, tools: tuple[str, ...] = ("helm", "kubectl", "sudo")) -> None:
        self.tmp, self.log, self.pvc = tmp, tmp / "calls.jsonl", tmp / "pvc"
        self.bin = tmp / "bin"
        self.bin.mkdir(parents=True)
        for tool in tools:
            stub = self.bin / tool
            stub.write_text(f"#!{sys.executable}\n{FAKE_TOOL}", encoding="utf-8")
            stub.chmod(0o755)
        for tool in SYSTEM_TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is not installed"
            (self.bin / tool).symlink_to(found)

    def run(
        self, *command: str, rules: list | None = None, **env: str
    ) -> subprocess.CompletedProcess:
        environ = {
            "PATH": str(self.bin),
            "HOME": str(self.tmp),
            "FAKE_LOG": str(self.log),
            "FAKE_PVC": str(self.pvc),
            "FAKE_NS": env.pop("FAKE_NS", NAMESPACE),
            "FAKE_RULES": json.dumps(rules or []),
            **env,
        }
        return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)

    def calls(self) -> list[list[str]]:
        return [entry["argv"] for entry in self.entries()]

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_shell_scripts_are_strict_bash(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text


# The exact Helm commands helm-install.sh runs on a cluster with neither Prometheus nor HAMi.
# Versions are the pinned ones the k8s README quotes; release names and namespaces are the
# ones the base's ServiceMonitors/PodMonitor select (checked above).
PROM_INSTALL = [
    "helm", "upgrade", "--install", PROMETHEUS_RELEASE, "kube-prometheus-stack",
    "--repo", "https://prometheus-community.github.io/helm-charts", "--version", "77.6.2",
    "--namespace", "observability", "--create-namespace",
    "--set", "prometheus.prometheusSpec.scrapeInterval=30s",
    "--wait", "--timeout", "15m",
]  # fmt: skip
HAMI_INSTALL = [
    "helm", "upgrade", "--install", "hami", "hami",
    "--repo", "https://project-hami.github.io/HAMi/", "--version", "2.10.0",
    "--namespace", "kube-system",
    "--set", "schedulerName=hami-scheduler",
    "--set", "scheduler.kubeScheduler.image.registry=registry.k8s.io",
    "--set", "scheduler.kubeScheduler.image.repository=kube-scheduler",
    "--set", "scheduler.kubeScheduler.image.tag=v1.30.4",
    "--set", "scheduler.defaultSchedulerPolicy.nodeSchedulerPolicy=binpack",
    "--set", "scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy=spread",
    "--set", "devicePlugin.deviceSplitCount=10",
    "--set", "devicePlugin.deviceMemoryScaling=1",
    "--set", "devicePlugin.deviceCoreScaling=1",
    "--set", "devicePlugin.pluginPath=/plugins/device-plugins",
    "--set-string", "devicePlugin.nvidiaNodeSelector.gpu=on",
    "--wait", "--timeout", "10m",
]  # fmt: skip
DCGM_INSTALL = [
    "helm", "upgrade", "--install", "dcgm-exporter", "dcgm-exporter",
    "--repo", "https://nvidia.github.io/dcgm-exporter/helm-charts", "--version", "4.8.2",
    "--namespace", "gpu-monitoring", "--create-namespace",
    "--set", "serviceMonitor.enabled=true",
    "--set", "serviceMonitor.interval=30s",
    "--set", f"serviceMonitor.additionalLabels.release={PROMETHEUS_RELEASE}",
    "--wait", "--timeout", "10m",
]  # fmt: skip
PROM_STATUS = ["helm", "status", PROMETHEUS_RELEASE, "--namespace", "observability"]
CRD_CHECK = ["kubectl", "get", "crd", "podmonitors.monitoring.coreos.com"]
# `kubectl version -o json` of a 1.30.4 API server (client first, as kubectl prints them)
KUBECTL_VERSION = (
    ["kubectl", "version", "-o", "json"],
    '{\n  "clientVersion": {\n    "gitVersion": "v1.31.0"\n  },\n'
    '  "serverVersion": {\n    "gitVersion": "v1.30.4",\n    "platform": "linux/amd64"\n  }\n}\n',
    0,
)
NOT_FOUND = 1  # what helm status / kubectl get answer for an absent release or CRD


def test_helm_install_runs_the_pinned_commands(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    rules = [[PROM_STATUS, "", NOT_FOUND], [CRD_CHECK, "", NOT_FOUND], list(KUBECTL_VERSION)]
    result = cluster.run(
        str(K8S_DIR / "helm-install.sh"), rules=rules, KUBELET_PLUGIN_DIR="/plugins/device-plugins"
    )
    assert result.returncode == 0, result.stderr
    assert cluster.calls() == [
        PROM_STATUS,
        CRD_CHECK,
        PROM_INSTALL,
        KUBECTL_VERSION[0],
        HAMI_INSTALL,
        DCGM_INSTALL,
    ]
    # the same settings the simulated cluster and the manifests assume
    hami = CLUSTER["hami"]
    assert f"devicePlugin.deviceSplitCount={hami['device_split_count']}" in HAMI_INSTALL
    policy = "scheduler.defaultSchedulerPolicy"
    assert f"{policy}.nodeSchedulerPolicy={hami['node_scheduler_policy']}" in HAMI_INSTALL
    assert f"{policy}.gpuSchedulerPolicy={hami['gpu_scheduler_policy']}" in HAMI_INSTALL
    assert POD_SPEC["schedulerName"] == "hami-scheduler"
    interval = f"{CLUSTER['metrics']['scrape_interval_s']:.0f}s"
    assert f"prometheus.prometheusSpec.scrapeInterval={interval}" in PROM_INSTALL
    assert find("ServiceMonitor", "hami-scheduler")["spec"]["namespaceSelector"] == {
        "matchNames": ["kube-system"]
    }
    assert "then: kubectl apply -k scripts/k8s/base" in result.stdout


def test_helm_install_pins_the_versions_the_readme_quotes() -> None:
    readme = (K8S_DIR / "README.md").read_text(encoding="utf-8")
    for command in (PROM_INSTALL, HAMI_INSTALL, DCGM_INSTALL):
        chart, version = command[4], option(command, "--version")
        assert re.search(rf"{re.escape(chart)}[^\n|]*\|[^\n]*\b{re.escape(version)}\b", readme), (
            chart
        )


def test_helm_install_leaves_an_existing_prometheus_alone(tmp_path: Path) -> None:
    """MicroK8s' observability addon installed kube-prom-stack: no Prometheus install, and the
    HAMi scheduler's tag and plugin path come from the cluster."""
    cluster = FakeCluster(tmp_path)
    result = cluster.run(
        str(K8S_DIR / "helm-install.sh"),
        "--skip-dcgm-exporter",
        rules=[[PROM_STATUS, "STATUS: deployed\n", 0], list(KUBECTL_VERSION)],
    )
    assert result.returncode == 0, result.stderr
    calls = cluster.calls()
    assert calls[:2] == [PROM_STATUS, KUBECTL_VERSION[0]] and len(calls) == 3
    (hami,) = [c for c in calls if c[:2] == ["helm", "upgrade"]]
    assert hami[4] == "hami" and "scheduler.kubeScheduler.image.tag=v1.30.4" in hami
    # no KUBELET_PLUGIN_DIR: kubelet's standard directory, or MicroK8s' where it is not linked
    paths = [v.split("=", 1)[1] for v in hami if v.startswith("devicePlugin.pluginPath=")]
    assert paths in (
        ["/var/lib/kubelet/device-plugins"],
        ["/var/snap/microk8s/common/var/lib/kubelet/device-plugins"],
    )
    assert "already in observability" in result.stdout


def test_helm_install_stops_on_a_foreign_prometheus_operator(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    result = cluster.run(
        str(K8S_DIR / "helm-install.sh"), rules=[[PROM_STATUS, "", NOT_FOUND], [CRD_CHECK, "", 0]]
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: a Prometheus operator is installed")
    assert "--prometheus=skip" in result.stderr
    assert cluster.calls() == [PROM_STATUS, CRD_CHECK]  # nothing installed


def test_helm_install_without_a_server_version_says_what_to_set(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path)
    result = cluster.run(
        str(K8S_DIR / "helm-install.sh"),
        "--prometheus=skip",
        rules=[[KUBECTL_VERSION[0], '{"clientVersion": {}}', 0]],
    )
    assert result.returncode == 1
    assert "could not read the API server's version; set KUBE_SCHEDULER_TAG" in result.stderr
    assert not [c for c in cluster.calls() if c[:2] == ["helm", "upgrade"]]


def test_helm_and_kubectl_fall_back_to_microk8s(tmp_path: Path) -> None:
    """Only `microk8s` on PATH: the script runs `microk8s helm3` and `microk8s kubectl`."""
    cluster = FakeCluster(tmp_path, tools=("microk8s",))
    result = cluster.run(
        str(K8S_DIR / "helm-install.sh"), "--prometheus=skip", "--skip-dcgm-exporter",
        KUBE_SCHEDULER_TAG="v1.32.1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (call,) = cluster.calls()
    assert call[:5] == ["microk8s", "helm3", "upgrade", "--install", "hami"]
    assert "scheduler.kubeScheduler.image.tag=v1.32.1" in call
    assert "done. Check: microk8s kubectl -n kube-system get pods" in result.stdout


@pytest.mark.parametrize(
    ("tools", "env", "command", "expected"),
    [
        (("kubectl",), {}, "find_kubectl", "kubectl"),
        (("microk8s",), {}, "find_kubectl", "microk8s|kubectl"),
        (("kubectl",), {"KUBECTL": "microk8s kubectl"}, "find_kubectl", "microk8s|kubectl"),
        (("helm",), {}, "find_helm", "helm"),
        (("microk8s",), {}, "find_helm", "microk8s|helm3"),
        ((), {"HELM": "/opt/helm --debug"}, "find_helm", "/opt/helm|--debug"),
    ],
)
def test_lib_finds_the_cluster_tools(tmp_path: Path, tools, env, command, expected) -> None:
    cluster = FakeCluster(tmp_path, tools=tools)
    variable = "KUBECTL_CMD" if command == "find_kubectl" else "HELM_CMD"
    script = f'source "{K8S_DIR / "lib.sh"}"; {command}; (IFS="|"; echo "${{{variable}[*]}}")'
    result = cluster.run("bash", "-c", script, **env)
    assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("find_kubectl", "error: kubectl not found: install it or set KUBECTL"),
        ("find_helm", "error: helm not found: install Helm 3, or run 'microk8s enable helm3'"),
    ],
)
def test_lib_names_the_missing_tool(tmp_path: Path, command: str, message: str) -> None:
    cluster = FakeCluster(tmp_path, tools=())
    result = cluster.run("bash", "-c", f'source "{K8S_DIR / "lib.sh"}"; {command}; echo after')
    assert result.returncode == 1 and result.stderr.startswith(message)
    assert "after" not in result.stdout


def test_lib_dry_run_prints_shell_quoted_commands(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, tools=())
    script = f'source "{K8S_DIR / "lib.sh"}"; run mkdir "{tmp_path}/a b"; echo "$?"'
    dry = cluster.run("bash", "-c", script, DRY_RUN="1")
    assert dry.stdout == f"+ mkdir {tmp_path}/a\\ b\n0\n"
    assert not (tmp_path / "a b").exists()
    wet = cluster.run("bash", "-c", script)
    assert wet.stdout == "0\n" and (tmp_path / "a b").is_dir()


def model_repository(cluster: FakeCluster, *args: str, **env: str) -> subprocess.CompletedProcess:
    return cluster.run(str(K8S_DIR / "model-repository.sh"), *args, PYTHON=sys.executable, **env)


def test_model_repository_copies_through_a_helper_pod(tmp_path: Path) -> None:
    onnx = tmp_path / "given.onnx"
    onnx.write_bytes(b"not really onnx")
    out = tmp_path / "repo"
    cluster = FakeCluster(tmp_path / "fake", tools=("kubectl",))
    result = model_repository(cluster, f"--onnx={onnx}", f"--out={out}", "--restart")
    assert result.returncode == 0, result.stderr
    kc = ["kubectl", "--namespace", NAMESPACE]
    pod = "triton-models-loader"
    entries = cluster.entries()
    assert [e["argv"] for e in entries] == [
        [*kc, "apply", "-f", "-"],
        [*kc, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=180s"],
        [*kc, "exec", pod, "--", "mkdir", "-p", "/models/mobilenetv4/1"],
        [*kc, "cp", f"{out}/mobilenetv4/1/model.onnx", f"{pod}:/models/mobilenetv4/1/model.onnx"],
        [*kc, "cp", f"{out}/mobilenetv4/config.pbtxt", f"{pod}:/models/mobilenetv4/config.pbtxt"],
        [*kc, "exec", pod, "--", "ls", "-lR", "/models/mobilenetv4"],
        [*kc, "delete", "pod", pod, "--wait=false"],
        [*kc, "rollout", "restart", "deployment/triton"],
        [*kc, "rollout", "status", "deployment/triton", "--timeout=600s"],
    ]
    # The helper pod is a valid Pod that mounts the PVC the Deployment reads its models from.
    helper = yaml.safe_load(entries[0]["stdin"])
    kubernetes_validate.validate(helper, K8S_VERSIONS[0], strict=True)
    assert helper["metadata"]["name"] == pod
    (volume,) = helper["spec"]["volumes"]
    find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], ALL["base"])
    assert helper["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == "/models"
    # What reached the PVC: the given model and the ConfigMap's config.pbtxt, in Triton's layout.
    config = find("ConfigMap", "triton-config")["data"]["config.pbtxt"]
    assert (cluster.pvc / "models/mobilenetv4/1/model.onnx").read_bytes() == b"not really onnx"
    assert (cluster.pvc / "models/mobilenetv4/config.pbtxt").read_text(encoding="utf-8") == config


def test_model_repository_copies_into_the_hostpath_volume(tmp_path: Path) -> None:
    onnx = tmp_path / "given.onnx"
    onnx.write_bytes(b"onnx bytes")
    host = tmp_path / "hostpath" / "pvc-123"
    cluster = FakeCluster(tmp_path / "fake", tools=("kubectl", "sudo"))
    rules = [
        [["kubectl", "--namespace", "testbed", "get", "pvc", "triton-models"], "pvc-123", 0],
        [["kubectl", "get", "pv", "pvc-123"], str(host), 0],
    ]
    result = model_repository(
        cluster, f"--onnx={onnx}", "--copy=hostpath", "--namespace=testbed", rules=rules,
        FAKE_NS="testbed",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = cluster.calls()
    assert calls[0] == [
        "kubectl", "--namespace", "testbed", "get", "pvc", "triton-models",
        "-o", "jsonpath={.spec.volumeName}",
    ]  # fmt: skip
    assert calls[1] == ["kubectl", "get", "pv", "pvc-123", "-o", "jsonpath={.spec.hostPath.path}"]
    assert [c[:2] for c in calls[2:]] == [["sudo", "mkdir"], ["sudo", "cp"], ["sudo", "cp"]]
    assert (host / "mobilenetv4" / "1" / "model.onnx").read_bytes() == b"onnx bytes"
    config = find("ConfigMap", "triton-config")["data"]["config.pbtxt"]
    assert (host / "mobilenetv4" / "config.pbtxt").read_text(encoding="utf-8") == config


def test_model_repository_refuses_an_unbound_pvc(tmp_path: Path) -> None:
    onnx = tmp_path / "given.onnx"
    onnx.write_bytes(b"x")
    cluster = FakeCluster(tmp_path / "fake", tools=("kubectl", "sudo"))
    result = model_repository(cluster, f"--onnx={onnx}", "--copy=hostpath")  # volumeName empty
    assert result.returncode == 1
    assert result.stderr.startswith("error: PVC triton-models is not bound yet")
    assert [c[0] for c in cluster.calls()] == ["kubectl"]  # nothing copied with sudo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--copy=scp"], "error: --copy takes pod, hostpath or none, not 'scp'"),
        (["--source=s3"], "error: --source takes auto, hub or local, not 's3'"),
        (["--onnx=/no/such.onnx"], "error: --onnx: no such file: /no/such.onnx"),
        (["--copy=none"], "error: --copy=none keeps the result only in --out=DIR; give one"),
        (["--bogus"], "error: unknown option '--bogus' (see --help)"),
    ],
)
def test_model_repository_rejects_bad_options(tmp_path: Path, args, message) -> None:
    cluster = FakeCluster(tmp_path, tools=("kubectl",))
    result = model_repository(cluster, *args)
    assert (result.returncode, result.stderr.strip()) == (1, message)
    assert cluster.calls() == []


def run_without_cluster_tools(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    """A dry run with the fake tools first on PATH: it must call none of them."""
    cluster = FakeCluster(tmp_path, tools=("helm", "kubectl", "microk8s", "sudo"))
    result = cluster.run(*command, PYTHON=sys.executable)
    assert cluster.calls() == [], f"dry run called {cluster.calls()}"
    return result


def test_helm_install_dry_run_prints_what_the_real_run_runs(tmp_path: Path) -> None:
    """Each `+ ...` line, unquoted as the shell would, is the command of the real run."""
    result = run_without_cluster_tools(tmp_path, str(K8S_DIR / "helm-install.sh"), "--dry-run")
    assert result.returncode == 0, result.stderr
    printed = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line[:2] == "+ "]
    tag = "scheduler.kubeScheduler.image.tag="
    hami = [
        f"{tag}<API server version, vX.Y.Z>" if word.startswith(tag)
        else "devicePlugin.pluginPath=/var/lib/kubelet/device-plugins"
        if word.startswith("devicePlugin.pluginPath=") else word
        for word in HAMI_INSTALL
    ]  # fmt: skip
    assert printed == [PROM_STATUS, PROM_INSTALL, hami, DCGM_INSTALL]


def test_helm_install_options(tmp_path: Path) -> None:
    script = str(K8S_DIR / "helm-install.sh")
    skipped = run_without_cluster_tools(
        tmp_path, script, "--dry-run", "--prometheus=skip", "--skip-dcgm-exporter"
    )
    assert skipped.returncode == 0, skipped.stderr
    assert "kube-prometheus-stack --repo" not in skipped.stdout
    assert "dcgm-exporter --repo" not in skipped.stdout
    assert "hami --repo" in skipped.stdout
    bad = subprocess.run(
        [script, "--dry-run", "--prometheus=maybe"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "auto, install or skip" in bad.stderr
    assert subprocess.run([script, "--help"], capture_output=True, text=True).stdout.startswith(
        "Installs"
    )


def test_model_repository_dry_run(tmp_path: Path) -> None:
    script = str(K8S_DIR / "model-repository.sh")
    result = run_without_cluster_tools(tmp_path, script, "--dry-run", "--restart")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mobilenetv4_conv_small.e2400_r224_in1k" in out
    assert "scripts/export_mobilenetv4.py --out" in out
    assert "claimName: triton-models" in out
    assert "cp " in out and "triton-models-loader:/models/mobilenetv4/1/model.onnx" in out
    assert "rollout restart deployment/triton" in out
    hostpath = run_without_cluster_tools(tmp_path / "h", script, "--dry-run", "--copy=hostpath")
    assert hostpath.returncode == 0, hostpath.stderr
    assert "hostPath.path" in hostpath.stdout


def test_model_repository_builds_the_layout_locally(tmp_path: Path) -> None:
    """--onnx with --copy=none: the repository layout and the ConfigMap's config.pbtxt."""
    onnx = tmp_path / "given.onnx"
    onnx.write_bytes(b"not really onnx")
    out = tmp_path / "repo"
    script = str(K8S_DIR / "model-repository.sh")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        [script, f"--onnx={onnx}", "--copy=none", f"--out={out}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "mobilenetv4" / "1" / "model.onnx").read_bytes() == b"not really onnx"
    config = find("ConfigMap", "triton-config")["data"]["config.pbtxt"]
    assert (out / "mobilenetv4" / "config.pbtxt").read_text(encoding="utf-8") == config
    assert sorted(p.name for p in out.iterdir()) == ["mobilenetv4"]


def test_readme_covers_the_quick_start() -> None:
    readme = (K8S_DIR / "README.md").read_text(encoding="utf-8")
    for needle in (
        "microk8s enable",
        "gpu=on",
        "kubectl apply -k scripts/k8s/base",
        "scripts/k8s/helm-install.sh",
        "scripts/k8s/model-repository.sh",
        "python -m evaluate --backend k8s --backend-config scripts/k8s-backend.yaml",
        "Device 0 OOM",
        "Pending",
        "--load-restrictor LoadRestrictionsNone",
    ):
        assert needle in readme, needle
