"""On-disk cache of heavy page computations, shared by every worker process of the app.

* :func:`get_cache` — one bounded :class:`diskcache.Cache` per directory (200 MB, least
  recently used entries evicted first; SQLite-backed, so safe with several processes and
  after ``fork``). The directory is ``VA_CACHE_DIR`` or ``instance/cache`` of the project
  (the folder of the default store), falling back to a temporary folder when that is not
  writable.
* :func:`data_key` — identifies the stored data: the store (a hash of its URL, never the URL
  itself), :func:`dashboard.data_access.data_version` and the latest import batch, so a new
  import — or a store re-created at the same path — never serves old results.
* :func:`filter_key` — the canonical JSON of a filter state (value order does not matter).
* :func:`memoised` — ``compute()`` once per key, then from the disk cache;
  :func:`code_version` makes the code that computes a value part of its key.
* :func:`background_manager` — a Dash ``DiskcacheManager`` on the same cache whose results
  are keyed by :func:`data_key` (``cache_by``) as well as the callback inputs.
* :func:`prepare_forked_job` — call first in a background callback: a job runs in a process
  forked from the web server, which must not reuse the server's database connections.
* :func:`cached_output` — a callback decorator: outputs are stored per (user scope, code
  version, data key, suppression threshold, inputs), so a filter state seen before — by any
  worker — is answered from disk instead of recomputed.

Every key includes :func:`dashboard.auth.scope_key` (the user's role and facilities): a
facility-restricted user's results never reach another user, and vice versa.

Cached values are aggregates (analysis tables, figures, components), never raw records.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from analysis.filters import RecordFilter

T = TypeVar("T")

#: Upper bound of the cache on disk; least recently used entries are evicted beyond it.
SIZE_LIMIT = 200 * 2**20
#: Entries not read for this long are dropped (results of old data versions age out).
EXPIRE_SECONDS = 14 * 24 * 3600
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_MISSING = object()
# Per (process, folder): a forked background job must open its own SQLite connection; the
# parent's, copied by fork() possibly in the middle of a transaction, would wait forever.
_CACHES: dict[tuple[int, str], diskcache.Cache] = {}
_PROCESS_ID = os.getpid()  # the process whose database connections are its own


def cache_dir() -> Path:
    """``VA_CACHE_DIR``, else ``<project>/instance/cache``, else a folder in the temp dir."""
    configured = os.environ.get("VA_CACHE_DIR", "").strip()
    candidates = [Path(configured)] if configured else [PROJECT_ROOT / "instance" / "cache"]
    candidates.append(Path(tempfile.gettempdir()) / "va-dashboard-cache")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise OSError("no writable cache directory: set VA_CACHE_DIR")


def get_cache(directory: str | os.PathLike[str] | None = None) -> diskcache.Cache:
    """The cache in ``directory`` (default :func:`cache_dir`), one object per process."""
    path = str(Path(directory) if directory is not None else cache_dir())
    key = (os.getpid(), path)
    cache = _CACHES.get(key)
    if cache is None:
        cache = diskcache.Cache(path, size_limit=SIZE_LIMIT, eviction_policy="least-recently-used")
        _CACHES[key] = cache
    return cache


def data_key() -> str:
    """Identity of the stored data (needs the app context of a request or background job)."""
    from dashboard import data_access
    from dashboard.context import database
    from data import store

    url = store.database_url(database())
    batches = data_access.batches()
    latest = (
        "" if batches.empty else f"{batches.iloc[0]['sha256'][:16]}@{batches.iloc[0]['started_at']}"
    )
    store_id = hashlib.sha256(url.encode()).hexdigest()[:16]
    return f"{store_id}/{data_access.data_version(url)}/{latest}"


def code_version(*modules) -> str:
    """A hash of the source files of ``modules`` (modules or packages): part of a memo key so
    that an upgraded analysis never serves results computed by the old code."""
    digest = hashlib.sha256()
    for module in modules:
        paths = (
            [Path(module.__file__)]
            if not hasattr(module, "__path__")
            else sorted(p for folder in module.__path__ for p in Path(folder).rglob("*.py"))
        )
        for path in paths:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def filter_key(state: dict | RecordFilter | None) -> str:
    """Canonical JSON of a filter: sorted keys and values, empty fields left out."""
    selection = state if isinstance(state, RecordFilter) else RecordFilter.from_dict(state)
    values = {
        k: (sorted(v) if isinstance(v, list) else v)
        for k, v in selection.to_dict().items()
        if v not in (None, "", [])
    }
    return json.dumps(values, sort_keys=True)


def memoised(
    namespace: str,
    key: Sequence[Any],
    compute: Callable[[], T],
    cache: diskcache.Cache | None = None,
) -> T:
    """``compute()``, stored under ``namespace`` + ``key``; later calls read the stored value.

    Two processes missing the same key at once both compute it (the last write wins): cheaper
    than a lock held for the length of an analysis.
    """
    from dashboard.auth import scope_key

    cache = cache if cache is not None else get_cache()
    # The user's scope (role, facilities) is always part of the key: a facility-restricted
    # user's results are computed from their rows only and must never be served to others.
    scoped = [scope_key(), *key]
    digest = hashlib.sha256(json.dumps(scoped, sort_keys=True, default=str).encode()).hexdigest()
    name = f"{namespace}:{digest}"
    value = cache.get(name, default=_MISSING, retry=True)
    if value is not _MISSING:
        return value
    value = compute()
    cache.set(name, value, expire=EXPIRE_SECONDS, tag=namespace, retry=True)
    return value


def background_manager(*cache_by: Callable[[], Any]):
    """A ``DiskcacheManager`` on :func:`get_cache` whose results are cached per data version,
    suppression threshold (the cached outputs are suppressed displays), the user's scope
    (:func:`dashboard.auth.scope_key`: role and facilities) and ``cache_by``."""
    from dash import DiskcacheManager

    from dashboard.auth import scope_key
    from dashboard.suppression import threshold

    return DiskcacheManager(
        get_cache(), cache_by=[data_key, threshold, scope_key, *cache_by], expire=EXPIRE_SECONDS
    )


def prepare_forked_job() -> None:
    """In a process forked from the server (a background job), open fresh database connections.

    The pooled connections inherited from the parent belong to it; ``dispose(close=False)``
    gives this process a new pool without touching them (SQLAlchemy's recipe for forked
    processes). Runs once per process; does nothing in the process that imported this module.
    """
    global _PROCESS_ID
    if os.getpid() == _PROCESS_ID:
        return
    from dashboard.context import database
    from data import store

    store.get_engine(database()).dispose(close=False)
    _PROCESS_ID = os.getpid()


#: How long a process trusts its last reading of the data key: a new import is visible to
#: cached callbacks within this many seconds (reading it costs a few database queries).
DATA_KEY_TTL_SECONDS = 2.0
_DATA_KEYS: dict[str, tuple[float, str]] = {}


def recent_data_key() -> str:
    """:func:`data_key`, re-read at most every :data:`DATA_KEY_TTL_SECONDS` per store."""
    from dashboard.context import database

    store_name = str(database())
    now = time.monotonic()
    cached = _DATA_KEYS.get(store_name)
    if cached is not None and now - cached[0] < DATA_KEY_TTL_SECONDS:
        return cached[1]
    key = data_key()
    _DATA_KEYS[store_name] = (now, key)
    return key


@functools.cache
def _source_version() -> str:
    import analysis
    import dashboard
    import data

    return code_version(analysis, dashboard, data)


def _holds_no_update(value: Any) -> bool:
    from dash._callback import NoUpdate

    values = value if isinstance(value, (tuple, list)) else (value,)
    return any(isinstance(item, NoUpdate) for item in values)


def cached_output(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a callback (under ``safe_callback``) to serve repeated inputs from the cache.

    The key is the user's scope (role and facilities), the code version, the data key (a new
    import changes it), the suppression threshold (outputs are suppressed displays) and the
    callback's inputs. Exceptions and
    ``no_update`` results are never stored.
    """
    namespace = f"output:{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def wrapper(*args):
        from dashboard.auth import scope_key
        from dashboard.suppression import threshold

        # scope_key first: it refuses (403) when nobody is signed in, before any cache read.
        key = [scope_key(), _source_version(), recent_data_key(), threshold(), list(args)]
        digest = hashlib.sha256(
            json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        cache = get_cache()
        name = f"{namespace}:{digest}"
        value = cache.get(name, default=_MISSING, retry=True)
        if value is not _MISSING:
            return value
        value = function(*args)
        if not _holds_no_update(value):
            cache.set(name, value, expire=EXPIRE_SECONDS, tag=namespace, retry=True)
        return value

    return wrapper
