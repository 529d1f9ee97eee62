"""Sign-in for the Flask server under the Dash app: ``/login``, ``/logout``, OIDC, the gate.

:func:`install` adds to a Dash app

* ``GET/POST /login`` — the sign-in form for local accounts (CSRF token, constant-time
  checks, one generic error message, exponential back-off per name, address and known device
  counted in the store: :mod:`dashboard.auth.throttle`);
* ``GET /login/oidc`` and ``/login/oidc/callback`` — OpenID Connect sign-in (Authlib), groups
  mapped to the highest role found and to facilities; a user with no mapped group is refused;
* ``POST /logout`` (with the CSRF token): ends the session in the store and clears the
  cookie (:mod:`dashboard.auth.sessions`);
* a ``before_request`` gate: every request's session is checked against the store
  (:func:`session_user`: open, used within ``idle_minutes``, account unchanged); signed-out
  page requests are redirected to ``/login``, signed-out ``/_dash-*`` requests get 401 JSON,
  and a callback request is refused with 403 when the callback was decorated with
  :func:`dashboard.auth.requires_role` and the user lacks the role;
* without an auth configuration: only loopback clients are answered (403 for others).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import dash
import flask
from markupsafe import Markup

from dashboard.auth import CONFIG_KEY, LOCAL_USER, ROLES, SESSION_KEY, User, sessions
from dashboard.auth import users as users_file
from dashboard.auth.config import AuthConfig
from dashboard.auth.throttle import LoginThrottle

log = logging.getLogger(__name__)

#: Paths served without sign-in: the sign-in pages and what they need (Bootstrap CSS, icon).
PUBLIC_PREFIXES = ("/login", "/vendor/bootstrap/", "/_favicon.ico")
#: A browser that signed in as a user carries this signed cookie naming the user (and a random
#: device id): its sign-in attempts are slowed only by its own failures (dashboard.auth.throttle).
DEVICE_COOKIE = "va_device"
DEVICE_DAYS = 90
GENERIC_ERROR = "Wrong user name or password."
# Headers a reverse proxy adds: their presence means the loopback address is not the client's.
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped) and ``localhost``.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("10.0.0.1")
    (True, True, False)
    """
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def safe_next(target: str | None) -> str:
    """A local path to go to after sign-in; anything else (another site, a scheme) gives "/".

    >>> safe_next("/costs?country=FR"), safe_next("//evil.example/"), safe_next("https://x.y/")
    ('/costs?country=FR', '/', '/')
    """
    if not target or not isinstance(target, str) or len(target) > 2000:
        return "/"
    if any(ord(c) < 32 or c == "\\" for c in target):
        return "/"
    if not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    if parts.path.startswith(("/login", "/logout", "/_")):
        return "/"
    return target


_ACCOUNTS_CACHE: dict[str, tuple[tuple[int, int, int], dict[str, users_file.Account]]] = {}
_ACCOUNTS_LOCK = threading.Lock()


def _accounts(path: Path) -> dict[str, users_file.Account]:
    """The users file, re-read when it changes (every write replaces the file: a new inode)."""
    info = path.stat()
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    with _ACCOUNTS_LOCK:
        cached = _ACCOUNTS_CACHE.get(str(path))
        if cached is not None and cached[0] == stamp:
            return cached[1]
    accounts = users_file.read_accounts(path)
    with _ACCOUNTS_LOCK:
        _ACCOUNTS_CACHE[str(path)] = (stamp, accounts)
    return accounts


def _config() -> AuthConfig | None:
    return flask.current_app.config.get(CONFIG_KEY)


def refresh_local_user(user: User, stamp: object = None) -> User | None:
    """The current state of a users-file account: ``None`` once it is removed or unreadable,
    or when ``stamp`` (taken at sign-in) no longer matches the account (its password, role or
    facilities changed since)."""
    config = _config()
    if config is None or config.users_file is None:
        return None
    try:
        account = _accounts(config.users_file).get(user.name)
    except (OSError, users_file.UsersFileError) as error:
        log.error("users file unreadable, refusing sign-ins: %s", error)
        return None
    if account is None:
        return None
    if stamp is not None and not hmac.compare_digest(str(stamp), _stamp(account)):
        return None
    return account.user()


