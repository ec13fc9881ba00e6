"""What Prometheus holds for the simulated cluster, and PromQL's functions over it.

Every scrape appends one row: per pod (one series column per pod, as each pod is its own
``pod`` label value) Triton's counters and gauges, cAdvisor's CPU counter and HAMi's
per-container figures; per GPU DCGM's and HAMi's gauges; kube-state-metrics' Deployment
counts. A scrape that a fault makes Prometheus miss leaves no row, as on a real server.

:func:`extrapolated_rate` is Prometheus' ``rate()`` (``promql/functions.go``
extrapolatedRate), vectorised over series; the observation therefore lags and smooths
the cluster exactly as ``sum(rate(x[1m]))`` does on the live backend.
"""

from __future__ import annotations

import numpy as np

from k8s_gpu_rl.envs.sim import kernel

ROWS = 16  # scrapes kept: enough for a 5-minute window at 30 s
SERIES = 256  # pod series columns (a pod's column is its uid modulo this)
LOOKBACK_S = 300.0  # instant-vector lookback delta

# per-pod counters, in the order of k8s_gpu_rl.envs.sim.state.C_* (the same columns)
POD_COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "container_cpu_usage_seconds_total",
    "hami_container_gpu_busy_seconds",  # internal: integrates HAMi's container utilisation
)
POD_GAUGES = (
    "nv_inference_pending_request_count",
    "hami_vgpu_memory_used_bytes",
    "hami_vgpu_memory_limit_bytes",
    "kube_pod_container_resource_requests_cpu_cores",
    "kube_pod_container_resource_limits_nvidia_com_gpucores",
)
GPU_GAUGES = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "hami_gpu_core_allocated_ratio",
    "hami_gpu_memory_allocated_bytes",
    "hami_gpu_shared_count",
)
DEPLOYMENT_GAUGES = (
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable",
    "kube_deployment_status_replicas",
)


class PromSim:
    """A ring of the last :data:`ROWS` scrapes of the simulated cluster's series."""

    def __init__(self, n_gpus: int) -> None:
        self.t = np.full(ROWS, -np.inf)
        self.count = 0  # rows ever written
        self.pod_counters = np.full((ROWS, SERIES, len(POD_COUNTERS)), np.nan)
        self.pod_gauges = np.full((ROWS, SERIES, len(POD_GAUGES)), np.nan)
        self.gpu_gauges = np.full((ROWS, n_gpus, len(GPU_GAUGES)), np.nan)
        self.deployment = np.full((ROWS, len(DEPLOYMENT_GAUGES)), np.nan)
        self.cache: dict[str, tuple] = {}  # derived values keyed by what they were computed from
        self._t_ptr = kernel._address(self.t)  # fixed buffers: their addresses never change
        self._counters_ptr = kernel._address(self.pod_counters)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._t_ptr = kernel._address(self.t)  # the unpickled arrays live elsewhere
        self._counters_ptr = kernel._address(self.pod_counters)

    def new_row(self, t: float) -> int:
        """Start the row of a scrape at ``t``; return its index."""
        row = self.count % ROWS
        self.count += 1
        self.t[row] = t
        self.pod_counters[row] = np.nan
        self.pod_gauges[row] = np.nan
        self.gpu_gauges[row] = np.nan
        self.deployment[row] = np.nan
        return row

    def rows_in(self, now: float, window_s: float) -> np.ndarray:
        """Row indices of scrapes in ``(now - window_s, now]``, oldest first."""
        newest = self.count - 1
        rows = [
            i % ROWS
            for i in range(newest, max(-1, newest - ROWS), -1)
            if now - window_s < self.t[i % ROWS] <= now
        ]
        return np.array(rows[::-1], dtype=np.int64)

    def latest_row(self, now: float) -> int | None:
        """The newest scrape within the lookback delta, or None."""
        for i in range(self.count - 1, max(-1, self.count - 1 - ROWS), -1):
            t = self.t[i % ROWS]
            if now - LOOKBACK_S < t <= now:
                return i % ROWS
        return None

    # --- PromQL functions -------------------------------------------------
    def sum_rates(self, now: float, window_s: float, rows: np.ndarray | None = None) -> np.ndarray:
        """``sum(rate(<c>[window]))`` for every pod counter ``c`` at once (NaN: no data);
        ``rows`` are ``rows_in(now, window_s)`` when the caller has them already."""
        out = np.full(len(POD_COUNTERS), np.nan)
        rows = self.rows_in(now, window_s) if rows is None else rows
        if rows.size < 2:
            return out
        return kernel.sum_rates_at(
            self._t_ptr, self._counters_ptr, self.pod_counters.shape, rows, now - window_s, now
        )

    def sum_rate(self, counter: int, now: float, window_s: float) -> float:
        """``sum(rate(<pod counter>[window]))``; NaN when no series has two samples."""
        return float(self.sum_rates(now, window_s)[counter])

    def sum_pod_gauge(self, gauge: int, now: float) -> float:
        """``sum(<pod gauge>)`` at ``now``: series present in the newest scrape."""
        row = self.latest_row(now)
        if row is None:
            return float("nan")
        return float(np.nansum(self.pod_gauges[row, :, gauge]))

    def gpu_gauge(self, gauge: int, now: float, how: str = "avg") -> float:
        """``avg(<gpu gauge>)`` or ``sum(...)`` over GPUs at ``now``."""
        row = self.latest_row(now)
        if row is None:
            return float("nan")
        values = self.gpu_gauges[row, :, gauge]
        if not np.isfinite(values).any():
            return float("nan")
        return float(np.nanmean(values) if how == "avg" else np.nansum(values))

    def avg_over_time_gpu(self, gauge: int, now: float, window_s: float) -> float:
        """``avg(avg_over_time(<gpu gauge>[window]))``."""
        rows = self.rows_in(now, window_s)
        if rows.size == 0:
            return float("nan")
        values = self.gpu_gauges[rows, :, gauge]
        present = np.isfinite(values).any(axis=0)  # a GPU gone for the whole window has no series
        if not present.any():
            return float("nan")
        return float(np.nanmean(values[:, present], axis=0).mean())

    def deployment_gauge(self, gauge: int, now: float) -> float:
        """A kube-state-metrics Deployment gauge at ``now``."""
        row = self.latest_row(now)
        return float("nan") if row is None else float(self.deployment[row, gauge])


def extrapolated_rate(
    times: np.ndarray, values: np.ndarray, range_start: float, range_end: float
) -> np.ndarray:
    """Prometheus ``rate()`` per column of ``values`` (rows: samples at ``times``; NaN: absent).

    Counter resets add the value before the reset; the result is extrapolated towards the
    range's edges as Prometheus does (at most half an average sample interval beyond the
    first/last sample, and never below a zero counter value). Implemented in kernel.c.
    """
    return kernel.rates(times, values, range_start, range_end)
