"""Tests of analysis.proportions: single-proportion CIs and two-group comparisons.

Sources of the expected values (never the functions under test):

* ``single_prop_wilson_cp``, ``two_by_two_aspirin``, ``fisher_exact``,
  ``chisq_k_props_smokers``: tests/fixtures/stats-reference-cases.json (Newcombe 1998a
  Table I; Agresti, Categorical Data Analysis, aspirin/MI table; R ``?fisher.test`` and
  ``?prop.test`` examples).
* Newcombe RG, Stat Med 1998;17:873, Table II, method 10 (hybrid score): examples
  (a) 56/70 - 48/80 -> 0.0524 to 0.3339 and (b) 9/10 - 3/10 -> 0.1705 to 0.8090 (also
  quoted by the R package propint's tests); (d) 5/56 - 0/29 -> -0.0381 to 0.1926 and
  (e) 0/10 - 0/20 -> -0.1611 to 0.2775.
* The Wilson closed form (Wilson 1927), the Haldane 0.5 correction and the Katz/Woolf SE
  formulas written out by hand in the tests; hypothesis properties of intervals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import assume, given, settings
from hypothesis import strategies as hs

from analysis.errors import InsufficientDataError
from analysis.proportions import compare_k_proportions, compare_proportions, proportion_ci
from tests.reference import close, close_rel

# --- single proportions --------------------------------------------------------------------


def test_wilson_and_clopper_pearson_reference_case(cases):
    case = cases["single_prop_wilson_cp"]
    tol = case["tol"]
    for (x, n), wilson, exact in zip(
        case["inputs"]["x_n"],
        case["expected"]["wilson"],
        case["expected"]["clopper_pearson"],
        strict=True,
    ):
        low, high = proportion_ci(x, n)
        close(low, wilson[0], tol)
        close(high, wilson[1], tol)
        low, high = proportion_ci(x, n, method="exact")
        close(low, exact[0], tol)
        close(high, exact[1], tol)


def test_vectorised_call_returns_arrays_matching_the_reference(cases):
    case = cases["single_prop_wilson_cp"]
    x, n = np.array(case["inputs"]["x_n"]).T
    low, high = proportion_ci(x, n, method="wilson")
    assert isinstance(low, np.ndarray) and low.shape == (5,)
    expected = np.array(case["expected"]["wilson"])
    np.testing.assert_allclose(low, expected[:, 0], atol=case["tol"])
    np.testing.assert_allclose(high, expected[:, 1], atol=case["tol"])


def test_wilson_matches_closed_form_at_other_level():
    # Wilson (1927): (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    x, n, level = 7, 31, 0.90
    z = st.norm.isf((1 - level) / 2)
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low, high = proportion_ci(x, n, level=level)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)


def test_clopper_pearson_boundaries_are_exact_at_zero_and_n():
    # For x = 0 the upper limit solves (1 - p)^n = alpha/2; for x = n the lower p^n = alpha/2.
    low, high = proportion_ci(0, 20, method="exact")
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 20), abs=1e-12)
    low, high = proportion_ci(20, 20, method="exact")
    assert high == 1.0
    assert low == pytest.approx(0.025 ** (1 / 20), abs=1e-12)


def test_wilson_boundaries_at_zero_and_n():
    low, high = proportion_ci(0, 15)
    assert low == 0.0 and 0 < high < 1
    low, high = proportion_ci(15, 15)
    assert high == 1.0 and 0 < low < 1


def test_empty_group_raises_for_scalar_and_gives_nan_in_arrays():
    with pytest.raises(InsufficientDataError, match="n is 0"):
        proportion_ci(0, 0)
    low, high = proportion_ci([3, 0], [10, 0])
    assert np.isnan(low[1]) and np.isnan(high[1])
    assert not np.isnan(low[0])


@pytest.mark.parametrize("x, n", [(-1, 10), (11, 10)])
def test_invalid_counts_raise(x, n):
    with pytest.raises(ValueError):
        proportion_ci(x, n)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method"):
        proportion_ci(1, 10, method="wald")


@settings(max_examples=200, deadline=None)
@given(n=hs.integers(1, 2000), data=hs.data(), level=hs.floats(0.5, 0.999))
def test_intervals_contain_estimate_and_lie_in_unit_interval(n, data, level):
    x = data.draw(hs.integers(0, n))
    for method in ("wilson", "exact"):
        low, high = proportion_ci(x, n, level=level, method=method)
        assert 0.0 <= low <= x / n <= high <= 1.0


# --- two proportions -----------------------------------------------------------------------


def test_aspirin_two_by_two_reference_case(cases):
    case = cases["two_by_two_aspirin"]
    exp, tol = case["expected"], case["tol"]
    (a, b), (c, d) = case["inputs"]["table_rows_exposed_then_unexposed_cols_event_nonevent"]
    r = compare_proportions(a, a + b, c, c + d)
    close(r.odds_ratio, exp["or"], tol)
    close(r.or_low, exp["or_ci"][0], tol)
    close(r.or_high, exp["or_ci"][1], tol)
    z = st.norm.isf(0.025)
    close((math.log(r.or_high) - math.log(r.or_low)) / (2 * z), exp["log_or_se"], tol)
    close(r.risk_ratio, exp["rr"], tol)
    close(r.rr_low, exp["rr_ci"][0], tol)
    close(r.rr_high, exp["rr_ci"][1], tol)
    close(r.risk_difference, exp["rd"], tol)
    close(r.rd_low, exp["rd_newcombe_ci"][0], tol)
    close(r.rd_high, exp["rd_newcombe_ci"][1], tol)
    close(r.chi2, exp["chi2_pearson"], tol)
    close_rel(r.p_chi2, exp["p_pearson"])
    assert r.test == "pearson_chi2" and r.p_value == r.p_chi2
    assert not r.zero_cell_correction
    assert (r.x1, r.n1, r.x2, r.n2) == (a, a + b, c, c + d)


def test_fisher_exact_reference_case(cases):
    case = cases["fisher_exact"]
    exp, tol = case["expected"], case["tol"]
    (a, b), (c, d) = case["inputs"]["tea"]
    tea = compare_proportions(a, a + b, c, c + d)
    close(tea.p_fisher, exp["tea_p_two_sided"], tol)
    close(tea.odds_ratio, exp["tea_sample_or"], tol)  # no zero cell: the sample OR
    assert tea.test == "fisher_exact"  # expected counts are 2
    assert tea.p_value == tea.p_fisher
    (a, b), (c, d) = case["inputs"]["convictions"]
    conv = compare_proportions(a, a + b, c, c + d)
    close(conv.p_fisher, exp["convictions_p_two_sided"], tol)
    close_rel(conv.p_fisher, exp["convictions_p_two_sided"])


@pytest.mark.parametrize(
    "x1, n1, x2, n2, low, high",
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
    ],
)
def test_newcombe_1998b_table_ii_method_10(x1, n1, x2, n2, low, high):
    r = compare_proportions(x1, n1, x2, n2)
    close(r.rd_low, low, 1e-4)
    close(r.rd_high, high, 1e-4)


def test_katz_and_woolf_intervals_match_hand_formulas():
    a, n1, c, n2 = 30, 120, 18, 110
    b, d = n1 - a, n2 - c
    z = st.norm.isf(0.05)  # 90% level
    r = compare_proportions(a, n1, c, n2, level=0.90)
    log_rr = math.log((a / n1) / (c / n2))
    se_rr = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    log_or = math.log(a * d / (b * c))
    se_or = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert r.rr_low == pytest.approx(math.exp(log_rr - z * se_rr), rel=1e-12)
    assert r.rr_high == pytest.approx(math.exp(log_rr + z * se_rr), rel=1e-12)
    assert r.or_low == pytest.approx(math.exp(log_or - z * se_or), rel=1e-12)
    assert r.or_high == pytest.approx(math.exp(log_or + z * se_or), rel=1e-12)
    assert r.level == 0.90


def test_zero_cells_flag_correction_and_use_fisher():
    r = compare_proportions(0, 10, 0, 20)
    assert r.zero_cell_correction
    assert r.test == "fisher_exact"
    assert r.p_fisher == pytest.approx(1.0)
    assert math.isnan(r.p_chi2) and math.isnan(r.chi2)  # event margin is 0
    assert r.risk_difference == 0.0
    # Haldane: 0.5 in each cell -> RR = (0.5/11)/(0.5/21), OR = (0.5*20.5)/(10.5*0.5)
    assert r.risk_ratio == pytest.approx((0.5 / 11) / (0.5 / 21))
    assert r.odds_ratio == pytest.approx((0.5 * 20.5) / (10.5 * 0.5))


def test_all_events_in_one_arm():
    r = compare_proportions(10, 10, 0, 20)
    assert r.zero_cell_correction
    assert r.p1 == 1.0 and r.p2 == 0.0
    assert r.odds_ratio == pytest.approx((10.5 * 20.5) / (0.5 * 0.5))
    assert r.rd_high <= 1.0 and r.rd_low > 0
    assert r.test == "fisher_exact"
    # Fisher: the only table this extreme, 1 / C(30, 10); two-sided adds nothing else.
    assert r.p_fisher == pytest.approx(1 / math.comb(30, 10), rel=1e-9)


def test_empty_groups_raise_with_a_clear_message():
    with pytest.raises(InsufficientDataError, match="group 1 has no patients"):
        compare_proportions(0, 0, 3, 10)
    with pytest.raises(InsufficientDataError, match="group 2 has no patients"):
        compare_proportions(3, 10, 0, 0)


def test_invalid_counts_raise_value_error():
    with pytest.raises(ValueError):
        compare_proportions(11, 10, 3, 10)
    with pytest.raises(ValueError):
        compare_proportions(2.5, 10, 3, 10)


def test_result_frame_has_one_row_with_all_fields():
    frame = compare_proportions(20, 50, 10, 50).to_frame()
    assert frame.shape[0] == 1
    for col in ("risk_difference", "rd_low", "rr_high", "or_low", "p_value", "test"):
        assert col in frame.columns


@settings(max_examples=150, deadline=None)
@given(n1=hs.integers(1, 300), n2=hs.integers(1, 300), data=hs.data())
def test_intervals_contain_their_point_estimates(n1, n2, data):
    x1 = data.draw(hs.integers(0, n1))
    x2 = data.draw(hs.integers(0, n2))
    r = compare_proportions(x1, n1, x2, n2)
    assert -1.0 <= r.rd_low <= r.risk_difference <= r.rd_high <= 1.0
    assert r.rr_low <= r.risk_ratio <= r.rr_high
    assert r.or_low <= r.odds_ratio <= r.or_high
    assert 0.0 <= r.p_fisher <= 1.0 + 1e-12


@settings(max_examples=100, deadline=None)
@given(n1=hs.integers(5, 200), n2=hs.integers(5, 200), data=hs.data())
def test_swapping_groups_mirrors_the_comparison(n1, n2, data):
    x1 = data.draw(hs.integers(0, n1))
    x2 = data.draw(hs.integers(0, n2))
    assume((x1, n1) != (x2, n2))
    r = compare_proportions(x1, n1, x2, n2)
    s = compare_proportions(x2, n2, x1, n1)
    assert r.rd_low == pytest.approx(-s.rd_high, abs=1e-12)
    assert r.risk_ratio == pytest.approx(1 / s.risk_ratio, rel=1e-12)
    assert r.p_fisher == pytest.approx(s.p_fisher, rel=1e-9)


# --- k proportions -------------------------------------------------------------------------


def test_k_proportions_smokers_reference_case(cases):
    case = cases["chisq_k_props_smokers"]
    exp, tol = case["expected"], case["tol"]
    r = compare_k_proportions(case["inputs"]["count"], case["inputs"]["nobs"])
    close(r.chi2, exp["chi2"], tol)
    assert r.df == exp["df"]
    close(r.p_value, exp["p"], tol)
    assert r.k == 4


def test_k_proportions_two_groups_equals_pearson_two_by_two():
    k = compare_k_proportions([30, 18], [120, 110])
    two = compare_proportions(30, 120, 18, 110)
    assert k.chi2 == pytest.approx(two.chi2, rel=1e-12)
    assert k.p_value == pytest.approx(two.p_chi2, rel=1e-12)


def test_k_proportions_insufficient_data():
    with pytest.raises(InsufficientDataError):
        compare_k_proportions([3, 0], [10, 0])
    with pytest.raises(InsufficientDataError, match="same outcome"):
        compare_k_proportions([0, 0, 0], [10, 12, 9])
