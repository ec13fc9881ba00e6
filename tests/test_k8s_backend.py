"""The ``k8s`` backend against real parts wherever this machine has them.

* Kubernetes: :class:`FakeKubeApi` (tests/fake_kube_api.py), an HTTP-level API server with
  a small deployment controller; the unmodified ``kubernetes`` client talks to it.
* Prometheus: a real Prometheus (``PrometheusServer``) scraping a real inference server
  (``python -m k8s_gpu_rl.envs.backends.local.server``, Triton's metric names; the target labelled
  ``namespace``/``pod``/``container`` as a PodMonitor does) and a ``ClusterExporter``
  publishing kube-state-metrics, cAdvisor, DCGM and HAMi names for the fake's Deployment.
* Load: real headless Locust (``LocustRun``) against the server, end to end.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from k8s_gpu_rl.envs.backends.k8s.backend import K8sBackend, hpa_behavior
from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions
from k8s_gpu_rl.envs.backends.local.exporter import ClusterExporter, ClusterSample, PodSample
from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port
from k8s_gpu_rl.envs.backends.local.promserver import PrometheusServer
from k8s_gpu_rl.envs.observation import FEATURES
from k8s_gpu_rl.envs.sim.config import load_cluster_config
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.loadprofiles import load_profile
from k8s_gpu_rl.loadprofiles.kserve_v2 import build_infer_request, random_input
from k8s_gpu_rl.procenv import python_child_env

sys.path.insert(0, str(Path(__file__).resolve().parent))
from k8s_gpu_rl.testing.fake_kube_api import FakeKubeApi, parse_quantity, wait_until  # noqa: E402

pytest_plugins = ["local_fixtures"]  # onnx_model, model_repository

ROOT = Path(__file__).resolve().parents[1]
NS = "k8s-gpu-rl"
LABELS = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/managed-by": "k8s-gpu-rl"}
SELECTOR = "app.kubernetes.io/name=triton"
LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "50", "nvidia.com/gpumem": "5120"}
SCRAPE_S = 1.0
PROFILE = """\
name: tiny
description: a short load for the k8s backend's tests
wait_time: {min: 0.2, max: 0.4}
stages:
  - {duration: %s, users: 3, spawn_rate: 10}
