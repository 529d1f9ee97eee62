"""The Pain relief page in a real headless Chromium."""

from __future__ import annotations

import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import ResponderDefinition, responder_rates
from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-pain') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def rate(records, selection, definition, procedure="kyphoplasty") -> str:
    rates = responder_rates(apply_filter(records, selection), definition)
    row = rates[rates.procedure.astype(str) == procedure].iloc[0]
    return f"{100 * row.rate:.1f}%"


def test_pain_page_loads_with_filter_and_definition(dash_duo, database):
    records = load_records(database)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/pain?country=GB")
    selection = RecordFilter(countries=("GB",))
    dash_duo.wait_for_text_to_equal("#pain-rate-kyphoplasty",
                                    rate(records, selection, ResponderDefinition()), timeout=30)
    assert "GB" in dash_duo.find_element("#filter-country").text
    # Choosing an absolute definition (default 2 points) updates the numbers.
    dash_duo.find_elements("#pain-kind label")[1].click()
    dash_duo.wait_for_text_to_equal("#pain-responder-title",
                                    "Responders: ≥2-point pain reduction at month 1", timeout=30)
    expected = rate(records, selection, ResponderDefinition("month1", "absolute", 2.0))
    dash_duo.wait_for_text_to_equal("#pain-rate-kyphoplasty", expected, timeout=30)
    dash_duo.wait_for_element("#pain-histogram-graph .main-svg", timeout=30)
    assert dash_duo.get_logs() == []
