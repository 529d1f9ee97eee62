"""Roles, the users file, the auth configuration, safe redirects and the management CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import flask
import pytest

from dashboard.auth import ROLES, User, current_user, requires_role, scope_key
from dashboard.auth import users as users_file
from dashboard.auth.config import AuthConfigError, load_config
from dashboard.auth.web import is_loopback, oidc_user, safe_next
from tests.auth_support import PASSWORD, auth_dir, write_private
from tests.conftest import ROOT

# -- roles and scope -------------------------------------------------------------------------


def test_roles_are_ordered_and_each_includes_the_lower_ones():
    assert ROLES == ("viewer", "analyst", "admin")
    for index, role in enumerate(ROLES):
        user = User("u", role)
        assert [user.has_role(r) for r in ROLES] == [i <= index for i in range(len(ROLES))]
    with pytest.raises(ValueError, match="unknown role"):
        User("u", "superuser")
    with pytest.raises(ValueError, match="unknown role"):
        User("u", "admin").has_role("owner")


def test_without_sign_in_everyone_is_the_local_admin():
    app = flask.Flask("scope")
    with app.test_request_context("/"):
        flask.g.va_user = User("a", "viewer", ("F1",))  # ignored: sign-in is off
        assert current_user() == User("local", "admin", None, "local")
        assert scope_key() == json.dumps(["admin", None])


def test_scope_key_differs_per_scope_when_signed_in():
    app = flask.Flask("scope")
    app.config["VA_AUTH"] = object()
    seen = {}
    with app.test_request_context("/"):
        for user in (User("a", "analyst", ("F2", "F1")), User("b", "analyst", ("F1", "F2")),
                     User("c", "analyst"), User("d", "viewer", ("F1", "F2")),
                     User("e", "analyst", ("F1",))):
            flask.g.va_user = user
            seen[user.name] = scope_key()
    assert seen["a"] == seen["b"]  # same role and facilities, in any order
    assert len({seen[n] for n in "acde"}) == 4


def test_nobody_signed_in_is_denied():
    from werkzeug.exceptions import Forbidden

    app = flask.Flask("deny")
    app.config["VA_AUTH"] = object()
    app.secret_key = "k" * 32

    @requires_role("viewer")
    def page():
        return "data"

    with app.test_request_context("/"):
        with pytest.raises(Forbidden):
            current_user()
        with pytest.raises(Forbidden):
            page()
    with pytest.raises(ValueError):
        requires_role("root")


# -- passwords and the users file ----------------------------------------------------------

def _users(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    users_file.write_new(path)
    return path


def test_passwords_are_salted_hashes_never_text(tmp_path):
    path = _users(tmp_path)
    users_file.add_user(path, "ana", "analyst", PASSWORD)
    users_file.add_user(path, "bob", "viewer", PASSWORD)
    text = path.read_text()
    assert PASSWORD not in text
    hashes = [entry["password_hash"] for entry in json.loads(text)["users"].values()]
    assert all(h.startswith("scrypt:") for h in hashes) and hashes[0] != hashes[1]  # salted
    accounts = users_file.read_accounts(path)
    assert users_file.authenticate(accounts, "ana", PASSWORD) == User("ana", "analyst", None,
                                                                       "users-file")
    assert users_file.authenticate(accounts, "ana", PASSWORD + "x") is None
    assert users_file.authenticate(accounts, "nobody", PASSWORD) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_users_file_changes_and_validation(tmp_path):
    path = _users(tmp_path)
    users_file.add_user(path, "ana", "viewer", PASSWORD, ["F2", "F1"])
    before, after = users_file.update_user(path, "ana", role="admin")
    assert (before.role, after.role, after.facilities) == ("viewer", "admin", ("F1", "F2"))
    _, after = users_file.update_user(path, "ana", facilities=None)
    assert after.facilities is None and after.role == "admin"
    with pytest.raises(users_file.UsersFileError, match="already exists"):
        users_file.add_user(path, "ana", "viewer", PASSWORD)
    with pytest.raises(users_file.UsersFileError, match="invalid user name"):
        users_file.add_user(path, "ana@hospital.org", "viewer", PASSWORD)
    with pytest.raises(users_file.UsersFileError, match="at least 10"):
        users_file.add_user(path, "short", "viewer", "abc")
    with pytest.raises(users_file.UsersFileError, match="invalid role"):
        users_file.update_user(path, "ana", role="root")
    with pytest.raises(users_file.UsersFileError, match="empty facility list"):
        users_file.update_user(path, "ana", facilities=[])
    assert users_file.remove_user(path, "ana").name == "ana"
    with pytest.raises(users_file.UsersFileError, match="no user"):
        users_file.remove_user(path, "ana")
    assert users_file.read_accounts(path) == {}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_users_file_readable_by_others_is_refused(tmp_path):
    path = _users(tmp_path)
    path.chmod(0o640)
    with pytest.raises(users_file.UsersFileError, match="chmod 600"):
        users_file.read_accounts(path)


def test_a_damaged_users_file_names_the_problem(tmp_path):
    path = write_private(tmp_path / "users.json", '{"users": {"ana": {"role": "boss"}}}')
    with pytest.raises(users_file.UsersFileError, match="user 'ana'.*invalid role 'boss'"):
        users_file.read_accounts(path)
    write_private(path, "{not json")
    with pytest.raises(users_file.UsersFileError, match="not valid JSON"):
        users_file.read_accounts(path)


def _add_many(path: str, start: int) -> None:
    for i in range(start, start + 3):
        users_file.add_user(path, f"user{i}", "viewer", PASSWORD)


def test_concurrent_writers_lose_no_change(tmp_path):
    path = _users(tmp_path)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(str(path), 3 * n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert sorted(users_file.read_accounts(path)) == sorted(f"user{i}" for i in range(12))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".users.json.")]


# -- configuration -------------------------------------------------------------------------

def test_valid_configuration(tmp_path):
    config = load_config(auth_dir(tmp_path, {"ana": ("analyst", None)}))
    assert config.users_file == tmp_path / "users.json" and config.oidc is None
    assert config.session_cookie_secure is False and config.session_hours == 1
    assert len(config.secret_key) >= 32
    assert config.secret_key.decode() not in repr(config)  # secrets never in a repr or log


@pytest.mark.parametrize("extra, message", [
    ("colour = 1\n", "unknown keys"),
    ("[oidc]\nclient_id = 'x'\n", "oidc.server_metadata_url: required"),
    ("[oidc]\nclient_id = 'x'\nserver_metadata_url = 'http://idp.example/'\n", "https://"),
    ("[oidc]\nclient_id = 'x'\nserver_metadata_url = 'https://idp/'\nclient_secret_file = "
     "'secret_key'\n[oidc.roles]\nstaff = 'owner'\n", "oidc.roles.staff"),
])
def test_invalid_configuration_names_key_and_rule(tmp_path, extra, message):
    path = auth_dir(tmp_path, {}, extra=extra)
    with pytest.raises(AuthConfigError, match=message):
        load_config(path)


def test_session_hours_and_secret_rules(tmp_path, monkeypatch):
    path = auth_dir(tmp_path, {})
    text = path.read_text()
    write_private(path, text.replace("session_hours = 1", "session_hours = -3"))
    with pytest.raises(AuthConfigError, match="session_hours"):
        load_config(path)
    write_private(path, text)
    write_private(tmp_path / "secret_key", "short")
    with pytest.raises(AuthConfigError, match="at least 32 characters"):
        load_config(path)
    monkeypatch.setenv("VA_SECRET_KEY", "e" * 40)  # the environment wins over the file
    assert load_config(path).secret_key == b"e" * 40
    monkeypatch.delenv("VA_SECRET_KEY")
    write_private(path, text.replace('secret_key_file = "secret_key"\n', ""))
    with pytest.raises(AuthConfigError, match="VA_SECRET_KEY"):
        load_config(path)


@pytest.mark.parametrize("name", ["secret_key", "users.json", "auth.toml"])
def test_files_readable_by_others_are_refused(tmp_path, name):
    path = auth_dir(tmp_path, {})
    (tmp_path / name).chmod(0o644)
    with pytest.raises(AuthConfigError, match="chmod 600"):
        load_config(path)


# -- redirects, addresses, throttling, OIDC mapping ---------------------------------------

@pytest.mark.parametrize("target, expected", [
    ("/costs?country=FR", "/costs?country=FR"), ("/", "/"), (None, "/"), ("", "/"),
    ("//evil.example/", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"), ("costs", "/"), ("/login?next=/x", "/"),
    ("/_dash-layout", "/"), ("/ok\r\nSet-Cookie: x=1", "/"),
])
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "localhost",
                                 "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "192.168.1.1", "::", "", None,
                                     "example.org", "2001:db8::1"]))


def test_backoff_doubles_after_the_free_failures_and_is_capped():
    from dashboard.auth.throttle import Backoff

    policy = Backoff(free=3, base_seconds=2, max_seconds=60)
    assert [policy.delay(n) for n in range(8)] == [0, 0, 0, 2, 4, 8, 16, 32]
    assert policy.delay(9) == 60 and policy.delay(10_000) == 60


def test_login_throttle_counts_per_name_address_and_device(database, monkeypatch):
    """On SQLite and PostgreSQL (the store's upsert counts atomically on both)."""
    from dashboard.auth import throttle as module

    start = module.now()
    clock = {"now": start}
    monkeypatch.setattr(module, "now", lambda: clock["now"])
    policies = {"name": module.Backoff(3), "address": module.Backoff(5),
                "device": module.Backoff(3)}
    throttle = module.LoginThrottle(database, policies)
    for _ in range(3):
        assert throttle.wait("ana", "10.0.0.1") == 0
        throttle.failed("ana", "10.0.0.1")
    assert throttle.wait("ANA", "10.0.0.2") == 1  # names are case-insensitive
    assert throttle.wait("bob", "10.0.0.2") == 0
    assert throttle.wait("ana", "10.0.0.2", device="dev-1") == 0  # a known device: its own
    throttle.failed("bob", "10.0.0.1")
    throttle.failed("cy", "10.0.0.1")
    assert throttle.wait("dan", "10.0.0.1") == 1  # the address has had five failures
    throttle.failed("ana", "10.0.0.9")
    assert throttle.wait("ana", "10.0.0.9") == 2  # the delay doubles
    clock["now"] = start + module.dt.timedelta(seconds=2)
    assert throttle.wait("ana", "10.0.0.9") == 0
    throttle.succeeded("ana")
    assert throttle.wait("ana", "10.0.0.8") == 0
    clock["now"] = start + module.WINDOW + module.dt.timedelta(seconds=3)
    assert throttle.wait("dan", "10.0.0.1") == 0  # failures past the window are forgotten


def test_oidc_groups_map_to_the_highest_role():
    from dashboard.auth.config import OIDCConfig

    oidc = OIDCConfig("https://idp/.well-known/openid-configuration", "id", "s",
                      groups_claim="roles", username_claim="email",
                      roles={"v": "viewer", "a": "analyst", "boss": "admin"},
                      facilities={"north": ("F1",), "south": ("F2", "F3")})
    user = oidc_user({"sub": "1", "email": "x@h", "roles": ["v", "boss", "north", "south"]}, oidc)
    assert user == User("x@h", "admin", ("F1", "F2", "F3"), "oidc")
    assert oidc_user({"sub": "2", "roles": "a"}, oidc) == User("2", "analyst", None, "oidc")
    assert oidc_user({"sub": "3", "roles": ["north"]}, oidc) is None  # facilities alone: no role
    assert oidc_user({"sub": "4"}, oidc) is None


# -- the CLI -----------------------------------------------------------------------------------

def _cli(*args, stdin: str | None = None, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "dashboard.auth", *args], cwd=ROOT, text=True,
                          input=stdin, capture_output=True, timeout=120,
                          env={**os.environ, "VA_AUTH_CONFIG": "", **(env or {})})


