"""Telling a database outage from a bug, and what the page shows for each."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from dashboard.availability import (
    MESSAGE_TITLE,
    database_unavailable_page,
    guard_layout,
    is_database_unavailable,
)
from dashboard.components import safe_callback
from data.store import DatabaseUnavailable, StoreError, unavailable_error


class _ServerGone(Exception):
    """Stands in for a server driver's error (psycopg.OperationalError)."""


def _operational(orig: BaseException) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize("error, expected", [
    (DatabaseUnavailable("cannot open the database"), True),
    (_operational(_ServerGone("connection refused")), True),
    (_operational(sqlite3.OperationalError("database is locked")), True),
    (_operational(sqlite3.OperationalError("unable to open database file")), True),
    (_operational(sqlite3.OperationalError("no such table: records")), False),  # a bug
    (sa.exc.ProgrammingError("SELECT", {}, _ServerGone("syntax error")), False),
    (StoreError("the store has schema version 9"), False),  # needs an upgrade, not a retry
    (ValueError("unknown age band"), False),
    (KeyError("cost"), False),
])
def test_outage_or_not(error, expected):
    assert is_database_unavailable(error) is expected


def test_an_outage_raised_during_other_handling_is_found():
    try:
        try:
            raise _operational(_ServerGone("server closed the connection unexpectedly"))
        except sa.exc.OperationalError as inner:
            raise RuntimeError("loading records failed") from inner
    except RuntimeError as outer:
        assert is_database_unavailable(outer)


def test_invalidated_connection_counts_as_outage():
    error = sa.exc.DBAPIError("SELECT 1", {}, _ServerGone("terminating connection"),
                              connection_invalidated=True)
    assert is_database_unavailable(error)


def test_safe_callback_shows_the_database_message_for_an_outage_only():
    @safe_callback(3)
    def outage(_state):
        raise _operational(_ServerGone("connection refused"))

    @safe_callback()
    def bug(_state):
        raise KeyError("cost")

    alert, second, third = outage({})
    assert MESSAGE_TITLE in str(alert) and "could not be computed" not in str(alert)
    assert second is None and third is None
    generic = bug({})
    assert "could not be computed" in str(generic) and MESSAGE_TITLE not in str(generic)


def test_guard_layout_replaces_only_outages():
    def down():
        raise DatabaseUnavailable("cannot open the database")

    def broken():
        raise KeyError("cost")

    page = guard_layout(down)()
    assert page.id == "database-unavailable-page" and MESSAGE_TITLE in str(page)
    with pytest.raises(KeyError):
        guard_layout(broken)()
    assert guard_layout(lambda: "fine")() == "fine"


def test_outage_page_shows_no_driver_detail():
    page = str(database_unavailable_page(_operational(_ServerGone("db.internal:5432 refused"))))
    assert "db.internal" not in page and MESSAGE_TITLE in page


def test_unavailable_error_names_the_server_and_hides_the_password():
    error = unavailable_error("postgresql+psycopg://va:Hunter2!@db.example:6543/va_prod",
                              _ServerGone("could not connect with password=Hunter2!\nhint line"))
    text = str(error)
    assert isinstance(error, DatabaseUnavailable)
    assert "server db.example, port 6543, database 'va_prod'" in text
    assert "Hunter2!" not in text and "password=***" in text
    assert "hint line" not in text  # the driver's first line only


def test_an_analysis_limitation_is_information_not_a_failure():
    from analysis.errors import InsufficientDataError
    from dashboard.components import safe_callback

    @safe_callback()
    def too_few():
        raise InsufficientDataError("Funnel plot", "5 events are too few")

    shown = str(too_few())
    assert "Not enough data" in shown and "could not be computed" not in shown
    assert "5 events" not in shown  # small counts in the message are still suppressed
