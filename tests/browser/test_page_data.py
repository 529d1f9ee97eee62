"""The Data page in a real headless Chromium."""

from __future__ import annotations

import pytest

from analysis.filters import RecordFilter, apply_filter
from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser_data') / 'store.db'}"
    import_dataframe(demo_records(1500, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_data_page_loads_with_filters_from_the_link(dash_duo, database):
    records = load_records(database)
    chosen = apply_filter(records, RecordFilter(countries=("US",), procedures=("kyphoplasty",)))
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/data?country=US&procedure=kyphoplasty")
    dash_duo.wait_for_text_to_equal("#data-completeness-n-kyphoplasty", f"{len(chosen):,}",
                                    timeout=30)
    dash_duo.wait_for_text_to_equal("#data-completeness-n-vertebroplasty", "0")
    dash_duo.wait_for_text_to_equal("#data-stat-accepted", f"{len(records):,}", timeout=30)
    assert dash_duo.find_element("#data-required-check").text == "all 100% complete"
    assert "python -m data import FILE" in dash_duo.find_element("#main").text
    assert dash_duo.get_logs() == []
