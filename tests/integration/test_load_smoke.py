"""A short run of the load test (``python -m bench.load``) end to end: store, gunicorn with two
workers, sign-in when available, four users for five seconds. It checks the harness and that
the app answers every request under concurrency; the full run (50 users, 60 s, 100,000
records) is in ``bench/README.md``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
USERS, SECONDS = 4, 5


def test_load_smoke_run_has_no_errors(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--users", str(USERS), "--seconds", str(SECONDS),
         "--records", "2000", "--workers", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    overall = report["overall"]
    assert overall["errors"] == 0
    assert 0 < overall["p50_ms"] <= overall["p95_ms"] <= overall["p99_ms"] <= overall["max_ms"]
    # Plausible: every user did several actions of several requests each, and no more requests
    # than one per millisecond of the run (a loop that skips its work would show here).
    assert USERS * 10 <= overall["requests"] <= USERS * SECONDS * 1000
    assert report["elapsed_seconds"] >= SECONDS
    assert overall["per_second"] == pytest.approx(overall["requests"] / report["elapsed_seconds"])
    kinds = report["kinds"]
    assert {"GET page", "GET /_dash-layout", "GET /_dash-dependencies", "page content",
            "filters (sync)", "match count"} <= set(kinds)
    assert sum(row["requests"] for row in kinds.values()
               if row is not kinds.get("sign-in")) == overall["requests"]
    assert any(kind.startswith("callback /") for kind in kinds)
    for row in kinds.values():
        assert row["errors"] == 0 and row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert set(report["actions"]) == {"page load (all requests)",
                                      "filter change (whole page update)"}
    # The table is printed too.
    assert "all requests" in done.stdout and "p99 ms" in done.stdout
