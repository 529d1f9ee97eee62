"""The "VP vs KP statistics" page in a real headless Chromium: the background callbacks run
(in processes forked from the test server) and show the numbers of ``analysis``."""

from __future__ import annotations

import pytest

from analysis.comparison import compare_procedures, minimum_detectable_differences
from analysis.filters import RecordFilter, apply_filter
from dashboard.app_factory import create_app
from dashboard.figures.comparison import signed
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-comparison') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_comparison_page_loads_with_filter(dash_duo, database, tmp_path, monkeypatch):
    monkeypatch.setenv("VA_CACHE_DIR", str(tmp_path / "cache"))  # read when the page is loaded
    records = load_records(database)
    chosen = apply_filter(records, RecordFilter(countries=("GB",)))
    effects = compare_procedures(chosen, adjust=True)
    leakage = effects[effects.outcome == "cement_leakage"].iloc[0]
    mdd = minimum_detectable_differences(chosen)
    mdd_leakage = mdd[mdd.outcome == "cement_leakage"].iloc[0]
    n_vp = int((chosen.procedure == "vertebroplasty").sum())

    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/comparison?country=GB")
    dash_duo.wait_for_contains_text(
        "#comparison-mdd-summary",
        f"Cement leakage +{100 * mdd_leakage.mdd_increase:.1f} pp",
        timeout=30,
    )
    dash_duo.wait_for_contains_text(  # background callback
        "#comparison-forest-summary",
        f"Cement leakage adjusted {signed(100 * leakage.adjusted, 1)} pp",
        timeout=45,
    )
    dash_duo.wait_for_contains_text(  # background callback
        "#comparison-table-one-summary", f"{n_vp:,} vertebroplasties", timeout=45
    )
    dash_duo.wait_for_element("#comparison-love .main-svg", timeout=30)
    # Intervals clustered by facility by default (issue 12 item 5), and the switch is on.
    assert "clustered by facility" in dash_duo.find_element("#comparison-forest-summary").text
    assert dash_duo.find_element("#comparison-cluster").is_selected()
    assert "GB" in dash_duo.find_element("#filter-country").text
    assert dash_duo.find_element("#comparison-effects-status").text == ""
    assert dash_duo.get_logs() == []
