"""The local users file: accounts with salted password hashes, roles and facilities.

The file is JSON, readable by its owner only (mode 0600)::

    {"version": 1,
     "users": {"ana": {"role": "analyst", "facilities": ["F01", "F02"],
                       "password_hash": "scrypt:32768:8:1$...$..."}}}

``facilities`` is ``null`` for a user who sees every facility. Passwords are hashed with
werkzeug's scrypt (a random salt per hash); the plain text is never written anywhere.

Writes take an exclusive lock (``fcntl.flock`` on ``<file>.lock``), read the current file,
change it and replace it atomically (temporary file + ``os.replace``), so two processes
writing at once never lose each other's change and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.auth import ROLES, User

FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FACILITY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
MIN_PASSWORD_LENGTH = 10
HASH_METHOD = "scrypt"
# Checked when the user name is unknown, so a wrong name costs as long as a wrong password
# (otherwise response times would reveal which accounts exist).
_DUMMY_HASH = generate_password_hash("not-a-password-of-anyone", method=HASH_METHOD)


class UsersFileError(ValueError):
    """The users file, or a change to it, is invalid (the message says which and why)."""


@dataclass(frozen=True)
class Account:
    """One local account (the hash stays inside this module's callers; never shown)."""

    name: str
    role: str
    facilities: tuple[str, ...] | None
    password_hash: str

    def user(self) -> User:
        return User(self.name, self.role, self.facilities, "users-file")


def check_private(path: Path, what: str) -> None:
    """Refuse a file that group or others can read or write (secrets and accounts).

    >>> import tempfile, os
    >>> handle, name = tempfile.mkstemp(); os.close(handle); os.chmod(name, 0o600)
    >>> check_private(Path(name), "users file")
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise UsersFileError(f"{what} {path} does not exist") from None
    if mode & 0o077:
        raise UsersFileError(
            f"{what} {path} is accessible by group or others (mode {mode:04o}); "
            f"run: chmod 600 {path}")


def validate_name(name: str) -> str:
    """A login name: 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UsersFileError(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_' or '-' "
            "(no e-mail addresses or real names: the name appears in the audit log)")
    return name


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise UsersFileError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    return role


def validate_facilities(facilities: Sequence[str] | None) -> tuple[str, ...] | None:
    """``None`` (every facility) or a non-empty, sorted tuple of facility ids."""
    if facilities is None:
        return None
    values = sorted({str(f).strip() for f in facilities})
    if not values:
        raise UsersFileError("an empty facility list would show nothing; omit it for all facilities")
    for value in values:
        if not FACILITY_PATTERN.match(value):
            raise UsersFileError(f"invalid facility id {value!r}")
    return tuple(values)


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsersFileError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` (werkzeug format, ``scrypt:...$salt$hash``).

    >>> hash_password("correct horse battery").startswith("scrypt:")
    True
    """
    return generate_password_hash(validate_password(password), method=HASH_METHOD)


def _parse(path: Path, text: str) -> dict[str, Account]:
    try:
        document = json.loads(text) if text.strip() else {"version": FORMAT_VERSION, "users": {}}
    except json.JSONDecodeError as error:
        raise UsersFileError(f"{path}: not valid JSON (line {error.lineno}): {error.msg}") from None
    if not isinstance(document, dict) or not isinstance(document.get("users"), dict):
        raise UsersFileError(f"{path}: expected an object with a \"users\" object")
    if document.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise UsersFileError(f"{path}: unsupported version {document.get('version')!r}")
    accounts = {}
    for name, entry in document["users"].items():
        where = f"{path}: user {name!r}"
        if not isinstance(entry, dict):
            raise UsersFileError(f"{where}: expected an object")
        try:
            validate_name(name)
            role = validate_role(entry.get("role"))
            facilities = validate_facilities(entry.get("facilities"))
        except UsersFileError as error:
            raise UsersFileError(f"{where}: {error}") from None
        password_hash = entry.get("password_hash")
        if not isinstance(password_hash, str) or "$" not in password_hash:
            raise UsersFileError(f"{where}: password_hash is missing or not a werkzeug hash")
        accounts[name] = Account(name, role, facilities, password_hash)
    return accounts


def _serialise(accounts: dict[str, Account]) -> str:
    users = {name: {"role": a.role,
                    "facilities": list(a.facilities) if a.facilities is not None else None,
                    "password_hash": a.password_hash}
             for name, a in sorted(accounts.items())}
    return json.dumps({"version": FORMAT_VERSION, "users": users}, indent=2) + "\n"


def read_accounts(path: str | os.PathLike[str], *, check_mode: bool = True) -> dict[str, Account]:
    """Every account in the users file, by name.

    Examples
    --------
    >>> accounts = read_accounts("users.json")  # doctest: +SKIP
    >>> sorted(accounts)  # doctest: +SKIP
    ['ana', 'vic']
    """
    path = Path(path)
    if check_mode:
        check_private(path, "users file")
    return _parse(path, path.read_text(encoding="utf-8"))


def write_new(path: str | os.PathLike[str]) -> None:
    """Create an empty users file (mode 0600); refuse to overwrite an existing one."""
    path = Path(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(_serialise({}))


@contextlib.contextmanager
def edit(path: str | os.PathLike[str]) -> Iterator[dict[str, Account]]:
    """Lock the users file, yield its accounts for changing, then write them back atomically.

    Nothing is written when the block raises.

    Examples
    --------
    >>> with edit("users.json") as accounts:  # doctest: +SKIP
    ...     accounts.pop("old-user")
    """
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        accounts = read_accounts(path)
        yield accounts
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:  # mkstemp: mode 0600
                stream.write(_serialise(accounts))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def add_user(path: str | os.PathLike[str], name: str, role: str, password: str,
             facilities: Sequence[str] | None = None) -> Account:
    """Add an account; refuse an existing name."""
    validate_name(name)
    account = Account(name, validate_role(role), validate_facilities(facilities),
                      hash_password(password))
    with edit(path) as accounts:
        if name in accounts:
            raise UsersFileError(f"user {name!r} already exists")
        accounts[name] = account
    return account


def update_user(path: str | os.PathLike[str], name: str, *, role: str | None = None,
                facilities: Sequence[str] | None | object = ...,
                password: str | None = None) -> tuple[Account, Account]:
    """Change an account's role, facilities (``None`` = all) or password; (before, after)."""
    with edit(path) as accounts:
        if name not in accounts:
            raise UsersFileError(f"no user {name!r}")
        before = accounts[name]
        after = Account(
            name,
            validate_role(role) if role is not None else before.role,
            before.facilities if facilities is ... else validate_facilities(facilities),  # type: ignore[arg-type]
            hash_password(password) if password is not None else before.password_hash,
        )
        accounts[name] = after
    return before, after


def remove_user(path: str | os.PathLike[str], name: str) -> Account:
    with edit(path) as accounts:
        if name not in accounts:
            raise UsersFileError(f"no user {name!r}")
        return accounts.pop(name)


def authenticate(accounts: dict[str, Account], name: str, password: str) -> User | None:
    """The user when ``password`` is right for ``name``, else ``None`` (same cost either way).

    >>> account = Account("ana", "analyst", None, hash_password("correct horse battery"))
    >>> authenticate({"ana": account}, "ana", "correct horse battery").role
    'analyst'
    >>> authenticate({"ana": account}, "bob", "correct horse battery") is None
    True
    """
    account = accounts.get(name) if isinstance(name, str) else None
    stored = account.password_hash if account is not None else _DUMMY_HASH
    valid = check_password_hash(stored, password or "")
    # compare_digest keeps the combination of the two checks free of an early exit.
    if hmac.compare_digest(b"1" if valid else b"0", b"1") and account is not None:
        return account.user()
    return None