def _stamp(account: users_file.Account) -> str:
    config = _config()
    return sessions.account_stamp(config.secret_key, account.role, account.facilities,
                                  account.password_hash)


def session_user(data: Any) -> User | None:
    """The user a session (cookie contents) signs in, after the server-side checks.

    The session must be open in the store (not signed out, used within ``idle_minutes``, begun
    within ``session_hours``), and a users-file account must be unchanged since sign-in.
    Anything else, including an unreachable store, signs nobody in.
    """
    if not isinstance(data, dict):
        return None
    user = User.from_session(data.get(SESSION_KEY))
    config = _config()
    if user is None or config is None:
        return None
    try:
        from dashboard.context import database

        if not sessions.check(database(), data.get(sessions.TOKEN_KEY), user.name,
                              config.idle_timeout, config.session_lifetime):
            return None
    except Exception as error:  # noqa: BLE001 - no store, no session: deny by default
        log.error("session check failed, signing nobody in: %s", type(error).__name__)
        return None
    if flask.has_request_context():
        flask.g.va_session = sessions.session_digest(data[sessions.TOKEN_KEY])
    if user.source != "users-file":
        return user
    stamp = data.get(sessions.STAMP_KEY)
    return refresh_local_user(user, stamp if stamp is not None else "")


def audit(actor: str, action: str, detail: dict | None = None) -> None:
    """Write an audit event; a failure is logged, never shown to the user."""
    try:
        from dashboard.context import database
        from data.audit import log_event

        log_event(database(), actor, action, detail)
    except Exception as error:  # noqa: BLE001 - auditing must not break sign-in
        log.warning("audit event %s not written: %s", action, error)


def client_address() -> str:
    """The client's address: the peer's, or with ``proxy_hops`` = N the address the N-th
    proxy from the app reported (werkzeug's ``ProxyFix``); never one a client claims itself."""
    return flask.request.remote_addr or "unknown"


_PROXY_WARNED: set[str] = set()


def _warn_untrusted_proxy(config: AuthConfig) -> None:
    """Log once when sign-ins arrive through a proxy the configuration does not trust: every
    client then has the proxy's address and shares one back-off."""
    if config.proxy_hops or str(config.path) in _PROXY_WARNED:
        return
    if any(header in flask.request.headers for header in PROXY_HEADERS):
        _PROXY_WARNED.add(str(config.path))
        log.warning("sign-ins arrive through a reverse proxy but proxy_hops = 0: all clients "
                    "share the proxy's address for the sign-in back-off; set proxy_hops in %s",
                    config.path)


def _device_serializer():
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(_config().secret_key, salt="va-known-device")


def known_device(name: str) -> str | None:
    """The device id of this browser's known-device cookie when it names ``name``."""
    value = flask.request.cookies.get(DEVICE_COOKIE)
    if not value or not name:
        return None
    try:
        data = _device_serializer().loads(value, max_age=DEVICE_DAYS * 86400)
    except Exception:  # noqa: BLE001 - forged, expired or damaged: an unknown device
        return None
    if not isinstance(data, dict) or data.get("name") != name:
        return None
    device = data.get("device")
    return device if isinstance(device, str) and device else None


def _remember_device(response: flask.Response, name: str) -> None:
    config = _config()
    value = _device_serializer().dumps({"name": name, "device": secrets.token_urlsafe(16)})
    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_DAYS * 86400, path="/login",
                        httponly=True, secure=config.session_cookie_secure, samesite="Strict")


# -- pages -------------------------------------------------------------------------------

