"""Page settings in the URL and in the report, in a real headless Chromium (issue 14, item 1):
set controls, change a global filter (the settings stay), open the address again in a fresh page
load (the same numbers show), and download the report (it shows the same settings and numbers).
"""

from __future__ import annotations

import html
import pathlib
import re
import time
import urllib.parse

import pytest

from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records
from tests.browser.helpers import click


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-settings') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def _wait_for_url(dash_duo, *parts: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = urllib.parse.unquote(dash_duo.driver.current_url)
        if all(part in url for part in parts):
            return url
        time.sleep(0.2)
    raise AssertionError(f"{parts} not in {dash_duo.driver.current_url}")


def _text(dash_duo, selector: str, contains: str = "", timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = dash_duo.wait_for_element(selector, timeout=timeout).text.strip()
        if text and contains in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector}: {text!r} lacks {contains!r}")
        time.sleep(0.2)


def _checked(dash_duo, control: str, value: str) -> bool:
    return dash_duo.driver.find_element(
        "id", f"_dbcprivate_radioitems_{control}_input_{value}").is_selected()


def _downloaded_report(dash_duo, timeout: float = 60) -> str:
    folder = pathlib.Path(dash_duo.download_path)
    before = set(folder.glob("*.html"))
    click(dash_duo, "#report-button")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(folder.glob("*.html")) - before
        if new:
            time.sleep(0.3)  # let Chromium finish writing the file
            return html.unescape(re.sub(r"<[^>]+>", " ", new.pop().read_text(encoding="utf-8")))
        time.sleep(0.3)
    raise AssertionError("no report was downloaded")


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_costs_settings_survive_a_filter_change_a_fresh_load_and_the_report(dash_duo, database):
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/costs?country=GB,US")
    _text(dash_duo, "#costs-count-costed")
    click(dash_duo, "label[for='_dbcprivate_radioitems_costs-currency_input_INR']")
    click(dash_duo, "label[for='_dbcprivate_radioitems_costs-grouping_input_country']")
    _wait_for_url(dash_duo, "cur=INR", "group=country")
    _text(dash_duo, "#costs-body", "by country (INR)")

    # A global filter change keeps the page's settings (it reset the currency to USD before).
    dash_duo.select_dcc_dropdown("#filter-country", value="DE")
    url = _wait_for_url(dash_duo, "country=DE,GB,US", "cur=INR", "group=country")
    _text(dash_duo, "#costs-body", "by country (INR)")
    assert _checked(dash_duo, "costs-currency", "INR")
    assert _checked(dash_duo, "costs-grouping", "country")
    icer = _text(dash_duo, "#costs-icer-text")
    costed = _text(dash_duo, "#costs-count-costed")

    # The address opened afresh shows the same view and numbers.
    dash_duo.driver.get(url)
    _text(dash_duo, "#costs-body", "by country (INR)")
    assert _text(dash_duo, "#costs-icer-text") == icer
    assert _text(dash_duo, "#costs-count-costed") == costed
    assert _checked(dash_duo, "costs-currency", "INR")
    assert _checked(dash_duo, "costs-grouping", "country")

    # The report shows what the screen shows.
    report = _squash(_downloaded_report(dash_duo))
    assert "Costs in INR at market exchange rates" in report
    assert "grouped by country" in report
    assert "Reporting currency: INR" in report
    assert _squash(icer) in report


def test_quality_outcome_and_unit_come_back_from_the_url_and_reach_the_report(dash_duo, database):
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/quality")
    _text(dash_duo, "#quality-stats")
    dash_duo.select_dcc_dropdown("#quality-outcome", value="Cement embolism")
    click(dash_duo, "label[for='_dbcprivate_radioitems_quality-unit_input_operator_id']")
    url = _wait_for_url(dash_duo, "outcome=pulmonary_embolism", "unit=operator_id")
    stats = _text(dash_duo, "#quality-stats", "Operators tested")

    dash_duo.driver.get(url)  # a fresh page load of the shared address
    assert _text(dash_duo, "#quality-stats", "Operators tested") == stats
    assert "Cement embolism" in dash_duo.find_element("#quality-outcome").text
    assert _checked(dash_duo, "quality-unit", "operator_id")

    report = _squash(_downloaded_report(dash_duo))
    assert "Outcome: Cement embolism; Compare: Operators" in report


def test_a_saved_view_is_listed_and_opens_the_same_view(dash_duo, database):
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/complications?country=US&measure=rd&period=Q")
    _text(dash_duo, "#complications-forest", "Risk differences, KP − VP")
    click(dash_duo, "#views-open")
    _text(dash_duo, "#views-list", "No saved views yet.")
    dash_duo.find_element("#view-name").send_keys("US risk differences")
    click(dash_duo, "#view-save")
    _text(dash_duo, "#view-status", "Saved")
    link = dash_duo.wait_for_element("#views-items a.view-link", timeout=10)
    assert link.text == "US risk differences"
    assert urllib.parse.unquote(link.get_attribute("href")).endswith(
        "/complications?country=US&measure=rd&period=Q")

    dash_duo.driver.get(dash_duo.server_url + "/")  # elsewhere, then open the saved view
    click(dash_duo, "#views-open")
    click(dash_duo, "#views-items a.view-link")
    _wait_for_url(dash_duo, "/complications?country=US&measure=rd&period=Q")
    _text(dash_duo, "#complications-forest", "Risk differences, KP − VP")
    assert dash_duo.driver.find_element(
        "css selector", "#complications-period input[value='Q']").is_selected()
    # The local user is an admin: the view can be published to everyone.
    click(dash_duo, "#views-open")
    click(dash_duo, "#views-items button")
    _text(dash_duo, "#view-status", "Published to everyone.")
    _text(dash_duo, "#views-list", "published")
