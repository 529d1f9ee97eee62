"""The app in a real headless Chromium: the page loads without console errors and shows the
counts of the store it was given."""

from __future__ import annotations

from dashboard.app_factory import create_app
from data import import_file
from tests.conftest import FIXTURES


def test_overview_shows_record_counts(dash_duo, sqlite_database):
    # Accepted: US-1001 (CPT 22514) and US-1003 (22513) are KP; US-1002 and US-1007 (22511) are VP.
    import_file(FIXTURES / "exports" / "us_export.csv", sqlite_database)
    app = create_app(sqlite_database)
    dash_duo.start_server(app)
    dash_duo.wait_for_text_to_equal("#count-kyphoplasty", "2", timeout=20)
    assert dash_duo.find_element("#count-vertebroplasty").text == "2"
    assert dash_duo.find_element("#total-records").text == "4 records in total."
    assert dash_duo.get_logs() == []
