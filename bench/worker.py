"""Measurements that run inside a fresh subprocess: ``python -m bench.worker TASK ...``.

Each task prints one JSON object as the last line of its standard output; the parent
(:mod:`bench.measures`) parses it. Running every task in its own process keeps timings and
peak memory free of what other measures left behind.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from bench import PROJECT_ROOT


def _peak_rss_self() -> int:
    """Peak resident memory of this process in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def task_import(csv: str, database: str) -> dict:
    """Run the real import CLI as the only child of this wrapper process, so that
    ``RUSAGE_CHILDREN`` afterwards is that child's peak memory and nothing else's."""
    command = [sys.executable, "-m", "data", "--database", database, "import", csv, "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    accounting = json.loads(done.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"seconds": seconds, "rows_read": accounting["rows_read"],
            "accepted": accounting["accepted"], "peak_rss_bytes": peak}


def task_load(database: str) -> dict:
    """``data.load_records()`` once in this process: seconds, frame memory, peak RSS."""
    from data import load_records

    start = time.perf_counter()
    frame = load_records(database)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(frame),
            "frame_bytes": int(frame.memory_usage(deep=True).sum()),
            "peak_rss_bytes": _peak_rss_self()}


def task_compare(database: str, repeat: int) -> dict:
    """``analysis.compare_procedures(records, adjust=True)`` on all records (load not timed)."""
    from analysis import compare_procedures
    from data import load_records

    records = load_records(database)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        compare_procedures(records, adjust=True)
        times.append(time.perf_counter() - start)
    return {"seconds": times, "rows": len(records), "peak_rss_bytes": _peak_rss_self()}


def task_pages(database: str, runs: int, pages: list[str] | None) -> dict:
    from bench.pages import measure_pages

    result = measure_pages(database, runs, pages)
    result["peak_rss_bytes"] = _peak_rss_self()
    return result


def task_signals(database: str) -> dict:
    from bench.pages import measure_signals

    result = measure_signals(database)
    result["peak_rss_bytes"] = _peak_rss_self()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("import")
    p.add_argument("csv")
    p.add_argument("database")
    p = sub.add_parser("load")
    p.add_argument("database")
    p = sub.add_parser("compare")
    p.add_argument("database")
    p.add_argument("--repeat", type=int, default=2)
    p = sub.add_parser("signals")
    p.add_argument("database")
    p = sub.add_parser("pages")
    p.add_argument("database")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--pages", nargs="*")
    args = parser.parse_args(argv)
    if args.task == "import":
        result = task_import(args.csv, args.database)
    elif args.task == "load":
        result = task_load(args.database)
    elif args.task == "compare":
        result = task_compare(args.database, args.repeat)
    elif args.task == "signals":
        result = task_signals(args.database)
    else:
        result = task_pages(args.database, args.runs, args.pages)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
