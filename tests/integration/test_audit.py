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
