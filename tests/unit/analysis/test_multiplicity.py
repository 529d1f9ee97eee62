"""Tests of analysis.multiplicity.adjust_pvalues.

Sources of the expected values (never the function under test):

* ``multiple_testing``: tests/fixtures/stats-reference-cases.json (hand-checkable, same as
  R ``p.adjust``).
* Benjamini & Hochberg (1995) and Holm (1979) step formulas worked by hand in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from analysis.multiplicity import adjust_pvalues

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stats-reference-cases.json"


@pytest.fixture(scope="module")
def case() -> dict:
    data = json.loads(FIXTURES.read_text())
    return next(c for c in data["cases"] if c["name"] == "multiple_testing")


@pytest.mark.parametrize("method", ["fdr_bh", "holm", "bonferroni"])
def test_reference_case(case, method):
    got = adjust_pvalues(case["inputs"]["p"], method=method)
    np.testing.assert_allclose(got, case["expected"][method], atol=case["tol"])


def test_default_is_benjamini_hochberg(case):
    np.testing.assert_allclose(
        adjust_pvalues(case["inputs"]["p"]), case["expected"]["fdr_bh"], atol=case["tol"]
    )


def test_nan_passes_through_and_is_excluded_from_the_family():
    # Family of 3: sorted 0.01, 0.02, 0.04 -> BH 0.03, 0.03, 0.04 (m * p / rank, cumulative
    # minimum from the top). With the NaN counted the family would be 4.
    got = adjust_pvalues([0.02, np.nan, 0.01, 0.04])
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2, 3]], [0.03, 0.03, 0.04], atol=1e-12)
    holm = adjust_pvalues([0.02, np.nan, 0.01, 0.04], method="holm")
    np.testing.assert_allclose(holm[[0, 2, 3]], [0.04, 0.03, 0.04], atol=1e-12)


def test_shape_is_kept_and_empty_input_works():
    got = adjust_pvalues(np.array([[0.01, 0.2], [0.03, np.nan]]))
    assert got.shape == (2, 2) and np.isnan(got[1, 1])
    assert adjust_pvalues([]).size == 0
    assert np.all(np.isnan(adjust_pvalues([np.nan, np.nan])))


def test_invalid_input_raises():
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues([0.1], method="bh")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([0.1, 1.2])


@settings(max_examples=40, deadline=None)  # multipletests("holm") runs gc.collect(): ~50 ms
@given(hs.lists(hs.floats(0, 1), min_size=1, max_size=40))
def test_adjusted_values_dominate_raw_and_keep_the_order(p):
    p = np.asarray(p)
    for method in ("fdr_bh", "holm"):
        adj = adjust_pvalues(p, method=method)
        assert np.all(adj >= p - 1e-12)
        assert np.all(adj <= 1.0)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-12)
