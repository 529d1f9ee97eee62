"""The facility scorecard in a real headless Chromium: the admin's view with peer names, and a
facility-restricted user's view with anonymised peers ("Peer 1…N") and no other facility id."""

from __future__ import annotations

import re
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from dashboard.app_factory import create_app
from dashboard.auth.config import load_config
from data import import_dataframe, store
from data.demo import demo_records
from tests.auth_support import PASSWORD, auth_dir

RESTRICTED = ["FAC-009"]
FACILITY_ID = re.compile(r"FAC-\d{3}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("browser-scorecard")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(3000, seed=5), "demo", database, synthetic=True)
    config = auth_dir(folder / "auth", {"adm": ("admin", None),
                                        "nine": ("analyst", RESTRICTED)})
    yield database, config
    store.dispose_engines()


def _sign_in(dash_duo, site, name: str, path: str) -> None:
    database, config = site
    dash_duo.start_server(create_app(database, load_config(config)), navigate=False)
    dash_duo._url = dash_duo.server.url
    dash_duo.driver.get(dash_duo.server_url + path)
    dash_duo.wait_for_element("#login-form", timeout=20)
    dash_duo.find_element("#username").send_keys(name)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#user-name", name, timeout=30)


def _peer_names(dash_duo) -> list[str]:
    """The y-axis labels of the rank chart (one per facility drawn)."""
    ticks = dash_duo.driver.find_elements(By.CSS_SELECTOR,
                                          "#scorecard-rank-graph .yaxislayer-above .ytick text")
    return [t.text for t in ticks]


def test_admin_sees_the_scorecard_with_peer_names(dash_duo, site):
    _sign_in(dash_duo, site, "adm", "/scorecard?facility=FAC-019&peers=country")
    dash_duo.wait_for_element("#scorecard-oe-graph .main-svg", timeout=60)
    dash_duo.wait_for_element("#scorecard-rank-graph .main-svg", timeout=60)
    dash_duo.wait_for_element("#scorecard-trend-graph .main-svg", timeout=60)
    text = dash_duo.find_element("#scorecard-peer-text").text
    assert text.startswith("FAC-019 compared with") and "same country (US)" in text
    names = _peer_names(dash_duo)
    assert "FAC-019" in names and any(FACILITY_ID.fullmatch(n) and n != "FAC-019"
                                      for n in names)
    assert not any(n.startswith("Peer ") for n in names)
    grid = dash_duo.find_element("#scorecard-table-block").text
    assert "Cement leakage" in grid and "of" in grid  # the rank "k of N"
    assert dash_duo.get_logs() == []


def test_restricted_user_sees_only_anonymised_peers(dash_duo, site):
    # Asking for another facility and a named peer list in the link changes nothing.
    _sign_in(dash_duo, site, "nine",
             "/scorecard?facility=FAC-019&peers=list&peer_list=FAC-004,FAC-011")
    dash_duo.wait_for_element("#scorecard-rank-graph .main-svg", timeout=60)
    dash_duo.wait_for_element("#scorecard-oe-graph .main-svg", timeout=60)
    text = dash_duo.find_element("#scorecard-peer-text").text
    assert text.startswith("FAC-009 compared with 39 peer facilities")
    names = _peer_names(dash_duo)
    assert "FAC-009" in names
    peers = [n for n in names if n != "FAC-009"]
    assert peers and all(re.fullmatch(r"Peer \d+", n) for n in peers)
    # No other facility's id anywhere in the page, the charts' data included.
    body = dash_duo.driver.find_element(By.TAG_NAME, "body").text
    figures = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(d => JSON.stringify(d.data)).join(' ');")
    seen = set(FACILITY_ID.findall(body)) | set(FACILITY_ID.findall(figures))
    assert seen == {"FAC-009"}
    # The chosen-list option is not offered to a restricted user.
    options = [e.get_attribute("value") for e in
               dash_duo.driver.find_elements(By.CSS_SELECTOR, "#scorecard-peers input")]
    assert "list" not in options and "all" in options
    assert dash_duo.get_logs() == []


def test_scorecard_choices_are_written_to_the_address_and_restored(dash_duo, site):
    """The scorecard's controls were not in the address (issue 15 gap): a changed peer group
    is now written as ``peers=…`` (the profiled facility as ``sc_facility``, never the
    global ``facility`` key), and the address opened again restores the view."""
    from tests.browser.helpers import click

    def peer_text_contains(words: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#scorecard-peer-text")
            try:
                if found and words in found[0].text:
                    return
            except StaleElementReferenceException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the peer text never said {words!r}")

    _sign_in(dash_duo, site, "adm", "/scorecard?peers=country&sc_facility=FAC-019")
    peer_text_contains("same country (US)")
    click(dash_duo, "#scorecard-peers input[value='region']")
    peer_text_contains("same region")
    deadline = time.monotonic() + 20
    while "peers=region" not in dash_duo.driver.current_url and time.monotonic() < deadline:
        time.sleep(0.2)
    address = dash_duo.driver.current_url
    assert "peers=region" in address and "sc_facility=FAC-019" in address
    assert "facility=FAC-019" not in address.replace("sc_facility=FAC-019", "")
    dash_duo.driver.get(address)  # the shared link
    peer_text_contains("same region")
    assert dash_duo.find_element("#scorecard-peer-text").text.startswith("FAC-019 compared")
    checked = dash_duo.driver.find_element(By.CSS_SELECTOR, "#scorecard-peers input:checked")
    assert checked.get_attribute("value") == "region"
    assert dash_duo.get_logs() == []
