"""Pure figure, table and text builders of the Quality monitoring page."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from analysis.quality import caterpillar, cusum, cusum_chart, funnel_data, risk_model
from dashboard.figures import quality as fq
from data.demo import demo_records


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    """Demo records plus two small facilities: 6 cases (FAC-TINY) and 30 cases with 3 leakages
    (FAC-FEW: enough cases, too few events)."""
    base = demo_records(2500, seed=2)
    tiny = base[base.procedure == "vertebroplasty"].head(6).copy()
    tiny["facility_id"], tiny["operator_id"] = "FAC-TINY", "OP-TINY"
    few = base.tail(30).copy()
    few["facility_id"], few["operator_id"] = "FAC-FEW", "OP-FEW"
    few["cement_leakage"] = pd.array([True] * 3 + [False] * 27, dtype="boolean")
    frame = pd.concat([base.iloc[:-30], tiny, few], ignore_index=True)
    frame["record_id"] = [f"R{i}" for i in range(len(frame))]
    return frame


@pytest.fixture(scope="module")
def funnel(records):
    return funnel_data(records, "facility_id", "cement_leakage", adjust=True)


def all_hover(figure) -> str:
    parts = []
    for trace in figure.data:
        for attribute in ("hovertext", "text", "customdata"):
            value = getattr(trace, attribute, None)
            if value is not None:
                parts.append(" ".join(map(str, np.ravel(np.asarray(value, dtype=object)))))
    return " ".join(parts)


def test_funnel_figure_omits_suppressed_units_and_encodes_flags_by_shape(funnel):
    figure = fq.funnel_figure(funnel)
    hover = all_hover(figure)
    assert "FAC-TINY" not in hover and "FAC-FEW" not in hover
    units = funnel.units.set_index("unit")
    assert units.loc["FAC-FEW", "n"] == 30 and units.loc["FAC-FEW", "events"] == 3
    # The limits as smooth curves (95% and 99.8%, high and low) and the target line.
    lines = [t for t in figure.data if t.mode == "lines"]
    assert len(lines) == 5 and all(len(t.x) > 100 for t in lines[:4])
    assert lines[4].y[0] == pytest.approx(100 * funnel.target)
    # One trace per flag; each flag has its own marker shape (not colour alone).
    points = [t for t in figure.data if t.mode == "markers"]
    symbols = [t.marker.symbol for t in points]
    assert len(set(symbols)) == len(symbols)
    small = (units["n"].between(1, 10) | units["events"].between(1, 10)).to_numpy()
    assert small[units.index.get_indexer(["FAC-TINY", "FAC-FEW"])].all()
    assert sum(len(t.x) for t in points) == len(units) - small.sum()
    # A visible unit's hover: unit, n, events, rate, expected, O/E.
    big = units[units["n"] > 100].index[0]
    row = units.loc[big]
    text = next(h for t in points for h in t.hovertext if h.startswith(f"<b>{big}<"))
    assert f"n {int(row.n):,}" in text and f"events {int(row.events):,}" in text
    assert f"rate {100 * row.rate:.1f}%" in text and f"O/E {row.oe:.2f}" in text
    assert f"{small.sum()} facilities with fewer than 11 cases or events not plotted" in str(
        figure.layout.annotations[0].text)


def test_funnel_hover_of_a_small_unit_never_shows_its_count(funnel):
    row = funnel.units.set_index("unit").loc[["FAC-FEW"]].reset_index().iloc[0]
    text = fq._funnel_hover(row, adjusted=True)
    assert "events <11" in text and "rate suppressed" in text
    assert "events 3" not in text and "%" not in text and "O/E" not in text


def test_units_table_suppresses_small_units_and_lists_flagged_units_first(funnel):
    table = fq.units_table(funnel)
    # Issue 14 item 3: alarms, then alerts, then within, not tested, hidden; by name inside.
    order = {fq.TABLE_FLAGS[flag]: rank for rank, flag in enumerate(fq.TABLE_ORDER)}
    ranks = [order[flag.removesuffix(fq.COUNTS_HIDDEN)] for flag in table["flag"]]
    assert ranks == sorted(ranks) and ranks[0] < order["Within"] < ranks[-1]
    for rank in set(ranks):
        names = [u for u, r in zip(table["unit"], ranks, strict=True) if r == rank]
        assert names == sorted(names)
    assert "suppressed" not in table.columns
    tiny = table.set_index("unit").loc["FAC-TINY"]
    few = table.set_index("unit").loc["FAC-FEW"]
    # The small-unit rule: listed by their own flag, counts hidden; but FAC-TINY's n is itself
    # hidden (tested or not would tell it), so its flag is withheld.
    raw_flags = funnel.units.set_index("unit")["flag"]
    assert tiny["flag"] == fq.TABLE_FLAGS[fq.HIDDEN_FLAG]
    assert few["flag"] == fq.TABLE_FLAGS[raw_flags["FAC-FEW"]] + fq.COUNTS_HIDDEN
    assert tiny["n"] == "<11" and tiny["events"] in ("<11", "0")
    assert few["n"] == "30" and few["events"] == "<11"
    for column in ("rate", "expected", "oe", "oe_ci", "z", "p_adjusted"):
        assert few[column] is None and tiny[column] is None
    big = table.set_index("unit").loc["FAC-009"]
    raw = funnel.units.set_index("unit").loc["FAC-009"]
    assert big["events"] == f"{int(raw.events):,}" and big["rate"] == round(100 * raw.rate, 1)
    assert big["flag"].startswith("Alarm high") or big["flag"].startswith("Alert high")


def test_cards_summary_and_table_count_the_same_flags(funnel):
    """The cards (flag_counts), the funnel's text summary and the table agree; units with
    hidden counts are counted by their own flag (listed, not drawn)."""
    import re

    table = fq.units_table(funnel)
    counts = fq.flag_counts(funnel)
    listed = table["flag"].str.removesuffix(fq.COUNTS_HIDDEN)
    assert {f: int((listed == fq.TABLE_FLAGS[f]).sum()) for f in fq.TABLE_ORDER} == counts
    shown, undrawn = fq.shown_flags(funnel), fq.undrawn_flags(funnel)
    assert {f: int(shown.get(f, 0)) + undrawn[f] for f in fq.TABLE_ORDER
            if f != fq.HIDDEN_FLAG} == {f: c for f, c in counts.items() if f != fq.HIDDEN_FLAG}
    summary = fq.funnel_summary(funnel)
    said = {words: int(number) for number, words in re.findall(
        r"(\d+) (alarm\(s\) above|alert\(s\) above|alert\(s\) below|alarm\(s\) below)",
        summary)}
    assert said == {"alarm(s) above": counts["alarm_high"], "alert(s) above": counts["alert_high"],
                    "alert(s) below": counts["alert_low"], "alarm(s) below": counts["alarm_low"]}
    hidden = int(fq.suppressed_units(funnel.units).sum())
    assert f"{hidden} facilities with fewer than" in summary
    assert hidden >= 2 and counts["alarm_high"] + counts["alert_high"] >= 1


def test_units_table_ci_equals_caterpillar(records, funnel):
    table = fq.units_table(funnel).set_index("unit")
    cat = caterpillar(records, "facility_id", "cement_leakage", adjust=True).set_index("unit")
    for unit in ("FAC-009", "FAC-019"):
        assert table.loc[unit, "oe_ci"] == f"{cat.loc[unit, 'low']:.2f}–{cat.loc[unit, 'high']:.2f}"


def test_caterpillar_figure_sorted_with_reference_line(records):
    table = caterpillar(records, "facility_id", "cement_leakage", adjust=True)
    figure = fq.caterpillar_figure(table, "facility_id", "cement_leakage")
    assert "FAC-TINY" not in all_hover(figure) and "FAC-FEW" not in all_hover(figure)
    assert figure.layout.shapes[0].y0 == 1.0
    order = list(figure.layout.xaxis.categoryarray)
    shown = table[~fq.suppressed_units(table, ("n", "observed"))]
    assert order == list(shown["unit"])
    assert list(shown["oe"]) == sorted(shown["oe"])
    assert "sorted from lowest to highest" in fq.caterpillar_summary(table)


def test_empty_inputs_give_empty_state_figures():
    for figure in (fq.funnel_figure(None), fq.caterpillar_figure(None), fq.cusum_figure(None)):
        assert len(figure.data) == 0 and figure.layout.annotations
    assert fq.units_table(None).empty
    assert fq.default_cusum_unit(None) is None and fq.cusum_options(None) == []


def test_default_cusum_unit_and_options(funnel):
    chosen = fq.default_cusum_unit(funnel)
    units = funnel.units.set_index("unit")
    assert units.loc[chosen, "flag"].startswith("alarm")
    alarms = units[units["flag"].str.startswith("alarm").to_numpy() & fq.chartable(funnel.units)]
    assert abs(units.loc[chosen, "z"]) == alarms["z"].abs().max()
    options = {o["value"]: o for o in fq.cusum_options(funnel)}
    assert options["FAC-TINY"]["disabled"] and options["FAC-FEW"]["disabled"]
    assert "30" not in options["FAC-FEW"]["label"] and "3 " not in options["FAC-FEW"]["label"]
    assert not options[chosen]["disabled"]


def test_cusum_figure_has_limits_signals_and_vlad(records):
    result = cusum(records, "facility_id", "FAC-009", "cement_leakage", threshold=3.0)
    figure = fq.cusum_figure(result)
    names = [t.name for t in figure.data]
    assert {"Upper CUSUM", "Lower CUSUM", "VLAD"} <= set(names)
    assert "Limit h⁺ = 3.00" in names
    upper_signals = int(result.chart["signal_upper"].sum())
    if upper_signals:
        signal = next(t for t in figure.data if t.name == "Signal: deterioration")
        assert len(signal.x) == upper_signals
    assert "given (not simulated)" in fq.cusum_text(result)
    summary = fq.cusum_summary(result)
    assert f"{result.n:,} cases" in summary and "FAC-009" in summary


def test_long_cusum_series_are_thinned_but_keep_peaks():
    rng = np.random.default_rng(3)
    p = np.full(20_000, 0.2)
    chart = cusum_chart((rng.random(20_000) < 0.22).astype(int), p, threshold_upper=5.0)
    index = fq._display_index(chart)
    assert len(index) < 3_500 + chart["signal_upper"].sum() + chart["signal_lower"].sum()
    assert chart["upper"].to_numpy().argmax() in index
    assert set(np.flatnonzero(chart["signal_upper"].to_numpy())) <= set(index)


def test_interpretation_names_the_active_adjustment(records, funnel):
    model = risk_model(records, "cement_leakage")
    adjusted = " ".join(fq.interpretation(funnel, model))
    assert "Active adjustment: risk-adjusted" in adjusted
    assert f"c-statistic is {model.c_statistic:.2f}" in adjusted
    assert f"φ = {funnel.phi:.2f}" in adjusted and "τ²" in adjusted
    assert "pooled" in adjusted and "Benjamini–Hochberg" in adjusted
    assert "not a verdict" in adjusted
    crude = funnel_data(records, "facility_id", "cement_leakage", overdispersion="multiplicative")
    text = " ".join(fq.interpretation(crude, None, "the case-mix model cannot be fitted."))
    assert "Active adjustment: none (crude rates)" in text
    assert "requested but is not possible" in text
    applied = "Active over-dispersion model: multiplicative, applied" in text
    assert applied == crude.overdispersion_applied
    if not applied:
        assert "Active over-dispersion model: none" in text


def test_model_notes_with_small_counts_are_suppressed():
    note = "sex=X pooled with F: its 3 record(s) all have cement_leakage=0 (separation)"
    assert fq._sanitise_note(note).startswith("sex=X pooled with F: its <11 record(s)")
    assert "1,204 missing" in fq._sanitise_note("age: 1,204 missing value(s) set to the median 2")


# -- issue 13: what is drawn and counted reveals no hidden unit ------------------------------

def _line_x(figure) -> np.ndarray:
    return np.concatenate([np.asarray(t.x, float) for t in figure.data
                           if t.mode == "lines" and "limits" in (t.name or "")])


@pytest.mark.parametrize("adjust", [True, False])
def test_limit_curves_span_only_the_units_shown(records, adjust):
    """The curves ran from half the smallest to 1.1 × the largest volume of every unit, hidden
    ones included: FAC-TINY's 6 cases could be read off the start of the curves (3)."""
    result = funnel_data(records, "facility_id", "cement_leakage", adjust=adjust)
    shown = result.units[~fq.suppressed_units(result.units)]
    x = _line_x(fq.funnel_figure(result))
    assert x.min() == pytest.approx(0.5 * shown["plot_n"].min())
    assert x.max() == pytest.approx(1.1 * shown["plot_n"].max())
    # The curves are the analysis' own limits (same model), on another range.
    every = result.units["plot_n"]
    same = fq.limit_curves(result, 0.5 * every.min(), 1.1 * every.max())
    pd.testing.assert_frame_equal(same, result.limits)


