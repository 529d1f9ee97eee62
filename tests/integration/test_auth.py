"""Sign-in, roles, facility restriction and security headers, through the Flask test client."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest
from dash import Input, Output
from werkzeug.exceptions import Forbidden

from dashboard.app_factory import create_app
from dashboard.auth import SESSION_KEY, User, current_user, requires_role, scope_key
from dashboard.auth import users as users_file
from dashboard.auth.config import load_config
from dashboard.suppression import rounded_count
from data import import_dataframe, load_records, store
from data.audit import read_events
from data.demo import demo_records
from tests.auth_support import (
    PASSWORD,
    auth_dir,
    callback_payload,
    csrf_token,
    sign_in,
    sign_out,
)
from tests.conftest import ROOT

RESTRICTED = ["FAC-004", "FAC-011"]
ACCOUNTS = {
    "vic": ("viewer", None),
    "ana": ("analyst", None),
    "adm": ("admin", None),
    "north": ("analyst", RESTRICTED),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``(database, config_path, records)``: a demo store and an auth configuration."""
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("auth")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(1500, seed=21), "demo", database, synthetic=True)
    config = auth_dir(folder / "auth", ACCOUNTS)
    yield database, config, load_records(database)
    store.dispose_engines()


@pytest.fixture
def app(site):
    database, config, _records = site
    return create_app(database, load_config(config))


def _cookie(response, name="va_session") -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}="))


# -- signed out ------------------------------------------------------------------------------

def test_signed_out_pages_redirect_and_dash_requests_get_401(app):
    client = app.server.test_client()
    page = client.get("/costs?country=FR")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=%2Fcosts%3Fcountry%3DFR"
    for path in ("/_dash-layout", "/_dash-dependencies"):
        response = client.get(path)
        assert response.status_code == 401 and response.get_json()["error"] == "sign-in required"
    update = client.post("/_dash-update-component",
                         json=callback_payload(app, "match-count.children"))
    assert update.status_code == 401
    # The sign-in page and the CSS it needs stay public.
    assert client.get("/login").status_code == 200
    assert client.get("/vendor/bootstrap/bootstrap.min.css").status_code == 200


