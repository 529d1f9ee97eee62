"""Database faults: unreachable at start, and gone away (then back) under a running app.

The outage test uses a private PostgreSQL server (``tests/pg_private.py``) that it really
stops and starts again; the shared server of ``VA_TEST_POSTGRES_URL`` is never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.pages import _payload
from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records
from tests.conftest import FIXTURES, ROOT
from tests.pg_private import private_postgres  # noqa: F401 - the fixture

PASSWORD = "s3cret-Pw"
REFUSED = f"postgresql+psycopg://va:{PASSWORD}@127.0.0.1:1/va_missing"
BAD_HOST = f"postgresql+psycopg://va:{PASSWORD}@no-such-host.invalid:5432/va_missing"
OUTAGE_TEXT = "The database is not reachable"
QUICK_SECONDS = 30  # "quickly": far below any TCP timeout; start-up itself takes a few seconds


def _check_message(output: str, url: str) -> None:
    parsed = store.sa.make_url(url)
    assert "cannot open the database" in output, output
    assert f"server {parsed.host}" in output and f"port {parsed.port}" in output, output
    assert f"database '{parsed.database}'" in output, output
    assert PASSWORD not in output  # never the password, not even in a driver message


@pytest.mark.parametrize("url", [REFUSED, BAD_HOST], ids=["refused", "bad-host"])
def test_app_exits_2_with_a_clear_message(url):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "app.py", "--database", url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert time.monotonic() - start < QUICK_SECONDS
    _check_message(done.stderr, url)
    assert "Traceback" not in done.stderr
    assert "Connection refused" in done.stderr if url == REFUSED else "no-such-host" in done.stderr


def test_import_exits_2_with_a_clear_message():
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "data", "import",
                           str(FIXTURES / "exports" / "us_export.csv"), "--database", REFUSED],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert time.monotonic() - start < QUICK_SECONDS
    _check_message(done.stderr, REFUSED)
    assert "Traceback" not in done.stderr


def test_gunicorn_worker_fails_to_boot_with_the_message(tmp_path):
    env = {**os.environ, "DATABASE_URL": REFUSED, "VA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("VA_AUTH_CONFIG", None)
    start = time.monotonic()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0",
                               "--no-control-socket", "app:server"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _out, err = server.communicate(timeout=QUICK_SECONDS * 2)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the master and its workers
        _out, err = server.communicate()
        pytest.fail("gunicorn kept running over an unreachable database: app.server must open "
                    f"the store before serving. Log: {err[-2000:]}")
    # gunicorn stops the whole server (status 3) when a worker cannot boot, rather than
    # restarting workers forever.
    assert server.returncode != 0, err[-3000:]
    assert time.monotonic() - start < QUICK_SECONDS * 2
    _check_message(err, REFUSED)
    assert "Worker failed to boot" in err


# ------------------------------------------------------------ the database goes away and back


def _first_date(records) -> dt.date:
    return records["procedure_date"].min().date()


class _Page:
    """A Flask test client speaking to the app as the browser does."""

    def __init__(self, app) -> None:
        self.app, self.client = app, app.server.test_client()
        self.day = 0

    def layout(self):
        return self.client.get("/_dash-layout")

    def overview_update(self):
        """The Overview's filter-change callback for a filter state not seen before (a new
        ``date_from`` each time), so no cache can answer it."""
        self.day += 1
        state = {"date_from": (dt.date(2020, 1, 1) + dt.timedelta(days=self.day)).isoformat()}
        entry = self.app.callback_map["overview-body.children"]
        return self.client.post("/_dash-update-component",
                                json=_payload("overview-body.children", entry, {}, state))

    def match_count(self):
        """The shell's "n of N records match" for a new filter state."""
        self.day += 1
        state = {"date_from": (dt.date(2020, 1, 1) + dt.timedelta(days=self.day)).isoformat()}
        entry = self.app.callback_map["match-count.children"]
        return self.client.post("/_dash-update-component",
                                json=_payload("match-count.children", entry, {}, state))


def test_database_goes_away_and_comes_back(private_postgres):  # noqa: F811 - the fixture
    url = private_postgres.url
    store.dispose_engines()
    import_dataframe(demo_records(1500, seed=5), "demo", url, synthetic=True)
    app = create_app(url)
    page = _Page(app)
    assert page.client.get("/").status_code == 200  # registers the pages' callbacks

    def working() -> None:
        layout = page.layout()
        assert layout.status_code == 200
        assert "filter-panel" in layout.get_data(as_text=True)
        assert OUTAGE_TEXT not in layout.get_data(as_text=True)
        update = page.overview_update()
        assert update.status_code == 200
        body = update.get_data(as_text=True)
        assert "kpi-cards" in body and OUTAGE_TEXT not in body
        assert "records match" in page.match_count().get_data(as_text=True)

    working()

    private_postgres.stop()
    try:
        layout = page.layout()
        assert layout.status_code == 200  # a page with the message, not an HTTP 500
        text = layout.get_data(as_text=True)
        assert OUTAGE_TEXT in text and "filter-panel" not in text
        update = page.overview_update()
        assert update.status_code == 200
        text = update.get_data(as_text=True)
        assert OUTAGE_TEXT in text and "kpi-cards" not in text
        assert "could not be computed" not in text  # not the generic error
        count = page.match_count()  # the shell's own callback, too
        assert count.status_code == 200 and OUTAGE_TEXT in count.get_data(as_text=True)
        assert page.client.get("/").status_code == 200
    finally:
        private_postgres.start()

    # Back without restarting anything: the pool's dead connections are replaced on checkout.
    working()
    working()
    store.dispose_engines()
