"""The calibration's fits (envs/backends/local/measure.py) recover known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from k8s_gpu_rl.envs.backends.local.measure import TAIL_PROBABILITY, fit_linear, fit_transport
from k8s_gpu_rl.envs.sim.config import load_cluster_config


def test_fit_linear_recovers_base_and_per_item() -> None:
    sizes = [1, 2, 4, 8]
    base, per_item = fit_linear(sizes, [0.7 + 2.6 * n for n in sizes])
    assert (base, per_item) == pytest.approx((0.7, 2.6))
    # a negative intercept is clipped to the smallest base the config accepts
    assert fit_linear(sizes, [3.0 * n - 0.5 for n in sizes])[0] == 0.01


def test_fit_transport_recovers_a_log_normal_body_and_an_exponential_tail() -> None:
    rng = np.random.default_rng(0)
    n, server, median, sigma, tail_mean = 400_000, 4.6, 2.5, 0.3, 4.0
    body = median * np.exp(sigma * rng.standard_normal(n))
    tail = np.where(rng.random(n) < TAIL_PROBABILITY, rng.exponential(tail_mean, n), 0.0)
    latency = server + body + tail
    p50, p75, p99 = np.percentile(latency, (50, 75, 99))
    fit = fit_transport(p50, p75, p99, server)
    assert fit["transport_median_ms"] == pytest.approx(median, rel=0.06)
    assert fit["transport_sigma"] == pytest.approx(sigma, rel=0.2)
    assert fit["tail_probability"] == TAIL_PROBABILITY
    # the fitted model puts about 1 % of requests above the measured p99
    body2 = fit["transport_median_ms"] * np.exp(fit["transport_sigma"] * rng.standard_normal(n))
    tail2 = np.where(rng.random(n) < TAIL_PROBABILITY, rng.exponential(fit["tail_mean_ms"], n), 0.0)
    above = np.mean(server + body2 + tail2 > p99)
    assert 0.005 < above < 0.02


def test_the_shipped_local_cluster_uses_the_servers_token_bucket() -> None:
    """envs/sim/clusters/local.yaml models the limiter the local servers run (0.1 s)."""
    from k8s_gpu_rl.envs.backends.local.server import ComputeShareLimiter

    local = load_cluster_config("local")
    limiter = ComputeShareLimiter(0.5)
    assert local.hami.token_bucket_s == pytest.approx(limiter.capacity / 0.5)
    assert load_cluster_config("rtx3080").hami.token_bucket_s == 0.0
