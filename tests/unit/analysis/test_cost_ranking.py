"""Ranked cost per responder with Fieller intervals (issue 14, item 3), checked against R
(tests/results/cost_per_responder_fieller.R: the same definition by test inversion)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.costs import CostOptions, cost_per_responder, ranked_cost_per_responder

RESULTS = Path(__file__).resolve().parents[2] / "results"


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    data = pd.read_csv(RESULTS / "cost_per_responder_fieller_data.csv")
    return data.assign(region=data["unit"], currency="USD", country="US",
                       procedure="vertebroplasty",
                       procedure_date=pd.Timestamp("2023-03-01"))


@pytest.fixture(scope="module")
def ranking(cohort):
    return ranked_cost_per_responder(
        cohort, by="region", responders=cohort["responder"].astype(bool),
        options=CostOptions(price_year="nominal"))


def test_estimates_and_fieller_limits_equal_r(ranking):
    reference = {row["unit"]: row for row in json.loads(
        (RESULTS / "cost_per_responder_fieller.json").read_text())}
    table = ranking.table.set_index("region")
    assert set(table.index) == set(reference)
    for unit, expected in reference.items():
        row = table.loc[unit]
        assert int(row.n) == expected["n"] and int(row.responders) == expected["responders"]
        for column in ("cost_per_responder", "low", "high"):
            if expected[column] is None:
                assert np.isnan(row[column]), (unit, column)
            else:
                assert row[column] == pytest.approx(expected[column], rel=1e-7), (unit, column)


def test_ranked_lowest_first_with_units_without_an_estimate_last(ranking):
    table = ranking.table
    estimated = table["cost_per_responder"].notna()
    assert estimated.iloc[:estimated.sum()].all()
    assert table.loc[estimated, "cost_per_responder"].is_monotonic_increasing
    assert table.loc[estimated, "rank"].tolist() == list(range(1, estimated.sum() + 1))
    statuses = dict(zip(table["region"], table["status"], strict=True))
    assert statuses["E"] == "no responders" and table.set_index("region").loc["E", "rank"] != 1
    assert "Fieller" in ranking.method and ranking.currency == "USD"
    assert ranking.to_frame().equals(table)


def test_estimate_agrees_with_cost_per_responder(cohort, ranking):
    plain = cost_per_responder(cohort, by="region", responders=cohort["responder"].astype(bool),
                               options=CostOptions(price_year="nominal")).set_index("region")
    ranked = ranking.table.set_index("region")
    pd.testing.assert_series_equal(ranked["cost_per_responder"],
                                   plain.loc[ranked.index, "cost_per_responder"],
                                   check_names=False)


def test_bad_level_is_refused(cohort):
    with pytest.raises(ValueError, match="level"):
        ranked_cost_per_responder(cohort, responders=cohort["responder"].astype(bool), level=1.5)
