"""Statistics of repeated runs, for the few runs an RL evaluation can afford.

Runs of one policy on one profile differ only in their seed, so each KPI is a sample of
``n`` independent values. Non-finite values (a latency percentile of a run in which no
request succeeded) are left out, and ``n`` counts what is left.

* :func:`mean_ci`: mean and Student-t CI; :func:`welch_test`, :func:`hedges_g`: the
  classical two-sample comparison;
* :func:`iqm`, :func:`bootstrap_ci`, :func:`probability_of_improvement`,
  :func:`probability_of_improvement_ci`: the robust aggregates of Agarwal et al., "Deep
  Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021), as the
  ``rliable`` library computes them: the interquartile mean (25 % trimmed mean,
  ``scipy.stats.trim_mean``), percentile-bootstrap CIs that resample runs within each
  stratum (task), and P(X > Y) from the Mann-Whitney U statistic;
* :func:`no_variance`: two samples without any spread (deterministic KPIs), for which a
  t-test and a standardised effect size mean nothing.

``rliable`` itself is not used: the newest ``arch`` that ``rliable`` 1.2.0 allows (< 8;
7.2.0) fails to import with pandas 3. The functions here follow its definitions and are
tested against hand-computed cases.
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

    Two samples with no spread at all (:func:`no_variance`) have no test: equal means give
    t = 0, p = 1 (nothing tells them apart); different means give NaN t and p, not p = 0:
    a deterministic KPI's difference is exact, and no p-value describes it. Fewer than two
    values in a sample: NaN.
    """
    x, y = finite(a), finite(b)
    if x.size < 2 or y.size < 2:
        return WelchResult(math.nan, math.nan, math.nan)
    if no_variance(x, y):
        if x.mean() == y.mean():
            return WelchResult(0.0, 1.0, math.nan)
        return WelchResult(math.nan, math.nan, math.nan)
    with warnings.catch_warnings():  # nearly identical samples: scipy warns, the result stands
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(x, y, equal_var=False)
    return WelchResult(float(res.statistic), float(res.pvalue), float(res.df))


