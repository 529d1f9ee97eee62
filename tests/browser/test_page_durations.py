"""The Durations and resources page in a real headless Chromium."""

from __future__ import annotations

import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.means import compare_means
from analysis.outcomes import setting_mix
from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.demo import demo_records


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-durations') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def test_durations_page_with_filter_in_url(dash_duo, database):
    records = load_records(database)
    chosen = apply_filter(records, RecordFilter(countries=("US",), levels=("1",)))
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/durations?country=US&levels=1")

    duration = chosen["duration_min"].astype(float)
    expected = compare_means(duration[chosen.procedure == "kyphoplasty"].dropna(),
                             duration[chosen.procedure == "vertebroplasty"].dropna())
    dash_duo.wait_for_text_to_equal("#durations-md", f"{expected.mean_difference:+.1f} min",
                                    timeout=30)
    mix = setting_mix(chosen)
    vp = mix[mix.procedure.astype(str) == "vertebroplasty"].iloc[0]
    dash_duo.wait_for_text_to_equal("#durations-outpatient-vp", f"{100 * vp.share_outpatient:.1f}%")
    dash_duo.wait_for_element("#durations-levels .js-plotly-plot", timeout=10)
    dash_duo.wait_for_element(".ag-row", timeout=10)  # the grids have rendered (no warnings)
    assert dash_duo.get_logs() == []
