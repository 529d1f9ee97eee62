"""Tests of analysis.horizon: cumulative incidence at a horizon (issue 12, item 1).

Sources of the expected values (never the functions under test):

* ``tests/results/horizon_cif.json``, written once by ``tests/results/horizon_cif.R`` (R
  4.2.2, survival 3.5.3) from the cohort ``tests/results/horizon_cohort.csv``: Aalen–Johansen
  estimates and numbers at risk from ``survfit`` with a factor status and ``summary(times =
  )``; the delta-method SE by an R loop over the event times (equal to survfit's own SE on
  these data); 1 − KM of death with the Greenwood SE of ``survfit(conf.type = "log-log")``;
  the KP − VP difference and ratio from those SEs; IPTW-weighted AJ estimates from
  ``survfit(weights = )`` with weights from ``glm``.
* Hand calculations written in the tests (the last-contact rule on four patients).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.horizon import (
    compare_cumulative_incidence,
    cumulative_incidence_at,
    horizon_time_event,
    iptw_cumulative_incidence,
)

RESULTS = Path(__file__).resolve().parents[2] / "results"
COHORT = pd.read_csv(RESULTS / "horizon_cohort.csv")
REFERENCE = json.loads((RESULTS / "horizon_cif.json").read_text())


def _reference_rows():
    return [pytest.param(row, id=f"{row['procedure']}-{row['horizon']}")
            for row in REFERENCE["rows"]]


@pytest.mark.parametrize("row", _reference_rows())
def test_aalen_johansen_at_horizon_matches_r_survfit(row):
    part = COHORT[COHORT.procedure == row["procedure"]]
    got = cumulative_incidence_at(part.time, part.code, row["horizon"]).iloc[0]
    assert got.n == row["n"]
    assert got.cumulative_incidence == pytest.approx(row["aj_fracture"], abs=1e-12)
    assert got.se == pytest.approx(row["aj_fracture_se_delta"], rel=1e-9)
    assert got.se == pytest.approx(row["aj_fracture_se_survfit_ij"], rel=1e-9)
    assert got.low == pytest.approx(row["aj_fracture_low"], rel=1e-9)
    assert got.high == pytest.approx(row["aj_fracture_high"], rel=1e-9)
    assert got.at_risk == row["aj_n_risk"]


@pytest.mark.parametrize("row", _reference_rows())
def test_one_minus_kaplan_meier_at_horizon_matches_r_survfit(row):
    part = COHORT[COHORT.procedure == row["procedure"]]
    death = (part.code == 2).astype(int)  # death the only event: 1 - KM
    got = cumulative_incidence_at(part.time, death, row["horizon"]).iloc[0]
    assert got.cumulative_incidence == pytest.approx(row["km_death"], abs=1e-12)
    assert got.se == pytest.approx(row["km_death_se_greenwood"], rel=1e-9)
    assert got.low == pytest.approx(row["km_death_low"], rel=1e-9)
    assert got.high == pytest.approx(row["km_death_high"], rel=1e-9)
    assert got.at_risk == row["km_n_risk"]


def test_grouped_estimates_equal_one_group_at_a_time():
    together = cumulative_incidence_at(COHORT.time, COHORT.code, 365, group=COHORT.procedure)
    assert together.group.tolist() == ["kyphoplasty", "vertebroplasty"]
    for row in REFERENCE["rows"]:
        if row["horizon"] != 365:
            continue
        got = together[together.group == row["procedure"]].iloc[0]
        assert got.cumulative_incidence == pytest.approx(row["aj_fracture"], abs=1e-12)
        assert got.at_risk == row["aj_n_risk"]


def test_non_integer_times_take_the_sorting_path():
    # Times shifted by a constant fraction: the same ordering and ties, so the same values.
    part = COHORT[COHORT.procedure == "vertebroplasty"]
    row = next(r for r in REFERENCE["rows"]
               if r["procedure"] == "vertebroplasty" and r["horizon"] == 180)
    got = cumulative_incidence_at(part.time + 0.25, part.code, 180.25).iloc[0]
    assert got.cumulative_incidence == pytest.approx(row["aj_fracture"], abs=1e-12)
    assert got.se == pytest.approx(row["aj_fracture_se_delta"], rel=1e-9)


@pytest.mark.parametrize("reference", REFERENCE["comparisons"],
                         ids=lambda r: str(r["horizon"]))
def test_kp_minus_vp_difference_and_ratio_match_r(reference):
    est = {row["procedure"]: (row["aj_fracture"], row["aj_fracture_se_delta"])
           for row in REFERENCE["rows"] if row["horizon"] == reference["horizon"]}
    got = compare_cumulative_incidence(*est["kyphoplasty"], *est["vertebroplasty"])
    for name, value in (("difference", "difference"), ("diff_se", "se"), ("diff_low", "low"),
                        ("diff_high", "high"), ("p_value", "p_value"), ("ratio", "ratio"),
                        ("ratio_low", "ratio_low"), ("ratio_high", "ratio_high")):
        assert getattr(got, name) == pytest.approx(reference[value], rel=1e-9), name


def test_iptw_weighted_cumulative_incidence_matches_r_survfit_weights():
    kp = (COHORT.procedure == "kyphoplasty").to_numpy(dtype=float)
    x = np.column_stack([np.ones(len(COHORT)), COHORT.age.to_numpy(dtype=float)])
    got = iptw_cumulative_incidence(COHORT.time.to_numpy(dtype=float),
                                    COHORT.code.to_numpy(dtype=float), kp, x, 365, n_boot=50)
    assert got.estimate_kp == pytest.approx(REFERENCE["iptw"]["kyphoplasty"], rel=1e-6)
    assert got.estimate_vp == pytest.approx(REFERENCE["iptw"]["vertebroplasty"], rel=1e-6)
    assert got.n_boot == 50
    # The bootstrap SE is of the order of the unadjusted delta-method SE of the difference.
    unadjusted = next(c for c in REFERENCE["comparisons"] if c["horizon"] == 365)
    assert 0.5 < got.se / unadjusted["se"] < 2.0
    assert got.low < got.difference < got.high


def test_death_after_last_contact_is_censored_at_last_contact_for_fracture():
    rows = pd.DataFrame({
        "adjacent_fracture": [True, False, False, False, False],
        "adjacent_fracture_days": [100, None, None, None, None],
        "followup_days": [400, 200, 300, 90, 50],
        "died": [False, True, True, False, True],
        "death_days": [None, 200, 500, None, None]})
    time, code = horizon_time_event(rows, "adjacent_fracture_12m")
    # Death at the last contact: competing at its day; death after the last contact (day 500,
    # last contact 300) and a death without its day: censored at the last contact.
    assert time.tolist() == [100, 200, 300, 90, 50]
    assert code.tolist() == [1, 2, 0, 0, 0]
    time, code = horizon_time_event(rows, "death_30d")
    assert time[:4].tolist() == [400, 200, 500, 90] and math.isnan(time[4])
    assert code[:4].tolist() == [0, 1, 1, 0]


def test_bad_input_gets_a_clear_message():
    with pytest.raises(ValueError, match="same length"):
        cumulative_incidence_at([1, 2], [0], 10)
    with pytest.raises(ValueError, match="horizon"):
        cumulative_incidence_at([1, 2], [0, 1], -1)
    with pytest.raises(ValueError, match="unknown horizon outcome"):
        horizon_time_event(pd.DataFrame(), "cement_leakage")


@pytest.mark.parametrize("flag", ["adjacent_fracture", "died"])
def test_trend_by_period_refuses_time_to_event_flags(flag):
    """A per-period share of the fracture (or death) flag ignores censoring, the defect of
    issue 12 item 1: the trend function refuses it and names the estimator to use."""
    from analysis.descriptive import trend_by_period

    records = pd.DataFrame({"procedure_date": pd.to_datetime(["2024-01-05", "2024-04-05"]),
                            "procedure": ["vertebroplasty", "kyphoplasty"],
                            flag: [True, False]})
    with pytest.raises(ValueError, match="cumulative incidence"):
        trend_by_period(records, (flag,))
