"""The audit log: append-only in the database (SQLite and PostgreSQL), no secrets, no PHI."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from data import audit, store
from tests.conftest import _reset_postgres, postgres_url, require_or_skip


def test_events_are_read_newest_first(database):
    audit.log_event(database, "alice", "sign_in", {"source": "users-file"})
    audit.log_event(database, "alice", "download", {"table": "overview", "rows": 12,
                                                    "filters": {"country": ["US"]}})
    events = audit.read_events(database)
    assert events.action.tolist() == ["download", "sign_in"]
    assert events.actor.tolist() == ["alice", "alice"]
    assert events.detail.iloc[0] == {"table": "overview", "rows": 12, "filters": {"country": ["US"]}}
    assert events.event_id.iloc[0] > events.event_id.iloc[1]
    assert audit.read_events(database, limit=1).action.tolist() == ["download"]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'mallory'",
    "DELETE FROM audit_log",
    "DELETE FROM audit_log WHERE action = 'sign_in'",
])
def test_the_database_refuses_to_change_or_delete_events(database, statement):
    audit.log_event(database, "alice", "sign_in")
    engine = store.get_engine(database)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.exec_driver_sql(statement)
    events = audit.read_events(database)
    assert events.actor.tolist() == ["alice"]


@pytest.mark.postgres
def test_truncate_is_refused_on_postgres():
    """TRUNCATE exists on PostgreSQL only (SQLite's DELETE without WHERE is covered above)."""
    database = postgres_url()
    require_or_skip(database is not None, "PostgreSQL (VA_TEST_POSTGRES_URL)")
    store.dispose_engines()
    _reset_postgres(database)
    audit.log_event(database, "alice", "sign_in")
    engine = store.get_engine(database)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE audit_log")
    assert len(audit.read_events(database)) == 1


@pytest.mark.parametrize("detail", [
    {"password": "hunter2"}, {"user": {"api_key": "x"}}, {"Session-ID": "abc"}, {"token": "t"},
    {"password_hash": "scrypt$..."},
])
def test_secret_keys_are_refused(sqlite_database, detail):
    with pytest.raises(audit.AuditError, match="password or token"):
        audit.log_event(sqlite_database, "alice", "user_added", detail)
    assert audit.read_events(sqlite_database).empty


@pytest.mark.parametrize("value", ["jane.doe@example.org", "123-45-6789"])
def test_identifier_looking_values_are_refused(sqlite_database, value):
    with pytest.raises(audit.AuditError, match="direct identifier") as error:
        audit.log_event(sqlite_database, "alice", "download", {"filters": {"facility": value}})
    assert value not in str(error.value)  # the message never repeats the value
    assert audit.read_events(sqlite_database).empty


def test_unknown_actions_and_empty_actors_are_refused(sqlite_database):
    with pytest.raises(audit.AuditError, match="unknown audit action"):
        audit.log_event(sqlite_database, "alice", "delete_everything")
    with pytest.raises(audit.AuditError, match="needs an actor"):
        audit.log_event(sqlite_database, " ", "sign_in")


def test_a_version_1_store_gets_the_audit_table_and_its_triggers(database):
    """Build a schema-1 store by hand, open it, and check the migration added a working log."""
    engine = sa.create_engine(database)
    with engine.begin() as connection:
        for table in store.metadata.sorted_tables:
            if table.name != "audit_log":
                table.create(connection)
        connection.execute(store.store_meta.insert(), [{"key": "schema_version", "value": "1"}])
    engine.dispose()
    store.dispose_engines()
    assert store.schema_version(database) == store.SCHEMA_VERSION
    audit.log_event(database, "alice", "sign_in")
    engine = store.get_engine(database)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_log")
    assert audit.read_events(database).action.tolist() == ["sign_in"]


def test_imports_are_audited_with_the_accounting_and_a_failed_import_leaves_no_event(
        database, monkeypatch, tmp_path):
    from data import importer
    from tests.conftest import FIXTURES

    result = importer.import_file(FIXTURES / "exports" / "messy_aliases.csv", database,
                                  actor="cli:tester")
    event = audit.read_events(database, limit=1).iloc[0]
    assert (event.action, event.actor) == ("import", "cli:tester")
    assert event.detail == {
        "file": "messy_aliases.csv", "sha256_prefix": importer.file_sha256(
            FIXTURES / "exports" / "messy_aliases.csv")[:12],
        "status": "complete", "batch_id": result.batch_id, "synthetic": False,
        "rows_read": result.rows_read, "accepted": result.accepted, "rejected": result.rejected,
        "duplicates": result.duplicates, "conflicts": result.conflicts,
        "replaced": result.replaced, "top_coded_ages": result.top_coded_ages}
    # The same file again changes nothing, and says so.
    importer.import_file(FIXTURES / "exports" / "messy_aliases.csv", database, actor="cli:tester")
    again = audit.read_events(database, limit=1).iloc[0]
    assert again.detail["status"] == "unchanged" and again.detail["batch_id"] is None
    # A failure after the rows were written (here: at the audit write itself, the last step
    # of the transaction) leaves neither the batch nor an audit row claiming success.
    fresh = tmp_path / "fresh.csv"
    frame = pd.read_csv(FIXTURES / "exports" / "us_export.csv", dtype=str)
    frame.assign(case_id=[f"K-{j}" for j in range(len(frame))]).to_csv(fresh, index=False)

    def crash(*_args, **_kwargs):
        raise RuntimeError("simulated crash at the end of the import")

    original = importer._write_import_event
    monkeypatch.setattr(importer, "_write_import_event", crash)
    before = audit.read_events(database)
    version = store.data_version(database)
    with pytest.raises(RuntimeError, match="simulated"):
        importer.import_file(fresh, database, actor="cli:tester")
    assert store.data_version(database) == version
    pd.testing.assert_frame_equal(audit.read_events(database), before)
    monkeypatch.setattr(importer, "_write_import_event", original)
    assert importer.import_file(fresh, database, actor="cli:tester").accepted > 0
    assert audit.read_events(database, limit=1).detail.iloc[0]["file"] == "fresh.csv"


# -- issue 13 item 4: no rewrite through INSERT, and a hash chain -------------------------------

def _raw(database: str, statement: str) -> None:
    with store.get_engine(database).begin() as connection:
        connection.exec_driver_sql(statement)


def _rewrites(database: str) -> list[str]:
    """Statements that would put another event in place of event 1."""
    values = "(1, '2026-01-01 00:00:00', 'mallory', 'sign_in', '{}')"
    columns = "audit_log(event_id, occurred_at, actor, action, detail)"
    if database.startswith("sqlite"):
        return [f"INSERT OR REPLACE INTO {columns} VALUES {values}",
                f"REPLACE INTO {columns} VALUES {values}",
                f"INSERT INTO {columns} VALUES {values} ON CONFLICT(event_id) DO UPDATE "
                "SET actor = excluded.actor"]
    return [f"INSERT INTO {columns} VALUES {values} ON CONFLICT (event_id) DO UPDATE "
            "SET actor = excluded.actor", f"INSERT INTO {columns} VALUES {values}"]


def test_an_insert_naming_an_existing_event_is_refused(database):
    """On SQLite, INSERT OR REPLACE rewrote event 1 past the UPDATE and DELETE triggers."""
    audit.log_event(database, "alice", "sign_in")
    audit.log_event(database, "bob", "download", {"rows": 12})
    for statement in _rewrites(database):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            _raw(database, statement)
    assert audit.read_events(database).actor.tolist() == ["bob", "alice"]
    assert audit.verify_chain(database).intact


def _cli_verify(database: str):
    import subprocess
    import sys

    from tests.conftest import ROOT

    return subprocess.run([sys.executable, "-m", "data", "audit", "verify", "--database",
                           database], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _lift_triggers(database: str) -> None:
    """What someone with DDL rights could do: remove the append-only triggers."""
    if database.startswith("sqlite"):
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_reuse"):
            _raw(database, f"DROP TRIGGER {name}")
    else:
        for name in ("audit_log_no_change", "audit_log_no_reuse"):
            _raw(database, f"ALTER TABLE audit_log DISABLE TRIGGER {name}")


@pytest.mark.parametrize(("tamper", "broken_at", "after"), [
    ("change", 3, 2), ("rehash", 4, 3), ("delete", 4, 2), ("insert", 4, 3), ("newest", None, 4),
])
def test_verify_reports_the_first_broken_link(database, tamper, broken_at, after):
    for number in range(5):
        audit.log_event(database, f"user{number}", "download", {"rows": number})
    check = audit.verify_chain(database)
    assert check.intact and check.events == 5
    result = _cli_verify(database)
    assert result.returncode == 0 and "5 events, hash chain intact" in result.stdout
    _lift_triggers(database)
    if tamper == "change":
        _raw(database, "UPDATE audit_log SET actor = 'mallory' WHERE event_id = 3")
    elif tamper == "rehash":  # even with a recomputed hash of its own, the next link breaks
        row = audit.read_events(database).set_index("event_id").loc[3]
        events = pd.read_sql_table("audit_log", store.get_engine(database)).set_index("event_id")
        forged = audit.event_hash(events.loc[3, "prev_hash"], events.loc[3, "occurred_at"],
                                  "mallory", row.action, events.loc[3, "detail"])
        _raw(database, f"UPDATE audit_log SET actor = 'mallory', row_hash = '{forged}' "
                       "WHERE event_id = 3")
    elif tamper == "delete":
        _raw(database, "DELETE FROM audit_log WHERE event_id = 3")
    elif tamper == "insert":
        _raw(database, "UPDATE audit_log SET event_id = 10 + event_id WHERE event_id >= 4")
        _raw(database, "INSERT INTO audit_log(event_id, occurred_at, actor, action, detail, "
                       "prev_hash, row_hash) SELECT 4, occurred_at, 'mallory', action, detail, "
                       "row_hash, row_hash FROM audit_log WHERE event_id = 3")
        broken_at = 4
    else:
        _raw(database, "DELETE FROM audit_log WHERE event_id = 5")
    check = audit.verify_chain(database)
    assert not check.intact
    assert (check.broken_at, check.after) == (broken_at, after), check
    result = _cli_verify(database)
    assert result.returncode == 1
    where = f"event {broken_at}" if broken_at is not None else f"after event {after}"
    assert f"hash chain broken at {where}" in result.stderr


def test_concurrent_writers_keep_one_chain(database):
    """Appends lock the chain's head, so writers in several threads (or workers) never fork
    it."""
    import threading

    store.get_engine(database)
    errors = []

    def write(who):
        try:
            for number in range(15):
                audit.log_event(database, who, "download", {"rows": number})
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    check = audit.verify_chain(database)
    assert check.intact and check.events == 45, check


def test_a_version_4_store_is_chained_on_upgrade(database):
    """Events written before the chain existed get hashes at the upgrade, in event order."""
    engine = sa.create_engine(database)
    with engine.begin() as connection:
        for table in store.metadata.sorted_tables:
            if table.name not in ("audit_log", "record_views"):
                table.create(connection)
        key = "INTEGER" if database.startswith("sqlite") else "SERIAL"
        connection.exec_driver_sql(
            f"CREATE TABLE audit_log (event_id {key} PRIMARY KEY, occurred_at TIMESTAMP NOT "
            "NULL, actor VARCHAR(255) NOT NULL, action VARCHAR(32) NOT NULL, detail TEXT NOT "
            "NULL)")
        triggers = (store._SQLITE_AUDIT_TRIGGERS[:2] if database.startswith("sqlite")
                    else store._POSTGRES_AUDIT_TRIGGERS)
        connection.exec_driver_sql(
            "INSERT INTO audit_log(event_id, occurred_at, actor, action, detail) VALUES "
            "(1, '2026-01-01 10:00:00', 'alice', 'sign_in', '{}'), "
            "(2, '2026-01-01 10:05:00', 'alice', 'download', '{\"rows\": 3}')")
        if not database.startswith("sqlite"):
            connection.exec_driver_sql("SELECT setval('audit_log_event_id_seq', 2)")
        for statement in triggers:  # the append-only triggers of schema 2
            connection.exec_driver_sql(statement if database.startswith("sqlite")
                                       else statement.replace("%", "%%"))
        connection.execute(store.store_meta.insert(), [{"key": "schema_version", "value": "4"}])
    engine.dispose()
    store.dispose_engines()
    assert store.schema_version(database) == store.SCHEMA_VERSION
    assert audit.verify_chain(database).intact
    audit.log_event(database, "bob", "sign_in")
    check = audit.verify_chain(database)
    assert check.intact and check.events == 3
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        _raw(database, "UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        _raw(database, _rewrites(database)[0])


def test_records_served_are_counted_per_session_and_selection(database):
    """The record-grid audit's counting in the store (SQLite and PostgreSQL upserts)."""
    first, second = {"filters": {}, "sort": []}, {"filters": {}, "sort": ["-age"]}
    assert audit.note_records_served(database, "s1", "ana", first, 100, 900) == 1
    assert audit.note_records_served(database, "s1", "ana", first, 100, 900) == 0
    assert audit.note_records_served(database, "s2", "bob", first, 50, 50) == 1  # own session
    # A new selection: its event, and the 100 uncounted rows of the session's first one.
    assert audit.note_records_served(database, "s1", "ana", second, 100, 900) == 2
    events = audit.read_events(database)
    views = events[events.action == "records_view"]
    assert sorted((d["rows_served"], d["rows_served_total"], d["new_selection"])
                  for d in views.detail) == [(50, 50, True), (100, 100, True),
                                             (100, 100, True), (100, 200, False)]
    assert audit.verify_chain(database).intact
