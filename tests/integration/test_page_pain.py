"""Pain relief page: callbacks called as functions with filter states (no browser)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import (
    ResponderDefinition,
    odi_change,
    opioid_use,
    pain_trajectory,
    responder_rates,
)
from analysis.proportions import compare_proportions
from tests.dash_tree import find_by_id, graph, grid_rows, texts


def by_procedure(table: pd.DataFrame, procedure: str) -> pd.DataFrame:
    return table[table.procedure.astype(str) == procedure]


def test_responders_equal_analysis(dashboard_app):
    from dashboard.pages.pain import update_responders

    app, records = dashboard_app
    selection = RecordFilter(countries=("US",))
    with app.server.app_context():
        responders, distribution = update_responders(selection.to_dict(), "month1", "relative",
                                                     30.0, 2.0)
    rates = responder_rates(apply_filter(records, selection), ResponderDefinition())
    kp = by_procedure(rates, "kyphoplasty").iloc[0]
    vp = by_procedure(rates, "vertebroplasty").iloc[0]
    assert texts(find_by_id(responders, "pain-rate-kyphoplasty")) == [f"{100 * kp.rate:.1f}%"]
    detail = " ".join(texts(find_by_id(responders, "pain-rate-vertebroplasty-detail")))
    assert f"{vp.n_followed:,} followed" in detail
    assert f"{vp.n_missing:,} missing follow-up" in detail
    expected = compare_proportions(int(kp.responders), int(kp.n_followed), int(vp.responders),
                                   int(vp.n_followed))
    assert texts(find_by_id(responders, "pain-rd")) == [f"{100 * expected.risk_difference:+.1f} pp"]
    assert f"{100 * expected.rd_low:+.1f} to {100 * expected.rd_high:+.1f}" in \
        " ".join(texts(find_by_id(responders, "pain-rd-detail")))
    figure = graph(responders, "pain-responder-graph")
    assert [trace.y[0] for trace in figure.data] == pytest.approx([100 * vp.rate, 100 * kp.rate])
    assert graph(distribution, "pain-histogram-graph").data  # the histogram has bars


def test_definition_controls_change_the_numbers(dashboard_app):
    from dashboard.pages.pain import update_responders

    app, records = dashboard_app
    selection = RecordFilter(age_bands=("75-84",))
    with app.server.app_context():
        responders, distribution = update_responders(selection.to_dict(), "month3", "absolute",
                                                     30.0, 3.0)
    definition = ResponderDefinition("month3", "absolute", 3.0)
    rates = responder_rates(apply_filter(records, selection), definition)
    vp = by_procedure(rates, "vertebroplasty").iloc[0]
    assert texts(find_by_id(responders, "pain-responder-title")) == \
        ["Responders: ≥3-point pain reduction at month 3"]
    assert texts(find_by_id(responders, "pain-rate-vertebroplasty")) == [f"{100 * vp.rate:.1f}%"]
    rows = grid_rows(responders, "pain-responder-table")
    assert rows[1]["measure"] == "Missing follow-up"
    assert rows[1]["Vertebroplasty (VP)"] == f"{vp.n_missing:,}"
    summary = " ".join(texts(distribution))
    assert "month 3 in points" in summary


def test_follow_up_sections_equal_analysis(dashboard_app):
    from dashboard.pages.pain import update_followup

    app, records = dashboard_app
    selection = RecordFilter(sexes=("F",))
    with app.server.app_context():
        trajectory, function = update_followup(selection.to_dict())
    chosen = apply_filter(records, selection)
    expected = by_procedure(pain_trajectory(chosen), "kyphoplasty")
    figure = graph(trajectory, "pain-trajectory-graph")
    assert list(figure.data[1].y) == pytest.approx(list(expected["mean"]))
    rows = grid_rows(trajectory, "pain-trajectory-table")
    assert [row["KP n"] for row in rows] == [f"{n:,}" for n in expected["n"]]
    odi = by_procedure(odi_change(chosen), "vertebroplasty")
    assert list(graph(function, "pain-odi-graph").data[0].y) == pytest.approx(list(odi.mean_change))
    opioids = by_procedure(opioid_use(chosen), "kyphoplasty").iloc[0]
    opioid_rows = grid_rows(function, "pain-opioid-table")
    assert opioid_rows[1]["n_paired"] == f"{opioids.n_paired:,}"
    assert opioid_rows[1]["pct_before"] == round(100 * opioids.rate_before, 1)


def test_empty_selection_is_a_message(dashboard_app):
    from dashboard.pages.pain import update_followup, update_responders

    app, _ = dashboard_app
    state = RecordFilter(countries=("ZW",)).to_dict()
    with app.server.app_context():
        responders, distribution = update_responders(state, "month1", "relative", 30.0, 2.0)
        trajectory, function = update_followup(state)
    assert "No records match the current filters." in texts(responders)
    assert distribution is None and trajectory is None and function is None


def test_tiny_facility_is_suppressed(dashboard_app):
    from dashboard.pages.pain import update_followup, update_responders

    app, records = dashboard_app
    tiny = RecordFilter(facilities=("FAC-TINY",))
    chosen = apply_filter(records, tiny)
    assert len(chosen) == 6
    with app.server.app_context():
        responders, distribution = update_responders(tiny.to_dict(), "month1", "relative",
                                                     30.0, 2.0)
        trajectory, function = update_followup(tiny.to_dict())
    assert texts(find_by_id(responders, "pain-rate-vertebroplasty")) == ["<11"]
    assert texts(find_by_id(responders, "pain-rd")) == ["–"]
    shown = " ".join(texts(responders))
    assert "%" not in " ".join(texts(find_by_id(responders, "pain-rate-vertebroplasty")))
    rates = responder_rates(chosen, ResponderDefinition())
    vp = by_procedure(rates, "vertebroplasty").iloc[0]
    assert f"{vp.responders} of" not in shown
    figure = graph(responders, "pain-responder-graph")
    assert all(trace.y[0] is None for trace in figure.data)
    histogram = graph(distribution, "pain-histogram-graph")
    assert all(value is None or value == 0 for trace in histogram.data if trace.type == "bar"
               for value in trace.y)
    means = graph(trajectory, "pain-trajectory-graph").data[0].y
    assert all(value is None for value in means)
    visits = grid_rows(trajectory, "pain-trajectory-table")
    assert all(row["VP n"] in ("<11", "0") for row in visits)
    for name in ("pain-odi-table", "pain-opioid-table"):
        for row in grid_rows(function, name):
            assert row["n" if name == "pain-odi-table" else "n_paired"] in ("<11", "0")


def test_threshold_choices_follow_the_kind(dashboard_app):
    from dashboard.pages.pain import show_threshold_choices

    assert show_threshold_choices("absolute") == ({"display": "none"}, {})
    assert show_threshold_choices("relative") == ({}, {"display": "none"})


def test_callback_errors_become_messages(dashboard_app, monkeypatch):
    from dashboard.pages import pain

    app, _ = dashboard_app

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pain, "responder_rates", broken)
    with app.server.app_context():
        responders, distribution = pain.update_responders(RecordFilter().to_dict(), "month1",
                                                          "relative", 30.0, 2.0)
    shown = " ".join(texts(responders))
    assert "could not be computed" in shown and "boom" not in shown and distribution is None


def test_report_sections_and_suppression(dashboard_app):
    from dashboard.layout import download_report
    from dashboard.pages.pain import pain_report

    app, records = dashboard_app
    with app.server.app_context():
        sections = pain_report(RecordFilter(countries=("US",)))
        sent = download_report(1, "/pain", RecordFilter(countries=("US",)).to_dict())
        tiny = download_report(1, "/pain", RecordFilter(facilities=("FAC-TINY",)).to_dict())
        empty = pain_report(RecordFilter(countries=("ZW",)))
    assert [s.title for s in sections][0] == "Responders: ≥30% pain reduction at month 1"
    assert len(sections) == 5 and all(s.figure is not None for s in sections)
    assert "VERTOS II" in sections[0].text and "Cochrane" in sections[0].text
    assert sent["filename"].startswith("pain-relief-report-")
    assert "country: US" in sent["content"]
    assert "<td>&lt;11</td>" in tiny["content"]
    assert empty[0].title == "No records"


def test_composite_option_counts_deaths_before_the_visit(dashboard_app):
    """Death before the month-1 visit: complete case (default) or non-response (composite),
    chosen on the page; the composite's deaths are shown."""
    from dashboard.pages.pain import update_responders

    app, records = dashboard_app
    selection = RecordFilter()
    with app.server.app_context():
        default, _ = update_responders(selection.to_dict(), "month1", "relative", 30.0, 2.0)
        composite, _ = update_responders(selection.to_dict(), "month1", "relative", 30.0, 2.0,
                                         "non_response")
    chosen = apply_filter(records, selection)
    cc = by_procedure(responder_rates(chosen, ResponderDefinition()), "kyphoplasty").iloc[0]
    co = by_procedure(responder_rates(chosen, ResponderDefinition(deaths="non_response")),
                      "kyphoplasty").iloc[0]
    assert co.n_died_before_visit > 10  # the demo has early deaths: the option matters
    assert co.n_followed == cc.n_followed + co.n_died_before_visit and co.rate < cc.rate
    assert texts(find_by_id(default, "pain-rate-kyphoplasty")) == [f"{100 * cc.rate:.1f}%"]
    assert texts(find_by_id(composite, "pain-rate-kyphoplasty")) == [f"{100 * co.rate:.1f}%"]
    rows = {r["measure"]: r for r in grid_rows(composite, "pain-responder-table")}
    assert rows["Died before the visit (non-responders)"]["Kyphoplasty (KP)"] == \
        f"{co.n_died_before_visit:,}"
    assert "composite" in " ".join(texts(find_by_id(composite, "pain-responder-note")))
    assert "(death before the visit = non-responder)" in \
        texts(find_by_id(composite, "pain-responder-title"))[0]
