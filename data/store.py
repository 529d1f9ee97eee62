"""The record store: SQLAlchemy Core tables on SQLite (embedded default) or PostgreSQL.

Tables
------
``records``
    One row per accepted procedure, one column per dictionary field, plus the import batch and a
    content hash used to tell duplicates from conflicts.
``import_batches``
    One row per completed import: file name, sha256, times, the accounting counts, whether the
    data are synthetic.
``rejected_rows``
    Quarantine: every rejected row with its batch, row number, reasons and the (redacted) values
    it had, so it can be exported, corrected and imported again.
``store_meta``
    Key/value facts about the store, including ``schema_version``.
``audit_log``
    Append-only (database triggers refuse UPDATE, DELETE and an INSERT reusing an event id):
    who did what and when (sign-ins, imports, downloads, role changes, record browsing), with
    filters, file names and counts only (schema 2). Each event holds the hash of the event
    before it and its own (``prev_hash``, ``row_hash``; schema 5), so a rewrite made past the
    triggers is found by ``python -m data audit verify``.
``auth_sessions``
    Server-side sign-in sessions (schema 3): the SHA-256 of each session cookie's token, the
    user, when it started, when it was last used and when and why it ended. A cookie whose
    session ended (sign-out, inactivity, lifetime) signs nobody in.
``signal_reviews``
    Acknowledgements of quality signals (schema 6): one row per review (the signal's key, its
    status: open, under review, explained or closed, a short note, who and when); the history
    is kept, the newest row of a key is its current status. Each review is also audited.
``signal_alerts``
    The quality signals already seen (schema 6): when each was first seen and when its alert
    was sent, so an import alerts only on the signals it created.
``saved_views``
    Named views (schema 7): a page path and its query string (filters and page settings only,
    never PHI), the owner, and whether an admin published it to everyone (:mod:`data.views`).

The database is named by ``--database`` / ``DATABASE_URL``: a SQLAlchemy URL
(``postgresql+psycopg://user@host/db``) or a path to a SQLite file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data.dictionary import FIELDS, Field

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7
#: ``store_meta`` key of the audit chain's newest hash, and the hash "before" the first event.
AUDIT_HEAD_KEY = "audit_head"
AUDIT_GENESIS = "0" * 64
DEFAULT_SQLITE_PATH = Path("instance") / "vertebral_augmentation.db"

metadata = sa.MetaData()

_SQL_TYPES = {
    "id": lambda: sa.String(64),
    "text": lambda: sa.String(120),
    "category": lambda: sa.String(32),
    "date": sa.Date,
    "integer": sa.Integer,
    "number": sa.Float,
    "boolean": sa.Boolean,
}


def _column(field: Field) -> sa.Column:
    return sa.Column(field.name, _SQL_TYPES[field.kind](), primary_key=field.name == "record_id",
                     nullable=field.name != "record_id", comment=field.description[:200])


import_batches = sa.Table(
    "import_batches", metadata,
    sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("synthetic", sa.Boolean, nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("conflicts", sa.Integer, nullable=False),
    sa.Column("replaced", sa.Integer, nullable=False),
    sa.Column("top_coded_ages", sa.Integer, nullable=False),
    sa.Column("ignored_columns", sa.Text, nullable=False, default=""),
)

records = sa.Table(
    "records", metadata,
    *(_column(field) for field in FIELDS),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.batch_id"), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Index("ix_records_procedure_date", "procedure_date"),
    sa.Index("ix_records_facility", "facility_id"),
)

rejected_rows = sa.Table(
    "rejected_rows", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("import_batches.batch_id"), nullable=False,
              index=True),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # rejected | conflict
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list of {field, rule, value, message}
    sa.Column("raw_values", sa.Text, nullable=False),  # JSON object of the mapped columns
)

store_meta = sa.Table(
    "store_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", sa.DateTime, nullable=False),  # UTC, naive
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False, index=True),
    sa.Column("detail", sa.Text, nullable=False),  # JSON object: filters, file names, counts
    # The hash chain (schema 5): sha256 of the event before, and of (that hash + this event).
    sa.Column("prev_hash", sa.String(64), nullable=True),
    sa.Column("row_hash", sa.String(64), nullable=True),
)

# The audit log is append-only, enforced by the database itself: no statement of any code path
# can change or remove an event; that takes dropping the triggers on purpose (and a database
# role without that right, in deployments that need it). The triggers are created with the
# table, by create_all or by the migration.
# SQLite's INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless
# recursive triggers are on), so an INSERT naming an existing event_id is refused before it.
_SQLITE_AUDIT_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_reuse BEFORE INSERT ON audit_log "
    "WHEN EXISTS (SELECT 1 FROM audit_log WHERE event_id = NEW.event_id) "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: INSERT of an existing event_id "
    "refused'); END",
)
_POSTGRES_AUDIT_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$body$ BEGIN RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP; END $body$",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
_POSTGRES_AUDIT_INSERT_TRIGGER = (
    "CREATE OR REPLACE FUNCTION audit_log_no_reuse() RETURNS trigger LANGUAGE plpgsql AS "
    "$body$ BEGIN IF EXISTS (SELECT 1 FROM audit_log WHERE event_id = NEW.event_id) THEN "
    "RAISE EXCEPTION 'audit_log is append-only: INSERT of an existing event_id refused'; "
    "END IF; RETURN NEW; END $body$",
    "DROP TRIGGER IF EXISTS audit_log_no_reuse ON audit_log",
    "CREATE TRIGGER audit_log_no_reuse BEFORE INSERT ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_no_reuse()",
)
for _statement in _SQLITE_AUDIT_TRIGGERS:
    sa.event.listen(audit_log, "after_create", sa.DDL(_statement).execute_if(dialect="sqlite"))
for _statement in (*_POSTGRES_AUDIT_TRIGGERS, *_POSTGRES_AUDIT_INSERT_TRIGGER):
    # DDL text is %-formatted by SQLAlchemy: the literal % of RAISE must be doubled.
    sa.event.listen(audit_log, "after_create",
                    sa.DDL(_statement.replace("%", "%%")).execute_if(dialect="postgresql"))

auth_sessions = sa.Table(
    "auth_sessions", metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),  # sha256 hex of the cookie token
    sa.Column("user_name", sa.String(255), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),  # UTC, naive
    sa.Column("last_seen_at", sa.DateTime, nullable=False),
    sa.Column("ended_at", sa.DateTime, nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=True),
)

record_views = sa.Table(
    "record_views", metadata,
    sa.Column("view_key", sa.String(64), primary_key=True),  # sha256 of session + selection
    sa.Column("session_key", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON: filters, column filters, sort
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("last_logged_at", sa.DateTime, nullable=True),
    sa.Column("rows_served", sa.Integer, nullable=False),
    sa.Column("rows_logged", sa.Integer, nullable=False),
    sa.Column("matching_rows", sa.Integer, nullable=False),
)

login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("key", sa.String(80), primary_key=True),  # "name:<sha256>", "address:...", ...
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure", sa.DateTime, nullable=False, index=True),  # UTC, naive
)

signal_reviews = sa.Table(
    "signal_reviews", metadata,
    sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("signal_key", sa.String(255), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("note", sa.String(500), nullable=False, default=""),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reviewed_at", sa.DateTime, nullable=False),  # UTC, naive
)

signal_alerts = sa.Table(
    "signal_alerts", metadata,
    sa.Column("signal_key", sa.String(255), primary_key=True),
    sa.Column("first_seen_at", sa.DateTime, nullable=False),  # UTC, naive
    sa.Column("notified_at", sa.DateTime, nullable=True),
    sa.Column("data_version", sa.String(120), nullable=False),
)

saved_views = sa.Table(
    "saved_views", metadata,
    sa.Column("view_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("path", sa.String(64), nullable=False),
    sa.Column("query", sa.String(2000), nullable=False),  # "?country=US&cur=INR": no PHI
    sa.Column("published", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime, nullable=False),  # UTC, naive
)

RECORD_COLUMNS: tuple[str, ...] = tuple(field.name for field in FIELDS)


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to do."""