"""


# --------------------------------------------------------------------------- fixtures


def _profile(tmp_path: Path, duration_s: float = 10) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(PROFILE % duration_s)
    return path


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(pod_ready_delay_s=0.3).start()
    api.add_deployment(
        NS, "triton", replicas=1, labels=dict(LABELS), limits=dict(LIMITS), requests={"cpu": "1"}
    )
    try:
        yield api
    finally:
        api.stop()


def _options(fake: FakeKubeApi, tmp_path: Path, **kw: Any) -> K8sOptions:
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    fields: dict[str, Any] = {
        "kubeconfig": str(kubeconfig),
        "prometheus_url": "http://127.0.0.1:9",  # nothing listens: tests that need one set it
        "service_url": "http://127.0.0.1:9",
        "api_retries": 3,
        "rollout_timeout_s": 30.0,
        "pod_poll_s": 0.5,
        **kw,
    }
    return K8sOptions(**fields)


def _backend(fake: FakeKubeApi, tmp_path: Path, **kw: Any) -> K8sBackend:
    return K8sBackend(
        load_cluster_config("rtx3080"),
        load_profile(_profile(tmp_path)),
        _options(fake, tmp_path, **kw),
    )


def _mutating(fake: FakeKubeApi) -> list[Any]:
    return [r for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def _container(fake: FakeKubeApi) -> dict[str, Any]:
    dep = fake.deployment(NS, "triton")
    assert dep is not None
    return dep["spec"]["template"]["spec"]["containers"][0]


class Mirror:
    """A ClusterSample of the fake's Deployment; the first Ready pod is the real server."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.fake: FakeKubeApi | None = None
        self._http = requests.Session()

    def server_counters(self) -> tuple[float, float, float]:
        proc = psutil.Process(self.server.proc.pid)
        t = proc.cpu_times()
        text = self._http.get(
            f"http://127.0.0.1:{self.server.metrics_port}/metrics", timeout=2
        ).text
        busy = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("k8sgpurl_compute_busy_seconds_total")
        )
        return t.user + t.system, busy, float(proc.memory_info().rss)

    def first_ready(self) -> str | None:
        if self.fake is None:
            return None
        ready = sorted(p["metadata"]["name"] for p in self.fake.ready_pods(NS, SELECTOR))
        return ready[0] if ready else None

    def sample(self) -> ClusterSample:
        fake = self.fake
        if fake is None:
            return ClusterSample(NS, "triton", 0, 0, 0, (), 10240.0)
        dep = fake.deployment(NS, "triton") or {"spec": {"replicas": 0}}
        pods = sorted(fake.pods(NS, SELECTOR), key=lambda p: p["metadata"]["name"])
        first = self.first_ready()
        samples, ready = [], 0
        for p in pods:
            c = p["spec"]["containers"][0]
            limits = c["resources"].get("limits", {})
            is_ready = any(
                x["type"] == "Ready" and x["status"] == "True"
                for x in p["status"].get("conditions", [])
            )
            ready += is_ready
            phase = (
                "Ready" if is_ready else ("Starting" if p["spec"].get("nodeName") else "Pending")
            )
            cpu = busy = mem = math.nan
            if p["metadata"]["name"] == first:
                cpu, busy, mem = self.server_counters()
            samples.append(
                PodSample(
                    p["metadata"]["name"],
                    phase,
                    int(parse_quantity(limits.get("nvidia.com/gpucores", 0))),
                    int(parse_quantity(limits.get("nvidia.com/gpumem", 0))),
                    float(parse_quantity(c["resources"].get("requests", {}).get("cpu", 0))),
                    cpu,
                    busy,
                    mem,
                )
            )
        spec = int(dep["spec"]["replicas"])
        return ClusterSample(
            NS, "triton", spec, ready, max(0, spec - ready), tuple(samples), 10240.0
        )


class Stack:
    def __init__(
        self, group: ProcessGroup, prom: PrometheusServer, mirror: Mirror, mirror_port: int
    ) -> None:
        self.group, self.prom, self.mirror = group, prom, mirror
        self.mirror_port = mirror_port
        self.server = mirror.server

    def attach(self, fake: FakeKubeApi) -> str:
        """Mirror ``fake``; label the server's series with its first Ready pod; that pod."""
        self.mirror.fake = fake
        pod = self.mirror.first_ready()
        assert pod is not None
        self.prom.set_targets(
            "triton",
            [
                (
                    f"127.0.0.1:{self.server.metrics_port}",
                    {"namespace": NS, "pod": pod, "container": "triton"},
                )
            ],
        )
        self.prom.wait_for_samples(f'nv_inference_request_success{{pod="{pod}"}}', 30)
        self.prom.wait_for_samples(
            f'kube_deployment_spec_replicas{{deployment="triton"}} == {self.mirror.sample().spec_replicas}',
            30,
        )
        return pod


@pytest.fixture(scope="module")
def stack(model_repository: Path) -> Iterator[Stack]:
    from local_fixtures import ServerProcess

    server = ServerProcess(model_repository)
    group = ProcessGroup(prefix="k8sgpurl-test-k8s-")
    exporter = None
    try:
        mirror = Mirror(server)
        port = free_port("127.0.0.1")
        exporter = ClusterExporter(mirror.sample, "127.0.0.1", port)
        prom = PrometheusServer(group, free_port("127.0.0.1"), scrape_interval_s=SCRAPE_S)
        prom.set_targets("kube-state-metrics", [(f"127.0.0.1:{port}", {})])
        prom.wait_ready()
        yield Stack(group, prom, mirror, port)
    finally:
        if exporter is not None:
            exporter.close()
        group.close()
        server.stop()


