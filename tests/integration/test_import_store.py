"""Import into a real store, on SQLite and PostgreSQL: accounting, quarantine, duplicates,
conflicts, re-imports, dtypes of load_records."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from data import ImportRefused, import_file, load_records, store
from data.dictionary import FIELDS
from tests.conftest import FIXTURES

EXPORTS = FIXTURES / "exports"


def counts(result) -> tuple[int, int, int, int, int]:
    return (result.rows_read, result.accepted, result.rejected, result.duplicates, result.conflicts)


def quarantined(database: str, batch_id: int) -> list[dict]:
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(sa.select(store.rejected_rows).where(
            store.rejected_rows.c.batch_id == batch_id).order_by(store.rejected_rows.c.row_number))
        return [dict(row._mapping) for row in rows]


def test_messy_export_is_fully_accounted(database):
    result = import_file(EXPORTS / "messy_aliases.csv", database)
    # 11 data rows: 2 good, 7 broken (see the Comments column of the file), 1 exact repeat of
    # row 2, 1 repeat of R-0002 with different content.
    assert counts(result) == (11, 2, 7, 1, 1)
    assert result.balanced
    assert result.top_coded_ages == 1
    assert result.ignored_columns == ["Comments"]
    assert result.reasons["age: range"] == 1
    assert result.reasons["(row): field_count"] == 1
    rows = quarantined(database, result.batch_id)
    assert [row["row_number"] for row in rows] == [4, 5, 6, 7, 8, 9, 11, 12]
    by_row = {row["row_number"]: json.loads(row["reasons"]) for row in rows}
    assert {(r["field"], r["rule"]) for r in by_row[5]} == {
        ("pain_month1", "pain_beyond_followup"), ("currency", "currency_required")}
    assert by_row[7][0]["value"] == "31.02.2024"
    assert rows[6]["outcome"] == "conflict"
    stored = load_records(database)
    assert sorted(stored.record_id) == ["R-0001", "R-0002"]
    first = stored.set_index("record_id").loc["R-0001"]
    assert first.procedure == "kyphoplasty" and first.cost == 4200.5 and first.duration_min == 41.5
    assert first.procedure_date == pd.Timestamp("2024-04-03")
    assert stored.set_index("record_id").loc["R-0002", "age"] == 90  # 93 top-coded


def test_same_file_twice_changes_nothing(database):
    first = import_file(EXPORTS / "messy_aliases.csv", database)
    before = load_records(database)
    again = import_file(EXPORTS / "messy_aliases.csv", database)
    assert again.batch_id is None and again.identical_to_batch == first.batch_id
    assert counts(again) == (11, 0, 7, 3, 1)
    pd.testing.assert_frame_equal(load_records(database), before)
    with store.get_engine(database).connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(store.import_batches)).scalar() == 1
        assert connection.execute(sa.select(sa.func.count()).select_from(store.rejected_rows)).scalar() == 8


def test_conflicts_are_kept_unless_replace(database, tmp_path):
    import_file(EXPORTS / "messy_aliases.csv", database)
    changed = tmp_path / "changed.csv"
    changed.write_text(
        "record_id,facility_id,country,procedure,procedure_date,age,sex,etiology,levels_treated,"
        "pain_baseline,cement_leakage,pulmonary_embolism,adjacent_fracture\n"
        "R-0001,Hospital A,DE,KP,2024-04-03,79,F,osteoporotic,1,8,N,N,N\n", encoding="utf-8")
    kept = import_file(changed, database)
    assert counts(kept) == (1, 0, 0, 0, 1)
    assert load_records(database).set_index("record_id").loc["R-0001", "age"] == 78
    replaced = import_file(changed, database, replace=True)
    assert counts(replaced) == (1, 1, 0, 0, 0) and replaced.replaced == 1
    assert load_records(database).set_index("record_id").loc["R-0001", "age"] == 79
    assert len(load_records(database)) == 2


def test_us_export_identifiers_and_cpt(database):
    result = import_file(EXPORTS / "us_export.csv", database)
    assert counts(result) == (8, 4, 4, 0, 0)
    rows = {row["row_number"]: row for row in quarantined(database, result.batch_id)}
    # Identifier-looking values reject their rows and are never stored, not even in quarantine.
    assert json.loads(rows[6]["reasons"])[0]["rule"] == "identifier_pattern"
    assert "jane.doe" not in rows[6]["raw_values"] and "jane.doe" not in rows[6]["reasons"]
    assert "123-45-6789" not in rows[7]["raw_values"]
    stored = load_records(database).set_index("record_id")
    assert stored.loc["US-1001", "procedure"] == "kyphoplasty"  # from CPT 22514 alone
    assert stored.loc["US-1007", "procedure"] == "vertebroplasty"  # from CPT 22511
    assert stored.loc["US-1002", "country"] == "US"  # "USA"
    assert stored.loc["US-1002", "cost"] == 9837.0  # "$9,837"
    assert stored.loc["US-1003", "age"] == 90
    assert stored.loc["US-1001", "procedure_date"] == pd.Timestamp("2024-01-15")
    everything = " ".join(map(str, load_records(database).astype(str).to_numpy().ravel()))
    assert "@" not in everything


@pytest.mark.parametrize(("name", "expected"), [
    ("latin1_tab.tsv", (3, 2, 1, 0, 0)),
    ("nhs_export.xlsx", (4, 3, 1, 0, 0)),
    ("india_export.parquet", (3, 2, 1, 0, 0)),
])
def test_other_formats(database, name, expected):
    result = import_file(EXPORTS / name, database)
    assert counts(result) == expected


def test_latin1_text_survives(database):
    result = import_file(EXPORTS / "latin1_tab.tsv", database)
    rows = quarantined(database, result.batch_id)
    assert json.loads(rows[0]["reasons"])[0]["value"] == "ostéoporose"


def test_identifier_columns_refuse_the_file(database):
    with pytest.raises(ImportRefused) as refused:
        import_file(EXPORTS / "phi_columns.csv", database)
    message = str(refused.value)
    assert "'Patient Name'" in message and "'DOB'" in message
    assert "Jane" not in message and "1940" not in message  # never the values
    assert store.record_count(database) == 0


def test_missing_required_column_refuses_the_file(database, tmp_path):
    path = tmp_path / "no_age.csv"
    path.write_text("record_id,facility_id,country,procedure,procedure_date\nA,F,US,VP,2024-01-01\n")
    with pytest.raises(ImportRefused, match="required column\\(s\\) missing: age, sex"):
        import_file(path, database)


def test_load_records_dtypes(database):
    import_file(EXPORTS / "us_export.csv", database)
    frame = load_records(database)
    assert list(frame.columns) == [field.name for field in FIELDS]
    for field in FIELDS:
        assert str(frame[field.name].dtype) == field.pandas_dtype, field.name
    assert list(frame["procedure"].cat.categories) == ["vertebroplasty", "kyphoplasty"]


def test_schema_version_recorded_and_newer_store_refused(database):
    assert store.schema_version(database) == store.SCHEMA_VERSION
    with store.get_engine(database).begin() as connection:
        connection.execute(store.store_meta.update().where(store.store_meta.c.key == "schema_version")
                           .values(value=str(store.SCHEMA_VERSION + 1)))
    store.dispose_engines()
    with pytest.raises(store.StoreError, match="newer than this program"):
        store.get_engine(database)


def test_a_foreign_database_is_refused(sqlite_database):
    engine = sa.create_engine(sqlite_database)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE patients (id integer)")
    engine.dispose()
    with pytest.raises(store.StoreError, match="not a vertebral augmentation store"):
        store.get_engine(sqlite_database)


def test_an_older_store_is_upgraded(sqlite_database, monkeypatch):
    store.get_engine(sqlite_database)
    store.dispose_engines()
    applied = []
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    monkeypatch.setitem(store.MIGRATIONS, store.SCHEMA_VERSION, lambda connection: applied.append(1))
    assert store.schema_version(sqlite_database) == store.SCHEMA_VERSION
    assert applied == [1]


def test_fast_and_dbapi_readers_agree(database):
    """The fast paths (ADBC on PostgreSQL, the Parquet snapshot on SQLite) and the DB-API
    reader return identical frames, and a new import is never answered from an old snapshot."""
    from data import demo_records, import_dataframe
    from data.load import _read_adbc_postgres, snapshot_path

    import_dataframe(demo_records(1500, seed=2), "demo", database, synthetic=True)
    import_file(EXPORTS / "us_export.csv", database)
    url = store.database_url(database)
    if url.startswith("postgresql"):
        assert _read_adbc_postgres(url).num_rows == 1500 + 4  # no silent fallback
    first = load_records(database)
    pd.testing.assert_frame_equal(first, load_records(database, fast=False))
    snapshot = snapshot_path(url, store.data_version(url))
    if snapshot is not None:
        assert snapshot.exists()
        pd.testing.assert_frame_equal(load_records(database), first)  # now from the snapshot
    import_file(EXPORTS / "nhs_export.xlsx", database)
    second = load_records(database)
    assert len(second) == len(first) + 3
    pd.testing.assert_frame_equal(second, load_records(database, fast=False))
    if snapshot is not None:
        assert not snapshot.exists()  # the old version's snapshot was removed
