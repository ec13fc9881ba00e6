"""The observation: every feature, its PromQL, and its meaning, for every backend alike.

Each :class:`Feature` names the PromQL the live backends send to Prometheus and the
normalisation that turns the result into the agent's input. The simulated backend
evaluates the same functions over its simulated scrapes (``k8s_gpu_rl.envs.sim.prometheus``), so a
feature means the same thing, and lags the cluster by the same scrape interval and rate
window, on every backend. ``{model}``, ``{namespace}``, ``{deployment}`` and ``{window}``
are filled from the environment's configuration.

| Num | Feature | PromQL (abridged) | Normalised by |
|-----|---------|-------------------|---------------|
| 0 | request_rate | ``sum(rate(nv_inference_request_success[1m]))`` | ``rps_scale`` |
| 1 | request_rate_5m | the same over 5m (trend) | ``rps_scale`` |
| 2 | failure_rate | ``sum(rate(nv_inference_request_failure[1m]))`` | ``rps_scale`` |
| 3 | server_latency | request duration / successes (ms) | SLO (ms) |
| 4 | queue_latency | queue duration / successes (ms) | SLO (ms) |
| 5 | batch_size | ``nv_inference_count`` / ``nv_inference_exec_count`` rates | max batch |
| 6 | pending_requests | ``sum(nv_inference_pending_request_count)`` | 100 |
| 7 | gpu_util | ``avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL[1m]))`` | 100 % |
| 8 | gpu_memory | ``sum(DCGM_FI_DEV_FB_USED) / sum(USED + FREE)`` | 1 |
| 9 | cpu_util | cAdvisor CPU rate / CPU requests | 1 |
| 10 | replicas_available | ``kube_deployment_status_replicas_available`` | max replicas |
| 11 | replicas_desired | ``kube_deployment_spec_replicas`` | max replicas |
| 12 | replicas_unavailable | ``kube_deployment_status_replicas_unavailable`` | max replicas |
| 13 | gpu_cores_allocated | ``avg(hami_gpu_core_allocated_ratio)`` | 1 |
| 14 | metrics_age | seconds since the newest scrape | scrape interval |
| 15 | gpucores_serving | mean gpucores of the Ready pods (Kubernetes API) | 100 |
| 16 | gpucores_target | the Deployment template's gpucores (Kubernetes API) | 100 |
| 17 | pods_pending | pods HAMi cannot place (Kubernetes API) | max replicas |

Features 15-17 come from the Kubernetes API (the Deployment and its pods), which the
controller reads directly; a rollout in progress shows as serving != target, and a
rollout stuck because the new share does not fit beside the old pods as pods_pending.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from k8s_gpu_rl.envs.sim.prometheus import (
    DEPLOYMENT_GAUGES,
    GPU_GAUGES,
    POD_COUNTERS,
    POD_GAUGES,
    PromSim,
)

M = '{{model="{model}"}}'
POD = '{{namespace="{namespace}", pod=~"{deployment}-.*", container="triton"}}'


@dataclass(frozen=True)
class Feature:
    """One observation feature."""

    name: str
    promql: str
    """The query a live backend sends (format fields: model, namespace, deployment, window)."""
    scale: str
    """Which normaliser divides it (a key of :func:`normalisers`)."""
    high: float
    """Upper bound of the normalised value (the Box's high); values are clipped to it."""


FEATURES: tuple[Feature, ...] = (
    Feature("request_rate", f"sum(rate(nv_inference_request_success{M}[{{window}}]))", "rps", 5.0),
    Feature("request_rate_5m", f"sum(rate(nv_inference_request_success{M}[5m]))", "rps", 5.0),
    Feature("failure_rate", f"sum(rate(nv_inference_request_failure{M}[{{window}}]))", "rps", 5.0),
    Feature(
        "server_latency",
        f"sum(rate(nv_inference_request_duration_us{M}[{{window}}])) / "
        f"sum(rate(nv_inference_request_success{M}[{{window}}])) / 1000",
        "slo",
        10.0,
    ),
    Feature(
        "queue_latency",
        f"sum(rate(nv_inference_queue_duration_us{M}[{{window}}])) / "
        f"sum(rate(nv_inference_request_success{M}[{{window}}])) / 1000",
        "slo",
        10.0,
    ),
    Feature(
        "batch_size",
        f"sum(rate(nv_inference_count{M}[{{window}}])) / sum(rate(nv_inference_exec_count{M}[{{window}}]))",
        "batch",
        1.0,
    ),
    Feature("pending_requests", f"sum(nv_inference_pending_request_count{M})", "hundred", 5.0),
    Feature("gpu_util", "avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}]))", "hundred", 1.0),
    Feature(
        "gpu_memory",
        "sum(DCGM_FI_DEV_FB_USED) / (sum(DCGM_FI_DEV_FB_USED) + sum(DCGM_FI_DEV_FB_FREE))",
        "one",
        1.0,
    ),
    Feature(
        "cpu_util",
        f"sum(rate(container_cpu_usage_seconds_total{POD}[{{window}}])) / "
        f'sum(kube_pod_container_resource_requests{{{{namespace="{{namespace}}", pod=~"{{deployment}}-.*", resource="cpu"}}}})',
        "one",
        4.0,
    ),
    Feature(
        "replicas_available",
        'kube_deployment_status_replicas_available{{deployment="{deployment}"}}',
        "replicas",
        2.0,
    ),
    Feature(
        "replicas_desired",
        'kube_deployment_spec_replicas{{deployment="{deployment}"}}',
        "replicas",
        2.0,
    ),
    Feature(
        "replicas_unavailable",
        'kube_deployment_status_replicas_unavailable{{deployment="{deployment}"}}',
        "replicas",
        2.0,
    ),
    Feature("gpu_cores_allocated", "avg(hami_gpu_core_allocated_ratio)", "one", 2.0),
    Feature(
        "metrics_age", "time() - max(timestamp(kube_deployment_spec_replicas))", "scrape", 10.0
    ),
    Feature("gpucores_serving", "", "hundred", 1.0),
    Feature("gpucores_target", "", "hundred", 1.0),
    Feature("pods_pending", "", "replicas", 2.0),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
HIGH = np.array([f.high for f in FEATURES], dtype=np.float32)


def normalisers(
    rps_scale: float, slo_ms: float, max_batch: int, max_replicas: int, scrape_s: float
) -> dict[str, float]:
    """Divisors by feature ``scale`` key."""
    return {
        "rps": rps_scale,
        "slo": slo_ms,
        "batch": float(max_batch),
        "hundred": 100.0,
        "one": 1.0,
        "replicas": float(max_replicas),
        "scrape": scrape_s,
    }


def to_vector(raw: dict[str, float], norm: dict[str, float]) -> np.ndarray:
    """Normalise raw feature values into the observation; NaN (no data yet) becomes 0."""
    out = np.zeros(len(FEATURES), dtype=np.float32)
    for i, f in enumerate(FEATURES):
        value = raw.get(f.name, math.nan)
        out[i] = 0.0 if not math.isfinite(value) else value / norm[f.scale]
    return np.clip(out, 0.0, HIGH)


_C = {name: i for i, name in enumerate(POD_COUNTERS)}
_PG = {name: i for i, name in enumerate(POD_GAUGES)}
_GG = {name: i for i, name in enumerate(GPU_GAUGES)}
_DG = {name: i for i, name in enumerate(DEPLOYMENT_GAUGES)}


def evaluate_sim(prom: PromSim, now: float, window_s: float) -> dict[str, float]:
    """Each feature's raw value from simulated Prometheus, as its PromQL would return it."""
    row = prom.latest_row(now)
    if row is None:
        return {}
    rows = prom.rows_in(now, window_s)
    key = (prom.count, row, rows.tobytes())
    if prom.cache.get("gauges", (None,))[0] != key:  # gauges change only with the scrapes
        prom.cache["gauges"] = (key, _gauge_features(prom, now, window_s))
    raw = dict(prom.cache["gauges"][1])
    r1 = prom.sum_rates(now, window_s, rows)
    ok = r1[_C["nv_inference_request_success"]]
    raw.update(
        {
            "request_rate": ok,
            "request_rate_5m": prom.sum_rates(now, 300.0)[_C["nv_inference_request_success"]],
            "failure_rate": r1[_C["nv_inference_request_failure"]],
            "server_latency": _ratio(r1[_C["nv_inference_request_duration_us"]], ok) / 1000.0,
            "queue_latency": _ratio(r1[_C["nv_inference_queue_duration_us"]], ok) / 1000.0,
            "batch_size": _ratio(r1[_C["nv_inference_count"]], r1[_C["nv_inference_exec_count"]]),
            "cpu_util": _ratio(
                r1[_C["container_cpu_usage_seconds_total"]], raw.pop("cpu_requests")
            ),
            "metrics_age": now - float(prom.t[row]),
        }
    )
    return raw


def prom_duration(seconds: float) -> str:
    """A PromQL range duration for ``seconds`` (whole seconds, e.g. ``60s``)."""
    return f"{max(1, round(seconds))}s"


def queries(model: str, namespace: str, deployment: str, window_s: float) -> dict[str, str]:
    """Each Prometheus-backed feature's PromQL, filled in for one Deployment."""
    fields = {
        "model": model,
        "namespace": namespace,
        "deployment": deployment,
        "window": prom_duration(window_s),
    }
    return {f.name: f.promql.format(**fields) for f in FEATURES if f.promql}


_CONTAINER = '{{namespace="{namespace}", pod=~"{deployment}-.*", container="{container}"}}'
INTERVAL_PROMQL = {
    "gpu_work_s": "sum(avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}])) / 100 * {interval}",
    "cpu_s": f"sum(rate(container_cpu_usage_seconds_total{_CONTAINER}[{{window}}])) * {{interval}}",
}
"""The k8s backend's per-interval KPIs from Prometheus, evaluated at the interval's end:
GPU-seconds of work (DCGM utilisation x time) and the pods' CPU-seconds (cAdvisor). The
mean over ``window`` (at least two scrapes long, so a short interval still has samples)
times the interval's length."""
POD_PROMQL = {
    "cpu_cores": f"sum by (pod) (rate(container_cpu_usage_seconds_total{_CONTAINER}[1m]))",
    "rps": 'sum by (pod) (rate(nv_inference_request_success{{model="{model}", '
    'namespace="{namespace}", pod=~"{deployment}-.*"}}[1m]))',
    "inflight": 'sum by (pod) (rate(nv_inference_request_duration_us{{model="{model}", '
    'namespace="{namespace}", pod=~"{deployment}-.*"}}[1m])) / 1e6',
}
"""Per-pod figures (``PodMetrics``) a live backend reads: metrics-server's CPU usage, and
Triton's successes and mean requests in the server (request time per second, Little's law)."""


def interval_queries(
    namespace: str, deployment: str, container: str, interval_s: float, window_s: float
) -> dict[str, str]:
    """:data:`INTERVAL_PROMQL` filled in for one Deployment and interval."""
    fields = {
        "namespace": namespace,
        "deployment": deployment,
        "container": container,
        "window": prom_duration(window_s),
        "interval": f"{interval_s:g}",
    }
    return {name: text.format(**fields) for name, text in INTERVAL_PROMQL.items()}


def pod_queries(model: str, namespace: str, deployment: str, container: str) -> dict[str, str]:
    """:data:`POD_PROMQL` filled in for one Deployment (each result: one series per pod)."""
    fields = {
        "model": model,
        "namespace": namespace,
        "deployment": deployment,
        "container": container,
    }
    return {name: text.format(**fields) for name, text in POD_PROMQL.items()}


def evaluate_live(query: Callable[[str], float], promql: dict[str, str]) -> dict[str, float]:
    """Each feature's raw value from a real Prometheus.

    ``query`` runs one instant query and returns its single value (NaN for an empty
    result); ``promql`` is :func:`queries`' output. The live backends (``local`` and
    ``k8s``) both observe through here, so the queries are the ones documented above.
    """
    return {name: query(text) for name, text in promql.items()}


def _gauge_features(prom: PromSim, now: float, window_s: float) -> dict[str, float]:
    """The features that read gauges: the newest scrape, and the window's DCGM samples."""
    used = prom.gpu_gauge(_GG["DCGM_FI_DEV_FB_USED"], now, "sum")
    free = prom.gpu_gauge(_GG["DCGM_FI_DEV_FB_FREE"], now, "sum")
    return {
        "pending_requests": prom.sum_pod_gauge(_PG["nv_inference_pending_request_count"], now),
        "gpu_util": prom.avg_over_time_gpu(_GG["DCGM_FI_DEV_GPU_UTIL"], now, window_s),
        "gpu_memory": _ratio(used, used + free),
        "cpu_requests": prom.sum_pod_gauge(
            _PG["kube_pod_container_resource_requests_cpu_cores"], now
        ),
        "replicas_available": prom.deployment_gauge(
            _DG["kube_deployment_status_replicas_available"], now
        ),
        "replicas_desired": prom.deployment_gauge(_DG["kube_deployment_spec_replicas"], now),
        "replicas_unavailable": prom.deployment_gauge(
            _DG["kube_deployment_status_replicas_unavailable"], now
        ),
        "gpu_cores_allocated": prom.gpu_gauge(_GG["hami_gpu_core_allocated_ratio"], now, "avg"),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


# --------------------------------------------------------------------------- opt-in extras

EXTRA_FEATURES: tuple[Feature, ...] = (
    Feature(
        "rate_trend",
        f"sum(rate(nv_inference_request_success{M}[{{window}}])) / "
        f"sum(rate(nv_inference_request_success{M}[5m]))",
        "one",
        5.0,
    ),
    Feature(
        "queue_share",
        f"sum(rate(nv_inference_queue_duration_us{M}[{{window}}])) / "
        f"sum(rate(nv_inference_request_duration_us{M}[{{window}}]))",
        "one",
        1.0,
    ),
    Feature(
        "starting_share",
        'kube_deployment_status_replicas_unavailable{{deployment="{deployment}"}} / '
        'kube_deployment_spec_replicas{{deployment="{deployment}"}}',
        "one",
        1.0,
    ),
    Feature("since_share_change", "", "ten_minutes", 1.0),
)
"""Features an operator looks at, added to the observation only when ``EnvConfig.extra_features``
names them (appended after :data:`FEATURES`, in this order):

| Feature | PromQL (abridged) | Meaning | Normalised by |
|---------|-------------------|---------|---------------|
| rate_trend | 1 m success rate / 5 m success rate | > 1 while the load rises, < 1 while it falls | 1 (cap 5) |
| queue_share | queue time / request time (1 m rates) | share of the server time spent queueing: 0 idle, near 1 saturated | 1 |
| starting_share | replicas unavailable / spec replicas | share of the wanted pods not serving yet (starting or pending) | 1 |
| since_share_change | (Kubernetes API) seconds since the template's gpucores last changed, or since the episode began | how long ago the last rollout was asked for | 600 s (cap 1) |

The first three are ratios of :data:`FEATURES` queries over the same window, so
:func:`extra_from_raw` computes them from the raw values every backend already returns
(the PromQL above, evaluated by Prometheus, gives the same number: ``a / b`` of two
instant sums). ``since_share_change`` is the controller's own record, like features 15-17.
"""
EXTRA_FEATURE_NAMES = tuple(f.name for f in EXTRA_FEATURES)
EXTRA_NORMALISERS = {"ten_minutes": 600.0}


def extra_from_raw(raw: dict[str, float]) -> dict[str, float]:
    """The Prometheus-backed extras from the raw values of :data:`FEATURES` (NaN: no data)."""
    return {
        "rate_trend": _ratio(
            raw.get("request_rate", math.nan), raw.get("request_rate_5m", math.nan)
        ),
        "queue_share": _ratio(
            raw.get("queue_latency", math.nan), raw.get("server_latency", math.nan)
        ),
        "starting_share": _ratio(
            raw.get("replicas_unavailable", math.nan), raw.get("replicas_desired", math.nan)
        ),
    }


def extra_queries(
    names: tuple[str, ...], model: str, namespace: str, deployment: str, window_s: float
) -> dict[str, str]:
    """The PromQL of the named Prometheus-backed extras, filled in (for live backends)."""
    fields = {
        "model": model,
        "namespace": namespace,
        "deployment": deployment,
        "window": prom_duration(window_s),
    }
    return {
        f.name: f.promql.format(**fields) for f in EXTRA_FEATURES if f.name in names and f.promql
    }


def extra_vector(
    raw: dict[str, float], names: tuple[str, ...], norm: dict[str, float]
) -> np.ndarray:
    """The named extras, normalised and clipped like :func:`to_vector` (NaN becomes 0)."""
    by_name = {f.name: f for f in EXTRA_FEATURES}
    scales = {**norm, **EXTRA_NORMALISERS}
    out = np.zeros(len(names), dtype=np.float32)
    high = np.array([by_name[n].high for n in names], dtype=np.float32)
    for i, name in enumerate(names):
        value = raw.get(name, math.nan)
        out[i] = 0.0 if not math.isfinite(value) else value / scales[by_name[name].scale]
    return np.clip(out, 0.0, high)
