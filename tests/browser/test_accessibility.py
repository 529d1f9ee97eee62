"""axe-core on every page, for every role that may open it: no serious or critical violation.

axe-core 4.14.1 is vendored in ``tests/browser/vendor`` (see its README there); the test
injects it into the loaded page and runs every rule axe runs by default.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.app_factory import create_app
from dashboard.auth import ROLES
from dashboard.auth.config import load_config
from data import import_dataframe, store
from data.demo import demo_records
from tests.auth_support import PASSWORD, auth_dir
from tests.browser.helpers import PAGES, wait_settled

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
SERIOUS = ("serious", "critical")
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
    r => done(r.violations.map(v => [v.id, v.impact, v.nodes.length,
                                     v.nodes.slice(0, 3).map(n => n.target.join(' '))])),
    e => done([['axe-error', 'critical', 0, [String(e)]]]));
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("browser-axe")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(1500, seed=8), "demo", database, synthetic=True)
    config = auth_dir(folder / "auth", {role: (role, None) for role in ROLES})
    yield database, config
    store.dispose_engines()


def axe_violations(dash_duo, path: str) -> list[list]:
    """The serious and critical axe violations of ``path`` once it has settled."""
    dash_duo.driver.get(dash_duo.server_url + path)
    dash_duo.wait_for_element("#main", timeout=30)
    wait_settled(dash_duo)
    dash_duo.driver.execute_script(AXE)
    dash_duo.driver.set_script_timeout(120)
    found = dash_duo.driver.execute_async_script(RUN_AXE)
    return [v for v in found if v[1] in SERIOUS]


def _table(found: dict[str, list[list]]) -> str:
    rows = {}
    for path, violations in found.items():
        for rule, impact, nodes, examples in violations:
            entry = rows.setdefault((rule, impact), {"pages": [], "examples": examples})
            entry["pages"].append(f"{path} ({nodes})")
    return "\n".join(f"{rule} — {impact} — {', '.join(e['pages'])} — e.g. {e['examples']}"
                     for (rule, impact), e in sorted(rows.items()))


@pytest.mark.parametrize("role", ROLES)
def test_no_serious_axe_violation_for_role(dash_duo, site, role):
    database, config = site
    # Not navigating yet: start_server would wait for the Dash page, and we get the sign-in.
    dash_duo.start_server(create_app(database, load_config(config)), navigate=False)
    dash_duo._url = dash_duo.server.url
    dash_duo.driver.get(dash_duo.server_url + "/login")
    dash_duo.wait_for_element("#login-form", timeout=20)
    dash_duo.find_element("#username").send_keys(role)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#user-name", role, timeout=30)
    visible = [p for p, needed in PAGES.items() if ROLES.index(role) >= ROLES.index(needed)]
    found = {path: axe_violations(dash_duo, path) for path in visible}
    found = {path: v for path, v in found.items() if v}
    assert not found, f"axe, {role}:\n{_table(found)}"


def test_no_serious_axe_violation_in_local_mode(dash_duo, site):
    """Local single-user mode (no sign-in, the local admin): its own "Local use" note."""
    database, _config = site
    dash_duo.start_server(create_app(database))
    found = {path: axe_violations(dash_duo, path) for path in PAGES}
    found = {path: v for path, v in found.items() if v}
    assert not found, f"axe, local mode:\n{_table(found)}"
