"""The audit log: who signed in, imported, downloaded or changed roles, and when.

Events are rows of the store's append-only ``audit_log`` table (database triggers refuse
UPDATE, DELETE and an INSERT reusing an event id, on SQLite and PostgreSQL). The events form
a hash chain: each row holds ``prev_hash``, the ``row_hash`` of the event before it, and its
own ``row_hash`` = SHA-256 of (``prev_hash``, time, actor, action, detail); the newest hash is
also kept in ``store_meta`` (``audit_head``). Whoever rewrites, removes or inserts an event
past the triggers (dropping them, or editing the database file) breaks the chain at that
event, and :func:`verify_chain` (``python -m data audit verify``) reports the first broken
link. Appends take a lock (the ``audit_head`` row) so concurrent writers chain in order. ``detail`` is a small JSON object of filters,
file names and counts. It must never hold PHI or secrets: keys that name passwords, tokens or
other secrets are refused, and so are values that look like direct identifiers (an email
address, SSN or phone number), so a careless caller fails loudly instead of leaking quietly.

Actions
-------
``sign_in``, ``sign_in_failed``, ``sign_out``, ``import``, ``download``, ``role_change``,
``user_added``, ``user_removed``, ``records_view`` (record-grid browsing: one event per
session and selection, then follow-ups with the rows served; :func:`note_records_served`),
``remove_batch`` (the demo batches' records removed), ``signal_review`` (a quality signal
acknowledged: its key, status and note), ``signal_alert`` (new signals notified: their keys
and the channels), ``view_saved``, ``view_published``, ``view_deleted`` (named views:
:mod:`data.views`), ``report_run`` (a run of ``python -m dashboard.report``: pages, filters,
settings, files written and counts).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data import store

ACTIONS = frozenset({
    "sign_in", "sign_in_failed", "sign_out", "import", "download", "role_change", "user_added",
    "user_removed", "records_view", "remove_batch", "signal_review", "signal_alert",
    "view_saved", "view_published", "view_deleted", "report_run",
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
    _append(connection, _event_row(actor, action, detail))


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
        _append(connection, row)


# ----------------------------------------------------------------------------------------------
# The hash chain


def event_hash(prev_hash: str, occurred_at: dt.datetime, actor: str, action: str,
               detail: str) -> str:
    """SHA-256 (hex) of an event's content and the hash of the event before it.

    Examples
    --------
    >>> at = dt.datetime(2026, 1, 2, 3, 4, 5, 6)
    >>> event_hash("0" * 64, at, "ana", "sign_in", "{}")[:12]
    'b8c6f6ae97eb'
    """
    text = json.dumps([prev_hash, occurred_at.isoformat(timespec="microseconds"), actor, action,
                       detail], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _head_row():
    meta = store.store_meta
    return meta.c.key == store.AUDIT_HEAD_KEY


def _lock_head(connection: Connection) -> None:
    """Serialise appends: a write to the head row first (SQLite's write lock, PostgreSQL's
    row lock), held until the transaction ends."""
    meta = store.store_meta
    result = connection.execute(meta.update().where(_head_row()).values(value=meta.c.value))
    if not result.rowcount:
        connection.execute(meta.insert().values(key=store.AUDIT_HEAD_KEY,
                                                value=store.AUDIT_GENESIS))


def _append(connection: Connection, row: dict) -> None:
    _lock_head(connection)
    table = store.audit_log
    last = connection.execute(sa.select(table.c.row_hash).order_by(table.c.event_id.desc())
                              .limit(1)).first()
    prev = (last.row_hash if last is not None and last.row_hash else store.AUDIT_GENESIS)
    row_hash = event_hash(prev, row["occurred_at"], row["actor"], row["action"], row["detail"])
    connection.execute(table.insert().values(**row, prev_hash=prev, row_hash=row_hash))
    connection.execute(store.store_meta.update().where(_head_row()).values(value=row_hash))


def chain_existing(connection: Connection) -> None:
    """Chain events that have no hashes yet (the schema-5 upgrade), in event order.

    Needs the UPDATE trigger lifted (the migration does that inside its transaction).
    """
    table = store.audit_log
    rows = connection.execute(sa.select(table).order_by(table.c.event_id)).all()
    prev = store.AUDIT_GENESIS
    for row in rows:
        if row.row_hash is None:
            row_hash = event_hash(prev, row.occurred_at, row.actor, row.action, row.detail)
            connection.execute(table.update().where(table.c.event_id == row.event_id)
                               .values(prev_hash=prev, row_hash=row_hash))
            prev = row_hash
        else:
            prev = row.row_hash
    meta = store.store_meta
    if connection.execute(sa.select(meta.c.value).where(_head_row())).first() is None:
        connection.execute(meta.insert().values(key=store.AUDIT_HEAD_KEY, value=prev))
    else:
        connection.execute(meta.update().where(_head_row()).values(value=prev))


@dataclass(frozen=True)
class ChainCheck:
    """The result of :func:`verify_chain`.

    Attributes
    ----------
    events : int
        Events checked.
    intact : bool
        True when every link holds and the newest hash equals the stored head.
    broken_at : int or None
        The event id of the first broken link (``None`` when intact, or when events after
        the last one were removed: then ``after`` names the last one left).
    after : int or None
        The event before the broken link (``None`` for the first event).
    reason : str
        What is wrong there, in words.
    """

    events: int
    intact: bool
    broken_at: int | None = None
    after: int | None = None
    reason: str = ""

    def message(self) -> str:
        """One line for people."""
        if self.intact:
            return f"audit log: {self.events} events, hash chain intact"
        where = (f"event {self.broken_at}" if self.broken_at is not None
                 else f"after event {self.after}")
        return f"audit log: hash chain broken at {where}: {self.reason}"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"events": self.events, "intact": self.intact,
                              "broken_at": self.broken_at, "after": self.after,
                              "reason": self.reason}])


def verify_chain(database: str | None) -> ChainCheck:
    """Walk the audit log in event order and report the first broken link.

    A changed event fails its own hash; a removed or inserted event fails the link of the
    event after it; removed newest events fail the stored head.

    Examples
    --------
    >>> verify_chain("sqlite:///store.db").intact  # doctest: +SKIP
    True
    """
    table = store.audit_log
    statement = sa.select(table.c.event_id, table.c.occurred_at, table.c.actor, table.c.action,
                          table.c.detail, table.c.prev_hash, table.c.row_hash
                          ).order_by(table.c.event_id)
    prev, previous_id, count = store.AUDIT_GENESIS, None, 0
    with store.get_engine(database).connect() as connection:
        head = connection.execute(sa.select(store.store_meta.c.value).where(_head_row())
                                  ).scalar()
        for row in connection.execution_options(yield_per=5000).execute(statement):
            count += 1
            if row.prev_hash != prev:
                return ChainCheck(count, False, row.event_id, previous_id,
                                  "its link to the event before does not match: an event "
                                  "before it was removed, inserted or changed")
            expected = event_hash(row.prev_hash, row.occurred_at, row.actor, row.action,
                                  row.detail)
            if row.row_hash != expected:
                return ChainCheck(count, False, row.event_id, previous_id,
                                  "its content does not match its hash: the event was changed")
            prev, previous_id = row.row_hash, row.event_id
    if head is not None and head != prev:
        return ChainCheck(count, False, None, previous_id,
                          "the newest events are missing (the stored head does not match "
                          "the last event)")
    return ChainCheck(count, True)


# ----------------------------------------------------------------------------------------------
# Record-grid browsing

#: A follow-up ``records_view`` event of a selection is written at most this often.
RECORDS_VIEW_INTERVAL = dt.timedelta(minutes=5)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def note_records_served(database: str | None, session_key: str, actor: str, selection: dict,
                        rows: int, matching: int, identity: str = "") -> int:
    """Count record-grid rows served to a session and audit the browsing; events written.

    One ``records_view`` event is written when a session first asks for a selection (global
    filters, column filters and sort, given in ``selection``), with the rows served and the
    matching rows; while the session keeps scrolling it, a follow-up at most every
    :data:`RECORDS_VIEW_INTERVAL` with the rows served since. When the session turns to a new
    selection, the rows served of its earlier ones that no event has counted yet are
    written too. ``rows`` and ``matching`` are the server's own counts of the block it sends.
    ``identity`` tells selections apart beyond what is logged (e.g. the typed text of column
    filters, which is hashed, never written). The counts are kept per session and selection
    in ``record_views`` (shared by workers).
    """
    _check_detail(selection)
    text = json.dumps(selection, sort_keys=True, default=str)
    view_key = hashlib.sha256(json.dumps([session_key, text, identity]).encode()).hexdigest()
    table = store.record_views
    moment = _now()
    due: list[tuple] = []
    with store.get_engine(database).begin() as connection:
        _count_rows(connection, view_key, session_key, actor, text, int(rows), int(matching),
                    moment)
        row = connection.execute(sa.select(table).where(table.c.view_key == view_key)).one()
        if row.last_logged_at is None:
            due.append(row)
            due += connection.execute(sa.select(table).where(
                table.c.session_key == session_key, table.c.view_key != view_key,
                table.c.rows_served > table.c.rows_logged)).all()
        elif moment - row.last_logged_at >= RECORDS_VIEW_INTERVAL \
                and row.rows_served > row.rows_logged:
            due.append(row)
        written = 0
        for view in due:
            # Claim the follow-up (another worker may be writing the same one).
            claimed = connection.execute(table.update().where(
                table.c.view_key == view.view_key,
                table.c.rows_logged == view.rows_logged,
                (table.c.last_logged_at.is_(None) if view.last_logged_at is None
                 else table.c.last_logged_at == view.last_logged_at))
                .values(last_logged_at=moment, rows_logged=view.rows_served)).rowcount
            if not claimed:
                continue
            detail = {"table": "records", **json.loads(view.detail),
                      "new_selection": view.last_logged_at is None,
                      "rows_served": view.rows_served - view.rows_logged,
                      "rows_served_total": view.rows_served,
                      "matching_rows": view.matching_rows}
            _append(connection, _event_row(view.actor, "records_view", detail))
            written += 1
    return written


def _count_rows(connection: Connection, view_key: str, session_key: str, actor: str,
                text: str, rows: int, matching: int, moment: dt.datetime) -> None:
    table = store.record_views
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).values(
        view_key=view_key, session_key=session_key, actor=str(actor)[:255], detail=text,
        started_at=moment, last_logged_at=None, rows_served=rows, rows_logged=0,
        matching_rows=matching)
    connection.execute(statement.on_conflict_do_update(index_elements=[table.c.view_key], set_={
        "rows_served": table.c.rows_served + rows, "matching_rows": matching}))


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