def test_sign_in_with_wrong_password_gives_one_generic_message(app, site):
    client = app.server.test_client()
    wrong = sign_in(client, "ana", "not-the-password")
    unknown = sign_in(client, "nobody", "not-the-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong user name or password." in response.get_data(as_text=True)
        assert SESSION_KEY not in _session(app, client)
    assert client.get("/_dash-layout").status_code == 401
    events = read_events(site[0])
    failed = events[events.action == "sign_in_failed"]
    assert {"ana", "nobody"} <= set(failed.actor)
    assert "not-the-password" not in json.dumps(events.detail.tolist())


def _session(app, client) -> dict:
    cookie = client.get_cookie("va_session")
    if cookie is None:
        return {}
    serializer = app.server.session_interface.get_signing_serializer(app.server)
    return serializer.loads(cookie.value)


def test_sign_in_sets_a_safe_session_and_sign_out_ends_it(app, site):
    client = app.server.test_client()
    response = sign_in(client, "ana", next_url="/complications?procedure=kyphoplasty")
    assert response.status_code == 302
    assert response.headers["Location"] == "/complications?procedure=kyphoplasty"
    cookie = _cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test configuration sets session_cookie_secure = false
    assert PASSWORD not in cookie
    assert _session(app, client)[SESSION_KEY] == {"name": "ana", "role": "analyst",
                                                 "facilities": None, "source": "users-file"}
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200 and '"ana"' in layout.get_data(as_text=True)
    assert sign_out(client).status_code == 302
    assert client.get("/_dash-layout").status_code == 401
    actions = read_events(site[0]).query("actor == 'ana'").action.tolist()
    assert "sign_in" in actions and "sign_out" in actions


def _admin_callback(app) -> dict:
    """An admin-only callback (the Users page's "fill the form" callback) for user ``vic``."""
    return callback_payload(app, next(k for k in app.callback_map if "users-role.value" in k),
                            {("users-select", "value"): "vic"})


def _replay(app, cookie: str):
    """A fresh client presenting a copied session cookie (as an attacker would)."""
    client = app.server.test_client()
    client.set_cookie("va_session", cookie, domain="localhost")
    return client


def test_sign_out_is_post_only_with_csrf_and_ends_the_session_on_the_server(app, site):
    """issue 13 item 2: after /logout the old cookie answered an admin callback with 200."""
    admin = _signed_in(app, "adm")
    cookie = admin.get_cookie("va_session").value
    payload = _admin_callback(app)
    assert admin.post("/_dash-update-component", json=payload).status_code == 200
    # The navigation bar signs out with a form that posts the CSRF token (no link, no script).
    layout = json.dumps(admin.get("/_dash-layout").get_json())
    assert '"sign-out-form"' in layout and '"method": "POST"' in layout
    assert '"action": "/logout"' in layout and '"href": "/logout"' not in layout
    # A GET (a link or an image on another site) and a post without the token sign nobody out.
    assert admin.get("/logout").status_code == 405
    assert admin.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert admin.post("/logout").status_code == 400
    assert admin.post("/_dash-update-component", json=payload).status_code == 200
    assert sign_out(admin).status_code == 302
    assert admin.get("/_dash-layout").status_code == 401
    # The cookie copied before sign-out is dead on the server too.
    replayed = _replay(app, cookie)
    assert replayed.post("/_dash-update-component", json=payload).status_code == 401
    assert replayed.get("/_dash-layout").status_code == 401
    assert "sign_out" in read_events(site[0]).query("actor == 'adm'").action.tolist()


def test_a_password_change_ends_every_session_of_the_user(app, site, tmp_path):
    """issue 13 item 2: the cookie of before a password change still worked."""
    database, config, _records = site
    users = load_config(config).users_file
    first, second = _signed_in(app, "adm"), _signed_in(app, "adm")
    cookie = first.get_cookie("va_session").value
    payload = _admin_callback(app)
    assert first.post("/_dash-update-component", json=payload).status_code == 200
    new_password = "a-brand-new-password"
    try:
        users_file.update_user(users, "adm", password=new_password)
        for client in (first, second, _replay(app, cookie)):
            assert client.post("/_dash-update-component", json=payload).status_code == 401
        assert sign_in(app.server.test_client(), "adm").status_code == 401
        fresh = app.server.test_client()
        assert sign_in(fresh, "adm", new_password).status_code == 302
        assert fresh.post("/_dash-update-component", json=payload).status_code == 200
    finally:
        users_file.update_user(users, "adm", password=PASSWORD)


def test_sessions_end_after_inactivity(site, tmp_path, monkeypatch):
    """A session unused for ``idle_minutes`` has ended, on the server; use keeps it alive."""
    from dashboard.auth import sessions

    config = auth_dir(tmp_path / "auth", {"ana": ("analyst", None)}, hours=2,
                      extra="idle_minutes = 30\n")
    app = create_app(site[0], load_config(config))
    assert load_config(config).idle_minutes == 30
    start = sessions.now()
    clock = {"now": start}
    monkeypatch.setattr(sessions, "now", lambda: clock["now"])
    client = _signed_in(app, "ana")
    cookie = client.get_cookie("va_session").value
    for minutes in (20, 45, 74):  # each request within 30 minutes of the one before
        clock["now"] = start + pd.Timedelta(minutes=minutes)
        assert client.get("/_dash-layout").status_code == 200
    clock["now"] = start + pd.Timedelta(minutes=74 + 31)
    assert client.get("/_dash-layout").status_code == 401
    clock["now"] = start + pd.Timedelta(minutes=74 + 32)
    assert _replay(app, cookie).get("/_dash-layout").status_code == 401
    # The lifetime still holds for a session in constant use (session_hours = 2 here).
    again = _signed_in(app, "ana")
    for minutes in range(106, 106 + 141, 20):
        clock["now"] = start + pd.Timedelta(minutes=minutes)
        response = again.get("/_dash-layout")
    assert response.status_code == 401


@pytest.mark.parametrize("value", ["0", "2000", "true", '"30"'])
def test_idle_minutes_must_be_a_sensible_number(tmp_path, value):
    from dashboard.auth.config import AuthConfigError

    config = auth_dir(tmp_path / "auth", {"ana": ("analyst", None)},
                      extra=f"idle_minutes = {value}\n")
    with pytest.raises(AuthConfigError, match="idle_minutes"):
        load_config(config)


def test_a_background_job_refuses_an_ended_session(app):
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    client = _signed_in(app, "north")
    cookie = client.get_cookie("va_session").value
    assert sign_out(client).status_code == 302
    with app.server.app_context():
        token = context_value.set(AttributeDict(cookies={"va_session": cookie}))
        try:
            with pytest.raises(Forbidden):
                current_user()
        finally:
            context_value.reset(token)


def test_secure_cookie_when_configured(site, tmp_path):
    config = auth_dir(tmp_path / "auth", {"ana": ("analyst", None)}, secure=True)
    app = create_app(site[0], load_config(config))
    client = app.server.test_client()
    assert "Secure" in _cookie(sign_in(client, "ana"))


def test_sign_in_needs_the_form_csrf_token(app):
    client = app.server.test_client()
    csrf_token(client)
    for token in (None, "forged-token"):
        data = {"username": "ana", "password": PASSWORD}
        if token:
            data["csrf_token"] = token
        response = client.post("/login", data=data)
        assert response.status_code == 400
    assert client.get("/_dash-layout").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/",
                                    "/\\evil.example", "javascript:alert(1)", "/logout"])
