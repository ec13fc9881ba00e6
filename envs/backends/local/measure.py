"""Measurements of this machine that configure the simulator to predict the local testbed.

``scripts/sim_vs_real.py`` takes them, writes a cluster config (the shipped
``envs/sim/clusters/local.yaml`` with the measured constants), and then compares the
simulator with real runs. Each measurement uses the real parts: ONNX Runtime for the
batch times, the real server for its start-up time, and a short run of the whole local
testbed (Locust -> HAProxy -> server, observed through Prometheus) for the per-request
overheads.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.loadprofiles import LoadProfile, Stage, WaitTime


@dataclass(frozen=True)
class Measured:
    """What the calibration found (milliseconds unless named otherwise)."""

    batch_ms: dict[int, float]
    """ONNX Runtime time of one batch by batch size (median, the servers' thread count)."""
    batch_base_ms: float
    batch_per_item_ms: float
    startup_s: float
    """Median time from process start to Ready."""
    transport: dict[str, float]
    """The client-side latency beyond the server's time (:func:`fit_transport`)."""
    cpu_ms_per_request: float
    """Server CPU per request beyond inference (HTTP and tensor parsing)."""
    model_memory_mib: float
    """Resident memory of one server."""


def fit_linear(sizes: list[int], times_ms: list[float]) -> tuple[float, float]:
    """Least-squares ``time = base + per_item * n`` (base at least 0.01 ms: the config needs > 0)."""
    slope, intercept = np.polyfit(np.asarray(sizes, float), np.asarray(times_ms, float), 1)
    return max(0.01, float(intercept)), float(slope)


def batch_times(
    onnx: Path, threads: int = 1, sizes=(1, 2, 4, 8), reps: int = 30
) -> dict[int, float]:
    """Median ONNX Runtime latency per batch size, one session as the server builds it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        x = rng.standard_normal((n, 3, 224, 224), dtype=np.float32)
        for _ in range(3):
            sess.run(None, {name: x})
        samples = []
        for _ in range(reps):
            t = time.perf_counter()
            sess.run(None, {name: x})
            samples.append((time.perf_counter() - t) * 1000)
        out[int(n)] = float(np.median(samples))
    return out


def startup_times(repo: Path, model: str, runs: int = 3, threads: int = 1) -> list[float]:
    """Seconds from launching a server to ``/v2/health/ready`` answering 200."""
    import sys

    from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup, free_port, wait_http
    from k8s_gpu_rl.procenv import python_child_env

    out = []
    with ProcessGroup() as group:
        for i in range(runs):
            port, mport = free_port(), free_port()
            t = time.monotonic()
            proc = group.start(
                f"startup-{i}",
                [
                    sys.executable, "-m", "k8s_gpu_rl.envs.backends.local.server",
                    "--model-repository", str(repo), "--model", model,
                    "--http-port", str(port), "--metrics-port", str(mport),
                    "--threads", str(threads),
                ],
                env=python_child_env(threads=threads),
            )  # fmt: skip
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout_s=120)
            out.append(time.monotonic() - t)
            group.stop(proc)
    return out


def probe_profile(users: int = 4, duration_s: float = 60.0) -> LoadProfile:
    """A short steady load for the per-request measurements."""
    return LoadProfile(
        name="probe",
        description="steady light load for calibration",
        wait_time=WaitTime(0.2, 0.4),
        stages=(Stage(duration_s, users, float(users)),),
    )


def probe(cluster: ClusterConfig, duration_s: float = 60.0) -> dict[str, float]:
    """Run the local testbed at 1 x 100 % under light load; per-request overheads."""
    from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv

    env = K8sGpuEnv(
        profile=probe_profile(duration_s=duration_s),
        backend="local",
        cluster=cluster,
        initial_share="deployment",
    )
    try:
        env.reset(seed=0)
        server_ms: list[float] = []
        cpu = busy = 0.0
        requests = 0
        info: dict[str, Any] = {}
        done = False
        while not done:
            _, _, term, trunc, info = env.step(env.action_for(1, 100))
            done = term or trunc
            raw = env.backend.observe(env.config.rate_window_s)
            if math.isfinite(raw.get("server_latency", math.nan)):
                server_ms.append(raw["server_latency"])
        k = info["episode_kpis"]
        s = env._episode.sums  # noqa: SLF001 - the episode's integrals
        cpu, busy = s.get("cpu_s", 0.0), s.get("gpu_work_s", 0.0)
        requests = int(k["requests"])
        lat_ms = np.concatenate(env._episode.latencies) * 1000.0  # noqa: SLF001
        ok = np.concatenate(env._episode.ok)  # noqa: SLF001
        lat = [float(x) for x in np.percentile(lat_ms[ok], (50, 75, 99))]
        memory = [
            p.counters.get("memory_bytes", math.nan) for p in env.backend.live.deployment.pods
        ]
    finally:
        env.close()
    server = float(np.median(server_ms)) if server_ms else math.nan
    return {
        "client_p50_ms": lat[0],
        "client_p75_ms": lat[1],
        "client_p99_ms": lat[2],
        "server_ms": server,
        "cpu_ms_per_request": 1000.0 * max(0.0, cpu - busy) / max(1, requests),
        "memory_mib": float(np.nanmax(memory)) / 2**20 if memory else math.nan,
    }


TAIL_PROBABILITY = 0.05
"""Share of requests the fitted client tail applies to (the rest is the log-normal body)."""


def fit_transport(p50: float, p75: float, p99: float, server_ms: float) -> dict[str, float]:
    """The simulator's client-side latency from a light-load probe's percentiles.

    Light load means no queueing: a request's latency is the server's time plus the
    transport (Locust, HAProxy, loopback, and whatever else the machine is doing).
    ``server_ms`` is the server's time as the simulator models it (front-end CPU, the
    batcher's queue delay, a batch of one), so the transport takes whatever else the
    measured latency holds. The
    transport's body is log-normal, its median ``p50 - server`` and its shape from the
    p75; its rare slow path (``TAIL_PROBABILITY`` of requests, an exponential delay) is
    sized so that 1 % of requests exceed the p99: ``q * exp(-(p99 - p50) / mean) = 0.01``.
    """
    median = max(0.1, p50 - server_ms)
    sigma = math.log(max(p75 - server_ms, median * 1.0001) / median) / 0.6745
    tail_mean = max(0.1, (p99 - p50) / math.log(TAIL_PROBABILITY / 0.01))
    return {
        "transport_median_ms": median,
        "transport_sigma": min(1.0, max(0.01, sigma)),
        "tail_probability": TAIL_PROBABILITY,
        "tail_mean_ms": tail_mean,
    }


def calibrated(base: ClusterConfig, m: Measured) -> ClusterConfig:
    """``base`` with the measured constants."""
    serving = dataclasses.replace(
        base.serving,
        batch_base_ms=round(m.batch_base_ms, 3),
        batch_per_item_ms=round(m.batch_per_item_ms, 3),
        cpu_ms_per_request=round(m.cpu_ms_per_request, 3),
        model_memory_mib=int(math.ceil(m.model_memory_mib)),
    )
    client = dataclasses.replace(
        base.client,
        transport_median_ms=round(m.transport["transport_median_ms"], 3),
        transport_sigma=round(m.transport["transport_sigma"], 4),
        tail_probability=m.transport["tail_probability"],
        tail_mean_ms=round(m.transport["tail_mean_ms"], 3),
    )
    startup = dataclasses.replace(base.startup, median_s=round(m.startup_s, 2))
    return dataclasses.replace(base, serving=serving, client=client, startup=startup)
