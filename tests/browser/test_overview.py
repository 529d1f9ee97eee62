"""The dashboard in a real headless Chromium."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter
from dashboard.app_factory import create_app
from dashboard.suppression import rounded_count
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def kyphoplasty_count(records: pd.DataFrame) -> str:
    """The Overview's KP "Procedures" card: a selection total, rounded (and protected)."""
    from dashboard.suppression import partition_texts

    sizes = {p: int((records.procedure == p).sum()) for p in ("vertebroplasty", "kyphoplasty")}
    return partition_texts(sizes, rounded=True)["kyphoplasty"]


def test_overview_loads_and_filters(dash_duo, database):
    records = load_records(database)
    dash_duo.start_server(create_app(database))
    dash_duo.wait_for_text_to_equal("#kpi-0-kyphoplasty", kyphoplasty_count(records), timeout=30)
    dash_duo.wait_for_text_to_equal("#match-count", f"{rounded_count(len(records))} of {rounded_count(len(records))} records match")
    assert dash_duo.find_element("#demo-banner").text.startswith("Synthetic demonstration data")

    dash_duo.select_dcc_dropdown("#filter-country", value="GB")
    chosen = apply_filter(records, RecordFilter(countries=("GB",)))
    dash_duo.wait_for_text_to_equal("#kpi-0-kyphoplasty", kyphoplasty_count(chosen), timeout=30)
    dash_duo.wait_for_text_to_equal("#match-count", f"{rounded_count(len(chosen))} of {rounded_count(len(records))} records match")
    assert "country=GB" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []


def test_link_with_filters_restores_the_view(dash_duo, database):
    records = load_records(database)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/?country=US&age=75-84")
    chosen = apply_filter(records, RecordFilter(countries=("US",), age_bands=("75-84",)))
    dash_duo.wait_for_text_to_equal("#kpi-0-kyphoplasty", kyphoplasty_count(chosen), timeout=30)
    assert "US" in dash_duo.find_element("#filter-country").text
    assert "75-84" in dash_duo.find_element("#filter-age").text
    reset = dash_duo.find_element("#filter-reset")
    dash_duo.driver.set_window_size(1280, 1400)  # the whole filter panel in view
    reset.click()
    dash_duo.wait_for_text_to_equal("#kpi-0-kyphoplasty", kyphoplasty_count(records), timeout=30)
    assert dash_duo.get_logs() == []