def test_no_open_redirect_after_sign_in(app, target):
    client = app.server.test_client()
    response = sign_in(client, "ana", next_url=target)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_repeated_failures_are_rate_limited(app):
    client = app.server.test_client()
    for _ in range(5):
        assert sign_in(client, "vic", "wrong-password-x").status_code == 401
    # Even the right password is refused for a while after five failures for this name.
    limited = sign_in(client, "vic")
    assert limited.status_code == 429
    assert client.get("/_dash-layout").status_code == 401
    assert sign_in(client, "ana").status_code == 302  # other names are not blocked


def _sign_in_through_proxy(client, name, password, client_address, claimed=None):
    """Sign in as a browser at ``client_address`` behind one proxy that appends the address it
    sees to ``X-Forwarded-For`` (after whatever the client ``claimed`` there)."""
    forwarded = {"X-Forwarded-For": ", ".join([*([claimed] if claimed else []), client_address])}
    page = client.get("/login", headers=forwarded).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", headers=forwarded,
                       data={"username": name, "password": password, "csrf_token": token})


@pytest.fixture
def own_store(tmp_path):
    """A small store of its own, so the failures counted by a test stay in it."""
    database = f"sqlite:///{tmp_path / 'own.db'}"
    import_dataframe(demo_records(200, seed=4), "demo", database, synthetic=True)
    return database


def test_failures_on_made_up_names_behind_a_proxy_do_not_lock_out_the_admin(own_store, tmp_path):
    """issue 13 item 3: behind the proxy every client was 127.0.0.1, so about 40 failed
    sign-ins with made-up names locked the real admin out."""
    config = auth_dir(tmp_path / "auth", {"adm": ("admin", None)}, extra="proxy_hops = 1\n")
    app = create_app(own_store, load_config(config))
    attacker, admin = app.server.test_client(), app.server.test_client()
    statuses = []
    for attempt in range(40):
        # The attacker claims the admin's address; only the proxy's own entry is trusted.
        response = _sign_in_through_proxy(attacker, f"made-up-{attempt}", "wrong-password-x",
                                          "203.0.113.66", claimed="198.51.100.7")
        statuses.append(response.status_code)
    assert statuses[:20] == [401] * 20  # 20 free failures per address, then back-off
    assert statuses.count(401) <= 22 and statuses[-1] == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 300
    assert "try again in" in response.get_data(as_text=True)
    signed_in = _sign_in_through_proxy(admin, "adm", PASSWORD, "198.51.100.7")
    assert signed_in.status_code == 302
    assert admin.get("/_dash-layout").status_code == 200


