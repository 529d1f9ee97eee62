"""Issue 14, item 6 in Chromium: a click on a chart point sets the global filter (the URL
changes, Back returns), and the records behind the selection open in the Records page."""

from __future__ import annotations

import time
import urllib.parse

import pytest
from selenium.webdriver.common.action_chains import ActionChains

from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records
from tests.browser.helpers import click


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-drill') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


def _query(dash_duo) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlparse(dash_duo.driver.current_url).query)


def _wait_for(condition, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _quality_settled(dash_duo) -> None:
    """The Quality page writes its default CUSUM unit into the address once it has chosen
    it; a click before that would race the write (both set the query)."""
    _wait_for(lambda: "cusum" in _query(dash_duo), timeout=60)
    time.sleep(0.5)


def _click_a_point(dash_duo, graph: str) -> None:
    """Click the first marker of the graph (the mouse on the point: Plotly's own click)."""
    point = dash_duo.wait_for_element(f"#{graph} .scatterlayer .trace .points path.point",
                                      timeout=60)
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", point)
    time.sleep(0.5)
    ActionChains(dash_duo.driver).move_to_element(point).pause(0.3).click().perform()


@pytest.mark.parametrize("graph", ["quality-funnel-graph", "quality-caterpillar-graph"])
def test_clicking_a_unit_filters_to_it_and_back_returns(dash_duo, database, graph):
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/quality?country=GB,US")
    dash_duo.wait_for_element(f"#{graph} .main-svg", timeout=60)
    assert dash_duo.find_element("#drill-bar").text == ""
    _quality_settled(dash_duo)
    _click_a_point(dash_duo, graph)
    _wait_for(lambda: "facility" in _query(dash_duo))
    facility = _query(dash_duo)["facility"][0]
    assert facility.startswith("FAC-") and _query(dash_duo)["country"] == ["GB,US"]
    dash_duo.wait_for_contains_text("#drill-bar", f"Facility filter: {facility}", timeout=30)
    dash_duo.wait_for_contains_text("#filter-facility", facility, timeout=30)

    # The records behind the selection: the Records page with the same filters.
    link = dash_duo.find_element("#drill-records")
    href = urllib.parse.urlparse(link.get_attribute("href"))
    assert href.path == "/records"
    assert urllib.parse.parse_qs(href.query) == {"country": ["GB,US"], "facility": [facility]}
    click(dash_duo, "#drill-records")
    dash_duo.wait_for_contains_text("#records-grid", facility, timeout=60)
    facilities = dash_duo.driver.execute_script(
        "const api = dash_ag_grid.getApi('records-grid'); const out = new Set();"
        "api.forEachNode(n => n.data && out.add(n.data.facility_id)); return [...out];")
    assert facilities == [facility]

    # Back: the filtered Quality page, then the view before the click. The Quality page
    # records its CUSUM unit in the address as a history entry of its own, so the view
    # before the click may be one or two steps further back: bounded.
    dash_duo.driver.back()
    _wait_for(lambda: urllib.parse.urlparse(dash_duo.driver.current_url).path == "/quality")
    for _ in range(3):
        dash_duo.driver.back()
        time.sleep(1.0)
        assert urllib.parse.urlparse(dash_duo.driver.current_url).path == "/quality"
        if "facility" not in _query(dash_duo):
            break
    _wait_for(lambda: "facility" not in _query(dash_duo))
    dash_duo.wait_for_text_to_equal("#drill-bar", "", timeout=30)
    assert _query(dash_duo)["country"] == ["GB,US"]


def test_clear_link_removes_the_clicked_facility(dash_duo, database):
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/quality")
    _quality_settled(dash_duo)
    _click_a_point(dash_duo, "quality-funnel-graph")
    _wait_for(lambda: "facility" in _query(dash_duo))
    click(dash_duo, "#drill-bar a[href^='/quality']")
    _wait_for(lambda: "facility" not in _query(dash_duo))
    dash_duo.wait_for_text_to_equal("#drill-bar", "", timeout=30)


def test_clicking_a_region_on_the_costs_chart_sets_region_and_procedure(dash_duo, database):
    dash_duo.driver.set_window_size(1366, 1000)
    dash_duo.start_server(create_app(database))
    dash_duo.driver.get(dash_duo.server_url + "/costs")
    dash_duo.wait_for_element("#costs-figure .main-svg", timeout=60)
    click(dash_duo, "label[for='_dbcprivate_radioitems_costs-grouping_input_region']")
    dash_duo.wait_for_contains_text("#costs-figure", "·", timeout=60)
    _click_a_point(dash_duo, "costs-figure")
    _wait_for(lambda: "region" in _query(dash_duo))
    query = _query(dash_duo)
    assert set(query) >= {"country", "region", "procedure"}
    dash_duo.wait_for_contains_text("#drill-bar", f"Region filter: {query['region'][0]}")
