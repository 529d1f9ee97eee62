"""Sign-in, role gating, facility restriction and the Content-Security-Policy in Chromium."""

from __future__ import annotations

import time

import dash
import pytest
from selenium.webdriver.common.by import By

from dashboard.app_factory import create_app
from dashboard.auth.config import load_config
from dashboard.suppression import rounded_count
from data import import_dataframe, load_records, store
from data.demo import demo_records
from tests.auth_support import PASSWORD, auth_dir

RESTRICTED = ["FAC-004", "FAC-011"]
# Records every CSP violation of a page, installed before any page script runs (CDP scripts
# are not subject to the page's policy).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile);
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("browser-auth")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(1500, seed=21), "demo", database, synthetic=True)
    config = auth_dir(folder / "auth", {"vic": ("viewer", None), "adm": ("admin", None),
                                        "north": ("analyst", RESTRICTED)})
    yield database, config
    store.dispose_engines()


def _start(dash_duo, site):
    database, config = site
    # Not navigating yet: start_server would wait for the Dash page, and we get the sign-in.
    dash_duo.start_server(create_app(database, load_config(config)), navigate=False)
    dash_duo._url = dash_duo.server.url
    dash_duo.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": CSP_LISTENER})


def _sign_in(dash_duo, name: str, path: str = "/") -> None:
    dash_duo.driver.get(dash_duo.server_url + path)
    dash_duo.wait_for_element("#login-form", timeout=20)
    assert "/login?next=" in dash_duo.driver.current_url
    dash_duo.find_element("#username").send_keys(name)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#user-name", name, timeout=30)


def _nav_texts(dash_duo) -> list[str]:
    return [link.text for link in dash_duo.driver.find_elements(By.CSS_SELECTOR, "nav .nav-link")]


def _violations(dash_duo) -> list[str]:
    found = dash_duo.driver.execute_script("return window.__cspViolations || [];")
    logged = [entry["message"] for entry in dash_duo.get_logs()
              if "Content Security Policy" in entry["message"]]
    return list(found) + logged


def test_sign_in_role_gating_and_sign_out(dash_duo, site):
    _start(dash_duo, site)
    _sign_in(dash_duo, "vic", "/costs")
    assert dash_duo.driver.current_url.endswith("/costs")  # back where the user was going
    assert "(viewer)" in dash_duo.find_element("#user-role").text
    nav = _nav_texts(dash_duo)
    assert "Costs" in nav and "Overview" in nav and "Users" not in nav
    assert dash_duo.find_element("#report-button").is_displayed()  # the report is for sharing
    dash_duo.wait_for_element(".ag-root", timeout=30)  # a table of the page has rendered
    buttons = [b.text for b in dash_duo.driver.find_elements("css selector", "button")]
    assert "Download CSV" not in buttons  # CSV downloads are for analysts
    # Typing the address of an admin page shows "not permitted", not the page.
    dash_duo.driver.get(dash_duo.server_url + "/users")
    dash_duo.wait_for_element("#not-permitted", timeout=20)
    assert not dash_duo.driver.find_elements(By.ID, "users-select")
    dash_duo.find_element("#sign-out").click()
    dash_duo.wait_for_element("#login-form", timeout=20)
    dash_duo.driver.get(dash_duo.server_url + "/")
    dash_duo.wait_for_element("#login-form", timeout=20)  # signed out: back to sign-in


def test_wrong_password_shows_the_generic_message(dash_duo, site):
    _start(dash_duo, site)
    dash_duo.driver.get(dash_duo.server_url + "/")
    dash_duo.wait_for_element("#login-form", timeout=20)
    dash_duo.find_element("#username").send_keys("adm")
    dash_duo.find_element("#password").send_keys("not-the-password")
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#login-error", "Wrong user name or password.", timeout=20)
    assert not dash_duo.driver.find_elements(By.ID, "user-name")


def test_admin_sees_the_users_page(dash_duo, site):
    _start(dash_duo, site)
    _sign_in(dash_duo, "adm")
    assert "Users" in _nav_texts(dash_duo)
    assert dash_duo.find_element("#report-button").is_displayed()
    dash_duo.driver.get(dash_duo.server_url + "/users")
    dash_duo.wait_for_element("#users-table", timeout=20)
    table = dash_duo.find_element("#users-table").text
    assert "north" in table and "FAC-004, FAC-011" in table and "scrypt" not in table


def test_facility_restriction_in_the_page(dash_duo, site):
    database, _config = site
    records = load_records(database)
    mine = records[records.facility_id.isin(RESTRICTED)]
    _start(dash_duo, site)
    _sign_in(dash_duo, "north")
    dash_duo.wait_for_text_to_equal(
        "#match-count", f"{rounded_count(len(mine))} of {rounded_count(len(mine))} records match",
        timeout=30)
    dash_duo.find_element("#filter-facility").click()
    dash_duo.wait_for_element("#filter-facility .Select-menu-outer, #filter-facility "
                              "[role='option'], .dash-dropdown-options", timeout=10)
    time.sleep(0.5)
    options = {element.text.strip() for element in dash_duo.driver.find_elements(
        By.CSS_SELECTOR, "[role='option']") if element.text.strip()}
    assert options == set(RESTRICTED)


def test_every_page_loads_without_csp_violations(dash_duo, site):
    _start(dash_duo, site)
    _sign_in(dash_duo, "adm")
    paths = [page["relative_path"] for page in dash.page_registry.values()]
    assert "/users" in paths and "/" in paths
    for path in paths:
        dash_duo.driver.get(dash_duo.server_url + path)
        dash_duo.wait_for_element("#main h1", timeout=30)
        time.sleep(2.5)  # let the page's callbacks render their charts and grids
        assert _violations(dash_duo) == [], path
    # The listener works: an inline script injected into the page is blocked and reported.
    dash_duo.driver.execute_script(
        "var s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        "document.body.appendChild(s);")
    time.sleep(0.5)
    assert dash_duo.driver.execute_script("return window.__ran === undefined;")
    assert any("script-src" in v for v in _violations(dash_duo))
