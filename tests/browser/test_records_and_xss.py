"""Text from data is shown as text: markup in records, file names and headings creates no
element on the Data page, in the record grid or in the HTML report (real headless Chromium).

Every payload would announce itself if it ran: ``onerror=alert(1)`` opens an alert (any later
WebDriver call then fails) and the script sets ``window.__xss``.
"""

from __future__ import annotations

import urllib.parse

import pytest
from selenium.common.exceptions import NoAlertPresentException

from analysis.filters import RecordFilter
from dashboard.app_factory import create_app
from data import import_dataframe, import_file, store
from data.demo import demo_records

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>window.__xss=1</script>"


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("browser_xss")
    url = f"sqlite:///{folder / 'store.db'}"
    records = demo_records(800, seed=8)
    records.loc[records.index[:4], "region"] = IMG
    import_dataframe(records, "demo", url, synthetic=True)
    # Markup in ids is refused at import (rule "markup"); a store written before that rule may
    # still hold such ids, and they must show as text too.
    with store.get_engine(url).begin() as connection:
        connection.execute(store.records.update().where(
            store.records.c.record_id.in_(records["record_id"].iloc[:4].tolist()))
            .values(operator_id=SCRIPT))
    # A file whose name and extra column heading are markup, with a rejected row.
    export = folder / f"{IMG}.csv"
    export.write_text(
        "record_id,patient_id,facility_id,country,procedure_date,procedure,age,sex,etiology,"
        f"levels_treated,pain_baseline,cement_leakage,pulmonary_embolism,adjacent_fracture,"
        f"{SCRIPT}\n"
        f"XSS-1,P-1,FAC-X,US,2024-01-02,VP,70,F,osteoporotic,1,8,N,N,N,{SCRIPT}\n"
        "XSS-2,P-2,FAC-X,US,2024-01-03,VP,not-an-age,F,osteoporotic,1,8,N,N,N,x\n",
        encoding="utf-8")
    import_file(export, url)
    yield url
    store.dispose_engines()


def assert_no_markup_ran(dash_duo):
    driver = dash_duo.driver
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        text = None
    assert text is None, f"an injected handler opened an alert ({text!r})"
    assert driver.execute_script("return window.__xss === undefined")
    assert driver.find_elements("css selector", "img[src='x']") == []
    assert driver.execute_script(
        "return [...document.querySelectorAll('script')].filter("
        "s => s.textContent.includes('__xss')).length") == 0


def test_markup_in_data_is_literal_text_on_the_data_page_and_record_grid(dash_duo, database):
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/data")
    dash_duo.wait_for_contains_text("#data-imports", f"{IMG}.csv", timeout=30)
    page = dash_duo.find_element("#main").text
    assert SCRIPT in page  # the ignored column's heading, as text
    assert_no_markup_ran(dash_duo)

    query = urllib.parse.urlencode({"region": IMG})
    dash_duo.driver.get(f"{dash_duo.server_url}/records?{query}")
    dash_duo.wait_for_contains_text("#records-grid", IMG, timeout=30)
    grid = dash_duo.find_element("#records-grid").text
    assert grid.count(IMG) == 4 and SCRIPT in grid  # 4 matching records, cells as text
    assert_no_markup_ran(dash_duo)
    assert dash_duo.get_logs() == []


def test_record_grid_fetches_blocks_and_follows_the_filters(dash_duo, database):
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/records?procedure=kyphoplasty")
    dash_duo.wait_for_contains_text("#records-grid", "kyphoplasty", timeout=30)
    text = dash_duo.find_element("#records-grid").text
    assert "vertebroplasty" not in text
    rendered = dash_duo.driver.execute_script(
        "return document.querySelectorAll('#records-grid .ag-center-cols-container "
        "[role=row]').length")
    assert 0 < rendered <= 100  # one block of at most 100 rows in the browser
    # A filter change in the page (no reload): the grid shows the new selection's rows.
    reset = dash_duo.find_element("#filter-reset")
    dash_duo.driver.execute_script("arguments[0].click()", reset)  # below the fold
    dash_duo.wait_for_contains_text("#records-grid", "vertebroplasty", timeout=30)
    assert dash_duo.get_logs() == []


def test_markup_in_data_is_literal_text_in_the_html_report(dash_duo, database, tmp_path):
    from dashboard.layout import download_report

    app = create_app(database)
    with app.server.test_request_context("/"):
        sent = download_report(1, "/data", RecordFilter().to_dict())
    document = sent["content"]
    assert IMG not in document and "&lt;img src=x onerror=alert(1)&gt;" in document
    path = tmp_path / "report.html"
    path.write_text(document, encoding="utf-8")
    dash_duo.driver.get(path.as_uri())
    body = dash_duo.driver.find_element("tag name", "body").text
    assert f"{IMG}.csv" in body and SCRIPT in body
    assert_no_markup_ran(dash_duo)


def test_download_csv_button_saves_the_servers_file_and_audits_it(dash_duo, database):
    """Clicking "Download CSV" under a table saves the server-written file (and logs it)."""
    import time
    from pathlib import Path

    from data.audit import read_events

    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/data")
    dash_duo.wait_for_contains_text("#data-imports", f"{IMG}.csv", timeout=30)
    button = dash_duo.driver.find_element(
        "css selector", "[id*='data-batches'][id*='csv-export']")
    dash_duo.driver.execute_script("arguments[0].click()", button)
    target = Path(dash_duo.download_path) / "import-batches.csv"
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), list(Path(dash_duo.download_path).iterdir())
    text = target.read_text(encoding="utf-8")
    assert f"{IMG}.csv" in text and SCRIPT in text  # the batch's file name and ignored column
    event = read_events(database, limit=1).iloc[0]
    assert (event.action, event.actor, event.detail["table"]) == ("download", "local",
                                                                  "data-batches")
    assert dash_duo.get_logs() == []
