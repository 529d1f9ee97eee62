"""The Costs page in a real headless Chromium."""

from __future__ import annotations

import pytest

from analysis.costs import CostOptions, net_benefit_regression, normalise_costs
from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import ResponderDefinition
from dashboard.app_factory import create_app
from dashboard.suppression import rounded_count
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-costs') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_costs_page_with_filter_in_url(dash_duo, database):
    records = load_records(database)
    chosen = apply_filter(records, RecordFilter(countries=("US", "GB")))
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/costs?country=GB,US")

    costed = normalise_costs(chosen, CostOptions())["cost_reporting"].notna().sum()
    dash_duo.wait_for_text_to_equal("#costs-count-costed", f"{int(costed):,}", timeout=30)
    # The selection's total is rounded to 5 (secondary suppression, dashboard.suppression).
    dash_duo.wait_for_text_to_equal("#costs-count-records", rounded_count(len(chosen)))

    # Switch the reporting currency: the adjusted incremental cost follows analysis in GBP.
    dash_duo.find_element("label[for='_dbcprivate_radioitems_costs-currency_input_GBP']").click()
    expected = net_benefit_regression(chosen, ResponderDefinition(),
                                      options=CostOptions(reporting_currency="GBP"))
    dash_duo.wait_for_text_to_equal("#costs-icer-text", expected.verdict, timeout=30)
    dash_duo.wait_for_element("#costs-ceac .main-svg", timeout=30)  # the acceptability curve
    assert "country=GB,US" in dash_duo.driver.current_url or \
        "country=GB%2CUS" in dash_duo.driver.current_url
    dash_duo.wait_for_element(".ag-row", timeout=10)  # the grids have rendered (no warnings)
    assert dash_duo.get_logs() == []