def hedges_g(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Bias-corrected standardised mean difference of ``a`` over ``b``.

    ``g = J * (mean_a - mean_b) / s_pooled`` with ``s_pooled = sqrt(((n_a-1) s_a^2 +
    (n_b-1) s_b^2) / (n_a + n_b - 2))`` and ``J = 1 - 3 / (4 (n_a + n_b) - 9)``.
    Zero pooled spread (:func:`no_variance`): 0 for equal means, NaN otherwise (not +-inf).
    """
    x, y = finite(a), finite(b)
    na, nb = x.size, y.size
    if na < 2 or nb < 2:
        return math.nan
    diff = float(x.mean() - y.mean())
    pooled = math.sqrt(((na - 1) * x.var(ddof=1) + (nb - 1) * y.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return 0.0 if diff == 0 else math.nan
    correction = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0)
    return correction * diff / pooled


# --------------------------------------------------------------------------- robust aggregates

BOOTSTRAP_REPS = 10_000
"""Bootstrap resamples per interval (rliable's default is 50,000). With 10,000 the
Monte-Carlo standard error of the 2.5 % quantile's level is sqrt(0.025 x 0.975 / 10,000),
about 0.16 percentile points."""
BOOTSTRAP_SEED = 0
"""Seed of the bootstrap's own generator: the same runs always give the same interval."""
STATISTICS = ("mean", "iqm")
"""Statistics :func:`bootstrap_ci` can resample."""


class BootstrapCI(NamedTuple):
    """A statistic of the runs with its percentile-bootstrap interval (NaN when n = 0)."""

    value: float
    """The statistic of the runs themselves."""
    low: float
    """Lower end: the (1 - c) / 2 quantile of the resampled statistics."""
    high: float
    """Upper end: the (1 + c) / 2 quantile."""
    n: int
    """Number of finite values used."""


def no_variance(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray = ()) -> bool:
    """True when every sample given has at least two finite values and none has any spread.

    One sample: its values are all equal. Two samples: both are (a deterministic KPI: the
    same value in every run of each policy, such as vGPU-hours of a static policy).
    """
    samples = [finite(a)] + ([finite(b)] if len(b) else [])
    return all(x.size >= 2 and bool(np.all(x == x[0])) for x in samples)


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the values left after cutting ``floor(n / 4)`` from
    each end of the sorted sample (``scipy.stats.trim_mean(x, 0.25)``, rliable's
    ``aggregate_iqm``). NaN for an empty sample."""
    x = finite(values)
    return float(st.trim_mean(x, 0.25)) if x.size else math.nan


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    strata: Sequence[object] | np.ndarray | None = None,
    statistic: str = "mean",
    confidence: float = 0.95,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapCI:
    """Stratified percentile-bootstrap CI of ``statistic`` (``"mean"`` or ``"iqm"``).

    Each resample draws, within every stratum, as many values as the stratum has, with
    replacement, and computes the statistic over all strata together (rliable's
    ``StratifiedBootstrap``: strata are tasks, here usually profiles). ``strata`` is None:
    one stratum. The interval is the ``(1 -+ c) / 2`` quantiles of ``reps`` resampled
    statistics (the percentile method). A constant sample has the zero-width interval
    ``[c, c]``. Non-finite values are left out with their stratum labels.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    x = np.asarray(values, dtype=np.float64)
    labels = np.zeros(x.size, dtype=np.int64) if strata is None else np.asarray(strata)
    if labels.shape != x.shape:
        raise ValueError(f"strata: expected {x.size} labels, got {labels.size}")
    keep = np.isfinite(x)
    x, labels = x[keep], labels[keep]
    if x.size == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, 0)
    point = _statistic(x[None, :], statistic)[0]
    rng = np.random.default_rng(seed)
    columns = [_resample(x[labels == s], reps, rng) for s in _unique_in_order(labels)]
    stats = _statistic(np.concatenate(columns, axis=1), statistic)
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return BootstrapCI(float(point), float(low), float(high), int(x.size))


def probability_of_improvement(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> float:
    """P(A > B) + P(A = B) / 2 for one run of each drawn at random (NaN if either is empty).

    The Mann-Whitney ``U / (n_a n_b)``: the share of the ``n_a x n_b`` pairs in which ``a``
    is larger, ties counting half (Agarwal et al. 2021; rliable's per-task
    ``probability_of_improvement``). Where smaller is better (vGPU-hours), the probability
    that A improves on B is ``probability_of_improvement(b, a)``.
    """
    x, y = finite(a), finite(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    return float(_pairwise_greater(x[None, :], y[None, :])[0])


def probability_of_improvement_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapCI:
    """:func:`probability_of_improvement` with a percentile-bootstrap interval that resamples
    the two samples independently (rliable's ``StratifiedIndependentBootstrap``)."""
    x, y = finite(a), finite(b)
    if x.size == 0 or y.size == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    stats = _pairwise_greater(_resample(x, reps, rng), _resample(y, reps, rng))
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return BootstrapCI(probability_of_improvement(x, y), float(low), float(high), x.size + y.size)


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` resamples of ``x`` with replacement, one per row."""
    return x[rng.integers(0, x.size, size=(reps, x.size))]


def _statistic(rows: np.ndarray, statistic: str) -> np.ndarray:
    """Per row: the mean, or the IQM as :func:`iqm` defines it (``floor(n / 4)`` cut from
    each end; a plain sort is several times faster than ``trim_mean`` on many short rows)."""
    if statistic == "iqm":
        cut = rows.shape[1] // 4
        return np.sort(rows, axis=1)[:, cut : rows.shape[1] - cut].mean(axis=1)
    return rows.mean(axis=1)


def _pairwise_greater(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row: the share of pairs with x > y, ties counting half."""
    greater = (x[:, :, None] > y[:, None, :]).mean(axis=(1, 2))
    ties = (x[:, :, None] == y[:, None, :]).mean(axis=(1, 2))
    return greater + 0.5 * ties


def _unique_in_order(labels: np.ndarray) -> list[object]:
    return list(dict.fromkeys(labels.tolist()))
