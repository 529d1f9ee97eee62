"""The data CLI through a real subprocess: exit statuses, JSON, quarantine export, dictionary,
and an import killed midway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from data import load_records, store
from data.dictionary import dictionary_markdown
from tests.conftest import FIXTURES, ROOT

EXPORTS = FIXTURES / "exports"


def run(*args: str, database: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data", *args, "--database", database],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_json_and_exit_statuses(database):
    done = run("import", str(EXPORTS / "messy_aliases.csv"), "--json", database=database)
    assert done.returncode == 1, done.stderr  # some rows rejected
    report = json.loads(done.stdout)
    assert {key: report[key] for key in ("rows_read", "accepted", "rejected", "duplicates",
                                         "conflicts", "top_coded_ages")} == {
        "rows_read": 11, "accepted": 2, "rejected": 7, "duplicates": 1, "conflicts": 1,
        "top_coded_ages": 1}
    assert isinstance(report["batch_id"], int) and report["reasons"]["age: range"] == 1

    clean = run("import", str(EXPORTS / "nhs_export.xlsx"), database=database)
    assert clean.returncode == 1 and "4 rows read → 3 accepted" in clean.stdout


def test_fully_valid_file_exits_zero(database, tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("record_id,facility_id,country,procedure,procedure_date,age,sex,etiology,"
                    "levels_treated,pain_baseline,cement_leakage,pulmonary_embolism,adjacent_fracture\n"
                    "OK-1,F1,US,VP,2024-01-01,80,F,osteoporotic,1,8,N,N,N\n")
    done = run("import", str(path), database=database)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rows read → 1 accepted, 0 rejected, 0 duplicates, 0 conflicts" in done.stdout


def test_identifier_columns_exit_2_and_name_columns_only(database):
    done = run("import", str(EXPORTS / "phi_columns.csv"), database=database)
    assert done.returncode == 2
    assert "phi_columns.csv" in done.stderr and "'Patient Name'" in done.stderr
    assert "Jane Doe" not in done.stderr + done.stdout and "1940-01-01" not in done.stderr + done.stdout
    assert store.record_count(database) == 0


def test_messages_name_file_row_column_rule(database):
    done = run("import", str(EXPORTS / "messy_aliases.csv"), database=database)
    assert "messy_aliases.csv" in done.stdout
    assert "row 4, column age, rule range (value '17')" in done.stdout
    assert "Traceback" not in done.stderr


def test_rejected_export_round_trip(database, tmp_path):
    run("import", str(EXPORTS / "messy_aliases.csv"), database=database)
    out = tmp_path / "rejected.csv"
    done = run("rejected", "1", "--csv", str(out), database=database)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out, dtype=str)
    assert list(table["row"].astype(int)) == [4, 5, 6, 7, 8, 9, 11, 12]
    assert table.loc[0, "reasons"] == "age: range (17)"
    # Corrected rows import cleanly: the quarantine file is an import file.
    table.loc[0, "age"] = "67"
    table.iloc[[0]].to_csv(tmp_path / "fixed.csv", index=False)
    fixed = run("import", str(tmp_path / "fixed.csv"), "--json", database=database)
    assert json.loads(fixed.stdout)["accepted"] == 1
    missing = run("rejected", "99", "--csv", str(out), database=database)
    assert missing.returncode == 2 and "no import batch 99" in missing.stderr


def test_dictionary_command_prints_the_docs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "data", "dictionary"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert done.stdout.rstrip("\n") == dictionary_markdown().rstrip("\n")


def test_unreachable_database_is_a_clear_error():
    done = subprocess.run([sys.executable, "-m", "data", "info", "--database",
                           "postgresql+psycopg://nobody:secret@127.0.0.1:9/none"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot open the database" in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr  # the password is hidden


def _big_export(path, rows: int) -> None:
    frame = pd.DataFrame({
        "record_id": [f"K-{i:07d}" for i in range(rows)], "facility_id": "F1", "country": "US",
        "procedure": "VP", "procedure_date": "2024-01-01", "age": 70, "sex": "F",
        "etiology": "osteoporotic", "levels_treated": 1, "pain_baseline": 8,
        "cement_leakage": "N", "pulmonary_embolism": "N", "adjacent_fracture": "N",
    })
    frame.to_csv(path, index=False)


@pytest.mark.slow
def test_import_killed_midway_leaves_nothing(database, tmp_path):
    run("import", str(EXPORTS / "nhs_export.xlsx"), database=database)
    before = load_records(database)
    path = tmp_path / "big.csv"
    _big_export(path, 400_000)
    process = subprocess.Popen([sys.executable, "-m", "data", "import", str(path), "--database",
                                database], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(4.0)
    assert process.poll() is None, "the import finished before it could be killed; use a bigger file"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    store.dispose_engines()
    pd.testing.assert_frame_equal(load_records(database), before)
    import sqlalchemy as sa

    with store.get_engine(database).connect() as connection:
        batches = connection.execute(sa.select(store.import_batches.c.batch_id)).scalars().all()
    assert batches == [1]