def _send(server: Any, seconds: float, rps: float) -> int:
    """Requests to the server at about ``rps`` for ``seconds``; how many succeeded."""
    req = build_infer_request("mobilenetv4", "input0", "output0", random_input(0))
    sent = 0
    deadline = time.monotonic() + seconds
    with requests.Session() as http:
        while time.monotonic() < deadline:
            t = time.monotonic()
            r = http.post(
                f"http://{server.url}{req.path}", data=req.body, headers=req.headers, timeout=10
            )
            assert r.status_code == 200, r.text[:200]
            sent += 1
            time.sleep(max(0.0, 1.0 / rps - (time.monotonic() - t)))
    return sent


# --------------------------------------------------------------------------- observation


@pytest.mark.slow
def test_every_promql_feature_matches_its_exporters(
    stack: Stack, fake: FakeKubeApi, tmp_path: Path
) -> None:
    # two replicas at 50 % each, as the Deployment spec says
    b = _backend(fake, tmp_path, prometheus_url=stack.prom.url)
    b.kube.scale(2)
    wait_until(lambda: len(fake.ready_pods(NS, SELECTOR)) == 2, timeout=10)
    stack.attach(fake)
    counts: list[int] = []
    sender = threading.Thread(target=lambda: counts.append(_send(stack.server, 12.0, 8.0)))
    started = time.monotonic()
    sender.start()
    time.sleep(9.0)  # observe while the load runs: the 6 s window is all load
    raw = b.observe(6.0)
    sender.join()
    actual = counts[0] / (time.monotonic() - started)
    assert set(raw) == {f.name for f in FEATURES if f.promql}
    sample = stack.mirror.sample()
    assert raw["replicas_desired"] == 2 == sample.spec_replicas
    assert raw["replicas_available"] == sample.available == 2
    assert raw["replicas_unavailable"] == 0
    assert raw["gpu_cores_allocated"] == pytest.approx(2 * 50 / 100)
    # request_rate: the rate of requests actually sent (~8/s)
    assert raw["request_rate"] == pytest.approx(actual, rel=0.35)
    assert raw["request_rate_5m"] > 0
    assert raw["failure_rate"] == 0
    server_ms = raw["server_latency"]
    assert 1.0 < server_ms < 500.0
    assert 0 <= raw["queue_latency"] < server_ms
    assert raw["batch_size"] == pytest.approx(1.0)  # one closed-loop client: no batching
    assert raw["pending_requests"] == 0
    assert 0 < raw["gpu_util"] <= 100
    _, _, rss = stack.mirror.server_counters()
    assert raw["gpu_memory"] == pytest.approx(rss / 2**20 / 10240.0, rel=0.2)
    # cpu_util: the server's CPU rate over both pods' requests (2 x 1 core)
    assert 0 < raw["cpu_util"] < 1.0
    assert 0 <= raw["metrics_age"] < 3 * SCRAPE_S
    assert not b.stale
    # the interval and per-pod queries the backend adds
    gpu_work, cpu = b._interval_usage(5.0, time.time())
    assert gpu_work > 0 and cpu > 0
    pods = b.pod_metrics()
    assert sorted(p.name for p in pods) == sorted(p["metadata"]["name"] for p in fake.pods(NS))
    served = [p for p in pods if math.isfinite(p.rps)]
    # the series is younger than the 1m window: compare with the same rate, not grouped
    whole = stack.prom.query_scalar("sum(rate(nv_inference_request_success[1m]))")
    assert len(served) == 1 and served[0].rps == pytest.approx(whole, rel=0.1) and whole > 0
    assert served[0].name == stack.mirror.first_ready()
    assert served[0].cpu_cores > 0 and served[0].inflight > 0
    assert all(p.cpu_request_cores == 1.0 and p.gpucores == 50 for p in pods)
    assert all(p.phase == "Ready" and p.ready_s < math.inf for p in pods)
    b.close()


