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
from tests.dash_tree import find_by_id, grid_rows, texts

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


def test_quality_and_signals_follow_one_small_unit_rule(site):
    """A funnel flag on a unit with hidden counts: Signals listed it without counts while the
    Quality page showed "Hidden (small counts)" instead of the flag. Both now list the flag
    with the counts hidden, and list the same flags (and withhold the same ones)."""
    from dashboard.figures.quality import COUNTS_HIDDEN, TABLE_FLAGS
    from dashboard.figures.signals import KIND_TEXT
    from dashboard.pages.quality import update_quality
    from dashboard.pages.signals import signals_display
    from dashboard.state import settings_from_query

    app, _ = site
    defaults = settings_from_query("/quality", "")
    hidden_checked = 0
    with app.server.test_request_context("/signals"):
        _, display, _ = signals_display(None)
        parts = display["key"].str.split("|", expand=True)
        listed_signals = display.assign(chart=parts[0], outcome_key=parts[1], unit=parts[2],
                                        direction=parts[4])
        for outcome in sorted(set(listed_signals["outcome_key"])):
            for unit in ("facility_id", "operator_id"):
                group = listed_signals[(listed_signals["chart"] == "funnel")
                                       & (listed_signals["outcome_key"] == outcome)
                                       & (listed_signals["unit"] == unit)]
                page = update_quality({}, outcome, unit, defaults["adjust"], defaults["od"],
                                      defaults["proc"], None)
                rows = {r["unit"]: r for r in grid_rows(page[3], "quality-units")}
                flagged = {u for u, r in rows.items() if r["flag"].startswith(("Alarm", "Alert"))}
                assert flagged == set(group["unit_id"]), (outcome, unit)
                for shown in group.itertuples():
                    row = rows[shown.unit_id]
                    kind = "alarm" if shown.signal.startswith(KIND_TEXT["alarm"]) else "alert"
                    counts_hidden = "<11" in (shown.n, shown.observed) or shown.observed == "–"
                    assert row["flag"] == (TABLE_FLAGS[f"{kind}_{shown.direction}"]
                                           + (COUNTS_HIDDEN if counts_hidden else ""))
                    if counts_hidden:  # the same counts on both pages, no O/E
                        hidden_checked += 1
                        assert (row["n"], row["events"]) == (shown.n, shown.observed)
                        assert row["oe"] is None and shown.oe is None
    assert hidden_checked, "the seeded store has a funnel flag on a unit with hidden counts"


def test_a_signal_on_a_unit_whose_n_is_hidden_is_withheld_on_both_pages(site):
    """Tested from 10 cases, a unit shown as n "<11" would have n = 10: such a unit's flag is
    withheld on the Quality page and its signal is not listed."""
    from dashboard.figures.quality import TABLE_FLAGS
    from dashboard.pages.quality import update_quality
    from dashboard.pages.signals import signals_display, visible_signals
    from dashboard.state import settings_from_query

    app, _ = site
    defaults = settings_from_query("/quality", "")
    with app.server.test_request_context("/signals"):
        raw = visible_signals(None).signals
        small_n = raw[raw["n"].between(1, 10) & raw["kind"].isin(["alarm", "alert"])]
        assert not small_n.empty, "the seeded store has a flag on a unit with n of 10"
        _, display, _ = signals_display(None)
        assert not set(small_n["key"]) & set(display["key"])
        for signal in small_n.itertuples():
            page = update_quality({}, signal.outcome, signal.unit, defaults["adjust"],
                                  defaults["od"], defaults["proc"], None)
            row = {r["unit"]: r for r in grid_rows(page[3], "quality-units")}[signal.unit_id]
            assert row["flag"] == TABLE_FLAGS["hidden"] and row["n"] == "<11"
