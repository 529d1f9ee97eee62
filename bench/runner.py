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


#: The measures after the import (which every run does: the others read its store).
MEASURES = ("load", "app", "pages", "signals", "compare")


def run(records: int, runs: int, seed: int, json_out: str | None = None,
        pages: list[str] | None = None, only: list[str] | None = None) -> int:
    started = time.perf_counter()
    chosen = [m for m in MEASURES if not only or m in only]
    csv = measures.demo_csv(records, seed, log=_log)
    workdir = Path(tempfile.mkdtemp(prefix="va-bench-"))
    database = workdir / "bench.db"
    raw: dict = {"records": records, "runs": runs, "seed": seed,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()}}
    steps = len(chosen) + 1
    try:
        _log(f"1/{steps} import …")
        raw["import"] = measures.measure_import(workdir, csv, database)
        if raw["import"]["accepted"] != records:
            _log(f"warning: {raw['import']['accepted']:,} of {records:,} rows accepted")
        for step, name in enumerate(chosen, start=2):
            _log(f"{step}/{steps} {name} …")
            if name == "load":
                raw["load"] = measures.measure_load(workdir, database)
            elif name == "app":
                raw["app_start"] = measures.measure_app_start(workdir, database)
            elif name == "pages":
                raw["pages"] = measures.measure_pages(workdir, database, runs, pages)
            elif name == "signals":
                raw["signals"] = measures.measure_signals(workdir, database)
            else:
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
