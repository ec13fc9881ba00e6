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
  cluster's defaults (``envs/sim/clusters/rtx3080.yaml``), ``config.pbtxt`` -> the Locust
  requests, the Locust Job -> the project files it mounts (imported from that layout alone).
* The shell scripts parse (``bash -n``) and their ``--dry-run`` prints pinned commands without
  calling helm or kubectl.
"""

from __future__ import annotations

import copy
import os
import re
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
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    monitor = find("PodMonitor", "triton")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, K8S_VERSIONS[0], strict=True)


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


def parse_pbtxt(text: str) -> dict[str, Any]:
    """The handful of config.pbtxt fields checked here (a text-format protobuf subset)."""

    def field(name: str, source: str = text) -> str:
        match = re.search(rf"(?m)^\s*{name}\s*:\s*(\S+)", source)
        assert match, f"config.pbtxt has no {name}"
        return match.group(1).strip('"')

    def block(name: str) -> str:
        match = re.search(rf"{name}\s*\[(.*?)\n\]", text, re.S) or re.search(
            rf"{name}\s*\{{(.*?)\n\}}", text, re.S
        )
        assert match, f"config.pbtxt has no {name} block"
        return match.group(1)

    def dims(source: str) -> list[int]:
        return [int(x) for x in re.search(r"dims:\s*\[([^\]]*)\]", source).group(1).split(",")]

    inputs, outputs = block("input"), block("output")
    instance = block("instance_group")
    return {
        "name": field("name"),
        "platform": field("platform"),
        "max_batch_size": int(field("max_batch_size")),
        "input": (field("name", inputs), field("data_type", inputs), dims(inputs)),
        "output": (field("name", outputs), field("data_type", outputs), dims(outputs)),
        "max_queue_delay_us": int(field("max_queue_delay_microseconds", block("dynamic_batching"))),
        "instance": (field("kind", instance), int(field("count", instance))),
    }


def test_triton_config_pbtxt() -> None:
    config = parse_pbtxt(find("ConfigMap", "triton-config")["data"]["config.pbtxt"])
    serving = CLUSTER["serving"]
    assert config == {
        "name": serving["model_name"],
        "platform": "onnxruntime_onnx",
        "max_batch_size": serving["max_batch_size"],
        "input": ("input0", "TYPE_FP32", [3, 224, 224]),
        "output": ("output0", "TYPE_FP32", [1000]),
        "max_queue_delay_us": serving["max_queue_delay_us"],
        "instance": ("KIND_GPU", 1),
    }
    assert config["max_batch_size"] == 8 and config["max_queue_delay_us"] == 500
    # What the Locust users send by default.
    locustfile = (REPO_ROOT / "loadprofiles" / "locustfile.py").read_text(encoding="utf-8")
    assert '"K8SGPURL_MODEL", "mobilenetv4"' in locustfile
    assert '"K8SGPURL_INPUT", "input0"' in locustfile
    assert '"K8SGPURL_OUTPUT", "output0"' in locustfile


def test_the_pbtxt_parser_rejects_mistakes() -> None:
    text = find("ConfigMap", "triton-config")["data"]["config.pbtxt"]
    assert parse_pbtxt(text.replace('"input0"', '"INPUT__0"'))["input"][0] == "INPUT__0"
    with pytest.raises(AssertionError):
        parse_pbtxt(text.replace("max_batch_size", "max_batch"))


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


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_shell_scripts_parse(script: Path) -> None:
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
    assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text(encoding="utf-8")
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bash_n_catches_syntax_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sh"
    broken.write_text("if true; then\n  echo\n", encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(broken)], capture_output=True).returncode != 0


def run_without_cluster_tools(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    """Run with helm, kubectl, microk8s and sudo replaced by stubs that fail loudly."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(parents=True)
    marker = tmp_path / "called"
    for tool in ("helm", "kubectl", "microk8s", "sudo"):
        stub = fake_bin / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{marker}"\nexit 97\n', encoding="utf-8")
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    for name in ("HELM", "KUBECTL", "KUBE_SCHEDULER_TAG", "KUBELET_PLUGIN_DIR"):
        env.pop(name, None)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert not marker.exists(), f"dry run called {marker.read_text()}"
    return result


def test_helm_install_dry_run_prints_pinned_installs(tmp_path: Path) -> None:
    result = run_without_cluster_tools(tmp_path, str(K8S_DIR / "helm-install.sh"), "--dry-run")
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if "upgrade --install" in line]
    charts = {}
    for line in installs:
        words = line.split()
        chart = words[words.index("--install") + 2]
        charts[chart] = option(words, "--version")
        assert re.fullmatch(r"\d+\.\d+\.\d+", charts[chart]), line
        assert option(words, "--repo").startswith("https://"), line
    assert set(charts) == {"kube-prometheus-stack", "hami", "dcgm-exporter"}
    text = result.stdout
    assert "devicePlugin.deviceSplitCount=10" in text
    assert "scheduler.kubeScheduler.image.tag=" in text
    assert "prometheus.prometheusSpec.scrapeInterval=30s" in text
    assert f"serviceMonitor.additionalLabels.release={PROMETHEUS_RELEASE}" in text
    assert f"upgrade --install {PROMETHEUS_RELEASE} kube-prometheus-stack" in text
    # The README quotes the same versions.
    readme = (K8S_DIR / "README.md").read_text(encoding="utf-8")
    for chart, version in charts.items():
        assert re.search(rf"{re.escape(chart)}[^\n|]*\|[^\n]*\b{re.escape(version)}\b", readme), (
            chart
        )


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


def test_no_helm_or_kubectl_needed(tmp_path: Path) -> None:
    """The stubs really are what the scripts would find first."""
    fake = run_without_cluster_tools(tmp_path, "sh", "-c", "command -v helm kubectl")
    assert all(line.startswith(str(tmp_path)) for line in fake.stdout.split()), fake.stdout
    assert shutil.which("bash")