def _page(title: str, body: Markup, status: int = 200) -> flask.Response:
    html = Markup(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>{title} · VA outcomes</title>"
        "<link rel=\"stylesheet\" href=\"/vendor/bootstrap/bootstrap.min.css\"></head>"
        "<body class=\"bg-light\"><main class=\"container\" style=\"max-width: 26rem\">"
        "<h1 class=\"h4 mt-5 mb-3\">{title}</h1>{body}</main></body></html>"
    ).format(title=title, body=body)
    response = flask.make_response(str(html), status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


def csrf_token() -> str:
    """The session's CSRF token (created when missing), for forms that post to the app."""
    return _csrf_token()


def _csrf_token() -> str:
    token = flask.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        flask.session["csrf"] = token
    return token


def _login_page(error: str | None = None, status: int = 200, name: str = "") -> flask.Response:
    config = _config()
    next_url = safe_next(flask.request.values.get("next"))
    parts = []
    if error:
        parts.append(Markup('<div class="alert alert-danger py-2" role="alert" id="login-error">'
                            "{}</div>").format(error))
    if config is not None and config.users_file is not None:
        parts.append(Markup(
            '<form method="post" action="/login" id="login-form" class="card card-body mb-3">'
            '<input type="hidden" name="csrf_token" value="{csrf}">'
            '<input type="hidden" name="next" value="{next}">'
            '<label class="form-label" for="username">User name</label>'
            '<input class="form-control mb-2" id="username" name="username" value="{name}" '
            'autocomplete="username" required autofocus>'
            '<label class="form-label" for="password">Password</label>'
            '<input class="form-control mb-3" id="password" name="password" type="password" '
            'autocomplete="current-password" required>'
            '<button class="btn btn-primary" id="login-submit" type="submit">Sign in</button>'
            "</form>").format(csrf=_csrf_token(), next=next_url, name=name))
    if config is not None and config.oidc is not None:
        parts.append(Markup('<a class="btn btn-outline-primary w-100" id="login-oidc" '
                            'href="/login/oidc?{query}">Sign in with {label}</a>')
                     .format(query=urlencode({"next": next_url}), label=config.oidc.name))
    return _page("Sign in", Markup("").join(parts), status)


def _sign_in(user: User, method: str, account: users_file.Account | None = None) -> None:
    from dashboard.context import database

    flask.session.clear()  # nothing from before sign-in survives it
    flask.session[SESSION_KEY] = user.to_session()
    flask.session[sessions.TOKEN_KEY] = sessions.start(database(), user.name, user.source)
    if account is not None:
        flask.session[sessions.STAMP_KEY] = _stamp(account)
    flask.session["csrf"] = secrets.token_urlsafe(32)
    flask.session.permanent = True
    flask.g.va_user = user
    audit(user.name, "sign_in", {"method": method, "role": user.role,
                                 "facilities": list(user.facilities) if user.facilities else None})


def login():
    from dashboard.context import database

    config = _config()
    if config is None:
        return flask.redirect("/")
    if flask.request.method == "GET":
        return _login_page()
    form = flask.request.form
    if config.users_file is None:
        return _login_page("Sign-in with a password is not enabled here.", 400)
    sent = form.get("csrf_token", "")
    expected = flask.session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_page("The form expired; please sign in again.", 400)
    name = form.get("username", "").strip()[:64]
    password = form.get("password", "")
    throttle = LoginThrottle(database())
    _warn_untrusted_proxy(config)
    address = client_address()
    device = known_device(name)
    try:
        wait = throttle.wait(name, address, device)
    except Exception as error:  # noqa: BLE001 - no store: no sign-in (fail closed)
        log.error("sign-in back-off unavailable: %s", type(error).__name__)
        return _login_page("Sign-in is unavailable; ask your administrator.", 503)
    if wait > 0:
        seconds = math.ceil(wait)
        actor = name if users_file.NAME_PATTERN.match(name) else "(invalid name)"
        audit(actor, "sign_in_failed", {"reason": "rate limited"})
        response = _login_page(f"Too many failed sign-ins; try again in {seconds} seconds.",
                               429, name=actor if actor != "(invalid name)" else "")
        response.headers["Retry-After"] = str(seconds)
        return response
    try:
        accounts = _accounts(config.users_file)
    except (OSError, users_file.UsersFileError) as error:
        log.error("users file unreadable: %s", error)
        return _login_page("Sign-in is unavailable; ask your administrator.", 503)
    user = users_file.authenticate(accounts, name, password)
    if user is None:
        throttle.failed(name, address, device)
        # Only a name that could be an account is recorded (never what was typed as password).
        actor = name if users_file.NAME_PATTERN.match(name) else "(invalid name)"
        audit(actor, "sign_in_failed", {"method": "password"})
        return _login_page(GENERIC_ERROR, 401, name=name if users_file.NAME_PATTERN.match(name)
                           else "")
    try:
        throttle.succeeded(name, device)
        _sign_in(user, "password", accounts[user.name])
    except Exception as error:  # noqa: BLE001 - no session can be recorded: no sign-in
        log.error("sign-in not recorded: %s", type(error).__name__)
        flask.session.clear()
        return _login_page("Sign-in is unavailable; ask your administrator.", 503)
    response = flask.redirect(safe_next(form.get("next")))
    _remember_device(response, user.name)
    return response


def logout():
    """``POST /logout`` with the session's CSRF token: end the session on the server too.

    A copy of the cookie kept from before (another tab, a proxy log, malware) signs nobody in
    afterwards, because the store has ended its session.
    """
    from dashboard.context import database

    user = User.from_session(flask.session.get(SESSION_KEY))
    if user is None:
        flask.session.clear()
        return flask.redirect("/login")
    if flask.request.method != "POST":
        # A link or an image on another site must not sign anyone out: offer the form.
        response = _page("Sign out", Markup(
            '<form method="post" action="/logout" id="logout-form">'
            '<input type="hidden" name="csrf_token" value="{csrf}">'
            '<button class="btn btn-primary" type="submit">Sign out</button></form>'
        ).format(csrf=_csrf_token()), 405)
        response.headers["Allow"] = "POST"
        return response
    expected = flask.session.get("csrf", "")
    sent = flask.request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _page("Sign out", Markup('<p id="logout-error">The sign-out form expired. '
                                        '<a href="/">Back to the dashboard</a>.</p>'), 400)
    try:
        sessions.end(database(), flask.session.get(sessions.TOKEN_KEY))
    except Exception as error:  # noqa: BLE001 - the cookie is cleared below in any case
        log.error("session end not recorded: %s", type(error).__name__)
    audit(user.name, "sign_out")
    flask.session.clear()
    return flask.redirect("/login")


# -- OIDC --------------------------------------------------------------------------------

def oidc_user(claims: dict[str, Any], oidc) -> User | None:
    """The user an ID token's claims map to: the highest role of the mapped groups and the
    union of their facilities (every facility when no group carries a facility list).

    >>> from dashboard.auth.config import OIDCConfig
    >>> settings = OIDCConfig("https://idp/", "id", "s", roles={"a": "analyst", "v": "viewer"},
    ...                       facilities={"north": ("F01",)})
    >>> oidc_user({"sub": "u1", "groups": ["v", "a", "north"]}, settings)
    User(name='u1', role='analyst', facilities=('F01',), source='oidc')
    >>> oidc_user({"sub": "u2", "groups": ["other"]}, settings) is None
    True
    """
    groups = claims.get(oidc.groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    groups = [str(g) for g in groups]
    roles = [oidc.roles[g] for g in groups if g in oidc.roles]
    if not roles:
        return None
    role = max(roles, key=ROLES.index)
    facility_groups = [g for g in groups if g in oidc.facilities]
    facilities = (tuple(sorted({f for g in facility_groups for f in oidc.facilities[g]}))
                  if facility_groups else None)
    name = claims.get(oidc.username_claim) or claims.get("sub")
    if not name:
        return None
    return User(str(name)[:255], role, facilities, "oidc")


def oidc_login():
    config = _config()
    if config is None or config.oidc is None:
        flask.abort(404)
    flask.session["oidc_next"] = safe_next(flask.request.args.get("next"))
    client = flask.current_app.extensions["va_oauth"].create_client("oidc")
    redirect_uri = flask.url_for("va_oidc_callback", _external=True)
    return client.authorize_redirect(redirect_uri)


def oidc_callback():
    config = _config()
    if config is None or config.oidc is None:
        flask.abort(404)
    client = flask.current_app.extensions["va_oauth"].create_client("oidc")
    try:
        token = client.authorize_access_token()
    except Exception as error:  # noqa: BLE001 - any provider or token problem: refuse clearly
        log.warning("OIDC sign-in failed: %s", type(error).__name__)
        audit("(oidc)", "sign_in_failed", {"method": "oidc", "reason": type(error).__name__})
        return _page("Sign-in failed", Markup(
            '<p id="oidc-error">The single sign-on provider did not confirm your sign-in. '
            '<a href="/login">Try again</a>.</p>'), 401)
    claims = token.get("userinfo")
    if not claims:
        return _page("Sign-in failed", Markup(
            '<p id="oidc-error">The provider returned no ID token.</p>'), 401)
    user = oidc_user(dict(claims), config.oidc)
    if user is None:
        audit("(oidc)", "sign_in_failed", {"method": "oidc", "reason": "no mapped group"})
        return _page("Access not granted", Markup(
            '<p id="oidc-refused">You signed in, but your account is not in any group that '
            "grants access to this dashboard. Ask your administrator to add you to one.</p>"
            '<p><a href="/login">Back</a></p>'), 403)
    next_url = safe_next(flask.session.get("oidc_next"))
    _sign_in(user, "oidc")
    return flask.redirect(next_url)


# -- the gate ------------------------------------------------------------------------------

def required_role(callback: Any) -> str | None:
    """The role recorded on a callback function by ``requires_role`` (through its wrappers)."""
    seen = 0
    while callback is not None and seen < 20:
        role = getattr(callback, "va_required_role", None)
        if role:
            return role
        callback = getattr(callback, "__wrapped__", None)
        seen += 1
    return None


def _gate(app: dash.Dash):
    def before_request():
        request = flask.request
        path = request.path
        config = _config()
        if config is None:
            # No sign-in: only this machine may ask (and not through a proxy, whose clients
            # would all appear to come from loopback).
            if not is_loopback(request.remote_addr) or any(h in request.headers
                                                           for h in PROXY_HEADERS):
                return flask.Response("This dashboard has no sign-in configured and only "
                                      "answers on this computer.", 403, mimetype="text/plain")
            flask.g.va_user = LOCAL_USER
        elif not path.startswith(PUBLIC_PREFIXES) and path != "/logout":
            user = session_user(dict(flask.session))
            if user is None:
                if SESSION_KEY in flask.session:
                    flask.session.clear()  # ended on the server: drop the cookie too
                if path.startswith("/_"):
                    return flask.jsonify(error="sign-in required", login="/login"), 401
                target = request.full_path if request.query_string else path
                return flask.redirect("/login?" + urlencode({"next": target}))
            flask.g.va_user = user
        else:
            return None
        if request.method == "POST" and path.endswith("/_dash-update-component"):
            body = request.get_json(silent=True) or {}
            entry = app.callback_map.get(body.get("output")) if isinstance(body, dict) else None
            role = required_role(entry.get("callback")) if entry else None
            if role and not flask.g.va_user.has_role(role):
                return flask.jsonify(error=f"the {role} role is required"), 403
        return None

    return before_request


def install(app: dash.Dash, config: AuthConfig | None) -> None:
    """Add sign-in (or the loopback-only rule when ``config`` is None) to ``app``."""
    server = app.server
    server.config[CONFIG_KEY] = config
    if config is not None:
        server.secret_key = config.secret_key
        server.config.update(
            SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=config.session_cookie_secure,
            SESSION_COOKIE_NAME="va_session",
            PERMANENT_SESSION_LIFETIME=config.session_lifetime,
            SESSION_REFRESH_EACH_REQUEST=False,  # a sign-in lasts session_hours, not longer
        )
        if config.proxy_hops:
            from werkzeug.middleware.proxy_fix import ProxyFix

            # Exactly proxy_hops proxies are trusted: the client address is the one the
            # outermost trusted proxy saw; anything a client adds to the header is ignored.
            server.wsgi_app = ProxyFix(server.wsgi_app, x_for=config.proxy_hops,
                                       x_proto=config.proxy_hops)
        server.add_url_rule("/login", "va_login", login, methods=["GET", "POST"])
        # GET answers 405 with a sign-out button (Dash's page route would serve it otherwise).
        server.add_url_rule("/logout", "va_logout", logout, methods=["GET", "POST"])
        if config.oidc is not None:
            from authlib.integrations.flask_client import OAuth

            oauth = OAuth(server)
            oauth.register("oidc", client_id=config.oidc.client_id,
                           client_secret=config.oidc.client_secret,
                           server_metadata_url=config.oidc.server_metadata_url,
                           client_kwargs={"scope": config.oidc.scope})
            server.extensions["va_oauth"] = oauth
            server.add_url_rule("/login/oidc", "va_oidc_login", oidc_login)
            server.add_url_rule("/login/oidc/callback", "va_oidc_callback", oidc_callback)
    # First of all before-request hooks: Dash's own set-up hook renders the layout on the first
    # request, which must already know who is asking (or have refused them).
    server.before_request_funcs.setdefault(None, []).insert(0, _gate(app))
