"""Sign-in back-off shared by every worker: failed sign-ins slow the next attempts down.

Failed sign-ins are counted in the store's ``login_failures`` table, so all gunicorn workers
(and app restarts) see the same counts. Three kinds of key are counted:

* the **user name** typed (case-insensitive);
* the **client address** (the real client's, when the app is told how many proxies to trust:
  ``proxy_hops``; never an address a client claims in a header beyond those hops);
* a **known device**: a browser that signed in as that user before carries a signed cookie
  naming the user; its attempts for that user count only against the device itself.

After ``free`` failures of a key within :data:`WINDOW`, each further attempt must wait
``base × 2^(failures − free)`` seconds (at most ``max_seconds``) after the last failure:
exponential back-off (the scheme OWASP's authentication guidance recommends over hard
lock-outs, which let anyone lock any account out). An attempt made earlier is answered
"try again in N seconds" without checking the password; after the wait it is checked as
usual, so a correct password always gets in within ``max_seconds``, and a user signing in from
a known device is not slowed by anyone else's failures at all. The keys are SHA-256 hashes:
what was typed is never stored.

References
----------
OWASP Authentication Cheat Sheet, "Protect against automated attacks"; OWASP, "Slow Down
Online Guessing Attacks with Device Cookies".
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from data import store

#: Failures older than this are forgotten (the back-off of a key starts again).
WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Backoff:
    """How a kind of key slows down: ``free`` failures, then ``base × 2^k`` seconds, capped.

    Examples
    --------
    >>> policy = Backoff(free=5, base_seconds=1, max_seconds=300)
    >>> [policy.delay(n) for n in (4, 5, 6, 9, 20)]
    [0.0, 1.0, 2.0, 16.0, 300.0]
    """

    free: int
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the last of ``failures`` failures before the next check."""
        extra = failures - self.free
        if extra < 0:
            return 0.0
        return float(min(self.base_seconds * 2.0 ** min(extra, 30), self.max_seconds))


#: The default policies: 5 free failures per user name or device, 20 per client address.
POLICIES: dict[str, Backoff] = {"name": Backoff(free=5), "address": Backoff(free=20),
                                "device": Backoff(free=5)}


def now() -> dt.datetime:
    """The current UTC time, naive (as the store keeps times); tests move it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def key(kind: str, value: str) -> str:
    """The stored key of a name, address or device: its kind and a SHA-256 prefix.

    >>> key("name", "Ana") == key("name", "ana"), key("name", "ana")[:5]
    (True, 'name:')
    """
    text = value.lower() if kind == "name" else value
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:48]}"


class LoginThrottle:
    """Back-off for sign-in attempts, counted in the store (all workers share it).

    Examples
    --------
    >>> throttle = LoginThrottle("sqlite:///store.db")  # doctest: +SKIP
    >>> throttle.wait("ana", "203.0.113.5")  # doctest: +SKIP
    0.0
    """

    def __init__(self, database: str | None, policies: dict[str, Backoff] | None = None,
                 window: dt.timedelta = WINDOW) -> None:
        self.database = database
        self.policies = dict(policies or POLICIES)
        self.window = window

    def _keys(self, name: str, address: str, device: str | None) -> dict[str, str]:
        if device:  # a browser that signed in as this user before: only its own failures
            return {key("device", device): "device"}
        return {key("name", name): "name", key("address", address): "address"}

    def wait(self, name: str, address: str, device: str | None = None) -> float:
        """Seconds until an attempt for ``name`` from ``address`` (or ``device``) is checked."""
        keys = self._keys(name, address, device)
        table = store.login_failures
        with store.get_engine(self.database).connect() as connection:
            rows = connection.execute(sa.select(table.c.key, table.c.failures,
                                                table.c.last_failure)
                                      .where(table.c.key.in_(list(keys)))).all()
        moment = now()
        waits = [0.0]
        for row in rows:
            if moment - row.last_failure > self.window:
                continue
            ready = row.last_failure + dt.timedelta(
                seconds=self.policies[keys[row.key]].delay(row.failures))
            waits.append((ready - moment).total_seconds())
        return max(waits)

    def failed(self, name: str, address: str, device: str | None = None) -> None:
        """Count a failed attempt against its keys (and forget failures past the window)."""
        moment = now()
        start = moment - self.window
        table = store.login_failures
        with store.get_engine(self.database).begin() as connection:
            connection.execute(table.delete().where(table.c.last_failure < start))
            for stored_key in self._keys(name, address, device):
                connection.execute(_count(connection, stored_key, moment, start))

    def succeeded(self, name: str, device: str | None = None) -> None:
        """Forget the failures of the user name (or device) that just signed in."""
        table = store.login_failures
        keys = [key("device", device)] if device else [key("name", name)]
        with store.get_engine(self.database).begin() as connection:
            connection.execute(table.delete().where(table.c.key.in_(keys)))


def _count(connection, stored_key: str, moment: dt.datetime, start: dt.datetime):
    """``INSERT ... ON CONFLICT DO UPDATE``: one more failure, atomically across workers."""
    table = store.login_failures
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).values(key=stored_key, failures=1, last_failure=moment)
    return statement.on_conflict_do_update(index_elements=[table.c.key], set_={
        "failures": sa.case((table.c.last_failure < start, 1), else_=table.c.failures + 1),
        "last_failure": moment})
