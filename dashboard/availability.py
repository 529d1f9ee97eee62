"""What the dashboard shows while its database is unreachable, and how it recovers.

A PostgreSQL server may restart, fail over or drop off the network under a running app. The
app then answers every request with a clear message instead of a broken page or an HTTP 500,
and works again as soon as the server is back, without a restart: the engine checks each
pooled connection before use (``pool_pre_ping`` in :func:`data.store.get_engine`) and nothing
derived from a failed request is cached.

* :func:`is_database_unavailable` — is an exception a lost or refused database connection?
* :func:`database_unavailable_alert` — the message, for a callback's output
  (:func:`dashboard.components.safe_callback` uses it).
* :func:`database_unavailable_page` — a whole page with the message, for the app layout.
* :func:`guard_layout` — wraps a layout function so it returns that page when the database is
  unreachable.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable

import dash_bootstrap_components as dbc
import sqlalchemy as sa
from dash import html

from data import store

log = logging.getLogger(__name__)

MESSAGE_TITLE = "The database is not reachable."
MESSAGE_TEXT = ("The results cannot be shown right now. Nothing is lost: the page will work "
                "again when the database returns — reload the page or change a filter in a "
                "minute. If this lasts, tell the administrator.")
# SQLite's OperationalError also reports programming errors (no such table, syntax); only
# these mean the file is (temporarily) out of reach.
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")


def _chain(error: BaseException):
    """``error`` and the exceptions it was raised from or during (cycle-safe)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_database_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or an exception it came from) is a lost or refused connection.

    Parameters
    ----------
    error : BaseException
        Anything a callback or layout raised.

    Returns
    -------
    bool
        ``True`` for :class:`data.store.DatabaseUnavailable`, a SQLAlchemy
        ``OperationalError`` from a database server (refused, closed, shut down, timed out),
        any DB-API error after which SQLAlchemy invalidated the connection, and SQLite's
        locked or unopenable file; ``False`` for everything else (bugs, bad data).

    Examples
    --------
    >>> from data.store import DatabaseUnavailable
    >>> is_database_unavailable(DatabaseUnavailable("cannot open the database"))
    True
    >>> is_database_unavailable(ValueError("bad filter"))
    False
    """
    for item in _chain(error):
        if isinstance(item, store.DatabaseUnavailable):
            return True
        if isinstance(item, sa.exc.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, sa.exc.OperationalError):
            if not isinstance(item.orig, sqlite3.Error):
                return True
            text = str(item.orig).lower()
            return any(phrase in text for phrase in _SQLITE_UNAVAILABLE)
    return False


def log_unavailable(error: BaseException, where: str) -> None:
    """Log the outage without a traceback or SQL parameters (they could hold record data)."""
    orig = getattr(error, "orig", None) or error
    first_line = next((line.strip() for line in str(orig).splitlines() if line.strip()),
                      type(orig).__name__)
    log.warning("database unavailable in %s: %s: %s", where, type(orig).__name__, first_line)


def database_unavailable_alert() -> dbc.Alert:
    """The message shown in place of a callback's output while the database is unreachable.

    Examples
    --------
    >>> database_unavailable_alert().color
    'danger'
    """
    # No id: several outputs of one page may show it at once, and ids must be unique.
    return dbc.Alert([html.Strong(MESSAGE_TITLE + " "), MESSAGE_TEXT], color="danger",
                     className="my-3 database-unavailable")


def database_unavailable_page(error: BaseException | None = None) -> html.Div:
    """A whole page carrying only the message, served as the layout during an outage.

    It has no filter controls, so no callback fires until the database is back and the
    page is reloaded (the normal layout is built again on each page load).

    Parameters
    ----------
    error : BaseException, optional
        The failure, logged server-side (first line only); never shown in the page, whose
        reader needs no host names or driver messages.

    Examples
    --------
    >>> page = database_unavailable_page()
    >>> "not reachable" in str(page)
    True
    """
    if error is not None:
        log_unavailable(error, "page layout")
    return html.Div([
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand(html.Span("VA outcomes", title="Vertebral augmentation outcomes"),
                            href="/"),
        ], fluid=True), color="primary", dark=True, className="mb-2"),
        dbc.Container(html.Main(database_unavailable_alert(), id="main"), fluid=True),
    ], id="database-unavailable-page")


def guard_layout(layout: Callable[..., object]) -> Callable[..., object]:
    """Wrap a layout function: when the database is unreachable, return the outage page.

    Any other exception propagates unchanged (a bug must not look like an outage).

    Examples
    --------
    >>> from data.store import DatabaseUnavailable
    >>> def shell():
    ...     raise DatabaseUnavailable("cannot open the database")
    >>> guard_layout(shell)().id
    'database-unavailable-page'
    """
    @functools.wraps(layout)
    def guarded(*args, **kwargs):
        try:
            return layout(*args, **kwargs)
        except Exception as error:
            if not is_database_unavailable(error):
                raise
            return database_unavailable_page(error)

    return guarded
