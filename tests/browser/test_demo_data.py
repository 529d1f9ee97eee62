"""Issue 14 item 2 in a real headless Chromium: after an upload the match count and the demo
banner follow at once; an admin removes the demo data after confirming."""

from __future__ import annotations

import pytest

from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records
from tests.browser.helpers import click


@pytest.fixture
def database(tmp_path):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    import_dataframe(demo_records(800, seed=4), "demo-800", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_upload_updates_the_match_count_and_the_demo_data_can_be_removed(dash_duo, database,
                                                                        tmp_path):
    real = demo_records(40, seed=8)
    real["record_id"] = [f"REAL-{i}" for i in range(40)]
    real["patient_id"] = [f"REAL-P{i}" for i in range(40)]
    upload = tmp_path / "first-real-export.csv"
    real.to_csv(upload, index=False)

    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/data")
    dash_duo.wait_for_text_to_equal("#match-count", "≈800 of ≈800 records match", timeout=30)
    assert dash_duo.find_element("#demo-banner").text.startswith("Synthetic demonstration data")

    dash_duo.driver.find_element("css selector", "input[type=file]").send_keys(str(upload))
    dash_duo.wait_for_contains_text("#data-upload-summary", "40 accepted", timeout=60)
    # No reload: the match count and the banner follow the new data version.
    dash_duo.wait_for_text_to_equal("#match-count", "≈840 of ≈840 records match", timeout=30)
    dash_duo.wait_for_contains_text(
        "#demo-banner", "800 of 840 records (95.24%) are synthetic demo data.", timeout=30)

    dash_duo.driver.refresh()  # the section lists the demo batch as the page is built
    click(dash_duo, "#data-demo-open")
    dash_duo.wait_for_element("#data-demo-modal", timeout=10)
    click(dash_duo, "#data-demo-confirm")
    dash_duo.wait_for_contains_text("#data-demo-removed", "Removed 800 synthetic records",
                                    timeout=30)
    dash_duo.wait_for_text_to_equal("#match-count", "≈40 of ≈40 records match", timeout=30)
    dash_duo.wait_for_text_to_equal("#demo-banner-slot", "", timeout=30)
    assert [entry for entry in dash_duo.get_logs() if entry["level"] == "SEVERE"] == []
