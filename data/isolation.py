"""Imports in a child process with a memory and a time limit.

Uploads (the Data page) and the command line (``python -m data import``) import each file in
a fresh Python process: the child sets its own address-space limit
(``resource.setrlimit(RLIMIT_AS)``) before it imports anything else, runs
:func:`data.import_file` with the file limits of :mod:`data.limits`, and reports the result
as JSON on its standard output. The parent waits at most the time limit and then kills it. A
child that ran out of memory or time has committed nothing (an import is one transaction),
and the parent writes the ``refused`` audit event and raises :class:`ImportRefused` with a
message naming the file and the limit.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux), so a command or web worker
that is killed does not leave an import running that could still commit.

A new process (not ``fork``) is used on purpose: a web worker with threads may hold locks
(SQLite's, the logging module's) at the moment of a fork, and the child would wait on them
forever; a fresh interpreter inherits no locks, no connections and no caches.

Examples
--------
>>> from data.isolation import import_file_isolated
>>> from data.limits import ImportLimits
>>> result = import_file_isolated("export.xlsx", "sqlite:///store.db",
...                               limits=ImportLimits(memory_mb=2048, seconds=60))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from data.importer import ImportRefused, ImportResult, Reason, _log_refusal, default_actor
from data.limits import ImportLimits

# The child's first statements: the limit is in force before pandas & co. are imported.
_CHILD = ("import ctypes, os, resource, signal, sys\n"
          "try:  # die with the parent (PR_SET_PDEATHSIG): a killed command or worker must not\n"
          "    # leave an import running that could still commit\n"
          "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
          "except (OSError, AttributeError):\n"
          "    pass\n"
          "if os.getppid() != int(sys.argv[2]):\n"
          "    sys.exit(5)  # the parent died before the signal was armed\n"
          "limit = int(sys.argv[1])\n"
          "if limit > 0:\n"
          "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
          "try:\n"
          "    from data.isolation import child_main\n"
          "except (MemoryError, ImportError, OSError) as error:\n"
          "    # Under a tight limit even loading pandas' libraries fails (failed to map segment).\n"
          "    memory = isinstance(error, MemoryError) or 'map' in str(error) or 'memory' in str(error)\n"
          "    print(f'{type(error).__name__}: {error}', file=sys.stderr)\n"
          "    sys.exit(3 if limit > 0 and memory else 4)\n"
          "sys.exit(child_main())\n")
EXIT_REFUSED = 2
EXIT_MEMORY = 3
EXIT_FAILED = 4
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def import_file_isolated(path: str | os.PathLike[str], database: str | None = None, *,
                         limits: ImportLimits | None = None, replace: bool = False,
                         synthetic: bool = False, actor: str | None = None,
                         file_name: str | None = None, progress: bool | None = False,
                         time_setting: str = "VA_IMPORT_SECONDS") -> ImportResult:
    """:func:`data.import_file` in a child process with ``limits``' memory and time limits.

    Parameters
    ----------
    path, database, replace, synthetic, actor, file_name
        As for :func:`data.import_file`.
    limits : ImportLimits, optional
        Default :meth:`ImportLimits.from_environment`. ``memory_mb`` caps the child's address
        space, ``seconds`` its wall time; the file limits are checked in the child.
    progress : bool, optional
        ``False`` (default): the child's standard error is captured (a web worker). ``None``
        or ``True``: it is this process's (a progress bar on a terminal, as
        :func:`data.import_file` decides for ``None``).
    time_setting : str
        The setting named when the time limit is exceeded (``VA_UPLOAD_SECONDS`` for uploads).

    Returns
    -------
    ImportResult

    Raises
    ------
    ImportRefused
        The file was refused, or the child exceeded the memory or time limit or failed;
        nothing was stored. The message names the file and, for a limit, its setting.
    data.store.StoreError
        The store cannot be used.
    """
    limits = ImportLimits.from_environment() if limits is None else limits
    actor = actor or default_actor()
    name = file_name or Path(path).name  # recorded in the audit log, as import_file does
    shown = file_name or str(path)  # named in messages, as the caller gave it
    request = {"path": str(Path(path).resolve()), "database": database, "replace": replace,
               "synthetic": synthetic, "actor": actor, "file_name": file_name,
               "progress": progress,
               "limits": dataclasses.asdict(limits)}
    memory = int(limits.memory_mb * 2**20) if limits.memory_mb else 0
    environment = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                               os.environ.get("PYTHONPATH")])),
                   # One thread per numeric library: thread stacks and arenas would count
                   # against the address-space limit without making an import faster.
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        finished = subprocess.run(
            [sys.executable, "-c", _CHILD, str(memory), str(os.getpid())],
            input=json.dumps(request), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if progress is False else None,
            text=True, timeout=limits.seconds, env=environment,
            cwd=os.getcwd(), check=False)
    except subprocess.TimeoutExpired:
        _log_refusal(database, actor, name)  # the child was killed before it could
        raise ImportRefused(shown, f"the import took longer than the limit of "
                            f"{limits.seconds:g} s ({time_setting}) and was stopped. Nothing "
                            "was stored.") from None
    answer = _answer(finished.stdout)
    if finished.returncode == 0 and answer and "result" in answer:
        return _result(answer["result"])
    if finished.returncode == EXIT_REFUSED and answer:
        if answer.get("store_error"):
            from data.store import StoreError

            raise StoreError(answer["message"])
        raise ImportRefused(shown, answer["message"])
    _log_refusal(database, actor, name)
    if finished.returncode == EXIT_MEMORY or (limits.memory_mb and finished.returncode < 0):
        raise ImportRefused(shown, f"the import needed more memory than the limit of "
                            f"{limits.memory_mb:,} MB (VA_IMPORT_MEMORY_MB) and was stopped. "
                            "Nothing was stored.")
    detail = (answer or {}).get("message") or _last_line(finished.stderr or "")
    raise ImportRefused(shown, f"the import failed ({detail or f'exit status {finished.returncode}'})"
                        ". Nothing was stored.")


def _answer(stdout: str) -> dict | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _result(fields: dict) -> ImportResult:
    samples = [Reason(**reason) for reason in fields.pop("sample_reasons", [])]
    return ImportResult(**fields, sample_reasons=samples)


def child_main() -> int:
    """The child: read the request from standard input, import, print one JSON line."""
    from data.importer import import_file
    from data.store import StoreError

    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answer channel
    try:
        request = json.loads(sys.stdin.read())
        limits = ImportLimits(**request["limits"])
        result = import_file(request["path"], request["database"], replace=request["replace"],
                             synthetic=request["synthetic"], progress=request.get("progress", False),
                             actor=request["actor"], file_name=request["file_name"],
                             limits=limits)
        fields = dataclasses.asdict(result)
        out.write(json.dumps({"result": fields}) + "\n")
        return 0
    except ImportRefused as refused:
        out.write(json.dumps({"message": refused.reason}) + "\n")
        return EXIT_REFUSED
    except StoreError as error:
        out.write(json.dumps({"message": str(error), "store_error": True}) + "\n")
        return EXIT_REFUSED
    except MemoryError:
        return EXIT_MEMORY
    except Exception as error:  # noqa: BLE001 - reported to the parent, never a traceback
        out.write(json.dumps({"message": f"{type(error).__name__}: {str(error)[:300]}"}) + "\n")
        return EXIT_FAILED
    finally:
        out.flush()
