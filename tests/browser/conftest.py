"""Headless Chromium for ``dash[testing]`` (Debian's chromium + chromium-driver).

Locally the browser tests skip when Chromium is missing; with ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import shutil

import pytest
from selenium.webdriver.chrome.options import Options

from tests.conftest import require_or_skip

CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium") or "/usr/bin/chromium"


def pytest_setup_options():
    options = Options()
    options.binary_location = CHROMIUM
    # The machine has no network: without these Chromium keeps trying to reach Google services.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     # Bootstrap scrolls smoothly unless reduced motion is asked for; an animated
                     # scroll moves the element under a click.
                     "--force-prefers-reduced-motion"):
        options.add_argument(argument)
    return options


@pytest.fixture(autouse=True)
def _chromium_required():
    available = os.path.exists(CHROMIUM) and shutil.which("chromedriver") is not None
    require_or_skip(available, "Chromium and ChromeDriver (apt-get install chromium chromium-driver)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
