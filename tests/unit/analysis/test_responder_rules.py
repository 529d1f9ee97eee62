"""One responder rule everywhere, the composite with death, and completeness per unit
(issue 12, item 7.2). Expected values are hand counts of small frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.outcomes import ResponderDefinition, responder_rates
from analysis.quality import funnel_data, outcome_completeness, outcome_values

KP, VP = "kyphoplasty", "vertebroplasty"


def deaths_frame() -> pd.DataFrame:
    """Seven kyphoplasty records, each one case of the rule (see the comments)."""
    return pd.DataFrame({
        "procedure": [KP] * 7,
        #                 A    B    C     D     E     F     G
        "pain_baseline": [8.0, 8.0, 8.0, 8.0, 8.0, 8.0, None],
        "pain_month1": [2.0, 7.0, None, None, None, None, None],
        "died": pd.array([False, False, True, True, False, True, True], dtype="boolean"),
        "death_days": [None, None, 10.0, 40.0, None, None, 5.0],
    })
    # A responder; B non-responder; C died on day 10, before the month-1 visit (day 30);
    # D died on day 40, after it; E alive, no score; F died, day unknown; G no baseline.


def test_baseline_zero_is_a_non_response_in_quality_as_in_responder_rates():
    """It was a non-responder in responder_rates but left out (NaN) of the quality outcome."""
    records = pd.DataFrame({"facility_id": ["A"] * 4,
                            "pain_baseline": [0.0, 0.0, 8.0, 8.0],
                            "pain_month1": [0.0, 2.0, 2.0, 7.0]})
    assert outcome_values(records, "non_response").tolist() == [1.0, 1.0, 0.0, 1.0]
    rates = responder_rates(records, by=())
    assert (rates.n_followed[0], rates.responders[0]) == (4, 1)
    assert funnel_data(records.assign(facility_id=list("AABB")), outcome="non_response",
                       min_volume=1).units["n"].sum() == 4


def test_quality_non_response_is_the_complement_of_the_responder_rule():
    rng = np.random.default_rng(5)
    n = 2000
    base = rng.integers(0, 11, n).astype(float)
    month1 = np.round(np.clip(base - rng.normal(2.5, 2.5, n), 0, 10), 1)
    month1[rng.random(n) < 0.1] = np.nan
    base[rng.random(n) < 0.05] = np.nan
    records = pd.DataFrame({"pain_baseline": base, "pain_month1": month1})
    quality = outcome_values(records, "non_response").to_numpy()
    responder = ResponderDefinition().is_responder(records)
    expected = np.where(responder.isna(), np.nan, 1.0 - responder.astype("Float64").fillna(0))
    np.testing.assert_array_equal(quality, expected.astype(float))
    assert (base == 0).sum() > 100  # the rule is exercised


def test_complete_case_and_composite_counts_by_hand():
    records = deaths_frame()
    cc = responder_rates(records, by=()).iloc[0]
    assert (cc.n_eligible, cc.n_followed, cc.n_missing, cc.responders) == (6, 2, 4, 1)
    assert "n_died_before_visit" not in cc
    composite = ResponderDefinition(deaths="non_response")
    co = responder_rates(records, composite, by=()).iloc[0]
    # C joins the denominator as a non-responder; D (died after the visit), E and F stay
    # missing.
    assert (co.n_eligible, co.n_followed, co.n_missing, co.n_died_before_visit,
            co.responders) == (6, 3, 3, 1, 1)
    assert math.isclose(co.rate, 1 / 3)
    assert co.definition.endswith("(death before the visit = non-responder)")
    assert composite.is_responder(records).tolist() == [True, False, False, pd.NA, pd.NA,
                                                        pd.NA, pd.NA]
    assert list(responder_rates(records, composite, by=()).columns[:6]) == [
        "n_eligible", "n_followed", "n_missing", "n_died_before_visit", "responders", "rate"]


def test_composite_at_month_3_uses_its_visit_day():
    records = deaths_frame().rename(columns={"pain_month1": "pain_month3"})
    co = responder_rates(records, ResponderDefinition("month3", deaths="non_response"),
                         by=()).iloc[0]
    assert co.n_died_before_visit == 2  # C (day 10) and D (day 40) died before day 90


def test_composite_needs_the_death_columns_and_a_known_option():
    records = deaths_frame().drop(columns=["died"])
    with pytest.raises(KeyError, match="died"):
        responder_rates(records, ResponderDefinition(deaths="non_response"))
    with pytest.raises(ValueError, match="deaths"):
        ResponderDefinition(deaths="ignore")


def test_completeness_per_unit_by_hand():
    records = deaths_frame().assign(facility_id=["X", "X", "X", "Y", "Y", None, "Y"],
                                    cement_leakage=[True, None, False, None, None, True, False])
    pain = outcome_completeness(records, "facility_id", "non_response")
    # X: A, B, C have a baseline, A and B a month-1 score; Y: D, E have a baseline, none a
    # score (G has no baseline); F has no facility.
    assert pain["unit"].tolist() == ["X", "Y"]
    assert pain["n_eligible"].tolist() == [3, 2] and pain["n_recorded"].tolist() == [2, 0]
    np.testing.assert_allclose(pain["completeness"], [2 / 3, 0.0])
    leak = outcome_completeness(records, "facility_id", "cement_leakage")
    assert leak["n_eligible"].tolist() == [3, 3] and leak["n_recorded"].tolist() == [2, 1]
