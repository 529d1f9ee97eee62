"""analysis.key_figures against the estimators it gathers, applied per procedure by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.costs import CostOptions, converted_costs
from analysis.descriptive import median_ci
from analysis.key_figures import KEY_OUTCOMES, MEASURES, key_figures
from analysis.outcomes import outcome_summary
from data.demo import demo_records


@pytest.fixture(scope="module")
def records():
    return demo_records(1500, seed=21)


def test_every_measure_per_procedure_equals_its_estimator_on_that_procedure(records):
    figures = key_figures(records)
    table = figures.table
    assert table["measure"].tolist() == list(MEASURES) * 2
    for procedure in ("vertebroplasty", "kyphoplasty"):
        mine = records[records["procedure"] == procedure]
        assert figures.sizes[procedure] == len(mine)
        assert int(figures.row(procedure, "procedures")["n"]) == len(mine)
        alone = outcome_summary(mine, by=(), outcomes=KEY_OUTCOMES).set_index("outcome")
        for outcome in KEY_OUTCOMES:
            row, expected = figures.row(procedure, outcome), alone.loc[outcome]
            for field in ("estimate", "low", "high", "n", "events"):
                assert row[field] == pytest.approx(expected[field], rel=1e-12, nan_ok=True)
        fracture = figures.row(procedure, "adjacent_fracture_12m")
        assert fracture["at_risk"] == alone.loc["adjacent_fracture_12m", "at_risk"]
        durations = mine["duration_min"].dropna().to_numpy(dtype=float)
        assert figures.row(procedure, "median_duration_min")[
            ["estimate", "low", "high", "n"]].tolist() == [*median_ci(durations), len(durations)]
        costs = converted_costs(mine, CostOptions(reporting_currency="USD"))
        costs = costs[~np.isnan(costs)]
        assert figures.row(procedure, "median_cost_usd")[
            ["estimate", "low", "high", "n"]].tolist() == [*median_ci(costs), len(costs)]


def test_a_procedure_without_records_has_counts_of_zero_and_no_estimates(records):
    figures = key_figures(records[records["procedure"] == "kyphoplasty"])
    assert figures.sizes["vertebroplasty"] == 0
    median = figures.row("vertebroplasty", "median_duration_min")
    assert median["n"] == 0 and math.isnan(median["estimate"])
