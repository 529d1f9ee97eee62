"""current_signals: each listed signal is the Quality functions' own flag of that unit."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from analysis.quality import (
    apply_risk_model,
    cusum,
    funnel_data,
    horizon_outcome,
    oe_ratio,
    risk_model,
)
from analysis.signals import SignalOptions, current_signals, signal_key
from data.demo import demo_records

OUTCOMES = ("cement_leakage", "non_response")
SINCE = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    return demo_records(2500, seed=2)


@pytest.fixture(scope="module")
def result(records):
    return current_signals(records, SignalOptions(since=SINCE, outcomes=OUTCOMES,
                                                  units=("facility_id",)))


def _reference_funnel(records, outcome):
    fit = apply_risk_model(risk_model(records, outcome), records)
    return funnel_data(records, "facility_id", outcome, adjust=True, overdispersion="additive",
                       min_volume=10, model=fit)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_funnel_signals_are_exactly_the_funnel_flags(records, result, outcome):
    units = _reference_funnel(records, outcome).units
    flagged = units[units["flag"].str.startswith(("alarm", "alert"))].set_index("unit")
    frame = result.to_frame()
    listed = frame[(frame["outcome"] == outcome) & (frame["kind"] != "cusum")].set_index("unit_id")
    assert set(listed.index) == set(flagged.index)
    assert len(listed) > 0  # the cohort has flagged facilities: the test can fail
    for unit_id, row in listed.iterrows():
        reference = flagged.loc[unit_id]
        kind, direction = reference["flag"].split("_")
        assert (row["kind"], row["direction"]) == (kind, direction)
        assert (row["n"], row["observed"]) == (reference["n"], reference["events"])
        assert row["expected"] == pytest.approx(reference["expected"])
        ratio = oe_ratio(int(reference["events"]), float(reference["expected"]))
        assert (row["oe"], row["oe_low"], row["oe_high"]) == pytest.approx(
            (ratio.ratio, ratio.low, ratio.high))
        assert row["false_alarm"] == pytest.approx(0.002 if kind == "alarm" else 0.05)
        assert row["key"] == signal_key(kind, outcome, "facility_id", unit_id, direction)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_cusum_signals_are_the_cusum_crossings_since_the_date(records, result, outcome):
    frame = result.to_frame()
    listed = frame[(frame["outcome"] == outcome) & (frame["kind"] == "cusum")]
    fit = apply_risk_model(risk_model(records, horizon_outcome(outcome)), records)
    expected_rows = {}
    funnel = _reference_funnel(records, outcome).units
    for unit_id in funnel.loc[funnel["n"] >= 10, "unit"]:
        chart = cusum(records, "facility_id", unit_id, outcome, model=fit, odds_ratio=2.0)
        hits = chart.signals[pd.to_datetime(chart.signals["procedure_date"])
                             >= pd.Timestamp(SINCE)]
        for direction, group in hits.groupby("direction"):
            side = "high" if direction == "upper" else "low"
            expected_rows[(unit_id, side)] = (
                len(group), pd.to_datetime(group["procedure_date"]).max(),
                chart.false_alarm_upper if side == "high" else chart.false_alarm_lower)
    got = {(r.unit_id, r.direction): (r.signals, r.signal_date, r.false_alarm)
           for r in listed.itertuples()}
    assert got.keys() == expected_rows.keys()
    assert got  # at least one CUSUM signal since 2024 in this cohort
    for key, (count, date, chance) in expected_rows.items():
        assert got[key][0] == count and got[key][1] == date
        assert got[key][2] == pytest.approx(chance)
        assert 0.0 < chance <= 0.025 + 1e-9  # half of the 5% of the pair of charts


def test_since_keeps_later_crossings_only(records, result):
    everything = current_signals(records, SignalOptions(outcomes=OUTCOMES,
                                                        units=("facility_id",))).to_frame()
    later = result.to_frame()
    cusum_all, cusum_later = (f[f["kind"] == "cusum"] for f in (everything, later))
    assert len(cusum_all) > len(cusum_later)
    assert (pd.to_datetime(cusum_later["signal_date"]) >= pd.Timestamp(SINCE)).all()
    # Funnel flags are current (all records), whatever the date.
    assert set(everything.loc[everything["kind"] != "cusum", "key"]) == set(
        later.loc[later["kind"] != "cusum", "key"])


def test_since_date_equals_computing_with_that_date(records, result):
    everything = current_signals(records, SignalOptions(outcomes=OUTCOMES,
                                                        units=("facility_id",)))
    pd.testing.assert_frame_equal(everything.since_date(SINCE).to_frame(), result.to_frame())
    later = dt.date(2025, 6, 1)
    direct = current_signals(records, SignalOptions(since=later, outcomes=OUTCOMES,
                                                    units=("facility_id",))).to_frame()
    pd.testing.assert_frame_equal(result.since_date(later).to_frame(), direct)


def test_sorted_worse_first_then_by_severity(result):
    frame = result.to_frame()
    worse = (frame["direction"] == "high").to_numpy()
    assert worse.any() and not worse[np.argmin(worse):].any()  # all "high" rows come first
    high = frame[worse]
    assert high["severity"].is_monotonic_increasing
    top = high[high["kind"] == "alarm"]
    assert top["z"].abs().is_monotonic_decreasing


def test_excluded_units_are_left_out_of_the_comparison(records):
    options = SignalOptions(outcomes=("cement_leakage",), units=("facility_id",),
                            exclude=lambda frame, unit, outcome: ("FAC-009",))
    frame = current_signals(records, options).to_frame()
    assert "FAC-009" not in set(frame["unit_id"])
    # and FAC-009 is signalled without the exclusion (so the check above can fail)
    full = current_signals(records, SignalOptions(outcomes=("cement_leakage",),
                                                  units=("facility_id",))).to_frame()
    assert "FAC-009" in set(full["unit_id"])


def test_bad_input_gets_a_clear_message(records):
    with pytest.raises(ValueError, match="unknown outcome"):
        current_signals(records, SignalOptions(outcomes=("death",)))
    with pytest.raises(TypeError, match="since"):
        current_signals(records, SignalOptions(since="2024-01-01"))
    with pytest.raises(KeyError, match="site_id"):
        current_signals(records, SignalOptions(units=("site_id",)))


def test_demo_data_planted_facilities_on_top_and_new_fracture_within_chance():
    """The demo design plants high leakage at FAC-009 and FAC-019 and nothing for new
    fracture: the two are the first signals, and the fracture signals are no more than chance
    predicts (the 99th percentile of the binomial count of false flags)."""
    frame = current_signals(demo_records(), SignalOptions(
        outcomes=("cement_leakage", "adjacent_fracture"))).to_frame()
    top = frame.head(2)
    assert set(top["unit_id"]) == {"FAC-009", "FAC-019"}
    assert (top["kind"] == "alarm").all() and (top["outcome"] == "cement_leakage").all()
    fracture = frame[frame["outcome"] == "adjacent_fracture"]
    tested = {"facility_id": 40, "operator_id": 120}
    for unit, count in tested.items():
        rows = fracture[fracture["unit"] == unit]
        funnel_flags = int((rows["kind"] != "cusum").sum())
        # Each tested unit is beyond its 95% limits with probability 5% when on target.
        assert funnel_flags <= st.binom.ppf(0.99, count, 0.05), (unit, funnel_flags)
        assert int((rows["kind"] == "alarm").sum()) <= st.binom.ppf(0.99, count, 0.002)
        # Each chart pair signals falsely with probability at most 5% over the series.
        assert rows.loc[rows["kind"] == "cusum", "unit_id"].nunique() <= st.binom.ppf(
            0.99, count, 0.05)
