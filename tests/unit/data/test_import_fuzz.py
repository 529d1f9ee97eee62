"""Fuzzing the importer through its command line (``python -m data import``, in-process).

Random bytes, ragged rows, huge cells (beyond Python csv's default 131,072-character limit),
UTF-16/UTF-32/Latin-1/mixed encodings, spreadsheet formulas, HTML/JS in text fields, empty and
heading-only files, and garbage with .xlsx/.parquet names. Whatever the file, the command must
end with exit status 0, 1 or 2 and a clear message, never a traceback, and every file that is
not refused must balance: ``rows_read = accepted + rejected + duplicates + conflicts``, in the
printed accounting, in the stored batch and in the audit log.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import re
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data import audit, store
from data.__main__ import main
from tests.conftest import FIXTURES

BASE = list(csv.reader(io.StringIO((FIXTURES / "exports" / "us_export.csv").read_text("utf-8"))))
HEADINGS = BASE[0]
ROWS = [row for row in BASE[1:] if row]
FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NASTY_CELLS = [
    "=HYPERLINK(\"http://x.example\",\"click\")", "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)",
    "\tleading tab", "\rleading cr", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "\"quoted, with comma\"", "a\nb", "ünïcødé", "中文", "\u202eRTL", "", "NA", "-", "1e309",
    "9" * 400, "x" * 200_000,  # beyond csv's default field size limit
]


@pytest.fixture(scope="module")
def workspace():
    """A store and a scratch folder shared by the examples of this module."""
    with tempfile.TemporaryDirectory() as folder:
        store.dispose_engines()
        yield Path(folder), f"sqlite:///{Path(folder) / 'fuzz.db'}"
        store.dispose_engines()


def run_import(database: str, path: Path, as_json: bool = True) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        # In this process (--no-limits): a child process per example would cost seconds each;
        # the limits and the child process are tested in tests/integration/test_import_limits.
        status = main(["--database", database, "import", str(path), "--no-limits"]
                      + (["--json"] if as_json else []))
    return status, out.getvalue(), err.getvalue()


SUMMARY = re.compile(r"^(?P<file>.+): (?P<rows_read>\d+) rows read → (?P<accepted>\d+) accepted, "
                     r"(?P<rejected>\d+) rejected, (?P<duplicates>\d+) duplicates, "
                     r"(?P<conflicts>\d+) conflicts", re.MULTILINE)


def parse_text(status: int, out: str, err: str, path: Path) -> dict:
    """The human-readable output in the shape of the JSON one (the batch id is not printed for
    an unchanged re-import)."""
    if status == 2:
        assert out == "" and err.startswith("error: ") and err.endswith("\n"), (out, err)
        return {"refused": True, "error": err[len("error: "):].rstrip("\n")}
    match = SUMMARY.search(out)
    assert match is not None and match.group("file") == path.name, out
    outcome = {key: int(value) for key, value in match.groupdict().items() if key != "file"}
    batch = re.search(r"^  batch (\d+)", out, re.MULTILINE)
    outcome["batch_id"] = int(batch.group(1)) if batch else None
    return outcome


def check(database: str, path: Path, as_json: bool = True) -> dict:
    """Import ``path`` and assert the command's contract; return the printed outcome."""
    before = _last_event_id(database)
    status, out, err = run_import(database, path, as_json)
    assert "Traceback" not in out + err
    assert status in (0, 1, 2), (status, out, err)
    outcome = json.loads(out) if as_json else parse_text(status, out, err, path)
    if outcome.get("refused"):
        assert status == 2
        message = outcome["error"]
        assert message.startswith(str(path)) and len(message) > len(str(path)) + 10, message
        assert "failed unexpectedly" not in message, message  # the CLI's last resort was needed
        assert "\x00" not in message
        events = audit.read_events(database, limit=1)
        assert events.event_id.iloc[0] > before and events.detail.iloc[0]["status"] == "refused"
        return outcome
    assert outcome["rows_read"] == (outcome["accepted"] + outcome["rejected"]
                                    + outcome["duplicates"] + outcome["conflicts"]), outcome
    assert status == (1 if outcome["rejected"] or outcome["conflicts"] else 0)
    event = audit.read_events(database, limit=1).iloc[0]
    assert event.event_id > before and event.action == "import"
    assert {key: event.detail[key] for key in ("rows_read", "accepted", "rejected",
                                               "duplicates", "conflicts")} == {
        key: outcome[key] for key in ("rows_read", "accepted", "rejected", "duplicates",
                                      "conflicts")}
    if outcome["batch_id"] is not None:
        with store.get_engine(database).connect() as connection:
            batch = connection.execute(sa.select(store.import_batches).where(
                store.import_batches.c.batch_id == outcome["batch_id"])).mappings().one()
        assert batch["status"] == "complete"
        assert batch["rows_read"] == outcome["rows_read"]
        assert batch["rows_read"] == (batch["accepted"] + batch["rejected"] + batch["duplicates"]
                                      + batch["conflicts"])
    return outcome


