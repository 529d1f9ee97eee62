"""The Quality monitoring page in a real headless Chromium."""

from __future__ import annotations

import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.quality import funnel_data
from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-quality') / 'store.db'}"
    import_dataframe(demo_records(3000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_quality_page_loads_with_filters_from_the_link(dash_duo, database):
    records = load_records(database)
    selection = RecordFilter(countries=("GB", "US"))
    expected = funnel_data(apply_filter(records, selection), "facility_id", "cement_leakage",
                           adjust=True)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/quality?country=GB,US")
    dash_duo.wait_for_text_to_equal("#quality-target", f"{100 * expected.target:.1f}%",
                                    timeout=30)
    dash_duo.wait_for_element("#quality-funnel-graph .main-svg", timeout=30)
    dash_duo.wait_for_element("#quality-caterpillar-graph .main-svg", timeout=30)
    dash_duo.wait_for_element("#quality-cusum-graph .main-svg", timeout=30)
    assert "Active adjustment: risk-adjusted" in dash_duo.find_element("#quality-explanation").text
    assert "country=GB,US" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []
