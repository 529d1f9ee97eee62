"""Signals page: callbacks called as functions on a demo store, as different users."""

from __future__ import annotations

import contextlib
import datetime as dt

import flask
import pytest
from dash import html
from werkzeug.exceptions import Forbidden

from analysis.signals import READ_COLUMNS, SignalOptions, current_signals
from dashboard.app_factory import create_app
from dashboard.auth import User
from dashboard.figures.signals import page_exclude, signals_table
from data import audit, import_dataframe, load_records, signal_reviews, store
from tests.integration.conftest import TINY_FACILITY, demo_with_tiny_facility
from tests.integration.test_dashboard_core import find_by_id, texts

SINCE = "2024-06-01"


@pytest.fixture(scope="module")
def app_and_database(tmp_path_factory):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('signals') / 'store.db'}"
    import_dataframe(demo_with_tiny_facility(3000), "demo", database, synthetic=True)
    yield create_app(database), database
    store.dispose_engines()


@contextlib.contextmanager
def as_user(app, user: User):
    config = app.server.config
    before = config.get("VA_AUTH")
    config["VA_AUTH"] = before or {"test": True}
    try:
        with app.server.test_request_context("/signals"):
            flask.g.va_user = user
            yield
    finally:
        config["VA_AUTH"] = before


ANALYST = User("ana", "analyst")
VIEWER = User("vic", "viewer")


def table_rows(component) -> list[list[str]]:
    table = find_by_id(html.Div(component), "signals-table")
    body = table.children[1]
    return [[" ".join(texts(cell)) for cell in row.children] for row in body.children]


def test_signals_read_the_columns_the_quality_page_reads(app_and_database):
    from dashboard.pages.quality import COLUMNS

    assert set(READ_COLUMNS) == set(COLUMNS)


def test_the_list_is_the_analysis_of_the_users_records_with_suppression(app_and_database):
    from dashboard.pages.signals import update_signals

    app, database = app_and_database
    with as_user(app, ANALYST):
        listed, options, _history = update_signals(SINCE)
    records = load_records(database)
    records = records[[c for c in READ_COLUMNS if c in records.columns]]
    expected = signals_table(current_signals(records, SignalOptions(
        since=dt.date.fromisoformat(SINCE), exclude=page_exclude)).signals)
    rows = table_rows(listed)
    assert len(rows) == len(expected) > 0
    assert [o["value"] for o in options] == expected["key"].tolist()
    assert [r[4] for r in rows] == expected["unit_id"].tolist()
    # The planted high-leakage facility is among the first (alarms of more events than expected).
    assert "FAC-009" in [r[4] for r in rows[:3]] and rows[0][1].startswith("Funnel alarm")
    # Counts 1..10 never shown: a suppressed signal shows "<11" and no O/E.
    small = [r for r in rows if r[5] == "<11" or r[6] == "<11"]
    assert small, "this demo has signals on small units"
    assert all(r[8] == "–" and r[9] == "–" for r in small)
    for row in rows:
        for cell in (row[5], row[6]):
            assert cell in ("<11", "0", "–") or int(cell.replace(",", "")) > 10
    # The tiny facility (6 cases) is hidden from every comparison: never a signal.
    assert TINY_FACILITY not in [r[4] for r in rows]
    summary = " ".join(texts(find_by_id(html.Div(listed), "signals-summary")))
    assert f"{len(rows)} signals" in summary and "since 01 Jun 2024" in summary


def test_analyst_review_is_stored_audited_and_no_longer_new(app_and_database):
    from dashboard.pages.signals import save_review, update_signals

    app, database = app_and_database
    with as_user(app, ANALYST):
        _, options, _ = update_signals(SINCE)
        key = options[0]["value"]
        before = table_rows(update_signals(SINCE)[0])[0]
        message, reviewed = save_review(1, key, "under review", "case notes requested", SINCE, 0)
        after, _, history = update_signals(SINCE, reviewed)
    assert before[0] == "New" and reviewed == 1
    assert "Saved" in " ".join(texts(message))
    first = table_rows(after)[0]
    assert first[0] == "" and first[12] == "under review"
    assert "case notes requested" in " ".join(texts(history))
    assert signal_reviews.current_reviews(database).loc[key, "actor"] == "ana"
    events = audit.read_events(database)
    assert events.iloc[0]["action"] == "signal_review"
    assert events.iloc[0]["detail"]["signal"] == key


def test_viewer_may_not_review_and_unknown_signals_are_refused(app_and_database):
    from dashboard.pages.signals import save_review

    app, database = app_and_database
    key = "funnel|cement_leakage|facility_id|FAC-009|high"
    with as_user(app, VIEWER), pytest.raises(Forbidden):
        save_review(1, key, "closed", "", SINCE, 0)
    with as_user(app, ANALYST):
        message, reviewed = save_review(1, "funnel|cement_leakage|facility_id|FAC-999|high",
                                        "closed", "", SINCE, 0)
    assert "not in your list" in " ".join(texts(message)) and reviewed == 0


def test_restricted_user_sees_only_their_facilitys_signals(app_and_database):
    from dashboard.pages.signals import update_signals

    app, _ = app_and_database
    with as_user(app, User("north", "analyst", ("FAC-009",))):
        listed, options, _ = update_signals(SINCE)
    units = {o["value"].split("|")[2:4][1] for o in options}
    other_facilities = {u for u in units if u.startswith("FAC-") and u != "FAC-009"}
    assert not other_facilities
    # Their facility alone is compared with its own rate: no facility funnel flag is possible.
    assert not [o for o in options if o["value"].startswith("funnel|") and "FAC-" in o["value"]]
    assert "FAC-019" not in " ".join(texts(html.Div(listed)))
