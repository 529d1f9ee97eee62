"""Tests of analysis.means: Welch t, Mann–Whitney, Hodges–Lehmann, TOST equivalence.

Sources of the expected values (never the functions under test):

* ``welch_t_sleep`` and ``tost_means``: tests/fixtures/stats-reference-cases.json (R
  ``?t.test`` sleep example; statsmodels ``ttost_ind`` values with the hand check
  t_low = (mean difference + 0.5) / se).
* R ``wilcox.test(extra ~ group, data = sleep)``: W = 25.5, p-value = 0.06933 (normal
  approximation with continuity correction; the data have ties).
* R ``?wilcox.test`` example (Hollander & Wolfe permeability constants):
  ``wilcox.test(x, y, alternative = "g")`` gives W = 35, p-value = 0.1272 (exact); the
  exact null distribution is symmetric, so the two-sided p-value is 2 x 0.1272.
* Exact Hodges–Lehmann intervals are checked against a brute-force oracle written here:
  the Mann–Whitney null distribution by enumerating every rank assignment, and the
  order statistics by sorting all m*n differences (Hodges & Lehmann 1963; Bauer 1972).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as hs

from analysis.errors import InsufficientDataError
from analysis.means import (
    _hodges_lehmann,
    _kth_difference,
    compare_means,
    equivalence_means,
)
from tests.reference import close, close_rel

HW_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
HW_Y = [1.15, 0.88, 0.90, 0.74, 1.21]


def brute_force_exact_hl(x, y, level=0.95):
    """Exact HL interval by enumeration: independent of the generating-function code."""
    m, n = len(x), len(y)
    counts: dict[int, int] = {}
    for ranks in itertools.combinations(range(1, m + n + 1), m):
        u = sum(ranks) - m * (m + 1) // 2
        counts[u] = counts.get(u, 0) + 1
    total = math.comb(m + n, m)
    cdf = np.cumsum([counts.get(u, 0) for u in range(m * n + 1)]) / total
    below = np.flatnonzero(cdf <= (1 - level) / 2)
    c_star = int(below[-1]) if below.size else 0  # largest c with P(U <= c) <= alpha/2
    k = c_star + 1  # k = 1 also when no c qualifies (groups too small)
    coverage = 1 - 2 * cdf[c_star]
    diffs = np.sort(np.subtract.outer(np.asarray(x), np.asarray(y)).ravel())
    return np.median(diffs), diffs[k - 1], diffs[m * n - k], coverage


# --- Welch -------------------------------------------------------------------------------


def test_welch_sleep_reference_case(cases):
    case = cases["welch_t_sleep"]
    exp, tol = case["expected"], case["tol"]
    r = compare_means(case["inputs"]["group1"], case["inputs"]["group2"])
    close(r.md_low, exp["ci"][0], tol)
    close(r.md_high, exp["ci"][1], tol)
    close(r.p_welch, exp["p"], tol)
    assert r.mean_difference == pytest.approx(0.75 - 2.33, abs=1e-12)
    assert (r.n1, r.n2) == (10, 10)


def test_mann_whitney_sleep_matches_r_with_ties(cases):
    case = cases["welch_t_sleep"]
    r = compare_means(case["inputs"]["group1"], case["inputs"]["group2"])
    assert r.hl_method == "normal approximation"  # the data have ties
    close(r.p_mannwhitney, 0.06933, 5e-6)


def test_mann_whitney_exact_matches_r_documentation_example():
    r = compare_means(HW_X, HW_Y)
    assert r.hl_method == "exact"
    close(r.p_mannwhitney, 2 * 0.1272, 1e-4)


# --- Hodges–Lehmann ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, y",
    [
        (HW_X, HW_Y),
        ([2.1, 3.4, 1.9, 5.6, 4.4, 3.0], [1.2, 0.4, 2.5, 1.7, 0.9, 3.3, 2.2]),
        ([10.5, 12.25, 9.75, 11.0], [8.5, 9.0, 13.5]),
    ],
)
@pytest.mark.parametrize("level", [0.95, 0.90])
def test_exact_hodges_lehmann_matches_brute_force(x, y, level):
    est, low, high, achieved = brute_force_exact_hl(x, y, level)
    r = compare_means(x, y, level=level)
    assert r.hl_method == "exact"
    assert r.hodges_lehmann == pytest.approx(est, abs=1e-12)
    assert r.hl_low == pytest.approx(low, abs=1e-12)
    assert r.hl_high == pytest.approx(high, abs=1e-12)
    assert r.hl_achieved_level == pytest.approx(achieved, abs=1e-12)


def test_too_small_groups_give_min_max_interval_and_report_its_coverage():
    # m = 4, n = 3: P(U = 0) = 1/35 > 0.025, so no interval reaches 95%; [min, max] of the
    # differences has coverage 1 - 2/35.
    x, y = [1.1, 2.3, 3.2, 4.8], [0.5, 1.9, 2.2]
    r = compare_means(x, y)
    assert r.hl_low == pytest.approx(1.1 - 2.2)
    assert r.hl_high == pytest.approx(4.8 - 0.5)
    assert r.hl_achieved_level == pytest.approx(1 - 2 / 35)


def test_normal_approximation_limits_are_within_one_rank_of_exact():
    rng = np.random.default_rng(11)
    x = rng.normal(0.3, 1, 45)
    y = rng.normal(0.0, 1, 40)
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    _, lo_e, hi_e, how_e, _ = _hodges_lehmann(x, y, method="exact")
    _, lo_n, hi_n, how_n, _ = _hodges_lehmann(x, y, method="normal approximation")
    assert (how_e, how_n) == ("exact", "normal approximation")
    rank = {v: i for i, v in enumerate(diffs)}
    assert abs(rank[lo_e] - rank[lo_n]) <= 1
    assert abs(rank[hi_e] - rank[hi_n]) <= 1


def test_large_groups_use_normal_approximation_and_exact_order_statistics():
    rng = np.random.default_rng(5)
    x = rng.normal(1.0, 2.0, 1500)
    y = rng.normal(0.0, 2.0, 1200)  # 1.8 million differences: selection, not the matrix
    r = compare_means(x, y)
    assert r.hl_method == "normal approximation"
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    mn = diffs.size
    assert r.hodges_lehmann == pytest.approx(0.5 * (diffs[mn // 2 - 1] + diffs[mn // 2]))
    # The normal-approximation ranks, computed here from Hollander & Wolfe's formula.
    sigma = math.sqrt(mn * (x.size + y.size + 1) / 12)
    k = math.floor(mn / 2 - 0.5 - 1.959963984540054 * sigma) + 1
    assert r.hl_low == diffs[k - 1]
    assert r.hl_high == diffs[mn - k]


@pytest.mark.parametrize("max_block", [1, 7, 500])
def test_selection_matches_sorting_with_ties_and_duplicates(max_block):
    rng = np.random.default_rng(max_block)
    x = rng.integers(0, 20, 90).astype(float)  # many ties
    y = rng.integers(0, 15, 70).astype(float)
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    for k in (1, 2, 50, diffs.size // 2, diffs.size - 1, diffs.size):
        got = _kth_difference(x, y, k, np.random.default_rng(0), max_block=max_block)
        assert got == diffs[k - 1]


def test_exact_method_refuses_ties():
    with pytest.raises(ValueError, match="ties"):
        _hodges_lehmann([1.0, 2.0, 3.0], [2.0, 5.0], method="exact")


@settings(max_examples=60, deadline=None)
@given(
    x=hs.lists(hs.integers(-50, 50), min_size=2, max_size=25),
    y=hs.lists(hs.integers(-50, 50), min_size=2, max_size=25),
    shift=hs.integers(-20, 20),
)
def test_hodges_lehmann_estimate_is_shift_equivariant_and_inside_its_interval(x, y, shift):
    r = compare_means(x, y)
    assert r.hl_low <= r.hodges_lehmann <= r.hl_high
    if np.ptp(x) > 0 or np.ptp(y) > 0:  # Welch is undefined for two constant groups
        assert r.md_low <= r.mean_difference <= r.md_high
    s = compare_means(np.asarray(x) + shift, y)
    assert s.hodges_lehmann == pytest.approx(r.hodges_lehmann + shift, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    xs=hs.lists(hs.integers(-40, 40), min_size=2, max_size=30, unique=True),
    ys=hs.lists(hs.integers(-40, 40), min_size=2, max_size=30, unique=True),
    shift=hs.integers(-10, 10),
)
def test_hodges_lehmann_interval_is_shift_equivariant_without_ties(xs, ys, shift):
    # Even x and odd y never tie, before or after an even shift, so the method and the
    # tie structure stay the same and the whole interval must move with the shift.
    x = 2 * np.asarray(xs, dtype=float)
    y = 2 * np.asarray(ys, dtype=float) + 1
    r = compare_means(x, y)
    s = compare_means(x + 2 * shift, y)
    assert s.hl_method == r.hl_method
    assert s.hl_low == pytest.approx(r.hl_low + 2 * shift, abs=1e-9)
    assert s.hl_high == pytest.approx(r.hl_high + 2 * shift, abs=1e-9)


# --- missing data and small groups -------------------------------------------------------


def test_nans_are_dropped():
    x = [1.0, np.nan, 2.5, 3.1, 4.0]
    y = [0.5, 1.5, np.nan, 2.0]
    r = compare_means(x, y)
    s = compare_means([1.0, 2.5, 3.1, 4.0], [0.5, 1.5, 2.0])
    assert (r.n1, r.n2) == (4, 3)
    assert r.to_dict() == s.to_dict()


@pytest.mark.parametrize(
    "x, y, who",
    [
        ([1.0], [1.0, 2.0], "group 1"),
        ([1.0, 2.0], [np.nan, 3.0], "group 2"),
        ([], [1.0, 2.0], "group 1"),
    ],
)
def test_fewer_than_two_values_raise(x, y, who):
    with pytest.raises(InsufficientDataError, match=who) as err:
        compare_means(x, y)
    assert "at least 2" in str(err.value)


def test_two_constant_groups_give_nan_welch_without_error():
    r = compare_means([3.0, 3.0, 3.0], [5.0, 5.0])
    assert math.isnan(r.p_welch) and math.isnan(r.md_low) and math.isnan(r.md_high)
    assert r.hodges_lehmann == -2.0
    assert r.mean_difference == -2.0


# --- equivalence -------------------------------------------------------------------------


def test_tost_reference_case(cases):
    case = cases["tost_means"]
    exp, tol = case["expected"], case["tol"]
    inp = case["inputs"]
    pooled = equivalence_means(inp["x1"], inp["x2"], inp["low"], inp["upp"], usevar="pooled")
    close_rel(pooled.p_value, exp["pooled_p"])
    close(pooled.t_low, exp["pooled_t_low"], tol)
    close(pooled.t_upp, exp["pooled_t_upp"], tol)
    close(pooled.df, exp["df"], tol)
    welch = equivalence_means(inp["x1"], inp["x2"], inp["low"], inp["upp"])
    close_rel(welch.p_value, exp["welch_p"])
    close(welch.df, exp["welch_df"], tol)
    assert welch.equivalent and pooled.equivalent


def test_tost_statistic_matches_hand_formula(cases):
    inp = cases["tost_means"]["inputs"]
    x1, x2 = np.array(inp["x1"]), np.array(inp["x2"])
    diff = x1.mean() - x2.mean()
    se = math.sqrt(x1.var(ddof=1) / x1.size + x2.var(ddof=1) / x2.size)
    r = equivalence_means(x1, x2, -0.5, 0.5)
    assert r.t_low == pytest.approx((diff + 0.5) / se, rel=1e-10)
    assert r.t_upp == pytest.approx((diff - 0.5) / se, rel=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    x=hs.lists(hs.floats(-10, 10, allow_subnormal=False), min_size=3, max_size=30),
    y=hs.lists(hs.floats(-10, 10, allow_subnormal=False), min_size=3, max_size=30),
    margin=hs.floats(0.1, 5),
)
def test_equivalence_iff_interval_inside_margins(x, y, margin):
    assume(np.var(x) + np.var(y) > 1e-6)  # t statistics need some variance
    r = equivalence_means(x, y, -margin, margin)
    inside = -margin < r.ci_low and r.ci_high < margin
    assert (
        r.equivalent == inside
        or math.isclose(abs(r.ci_low), margin)
        or math.isclose(abs(r.ci_high), margin)
    )


def test_equivalence_with_two_constant_groups_raises():
    with pytest.raises(InsufficientDataError, match="constant"):
        equivalence_means([2.0, 2.0, 2.0], [2.5, 2.5], -1, 1)


def test_equivalence_rejects_bad_margins():
    with pytest.raises(ValueError):
        equivalence_means([1, 2, 3], [2, 3, 4], 0.5, -0.5)
