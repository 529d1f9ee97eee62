"""The Complications page in a real headless Chromium."""

from __future__ import annotations

import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import complication_rates
from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('complications-browser') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_complications_page_loads_with_filter_from_link(dash_duo, database):
    records = load_records(database)
    selection = RecordFilter(countries=("US",))
    rates = complication_rates(apply_filter(records, selection))
    leak = rates[(rates.outcome == "cement_leakage")
                 & (rates.procedure.astype(str) == "kyphoplasty")].iloc[0]
    expected = f"{100 * leak.rate:.1f}% ({100 * leak.low:.1f}–{100 * leak.high:.1f})"

    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/complications?country=US")
    dash_duo.wait_for_contains_text("#complications-rates", expected, timeout=30)
    dash_duo.wait_for_element("#complications-forest-graph .main-svg", timeout=30)
    dash_duo.wait_for_element("#complications-fracture-graph .main-svg", timeout=30)
    dash_duo.wait_for_contains_text("#complications-benchmark-caveat", "differ between studies")
    assert "US" in dash_duo.find_element("#filter-country").text
    assert dash_duo.get_logs() == []
