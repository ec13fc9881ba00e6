"""Robust statistics for few runs (evaluation/stats.py, evaluation/aggregate.py).

Every expected value is worked out by hand in the comment beside it: interquartile means by
sorting and trimming, probabilities of improvement by counting pairs, bootstrap intervals
from the exact distribution of the resampled statistic on two- or four-value samples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from k8s_gpu_rl.evaluation import aggregate
from k8s_gpu_rl.evaluation.stats import (
    bootstrap_ci,
    hedges_g,
    iqm,
    no_variance,
    probability_of_improvement,
    probability_of_improvement_ci,
    welch_test,
)

# --------------------------------------------------------------------------- IQM


def test_iqm_of_eight_values_is_the_mean_of_the_middle_four() -> None:
    # sorted: 1 2 | 3 4 5 6 | 7 100; floor(8/4) = 2 cut from each end -> (3+4+5+6)/4
    assert iqm([7.0, 1.0, 100.0, 3.0, 6.0, 2.0, 5.0, 4.0]) == 4.5
    assert bootstrap_ci([7.0, 1.0, 100.0, 3.0, 6.0, 2.0, 5.0, 4.0], statistic="iqm").value == 4.5


def test_iqm_of_five_values_cuts_one_from_each_end() -> None:
    # floor(5/4) = 1: drop 1 and 50 -> (2+3+4)/3; the outlier does not move it
    assert iqm([50.0, 2.0, 1.0, 4.0, 3.0]) == 3.0


def test_iqm_leaves_out_non_finite_values_and_is_nan_when_empty() -> None:
    assert iqm([1.0, math.nan, 2.0, 3.0]) == 2.0  # three values, floor(3/4) = 0 cut: mean
    assert math.isnan(iqm([]))
    assert math.isnan(iqm([math.nan]))


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_of_a_constant_array_has_zero_width() -> None:
    for statistic in ("mean", "iqm"):
        ci = bootstrap_ci([3.0, 3.0, 3.0, 3.0], statistic=statistic)
        assert (ci.value, ci.low, ci.high, ci.n) == (3.0, 3.0, 3.0, 4)


def test_bootstrap_of_two_values_matches_the_exact_resampling_distribution() -> None:
    # Resampling [0, 1] twice: mean 0 w.p. 1/4, 0.5 w.p. 1/2, 1 w.p. 1/4. The 95 % interval
    # (quantiles 0.025, 0.975) is [0, 1]; a 40 % one (0.3, 0.7) lies inside the middle
    # atom: [0.5, 0.5] (10,000 resamples put P(0) within +-0.02 of 0.25).
    assert bootstrap_ci([0.0, 1.0])[:3] == (0.5, 0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], confidence=0.4)[1:3] == (0.5, 0.5)


def test_stratification_keeps_each_stratum_whole() -> None:
    values, strata = [0.0, 0.0, 10.0, 10.0], ["a", "a", "b", "b"]
    # Within strata every resample is two 0s and two 10s: the mean is always 5.
    assert bootstrap_ci(values, strata)[:3] == (5.0, 5.0, 5.0)
    # As one stratum: all four draws are 0 w.p. 1/16 = 6.25 % > 2.5 % (and 10 likewise),
    # so the 95 % interval is [0, 10].
    assert bootstrap_ci(values)[:3] == (5.0, 0.0, 10.0)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    x = [0.31, 0.12, 0.77, 0.45, 0.59, 0.23, 0.91, 0.05, 0.66, 0.38, 0.84, 0.17]
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    # 12 distinct values: the quantiles of 500 resampled means fall between atoms, so
    # another seed moves them
    assert bootstrap_ci(x, seed=3, reps=500) != bootstrap_ci(x, seed=4, reps=500)
    low, high = bootstrap_ci(x)[1:3]
    assert min(x) <= low < float(np.mean(x)) < high <= max(x)


def test_bootstrap_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="statistic must be one of mean, iqm, got 'median'"):
        bootstrap_ci([1.0, 2.0], statistic="median")
    with pytest.raises(ValueError, match="strata: expected 2 labels, got 3"):
        bootstrap_ci([1.0, 2.0], strata=["a", "b", "c"])
    assert math.isnan(bootstrap_ci([math.nan]).value) and bootstrap_ci([]).n == 0


# --------------------------------------------------------------------------- P(X > Y)


def test_probability_of_improvement_by_counting_pairs() -> None:
    a, b = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    # a=1: beats 0 (1 win); a=2: ties 2, 2 and beats 0 (1 win, 2 ties); a=3: 3 wins.
    # (5 wins + 2 ties / 2) / 9 pairs = 6/9
    assert probability_of_improvement(a, b) == pytest.approx(6 / 9)
    assert probability_of_improvement(a, b) == pytest.approx(
        st.mannwhitneyu(a, b).statistic / 9  # U counts the same pairs
    )
    assert probability_of_improvement(b, a) == pytest.approx(3 / 9)  # the complement


def test_probability_of_improvement_edge_cases() -> None:
    assert probability_of_improvement([1.0, 2.0], [1.0, 2.0]) == 0.5  # 2 wins, 2 ties of 4
    assert probability_of_improvement([5.0, 6.0], [1.0, 2.0]) == 1.0
    assert probability_of_improvement([1.0, 2.0], [5.0, 6.0]) == 0.0
    assert probability_of_improvement([4.0, 4.0], [4.0]) == 0.5  # all ties
    assert math.isnan(probability_of_improvement([], [1.0]))


def test_probability_of_improvement_interval() -> None:
    # Separated samples: every resample still has a > b in all pairs.
    assert probability_of_improvement_ci([5.0, 6.0], [1.0, 2.0])[:3] == (1.0, 1.0, 1.0)
    # Equal constants: every pair ties.
    assert probability_of_improvement_ci([3.0, 3.0], [3.0, 3.0])[:3] == (0.5, 0.5, 0.5)
    # One value each side, [0, 1] vs [0.5, 0.5]: resampled a is 0,0 (1/4) -> 0, 1,1 -> 1:
    # the 95 % interval is [0, 1] around the point value 0.5.
    assert probability_of_improvement_ci([0.0, 1.0], [0.5, 0.5])[:3] == (0.5, 0.0, 1.0)


# --------------------------------------------------------------------------- no variance


def test_deterministic_kpis_get_no_variance_instead_of_p_zero() -> None:
    a, b = [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]
    assert no_variance(a, b) and no_variance(a) and not no_variance(a, [3.0, 3.5])
    assert not no_variance([2.0]) and not no_variance([2.0, 2.0], [3.0])  # too few runs
    w = welch_test(a, b)
    assert math.isnan(w.t) and math.isnan(w.p_value)  # not t = -inf, p = 0
    assert math.isnan(hedges_g(a, b))  # not -inf
    assert welch_test(a, a)[:2] == (0.0, 1.0) and hedges_g(a, a) == 0.0
    # one sample with spread: an ordinary Welch test, df = n_b - 1 = 1
    w = welch_test(a, [3.0, 4.0])
    assert w.dof == pytest.approx(1.0) and 0 < w.p_value < 1


# --------------------------------------------------------------------------- tables


def _runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "policy": ["static"] * 4 + ["hpa"] * 4,
            "profile": ["p"] * 8,
            "seed": [0, 1, 2, 3] * 2,
            "vgpu_hours": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0],
            "p95_latency_ms": [80.0, 90.0, 100.0, 200.0, 70.0, 75.0, 85.0, 95.0],
            "gpu_util": [0.1, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3, 0.4],
        }
    )


def test_summary_keeps_old_columns_and_adds_robust_ones() -> None:
    summary = aggregate.summarise(_runs()).set_index(["policy", "kpi"])
    for column in ("n", "mean", "std", "ci95", "ci_low", "ci_high"):
        assert column in summary.columns
    row = summary.loc[("static", "p95_latency_ms")]
    assert row["mean"] == 117.5 and row["iqm"] == 95.0  # IQM of 80 90 100 200: (90+100)/2
    # IQM of 4 resampled values = mean of the middle two; it is 80 when >= 3 draws are 80:
    # P = 4 (1/4)^3 (3/4) + (1/4)^4 = 13/256 = 5.1 % > 2.5 %, so the 95 % ends are 80 and
    # (likewise) 200.
    assert (row["iqm_low"], row["iqm_high"]) == (80.0, 200.0)
    # Mean of 4 draws: P(<= 82.5) = (1 + 4)/256 = 2.0 % < 2.5 % < P(<= 85) = 15/256; at the
    # top P(>= 175) = 5/256 = 2.0 % < 2.5 % < P(>= 172.5) = 9/256: ends 85 and 172.5.
    assert (row["boot_low"], row["boot_high"]) == (85.0, 172.5)
    assert not row["no_variance"]
    flat = summary.loc[("static", "vgpu_hours")]
    assert flat["no_variance"] and (flat["boot_low"], flat["boot_high"]) == (1.0, 1.0)
    assert flat["std"] == 0.0


def test_comparisons_flag_no_variance_and_orient_improvement() -> None:
    table = aggregate.compare(_runs()).set_index("kpi")
    cost = table.loc["vgpu_hours"]
    assert cost["note"] == "no variance" and cost["no_variance"]
    assert math.isnan(cost["p_value"]) and math.isnan(cost["hedges_g"])
    # static (1.0) beats hpa (2.0) on cost in all 16 pairs: lower is better
    assert (cost["prob_a_greater"], cost["prob_improvement"]) == (0.0, 1.0)
    assert (cost["poi_low"], cost["poi_high"]) == (1.0, 1.0)
    # latency: static's runs are higher than hpa's in 13 of 16 pairs
    # (80 > 70, 75; 90 > all but 95; 100, 200 > all four) and no ties
    latency = table.loc["p95_latency_ms"]
    assert latency["prob_a_greater"] == pytest.approx(13 / 16)
    assert latency["prob_improvement"] == pytest.approx(3 / 16)
    assert latency["note"] == "" and np.isfinite(latency["p_value"])
    util = table.loc["gpu_util"]  # no better direction: only the raw P(A > B)
    assert util["prob_a_greater"] == 0.5 and math.isnan(util["prob_improvement"])


def test_overall_normalises_by_the_reference_and_stratifies_by_profile() -> None:
    runs = pd.DataFrame(
        {
            "policy": ["ref"] * 4 + ["a"] * 4,
            "profile": ["p1", "p1", "p2", "p2"] * 2,
            "seed": [0, 1] * 4,
            "vgpu_hours": [2.0, 2.0, 4.0, 4.0, 1.0, 1.0, 4.0, 4.0],
        }
    )
    table = aggregate.overall(runs, reference="ref", kpis=("vgpu_hours",)).set_index("policy")
    # a's scores: 1/2, 1/2 on p1 and 4/4, 4/4 on p2; the stratified resample keeps two of
    # each, so the mean is always 0.75 and the IQM of (0.5, 0.5, 1, 1) is (0.5 + 1) / 2.
    row = table.loc["a"]
    assert (row["n_profiles"], row["n"]) == (2, 4)
    assert (row["mean"], row["boot_low"], row["boot_high"]) == (0.75, 0.75, 0.75)
    assert (row["iqm"], row["iqm_low"], row["iqm_high"]) == (0.75, 0.75, 0.75)
    assert table.loc["ref", "mean"] == 1.0
