"""Pure figure and table builders of the Pain relief page: numbers, suppression, empty input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.outcomes import (
    ResponderDefinition,
    odi_change,
    opioid_use,
    pain_trajectory,
    responder_rates,
)
from analysis.proportions import compare_proportions
from dashboard.figures import pain as fig
from data.demo import demo_records

VISITS = ("pain_day1", "pain_week1", "pain_month1", "pain_month3", "pain_month6", "pain_month12")


def cohort(procedure: str, baseline, month1, **extra) -> pd.DataFrame:
    n = len(baseline)
    frame = pd.DataFrame({"procedure": pd.Categorical([procedure] * n, categories=fig.PROCEDURES),
                          "pain_baseline": pd.array(baseline, dtype="Float64")})
    for column in VISITS:
        frame[column] = pd.array([None] * n, dtype="Float64")
    frame["pain_month1"] = pd.array(month1, dtype="Float64")
    for column, values in extra.items():
        frame[column] = values
    return frame


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return demo_records(1500, seed=3)


def figure_text(figure) -> str:
    """Everything a reader (or the PNG/HTML export) can see: data, hover data, labels."""
    return json.dumps(figure.to_plotly_json(), default=str)


# --- responder definition --------------------------------------------------------------------


def test_definition_from_controls_defaults_and_fallbacks():
    assert fig.definition_from_controls(None, None) == ResponderDefinition()
    assert fig.definition_from_controls("month3", "absolute", 30.0, 3.0) == \
        ResponderDefinition("month3", "absolute", 3.0)
    # An unknown visit, kind or threshold falls back to the defaults, never an error.
    assert fig.definition_from_controls("year5", "relative", 42, None) == ResponderDefinition()
    assert fig.definition_from_controls("week1", "absolute", None, "x") == \
        ResponderDefinition("week1", "absolute", 2.0)
    # Every offered threshold is a valid definition.
    for kind, choices in fig.THRESHOLDS.items():
        for value in choices:
            assert fig.definition_from_controls("month1", kind, value, value).threshold == value


# --- responders --------------------------------------------------------------------------------


def test_responder_builders_match_analysis(demo):
    rates = responder_rates(demo, ResponderDefinition())
    table = fig.responder_table(rates)
    vp = rates[rates.procedure.astype(str) == "vertebroplasty"].iloc[0]
    kp = rates[rates.procedure.astype(str) == "kyphoplasty"].iloc[0]
    row = table[table.procedure == "Vertebroplasty (VP)"].iloc[0]
    assert row.n_followed == f"{vp.n_followed:,}" and row.n_missing == f"{vp.n_missing:,}"
    assert row.rate_pct == round(100 * vp.rate, 1)
    assert fig.rate_text(vp)[0] == f"{100 * vp.rate:.1f}%"
    comparison, reason = fig.compare_kp_vp(rates)
    expected = compare_proportions(int(kp.responders), int(kp.n_followed), int(vp.responders),
                                   int(vp.n_followed))
    assert reason == "" and comparison.risk_difference == pytest.approx(expected.risk_difference)
    assert fig.difference_text(comparison, reason)[0] == \
        f"{100 * expected.risk_difference:+.1f} pp"
    figure = fig.responder_figure(rates)
    assert [trace.y[0] for trace in figure.data] == pytest.approx([100 * vp.rate, 100 * kp.rate])
    wide = fig.responder_table_wide(rates)
    assert list(wide.columns) == ["measure", "Vertebroplasty (VP)", "Kyphoplasty (KP)"]


def test_missing_follow_up_is_not_a_non_responder():
    records = cohort("vertebroplasty", [8.0] * 30, [2.0] * 15 + [None] * 15)
    rates = responder_rates(records, ResponderDefinition())
    value, detail = fig.rate_text(rates.iloc[0])
    assert value == "100.0%" and "15 missing follow-up" in detail


def test_small_responder_groups_are_suppressed():
    records = pd.concat([cohort("vertebroplasty", [8.0] * 40, [2.0] * 7 + [8.0] * 33),
                         cohort("kyphoplasty", [8.0] * 6, [2.0] * 6)], ignore_index=True)
    rates = responder_rates(records, ResponderDefinition())
    table = fig.responder_table(rates)
    assert table.responders.tolist() == ["<11", "<11"]
    assert table.rate_pct.isna().all() and table.ci_95.isna().all()
    assert table.n_followed.tolist() == ["40", "<11"]
    figure = fig.responder_figure(rates)
    text = figure_text(figure)
    assert all(trace.y[0] is None for trace in figure.data)
    assert "17.5" not in text and "100.0%" not in text and "<11" in text
    assert "Rates not shown: fewer than 11 patients" in text
    comparison, reason = fig.compare_kp_vp(rates)
    assert comparison is None and reason.startswith("suppressed")
    assert fig.rate_text(rates.iloc[1])[0] == "<11"
    assert "17.5" not in fig.responder_summary(rates, comparison, reason)


def test_difference_needs_both_procedures():
    rates = responder_rates(cohort("kyphoplasty", [8.0] * 30, [2.0] * 30), ResponderDefinition())
    comparison, reason = fig.compare_kp_vp(rates)
    assert comparison is None and "both procedures" in reason


# --- trajectory ---------------------------------------------------------------------------------


def test_trajectory_figure_and_table(demo):
    trajectory = pain_trajectory(demo)
    figure = fig.trajectory_figure(trajectory)
    vp = trajectory[trajectory.procedure.astype(str) == "vertebroplasty"]
    assert list(figure.data[0].y) == pytest.approx(list(vp["mean"]))
    # The number still followed is printed under each visit.
    month12 = int(vp[vp.visit == "month12"].n.iloc[0])
    assert f"VP {month12:,}" in figure.layout.xaxis.ticktext[-1]
    table = fig.trajectory_table(trajectory)
    assert table["VP n"].iloc[-1] == f"{month12:,}"
    assert len(table) == 7


def test_trajectory_suppresses_small_visits():
    records = cohort("vertebroplasty", [8.0] * 30, [3.0] * 5 + [None] * 25)
    trajectory = pain_trajectory(records)
    figure = fig.trajectory_figure(trajectory)
    month1 = fig._visit_position("month1")
    y = dict(zip(np.round(figure.data[0].x).astype(int), figure.data[0].y, strict=True))
    assert y[month1] is None and y[0] == pytest.approx(8.0)
    assert "VP <11" in figure.layout.xaxis.ticktext[month1]
    table = fig.trajectory_table(trajectory)
    row = table[table.visit == "Month 1"].iloc[0]
    assert row["VP n"] == "<11" and pd.isna(row["VP mean"])
    assert "3.0" not in fig.trajectory_summary(trajectory).split("month 1")[1].split(",")[0]


# --- histogram --------------------------------------------------------------------------------


def test_change_histogram_bins_absolute_and_relative():
    # Reductions 2 (7.3 -> 5.3, inexact in binary), 3, 3, 10, -1 and one missing follow-up.
    records = cohort("kyphoplasty", [7.3, 8.0, 9.0, 10.0, 4.0, 8.0],
                     [5.3, 5.0, 6.0, 0.0, 5.0, None])
    absolute = fig.change_histogram(records, ResponderDefinition("month1", "absolute", 3.0))
    counts = dict(zip(absolute.bin_low, absolute["count"], strict=True))
    assert counts[2.0] == 1 and counts[3.0] == 2 and counts[9.0] == 1 and counts[-1.0] == 1
    assert absolute["count"].sum() == 5 and (absolute.n == 5).all()
    relative = fig.change_histogram(records, ResponderDefinition())
    counts = dict(zip(relative.bin_low, relative["count"], strict=True))
    # 27.4%, 37.5%, 33.3%, 100%, -25%
    assert counts[20.0] == 1 and counts[30.0] == 2 and counts[90.0] == 1 and counts[-30.0] == 1
    # Baseline 0 has no percentage and is left out; a big increase goes to the first bin.
    zero = cohort("kyphoplasty", [0.0, 2.0], [1.0, 9.0])
    relative = fig.change_histogram(zero, ResponderDefinition())
    assert relative["count"].sum() == 1 and relative["count"].iloc[0] == 1
    assert relative.label.iloc[0] == "< -90%"


def test_histogram_agrees_with_responder_rate(demo):
    definition = ResponderDefinition("month3", "absolute", 3.0)
    histogram = fig.change_histogram(demo, definition)
    rates = responder_rates(demo, definition)
    for procedure in fig.PROCEDURES:
        part = histogram[histogram.procedure == procedure]
        row = rates[rates.procedure.astype(str) == procedure].iloc[0]
        assert part.n.iloc[0] == row.n_followed
        assert part[part.bin_low >= 3]["count"].sum() == row.responders


def test_histogram_suppresses_small_bins_and_their_complement():
    # 40 patients: 34 with reduction 5, 6 with reduction 1 (a small bin).
    records = cohort("vertebroplasty", [8.0] * 40, [3.0] * 34 + [7.0] * 6)
    definition = ResponderDefinition("month1", "absolute", 2.0)
    histogram = fig.change_histogram(records, definition)
    primary, secondary = fig.hidden_bins(histogram)
    assert histogram[primary].bin_low.tolist() == [1.0]
    # n (40) is shown elsewhere, so the only other non-empty bin is hidden too.
    assert histogram[secondary].bin_low.tolist() == [5.0]
    figure = fig.histogram_figure(histogram, definition)
    bars = figure.data[0]
    assert all(value is None or value == 0 for value in bars.y)
    text = figure_text(figure)
    assert '"6"' not in text and "15.0" not in text and "85.0" not in text and "<11" in text
    table = fig.histogram_table(histogram)
    assert "6" not in table.astype(str).to_numpy().ravel().tolist()
    assert {"<11", "hidden"} <= set(table.iloc[0].astype(str))
    by_bin = fig.histogram_table(histogram, by_bin=True)
    assert len(by_bin) == 20 and "34" not in by_bin.astype(str).to_numpy().ravel().tolist()


def test_complementary_suppression_hides_the_nearest_bin_not_the_threshold_bin():
    # Reductions: -2 (5 patients, small), 0 (30 patients), 5 (12 patients).
    records = cohort("kyphoplasty", [5.0] * 47, [7.0] * 5 + [5.0] * 30 + [0.0] * 12)
    histogram = fig.change_histogram(records, ResponderDefinition("month1", "absolute", 3.0))
    primary, secondary = fig.hidden_bins(histogram)
    assert histogram[primary].bin_low.tolist() == [-2.0]
    assert histogram[secondary].bin_low.tolist() == [0.0]


def test_histogram_shows_large_bins(demo):
    definition = ResponderDefinition()
    histogram = fig.change_histogram(demo, definition)
    figure = fig.histogram_figure(histogram, definition)
    primary, secondary = fig.hidden_bins(histogram)
    shown = histogram[(histogram.procedure == "vertebroplasty") & ~(primary | secondary)]
    bars = figure.data[0]
    assert bars.name == "Vertebroplasty (VP)"
    values = dict(zip(bars.x, bars.y, strict=True))
    for row in shown.itertuples():
        assert values[row.bin_low + 5] == pytest.approx(row.percent)
    assert "responder threshold" in figure_text(figure)


# --- ODI and opioids -----------------------------------------------------------------------------


def test_odi_and_opioid_builders(demo):
    odi = odi_change(demo)
    figure = fig.odi_figure(odi)
    vp = odi[odi.procedure.astype(str) == "vertebroplasty"]
    assert list(figure.data[0].y) == pytest.approx(list(vp.mean_change))
    assert fig.odi_table(odi).n.iloc[0] == f"{vp.n.iloc[0]:,}"
    opioids = opioid_use(demo)
    table = fig.opioid_table(opioids)
    kp = opioids[opioids.procedure.astype(str) == "kyphoplasty"].iloc[0]
    assert table.iloc[1].pct_after == round(100 * kp.rate_after, 1)
    assert fig.opioid_figure(opioids).data[1].y[1] == pytest.approx(100 * kp.rate_after)


def test_odi_and_opioid_suppression():
    records = cohort("vertebroplasty", [8.0] * 30, [3.0] * 30,
                     odi_baseline=pd.array([60.0] * 8 + [None] * 22, dtype="Float64"),
                     odi_month1=pd.array([30.0] * 30, dtype="Float64"),
                     odi_month12=pd.array([None] * 30, dtype="Float64"),
                     opioid_baseline=pd.array([False] * 3 + [True] * 27, dtype="boolean"),
                     opioid_month1=pd.array([True] * 4 + [False] * 26, dtype="boolean"))
    odi = odi_change(records)
    table = fig.odi_table(odi)
    assert table.n.tolist() == ["<11", "0"] and table.mean_change.isna().all()
    assert fig.odi_figure(odi).data[0].y[0] is None
    opioids = opioid_use(records)
    table = fig.opioid_table(opioids).iloc[0]
    assert table.on_after == "<11" and table.pct_after is None and table.pct_before == 90.0
    # 3 started opioids: a small discordant cell hides its count and the McNemar p-value.
    assert table.started == "<11" and table.stopped == "26" and table.p_mcnemar is None
    figure = fig.opioid_figure(opioids)
    assert figure.data[0].y[1] is None and "13.3" not in figure_text(figure)


# --- empty input -------------------------------------------------------------------------------


def test_empty_input_gives_empty_state_figures(demo):
    none = demo.iloc[:0]
    definition = ResponderDefinition()
    figures = [fig.responder_figure(responder_rates(none)),
               fig.trajectory_figure(pain_trajectory(none)),
               fig.histogram_figure(fig.change_histogram(none, definition), definition),
               fig.odi_figure(odi_change(none)), fig.opioid_figure(opioid_use(none))]
    for figure in figures:
        assert figure.data == () and figure.layout.annotations  # a message, no broken chart
    assert fig.responder_table(responder_rates(none)).empty
    assert fig.trajectory_table(pain_trajectory(none)).empty
    assert fig.histogram_table(fig.change_histogram(none, definition)).empty
    assert fig.trajectory_summary(pain_trajectory(none)).startswith("No pain scores")
