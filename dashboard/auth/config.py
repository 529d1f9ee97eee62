"""The auth configuration: a TOML file named by ``--auth-config PATH`` or ``VA_AUTH_CONFIG``.

Keys (paths are relative to the configuration file)::

    users_file = "users.json"          # local accounts (python -m dashboard.auth add-user ...)
    secret_key_file = "secret_key"     # signs session cookies; or env VA_SECRET_KEY
    session_cookie_secure = true       # cookie only over HTTPS (default true)
    session_hours = 8                  # a sign-in lasts this long (default 8)
    idle_minutes = 30                  # ...unless unused this long (default 30)
    proxy_hops = 0                     # reverse proxies in front whose X-Forwarded-For is trusted

    [oidc]                             # optional single sign-on
    name = "Hospital SSO"              # the button label
    server_metadata_url = "https://idp.example.org/.well-known/openid-configuration"
    client_id = "va-dashboard"
    client_secret_file = "oidc_secret" # or env VA_OIDC_CLIENT_SECRET
    scope = "openid profile email"
    groups_claim = "groups"            # claim holding the user's groups (default "groups")
    username_claim = "preferred_username"  # default "sub"
    [oidc.roles]                       # group -> role; the highest role found wins
    "va-admins" = "admin"
    "va-analysts" = "analyst"
    "va-viewers" = "viewer"
    [oidc.facilities]                  # group -> facility ids; no matching group = all facilities
    "site-north" = ["F01", "F02"]

At least one of ``users_file`` and ``[oidc]`` is required. Secrets come only from the
environment or from files readable by their owner alone (mode 0600): a secret, users or
configuration file that group or others can read is refused at start.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.auth import ROLES
from dashboard.auth.users import UsersFileError, check_private, read_accounts, validate_facilities

ENV_CONFIG = "VA_AUTH_CONFIG"
ENV_SECRET_KEY = "VA_SECRET_KEY"
ENV_OIDC_SECRET = "VA_OIDC_CLIENT_SECRET"
MIN_SECRET_KEY_BYTES = 32
KNOWN_KEYS = {"users_file", "secret_key_file", "session_cookie_secure", "session_hours",
              "idle_minutes", "proxy_hops", "oidc"}
DEFAULT_IDLE_MINUTES = 30
OIDC_KEYS = {"name", "server_metadata_url", "client_id", "client_secret_file", "scope",
             "groups_claim", "username_claim", "roles", "facilities"}


class AuthConfigError(ValueError):
    """The auth configuration is invalid; the message names the file, key and rule."""


@dataclass(frozen=True)
class OIDCConfig:
    """OpenID Connect settings (the client secret is never shown in a repr)."""

    server_metadata_url: str
    client_id: str
    client_secret: str = field(repr=False)
    name: str = "Single sign-on"
    scope: str = "openid profile email"
    groups_claim: str = "groups"
    username_claim: str = "sub"
    roles: dict[str, str] = field(default_factory=dict)
    facilities: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def issuer_origin(self) -> str:
        """Scheme and host of the provider (allowed as a form target by the CSP)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.server_metadata_url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class AuthConfig:
    """A validated auth configuration (secrets are never shown in a repr)."""

    path: Path
    secret_key: bytes = field(repr=False)
    users_file: Path | None = None
    session_cookie_secure: bool = True
    session_hours: float = 8.0
    oidc: OIDCConfig | None = None
    idle_minutes: float = DEFAULT_IDLE_MINUTES
    proxy_hops: int = 0

    @property
    def session_lifetime(self) -> dt.timedelta:
        return dt.timedelta(hours=self.session_hours)

    @property
    def idle_timeout(self) -> dt.timedelta:
        """A session unused this long has ended (server-side, on every worker)."""
        return dt.timedelta(minutes=self.idle_minutes)


def _fail(path: Path, key: str, rule: str) -> AuthConfigError:
    return AuthConfigError(f"auth config {path}: {key}: {rule}")


def _resolve(base: Path, value: Any, path: Path, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, key, "expected a file path (relative to the config file)")
    target = Path(value).expanduser()
    return target if target.is_absolute() else base / target


def _read_secret(base: Path, path: Path, key: str, value: Any, env: str, what: str) -> str:
    from_env = os.environ.get(env, "")
    if from_env.strip():
        return from_env.strip()
    if value is None:
        raise _fail(path, key, f"missing: set {key} or the environment variable {env}")
    secret_path = _resolve(base, value, path, key)
    try:
        check_private(secret_path, what)
    except UsersFileError as error:
        raise _fail(path, key, str(error)) from None
    text = secret_path.read_text(encoding="utf-8").strip()
    if not text:
        raise _fail(path, key, f"{secret_path} is empty")
    return text


