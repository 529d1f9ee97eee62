"""Issue 14, item 3 in Chromium: numbers that read cleanly (Overview cards, key figures,
HTML reports without spreadsheet apostrophes or raw headings)."""

from __future__ import annotations

import json

import pytest

from analysis.filters import RecordFilter
from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records

RAW_HEADINGS = ("ci_95", "p_value", "outpatient_share", "rate_pct", "p_adjusted")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-clean') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def _card_rows(dash_duo) -> list[list[dict]]:
    """The Overview cards' boxes, grouped by line (same top)."""
    boxes = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('#kpi-cards > *')].map(e => {"
        "const r = e.getBoundingClientRect(); return {top: Math.round(r.top), left: r.left, "
        "right: r.right};});")
    lines: dict[int, list[dict]] = {}
    for box in boxes:
        lines.setdefault(box["top"], []).append(box)
    return [sorted(line, key=lambda b: b["left"]) for _, line in sorted(lines.items())]


@pytest.mark.parametrize("width", [1366, 1920])
def test_overview_cards_fill_every_line_and_intervals_stay_whole(dash_duo, database, width):
    dash_duo.driver.set_window_size(width, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.wait_for_element("#kpi-0-kyphoplasty", timeout=30)
    container = dash_duo.driver.execute_script(
        "return document.querySelector('#kpi-cards').getBoundingClientRect().right;")
    lines = _card_rows(dash_duo)
    assert sum(len(line) for line in lines) == 7
    for line in lines:  # no empty slot at the end of any line, the last one included
        assert abs(line[-1]["right"] - container) <= 2, (width, lines)
    # Each interval is one unbroken box: "33.5–37.7%" never splits over two lines.
    intervals = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('#kpi-cards .text-nowrap')]"
        ".filter(e => e.textContent.includes('–'))"
        ".map(e => [e.textContent, e.getClientRects().length]);")
    assert len(intervals) >= 10
    assert all(rects == 1 for _, rects in intervals), intervals


def test_key_figures_follow_the_cards_with_intervals_and_human_headings(dash_duo, database):
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.wait_for_element("#kpi-0-kyphoplasty", timeout=30)
    dash_duo.wait_for_element("#overview-key-figures .ag-row, "
                              "[id*='overview-kpis'] .ag-row", timeout=30)
    cards = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('#kpi-cards h2')].map(e => e.textContent);")
    measures = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('.ag-center-cols-container .ag-row')]"
        ".sort((a, b) => a.getAttribute('row-index') - b.getAttribute('row-index'))"
        ".map(r => r.querySelector(\"[col-id='Measure']\").textContent);")
    assert measures == cards and measures[0] == "Procedures"
    headers = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('.ag-header-cell-text')].map(e => e.textContent);")
    assert headers == ["Measure", "VP", "VP 95% CI and n", "KP", "KP 95% CI and n"]
    assert "–" in dash_duo.driver.execute_script(
        "return document.querySelector(\"[col-id='VP 95% CI and n'].ag-cell\") ? "
        "[...document.querySelectorAll(\".ag-cell[col-id='VP 95% CI and n']\")]"
        ".map(e => e.textContent).join(' ') : '';")


@pytest.mark.parametrize("path", ["/costs", "/durations", "/pain", "/"])
def test_html_report_shows_plain_values_and_human_headings(dash_duo, database, tmp_path, path):
    from dashboard.layout import download_report

    app = create_app(database)
    with app.server.test_request_context("/"):
        sent = download_report(1, path, RecordFilter().to_dict())
    report = tmp_path / "report.html"
    report.write_text(sent["content"], encoding="utf-8")
    dash_duo.driver.get(report.as_uri())
    cells = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('td')].map(e => e.innerText);")
    headings = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('th')].map(e => e.innerText);")
    assert cells and headings
    assert [c for c in cells if c.startswith("'")] == []
    assert not set(RAW_HEADINGS) & set(headings), headings
    if path == "/costs":  # the signed amounts are there, as plain text
        assert any(c.startswith(("+", "-", "−")) and c.endswith("USD") for c in cells), cells


