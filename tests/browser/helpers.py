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