def _oidc(base: Path, path: Path, table: Any) -> OIDCConfig:
    if not isinstance(table, dict):
        raise _fail(path, "oidc", "expected a table [oidc]")
    unknown = set(table) - OIDC_KEYS
    if unknown:
        raise _fail(path, "oidc", f"unknown keys {sorted(unknown)}; known: {sorted(OIDC_KEYS)}")
    for key in ("server_metadata_url", "client_id"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise _fail(path, f"oidc.{key}", "required (a non-empty string)")
    url = table["server_metadata_url"]
    if not url.startswith("https://") and not url.startswith(("http://127.", "http://localhost")):
        raise _fail(path, "oidc.server_metadata_url", "must be an https:// URL")
    roles = table.get("roles", {})
    if not isinstance(roles, dict) or not roles:
        raise _fail(path, "oidc.roles", "required: a table mapping group names to roles")
    for group, role in roles.items():
        if role not in ROLES:
            raise _fail(path, f"oidc.roles.{group}", f"{role!r} is not one of {', '.join(ROLES)}")
    facilities = table.get("facilities", {})
    if not isinstance(facilities, dict):
        raise _fail(path, "oidc.facilities", "expected a table mapping groups to facility lists")
    mapped = {}
    for group, values in facilities.items():
        if not isinstance(values, list):
            raise _fail(path, f"oidc.facilities.{group}", "expected a list of facility ids")
        try:
            mapped[group] = validate_facilities(values)
        except UsersFileError as error:
            raise _fail(path, f"oidc.facilities.{group}", str(error)) from None
    secret = _read_secret(base, path, "oidc.client_secret_file", table.get("client_secret_file"),
                          ENV_OIDC_SECRET, "OIDC client secret file")
    text = {key: table[key] for key in ("name", "scope", "groups_claim", "username_claim")
            if key in table}
    for key, value in text.items():
        if not isinstance(value, str) or not value.strip():
            raise _fail(path, f"oidc.{key}", "expected a non-empty string")
    return OIDCConfig(server_metadata_url=url, client_id=table["client_id"], client_secret=secret,
                      roles=dict(roles), facilities=mapped, **text)


def load_config(path: str | os.PathLike[str]) -> AuthConfig:
    """Read and validate an auth configuration file.

    Raises
    ------
    AuthConfigError
        With the file, key and rule, e.g. a secret file readable by others.

    Examples
    --------
    >>> config = load_config("instance/auth/auth.toml")  # doctest: +SKIP
    >>> config.session_hours  # doctest: +SKIP
    8.0
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise AuthConfigError(f"auth config {path} does not exist")
    try:
        check_private(path, "auth config")
    except UsersFileError as error:
        raise AuthConfigError(str(error)) from None
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise AuthConfigError(f"auth config {path}: not valid TOML: {error}") from None
    unknown = set(table) - KNOWN_KEYS
    if unknown:
        raise _fail(path, ", ".join(sorted(unknown)), f"unknown keys; known: {sorted(KNOWN_KEYS)}")
    base = path.parent
    users_file = None
    if "users_file" in table:
        users_file = _resolve(base, table["users_file"], path, "users_file")
        try:
            read_accounts(users_file)
        except (UsersFileError, OSError) as error:
            raise _fail(path, "users_file", str(error)) from None
    oidc = _oidc(base, path, table["oidc"]) if "oidc" in table else None
    if users_file is None and oidc is None:
        raise AuthConfigError(f"auth config {path}: set users_file, an [oidc] table, or both")
    secure = table.get("session_cookie_secure", True)
    if not isinstance(secure, bool):
        raise _fail(path, "session_cookie_secure", "expected true or false")
    hours = table.get("session_hours", 8)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 30:
        raise _fail(path, "session_hours", "expected a number of hours between 0 and 720")
    idle = table.get("idle_minutes", DEFAULT_IDLE_MINUTES)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 1 <= idle <= 24 * 60:
        raise _fail(path, "idle_minutes", "expected a number of minutes between 1 and 1440")
    hops = table.get("proxy_hops", 0)
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
        raise _fail(path, "proxy_hops", "expected a whole number of proxies from 0 to 5")
    secret = _read_secret(base, path, "secret_key_file", table.get("secret_key_file"),
                          ENV_SECRET_KEY, "secret key file")
    if len(secret.encode()) < MIN_SECRET_KEY_BYTES:
        raise _fail(path, "secret_key_file",
                    f"the secret key must have at least {MIN_SECRET_KEY_BYTES} characters")
    return AuthConfig(path=path, secret_key=secret.encode(), users_file=users_file,
                      session_cookie_secure=secure, session_hours=float(hours), oidc=oidc,
                      idle_minutes=float(idle), proxy_hops=hops)


def config_path_from_env() -> str | None:
    """``VA_AUTH_CONFIG`` when set (and not blank)."""
    value = os.environ.get(ENV_CONFIG, "").strip()
    return value or None
