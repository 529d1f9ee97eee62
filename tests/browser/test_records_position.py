"""The Records grid says where the user is (issue 14 item 4): "Rows X–Y of N matching records",
with N the number of records matching the global filters, the user's facility restriction and
the column filters, and X–Y the rows in view as the user scrolls (real headless Chromium)."""

from __future__ import annotations

import time

import pytest

from dashboard.app_factory import create_app
from dashboard.auth.config import load_config
from data import import_dataframe, load_records, store
from data.demo import demo_records
from tests.auth_support import PASSWORD, auth_dir

RESTRICTED = ["FAC-004", "FAC-011", "FAC-017"]
# The rows whose middle lies inside the grid's scrolled window, measured on their boxes.
ROWS_IN_VIEW = """
const rows = [...document.querySelectorAll('#records-grid .ag-center-cols-container .ag-row')]
  .filter(r => r.getBoundingClientRect().height > 0);
const view = document.querySelector('#records-grid .ag-body-viewport').getBoundingClientRect();
const inside = rows.filter(r => { const b = r.getBoundingClientRect();
                                  const middle = (b.top + b.bottom) / 2;
                                  return middle >= view.top && middle <= view.bottom; })
  .map(r => Number(r.getAttribute('row-index')));
return [Math.min(...inside) + 1, Math.max(...inside) + 1];
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("browser-records-position")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(3000, seed=31), "demo", database, synthetic=True)
    config = auth_dir(folder / "auth", {"north": ("analyst", RESTRICTED)})
    yield database, config
    store.dispose_engines()


def _position(dash_duo, expected: str) -> str:
    dash_duo.wait_for_contains_text("#records-position", expected, timeout=30)
    return dash_duo.find_element("#records-position").text


def _agrees_with_rows_in_view(dash_duo, total: int, timeout: float = 15) -> str:
    """Wait until the line names the rows in view (measured on the row boxes) of ``total``."""
    deadline = time.monotonic() + timeout
    while True:
        first, last = dash_duo.driver.execute_script(ROWS_IN_VIEW)
        expected = f"Rows {first:,}–{last:,} of {total:,} matching records"
        text = dash_duo.find_element("#records-position").text
        if text == expected or time.monotonic() > deadline:
            assert text == expected
            return text
        time.sleep(0.25)


def test_records_grid_shows_rows_in_view_of_the_matching_total(dash_duo, site):
    database, config = site
    records = load_records(database)
    mine = records[records.facility_id.isin(RESTRICTED) & (records.procedure == "kyphoplasty")]
    total = len(mine)
    assert total > 300  # several blocks of 100 rows

    dash_duo.start_server(create_app(database, load_config(config)), navigate=False)
    dash_duo._url = dash_duo.server.url  # not navigated: the sign-in page comes first
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/records?procedure=kyphoplasty")
    dash_duo.wait_for_element("#login-form", timeout=20)
    dash_duo.find_element("#username").send_keys("north")
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_contains_text("#records-grid", "kyphoplasty", timeout=30)

    # N is the server's count of this analyst's facilities and the filters, not 100 (one
    # block) nor the whole store.
    _position(dash_duo, f"of {total:,} matching records")
    text = _agrees_with_rows_in_view(dash_duo, total)
    first, last = dash_duo.driver.execute_script(ROWS_IN_VIEW)
    assert first == 1 and 5 < last < 100 and text.startswith("Rows 1–")

    # Scrolled into the third block: the line follows.
    dash_duo.driver.execute_script(
        "dash_ag_grid.getApi('records-grid').ensureIndexVisible(250, 'top')")
    _position(dash_duo, "Rows 251–")
    assert _agrees_with_rows_in_view(dash_duo, total).startswith("Rows 251–")

    # A column filter: N is the count of the records passing it too.
    older = int((mine.age > 80).sum())
    dash_duo.driver.execute_script(
        "dash_ag_grid.getApi('records-grid').setFilterModel("
        "{age: {filterType: 'number', type: 'greaterThan', filter: 80}})")
    _position(dash_duo, f"of {older:,} matching records")
    _agrees_with_rows_in_view(dash_duo, older)
    dash_duo.driver.execute_script("dash_ag_grid.getApi('records-grid').ensureIndexVisible(0, 'top')")
    assert _agrees_with_rows_in_view(dash_duo, older).startswith("Rows 1–")
    # Nothing matches: said so.
    dash_duo.driver.execute_script(
        "dash_ag_grid.getApi('records-grid').setFilterModel("
        "{age: {filterType: 'number', type: 'greaterThan', filter: 200}})")
    _position(dash_duo, "No records match the filters.")
    assert dash_duo.get_logs() == []