class DatabaseUnavailable(StoreError):
    """The database server cannot be reached (stopped, wrong host or port, network, refused
    login). Unlike other store errors it may go away by itself: callers retry later."""


#: Seconds to wait for a PostgreSQL server before giving up (an unroutable host would otherwise
#: block start-up, or a page request, for the operating system's TCP timeout of minutes).
CONNECT_TIMEOUT_SECONDS = 10


def unavailable_error(url: str, error: BaseException) -> DatabaseUnavailable:
    """A :class:`DatabaseUnavailable` naming host, port, database and the driver's reason.

    The password never appears: the URL is rendered with it hidden, and it is masked in the
    driver's message too, in case a driver ever echoes its connection string.

    Examples
    --------
    >>> import sqlalchemy as sa
    >>> str(unavailable_error("postgresql+psycopg://u:pw@db.example:5433/va",
    ...                       OSError("Connection refused")))  # doctest: +NORMALIZE_WHITESPACE
    "cannot open the database postgresql+psycopg://u:***@db.example:5433/va (server db.example,
    port 5433, database 'va'): Connection refused. Check that the server is running and
    reachable from this machine, and the --database / DATABASE_URL setting."
    """
    parsed = sa.make_url(url)
    # The driver's first line says what failed; its hint lines repeat the advice given below.
    lines = [line.strip() for line in str(getattr(error, "orig", None) or error).splitlines()]
    reason = next((line for line in lines if line), type(error).__name__)
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    where = (f"server {parsed.host or 'localhost (socket)'}, port {parsed.port or 5432}, "
             f"database {parsed.database!r}")
    return DatabaseUnavailable(
        f"cannot open the database {describe(url)} ({where}): {reason.rstrip('.')}. Check that "
        "the server is running and reachable from this machine, and the --database / "
        "DATABASE_URL setting.")


