"""Acknowledgements of quality signals, and the signals already seen (for alerts).

A signal (``analysis.signals``) is identified by its key (chart, outcome, unit type, unit,
direction). An analyst or administrator reviews it with a status and a short note; every review
is a new row of ``signal_reviews`` (the history is kept, never overwritten) and an audit event
(``signal_review``) written in the same transaction, so the two commit or fail together. The
note is refused when it looks like a direct identifier (the audit log's PHI check) and is at
most :data:`MAX_NOTE_CHARS` characters.

``signal_alerts`` remembers the signals seen so far: :func:`note_seen` returns the keys not seen
before (the signals an import created), whichever process made the import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa

from data import audit, store

#: Review statuses, in the order a signal usually goes through them.
STATUSES: tuple[str, ...] = ("open", "under review", "explained", "closed")
MAX_NOTE_CHARS = 500
REVIEW_COLUMNS = ["review_id", "signal_key", "status", "note", "actor", "reviewed_at"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record_review(database: str | None, signal_key: str, status: str, note: str,
                  actor: str) -> dict:
    """Store one review of a signal and audit it (one transaction).

    Parameters
    ----------
    database : str or None
        Store URL or SQLite path.
    signal_key : str
        The signal's key (:func:`analysis.signals.signal_key`).
    status : str
        One of :data:`STATUSES`.
    note : str
        A short note (at most :data:`MAX_NOTE_CHARS` characters; no identifiers).
    actor : str
        The signed-in user's name.

    Returns
    -------
    dict
        The stored row.

    Raises
    ------
    ValueError
        Unknown status, empty key, a note too long or that looks like an identifier.

    Examples
    --------
    >>> record_review("sqlite:///store.db", "funnel|cement_leakage|facility_id|FAC-009|high",
    ...               "under review", "case notes requested", "ana")  # doctest: +SKIP
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    key = str(signal_key or "").strip()
    if not key or len(key) > 255:
        raise ValueError("a review needs the signal's key (at most 255 characters)")
    note = str(note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"the note has {len(note)} characters; at most {MAX_NOTE_CHARS}")
    row = {"signal_key": key, "status": status, "note": note, "actor": str(actor)[:255],
           "reviewed_at": _now()}
    with store.get_engine(database).begin() as connection:
        # The audit check (PHI-looking values refused) runs before anything is written.
        audit.write_event(connection, actor, "signal_review",
                          {"signal": key, "status": status, "note": note})
        result = connection.execute(store.signal_reviews.insert().values(**row))
        row["review_id"] = int(result.inserted_primary_key[0])
    return row


def review_history(database: str | None, keys: Iterable[str] | None = None) -> pd.DataFrame:
    """Every review (of ``keys``, or all), oldest first: columns :data:`REVIEW_COLUMNS`."""
    table = store.signal_reviews
    statement = sa.select(*(table.c[c] for c in REVIEW_COLUMNS)).order_by(table.c.review_id)
    if keys is not None:
        statement = statement.where(table.c.signal_key.in_(list(keys)))
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(statement).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=REVIEW_COLUMNS)


def current_reviews(database: str | None) -> pd.DataFrame:
    """The newest review of each signal key (indexed by key)."""
    history = review_history(database)
    return history.groupby("signal_key").tail(1).set_index("signal_key")


def note_seen(database: str | None, keys: Iterable[str], data_version: str) -> list[str]:
    """Remember ``keys`` as seen; return those not seen before (in the given order)."""
    keys = list(dict.fromkeys(str(k) for k in keys))
    table = store.signal_alerts
    with store.get_engine(database).begin() as connection:
        known = {r[0] for r in connection.execute(sa.select(table.c.signal_key))}
        new = [k for k in keys if k not in known]
        if new:
            moment = _now()
            connection.execute(table.insert(), [
                {"signal_key": k, "first_seen_at": moment, "notified_at": None,
                 "data_version": data_version[:120]} for k in new])
    return new


def first_seen(database: str | None) -> pd.Series:
    """When each signal key was first seen (UTC)."""
    table = store.signal_alerts
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(sa.select(table.c.signal_key, table.c.first_seen_at)).all()
    return pd.Series({r[0]: r[1] for r in rows}, dtype="datetime64[ns]")


def note_notified(database: str | None, keys: Iterable[str]) -> None:
    """Stamp the alert of ``keys`` as sent."""
    keys = list(keys)
    if not keys:
        return
    table = store.signal_alerts
    with store.get_engine(database).begin() as connection:
        connection.execute(table.update().where(table.c.signal_key.in_(keys))
                           .values(notified_at=_now()))