def _last_event_id(database: str) -> int:
    events = audit.read_events(database, limit=1)
    return int(events.event_id.iloc[0]) if len(events) else 0


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def _write(folder: Path, suffix: str, payload: bytes) -> Path:
    with tempfile.NamedTemporaryFile(dir=folder, suffix=suffix, delete=False) as handle:
        handle.write(payload)
    return Path(handle.name)


# ----------------------------------------------------------------------------------------------
# Strategies


@st.composite
def mutated_exports(draw) -> tuple[str, bytes]:
    """The US example export with nasty cells, ragged rows, shuffled headings and an encoding."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    headings = list(HEADINGS)
    if draw(st.integers(0, 3)) == 0:
        rng.shuffle(headings)  # cells then land in the wrong columns: rules must catch it
    rows = [list(row) for row in draw(st.lists(st.sampled_from(ROWS), max_size=12))]
    for row in rows:
        if rng.random() < 0.7:  # a new record_id, so that some rows are accepted, not duplicates
            row[HEADINGS.index("case_id")] = f"FZ-{rng.randrange(10**9)}"
        for _ in range(draw(st.integers(0, 3))):
            row[rng.randrange(len(row))] = draw(st.sampled_from(NASTY_CELLS) | st.text(max_size=30))
        cut = draw(st.sampled_from([0, 0, 0, -1, -5, 1, 3]))  # ragged: missing or extra cells
        if cut < 0:
            del row[cut:]
        else:
            row.extend(["extra"] * cut)
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(
        ["\n", "\r\n", "\r"])))
    writer.writerow(headings)
    writer.writerows(rows)
    text = buffer.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32",
                                     "latin-1", "cp1252", "mixed"]))
    if encoding == "mixed":  # UTF-8 with Latin-1 bytes spliced in
        payload = text.encode("utf-8") + "Zürich,Ærø\n".encode("latin-1") + text[:200].encode()
    else:
        payload = text.encode(encoding, errors="replace")
    suffix = ".tsv" if delimiter == "\t" and draw(st.booleans()) else draw(
        st.sampled_from([".csv", ".txt"]))
    return suffix, payload


suffixes = st.sampled_from([".csv", ".tsv", ".txt", ".xlsx", ".parquet"])


# ----------------------------------------------------------------------------------------------
# Tests


@FUZZ
@given(suffix=suffixes, payload=st.binary(max_size=4096), as_json=st.booleans())
def test_random_bytes_never_crash(workspace, suffix, payload, as_json):
    folder, database = workspace
    check(database, _write(folder, suffix, payload), as_json)


@FUZZ
@given(export=mutated_exports(), as_json=st.booleans())
def test_mutated_exports_balance(workspace, export, as_json):
    folder, database = workspace
    suffix, payload = export
    check(database, _write(folder, suffix, payload), as_json)


@FUZZ
@given(prefix=st.sampled_from([b"PK\x03\x04", b"PAR1", b""]), body=st.binary(max_size=2048))
def test_binary_garbage_named_as_workbooks_or_parquet(workspace, prefix, body):
    folder, database = workspace
    for suffix in (".xlsx", ".parquet"):
        payload = prefix + body + (b"PAR1" if suffix == ".parquet" else b"")
        outcome = check(database, _write(folder, suffix, payload))
        assert outcome.get("refused"), outcome  # garbage is never a readable workbook


@pytest.mark.parametrize("payload, expected", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    ("\ufeff".encode(), "empty"),
    (b"\x00\x01\x02binary", "NUL"),
    (",".join(HEADINGS).encode() + b"\n", None),  # heading row only: 0 rows, balanced
    ((",".join(HEADINGS) + "\n").encode("utf-16"), None),  # UTF-16 with its byte-order mark
    (("x" * 200_000 + "\n1\n").encode(), "heading"),  # a giant first line
    (("a," * 5 + "\n").encode() * 3, "required column"),
])
def test_edge_files(workspace, payload, expected):
    folder, database = workspace
    outcome = check(database, _write(folder, ".csv", payload))
    if expected is None:
        assert outcome["rows_read"] == 0 and not outcome.get("refused")
    else:
        assert outcome.get("refused") and expected in outcome["error"], outcome


def test_huge_text_cells_are_rejected_not_stored(workspace):
    """A 200,000-character region (beyond csv's default limit) rejects its row only."""
    folder, database = workspace
    first = list(ROWS[0])
    first[0] = "FUZZ-HUGE-1"
    first[HEADINGS.index("census_region")] = "y" * 200_000
    second = list(ROWS[1])
    second[0] = "FUZZ-HUGE-2"
    outcome = check(database, _write(folder, ".csv", _csv_bytes([HEADINGS, first, second])))
    assert outcome["rows_read"] == 2 and outcome["rejected"] == 1
    assert outcome["reasons"].get("region: max_length") == 1
    assert outcome["accepted"] + outcome["duplicates"] + outcome["conflicts"] == 1


def test_formulas_and_markup_are_stored_as_plain_text(workspace):
    """Text fields keep formulas and markup verbatim (they are neutralised on export and
    escaped on display, not altered on import)."""
    folder, database = workspace
    row = list(ROWS[0])
    row[0] = "FUZZ-TEXT-1"
    row[HEADINGS.index("census_region")] = "<img src=x onerror=alert(1)>"
    row[HEADINGS.index("hospital")] = "=1+1"
    outcome = check(database, _write(folder, ".csv", _csv_bytes([HEADINGS, row])))
    assert outcome["accepted"] == 1, outcome
    with store.get_engine(database).connect() as connection:
        stored = connection.execute(sa.select(store.records.c.region, store.records.c.facility_id)
                                    .where(store.records.c.record_id == "FUZZ-TEXT-1")).one()
    assert tuple(stored) == ("<img src=x onerror=alert(1)>", "=1+1")


def test_parquet_with_odd_column_types(workspace):
    """Nested, binary and null-typed Parquet columns are read as text or rejected, never crash."""
    folder, database = workspace
    frame = pd.read_csv(FIXTURES / "exports" / "us_export.csv", dtype=str, keep_default_na=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("census_region"), "census_region",
                             pa.array([[1, 2]] * len(frame)))
    table = table.append_column("blob", pa.array([b"\x00\xff"] * len(frame)))
    table = table.append_column("nothing", pa.nulls(len(frame)))
    path = folder / "odd.parquet"
    pq.write_table(table, path)
    check(database, path)


def test_parquet_dates_of_any_range_and_zone(workspace):
    """Dates outside pandas' nanosecond range and zoned timestamps are read as dates."""
    import datetime as dt

    folder, database = workspace
    frame = pd.read_csv(FIXTURES / "exports" / "us_export.csv", dtype=str, keep_default_na=False)
    frame["case_id"] = [f"PQ-DATE-{i}" for i in range(len(frame))]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    dates = [dt.date(1, 1, 1)] + [dt.date(2024, 5, 6)] * (len(frame) - 1)
    table = table.set_column(table.schema.get_field_index("date"), "date", pa.array(dates))
    table = table.append_column("zoned", pa.array(
        [dt.datetime(2024, 5, 6, 23, 0)] * len(frame), pa.timestamp("us", tz="Europe/Berlin")))
    path = folder / "dates.parquet"
    pq.write_table(table, path)
    outcome = check(database, path)
    assert outcome["reasons"].get("procedure_date: date") == 1, outcome  # year 1: a rule
    assert outcome["accepted"] >= 1
