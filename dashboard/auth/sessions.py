"""Server-side sessions: a sign-in lasts only while the store says so.

The signed session cookie carries a random token; the store's ``auth_sessions`` table holds
the token's SHA-256 (never the token itself), the user, when the session started and when it
was last used. A request signs someone in only when

* the session row exists and has not ended (sign-out ends it: :func:`end`);
* it was used within the inactivity timeout (``idle_minutes`` of the auth configuration) and
  started within the lifetime (``session_hours``);
* for a users-file account, the account's stamp (:func:`account_stamp`: a keyed hash of its
  role, facilities and password hash) still equals the one taken at sign-in, so changing the
  password, role or facilities, or removing the account, ends every session of that user,
  whichever tool (Users page, ``python -m dashboard.auth``, an editor) made the change.

Every worker reads the same table, so revocation takes effect at once on all of them.
``last_seen_at`` is written at most once per :data:`TOUCH_SECONDS`, so the inactivity timeout
is exact to within that interval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets

import sqlalchemy as sa

from data import store

#: Session-cookie keys: the session token and the account stamp.
TOKEN_KEY = "sid"
STAMP_KEY = "stamp"
#: ``last_seen_at`` is updated at most this often (seconds).
TOUCH_SECONDS = 60
#: Ended or expired sessions are deleted this long after their last use.
KEEP_ENDED = dt.timedelta(days=7)


def now() -> dt.datetime:
    """The current UTC time, naive (as the store keeps times); tests move it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def session_digest(token: str) -> str:
    """The key of a session in the store: SHA-256 of its token (hex).

    >>> len(session_digest("abc"))
    64
    """
    return hashlib.sha256(token.encode()).hexdigest()


def account_stamp(key: bytes, role: str, facilities, password_hash: str) -> str:
    """A keyed hash of what a users-file account grants and how it signs in.

    Any change of role, facilities or password gives another stamp.

    >>> account_stamp(b"k", "viewer", None, "h") == account_stamp(b"k", "admin", None, "h")
    False
    """
    text = json.dumps([role, list(facilities) if facilities is not None else None,
                       password_hash])
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def start(database: str | None, user_name: str, source: str) -> str:
    """Record a new session for ``user_name`` and return its token (for the cookie)."""
    token = secrets.token_urlsafe(32)
    moment = now()
    table = store.auth_sessions
    with store.get_engine(database).begin() as connection:
        connection.execute(table.delete().where(table.c.last_seen_at < moment - KEEP_ENDED))
        connection.execute(table.insert().values(
            session_id=session_digest(token), user_name=str(user_name)[:255],
            source=str(source)[:16], created_at=moment, last_seen_at=moment))
    return token


def check(database: str | None, token: object, user_name: str, idle: dt.timedelta,
          lifetime: dt.timedelta) -> bool:
    """True when the session of ``token`` is current for ``user_name`` (and mark it used).

    A session past its inactivity timeout or lifetime is ended on the way.
    """
    if not isinstance(token, str) or not token:
        return False
    table = store.auth_sessions
    digest = session_digest(token)
    engine = store.get_engine(database)
    with engine.connect() as connection:
        row = connection.execute(sa.select(
            table.c.user_name, table.c.created_at, table.c.last_seen_at, table.c.ended_at)
            .where(table.c.session_id == digest)).first()
    if row is None or row.ended_at is not None or row.user_name != user_name:
        return False
    moment = now()
    reason = ("inactive" if moment - row.last_seen_at > idle
              else "expired" if moment - row.created_at > lifetime else None)
    if reason is not None:
        _end(engine, table.c.session_id == digest, reason)
        return False
    if (moment - row.last_seen_at).total_seconds() > TOUCH_SECONDS:
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.session_id == digest)
                               .where(table.c.ended_at.is_(None)).values(last_seen_at=moment))
    return True


def _end(engine, condition, reason: str) -> int:
    table = store.auth_sessions
    with engine.begin() as connection:
        result = connection.execute(table.update().where(condition)
                                    .where(table.c.ended_at.is_(None))
                                    .values(ended_at=now(), end_reason=reason[:32]))
    return int(result.rowcount or 0)


def end(database: str | None, token: object, reason: str = "sign_out") -> bool:
    """End the session of ``token``; True when one was open."""
    if not isinstance(token, str) or not token:
        return False
    return _end(store.get_engine(database),
                store.auth_sessions.c.session_id == session_digest(token), reason) > 0


def end_all(database: str | None, user_name: str, reason: str) -> int:
    """End every open session of ``user_name``; the number ended."""
    return _end(store.get_engine(database), store.auth_sessions.c.user_name == user_name, reason)
