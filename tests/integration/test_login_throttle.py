"""Sign-in back-off under gunicorn with two workers behind a reverse proxy (issue 13 item 3).

A tiny reverse proxy on loopback forwards to ``gunicorn -w 2 app:server`` and appends the
address it sees to ``X-Forwarded-For``, as nginx's ``$proxy_add_x_forwarded_for`` does. The
browsers connect to it from different loopback addresses (127.0.0.2, 127.0.0.3, ...), so the
app sees distinct clients only if it trusts exactly one proxy hop (``proxy_hops = 1``).
Failures are counted in the store, so both workers apply the same back-off.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.adapters import HTTPAdapter

from bench.load import Gunicorn
from data import import_dataframe, store
from data.demo import demo_records
from tests.auth_support import PASSWORD, auth_dir

pytestmark = pytest.mark.slow
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "upgrade", "content-length"}


def _proxy(upstream_port: int) -> ThreadingHTTPServer:
    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            prior = self.headers.get("X-Forwarded-For")
            peer = self.client_address[0]
            headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
            finally:
                upstream.close()
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _From(HTTPAdapter):
    """Connect from a chosen loopback address (a distinct client for the proxy)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def _browser(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _From(address))
    return session


def _sign_in(browser: requests.Session, url: str, name: str, password: str,
             claimed: str | None = None) -> requests.Response:
    headers = {"X-Forwarded-For": claimed} if claimed else {}
    page = browser.get(url + "/login", headers=headers, timeout=60).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return browser.post(url + "/login", headers=headers, allow_redirects=False, timeout=60,
                        data={"username": name, "password": password, "csrf_token": token})


@pytest.fixture
def proxied(tmp_path):
    """``url`` of a proxy in front of gunicorn (2 workers, sign-in on, ``proxy_hops = 1``)."""
    store.dispose_engines()
    database = f"sqlite:///{tmp_path / 'store.db'}"
    import_dataframe(demo_records(300, seed=5), "demo", database, synthetic=True)
    store.dispose_engines()
    config = auth_dir(tmp_path / "auth", {"adm": ("admin", None), "vic": ("viewer", None)},
                      extra="proxy_hops = 1\n")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    server = Gunicorn(database, workers=2, log_path=tmp_path / "gunicorn.log",
                      env={"VA_AUTH_CONFIG": str(config), "VA_CACHE_DIR": str(cache)})
    server.start()
    proxy = _proxy(server.port)
    try:
        assert len(server.worker_pids()) == 2
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()
        status = server.stop()
        store.dispose_engines()
    assert status == 0, server.log_tail()
    assert "Traceback" not in server.log_tail(200_000)


def test_back_off_is_shared_by_workers_and_spares_other_clients(proxied):
    url = proxied
    # 40 failed sign-ins with made-up names from one client, which also claims another
    # client's address in X-Forwarded-For (the proxy appends the real one; only that counts).
    attacker = _browser("127.0.0.2")
    statuses = [_sign_in(attacker, url, f"made-up-{i}", "wrong-password-x",
                         claimed="127.0.0.3").status_code for i in range(40)]
    assert set(statuses) <= {401, 429}
    # 20 free failures per address across both workers (per-worker counters allowed 40),
    # then the back-off (1 s, 2 s, 4 s, ...) lets only a few more be checked.
    assert statuses[:20] == [401] * 20 and statuses.count(401) <= 24, statuses
    assert statuses[-1] == 429
    # Failures on a real name from a third client: five free, then back-off, on both workers.
    guesser = _browser("127.0.0.4")
    guesses = [_sign_in(guesser, url, "vic", "wrong-password-x").status_code
               for _ in range(10)]
    assert guesses[:5] == [401] * 5 and guesses.count(401) <= 7, guesses
    # The admin, at another address, signs in at once.
    admin = _browser("127.0.0.3")
    signed_in = _sign_in(admin, url, "adm", PASSWORD)
    assert signed_in.status_code == 302, signed_in.text[:300]
    assert admin.get(url + "/_dash-layout", timeout=60).status_code == 200
    # vic's correct password from a new browser is slowed down, not refused for good.
    viewer = _browser("127.0.0.5")
    slowed = _sign_in(viewer, url, "vic", PASSWORD)
    if slowed.status_code == 429:
        wait = int(slowed.headers["Retry-After"])
        assert 1 <= wait <= 16
        time.sleep(wait + 0.5)
        slowed = _sign_in(viewer, url, "vic", PASSWORD)
    assert slowed.status_code == 302