# --------------------------------------------------------------------------- actions


def test_apply_sends_scale_and_share_patches_and_nothing_when_unchanged(
    fake: FakeKubeApi, tmp_path: Path
) -> None:
    b = _backend(fake, tmp_path, pod_annotations={"hami.io/resource-pool": "pool-a"})
    try:
        b.deployment()
        fake.clear_requests()
        b.apply(2, 30, 3072)
        scale = fake.requests_matching("PATCH", r"/deployments/triton/scale$")
        assert len(scale) == 1
        assert scale[0].body == {"spec": {"replicas": 2}}
        assert scale[0].headers["Content-Type"] == "application/strategic-merge-patch+json"
        share = fake.requests_matching("PATCH", r"/deployments/triton$")
        assert len(share) == 1
        assert share[0].headers["Content-Type"] == "application/strategic-merge-patch+json"
        assert share[0].body == {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"hami.io/resource-pool": "pool-a"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "triton",
                                "resources": {
                                    "limits": {
                                        "nvidia.com/gpucores": "30",
                                        "nvidia.com/gpumem": "3072",
                                    }
                                },
                                # HAMi-core enforces gpucores always, as the simulator assumes
                                "env": [{"name": "GPU_CORE_UTILIZATION_POLICY", "value": "force"}],
                            }
                        ]
                    },
                }
            }
        }
        dep = fake.deployment(NS, "triton")
        assert dep["spec"]["replicas"] == 2
        assert _container(fake)["resources"]["limits"]["nvidia.com/gpucores"] == "30"
        assert {"name": "GPU_CORE_UTILIZATION_POLICY", "value": "force"} in _container(fake)["env"]
        assert dep["spec"]["template"]["metadata"]["annotations"] == {
            "hami.io/resource-pool": "pool-a"
        }
        state = b.deployment()
        assert (state.spec_replicas, state.gpucores, state.gpumem_mib) == (2, 30, 3072)
        fake.clear_requests()
        b.apply(2, 30, 3072)
        assert _mutating(fake) == []
    finally:
        b.close()


def test_requests_follow_limits_when_the_container_has_them(
    fake: FakeKubeApi, tmp_path: Path
) -> None:
    fake.add_deployment(
        NS,
        "triton2",
        labels={
            "app.kubernetes.io/name": "triton2",
            **{k: v for k, v in LABELS.items() if k != "app.kubernetes.io/name"},
        },
        limits=dict(LIMITS),
        requests={"nvidia.com/gpucores": "50", "nvidia.com/gpumem": "5120", "cpu": "1"},
        scheduler_name="default-scheduler",
    )
    b = _backend(fake, tmp_path, deployment="triton2", scheduler_name="hami-scheduler")
    try:
        b.apply(1, 70, 7168)
        dep = fake.deployment(NS, "triton2")
        c = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert c["limits"]["nvidia.com/gpucores"] == c["requests"]["nvidia.com/gpucores"] == "70"
        assert c["requests"]["cpu"] == "1"
        assert dep["spec"]["template"]["spec"]["schedulerName"] == "hami-scheduler"
    finally:
        b.close()
    dep = fake.deployment(NS, "triton2")
    c = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert c["requests"]["nvidia.com/gpucores"] == c["limits"]["nvidia.com/gpucores"] == "50"
    assert dep["spec"]["template"]["spec"]["schedulerName"] == "default-scheduler"


# --------------------------------------------------------------------------- safety


