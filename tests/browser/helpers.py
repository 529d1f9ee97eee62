"""Shared steps for the browser tests."""

from __future__ import annotations

import time

from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
)


def click(dash_duo, selector: str, attempts: int = 20) -> None:
    """Scroll the element to the middle of the window at once, wait until it stops moving, click.

    While the page is still settling (sections filling in above it) the element moves and
    another may take the click: scroll again and retry, a bounded number of times."""
    for attempt in range(attempts):
        element = dash_duo.wait_for_element(selector, timeout=30)
        previous = None
        for _ in range(20):  # up to 2 s for the layout to hold still
            rect = dash_duo.driver.execute_script(
                "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});"
                "const r = arguments[0].getBoundingClientRect(); return [r.top, r.left];", element)
            if rect == previous:
                break
            previous = rect
            time.sleep(0.1)
        try:
            element.click()
            return
        except (ElementClickInterceptedException, StaleElementReferenceException):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


#: Every page of the app with the lowest role that may open it.
PAGES: dict[str, str] = {
    "/": "viewer", "/pain": "viewer", "/complications": "viewer", "/durations": "viewer",
    "/costs": "viewer", "/comparison": "viewer", "/quality": "viewer", "/records": "analyst",
    "/data": "viewer", "/methods": "viewer", "/users": "admin", "/signals": "viewer",
    "/scorecard": "viewer",
}

_SETTLED_SCRIPT = """
const busy = document.querySelector('[data-dash-is-loading="true"], ._dash-loading');
return [busy === null, document.body.innerHTML.length, !!document.querySelector('#main')];
"""


def wait_settled(dash_duo, timeout: float = 60, quiet: float = 1.5) -> None:
    """Wait until no Dash component is loading and the page has not changed for ``quiet``
    seconds (bounded by ``timeout``; the page as it is then is used either way)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        idle, size, has_main = dash_duo.driver.execute_script(_SETTLED_SCRIPT)
        state = (idle, size, has_main)
        if state != last:
            last, since = state, time.monotonic()
        elif idle and has_main and time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)
