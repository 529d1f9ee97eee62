"""Dashboard callbacks called as functions with filter states (no browser)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import ResponderDefinition, outcome_summary
from dashboard.app_factory import create_app
from dashboard.state import filter_from_query, query_from_filter
from data import import_dataframe, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def app_and_records(tmp_path_factory):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}"
    records = demo_records(3000, seed=11)
    # A tiny facility: 6 vertebroplasties, below the suppression threshold.
    tiny = records[records.procedure == "vertebroplasty"].head(6).copy()
    tiny["record_id"] = [f"TINY-{i}" for i in range(6)]
    tiny["patient_id"] = [f"TINY-P{i}" for i in range(6)]
    tiny["facility_id"] = "FAC-TINY"
    tiny["operator_id"] = "OP-TINY"
    import_dataframe(pd.concat([records, tiny]), "demo", database, synthetic=True)
    app = create_app(database)
    from data import load_records

    yield app, load_records(database)
    store.dispose_engines()


def texts(component) -> list[str]:
    """Every string inside a Dash component tree."""
    found = []

    def walk(node):
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif hasattr(node, "children"):
            walk(node.children)

    walk(component)
    return found


def find_by_id(component, wanted):
    if getattr(component, "id", None) == wanted:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, str):
            hit = find_by_id(child, wanted)
            if hit is not None:
                return hit
    return None


def test_url_round_trip():
    selection = RecordFilter(date_from="2023-01-01", countries=("US", "GB"), age_bands=("85+",),
                             procedures=("kyphoplasty",))
    query = query_from_filter(selection)
    assert query == "?from=2023-01-01&country=GB,US&procedure=kyphoplasty&age=85%2B"
    assert filter_from_query(query) == selection
    # Hand-edited links: bad values are dropped, good ones kept.
    assert filter_from_query("?age=12-13&country=US&from=notadate") == RecordFilter(countries=("US",))


def test_sync_filters_directions(app_and_records):
    from dashboard.layout import sync_filters

    app, _records = app_and_records
    with app.server.test_request_context():
        import dash._callback_context as cc

        token = cc.context_value.set({"triggered_inputs": [{"prop_id": "url.search", "value": ""}]})
        try:
            search, state, *controls = sync_filters("?country=US&procedure=kyphoplasty", None, None, None,
                                                    *[None] * 9)
        finally:
            cc.context_value.reset(token)
    assert search == "?country=US&procedure=kyphoplasty"
    assert RecordFilter.from_dict(state) == RecordFilter(countries=("US",), procedures=("kyphoplasty",))
    assert controls[2] == ["US"]  # the country dropdown is set from the link


def test_match_count(app_and_records):
    from dashboard.layout import match_count

    app, records = app_and_records
    selection = RecordFilter(procedures=("kyphoplasty",), sexes=("M",))
    expected = len(apply_filter(records, selection))
    with app.server.app_context():
        text = match_count(selection.to_dict())
    assert text == f"{expected:,} of {len(records):,} records match"


def test_overview_numbers_equal_analysis(app_and_records):
    from dashboard.pages.overview import update_overview

    app, records = app_and_records
    selection = RecordFilter(countries=("US",))
    with app.server.app_context():
        page = update_overview(selection.to_dict())
    chosen = apply_filter(records, selection)
    summary = outcome_summary(chosen, by=("procedure",), responder=ResponderDefinition())
    leak = summary[(summary.outcome == "cement_leakage") & (summary.procedure.astype(str) == "kyphoplasty")].iloc[0]
    cards = find_by_id(page, "kpi-cards")
    shown = texts(find_by_id(cards, "kpi-2-kyphoplasty"))
    assert shown == [f"{100 * leak.estimate:.1f}%"]
    volume = texts(find_by_id(cards, "kpi-0-vertebroplasty"))
    assert volume == [f"{(chosen.procedure == 'vertebroplasty').sum():,}"]


def test_overview_suppresses_small_cells(app_and_records):
    from dashboard.pages.overview import update_overview

    app, records = app_and_records
    tiny = RecordFilter(facilities=("FAC-TINY",))
    n = len(apply_filter(records, tiny))
    assert n == 6
    with app.server.app_context():
        page = update_overview(tiny.to_dict())
    cards = find_by_id(page, "kpi-cards")
    assert texts(find_by_id(cards, "kpi-0-vertebroplasty")) == ["<11"]
    assert texts(find_by_id(cards, "kpi-2-vertebroplasty")) == ["<11"]
    shown = " ".join(texts(page))
    assert "%" not in " ".join(texts(find_by_id(cards, "kpi-2-vertebroplasty")))
    assert f"n {n}" not in shown


def test_overview_empty_selection_is_a_message(app_and_records):
    from dashboard.pages.overview import update_overview

    app, _ = app_and_records
    with app.server.app_context():
        page = update_overview(RecordFilter(countries=("ZW",)).to_dict())
    assert "No records match the current filters." in texts(page)


def test_callback_errors_become_messages(app_and_records, monkeypatch):
    from dashboard.pages import overview

    app, _ = app_and_records

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(overview, "kpi_rows", broken)
    with app.server.app_context():
        page = overview.update_overview(RecordFilter().to_dict())
    shown = " ".join(texts(page))
    assert "could not be computed" in shown and "boom" not in shown and "Traceback" not in shown


def test_report_is_self_contained_and_suppressed(app_and_records):
    from dashboard.layout import download_report

    app, records = app_and_records
    with app.server.app_context():
        sent = download_report(1, "/", RecordFilter(countries=("US",)).to_dict())
        tiny = download_report(1, "/", RecordFilter(facilities=("FAC-TINY",)).to_dict())
    document = sent["content"]
    assert sent["filename"].startswith("overview-report-") and sent["filename"].endswith(".html")
    assert "<script>" in document  # plotly.js embedded
    assert "<script src" not in document and "<link" not in document  # nothing fetched
    assert "country: US" in document and "data version" in document
    assert "Synthetic demonstration data" in document
    assert "<td>&lt;11</td>" in tiny["content"]  # the tiny facility's counts are suppressed