def test_without_proxy_hops_a_forwarded_address_is_not_believed(site, tmp_path):
    config = auth_dir(tmp_path / "auth", {"adm": ("admin", None)})
    assert load_config(config).proxy_hops == 0
    app = create_app(site[0], load_config(config))
    client = app.server.test_client()
    with app.server.test_request_context("/", headers={"X-Forwarded-For": "203.0.113.9"},
                                         environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        from dashboard.auth.web import client_address

        assert client_address() == "127.0.0.1"
    assert client.get("/login", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200


@pytest.mark.parametrize("value", ["-1", "6", "true", '"1"'])
def test_proxy_hops_must_be_a_small_whole_number(tmp_path, value):
    from dashboard.auth.config import AuthConfigError

    config = auth_dir(tmp_path / "auth", {"ana": ("analyst", None)},
                      extra=f"proxy_hops = {value}\n")
    with pytest.raises(AuthConfigError, match="proxy_hops"):
        load_config(config)


def test_a_correct_password_is_slowed_down_never_locked_out(own_store, tmp_path, monkeypatch):
    """Failures on the admin's own name slow a new browser down (exponential back-off, then
    the password is checked); the admin's known browser is not slowed by them at all."""
    from dashboard.auth import throttle

    config = auth_dir(tmp_path / "auth", {"adm": ("admin", None)}, extra="proxy_hops = 1\n")
    app = create_app(own_store, load_config(config))
    start = throttle.now()
    clock = {"now": start}
    monkeypatch.setattr(throttle, "now", lambda: clock["now"])
    known = app.server.test_client()
    assert _sign_in_through_proxy(known, "adm", PASSWORD, "198.51.100.7").status_code == 302
    assert known.get_cookie("va_device", path="/login") is not None
    attacker = app.server.test_client()
    for _ in range(25):  # the attacker waits out every delay, so each guess is checked
        response = _sign_in_through_proxy(attacker, "adm", "wrong-password-x", "203.0.113.66")
        if response.status_code == 429:
            clock["now"] += pd.Timedelta(seconds=int(response.headers["Retry-After"]))
            response = _sign_in_through_proxy(attacker, "adm", "wrong-password-x",
                                              "203.0.113.66")
        assert response.status_code == 401
    # 25 failures: the 26th attempt for "adm" waits 2^(25-5) s, capped at 300 s.
    fresh = app.server.test_client()
    slowed = _sign_in_through_proxy(fresh, "adm", PASSWORD, "198.51.100.8")
    assert slowed.status_code == 429 and int(slowed.headers["Retry-After"]) == 300
    # The admin's own browser signs in at once; a new one after the wait.
    assert _sign_in_through_proxy(known, "adm", PASSWORD, "198.51.100.7").status_code == 302
    clock["now"] += pd.Timedelta(seconds=300)
    assert _sign_in_through_proxy(fresh, "adm", PASSWORD, "198.51.100.8").status_code == 302
    # A forged device cookie is an unknown device.
    forged = app.server.test_client()
    forged.set_cookie("va_device", "eyJuYW1lIjoiYWRtIn0.forged", domain="localhost",
                      path="/login")
    for _ in range(6):
        _sign_in_through_proxy(forged, "adm", "wrong-password-x", "203.0.113.67")
    assert _sign_in_through_proxy(forged, "adm", PASSWORD, "203.0.113.67").status_code == 429


# -- roles -----------------------------------------------------------------------------------

def _signed_in(app, name):
    client = app.server.test_client()
    assert sign_in(client, name).status_code == 302
    assert client.get("/").status_code == 200  # Dash registers the pages' callbacks
    return client


def test_viewer_posting_to_analyst_and_admin_callbacks_gets_403(app):
    viewer = _signed_in(app, "vic")
    records_csv = callback_payload(app, "records-download.data",
                                   {("records-download-button", "n_clicks"): 1,
                                    ("filter-state", "data"): {}})
    refused = viewer.post("/_dash-update-component", json=records_csv)
    assert refused.status_code == 403
    assert "record_id" not in refused.get_data(as_text=True).lower()
    users_key = next(k for k in app.callback_map if "users-message.children" in k)
    add_user = callback_payload(app, users_key, {
        ("users-add", "n_clicks"): 1, ("users-new-name", "value"): "mallory",
        ("users-new-role", "value"): "admin", ("users-new-password", "value"): "x" * 12},
        changed=["users-add.n_clicks"])
    assert viewer.post("/_dash-update-component", json=add_user).status_code == 403
    # The analyst may download records; the aggregated pages and the (suppressed) HTML report
    # stay open to the viewer.
    analyst = _signed_in(app, "ana")
    allowed = analyst.post("/_dash-update-component", json=records_csv)
    assert allowed.status_code == 200 and allowed.get_json()["response"][
        "records-download"]["data"]["filename"].endswith(".csv")
    report = callback_payload(app, "report-download.data",
                              {("report-button", "n_clicks"): 1, ("url", "pathname"): "/",
                               ("filter-state", "data"): {}})
    shared = viewer.post("/_dash-update-component", json=report)
    assert shared.status_code == 200 and "report" in shared.get_json()["response"][
        "report-download"]["data"]["filename"]
    events = read_events(app.server.config["VA_DATABASE"])
    shares = events[(events.actor == "vic") & (events.action == "download")]
    assert "report /" in {event["table"] for event in shares.detail}
    assert viewer.post("/_dash-update-component",
                       json=callback_payload(app, "match-count.children")).status_code == 200


def test_forbidden_raised_in_a_callback_is_http_403(site):
    """Without the gate's pre-check, Dash itself answers 403 for ``requires_role``."""
    app = create_app(site[0])  # no sign-in: the local admin...
    checked = {"ran": False}

    @app.callback(Output("probe-out", "children"), Input("probe-in", "value"))
    def probe(_value):
        checked["ran"] = True
        raise Forbidden("refused inside the callback")

    client = app.server.test_client()
    client.get("/")
    response = client.post("/_dash-update-component",
                           json=callback_payload(app, "probe-out.children"))
    assert checked["ran"] and response.status_code == 403


def test_requires_role_refuses_before_running(app):
    ran = []

    @requires_role("admin")
    def change(value):
        ran.append(value)
        return value

    with app.server.test_request_context("/"):
        import flask

        flask.g.va_user = User("ana", "analyst")
        with pytest.raises(Forbidden):
            change(1)
        flask.g.va_user = User("adm", "admin")
        assert change(2) == 2
    assert ran == [2] and change.__name__ == "change"


def test_navigation_hides_pages_the_role_does_not_include(app):
    viewer_layout = _signed_in(app, "vic").get("/_dash-layout").get_json()
    admin_layout = _signed_in(app, "adm").get("/_dash-layout").get_json()
    viewer_nav, admin_nav = _nav_paths(viewer_layout), _nav_paths(admin_layout)
    assert "/users" not in viewer_nav and "/users" in admin_nav
    assert {"/", "/costs", "/quality"} <= set(viewer_nav)
    viewer_text = json.dumps(viewer_layout)
    assert "Sign out" in viewer_text and "(viewer)" in viewer_text and '"vic"' in viewer_text
    # The page itself answers "not permitted" to a viewer who types its address.
    viewer = _signed_in(app, "vic")
    page = callback_payload(app, next(k for k in app.callback_map if "_pages_content" in k),
                            {("_pages_location", "pathname"): "/users",
                             ("_pages_location", "search"): ""},
                            changed=["_pages_location.pathname"])
    body = viewer.post("/_dash-update-component", json=page).get_data(as_text=True)
    assert "not-permitted" in body and "users-select" not in body


def test_admin_manages_users_and_changes_are_audited_and_take_effect(app, site):
    admin = _signed_in(app, "adm")
    key = next(k for k in app.callback_map if "users-message.children" in k)

    def manage(button, **values):
        named = {("users-" + k.replace("_", "-"), "value"): v for k, v in values.items()}
        named[(button, "n_clicks")] = 1
        response = admin.post("/_dash-update-component",
                              json=callback_payload(app, key, named, [f"{button}.n_clicks"]))
        assert response.status_code == 200
        return response.get_data(as_text=True)

    body = manage("users-add", new_name="temp1", new_role="viewer", new_facilities="FAC-004",
                  new_password="a-one-time-password")
    assert "added temp1 (viewer)" in body and "a-one-time-password" not in body
    temp = app.server.test_client()
    assert sign_in(temp, "temp1", "a-one-time-password").status_code == 302
    records_csv = callback_payload(app, "records-download.data",
                                   {("records-download-button", "n_clicks"): 1})
    assert temp.post("/_dash-update-component", json=records_csv).status_code == 403
    assert "temp1: analyst" in manage("users-save", select="temp1", role="analyst",
                                      facilities="")
    # A role change ends the user's sessions at once; signed in again, the new role applies.
    assert temp.post("/_dash-update-component", json=records_csv).status_code == 401
    assert sign_in(temp, "temp1", "a-one-time-password").status_code == 302
    assert temp.post("/_dash-update-component", json=records_csv).status_code == 200
    assert "you cannot remove your own account" in manage("users-remove", select="adm",
                                                          remove_confirm=True)
    assert "removed temp1" in manage("users-remove", select="temp1", remove_confirm=True)
    assert temp.get("/_dash-layout").status_code == 401  # a removed account is signed out
    events = read_events(site[0])
    mine = events[events.actor == "adm"]
    assert {"user_added", "role_change", "user_removed"} <= set(mine.action)
    change = mine[mine.action == "role_change"].iloc[0].detail
    assert change["user"] == "temp1" and change["from"] == "viewer" and change["to"] == "analyst"
    # The page never carries a password hash.
    assert "scrypt" not in manage("users-save", select="ana", role="analyst", facilities="")


# -- facility restriction ------------------------------------------------------------------

def test_restricted_user_sees_only_their_facilities(app, site):
    _database, _config, records = site
    mine = records[records.facility_id.isin(RESTRICTED)].reset_index(drop=True)
    client = _signed_in(app, "north")
    layout = client.get("/_dash-layout").get_json()
    text = json.dumps(layout)
    options = _dropdown_options(layout, "filter-facility")
    assert sorted(options) == sorted(RESTRICTED)
    others = set(records.facility_id.dropna()) - set(RESTRICTED)
    assert not any(f'"{facility}"' in text for facility in others)
    count = client.post("/_dash-update-component",
                        json=callback_payload(app, "match-count.children",
                                              {("filter-state", "data"): {}}))
    assert f"of {rounded_count(len(mine))} records" in json.dumps(count.get_json(),
                                                                  ensure_ascii=False)
    # The restricted frame's coded ids name only the user's facilities (a categorical's
    # categories are data too: a chart over them must not list another facility).
    from dashboard import data_access
    from data import store as data_store

    url = data_store.database_url(_database)
    restricted = data_access._restricted(url, data_store.data_version(url), tuple(RESTRICTED))
    assert list(restricted["facility_id"].cat.categories) == sorted(RESTRICTED)
    assert list(restricted["region"].cat.categories) == sorted(mine["region"].dropna().unique())
    # A filter naming another facility matches nothing of it.
    other = sorted(others)[0]
    leaked = client.post("/_dash-update-component", json=callback_payload(
        app, "match-count.children", {("filter-state", "data"): {"facilities": [other]}}))
    assert "0 of" in json.dumps(leaked.get_json())
    # The Overview's cards are exactly the analysis of the restricted records.
    from analysis.key_figures import key_figures
    from dashboard.figures.overview import kpi_rows

    expected = kpi_rows(key_figures(mine))
    body = json.dumps(client.post("/_dash-update-component", json=callback_payload(
        app, "overview-body.children", {("filter-state", "data"): {}})).get_json(),
        ensure_ascii=False)
    procedures = expected[expected.measure == "Procedures"]
    for value in procedures.value:
        assert f'"{value}"' in body
    # Selection totals per procedure are rounded (secondary suppression).
    assert f'"{rounded_count(len(mine[mine.procedure == "vertebroplasty"]))}"' in body


def _props(layout):
    """Every component's props in a ``/_dash-layout`` JSON tree."""
    if isinstance(layout, dict):
        if isinstance(layout.get("props"), dict):
            yield layout["props"]
        for value in layout.values():
            yield from _props(value)
    elif isinstance(layout, list):
        for value in layout:
            yield from _props(value)


def _nav_paths(layout) -> list[str]:
    return [props["id"]["path"] for props in _props(layout)
            if isinstance(props.get("id"), dict) and props["id"].get("type") == "nav-link"]


def _dropdown_options(layout, control_id) -> list[str]:
    return [option["value"] for props in _props(layout) if props.get("id") == control_id
            for option in props.get("options", [])]


def test_cached_results_are_never_shared_across_scopes(app, site):
    """The unrestricted analyst fills the page-output cache first; the restricted user with
    the same inputs must get their own numbers, and vice versa."""
    _database, _config, records = site
    mine = records[records.facility_id.isin(RESTRICTED)]
    payload = callback_payload(app, "match-count.children", {("filter-state", "data"): {}})
    everyone = _signed_in(app, "ana").post("/_dash-update-component", json=payload)
    restricted = _signed_in(app, "north").post("/_dash-update-component", json=payload)
    again = _signed_in(app, "ana").post("/_dash-update-component", json=payload)
    assert rounded_count(len(records)) != rounded_count(len(mine))  # the test can fail
    assert f"of {rounded_count(len(records))} records" in everyone.get_json()["response"][
        "match-count"]["children"]
    assert f"of {rounded_count(len(mine))} records" in restricted.get_json()["response"][
        "match-count"]["children"]
    assert json.dumps(again.get_json()) == json.dumps(everyone.get_json())


def test_scope_key_and_background_job_user(app):
    """In a background job (no request) the user comes from the session cookie in
    ``dash.ctx.cookies``; a forged cookie signs nobody in."""
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    client = app.server.test_client()
    sign_in(client, "north")
    cookie = client.get_cookie("va_session").value
    with app.server.app_context():
        token = context_value.set(AttributeDict(cookies={"va_session": cookie}))
        try:
            user = current_user()
            assert user == User("north", "analyst", tuple(RESTRICTED), "users-file")
            assert scope_key() == json.dumps(["analyst", RESTRICTED])
        finally:
            context_value.reset(token)
        token = context_value.set(AttributeDict(cookies={"va_session": cookie[:-2] + "xx"}))
        try:
            with pytest.raises(Forbidden):
                current_user()
        finally:
            context_value.reset(token)


def test_load_records_restricts_facilities(site):
    database, _config, records = site
    restricted = load_records(database, facilities=RESTRICTED)
    assert set(restricted.facility_id) == set(RESTRICTED)
    assert len(restricted) == int(records.facility_id.isin(RESTRICTED).sum())
    pd.testing.assert_frame_equal(
        restricted, records[records.facility_id.isin(RESTRICTED)].reset_index(drop=True))
    assert load_records(database, facilities=[]).empty
    with pytest.raises(TypeError):
        load_records(database, facilities="FAC-004")


# -- headers, debug ----------------------------------------------------------------------

def test_security_headers(app):
    client = _signed_in(app, "ana")
    for path in ("/", "/login", "/_dash-layout"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self' 'sha256-" in policy and "'unsafe-inline'" not in policy.split(
            "style-src")[0]
        assert "'unsafe-eval'" not in policy
        assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"
    update = client.post("/_dash-update-component",
                         json=callback_payload(app, "match-count.children"))
    assert update.headers["Cache-Control"] == "no-store"
    # Every inline script of the page is covered by a hash of the policy.
    page = client.get("/")
    import base64
    import hashlib

    policy = page.headers["Content-Security-Policy"]
    html = re.sub(r"<!--.*?-->", "", page.get_data(as_text=True), flags=re.S)  # IE-only script
    scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>",
                         html, flags=re.S)
    assert len(scripts) >= 2  # the renderer start-up and the inline clientside callbacks
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_a_failing_callback_returns_no_traceback(site, monkeypatch):
    monkeypatch.setenv("DASH_DEBUG", "true")
    app = create_app(site[0])

    @app.callback(Output("boom-out", "children"), Input("boom-in", "value"))
    def boom(_value):
        raise RuntimeError("secret internal detail /srv/path")

    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    config = json.loads(re.search(r'id="_dash-config"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert config["ui"] is False and config.get("hot_reload") is None
    response = client.post("/_dash-update-component",
                           json=callback_payload(app, "boom-out.children"))
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Traceback" not in body and "secret internal detail" not in body
    assert "app.py" not in body and ".py" not in body


# -- loopback rule ---------------------------------------------------------------------------

def test_without_sign_in_only_loopback_clients_are_answered(site):
    app = create_app(site[0])
    client = app.server.test_client()
    assert client.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    for address in ("10.1.2.3", "192.168.0.9", "2001:db8::1"):
        refused = client.get("/_dash-layout", environ_base={"REMOTE_ADDR": address})
        assert refused.status_code == 403
        assert "filter-panel" not in refused.get_data(as_text=True)
    # Behind a proxy every client looks like loopback: proxied requests are refused too.
    proxied = client.get("/", headers={"X-Forwarded-For": "203.0.113.5"})
    assert proxied.status_code == 403


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_app(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_non_loopback_start_without_sign_in_is_refused(site):
    result = _run_app("--host", "0.0.0.0", "--database", site[0], env={"VA_AUTH_CONFIG": ""})
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without sign-in" in result.stderr
    assert "--auth-config" in result.stderr


def test_start_refuses_secrets_readable_by_others(site, tmp_path):
    config = auth_dir(tmp_path / "auth", {"ana": ("analyst", None)})
    secret = config.parent / "secret_key"
    secret.chmod(0o644)
    result = _run_app("--host", "0.0.0.0", "--database", site[0], "--auth-config", str(config))
    assert result.returncode == 2
    assert "secret_key_file" in result.stderr and "chmod 600" in result.stderr
    assert secret.read_text() not in result.stderr + result.stdout


def test_app_run_never_enables_debug(site, tmp_path):
    """``python app.py`` with DASH_DEBUG=true still serves no dev tools."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--database", site[0]], cwd=ROOT,
        env={**os.environ, "DASH_DEBUG": "true", "VA_AUTH_CONFIG": ""},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        page = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and page is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert page is not None, "the app did not start"
        config = json.loads(re.search(rb'id="_dash-config"[^>]*>(.*?)</script>', page,
                                      re.S).group(1))
        assert config["ui"] is False and config["props_check"] is False
        assert "hot_reload" not in config
    finally:
        process.terminate()
        process.wait(timeout=20)


def _background_result(client, payload, timeout: float = 120) -> dict:
    """Post a background callback as the browser does and poll until its job has answered."""
    first = client.post("/_dash-update-component", json=payload)
    assert first.status_code == 200
    job = first.get_json()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = client.post(
            f"/_dash-update-component?cacheKey={job['cacheKey']}&job={job['job']}", json=payload)
        assert poll.status_code == 200
        body = poll.get_json()
        if body and "response" in body:
            return body["response"]
        time.sleep(0.3)
    raise AssertionError("the background job did not answer")


def test_background_job_sees_only_the_users_facilities(app, site):
    """The Comparison page's Table 1 runs in a forked background job: it must be computed
    from the restricted user's rows (the job finds the user from the session cookie)."""
    import plotly.utils

    from dashboard.figures import comparison as fig
    from dashboard.pages.comparison import table_one_section

    _database, _config, records = site
    mine = records[records.facility_id.isin(RESTRICTED)].reset_index(drop=True)
    client = _signed_in(app, "north")  # the first request registers the pages' callbacks
    key = next(k for k in app.callback_map if "comparison-table-one.children" in k)
    payload = callback_payload(app, key, {("filter-state", "data"): {}})
    response = _background_result(client, payload)
    got = response["comparison-table-one"]["children"]

    def as_json(component):
        return json.loads(json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder))

    assert got == as_json(table_one_section(fig.baseline_analysis(mine)))
    assert got != as_json(table_one_section(fig.baseline_analysis(records)))


def test_import_history_is_hidden_from_a_facility_restricted_user(app, site):
    """The import history counts every facility's file rows: a restricted user gets a note,
    from the callback itself (not only the layout) and in the Data report."""
    from dashboard.pages.data import STORE_WIDE_HIDDEN

    north, analyst = _signed_in(app, "north"), _signed_in(app, "ana")
    payload = callback_payload(app, "data-imports.children", {("data-refresh", "n_clicks"): 1})
    restricted = json.dumps(north.post("/_dash-update-component", json=payload).get_json())
    assert STORE_WIDE_HIDDEN in restricted
    assert "demo" not in restricted  # the batch's source name is not shown
    unrestricted = json.dumps(analyst.post("/_dash-update-component", json=payload).get_json())
    assert STORE_WIDE_HIDDEN not in unrestricted and "demo" in unrestricted
