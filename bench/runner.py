"""One benchmark run: data, fresh store, every measure in order, then the table."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import measures, report


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(records: int, runs: int, seed: int, json_out: str | None = None,
        pages: list[str] | None = None) -> int:
    started = time.perf_counter()
    csv = measures.demo_csv(records, seed, log=_log)
    workdir = Path(tempfile.mkdtemp(prefix="va-bench-"))
    database = workdir / "bench.db"
    raw: dict = {"records": records, "runs": runs, "seed": seed,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()}}
    try:
        _log("1/5 import …")
        raw["import"] = measures.measure_import(workdir, csv, database)
        if raw["import"]["accepted"] != records:
            _log(f"warning: {raw['import']['accepted']:,} of {records:,} rows accepted")
        _log("2/5 load_records …")
        raw["load"] = measures.measure_load(workdir, database)
        _log("3/5 app start …")
        raw["app_start"] = measures.measure_app_start(workdir, database)
        _log("4/5 pages and reference …")
        raw["pages"] = measures.measure_pages(workdir, database, runs, pages)
        _log("5/5 compare_procedures(adjust=True) …")
        raw["compare"] = measures.measure_compare(workdir, database)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw["total_seconds"] = time.perf_counter() - started
    table = report.rows(raw)
    print(report.render(table, raw))
    print(f"(benchmark took {raw['total_seconds']:.0f} s)")
    if json_out:
        report.write_json(json_out, table, raw)
        _log(f"JSON written to {json_out}")
    return 0
