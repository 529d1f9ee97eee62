"""Smoke test of the benchmark harness (``python -m bench``) end to end on 2,000 records.

It checks that every measure is produced with a positive number, not that any target is met:
targets are for 1,000,000 records and are checked by running the benchmark itself.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Every measure of the table; pages add three rows each (cold, warm, response size).
EXPECTED = [
    "import: seconds", "import: rows/s", "import: peak memory (child)",
    "load_records: first load (SQLite, writes snapshot)",
    "load_records: second load (Parquet snapshot)", "load_records: DataFrame memory (deep)",
    "app start to first 200 on /", "app peak memory at first 200",
    "app peak memory after every page update (in-process server)",
    "reference: polars single pass, Overview numbers (US)", "Overview update ÷ reference",
    "compare_procedures(adjust=True), all records, cold",
    "Signals cold (every signal, first request)", "Signals cold: CPU time",
    "Signals warm (same request again)",
]
PAGES = ["/", "/pain", "/complications", "/durations", "/costs", "/comparison", "/quality"]


@pytest.mark.slow
def test_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--records", "2000", "--runs", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "measure" in done.stdout and "met?" in done.stdout

    document = json.loads(out.read_text())
    assert document["records"] == 2000 and document["runs"] == 2
    measures = {row["measure"]: row for row in document["measures"]}
    names = list(EXPECTED)
    for path in PAGES:
        names += [m for m in measures if m.startswith(f"page {path} (")]
        assert sum(m.startswith(f"page {path} (") for m in measures) == 3, path
    for name in names:
        assert name in measures, name
    for row in document["measures"]:
        assert isinstance(row["value"], (int, float)), row
        assert math.isfinite(row["value"]) and row["value"] > 0, row
        assert row["met"] in (True, False, None)
    assert document["raw"]["import"]["accepted"] == 2000
    assert document["raw"]["pages"]["errors"] == []
    assert document["raw"]["signals"]["errors"] == []
