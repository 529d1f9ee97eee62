"""The Signals page's report (issue 15 gap): the Report button, ``report_for_url`` and the
monthly pack render exactly the list on screen (since-date of the address, facility filter,
suppression applied once where values become text). A small seeded store keeps it quick."""

from __future__ import annotations

import html
import re

import pytest
from dash import html as dhtml

from dashboard import report_cli
from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records
from tests.dash_tree import find_by_id, texts

SINCE = "2024-06-01"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('signals-report') / 'store.db'}"
    import_dataframe(demo_records(600, seed=5), "demo", database, synthetic=True)
    yield create_app(database), database
    store.dispose_engines()


def _plain(document: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", document)))


def _screen(app, since: str | None, state: dict | None = None):
    """The page's list: (summary sentence, rows of the table as cell texts)."""
    from dashboard.pages.signals import update_signals

    with app.server.test_request_context("/signals"):
        listed, _options, _history = update_signals(since, 0, state)
    summary = " ".join(texts(find_by_id(dhtml.Div(listed), "signals-summary")))
    table = find_by_id(dhtml.Div(listed), "signals-table")
    rows = [[" ".join(texts(cell)) for cell in row.children] for row in table.children[1].children]
    return summary, rows


def test_signals_page_has_a_report_like_the_other_pages(site):
    from dashboard.report import REPORT_BUILDERS

    assert "/signals" in REPORT_BUILDERS
    assert report_cli.pack_pages()[1] == report_cli.SIGNALS_PACK_PAGE


def test_report_button_renders_the_list_on_screen_for_the_since_date_of_the_address(site):
    from dashboard.layout import download_report

    app, _ = site
    summary, rows = _screen(app, SINCE)
    assert rows, "the seeded store has signals"
    with app.server.test_request_context("/signals"):
        sent = download_report(1, "/signals", {}, f"?since={SINCE}")
    document = _plain(sent["content"])
    assert summary in document and "since 01 Jun 2024" in summary
    assert "Page settings: CUSUM signals since: 2024-06-01" in document
    for row in rows:  # every row on screen, its signal, unit and suppressed counts, in order
        assert " ".join(row[1:7]) in document, row
    # Another date gives another list (the date is the address's, not a fixed default).
    later_summary, _ = _screen(app, "2026-01-01")
    assert later_summary != summary and later_summary not in document


def test_report_for_url_applies_the_facility_filter_as_the_page_does(site):
    from dashboard.report import report_for_url

    app, database = site
    _, everything = _screen(app, SINCE)
    facility = next(r[4] for r in everything if r[3] == "Facility")
    _, rows = _screen(app, SINCE, {"facilities": [facility]})
    assert rows and {r[4] for r in rows if r[3] == "Facility"} == {facility}
    assert len(rows) < len(everything)
    document = _plain(report_for_url("/signals", f"?since={SINCE}&facility={facility}",
                                     database))
    listed = set(re.findall(r"FAC-\d{3}", document.split("What was monitored")[0]))
    assert listed == {facility}
    for row in rows:
        assert " ".join(row[1:7]) in document


def test_small_units_are_listed_with_their_counts_hidden_in_the_report(site):
    from dashboard.report import report_for_url

    app, database = site
    _, rows = _screen(app, None)
    small = [r for r in rows if "<11" in (r[5], r[6])]
    assert small, "the seeded store has a signal on a small unit"
    document = _plain(report_for_url("/signals", "", database))
    for row in small:
        # Listed (signal, outcome, unit), counts as on screen, O/E and CI hidden.
        assert " ".join(row[1:7]) + " – – –" in document


def test_quality_pack_has_a_signals_part_per_facility(site, tmp_path):
    _app, database = site
    out = tmp_path / "pack"
    status = report_cli.main(["--pack", "quality", "--facilities", "FAC-040", "--anonymise",
                              "--out", str(out), "--database", database])
    assert status == 0
    document = _plain((out / "quality-pack-FAC-040.html").read_text(encoding="utf-8"))
    assert "Quality signals" in document and "What was monitored" in document
    scorecard, signals = document.index("Scorecard of FAC-040"), document.index("Signals ")
    assert scorecard < signals < document.index("Quality monitoring")
    # Sent to the facility: no other facility named anywhere in the pack.
    assert set(re.findall(r"FAC-\d{3}", document)) == {"FAC-040"}
