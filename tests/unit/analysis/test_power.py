"""Tests of analysis.power: sample sizes and minimum detectable differences.

Sources of the expected values (never the functions under test):

* ``power_sample_size``: tests/fixtures/stats-reference-cases.json, i.e. R ``?power.t.test``
  (power.t.test(n = 20, delta = 1): power = 0.8689528; power.t.test(power = .90,
  delta = 1): n = 22.02110) and R ``?power.prop.test`` (p1 = .50, p2 = .75, power = .90:
  n = 76.7; n = 50: power = 0.740), plus leakage 30% vs 20% at 80%: n = 293.15.
* The normal-approximation power formula of R ``power.prop.test`` written out in the test,
  and scipy's noncentral t for the t-test power.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import scipy.stats as st

from analysis.errors import InsufficientDataError
from analysis.power import (
    minimum_detectable_difference,
    minimum_detectable_mean_difference,
    sample_size_means,
    sample_size_proportions,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stats-reference-cases.json"


@pytest.fixture(scope="module")
def case() -> dict:
    data = json.loads(FIXTURES.read_text())
    return next(c for c in data["cases"] if c["name"] == "power_sample_size")


def r_power_prop_test(n: float, p1: float, p2: float, alpha: float = 0.05) -> float:
    """R power.prop.test (strict = FALSE), written out from its source formula."""
    q1, q2 = 1 - p1, 1 - p2
    z = st.norm.isf(alpha / 2)
    num = math.sqrt(n) * abs(p1 - p2) - z * math.sqrt((p1 + p2) * (q1 + q2) / 2)
    return st.norm.cdf(num / math.sqrt(p1 * q1 + p2 * q2))


def t_power(n: float, d: float, alpha: float = 0.05) -> float:
    """Two-sided two-sample t power from the noncentral t distribution (equal groups)."""
    df = 2 * n - 2
    nc = d * math.sqrt(n / 2)
    crit = st.t.isf(alpha / 2, df)
    return st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc)


def test_sample_size_proportions_reference_case(case):
    exp = case["expected"]
    leak = case["inputs"]["leak"]
    n = sample_size_proportions(leak["p1"], leak["p2"], power=leak["power"])
    assert n == math.ceil(exp["leak_n_pooled"]) == 294  # 293.15 rounds up, not to 293
    prop = case["inputs"]["prop"]
    n = sample_size_proportions(prop["p1"], prop["p2"], power=prop["power"], alpha=prop["alpha"])
    assert n == math.ceil(exp["prop_n_pooled"]) == 77


def test_sample_size_is_the_smallest_with_enough_power():
    n = sample_size_proportions(0.30, 0.20, power=0.8)
    assert r_power_prop_test(n, 0.30, 0.20) >= 0.8
    assert r_power_prop_test(n - 1, 0.30, 0.20) < 0.8


def test_sample_size_proportions_is_symmetric_and_handles_ratio():
    assert sample_size_proportions(0.20, 0.30) == sample_size_proportions(0.30, 0.20)
    # With twice as many in group 2, group 1 needs fewer patients but more in total.
    n1 = sample_size_proportions(0.30, 0.20, ratio=2)
    assert n1 < 294 < n1 * 3


def test_minimum_detectable_difference_reference_case(case):
    exp = case["expected"]
    n = case["inputs"]["prop_power_n"]
    # R: power.prop.test(n = 50, p1 = .50, p2 = .75) gives power 0.740 (0.7402 to 4 dp).
    d = minimum_detectable_difference(n, n, 0.5, power=exp["prop_power_n50"])
    assert d == pytest.approx(0.25, abs=1e-3)


def test_minimum_detectable_difference_reaches_target_power():
    d = minimum_detectable_difference(120, 120, 0.2, power=0.8)
    assert r_power_prop_test(120, 0.2 + d, 0.2) == pytest.approx(0.8, abs=1e-6)


def test_minimum_detectable_difference_not_reachable_gives_nan():
    assert math.isnan(minimum_detectable_difference(2, 2, 0.5, power=0.95))


def test_minimum_detectable_mean_difference_reference_case(case):
    exp = case["expected"]
    # Inverse of R's power.t.test(n = 20, delta = 1) = 0.8689528 (fixture: 0.869).
    d = minimum_detectable_mean_difference(20, 20, sd=1.0, power=0.8689528)
    assert abs(t_power(20, 1.0) - exp["t_power_n20"]) <= 5e-4
    assert d == pytest.approx(1.0, abs=1e-5)
    assert minimum_detectable_mean_difference(20, 20, sd=2.5, power=0.8689528) == pytest.approx(
        2.5, abs=1e-4
    )


def test_sample_size_means_reference_case(case):
    exp = case["expected"]
    assert sample_size_means(1.0, 1.0, power=0.9) == math.ceil(exp["t_n_power90"]) == 23
    assert sample_size_means(-1.0, 1.0, power=0.9) == 23
    n = sample_size_means(5.0, 12.0, power=0.8)
    assert t_power(n, 5 / 12) >= 0.8 > t_power(n - 1, 5 / 12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sample_size_proportions(0.3, 0.3),
        lambda: sample_size_proportions(0.0, 0.3),
        lambda: sample_size_proportions(0.3, 0.2, power=0.01),
        lambda: sample_size_means(0.0, 1.0),
        lambda: sample_size_means(1.0, -1.0),
        lambda: minimum_detectable_difference(50, 50, 1.0),
        lambda: minimum_detectable_mean_difference(20, 20, sd=0.0),
    ],
)
def test_invalid_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_groups_too_small_raise():
    with pytest.raises(InsufficientDataError, match="group 1"):
        minimum_detectable_mean_difference(1, 20, sd=1.0)
    with pytest.raises(InsufficientDataError, match="group 2"):
        minimum_detectable_difference(20, 0, 0.3)