def test_a_deployment_without_the_label_is_refused(fake: FakeKubeApi, tmp_path: Path) -> None:
    fake.add_deployment(NS, "other", labels={"app": "other"}, limits=dict(LIMITS))
    b = _backend(fake, tmp_path, deployment="other")
    fake.clear_requests()
    with pytest.raises(BackendError, match="does not carry the label app.kubernetes.io/managed-by"):
        b.apply(2, 30, 3072)
    with pytest.raises(BackendError, match="managed-by"):
        b.reset(0)
    with pytest.raises(BackendError, match="managed-by"):
        b.install_hpa(70, 1, 4)
    b.close()
    assert _mutating(fake) == []
    assert fake.deployment(NS, "other")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("replicas", "gpucores", "gpumem", "match"),
    [
        (0, 50, 5120, "replicas 0 outside"),
        (9, 10, 1024, "replicas 9 outside"),
        (1, 0, 5120, "gpucores 0 outside"),
        (1, 101, 5120, "gpucores 101 outside"),
        (3, 50, 5120, "exceeds the GPUs' cores"),
        (1, 50, 0, "gpumem 0 MiB"),
    ],
)
def test_bounds_are_enforced_before_any_request(
    fake: FakeKubeApi, tmp_path: Path, replicas: int, gpucores: int, gpumem: int, match: str
) -> None:
    b = _backend(fake, tmp_path)
    fake.clear_requests()
    with pytest.raises(BackendError, match=match):
        b.apply(replicas, gpucores, gpumem)
    assert fake.requests == []
    b.close()


