"""The measures, each in its own subprocess (see :mod:`bench.worker`), and the demo-data cache."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import CACHE_DIR, DEFAULT_SEED, PROJECT_ROOT

MB = 2**20


def _env(workdir: Path) -> dict[str, str]:
    """Environment of every child: the result cache in the run's temporary folder (never the
    project's ``instance/cache``), so nothing from an earlier run answers a cold request."""
    env = dict(os.environ)
    env["VA_CACHE_DIR"] = str(workdir / "cache")
    env.pop("DATABASE_URL", None)
    return env


def _worker(workdir: Path, *args: str, timeout: float | None = None) -> dict:
    command = [sys.executable, "-m", "bench.worker", *args]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=_env(workdir), capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def demo_csv(records: int, seed: int = DEFAULT_SEED, log=print) -> Path:
    """The N-record demo CSV under ``bench/.cache/``, generated once by the data CLI."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "" if seed == DEFAULT_SEED else f"_seed{seed}"
    path = CACHE_DIR / f"demo_{records}{suffix}.csv"
    if path.exists():
        log(f"demo data: cached {path.relative_to(PROJECT_ROOT)}")
        return path
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp.csv")
    log(f"demo data: generating {records:,} records into {path.relative_to(PROJECT_ROOT)} …")
    start = time.perf_counter()
    command = [sys.executable, "-m", "data", "demo", "--records", str(records), "--seed", str(seed),
               "--output", str(temporary)]
    try:
        subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True)
        os.replace(temporary, path)  # an interrupted run never leaves a partial cache
    finally:
        temporary.unlink(missing_ok=True)
    log(f"demo data: generated in {time.perf_counter() - start:.1f} s")
    return path


def measure_import(workdir: Path, csv: Path, database: Path) -> dict:
    """Import through ``python -m data import`` in a wrapper process (peak RSS of the child)."""
    result = _worker(workdir, "import", str(csv), str(database))
    result["rows_per_second"] = result["rows_read"] / result["seconds"]
    return result


def measure_load(workdir: Path, database: Path) -> dict:
    """``load_records`` in a fresh process twice: without the Parquet snapshot (the first load
    after an import reads SQLite and writes the snapshot), then from the snapshot."""
    for old in database.parent.glob(f"{database.name}.records-*.parquet"):
        old.unlink()
    first = _worker(workdir, "load", str(database))
    second = _worker(workdir, "load", str(database))
    return {"first": first, "second": second}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree_rss(process) -> int:
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def measure_app_start(workdir: Path, database: Path, timeout: float = 600.0) -> dict:
    """``python app.py`` until the first HTTP 200 on ``/``; peak RSS sampled every 50 ms."""
    import psutil

    port = _free_port()
    command = [sys.executable, "app.py", "--port", str(port), "--database", str(database)]
    log_path = workdir / "app.log"
    peak = [0]
    with open(log_path, "w") as log:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=PROJECT_ROOT, env=_env(workdir), stdout=log,
                                 stderr=subprocess.STDOUT)
        process = psutil.Process(child.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(process))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        seconds = None
        try:
            while time.perf_counter() - start < timeout:
                if child.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as reply:
                        if reply.status == 200:
                            reply.read()
                            seconds = time.perf_counter() - start
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.05)
            peak[0] = max(peak[0], _tree_rss(process))
        finally:
            stop.set()
            sampler.join()
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if seconds is None:
        raise RuntimeError(f"the app did not answer 200 on /; see {log_path}:\n"
                           f"{log_path.read_text()[-3000:]}")
    return {"seconds": seconds, "peak_rss_bytes": peak[0]}


def measure_pages(workdir: Path, database: Path, runs: int, pages: list[str] | None) -> dict:
    args = ["pages", str(database), "--runs", str(runs)]
    if pages:
        args += ["--pages", *pages]
    return _worker(workdir, *args)


def measure_compare(workdir: Path, database: Path, repeat: int = 1) -> dict:
    return _worker(workdir, "compare", str(database), "--repeat", str(repeat))


def measure_signals(workdir: Path, database: Path) -> dict:
    return _worker(workdir, "signals", str(database))
