"""Manage sign-in: ``python -m dashboard.auth COMMAND``.

::

    python -m dashboard.auth init instance/auth              # auth.toml, secret_key, users.json
    export VA_AUTH_CONFIG=instance/auth/auth.toml
    python -m dashboard.auth add-user ana --role analyst --facility F01 --facility F02
    printf '%s\\n' "$PW" | python -m dashboard.auth add-user bob --role viewer --password-stdin
    python -m dashboard.auth set-role ana admin
    python -m dashboard.auth set-facilities ana --all        # or: set-facilities ana F01 F03
    python -m dashboard.auth set-password ana
    python -m dashboard.auth remove-user bob
    python -m dashboard.auth list-users [--json]

``--config PATH`` (default ``VA_AUTH_CONFIG``) names the configuration; ``--database``
(default ``DATABASE_URL``) the store whose audit log records the change (actor
``cli:<OS user>``). Passwords are read with a hidden prompt (twice) or, with
``--password-stdin``, as one line of standard input; they are never echoed, logged or stored
as text. Exit status: 0 done; 1 refused (unknown or existing user, invalid value, audit log
not written); 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from pathlib import Path

from dashboard.auth import ROLES
from dashboard.auth import users as users_file
from dashboard.auth.config import AuthConfigError, config_path_from_env, load_config

CONFIG_TEMPLATE = """\
# Sign-in configuration of the VA outcomes dashboard (see docs/security.md).
# Paths are relative to this file. Keep every file here readable by the app's user only.
users_file = "users.json"
secret_key_file = "secret_key"
# Session cookies only over HTTPS. Set false only for a test server on plain HTTP.
session_cookie_secure = true
session_hours = 8
# A session unused for this many minutes ends (sign in again).
idle_minutes = 30
# Reverse proxies in front of the app (nginx on this machine: 1). Their X-Forwarded-For tells
# the client's address for the sign-in back-off; 0 = no proxy (the header is ignored).
proxy_hops = 0

