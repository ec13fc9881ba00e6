"""How long the k8s backend's per-step control work takes, next to the 100 ms target.

Starts, on loopback ports chosen at run time:

* a real Prometheus scraping a real inference server (``k8s_gpu_rl.envs.backends.local.server``,
  Triton's metric names, labelled like a PodMonitor's target) and a ``ClusterExporter``
  publishing kube-state-metrics, cAdvisor, DCGM and HAMi series for the Deployment;
* ``FakeKubeApi`` from :mod:`k8s_gpu_rl.testing.fake_kube_api`: an HTTP-level fake
  of the Kubernetes API with a small deployment controller. It is the only API server
  available on this machine; the official ``kubernetes`` client talks to it over HTTP as
  it would to a real one, but a real kube-apiserver (TLS, authn/authz, etcd) is slower.

then times ``--steps`` control steps of :class:`~k8s_gpu_rl.envs.backends.k8s.backend.K8sBackend`:
``observe()`` (every feature's PromQL), ``deployment()`` (Deployment, pods, ReplicaSets),
one ``apply()`` with a change (scale), one without (no request), and ``pod_metrics()``
(per-pod PromQL). Prints mean / p50 / p95 milliseconds per step, split into Prometheus
queries and Kubernetes API calls. Usage::

    python scripts/benchmark_control_overhead.py --steps 50
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from k8s_gpu_rl.envs.backends.k8s.backend import K8sBackend  # noqa: E402
from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions  # noqa: E402
from k8s_gpu_rl.envs.backends.local.exporter import ClusterExporter, ClusterSample, PodSample  # noqa: E402
from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port, wait_line  # noqa: E402
from k8s_gpu_rl.envs.backends.local.promserver import PrometheusServer  # noqa: E402
from k8s_gpu_rl.envs.sim.config import load_cluster_config  # noqa: E402
from k8s_gpu_rl.loadprofiles import load_profile  # noqa: E402
from k8s_gpu_rl.procenv import python_child_env  # noqa: E402
from k8s_gpu_rl.testing.fake_kube_api import FakeKubeApi, parse_quantity  # noqa: E402

NS = "k8s-gpu-rl"
LABELS = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/managed-by": "k8s-gpu-rl"}
TARGET_MS = 100.0


def _sample(fake: Any, server_pid: int, metrics_port: int, http: requests.Session) -> Any:

    def sample() -> ClusterSample:
        dep = fake.deployment(NS, "triton")
        pods = sorted(
            fake.pods(NS, "app.kubernetes.io/name=triton"), key=lambda p: p["metadata"]["name"]
        )
        ready = {
            p["metadata"]["name"] for p in fake.ready_pods(NS, "app.kubernetes.io/name=triton")
        }
        out = []
        for i, p in enumerate(pods):
            limits = p["spec"]["containers"][0]["resources"].get("limits", {})
            cpu = busy = mem = math.nan
            if i == 0:
                proc = psutil.Process(server_pid)
                t = proc.cpu_times()
                cpu, mem = t.user + t.system, float(proc.memory_info().rss)
                text = http.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
                busy = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("k8sgpurl_compute_busy_seconds_total")
                )
            name = p["metadata"]["name"]
            out.append(
                PodSample(
                    name,
                    "Ready" if name in ready else "Starting",
                    int(parse_quantity(limits.get("nvidia.com/gpucores", 0))),
                    int(parse_quantity(limits.get("nvidia.com/gpumem", 0))),
                    1.0,
                    cpu,
                    busy,
                    mem,
                )
            )
        spec = dep["spec"]["replicas"]
        return ClusterSample(
            NS, "triton", spec, len(ready), max(0, spec - len(ready)), tuple(out), 10240.0
        )

    return sample


def _stats(values: list[float]) -> str:
    a = np.asarray(values) * 1000.0
    return f"mean {a.mean():7.1f}  p50 {np.percentile(a, 50):7.1f}  p95 {np.percentile(a, 95):7.1f}"


def _prom_queries(http: requests.Session, url: str) -> float:
    """Instant and range queries Prometheus has answered (its own request counter)."""
    text = http.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{")
        and ('handler="/api/v1/query"' in line or 'handler="/api/v1/query_range"' in line)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="control steps to time (50)")
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="Prometheus (s)")
    args = parser.parse_args(argv)

    from k8s_gpu_rl.envs.backends.local.model import ensure_onnx, write_model_repository

    group = ProcessGroup(prefix="k8sgpurl-bench-")
    fake = FakeKubeApi(pod_ready_delay_s=0.2).start()
    exporter = None
    http = requests.Session()
    try:
        repo = Path(group.rundir) / "models"
        write_model_repository(repo, ensure_onnx(), max_batch_size=8, instance_kind="KIND_CPU")
        server = group.start(
            "server",
            [sys.executable, "-m", "k8s_gpu_rl.envs.backends.local.server", "--model-repository", str(repo),
             "--http-port", "0", "--metrics-port", "0"],
            env=python_child_env(threads=1),
        )  # fmt: skip
        m = wait_line(server, r"READY http=(\d+) metrics=(\d+)", 120)
        metrics_port = int(m.group(2))
        fake.add_deployment(
            NS,
            "triton",
            replicas=1,
            labels=dict(LABELS),
            limits={
                "nvidia.com/gpu": "1",
                "nvidia.com/gpucores": "50",
                "nvidia.com/gpumem": "5120",
            },
            requests={"cpu": "1"},
        )
        pod = fake.ready_pods(NS)[0]["metadata"]["name"]
        exporter_port = free_port("127.0.0.1")
        exporter = ClusterExporter(
            _sample(fake, server.pid, metrics_port, http), "127.0.0.1", exporter_port
        )
        prom = PrometheusServer(group, free_port("127.0.0.1"), args.scrape_interval)
        prom.set_targets("kube-state-metrics", [(f"127.0.0.1:{exporter_port}", {})])
        prom.set_targets(
            "triton",
            [(f"127.0.0.1:{metrics_port}", {"namespace": NS, "pod": pod, "container": "triton"})],
        )
        prom.wait_ready()
        prom.wait_for_samples("kube_deployment_spec_replicas", 30)
        prom.wait_for_samples("nv_inference_request_success", 30)

        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = fake.write_kubeconfig(Path(tmp) / "kubeconfig", namespace=NS)
            profile = Path(tmp) / "p.yaml"
            profile.write_text(
                "name: b\nwait_time: {min: 1, max: 1}\nstages:\n  - {duration: 60, users: 1, spawn_rate: 1}\n"
            )
            backend = K8sBackend(
                load_cluster_config("rtx3080"),
                load_profile(profile),
                K8sOptions(kubeconfig=str(kubeconfig), prometheus_url=prom.url),
            )
            try:
                totals, proms, apis = [], [], []
                for step in range(args.steps + 3):
                    if step == 3:  # count what the timed steps send, as the servers saw it
                        queries0, fake_requests0 = _prom_queries(http, prom.url), len(fake.requests)
                    before = dict(backend.timing)
                    t = time.perf_counter()
                    backend.observe(60.0)
                    state = backend.deployment()
                    replicas = 2 if state.spec_replicas == 1 else 1
                    backend.apply(replicas, 50, 5120)  # a change: one scale request
                    backend.apply(replicas, 50, 5120)  # no change: no request
                    backend.pod_metrics()
                    total = time.perf_counter() - t
                    if step >= 3:  # warm-up: connections, caches
                        totals.append(total)
                        proms.append(backend.timing["prometheus_s"] - before["prometheus_s"])
                        apis.append(backend.timing["api_s"] - before["api_s"])
                n_queries = (_prom_queries(http, prom.url) - queries0) / args.steps
                n_api = (len(fake.requests) - fake_requests0) / args.steps
            finally:
                backend.close()
        print(
            "k8s backend control overhead per step "
            f"({args.steps} steps; per step {n_queries:g} PromQL queries and {n_api:g} Kubernetes "
            "API requests, as Prometheus and the API server counted them)"
        )
        print(
            "Kubernetes API: FakeKubeApi (k8s_gpu_rl.testing.fake_kube_api) on loopback (the only API "
            "server available here; a real kube-apiserver adds TLS, auth and etcd latency)."
        )
        print(f"Prometheus: real prometheus {prom.url}, scraping a real server and exporter.")
        print(f"  total       ms: {_stats(totals)}   (target {TARGET_MS:.0f} ms)")
        print(f"  prometheus  ms: {_stats(proms)}")
        print(f"  kube API    ms: {_stats(apis)}")
        other = [a - b - c for a, b, c in zip(totals, proms, apis, strict=True)]
        print(f"  other       ms: {_stats(other)}")
        p95 = float(np.percentile(np.asarray(totals) * 1000, 95))
        print(f"p95 {p95:.1f} ms {'within' if p95 <= TARGET_MS else 'ABOVE'} the target")
        return 0
    finally:
        http.close()
        if exporter is not None:
            exporter.close()
        fake.stop()
        group.close()


if __name__ == "__main__":
    sys.exit(main())
