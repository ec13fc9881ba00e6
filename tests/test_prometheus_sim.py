"""The simulated Prometheus (``k8s_gpu_rl.envs.sim.prometheus``) against hand-computed PromQL results.

``extrapolated_rate`` must give what Prometheus' ``rate()`` gives (``promql/functions.go``,
extrapolatedRate): the increase between the first and last sample in the range (counter
resets add the value before the reset), extrapolated to the range's edges when the
samples come within 110 % of the average gap of them, else by half a gap, and never to
before the counter's extrapolated zero point. Each expected value below is worked out by
hand in the comment next to it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from k8s_gpu_rl.envs.sim import state as st
from k8s_gpu_rl.envs.sim.prometheus import (
    DEPLOYMENT_GAUGES,
    GPU_GAUGES,
    LOOKBACK_S,
    POD_COUNTERS,
    POD_GAUGES,
    ROWS,
    PromSim,
    extrapolated_rate,
)


def rate(times: list[float], values: list[float], start: float = 0.0, end: float = 60.0) -> float:
    """``rate(x[end - start])`` evaluated at ``end`` for one series."""
    out = extrapolated_rate(np.array(times, float), np.array(values, float)[:, None], start, end)
    return float(out[0])


def test_two_scrapes_30s_apart_in_a_60s_window() -> None:
    # samples at 15 s and 45 s: 15 s to each edge < 1.1 x 30 s, so extrapolate to both edges:
    # increase 60 over 30 s sampled, x 60/30 -> 120 over the 60 s range = 2/s
    assert rate([15, 45], [100, 160]) == pytest.approx(2.0, rel=1e-12)


def test_scrapes_every_15s() -> None:
    # 10, 25, 40, 55 s: increase 90 over 45 s; to start 10 and to end 5 are < 1.1 x 15;
    # the zero point lies 45 x 10/90 = 5 s before the first sample, nearer than the start
    # -> to start 5: 90 x (45 + 5 + 5)/45 / 60 = 55/30
    assert rate([10, 25, 40, 55], [10, 40, 70, 100]) == pytest.approx(55 / 30, rel=1e-12)


def test_counter_reset_adds_the_value_before_the_reset() -> None:
    # 100, 130, then the process restarts: 10, 40. increase = 40 - 100 + 130 = 70 over 45 s;
    # to start 10 and to end 5 are < 16.5 -> interval 60; zero point 45 x 100/70 > 10
    # -> 70 x 60/45 / 60 = 70/45
    assert rate([10, 25, 40, 55], [100, 130, 10, 40]) == pytest.approx(70 / 45, rel=1e-12)


def test_series_starting_mid_window_is_clamped_at_its_zero_point() -> None:
    # a pod first scraped at 40 s: 40 s to the start >= 1.1 x 15 -> half a gap, 7.5 s;
    # zero point 15 x 3/30 = 1.5 s before the first sample < 7.5 -> 1.5 s; to end 5 s
    # -> 30 x (15 + 1.5 + 5)/15 / 60 = 43/60
    assert rate([40, 55], [3, 33]) == pytest.approx(43 / 60, rel=1e-12)


def test_zero_point_beyond_half_a_gap_does_not_stretch_extrapolation() -> None:
    # as above with values 12, 27: zero point 15 x 12/15 = 12 s before the first sample,
    # more than the half gap (7.5 s) and less than the threshold (16.5 s). Prometheus takes
    # the half gap first and limits it by the zero point: min(7.5, 12) = 7.5
    # -> 15 x (15 + 7.5 + 5)/15 / 60 = 27.5/60 (releases before PR #13725 gave 32/60)
    assert rate([40, 55], [12, 27]) == pytest.approx(27.5 / 60, rel=1e-12)


def test_counter_starting_at_zero_is_not_extrapolated_backwards() -> None:
    # 0 at 30 s, 60 at 60 s: the zero point is the first sample itself -> 60 x 30/30 / 60 = 1
    assert rate([30, 60], [0, 60]) == pytest.approx(1.0, rel=1e-12)


def test_series_ending_mid_window_extrapolates_half_a_gap() -> None:
    # a pod gone after 20 s: samples 5, 20 (gap 15); 40 s to the end >= 16.5 -> 7.5 s;
    # to start 5 s; zero point 15 x 50/30 = 25 > 5 -> 30 x (15 + 5 + 7.5)/15 / 60 = 55/60
    assert rate([5, 20], [50, 80]) == pytest.approx(55 / 60, rel=1e-12)


def test_flat_counter_has_zero_rate() -> None:
    assert rate([15, 45], [7, 7]) == 0.0


def test_fewer_than_two_samples_give_no_rate() -> None:
    assert math.isnan(rate([45], [100]))
    assert math.isnan(rate([15, 45], [np.nan, 100]))
    assert math.isnan(rate([15, 45], [np.nan, np.nan]))


def test_missing_samples_are_skipped() -> None:
    # a NaN row (the series absent from that scrape) is the same as no row at all
    with_gap = rate([10, 25, 40, 55], [10, np.nan, 70, 100])
    assert with_gap == pytest.approx(rate([10, 40, 55], [10, 70, 100]), rel=1e-12)
    # 10, 40, 55: increase 90 over 45 s, avg gap 22.5, to start 10 -> zero point 5,
    # to end 5 -> 90 x 55/45 / 60
    assert with_gap == pytest.approx(90 * 55 / 45 / 60, rel=1e-12)


def test_columns_are_independent_series() -> None:
    times = np.array([15.0, 45.0])
    values = np.array([[100.0, 0.0, np.nan], [160.0, 30.0, 5.0]])
    out = extrapolated_rate(times, values, 0.0, 60.0)
    # column 1: starts at 0 at 15 s -> no backwards extrapolation: 30 x (30 + 0 + 15)/30 / 60
    assert out[:2] == pytest.approx([2.0, 30 * 45 / 30 / 60], rel=1e-12)
    assert math.isnan(out[2])


# --- PromSim ----------------------------------------------------------------
SUCCESS = st.C_SUCCESS


def prom_with(rows: list[tuple[float, dict[int, float]]]) -> PromSim:
    """A PromSim whose scrapes at the given times hold success counters per series column."""
    prom = PromSim(n_gpus=1)
    for t, series in rows:
        row = prom.new_row(t)
        for col, value in series.items():
            prom.pod_counters[row, col, SUCCESS] = value
    return prom


def test_column_names_match_the_kernel_counters() -> None:
    assert len(POD_COUNTERS) == st.N_COUNTERS
    assert POD_COUNTERS[st.C_SUCCESS] == "nv_inference_request_success"
    assert POD_COUNTERS[st.C_QUEUE_US] == "nv_inference_queue_duration_us"
    assert POD_COUNTERS[st.C_CPU_S] == "container_cpu_usage_seconds_total"


def test_sum_rates_adds_the_series_of_every_pod() -> None:
    prom = prom_with([(15.0, {0: 100.0, 7: 0.0}), (45.0, {0: 160.0, 7: 30.0, 9: 5.0})])
    # series 0: 2/s; series 7: 30 x 45/30 / 60 = 0.75/s; series 9 has one sample: absent
    assert prom.sum_rate(SUCCESS, 60.0, 60.0) == pytest.approx(2.75, rel=1e-12)
    rates = prom.sum_rates(60.0, 60.0)
    assert rates.shape == (len(POD_COUNTERS),)
    assert rates[SUCCESS] == pytest.approx(2.75, rel=1e-12)
    assert math.isnan(rates[st.C_FAILURE])  # no series holds this counter


def test_window_is_left_open_right_closed() -> None:
    prom = prom_with([(0.0, {0: 0.0}), (30.0, {0: 30.0}), (60.0, {0: 60.0})])
    assert [prom.t[r] for r in prom.rows_in(60.0, 60.0)] == [30.0, 60.0]
    assert [prom.t[r] for r in prom.rows_in(59.0, 60.0)] == [0.0, 30.0]
    # at 60 s: samples 30, 60 -> 30 over 30 s, to start 30 < 33 but the zero point
    # 30 x 30/30 = 30 -> interval 60 -> 1/s
    assert prom.sum_rate(SUCCESS, 60.0, 60.0) == pytest.approx(1.0, rel=1e-12)


def test_scrape_gap_leaves_rows_missing_and_rates_undefined() -> None:
    # the scrape at 60 s was missed
    prom = prom_with([(0.0, {0: 0.0}), (30.0, {0: 30.0}), (90.0, {0: 90.0}), (120.0, {0: 120.0})])
    assert prom.count == 4
    assert [prom.t[r] for r in prom.rows_in(90.0, 60.0)] == [90.0]
    assert math.isnan(prom.sum_rate(SUCCESS, 90.0, 60.0))  # one sample in (30, 90]
    assert prom.sum_rate(SUCCESS, 120.0, 60.0) == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(PromSim(n_gpus=1).sum_rate(SUCCESS, 60.0, 60.0))


def test_ring_keeps_the_last_rows() -> None:
    prom = prom_with([(30.0 * i, {0: 30.0 * i}) for i in range(ROWS + 4)])
    rows = prom.rows_in(30.0 * (ROWS + 3), 1e9)
    assert len(rows) == ROWS
    assert [prom.t[r] for r in rows] == [30.0 * i for i in range(4, ROWS + 4)]


def test_gauges_read_the_newest_scrape_within_the_lookback() -> None:
    prom = PromSim(n_gpus=2)
    pending = POD_GAUGES.index("nv_inference_pending_request_count")
    util = GPU_GAUGES.index("DCGM_FI_DEV_GPU_UTIL")
    available = DEPLOYMENT_GAUGES.index("kube_deployment_status_replicas_available")
    for t, (a, b) in [(0.0, (1.0, 2.0)), (30.0, (3.0, 4.0))]:
        row = prom.new_row(t)
        prom.pod_gauges[row, 0, pending] = a
        prom.pod_gauges[row, 5, pending] = b
        prom.gpu_gauges[row, :, util] = [a * 10, b * 10]
        prom.deployment[row, available] = a
    assert prom.sum_pod_gauge(pending, 45.0) == 7.0
    assert prom.gpu_gauge(util, 45.0) == 35.0
    assert prom.gpu_gauge(util, 45.0, how="sum") == 70.0
    assert prom.deployment_gauge(available, 45.0) == 3.0
    # avg_over_time over both scrapes, then avg over GPUs: (10 + 30 + 20 + 40) / 4
    assert prom.avg_over_time_gpu(util, 45.0, 60.0) == 25.0
    # before the first scrape and after the lookback delta there is nothing to read
    assert math.isnan(prom.sum_pod_gauge(pending, -1.0))
    assert prom.sum_pod_gauge(pending, 30.0 + LOOKBACK_S - 1) == 7.0
    assert math.isnan(prom.sum_pod_gauge(pending, 30.0 + LOOKBACK_S))
    assert math.isnan(prom.deployment_gauge(available, 30.0 + LOOKBACK_S))