def test_a_hidden_units_flag_is_listed_and_counted_but_not_drawn(funnel):
    """Quality cards said "Alerts 3" while 2 were drawn: the third was a hidden unit. One
    small-unit rule for Quality and Signals (issue 15): the flag is listed and counted, with
    its counts hidden, and the texts say it is not drawn."""
    units = funnel.units.copy()
    units.loc[units["unit"] == "FAC-FEW", "flag"] = "alert_high"
    result = dataclasses.replace(funnel, units=units)
    table = fq.units_table(result).set_index("unit")
    assert table.loc["FAC-FEW", "flag"] == "Alert high (counts hidden)"
    assert table.loc["FAC-FEW", "events"] == "<11" and table.loc["FAC-FEW", "n"] == "30"
    for column in ("rate", "expected", "oe", "oe_ci", "z", "p_adjusted"):
        assert table.loc["FAC-FEW", column] is None
    listed = int((units["flag"] == "alert_high").sum())
    assert fq.flag_counts(result)["alert_high"] == listed
    figure = fq.funnel_figure(result)
    drawn = sum(len(t.x) for t in figure.data if t.mode == "markers"
                and (t.name or "").startswith("Alert: above"))
    assert drawn == fq.shown_flags(result).get("alert_high", 0) == listed - 1
    assert fq.undrawn_flags(result)["alert_high"] == 1
    words = " ".join(fq.funnel_text(result))
    assert f"{listed} above and" in words.split("alarms), and ")[1]
    assert "compared and counted by flag, but not plotted" in words
    assert "with counts hidden, not drawn" in fq.funnel_summary(result)