def database_url(database: str | os.PathLike[str] | None = None) -> str:
    """Resolve ``database`` (URL, SQLite path, or ``None`` for ``DATABASE_URL``/the default)."""
    if database is None:
        database = os.environ.get("DATABASE_URL") or DEFAULT_SQLITE_PATH
    text = str(database)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    return f"sqlite:///{path}"


def describe(url: str) -> str:
    """A printable name of the database with any password hidden."""
    return sa.make_url(url).render_as_string(hide_password=True)


# Engines are cached per URL and process: creating one per call would defeat connection pooling.
_ENGINES: dict[str, Engine] = {}


def get_engine(database: str | os.PathLike[str] | None = None) -> Engine:
    """An engine for ``database`` whose schema exists and is current.

    Creates the tables of an empty database, upgrades an older schema, and refuses a database
    written by a newer version or one that is not a store.
    """
    url = database_url(database)
    engine = _ENGINES.get(url)
    if engine is not None:
        return engine
    kwargs: dict = {}
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            create_private_file(Path(path))
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True  # recover when the server restarted under a running app
        if url.startswith("postgresql") and "connect_timeout" not in sa.make_url(url).query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        _ensure_schema(engine)
    except sa.exc.OperationalError as error:
        engine.dispose()
        if url.startswith("sqlite"):
            raise StoreError(f"cannot open the database {describe(url)}: {error.orig}") from error
        raise unavailable_error(url, error) from error
    _ENGINES[url] = engine
    return engine


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (its missing folders 0700) unless it exists.

    The store holds patient-level records: under a umask of 022 SQLite would create the file,
    and Python the folder, readable by every user of the machine. SQLite gives its ``-wal`` and
    ``-shm`` files the database file's mode. An existing file keeps its mode (the operator's
    choice); a warning is logged when other users may read it.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> create_private_file(folder / "new" / "store.db")
    >>> oct((folder / "new" / "store.db").stat().st_mode & 0o777)
    '0o600'
    """
    for folder in reversed([p for p in path.parents if not p.exists()]):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        else:
            folder.chmod(0o700)  # mkdir's mode is reduced by the umask
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            log.warning("the store %s may be read by other users of this machine (mode %o); "
                        "chmod 600 it and its -wal/-shm files", path, path.stat().st_mode & 0o777)
        return
    os.fchmod(descriptor, 0o600)  # O_CREAT's mode is reduced by the umask; 0600 is not widened
    os.close(descriptor)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the app) do not block the importer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ensure_schema(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names())
    if not tables:
        with engine.begin() as connection:
            metadata.create_all(connection)
            connection.execute(store_meta.insert(), [
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                {"key": "created_at", "value": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
                {"key": AUDIT_HEAD_KEY, "value": AUDIT_GENESIS},
            ])
        return
    if "store_meta" not in tables:
        raise StoreError(
            f"{describe(str(engine.url))} has tables but is not a vertebral augmentation store "
            f"(no store_meta table). Point --database / DATABASE_URL at an empty database or a store."
        )
    with engine.begin() as connection:
        version = int(connection.execute(
            sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version")).scalar_one())
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {describe(str(engine.url))} has schema version {version}, newer than "
                f"this program's {SCHEMA_VERSION}: upgrade the program (git pull; pip install -r "
                f"requirements.txt)."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](connection)
            connection.execute(store_meta.update().where(store_meta.c.key == "schema_version")
                               .values(value=str(target)))


def _add_audit_log(connection: Connection) -> None:
    """Version 2: the append-only ``audit_log`` table with its triggers."""
    audit_log.create(connection, checkfirst=True)


def _add_auth_sessions(connection: Connection) -> None:
    """Version 3: the ``auth_sessions`` table (revocable server-side sessions)."""
    auth_sessions.create(connection, checkfirst=True)


def _add_login_failures(connection: Connection) -> None:
    """Version 4: the ``login_failures`` table (sign-in back-off shared by all workers)."""
    login_failures.create(connection, checkfirst=True)


def _chain_audit_log(connection: Connection) -> None:
    """Version 5: the audit log's hash chain and INSERT trigger, and ``record_views``.

    Events already logged are chained now, in event order (the chain vouches for them from
    the upgrade on); the UPDATE trigger is lifted for that one statement series, inside the
    migration's transaction, and restored before it commits.
    """
    from data import audit

    columns = {c["name"] for c in sa.inspect(connection).get_columns("audit_log")}
    for name in ("prev_hash", "row_hash"):
        if name not in columns:
            connection.exec_driver_sql(f"ALTER TABLE audit_log ADD COLUMN {name} VARCHAR(64)")
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        for statement in _POSTGRES_AUDIT_INSERT_TRIGGER:
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    else:
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        for statement in _SQLITE_AUDIT_TRIGGERS[2:]:
            connection.exec_driver_sql(statement)
    audit.chain_existing(connection)
    if postgres:
        for statement in _POSTGRES_AUDIT_TRIGGERS:  # the driver %-formats: double RAISE's %
            connection.exec_driver_sql(statement.replace("%", "%%"))
    else:
        connection.exec_driver_sql(_SQLITE_AUDIT_TRIGGERS[0])
    record_views.create(connection, checkfirst=True)


def _add_signal_tables(connection: Connection) -> None:
    """Version 6: ``signal_reviews`` (acknowledgements) and ``signal_alerts`` (signals seen)."""
    signal_reviews.create(connection, checkfirst=True)
    signal_alerts.create(connection, checkfirst=True)


def _add_saved_views(connection: Connection) -> None:
    """Version 7: the ``saved_views`` table (named views; :mod:`data.views`)."""
    saved_views.create(connection, checkfirst=True)


# schema version -> function that upgrades a store from the version before it, in one transaction.
MIGRATIONS: dict[int, callable] = {2: _add_audit_log, 3: _add_auth_sessions,
                                   4: _add_login_failures, 5: _chain_audit_log,
                                   6: _add_signal_tables, 7: _add_saved_views}


def schema_version(database: str | None = None) -> int:
    with get_engine(database).connect() as connection:
        return int(connection.execute(
            sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version")).scalar_one())


def record_count(database: str | None = None) -> int:
    """Number of stored records."""
    with get_engine(database).connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(records)).scalar_one())


def data_version(database: str | None = None) -> str:
    """A string that changes whenever stored records change (for cache keys and snapshots).

    Records change only through import batches: the importer inserts, replaces and deletes
    them, and writes the batch row, in one transaction; removing a demo batch marks its row
    ``removed``. So the number of batches and the
    newest batch (its id, file hash and start time) identify the content, read from the
    small ``import_batches`` table only (plus the number of removed batches); counting the records instead cost 6–9 ms a call at
    1,000,000 records, paid by every page callback.

    Examples
    --------
    >>> data_version("sqlite:///:memory:")
    'b0-n0'
    """
    table = import_batches
    count = sa.select(sa.func.count()).select_from(table).scalar_subquery()
    removed = (sa.select(sa.func.count()).select_from(table)
               .where(table.c.status == "removed").scalar_subquery())
    with get_engine(database).connect() as connection:
        newest = connection.execute(
            sa.select(table.c.batch_id, table.c.sha256, table.c.started_at, count.label("n"),
                      removed.label("removed"))
            .order_by(table.c.batch_id.desc()).limit(1)).first()
    if newest is None:
        return "b0-n0"
    started = newest.started_at.strftime("%Y%m%dT%H%M%S%f")
    # Removing a batch (data.batches.remove_synthetic_batches) deletes its records and marks
    # it removed without adding a batch: the number of removed batches tells the two apart.
    suffix = f"-r{newest.removed}" if newest.removed else ""
    return f"b{newest.batch_id}-n{newest.n}-{newest.sha256[:12]}-{started}{suffix}"


def existing_hashes(connection: Connection, record_ids: Sequence[str]) -> dict[str, str]:
    """``record_id -> content_hash`` for the ids already stored (batched IN queries)."""
    found: dict[str, str] = {}
    if connection.dialect.name == "sqlite":
        # The driver's own placeholders: compiling an expanding IN of 5,000 parameters in
        # SQLAlchemy costs more than SQLite's lookups (~2.5 s of CPU per million ids).
        for start in range(0, len(record_ids), 5000):
            chunk = tuple(record_ids[start:start + 5000])
            marks = ",".join("?" * len(chunk))
            found.update(connection.exec_driver_sql(
                f"SELECT record_id, content_hash FROM records WHERE record_id IN ({marks})",
                chunk).fetchall())
        return found
    statement = sa.select(records.c.record_id, records.c.content_hash).where(
        records.c.record_id.in_(sa.bindparam("ids", expanding=True)))
    for start in range(0, len(record_ids), 5000):
        chunk = list(record_ids[start:start + 5000])
        found.update((row[0], row[1]) for row in connection.execute(statement, {"ids": chunk}))
    return found


def bulk_insert(connection: Connection, table: sa.Table, columns: Sequence[str],
                rows: Iterable[tuple]) -> None:
    """Insert many rows fast: COPY on PostgreSQL, executemany on the DB-API elsewhere."""
    rows = list(rows)
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        names = ", ".join(columns)
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    if connection.dialect.name == "sqlite":
        placeholders = ", ".join("?" for _ in columns)
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", rows)
        return
    connection.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])


def delete_records(connection: Connection, record_ids: Sequence[str]) -> None:
    statement = records.delete().where(records.c.record_id.in_(sa.bindparam("ids", expanding=True)))
    for start in range(0, len(record_ids), 5000):
        connection.execute(statement, {"ids": list(record_ids[start:start + 5000])})


def dispose_engines() -> None:
    """Close every pooled connection (tests and forked workers call this)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