# Single sign-on (optional): uncomment and fill in.
# [oidc]
# name = "Hospital SSO"
# server_metadata_url = "https://idp.example.org/.well-known/openid-configuration"
# client_id = "va-dashboard"
# client_secret_file = "oidc_client_secret"   # or env VA_OIDC_CLIENT_SECRET
# scope = "openid profile email"
# groups_claim = "groups"
# username_claim = "preferred_username"
# [oidc.roles]
# "va-admins" = "admin"
# "va-analysts" = "analyst"
# "va-viewers" = "viewer"
# [oidc.facilities]
# "site-north" = ["F01", "F02"]
"""


class CommandError(Exception):
    """A refused command (exit status 1)."""


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def cmd_init(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    targets = [folder / "auth.toml", folder / "secret_key", folder / "users.json"]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise CommandError(f"refusing to overwrite {', '.join(existing)}")
    _write_private(targets[1], secrets.token_urlsafe(48) + "\n")
    users_file.write_new(targets[2])
    _write_private(targets[0], CONFIG_TEMPLATE)
    print(f"wrote {targets[0]}, {targets[1]} and {targets[2]} (mode 0600)")
    print(f"next: export VA_AUTH_CONFIG={targets[0]}; "
          "python -m dashboard.auth add-user NAME --role admin")
    return 0


def _users_path(args: argparse.Namespace) -> Path:
    path = args.config or config_path_from_env()
    if not path:
        raise AuthConfigError("no auth configuration: pass --config PATH or set VA_AUTH_CONFIG")
    config = load_config(path)
    if config.users_file is None:
        raise AuthConfigError(f"auth config {config.path}: users_file is not set")
    return config.users_file


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise CommandError("the passwords differ")
    return users_file.validate_password(password)


def _actor() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (e.g. a container): still an actor
        name = str(os.getuid())
    return f"cli:{name}"


def _audit(args: argparse.Namespace, action: str, detail: dict) -> None:
    from data.audit import log_event

    try:
        log_event(args.database, _actor(), action, detail)
    except Exception as error:  # noqa: BLE001 - reported, and the exit status says so
        raise CommandError(f"the change was made but the audit log could not be written: "
                           f"{error}") from None


def _facilities(values: list[str] | None) -> list[str] | None:
    return list(values) if values else None


def cmd_add_user(args: argparse.Namespace) -> int:
    path = _users_path(args)
    users_file.validate_name(args.name)
    users_file.validate_role(args.role)
    facilities = users_file.validate_facilities(_facilities(args.facility))
    password = _read_password(args.password_stdin)
    account = users_file.add_user(path, args.name, args.role, password, facilities)
    _audit(args, "user_added", {"user": account.name, "role": account.role,
                                "facilities": list(account.facilities or []) or None})
    print(f"added {account.name} ({account.role})")
    return 0


def cmd_set_role(args: argparse.Namespace) -> int:
    before, after = users_file.update_user(_users_path(args), args.name, role=args.role)
    _audit(args, "role_change", {"user": args.name, "from": before.role, "to": after.role})
    print(f"{args.name}: {before.role} -> {after.role}")
    return 0


def cmd_set_facilities(args: argparse.Namespace) -> int:
    if args.all == bool(args.facilities):
        raise CommandError("give facility ids or --all (not both)")
    facilities = None if args.all else args.facilities
    before, after = users_file.update_user(_users_path(args), args.name, facilities=facilities)
    _audit(args, "role_change", {
        "user": args.name,
        "facilities_from": list(before.facilities) if before.facilities is not None else "all",
        "facilities_to": list(after.facilities) if after.facilities is not None else "all"})
    shown = ", ".join(after.facilities) if after.facilities is not None else "all facilities"
    print(f"{args.name}: {shown}")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    path = _users_path(args)
    password = _read_password(args.password_stdin)
    users_file.update_user(path, args.name, password=password)
    print(f"{args.name}: password changed")
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    removed = users_file.remove_user(_users_path(args), args.name)
    _audit(args, "user_removed", {"user": removed.name, "role": removed.role})
    print(f"removed {removed.name}")
    return 0


def cmd_list_users(args: argparse.Namespace) -> int:
    accounts = users_file.read_accounts(_users_path(args))
    rows = [{"name": a.name, "role": a.role,
             "facilities": list(a.facilities) if a.facilities is not None else None}
            for a in sorted(accounts.values(), key=lambda a: a.name)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no users")
    else:
        for row in rows:
            facilities = ", ".join(row["facilities"]) if row["facilities"] else "all facilities"
            print(f"{row['name']:<24} {row['role']:<8} {facilities}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboard.auth",
                                     description="Manage sign-in for the VA outcomes dashboard")
    parser.add_argument("--config", help="auth configuration (default VA_AUTH_CONFIG)")
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL"),
                        help="store whose audit log records changes (default DATABASE_URL)")
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="write a configuration, secret key and users file")
    init.add_argument("dir")
    init.set_defaults(run=cmd_init)

    add = commands.add_parser("add-user", help="add a local account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--facility", action="append", metavar="ID",
                     help="restrict to this facility (repeat for several; default all)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password as one line of standard input")
    add.set_defaults(run=cmd_add_user)

    role = commands.add_parser("set-role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(run=cmd_set_role)

    facilities = commands.add_parser("set-facilities", help="change a user's facilities")
    facilities.add_argument("name")
    facilities.add_argument("facilities", nargs="*", metavar="ID")
    facilities.add_argument("--all", action="store_true", help="every facility")
    facilities.set_defaults(run=cmd_set_facilities)

    password = commands.add_parser("set-password", help="change a user's password")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(run=cmd_set_password)

    remove = commands.add_parser("remove-user", help="remove a local account")
    remove.add_argument("name")
    remove.set_defaults(run=cmd_remove_user)

    listing = commands.add_parser("list-users", help="list accounts (never their hashes)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_list_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except AuthConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (CommandError, users_file.UsersFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("cancelled", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
