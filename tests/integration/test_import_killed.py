"""An import killed with SIGKILL while it writes leaves the store exactly as before.

Stronger than a timed kill: the import is killed only once its transaction is seen writing
records (PostgreSQL: it holds a write lock on ``records``; SQLite: uncommitted pages are
spilling into the write-ahead log). "Exactly as before" is every row of every table of the
store — records, import batches, quarantined rows, the audit log, store metadata, and any table
added later — compared before and after, on SQLite and PostgreSQL. The store must then accept
the next import as usual.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from data import import_file, store
from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow
ROWS = 300_000
WAL_SPILL_BYTES = 4 * 2**20  # a few MB of uncommitted pages: records are being written


def snapshot(database: str) -> dict[str, list[tuple]]:
    """Every row of every table of the store, in a canonical order."""
    store.dispose_engines()
    engine = sa.create_engine(database)
    try:
        with engine.connect() as connection:
            tables = sorted(sa.inspect(connection).get_table_names())
            return {name: sorted((tuple(row) for row in connection.execute(
                sa.text(f'SELECT * FROM "{name}"'))), key=repr) for name in tables}
    finally:
        engine.dispose()


def _big_export(path: Path, rows: int) -> None:
    frame = pd.DataFrame({
        "record_id": [f"K-{i:07d}" for i in range(rows)], "facility_id": "F1", "country": "US",
        "procedure": "VP", "procedure_date": "2024-01-01", "age": 70, "sex": "F",
        "etiology": "osteoporotic", "levels_treated": 1, "pain_baseline": 8,
        "cement_leakage": "N", "pulmonary_embolism": "N", "adjacent_fracture": "N",
    })
    frame.loc[frame.index % 1000 == 7, "age"] = 17  # some rejected rows for the quarantine
    frame.to_csv(path, index=False)


def _writing_records(database: str, probe: sa.Engine | None) -> bool:
    """Whether another session's transaction is writing records right now."""
    if probe is not None:  # PostgreSQL: a write lock on records held by someone else
        with probe.connect() as connection:
            return bool(connection.execute(sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'records' AND l.mode = 'RowExclusiveLock' "
                "AND l.granted AND l.pid <> pg_backend_pid()")).scalar())
    wal = Path(sa.make_url(database).database + "-wal")
    return wal.exists() and wal.stat().st_size > WAL_SPILL_BYTES


def test_sigkill_midway_leaves_every_table_as_before(database, tmp_path):
    # A store with history: accepted, rejected and conflicting rows, two batches, audit events.
    import_file(FIXTURES / "exports" / "nhs_export.xlsx", database)
    import_file(FIXTURES / "exports" / "messy_aliases.csv", database)
    before = snapshot(database)
    assert before["records"] and before["rejected_rows"] and len(before["import_batches"]) == 2
    if "audit_log" in before:
        assert before["audit_log"]  # the imports were audited

    path = tmp_path / "big.csv"
    _big_export(path, ROWS)
    probe = sa.create_engine(database) if database.startswith("postgresql") else None
    process = subprocess.Popen([sys.executable, "-m", "data", "import", str(path),
                                "--database", database], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not _writing_records(database, probe):
            assert process.poll() is None, (
                f"the import ended ({process.returncode}) before it was seen writing: "
                f"{process.stderr.read()[-2000:]!r}")
            assert time.monotonic() < deadline, "the import never started writing records"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the write, not at its first row
        assert process.poll() is None, "the import finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
        if probe is not None:
            probe.dispose()

    assert snapshot(database) == before
    # The store is fine afterwards: the next import goes through as the third batch (its id
    # may skip one on PostgreSQL, whose sequences do not roll back).
    store.dispose_engines()
    result = import_file(FIXTURES / "exports" / "us_export.csv", database)
    assert result.batch_id is not None and result.accepted > 0
    assert len(snapshot(database)["import_batches"]) == 3