def test_dry_run_prints_the_patches_and_sends_none(
    fake: FakeKubeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = _backend(fake, tmp_path, dry_run=True)
    fake.clear_requests()
    b.apply(2, 30, 3072)
    b.install_hpa(70, 1, 2)
    b.close()
    assert _mutating(fake) == []
    assert fake.requests_matching("GET")  # reads still happen (the label check)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    by_path = {(x["method"], x["path"]): x for x in lines}
    base = f"/apis/apps/v1/namespaces/{NS}/deployments/triton"
    assert by_path[("PATCH", f"{base}/scale")]["body"] == {"spec": {"replicas": 2}}
    share = by_path[("PATCH", base)]
    assert share["content_type"] == "application/strategic-merge-patch+json"
    limits = share["body"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpucores": "30", "nvidia.com/gpumem": "3072"}
    hpa = [x for x in lines if x["method"] == "POST"]
    assert hpa and hpa[0]["body"]["kind"] == "HorizontalPodAutoscaler"
    assert all(x["dry_run"] for x in lines)
    assert fake.deployment(NS, "triton")["spec"]["replicas"] == 1


def test_close_restores_the_original_replicas_and_limits(fake: FakeKubeApi, tmp_path: Path) -> None:
    b = _backend(fake, tmp_path, pod_annotations={"hami.io/resource-pool": "pool-a"})
    b.apply(2, 30, 3072)
    assert fake.deployment(NS, "triton")["spec"]["replicas"] == 2
    b.close()
    b.close()  # idempotent
    dep = fake.deployment(NS, "triton")
    assert dep["spec"]["replicas"] == 1
    assert _container(fake)["resources"]["limits"] == LIMITS
    assert "hami.io/resource-pool" not in (
        dep["spec"]["template"]["metadata"].get("annotations") or {}
    )
    # the policy the share patch set is removed again: the original container had none
    assert "GPU_CORE_UTILIZATION_POLICY" not in {
        e["name"] for e in _container(fake).get("env") or []
    }
    patches = fake.requests_matching("PATCH")
    assert len(patches) == 3  # scale, share, restore (once)


DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
from k8s_gpu_rl.envs.backends.k8s.backend import K8sBackend
from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions
from k8s_gpu_rl.envs.sim.config import load_cluster_config
from k8s_gpu_rl.loadprofiles import load_profile

b = K8sBackend(
    load_cluster_config("rtx3080"),
    load_profile({profile!r}),
    K8sOptions(kubeconfig={kubeconfig!r}, namespace={ns!r}, rollout_timeout_s=120,
               pod_poll_s=0.2, prometheus_url="http://127.0.0.1:9"),
)
print("STARTED", flush=True)
if {mode!r} == "finally":
    try:
        b.reset(0, gpucores=30, gpumem_mib=3072)
    finally:
        b.close()
else:  # nothing but atexit
    b.reset(0, gpucores=30, gpumem_mib=3072)
"""


@pytest.mark.parametrize("mode", ["finally", "atexit"])
def test_ctrl_c_mid_rollout_restores_the_deployment(tmp_path: Path, mode: str) -> None:
    fake = FakeKubeApi(pod_ready_delay_s=120.0).start()
    try:
        fake.add_deployment(
            NS,
            "triton",
            replicas=2,
            labels=dict(LABELS),
            limits=dict(LIMITS),
            requests={"cpu": "1"},
        )
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        script = tmp_path / "driver.py"
        script.write_text(
            DRIVER.format(
                profile=str(_profile(tmp_path)),
                kubeconfig=str(kubeconfig),
                ns=NS,
                mode=mode,
            )
        )
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=python_child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # the share patch and the scale are in; new pods are not Ready: rollout under way
            wait_until(
                lambda: (
                    _container(fake)["resources"]["limits"]["nvidia.com/gpucores"] == "30"
                    and fake.deployment(NS, "triton")["spec"]["replicas"] == 1
                ),
                timeout=30,
                interval=0.05,
            )
            time.sleep(0.5)
            assert proc.poll() is None, proc.communicate()
            new = [
                p
                for p in fake.pods(NS, SELECTOR)
                if p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpucores"] == "30"
            ]
            assert new and not any(p in fake.ready_pods(NS, SELECTOR) for p in new)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert "KeyboardInterrupt" in err
        dep = fake.deployment(NS, "triton")
        assert dep["spec"]["replicas"] == 2
        assert _container(fake)["resources"]["limits"] == LIMITS
    finally:
        fake.stop()


# --------------------------------------------------------------------------- faults


def test_conflict_twice_then_success_is_applied_in_three_requests(
    fake: FakeKubeApi, tmp_path: Path
) -> None:
    b = _backend(fake, tmp_path)
    b.deployment()
    fake.fail_next("PATCH", r"/deployments/triton/scale$", 409, times=2)
    fake.clear_requests()
    b.apply(2, 50, 5120)
    assert len(fake.requests_matching("PATCH", r"/scale$")) == 3
    assert fake.deployment(NS, "triton")["spec"]["replicas"] == 2
    b.close()


def test_server_error_then_success_is_retried(fake: FakeKubeApi, tmp_path: Path) -> None:
    b = _backend(fake, tmp_path)
    b.deployment()
    fake.fail_next("PATCH", r"/deployments/triton$", 500, times=1)
    fake.clear_requests()
    t = time.monotonic()
    b.apply(1, 30, 3072)
    assert time.monotonic() - t >= 0.45  # the first back-off step
    assert len(fake.requests_matching("PATCH", r"/deployments/triton$")) == 2
    assert _container(fake)["resources"]["limits"]["nvidia.com/gpucores"] == "30"
    b.close()


def test_too_many_requests_honours_retry_after(fake: FakeKubeApi, tmp_path: Path) -> None:
    b = _backend(fake, tmp_path)
    b.deployment()
    fake.fail_next("PATCH", r"/scale$", 429, retry_after=2)
    t = time.monotonic()
    b.apply(2, 50, 5120)
    assert time.monotonic() - t >= 1.9
    assert fake.deployment(NS, "triton")["spec"]["replicas"] == 2
    b.close()


def test_api_down_longer_than_the_retries_raises_naming_the_call(
    fake: FakeKubeApi, tmp_path: Path
) -> None:
    b = _backend(fake, tmp_path, api_retries=3)
    b.deployment()
    fake.down()
    try:
        t = time.monotonic()
        with pytest.raises(BackendError) as err:
            b.apply(2, 50, 5120)
        msg = str(err.value)
        assert "PATCH deployments/triton/scale (replicas=2)" in msg
        assert "failed after 3 attempts" in msg and "connection error" in msg
        assert 1.4 <= time.monotonic() - t < 10  # 0.5 s + 1 s of back-off
        fake.fail_next("GET", r"/deployments/triton$", 503, times=10)
    finally:
        fake.up()
    with pytest.raises(BackendError, match=r"read deployment .* after 3 attempts; last: HTTP 503"):
        b.deployment()
    fake.clear_faults()
    b.close()  # restores nothing: nothing was changed
    assert fake.deployment(NS, "triton")["spec"]["replicas"] == 1


@pytest.mark.slow
def test_stale_prometheus_holds_then_stops_the_run(
    stack: Stack, fake: FakeKubeApi, tmp_path: Path
) -> None:
    group = ProcessGroup(prefix="k8sgpurl-test-stale-")
    try:
        prom = PrometheusServer(group, free_port("127.0.0.1"), scrape_interval_s=SCRAPE_S)
        prom.set_targets("kube-state-metrics", [(f"127.0.0.1:{stack.mirror_port}", {})])
        prom.wait_ready()
        stack.mirror.fake = fake
        prom.wait_for_samples('kube_deployment_spec_replicas{deployment="triton"}', 30)
        b = _backend(fake, tmp_path, prometheus_url=prom.url, stale_after_s=5, stop_after_s=2)
        b.observe(60)
        assert not b.stale
        b.deployment()
        b.apply(2, 50, 5120)  # fresh: applied
        assert fake.deployment(NS, "triton")["spec"]["replicas"] == 2
        prom.stop()
        raw = b.observe(60)
        assert b.stale and all(math.isnan(v) for v in raw.values())
        fake.clear_requests()
        b.apply(1, 30, 3072)
        assert _mutating(fake) == []
        assert any("observation stale: action held" in e for e in b.events)
        time.sleep(2.1)
        b.observe(60)
        with pytest.raises(
            BackendError, match=r"Prometheus at http://127.0.0.1:\d+: no fresh metrics for 2 s"
        ):
            b.apply(1, 30, 3072)
        assert _mutating(fake) == []
        b.close()
        assert fake.deployment(NS, "triton")["spec"]["replicas"] == 1
    finally:
        group.close()


# --------------------------------------------------------------------------- live HPA


def test_live_hpa_is_created_and_deleted(fake: FakeKubeApi, tmp_path: Path) -> None:
    b = _backend(fake, tmp_path)
    behavior = hpa_behavior(30)
    b.install_hpa(90, 1, 4, behavior)
    posts = fake.requests_matching(
        "POST", r"/apis/autoscaling/v2/namespaces/k8s-gpu-rl/horizontalpodautoscalers$"
    )
    assert len(posts) == 1
    body = posts[0].body
    assert body["apiVersion"] == "autoscaling/v2"
    assert body["metadata"]["name"] == "triton-k8sgpurl"
    spec = body["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "triton",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 90},
            },
        }
    ]
    assert spec["behavior"] == {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 30,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    assert hpa_behavior()["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert fake.get("horizontalpodautoscalers", NS, "triton-k8sgpurl") is not None
    # while installed, apply() never scales
    b.deployment()
    fake.clear_requests()
    b.apply(3, 20, 2048)
    assert fake.requests_matching("PATCH", r"/scale$") == []
    b.close()
    deletes = fake.requests_matching("DELETE", r"/horizontalpodautoscalers/triton-k8sgpurl$")
    assert len(deletes) == 1
    assert fake.get("horizontalpodautoscalers", NS, "triton-k8sgpurl") is None
    assert _container(fake)["resources"]["limits"] == LIMITS


def test_runner_installs_the_live_hpa_per_policy(
    fake: FakeKubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_gpu_rl.baselines.hpa import HpaPolicy
    from k8s_gpu_rl.evaluation import runner

    calls: list[tuple[str, Any]] = []

    class Backend:
        def install_hpa(self, **kw: Any) -> None:
            calls.append(("install", kw))

    class Env:
        backend = Backend()

    plan = runner.EvalPlan(("hpa",), (), 1, 0, tmp_path, backend="k8s")
    policy = HpaPolicy(target=80, scale_down_window_s=60, max_replicas=4, min_replicas=1)
    from k8s_gpu_rl.baselines.hpa_algorithm import HpaSpec, ScalingRules

    policy.spec = HpaSpec(max_replicas=4, min_replicas=1, scale_down=ScalingRules(60))
    assert runner._install_live_hpa(plan, "hpa", Env(), policy)
    assert calls[0][1]["target_pct"] == 80 and calls[0][1]["max_replicas"] == 4
    assert calls[0][1]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert not runner._install_live_hpa(plan, "static", Env(), policy)
    sim = runner.EvalPlan(("hpa",), (), 1, 0, tmp_path, backend="sim")
    assert not runner._install_live_hpa(sim, "hpa", Env(), policy)


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_end_to_end_episode_kpis_match_locust(
    stack: Stack, fake: FakeKubeApi, tmp_path: Path
) -> None:
    from k8s_gpu_rl.envs.backends.local.locust_run import read_stats
    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    stack.attach(fake)
    env = K8sGpuEnv(
        profile=_profile(tmp_path, 15),
        backend="k8s",
        decision_interval_s=5,
        backend_options={
            "kubeconfig": str(fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)),
            "service_url": f"http://{stack.server.url}",
            "prometheus_url": stack.prom.url,
            "pod_poll_s": 0.5,
            "rollout_timeout_s": 30,
        },
    )
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == env.observation_space.shape
        backend = env.backend
        steps = []
        for replicas in (1, 2, 2):
            _, reward, _, trunc, info = env.step(env.action_for(replicas, 50))
            steps.append(info)
            assert math.isfinite(reward)
        assert trunc
        assert fake.deployment(NS, "triton")["spec"]["replicas"] == 2
        kpis = info["episode_kpis"]
        locust = backend.episode.locust
        locust.wait(30)
        stats = read_stats(locust.csv_prefix)
        assert stats.requests > 50
        # Locust's log holds every request its stats count; the episode holds those that
        # ended within its 15 s (Locust's shape ticks once a second, so it runs up to ~1 s
        # longer)
        log = locust.requests.read_all()
        assert abs(len(log) - stats.requests) <= 1
        ends = log[:, 0] - backend.episode.t0_unix
        assert kpis["requests"] == int((ends < 15.0).sum())
        assert stats.requests - kpis["requests"] <= 1.5 * stats.rps + 2
        assert kpis["success_rate"] == 1.0
        assert kpis["mean_latency_ms"] == pytest.approx(stats.average_ms, rel=0.05, abs=2)
        # vGPU-seconds: 1 pod at 50 % for 5 s, then 2 pods
        vgpu = [s["autoscale/vgpu_seconds"] for s in steps]
        assert vgpu[0] == pytest.approx(2.5, rel=0.25)
        assert vgpu[2] == pytest.approx(5.0, rel=0.25)
        assert steps[2]["autoscale/replicas_ready"] == 2
        assert steps[-1]["autoscale/gpu_work_seconds"] > 0
        assert any("scale to 2 replicas" in e for s in steps for e in s["events"])
    finally:
        env.close()
    assert fake.deployment(NS, "triton")["spec"]["replicas"] == 1
    assert _container(fake)["resources"]["limits"] == LIMITS


def test_example_backend_config_is_valid_and_states_the_defaults() -> None:
    """scripts/k8s-backend.yaml (what the README tells users to edit) parses into
    K8sOptions and spells out exactly the defaults."""
    from dataclasses import asdict

    from k8s_gpu_rl.config import from_dict, read_yaml

    data = read_yaml(ROOT / "scripts" / "k8s-backend.yaml")
    assert set(data) == set(asdict(K8sOptions()))
    assert from_dict(K8sOptions, data, "scripts/k8s-backend.yaml") == K8sOptions()
