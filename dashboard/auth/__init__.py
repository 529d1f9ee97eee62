"""Who is signed in, and what they may see: roles, facility scope and callback checks.

The contract other parts of the dashboard code against:

* :data:`ROLES` — ``viewer`` < ``analyst`` < ``admin``; each role includes the ones before.
* :class:`User` — the signed-in user (name, role, facilities, source).
* :func:`auth_enabled` — whether the running app requires sign-in.
* :func:`current_user` — the user of the current request or background job; denies by default.
* :func:`requires_role` — decorator for Dash callbacks: HTTP 403 unless the user has the role.
* :func:`scope_key` — a stable string of (role, facilities) for cache keys.

Sign-in itself (the users file, OIDC, the ``/login`` routes) lives in the submodules and is
installed by :func:`dashboard.auth.web.install`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import flask
from werkzeug.exceptions import Forbidden

ROLES: tuple[str, ...] = ("viewer", "analyst", "admin")
#: Flask config key holding the loaded :class:`dashboard.auth.config.AuthConfig` (or None).
CONFIG_KEY = "VA_AUTH"
#: Flask session key holding the signed-in user (a small dict, never a password or token).
SESSION_KEY = "va_user"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class User:
    """A signed-in user.

    Parameters
    ----------
    name : str
        Login name, or the OIDC subject/e-mail; never PHI.
    role : str
        One of :data:`ROLES`.
    facilities : tuple of str, optional
        The facility ids the user may see; ``None`` means every facility.
    source : str
        ``"local"`` (sign-in disabled, loopback), ``"users-file"`` or ``"oidc"``.

    Examples
    --------
    >>> User("ana", "analyst").has_role("viewer")
    True
    >>> User("vic", "viewer", ("F01",)).has_role("analyst")
    False
    """

    name: str
    role: str
    facilities: tuple[str, ...] | None = None
    source: str = "local"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}: expected one of {', '.join(ROLES)}")
        if self.facilities is not None:
            # Sorted and de-duplicated, so equal scopes compare (and cache) equal.
            object.__setattr__(self, "facilities", tuple(sorted({str(f) for f in self.facilities})))

    def has_role(self, role: str) -> bool:
        """True when this user's role is ``role`` or a higher one.

        >>> User("a", "admin").has_role("analyst")
        True
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        return ROLES.index(self.role) >= ROLES.index(role)

    def to_session(self) -> dict[str, Any]:
        """The small dict stored in the signed session cookie."""
        return {"name": self.name, "role": self.role, "source": self.source,
                "facilities": list(self.facilities) if self.facilities is not None else None}

    @classmethod
    def from_session(cls, data: Any) -> User | None:
        """The user a session dict describes, or ``None`` when it is missing or malformed."""
        if not isinstance(data, dict):
            return None
        try:
            facilities = data.get("facilities")
            return cls(str(data["name"]), str(data["role"]),
                       tuple(facilities) if facilities is not None else None,
                       str(data.get("source", "users-file")))
        except (KeyError, TypeError, ValueError):
            return None


#: The user of an app without sign-in (only ever reachable from loopback).
LOCAL_USER = User("local", "admin", None, "local")


def auth_enabled() -> bool:
    """True when the current Flask app has an auth configuration (sign-in required).

    >>> app = flask.Flask("demo")
    >>> with app.app_context():
    ...     auth_enabled()
    False
    """
    if not flask.has_app_context():
        return False
    return flask.current_app.config.get(CONFIG_KEY) is not None


def _user_from_cookie() -> User | None:
    """In a background job (no request): the user from the request's session cookie."""
    try:
        import dash

        cookies = dash.ctx.cookies
    except Exception:  # noqa: BLE001 - no callback context either: nobody is signed in
        return None
    app = flask.current_app
    value = (cookies or {}).get(app.config.get("SESSION_COOKIE_NAME", "session"))
    if not value:
        return None
    serializer = app.session_interface.get_signing_serializer(app)
    if serializer is None:
        return None
    try:
        data = serializer.loads(value, max_age=int(app.permanent_session_lifetime.total_seconds()))
    except Exception:  # noqa: BLE001 - a forged, expired or damaged cookie signs nobody in
        return None
    return _session_user(data)


def _session_user(data: Any) -> User | None:
    """The user of a session after the server-side checks (:func:`dashboard.auth.web.session_user`)."""
    from dashboard.auth.web import session_user

    return session_user(data)


def current_user() -> User:
    """The user of the current request or Dash background job.

    Without an auth configuration this is the local admin (``User("local", "admin")``): the
    app then only answers loopback clients. With one, it is the signed-in user; when none can
    be established, :class:`werkzeug.exceptions.Forbidden` is raised (deny by default).

    Examples
    --------
    >>> app = flask.Flask("demo")
    >>> with app.test_request_context("/"):
    ...     current_user().role
    'admin'
    """
    if not auth_enabled():
        return LOCAL_USER
    if flask.has_request_context():
        user = getattr(flask.g, "va_user", None)
        if user is None:
            user = _session_user(dict(flask.session))
            if user is not None:
                flask.g.va_user = user
        if user is not None:
            return user
    user = _user_from_cookie()
    if user is None:
        raise Forbidden("sign-in required")
    return user


def requires_role(role: str) -> Callable[[F], F]:
    """Decorate a Dash callback so it runs only for users with ``role`` (or higher).

    The check runs on the server before the callback body; a user without the role gets
    HTTP 403. Apply it as the outermost decorator (above ``safe_callback``, which would
    otherwise turn the refusal into an in-page message). The required role is also recorded
    on the function (``va_required_role``), and the app checks it before dispatching the
    request to Dash.

    Examples
    --------
    >>> @requires_role("admin")
    ... def change_role(n_clicks):
    ...     return "done"
    >>> change_role.va_required_role
    'admin'
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if not current_user().has_role(role):
                raise Forbidden(f"the {role} role is required")
            return function(*args, **kwargs)

        wrapper.va_required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def scope_key() -> str:
    """A stable string of the current user's (role, facilities), for cache keys.

    Two users with the same role and facilities share cached results; any difference in
    either gives a different key.

    Examples
    --------
    >>> app = flask.Flask("demo")
    >>> with app.test_request_context("/"):
    ...     scope_key()
    '["admin", null]'
    """
    user = current_user()
    facilities = list(user.facilities) if user.facilities is not None else None
    return json.dumps([user.role, facilities])


__all__ = ["ROLES", "User", "LOCAL_USER", "auth_enabled", "current_user", "requires_role",
           "scope_key"]
