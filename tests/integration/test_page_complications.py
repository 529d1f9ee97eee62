"""Complications page callbacks called as functions with filter states (no browser)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.comparison import fracture_survival
from analysis.descriptive import trend_by_period
from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import complication_rates
from analysis.proportions import compare_proportions
from tests.dash_tree import graph, grid_rows, texts


def page():
    from dashboard.pages import complications

    return complications


US = RecordFilter(countries=("US",))
TINY = RecordFilter(facilities=("FAC-TINY",))


def test_rates_equal_analysis(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        rates, benchmarks, *styles = page().update_rates(US.to_dict())
    assert styles == [None, None]  # the page controls are shown
    chosen = apply_filter(records, US)
    expected = complication_rates(chosen).assign(procedure=lambda f: f.procedure.astype(str))
    leak = expected[expected.outcome == "cement_leakage"].set_index("procedure")
    vp, kp = leak.loc["vertebroplasty"], leak.loc["kyphoplasty"]
    row = grid_rows(rates, "complications-rates")[0]
    assert row["Outcome"] == "Cement leakage"
    assert row["VP rate (95% CI)"] == (f"{100 * vp.rate:.1f}% ({100 * vp.low:.1f}–"
                                       f"{100 * vp.high:.1f})")
    assert row["KP events / n"] == f"{int(kp.events):,} / {int(kp.n):,}"
    result = compare_proportions(int(kp.events), int(kp.n), int(vp.events), int(vp.n))
    assert row["Risk ratio KP/VP (95% CI)"] == (f"{result.risk_ratio:.2f} ({result.rr_low:.2f}–"
                                                f"{result.rr_high:.2f})")
    assert row["KP − VP, percentage points (95% CI)"].startswith(
        f"{100 * result.risk_difference:.1f}".replace("-", "−"))
    # Benchmarks beside the local rates, with the caveat.
    assert "differ between studies" in " ".join(texts(benchmarks))
    figure = json.dumps(graph(benchmarks, "complications-benchmark-graph").to_plotly_json(),
                        default=str)
    assert "World Neurosurg 2017" in figure and "Beall et al. 2018" in figure


def test_forest_equals_compare_proportions(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        ratios = page().update_forest(US.to_dict(), "rr")
        differences = page().update_forest(US.to_dict(), "rd")
    chosen = apply_filter(records, US)
    frame = page().comparison_frame(chosen)
    leak = frame[frame.outcome == "cement_leakage"].iloc[0]
    expected = compare_proportions(leak.kp_events, leak.kp_n, leak.vp_events, leak.vp_n)
    points = {y: x for trace in graph(ratios, "complications-forest-graph").data
              if trace.x is not None for x, y in zip(trace.x, trace.y, strict=True)
              if x is not None}
    assert points["Cement leakage"] == pytest.approx(expected.risk_ratio)
    points = {y: x for trace in graph(differences, "complications-forest-graph").data
              if trace.x is not None for x, y in zip(trace.x, trace.y, strict=True)
              if x is not None}
    assert points["Cement leakage"] == pytest.approx(100 * expected.risk_difference)


def test_trend_equals_trend_by_period(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        yearly = page().update_trend(US.to_dict(), "Y")
        quarterly = page().update_trend(US.to_dict(), "Q")
    chosen = apply_filter(records, US)
    expected = trend_by_period(chosen, ("cement_leakage", "pulmonary_embolism"), freq="Y")
    kp = expected[(expected.procedure == "kyphoplasty") & (expected.outcome == "cement_leakage")]
    figure = graph(yearly, "complications-trend-graph")
    trace = next(t for t in figure.data if t.mode == "lines+markers"
                 and t.name == "Kyphoplasty (KP)")
    assert list(trace.y) == pytest.approx(list(100 * kp.rate))
    rows = grid_rows(yearly, "complications-trend")
    assert len(rows) == len(expected)
    assert len(grid_rows(quarterly, "complications-trend")) == len(
        trend_by_period(chosen, ("cement_leakage", "pulmonary_embolism"), freq="Q"))


def test_fracture_curves_equal_fracture_survival(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        section = page().update_fracture(US.to_dict())
    chosen = apply_filter(records, US)
    expected = fracture_survival(chosen)
    curves = page().fracture_curves(chosen)
    for procedure in ("vertebroplasty", "kyphoplasty"):
        km = curves.km[curves.km.procedure == procedure].reset_index(drop=True)
        reference = expected.km[expected.km.procedure == procedure].reset_index(drop=True)
        assert np.allclose(km.survival, reference.survival)
        cif = curves.cif[curves.cif.procedure == procedure].reset_index(drop=True)
        reference = expected.cumulative_incidence[
            expected.cumulative_incidence.procedure == procedure].reset_index(drop=True)
        assert np.allclose(cif.cumulative_incidence, reference.cumulative_incidence)
    pd.testing.assert_frame_equal(curves.at_risk, expected.at_risk_table, check_dtype=False)
    rows = grid_rows(section, "complications-at-risk")
    vp = next(r for r in rows if r["Procedure"] == "VP" and r["Count"] == "At risk")
    table = expected.at_risk_table
    at_365 = int(table[(table.procedure == "vertebroplasty") & (table.time == 365)].at_risk.iloc[0])
    assert vp["Day 365"] == f"{at_365:,}"
    # The drawn curve passes through the Aalen–Johansen estimate.
    figure = graph(section, "complications-fracture-graph")
    drawn = next(t for t in figure.data if t.name == "Kyphoplasty (KP)" and t.xaxis == "x2")
    cif = expected.cumulative_incidence
    kp = cif[cif.procedure == "kyphoplasty"].set_index("time").cumulative_incidence
    for x, y in list(zip(drawn.x, drawn.y, strict=True))[1:20]:
        assert y == pytest.approx(100 * kp.loc[x])


def test_empty_selection_is_a_message(dashboard_app):
    app, _ = dashboard_app
    state = RecordFilter(countries=("ZW",)).to_dict()
    with app.server.app_context():
        rates, benchmarks, *styles = page().update_rates(state)
        others = [page().update_forest(state, "rr"), page().update_trend(state, "Y"),
                  page().update_fracture(state)]
    assert "No records match the current filters." in texts(rates)
    assert benchmarks is None and others == [None, None, None]
    assert styles == [{"display": "none"}] * 2  # no controls without charts


def test_tiny_facility_is_suppressed_everywhere(dashboard_app):
    app, records = dashboard_app
    assert len(apply_filter(records, TINY)) == 6
    state = TINY.to_dict()
    with app.server.app_context():
        rates, benchmarks, *_ = page().update_rates(state)
        forest = page().update_forest(state, "rr")
        trend = page().update_trend(state, "Q")
        fracture = page().update_fracture(state)
    rows = grid_rows(rates, "complications-rates")
    assert all(r["VP events / n"].endswith("/ <11") for r in rows)
    assert all("%" not in r["VP rate (95% CI)"] for r in rows)
    forest_figure = graph(forest, "complications-forest-graph")
    assert not [x for t in forest_figure.data if t.x is not None for x in t.x if x is not None]
    trend_figure = graph(trend, "complications-trend-graph")
    assert not [y for t in trend_figure.data if t.mode == "lines+markers" for y in t.y
                if pd.notna(y)]
    assert all(r["Procedures"] == "<11" for r in grid_rows(trend, "complications-trend"))
    at_risk = grid_rows(fracture, "complications-at-risk")
    assert {r["Day 0"] for r in at_risk if r["Count"] == "At risk" and r["Procedure"] == "VP"} \
        == {"<11"}
    drawn = [t for t in graph(fracture, "complications-fracture-graph").data if t.name]
    assert drawn == []
    shown = " ".join(texts(rates) + texts(benchmarks) + texts(fracture))
    assert "n 6" not in shown and "6 / " not in shown


def test_callback_errors_become_messages(dashboard_app, monkeypatch):
    app, _ = dashboard_app

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(page(), "comparison_frame", broken)
    with app.server.app_context():
        rates, benchmarks, *_ = page().update_rates(US.to_dict())
    shown = " ".join(texts(rates))
    assert "could not be computed" in shown and "boom" not in shown and benchmarks is None


def test_report_sections_and_suppression(dashboard_app):
    from dashboard.layout import download_report

    app, _ = dashboard_app
    with app.server.app_context():
        sections = page().complications_report(US)
        sent = download_report(1, "/complications", US.to_dict())
        tiny = download_report(1, "/complications", TINY.to_dict())
    assert [s.title for s in sections][:2] == ["Complication rates, VP and KP side by side",
                                               "Risk ratios, KP compared with VP"]
    assert all(s.figure is not None or s.table is not None for s in sections)
    assert sent["filename"].startswith("complications-report-")
    assert "Cement leakage" in sent["content"] and "differ between studies" in sent["content"]
    assert "<td>0 / &lt;11</td>" in tiny["content"]  # rates table
    assert "<td>&lt;11</td>" in tiny["content"]  # number at risk


def test_fracture_row_is_the_cumulative_incidence_with_its_comparison(dashboard_app):
    """Issue 12 item 1: new fracture by 12 months is the Aalen–Johansen cumulative incidence
    at 365 days (with the number at risk), its KP − VP difference uses the delta-method
    SE, and it is near the demo's published 20% / 18%."""
    from analysis.horizon import (
        compare_cumulative_incidence,
        cumulative_incidence_at,
        horizon_time_event,
    )

    app, records = dashboard_app
    with app.server.app_context():
        rates, benchmarks, *_ = page().update_rates(RecordFilter().to_dict())
    time, code = horizon_time_event(records, "adjacent_fracture_12m")
    cif = cumulative_incidence_at(time, code, 365, group=records.procedure.astype(str))
    cif = cif.set_index("group")
    vp, kp = cif.loc["vertebroplasty"], cif.loc["kyphoplasty"]
    row = next(r for r in grid_rows(rates, "complications-rates")
               if r["Outcome"].startswith("New vertebral fracture by 12 months"))
    assert "cumulative incidence" in row["Outcome"]
    assert row["VP rate (95% CI)"] == (f"{100 * vp.cumulative_incidence:.1f}% "
                                       f"({100 * vp.low:.1f}–{100 * vp.high:.1f})")
    assert row["KP at risk at horizon"] == f"{int(kp.at_risk):,}"
    assert row["KP events / n"] == f"{int(kp.events):,} / {int(kp.n):,}"
    result = compare_cumulative_incidence(kp.cumulative_incidence, kp.se,
                                          vp.cumulative_incidence, vp.se)
    assert row["KP − VP, percentage points (95% CI)"].startswith(
        f"{100 * result.difference:.1f}".replace("-", "−"))
    assert row["p (test)"].endswith("(Wald z)")
    for est, target in ((vp, 0.20), (kp, 0.18)):
        assert abs(est.cumulative_incidence - target) < 3 * est.se
    # The benchmark plot shows the same estimate, labelled as a cumulative incidence.
    figure = json.dumps(graph(benchmarks, "complications-benchmark-graph").to_plotly_json(),
                        default=str)
    assert "12-month cumulative incidence" in figure
    assert f"{100 * vp.cumulative_incidence:.1f}%" in figure
    # Proportions stay proportions: no number at risk.
    leak = next(r for r in grid_rows(rates, "complications-rates")
                if r["Outcome"] == "Cement leakage")
    assert leak["VP at risk at horizon"] == "–"


def test_small_at_risk_counts_are_suppressed(dashboard_app):
    app, _ = dashboard_app
    with app.server.app_context():
        rates, *_ = page().update_rates(TINY.to_dict())
    rows = grid_rows(rates, "complications-rates")
    shown = {r["Outcome"]: r for r in rows}
    fracture = next(v for k, v in shown.items() if k.startswith("New vertebral fracture"))
    assert fracture["VP at risk at horizon"] in ("0", "<11")
    assert not any(ch.isdigit() for ch in fracture["VP rate (95% CI)"])