def test_cli_init_add_list_change_remove(tmp_path):
    folder = tmp_path / "auth"
    assert _cli("init", str(folder)).returncode == 0
    for name in ("auth.toml", "secret_key", "users.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert _cli("init", str(folder)).returncode == 1  # never overwrites
    env = {"VA_AUTH_CONFIG": str(folder / "auth.toml"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    added = _cli("add-user", "ana", "--role", "analyst", "--facility", "F2", "--facility", "F1",
                 "--password-stdin", stdin=PASSWORD + "\n", env=env)
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    assert PASSWORD not in (folder / "users.json").read_text()
    assert stat.S_IMODE((folder / "users.json").stat().st_mode) == 0o600
    listed = _cli("list-users", "--json", env=env)
    assert json.loads(listed.stdout) == [{"name": "ana", "role": "analyst",
                                          "facilities": ["F1", "F2"]}]
    assert "scrypt" not in listed.stdout
    assert _cli("set-role", "ana", "admin", env=env).returncode == 0
    assert _cli("set-facilities", "ana", "--all", env=env).returncode == 0
    assert json.loads(_cli("list-users", "--json", env=env).stdout)[0] == {
        "name": "ana", "role": "admin", "facilities": None}
    assert _cli("remove-user", "ana", env=env).returncode == 0
    from data.audit import read_events

    events = read_events(env["DATABASE_URL"])
    assert events.action.tolist() == ["user_removed", "role_change", "role_change", "user_added"]
    assert set(events.actor) == {f"cli:{__import__('getpass').getuser()}"}
    assert events.iloc[2].detail == {"user": "ana", "from": "analyst", "to": "admin"}


def test_cli_exit_codes(tmp_path):
    config = auth_dir(tmp_path / "auth", {"ana": ("viewer", None)})
    env = {"VA_AUTH_CONFIG": str(config), "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    duplicate = _cli("add-user", "ana", "--role", "viewer", "--password-stdin",
                     stdin=PASSWORD + "\n", env=env)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    short = _cli("add-user", "bob", "--role", "viewer", "--password-stdin", stdin="abc\n", env=env)
    assert short.returncode == 1 and "at least 10" in short.stderr
    assert _cli("set-role", "nobody", "admin", env=env).returncode == 1
    assert _cli("set-role", "ana", "root", env=env).returncode == 2  # argparse choices
    assert _cli("list-users").returncode == 2  # no configuration
    (config.parent / "users.json").chmod(0o644)
    refused = _cli("list-users", env=env)
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
