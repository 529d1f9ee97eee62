"""Screenshots of every page at 1366 px for the README: ``python -m tools.screenshots [--out DIR]``.

Starts the app (local single-user mode, so every page is visible) on a temporary SQLite store
filled with synthetic demo records, opens each page in headless Chromium (Debian's
``chromium`` and ``chromium-driver``, as the browser tests use), waits until the page has
settled and writes a full-page PNG ``<page>.png`` into ``docs/screenshots/``.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Page path -> screenshot name.
PAGES: dict[str, str] = {
    "/": "overview", "/pain": "pain", "/complications": "complications",
    "/durations": "durations", "/costs": "costs", "/comparison": "comparison",
    "/quality": "quality", "/records": "records", "/data": "data", "/methods": "methods",
    "/users": "users", "/signals": "signals", "/scorecard": "scorecard",
}
SETTLED = """
const busy = document.querySelector('[data-dash-is-loading="true"], ._dash-loading');
return [busy === null, document.body.innerHTML.length];
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_settled(driver, timeout: float = 90, quiet: float = 2.0) -> None:
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        state = tuple(driver.execute_script(SETTLED))
        if state != last:
            last, since = state, time.monotonic()
        elif state[0] and time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)


def take(out: Path, width: int = 1366, records: int = 5000, seed: int = 7) -> list[Path]:
    """Write one PNG per page into ``out``; returns their paths."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from werkzeug.serving import make_server

    from dashboard.app_factory import create_app
    from data import import_dataframe
    from data.demo import demo_records

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'store.db'}"
        import_dataframe(demo_records(records, seed=seed), "demo", database, synthetic=True)
        port = _free_port()
        server = make_server("127.0.0.1", port, create_app(database).server, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         "--force-prefers-reduced-motion", "--hide-scrollbars",
                         f"--window-size={width},900"):
            options.add_argument(argument)
        driver = webdriver.Chrome(options=options)
        written = []
        try:
            for path, name in PAGES.items():
                driver.set_window_size(width, 900)
                driver.get(f"http://127.0.0.1:{port}{path}")
                _wait_settled(driver)
                height = driver.execute_script(
                    "return Math.min(document.documentElement.scrollHeight, 5000);")
                driver.set_window_size(width, height)
                _wait_settled(driver, timeout=20, quiet=1.0)
                target = out / f"{name}.png"
                driver.save_screenshot(str(target))
                written.append(target)
                print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}",
                      flush=True)
        finally:
            driver.quit()
            server.shutdown()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=1366)
    args = parser.parse_args(argv)
    take(args.out, args.width)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
