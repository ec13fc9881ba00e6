"""Statistics of repeated runs: mean and Student-t CI, Welch's t-test, Hedges' g.

Runs of one policy on one profile differ only in their seed, so each KPI is a sample of
``n`` independent values. Non-finite values (a latency percentile of a run in which no
request succeeded) are left out, and ``n`` counts what is left.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as st


class MeanCI(NamedTuple):
    """Mean with the half-width of its confidence interval (NaN when n < 2)."""

    mean: float
    half_width: float
    std: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


class WelchResult(NamedTuple):
    t: float
    p_value: float
    dof: float


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return x[np.isfinite(x)]


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> MeanCI:
    """Mean and CI half-width ``t_{(1+c)/2, n-1} * s / sqrt(n)`` (sample std, n-1 dof)."""
    x = finite(values)
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    half = float(st.t.ppf((1.0 + confidence) / 2.0, n - 1) * std / math.sqrt(n))
    return MeanCI(mean, half, std, n)


def welch_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> WelchResult:
    """Welch's unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``).

    Two samples with no spread at all have no test: equal means give t = 0, p = 1;
    different ones t = +-inf, p = 0. Fewer than two values in a sample: NaN.
    """
    x, y = finite(a), finite(b)
    if x.size < 2 or y.size < 2:
        return WelchResult(math.nan, math.nan, math.nan)
    if x.std(ddof=1) == 0 and y.std(ddof=1) == 0:
        diff = float(x.mean() - y.mean())
        if diff == 0:
            return WelchResult(0.0, 1.0, math.nan)
        return WelchResult(math.copysign(math.inf, diff), 0.0, math.nan)
    with warnings.catch_warnings():  # nearly identical samples: scipy warns, the result stands
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(x, y, equal_var=False)
    return WelchResult(float(res.statistic), float(res.pvalue), float(res.df))


def hedges_g(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Bias-corrected standardised mean difference of ``a`` over ``b``.

    ``g = J * (mean_a - mean_b) / s_pooled`` with ``s_pooled = sqrt(((n_a-1) s_a^2 +
    (n_b-1) s_b^2) / (n_a + n_b - 2))`` and ``J = 1 - 3 / (4 (n_a + n_b) - 9)``.
    Zero pooled spread: 0 for equal means, +-inf otherwise.
    """
    x, y = finite(a), finite(b)
    na, nb = x.size, y.size
    if na < 2 or nb < 2:
        return math.nan
    diff = float(x.mean() - y.mean())
    pooled = math.sqrt(((na - 1) * x.var(ddof=1) + (nb - 1) * y.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    correction = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0)
    return correction * diff / pooled
