"""The Signals page in a real headless Chromium: the list, a review, the Quality link."""

from __future__ import annotations

import pytest

from dashboard.app_factory import create_app
from data import import_dataframe, signal_reviews, store
from data.demo import demo_records
from tests.browser.helpers import click

#: The signals of every outcome and unit take tens of seconds on a shared machine.
SLOW = 300


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-signals') / 'store.db'}"
    import_dataframe(demo_records(), "demo", url, synthetic=True)  # the demo data as shipped
    yield url
    store.dispose_engines()


def _row_cells(dash_duo, row: int) -> list[str]:
    cells = dash_duo.driver.find_elements(
        "css selector", f"#signals-table tbody tr:nth-child({row}) td")
    return [c.text for c in cells]


def test_signals_page_lists_reviews_and_links_to_the_quality_view(dash_duo, database):
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/signals?since=2024-06-01")
    dash_duo.wait_for_element("#signals-table tbody tr", timeout=SLOW)
    assert "since 01 Jun 2024" in dash_duo.find_element("#signals-summary").text
    top = {_row_cells(dash_duo, 1)[4], _row_cells(dash_duo, 2)[4]}
    assert top == {"FAC-009", "FAC-019"}
    assert _row_cells(dash_duo, 1)[0] == "New"

    # Review the first signal: the status shows in the list and the history.
    dash_duo.select_dcc_dropdown("#signals-ack-key", index=0)
    dash_duo.find_element("#signals-ack-note").send_keys("case notes requested")
    click(dash_duo, "#signals-ack-save")
    dash_duo.wait_for_contains_text("#signals-ack-message", "Saved", timeout=SLOW)
    dash_duo.wait_for_contains_text("#signals-history-table", "case notes requested",
                                    timeout=SLOW)
    dash_duo.wait_for_text_to_equal("#signals-table tbody tr:nth-child(1) td:nth-child(13)",
                                    "under review", timeout=SLOW)
    history = signal_reviews.review_history(database)
    assert history["status"].tolist() == ["under review"] and history["actor"].tolist() == [
        "local"]

    # The link opens the Quality page on that outcome, unit type and unit.
    href = dash_duo.find_element("#signals-link-0").get_attribute("href")
    assert "/quality?outcome=cement_leakage&unit=facility_id&cusum=FAC-0" in href
    click(dash_duo, "#signals-link-0")
    dash_duo.wait_for_element("#quality-funnel-graph", timeout=SLOW)
    # The Quality page keeps the view's settings in its address (its CUSUM unit included;
    # default settings such as outcome=cement_leakage are left out of the address).
    assert "cusum=FAC-0" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []
