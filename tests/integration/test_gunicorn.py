"""Production serving: gunicorn with two workers over one store (SQLite and PostgreSQL).

The server is started the way ``docs/deployment.md`` says (``gunicorn -w 2 app:server`` with
``DATABASE_URL``), on a free loopback port. The requests are the browser's: pages,
``/_dash-layout``, ``/_dash-dependencies`` and filter changes posted to
``/_dash-update-component`` with payloads built from ``/_dash-dependencies``
(:mod:`bench.load`). gunicorn's access log names the worker (pid) that answered each request,
so the test can tell that both workers served callbacks.
"""

from __future__ import annotations

import re
import threading

import pytest
import requests

from analysis.filters import RecordFilter, apply_filter
from bench.load import Gunicorn, Recorder, User, discover
from dashboard.suppression import rounded_count
from data import import_dataframe, load_records, store
from data.demo import demo_records

pytestmark = pytest.mark.slow
ACCESS_FORMAT = "ACCESS pid=%(p)s status=%(s)s %(m)s %(U)s"


@pytest.fixture
def served(database, tmp_path):
    """``(server, records)``: gunicorn with two workers over a 1,500-record demo store."""
    import_dataframe(demo_records(1500, seed=3), "demo", database, synthetic=True)
    records = load_records(database)
    store.dispose_engines()
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    server = Gunicorn(database, workers=2, env={"VA_CACHE_DIR": str(cache), "VA_AUTH_CONFIG": ""},
                      log_path=tmp_path / "gunicorn.log",
                      extra_args=["--access-logfile", "-", "--access-logformat", ACCESS_FORMAT])
    server.start()
    try:
        yield server, records
    finally:
        status = server.stop()
    assert status == 0, server.log_tail()  # a clean stop on SIGTERM
    assert "Traceback" not in server.log_tail(200_000)


def _served_by(server) -> dict[str, set[int]]:
    """``path -> {worker pid}`` of every 2xx answer in the access log."""
    seen: dict[str, set[int]] = {}
    for pid, status, path in re.findall(r"ACCESS pid=<?(\d+)>? status=(\d+) \w+ (\S+)",
                                        server.log_tail(2_000_000)):
        if status.startswith("2"):
            seen.setdefault(path, set()).add(int(pid))
    return seen


def test_two_workers_serve_pages_and_filter_changes(served):
    server, records = served
    workers = server.worker_pids()
    assert len(workers) == 2

    index = requests.get(server.url + "/", timeout=60)
    assert index.status_code == 200 and "_dash-config" in index.text
    layout = requests.get(server.url + "/_dash-layout", timeout=60)
    assert layout.status_code == 200 and "filter-panel" in layout.text

    site = discover(server.url, None)
    assert {"/", "/complications", "/costs", "/quality"} <= set(site.pages)
    assert site.filter_callbacks("/") and site.filter_callbacks("/complications")

    # A filter change whose answer can be checked: the match count for one country.
    recorder = Recorder()
    user = User(1, server.url, site, recorder, None, seed=7)
    user.path = "/"
    country = sorted(records["country"].dropna().astype(str).unique())[0]
    user.controls["filter-country"] = [country]
    values = user._sync(user._page_values(), "filter-country.value")
    assert RecordFilter.from_dict(user.state) == RecordFilter(countries=(country,))
    values = user._callback("match count", "match-count.children", values)
    expected = len(apply_filter(records, RecordFilter(countries=(country,))))
    # Totals are rounded to 5 (the secondary-suppression rule of dashboard.suppression).
    assert str(values[("match-count", "children")]).startswith(
        f"{rounded_count(expected)} of {rounded_count(len(records))} records match")
    values = user._callback("callback /", "overview-body.children", values)
    assert "kpi-cards" in str(values[("overview-body", "children")])

    # Several users at once: page loads and random filter changes on several pages.
    def act(number: int) -> None:
        someone = User(number, server.url, site, recorder, None, seed=number)
        for path in ("/", "/complications", "/costs", "/quality"):
            someone.page_load(path)
            someone.filter_change()
            someone.filter_change()

    threads = [threading.Thread(target=act, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not recorder.errors, recorder.errors
    kinds = {sample.kind for sample in recorder.samples}
    assert {"GET page", "page content", "filters (sync)", "match count", "callback /costs",
            "callback /quality", "callback /complications"} <= kinds
    assert len(recorder.samples) >= 4 * 4 * 8

    served_by = _served_by(server)
    assert served_by.get("/_dash-update-component") == set(workers), served_by
    assert server.process.poll() is None  # still up
