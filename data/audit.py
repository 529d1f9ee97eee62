"""The audit log: who signed in, imported, downloaded or changed roles, and when.

Events are rows of the store's append-only ``audit_log`` table (database triggers refuse
UPDATE and DELETE on SQLite and PostgreSQL). ``detail`` is a small JSON object of filters,
file names and counts. It must never hold PHI or secrets: keys that name passwords, tokens or
other secrets are refused, and so are values that look like direct identifiers (an email
address, SSN or phone number), so a careless caller fails loudly instead of leaking quietly.

Actions
-------
``sign_in``, ``sign_in_failed``, ``sign_out``, ``import``, ``download``, ``role_change``,
``user_added``, ``user_removed``, ``remove_batch`` (the demo batches' records removed).
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data import store

ACTIONS = frozenset({
    "sign_in", "sign_in_failed", "sign_out", "import", "download", "role_change", "user_added",
    "user_removed", "remove_batch",
})
COLUMNS = ["event_id", "occurred_at", "actor", "action", "detail"]
MAX_DETAIL_CHARS = 8000

# Key names that could carry a secret: password, passwd, pwd, secret, token, api_key, credential,
# cookie, session id, hash/salt of a password, authorization header.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|pwd|secret|token|api[_-]?key|credential|cookie|session|salt|hash|authori[sz]ation",
    re.IGNORECASE)
# Keys whose values are facts about the file, not secrets ("sha256" is the file's digest prefix).
_ALLOWED_KEYS = frozenset({"sha256", "sha256_prefix"})


class AuditError(ValueError):
    """An audit event was refused (unknown action, secret-looking key, PHI-looking value)."""


def _check_detail(detail: dict, path: str = "detail") -> None:
    for key, value in detail.items():
        name = str(key)
        if name not in _ALLOWED_KEYS and _SECRET_KEY.search(name):
            raise AuditError(f"audit {path}: key {name!r} looks like a password or token; "
                             "secrets are never written to the audit log")
        if isinstance(value, dict):
            _check_detail(value, f"{path}.{name}")
        elif isinstance(value, str) and _looks_like_identifier(value):
            raise AuditError(f"audit {path}: the value of {name!r} looks like a direct identifier "
                             "(email, SSN or phone number); PHI is never written to the audit log")


def _looks_like_identifier(text: str) -> bool:
    from data import phi

    kinds = phi.identifier_values(pd.Series([text], dtype="string"))
    return bool(kinds.notna().any())


def _event_row(actor: str, action: str, detail: dict | None) -> dict:
    if action not in ACTIONS:
        raise AuditError(f"unknown audit action {action!r}; use one of {', '.join(sorted(ACTIONS))}")
    if not actor or not str(actor).strip():
        raise AuditError("an audit event needs an actor (a user name, or cli:<OS user>)")
    detail = dict(detail or {})
    _check_detail(detail)
    text = json.dumps(detail, sort_keys=True, default=str)
    if len(text) > MAX_DETAIL_CHARS:
        raise AuditError(f"audit detail is {len(text)} characters; at most {MAX_DETAIL_CHARS}")
    return {"occurred_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "actor": str(actor)[:255], "action": action, "detail": text}


def write_event(connection: Connection, actor: str, action: str, detail: dict | None = None) -> None:
    """Append one event using an open connection (inside the caller's transaction).

    The importer uses this so the audit row commits, or rolls back, with the batch itself.

    Examples
    --------
    >>> with store.get_engine(url).begin() as connection:  # doctest: +SKIP
    ...     write_event(connection, "cli:alice", "import", {"file": "export.csv", "accepted": 3})
    """
    connection.execute(store.audit_log.insert().values(**_event_row(actor, action, detail)))


def log_event(database: str | None, actor: str, action: str, detail: dict | None = None) -> None:
    """Append one event to the audit log in its own transaction.

    Parameters
    ----------
    database : str or None
        Store URL or SQLite path (``None``: ``DATABASE_URL`` or the default store).
    actor : str
        Who: the signed-in user's name, or ``cli:<OS user>`` for the command line.
    action : str
        One of :data:`ACTIONS`.
    detail : dict, optional
        Filters, file names and counts (JSON-serialisable). No PHI, no passwords.

    Raises
    ------
    AuditError
        Unknown action, empty actor, a key named like a secret, or an identifier-looking value.

    Examples
    --------
    >>> log_event("sqlite:///store.db", "alice", "download",
    ...           {"table": "overview", "filters": {"country": ["US"]}, "rows": 12})  # doctest: +SKIP
    """
    row = _event_row(actor, action, detail)  # validate before touching the database
    with store.get_engine(database).begin() as connection:
        connection.execute(store.audit_log.insert().values(**row))


def read_events(database: str | None, limit: int = 200) -> pd.DataFrame:
    """The latest ``limit`` events, newest first.

    Returns
    -------
    pandas.DataFrame
        Columns ``event_id, occurred_at, actor, action, detail`` (``detail`` as a dict).

    Examples
    --------
    >>> read_events("sqlite:///store.db", limit=5).action.tolist()  # doctest: +SKIP
    ['download', 'sign_in']
    """
    table = store.audit_log
    statement = (sa.select(*(table.c[name] for name in COLUMNS))
                 .order_by(table.c.event_id.desc()).limit(max(0, int(limit))))
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(statement).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=COLUMNS)
    frame["detail"] = [json.loads(text) for text in frame["detail"]]
    return frame