def _grid_column(dash_duo, name: str, field: str) -> list[str]:
    """A data grid's values of one column in its display order, every page (AG Grid's API)."""
    grid_id = json.dumps({"name": name, "type": "data-grid"}, separators=(",", ":"))
    return dash_duo.driver.execute_script(
        "const api = dash_ag_grid.getApi(arguments[0]); const out = [];"
        "api.forEachNodeAfterFilterAndSort(n => out.push(String(n.data[arguments[1]])));"
        "return out;", grid_id, field)


def test_quality_table_lists_flagged_units_first_and_agrees_with_the_cards(dash_duo, database):
    from dashboard.figures.quality import COUNTS_HIDDEN, HIDDEN_FLAG, TABLE_FLAGS, TABLE_ORDER

    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/quality?outcome=cement_leakage")
    dash_duo.wait_for_element("#quality-alarms", timeout=60)
    grid = "div[id*='quality-units']"
    dash_duo.wait_for_element(f"{grid} .ag-row", timeout=60)
    flags = _grid_column(dash_duo, "quality-units", "flag")
    shown = dash_duo.driver.execute_script(  # the first rows on screen are the same
        "return [...document.querySelectorAll(arguments[0] + ' .ag-center-cols-container "
        ".ag-row')].sort((a, b) => a.getAttribute('row-index') - b.getAttribute('row-index'))"
        ".map(r => r.querySelector(\"[col-id='flag']\").textContent);", grid)
    assert shown == flags[:len(shown)] and len(shown) >= 10
    rank = {TABLE_FLAGS[flag]: i for i, flag in enumerate(TABLE_ORDER)}
    # Units with hidden counts are listed by their own flag (one small-unit rule, issue 15).
    counts_hidden = [f for f in flags if f.endswith(COUNTS_HIDDEN)]
    flags = [f.removesuffix(COUNTS_HIDDEN) for f in flags]
    ranks = [rank[f] for f in flags]
    assert ranks == sorted(ranks), flags
    alarms = int(dash_duo.find_element("#quality-alarms").text)
    alerts = int(dash_duo.find_element("#quality-alerts").text)
    assert sum(f.startswith("Alarm") for f in flags) == alarms
    assert sum(f.startswith("Alert") for f in flags) == alerts
    assert alarms + alerts >= 1 and flags[0].startswith("Alarm" if alarms else "Alert")
    hidden = flags.count(TABLE_FLAGS[HIDDEN_FLAG]) + len(counts_hidden)
    assert f"{hidden} with counts hidden" in dash_duo.find_element("#quality-tested-detail").text
    assert "flagged first" in dash_duo.find_element("#quality-table-caption").text


def test_costs_ranked_cost_per_responder_and_where_the_adjusted_ratio_is(dash_duo, database):
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/costs")
    dash_duo.wait_for_element("#costs-ranking-figure .main-svg", timeout=60)
    dash_duo.wait_for_element("div[id*='costs-ranking'] .ag-row", timeout=60)
    ranks = _grid_column(dash_duo, "costs-ranking", "rank")
    values = _grid_column(dash_duo, "costs-ranking", "cost_per_responder")
    notes = _grid_column(dash_duo, "costs-ranking", "note")
    ranked = [r for r in ranks if r != ""]
    assert ranked == [str(i) for i in range(1, len(ranked) + 1)] and len(ranked) >= 3
    amounts = [float(v.replace(",", "")) for v in values[:len(ranked)]]
    assert amounts == sorted(amounts)
    # Every blank row says why (suppression or too few responders); no blank without a note.
    for value, note in zip(values[len(ranked):], notes[len(ranked):], strict=True):
        assert value in ("None", "null", "") and note.startswith(
            ("suppressed", "no responders", "too few responders")), (value, note)
    assert "Fieller" in dash_duo.find_element("#costs-ranking-note").text
    where = dash_duo.find_element("#costs-ratio-where")
    assert "VP vs KP page" in where.text
    assert where.find_element("css selector", "a").get_attribute("href").endswith("/comparison")