def test_a_unit_with_few_non_events_is_hidden():
    """n 50 and events 45 both shown would give 5 non-events."""
    units = pd.DataFrame({"n": [50, 60, 8], "events": [45, 20, 0]})
    assert fq.suppressed_units(units).tolist() == [True, False, True]


def test_hidden_units_that_together_are_a_small_cell_are_left_out():
    # Two hidden units with 3 and 4 events: 7 events in all, a small cell the target reveals.
    assert fq.excluded_units(["A", "B", "C"], [200, 60, 70], [40, 3, 4]) == ("B", "C")
    # Their pool of 13 events and 117 non-events is no small cell: nothing need be left out.
    assert fq.excluded_units(["A", "B", "C"], [200, 60, 70], [40, 6, 7]) == ()
    assert fq.excluded_units(["A", "B"], [200, 60], [40, 20]) == ()


def test_a_flag_that_would_give_a_hidden_count_away_is_withheld(funnel):
    """Crude proportions, n = 30 shown, lower 95% limit 0.05 (1.5 events): "Alert low" with
    events "<11" would mean 1 event. The flag is withheld whatever the hidden count (the
    decision uses n and the limits only), while a risk-adjusted unit (volume E/θ, E hidden)
    keeps its flag with its counts hidden."""
    limits = {"low_998": [0.12, 0.0, 0.0], "high_998": [0.35, 0.5, 0.5],
              "low_95": [0.16, 0.05, 0.05], "high_95": [0.3, 0.45, 0.45]}
    for events in (1, 2):
        units = pd.DataFrame({"unit": ["ADJ", "CRUDE", "BIG"], "n": [300, 30, 30],
                              "events": [3, events, 12],
                              "flag": ["alarm_low", "alert_low" if events == 1 else "within",
                                       "within"],
                              "plot_n": [290.0, 30.0, 30.0], **limits})
        assert fq.withheld_flags(units).tolist() == [False, True, False]
        table = fq.units_table(dataclasses.replace(funnel, units=units.assign(
            rate=units["events"] / units["n"], expected=np.nan, oe=np.nan, z=np.nan,
            p_adjusted=np.nan))).set_index("unit")
        assert table.loc["ADJ", "flag"] == "Alarm low (counts hidden)"
        assert table.loc["CRUDE", "flag"] == "Hidden (small counts)"
        assert table.loc["CRUDE", "events"] == "<11"
