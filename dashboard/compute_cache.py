"""On-disk cache of heavy page computations, shared by every worker process of the app.

* :func:`get_cache` — one bounded :class:`diskcache.Cache` per directory (200 MB, least
  recently used entries evicted first; SQLite-backed, so safe with several processes and
  after ``fork``). The directory is ``VA_CACHE_DIR`` or ``instance/cache`` of the project
  (the folder of the default store), falling back to a temporary folder when that is not
  writable.
* :func:`data_key` — identifies the stored data: the store (a hash of its URL, never the URL
  itself), the number of import batches and the latest one, so a new import — or a store
  re-created at the same path — never serves old results.
* :func:`filter_key` — the canonical JSON of a filter state (value order does not matter).
* :func:`memoised` — ``compute()`` once per key, then from the disk cache;
  :func:`code_version` makes the code that computes a value part of its key.
* :func:`background_manager` — a Dash ``DiskcacheManager`` on the same cache whose results
  are keyed by :func:`data_key` (``cache_by``) as well as the callback inputs.
* :func:`prepare_forked_job` — call first in a background callback: a job runs in a process
  forked from the web server, which must not reuse the server's database connections.
* :class:`ForkGate` / :func:`install_fork_gate` — a background job is forked only while no
  other request of the process is in progress (see the class for why).
* :func:`cached_output` — a callback decorator: outputs are stored per (user scope, code
  version, data key, suppression threshold, inputs), so a filter state seen before — by any
  worker — is answered from disk instead of recomputed.
* :func:`dump_output` / :func:`load_output` — how :func:`cached_output` stores a callback's
  output: pickled, except that each Plotly figure is kept as its (already validated)
  properties plus its JSON and read back as a :class:`CachedFigure` without re-validation —
  plain unpickling re-validates every trace and the layout (8–20 ms per output), and
  serialising a figure for Dash deep-copies it (up to ~10 ms): together most of a warm update.

Every key includes :func:`dashboard.auth.scope_key` (the user's role and facilities): a
facility-restricted user's results never reach another user, and vice versa.

Cached values are aggregates (analysis tables, figures, components), never raw records.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import diskcache
import numpy as np
import plotly.graph_objects as go

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
    """``VA_CACHE_DIR``, else ``<project>/instance/cache``, else a per-user folder in the temp
    dir; always private (see :func:`ensure_private`)."""
    configured = os.environ.get("VA_CACHE_DIR", "").strip()
    candidates = [Path(configured)] if configured else [PROJECT_ROOT / "instance" / "cache"]
    candidates.append(Path(tempfile.gettempdir()) / f"va-dashboard-cache-{os.getuid()}")
    for path in candidates:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return ensure_private(path)
    raise OSError("no writable cache directory: set VA_CACHE_DIR")


def ensure_private(path: Path) -> Path:
    """``path``, a folder only its owner may use: the cache holds pickles (loading one runs
    code) of patient aggregates, so a folder of another user is refused and one of ours
    that others may read or write is made 0700.

    Raises
    ------
    OSError
        When the folder belongs to another user.
    """
    info = path.stat()
    if info.st_uid != os.getuid():
        raise OSError(f"cache folder {path} belongs to another user (uid {info.st_uid}): "
                      "its pickled results could run that user's code; set VA_CACHE_DIR to a "
                      "folder of your own (mode 0700)")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


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
    """Identity of the stored data (needs the app context of a request or background job).

    A hash of the store's URL, then :func:`data.store.data_version` (import batches only:
    records change only inside them).

    Examples
    --------
    >>> data_key()  # doctest: +SKIP
    '3f2a9c0d1e4b5a6c/b2-n2-9e1c0f2a7b3d-20261121T103205123456'
    """
    from dashboard.context import database
    from data import store

    url = store.database_url(database())
    return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}/{store.data_version(url)}"


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


class ForkGate:
    """Lets a background job's ``fork`` happen only while no other request is in progress.

    Dash starts a background job by forking the web server process. In a threaded server
    (``python app.py``, gunicorn ``--threads``, the test servers) another request thread may
    be inside SQLite at that instant, holding one of SQLite's process-wide mutexes (its
    allocator's, for one); the child inherits the mutex locked and hangs at its first
    database call. This was seen: a VP-vs-KP job stuck in ``sqlite3Malloc`` while the
    browser test loading every page ran other callbacks beside it. Every request enters the
    gate (:func:`install_fork_gate`); :meth:`exclusive` waits until the other requests have
    left and holds new ones back while the job forks (a few milliseconds). A single-threaded
    server (gunicorn's default sync workers) never waits.

    Examples
    --------
    >>> gate = ForkGate()
    >>> with gate.request():
    ...     with gate.exclusive():
    ...         pass  # fork here: no other request is running
    """

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._condition = threading.Condition()
        self._active = 0  # requests in progress, those waiting for a fork to end excluded
        self._forking = False
        self._local = threading.local()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around one request: waits while a job forks."""
        with self._condition:
            while self._forking:
                self._condition.wait()
            self._active += 1
        self._local.inside = getattr(self._local, "inside", 0) + 1
        try:
            yield
        finally:
            self._local.inside -= 1
            with self._condition:
                self._active -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Around a fork: no other request is in progress inside it.

        The calling request itself is not waited for. After ``timeout`` seconds of waiting
        for long requests it goes ahead (logged), rather than stall the page.
        """
        # The calling request is not counted while it waits or forks: two requests starting
        # jobs at once would otherwise each wait for the other.
        own = 1 if getattr(self._local, "inside", 0) else 0
        with self._condition:
            self._active -= own
            self._condition.notify_all()  # a fork waiting for this request may go ahead
            while self._forking:
                self._condition.wait()
            self._forking = True
            deadline = time.monotonic() + self.timeout
            while self._active > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logging.getLogger(__name__).warning(
                        "background job forked while %d other request(s) still ran",
                        self._active)
                    break
                self._condition.wait(remaining)
        try:
            yield
        finally:
            with self._condition:
                self._forking = False
                self._active += own
                self._condition.notify_all()


FORK_GATE = ForkGate()


def _new_gate_after_fork() -> None:
    # The child of a fork serves no requests; it starts with a clean gate of its own.
    global FORK_GATE
    FORK_GATE = ForkGate(FORK_GATE.timeout)


os.register_at_fork(after_in_child=_new_gate_after_fork)


def install_fork_gate(server) -> None:
    """Make every request of ``server`` (a Flask app) pass :data:`FORK_GATE`."""
    inner = server.wsgi_app

    def gated(environ, start_response):
        with FORK_GATE.request():
            return inner(environ, start_response)

    server.wsgi_app = gated


def background_manager(*cache_by: Callable[[], Any]):
    """A ``DiskcacheManager`` on :func:`get_cache` whose results are cached per data version,
    suppression threshold (the cached outputs are suppressed displays), the user's scope
    (:func:`dashboard.auth.scope_key`: role and facilities) and ``cache_by``; its jobs fork
    inside :meth:`ForkGate.exclusive`."""
    from dash import DiskcacheManager

    from dashboard.auth import scope_key
    from dashboard.suppression import threshold

    class GatedDiskcacheManager(DiskcacheManager):
        def call_job_fn(self, key, job_fn, args, context):
            with FORK_GATE.exclusive():
                return super().call_job_fn(key, job_fn, args, context)

    return GatedDiskcacheManager(
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


class CachedFigure(go.Figure):
    """A :class:`plotly.graph_objects.Figure` read from the result cache.

    It is a full ``go.Figure`` (attribute and item access, ``update_*``, validation of any
    change), built without re-validating what was validated when the figure was first built.
    Until it is changed it also carries the JSON its original produced, so serialising it
    for Dash (``to_plotly_json``) costs nothing; any change (``_send_*_msg`` is where plotly
    reports every change of data, layout or traces; ``frames`` is set directly) drops it.

    Examples
    --------
    >>> figure = load_output(dump_output(go.Figure(go.Bar(y=[1, 2]))))
    >>> isinstance(figure, go.Figure), figure.to_plotly_json()["data"][0]["y"]
    (True, [1, 2])
    >>> figure.data[0].y = [3]
    >>> figure.to_plotly_json()["data"][0]["y"]
    [3]
    """

    _stored_json: dict | None = None

    def __getattr__(self, name: str) -> Any:
        # Reached only for an attribute the instance lacks: a figure read from the cache and
        # not built yet is built now (see _trusted_figure), then asked again. Names a figure
        # never has (the JSON encoder probes for "tolist", "isoformat", ...) do not build it.
        if _PENDING not in self.__dict__ or not (name.startswith("_")
                                                 or hasattr(type(self), name)):
            raise AttributeError(name)
        properties = self.__dict__.pop(_PENDING)
        _build_cached(self, properties)
        return getattr(self, name)

    def to_plotly_json(self) -> dict:
        # The same dict on every call until a change: read it, do not modify it.
        return self._stored_json if self._stored_json is not None else super().to_plotly_json()

    def _changed(self) -> None:
        self._stored_json = None

    # Plotly calls one of these after every change to the figure's data, layout or traces.
    def _send_addTraces_msg(self, *args, **kwargs):  # noqa: N802 - plotly's names
        self._changed()
        return super()._send_addTraces_msg(*args, **kwargs)

    def _send_moveTraces_msg(self, *args, **kwargs):  # noqa: N802
        self._changed()
        return super()._send_moveTraces_msg(*args, **kwargs)

    def _send_deleteTraces_msg(self, *args, **kwargs):  # noqa: N802
        self._changed()
        return super()._send_deleteTraces_msg(*args, **kwargs)

    def _send_restyle_msg(self, *args, **kwargs):
        self._changed()
        return super()._send_restyle_msg(*args, **kwargs)

    def _send_relayout_msg(self, *args, **kwargs):
        self._changed()
        return super()._send_relayout_msg(*args, **kwargs)

    def _send_update_msg(self, *args, **kwargs):
        self._changed()
        return super()._send_update_msg(*args, **kwargs)

    def _send_animate_msg(self, *args, **kwargs):
        self._changed()
        return super()._send_animate_msg(*args, **kwargs)

    @property
    def frames(self):
        return go.Figure.frames.fget(self)

    @frames.setter
    def frames(self, new_frames) -> None:
        self._changed()
        go.Figure.frames.fset(self, new_frames)


def _freeze_arrays(node: Any) -> None:
    """Make the figure's numpy arrays read-only: an in-place edit of one would not be seen by
    :class:`CachedFigure` (which then would send its stale JSON), so it raises instead."""
    if isinstance(node, dict):
        for value in node.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            elif isinstance(value, (dict, list)):
                _freeze_arrays(value)
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for value in node:
            _freeze_arrays(value)


def _trusted_figure(properties: dict, stored_json: dict) -> CachedFigure:
    """A figure read from the cache, built from its properties on first use.

    Until then it holds only its properties and the JSON its original produced: a warm
    answer that Dash merely serialises never builds the figure (building one costs several
    milliseconds of plotly's object setup even without validation).
    """
    figure = CachedFigure.__new__(CachedFigure)
    figure.__dict__[_PENDING] = properties
    figure.__dict__["_stored_json"] = stored_json
    return figure


#: Instance attribute of a :class:`CachedFigure` not built yet: the properties to build it.
_PENDING = "_pending_properties"


def _build_cached(figure: CachedFigure, properties: dict) -> None:
    """Build a cached figure from the properties of a figure validated when it was first
    built: with ``_validate=False`` (plotly's own switch: no per-property validation), then
    validation switched back on, so a later change to the figure is checked as usual."""
    go.Figure.__init__(figure, properties, _validate=False)
    _freeze_arrays({"data": figure._data, "layout": figure._layout})  # the figure's own copies
    figure._validate = True
    for trace in figure.data:
        trace._validate = True
    figure.layout._validate = True


class _OutputPickler(pickle.Pickler):
    """Pickles a ``go.Figure`` as its property dicts and JSON, read by :func:`_trusted_figure`;
    ``figures`` lists each pickled figure with that JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.figures: list[tuple[go.Figure, dict]] = []

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, go.Figure):
            pending = obj.__dict__.get(_PENDING)
            if pending is not None and obj.__dict__.get("_stored_json") is not None:
                # Read from the cache and never built: stored again as it was read.
                self.figures.append((obj, obj.__dict__["_stored_json"]))
                return _trusted_figure, (pending, obj.__dict__["_stored_json"])
            # The figure's own property dicts (pickling copies them), not to_dict(): that
            # turns numpy arrays into base64 specs, which trace.y would then return.
            properties = {"data": obj._data, "layout": obj._layout,
                          # make_subplots' grid, as plotly's own __reduce__ keeps it.
                          "_grid_str": obj._grid_str, "_grid_ref": obj._grid_ref}
            if obj._frame_objs:
                properties["frames"] = [frame._props for frame in obj._frame_objs]
            stored_json = obj.to_plotly_json()
            self.figures.append((obj, stored_json))
            return _trusted_figure, (properties, stored_json)
        return NotImplemented


def dump_output(value: Any) -> bytes:
    """A callback output as bytes for the cache; each ``go.Figure`` as its (already validated)
    properties and its JSON, read back as a :class:`CachedFigure`.

    Examples
    --------
    >>> import plotly.graph_objects as go
    >>> from dash import dcc
    >>> blob = dump_output(dcc.Graph(figure=go.Figure(go.Bar(y=[1, 2]))))
    >>> load_output(blob).figure.data[0].y
    (1, 2)
    """
    return _dump(value)[0]


def _dump(value: Any) -> tuple[bytes, list[tuple[go.Figure, dict]]]:
    buffer = io.BytesIO()
    pickler = _OutputPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dump(value)
    return buffer.getvalue(), pickler.figures


def _as_stored(value: Any, figures: list[tuple[go.Figure, dict]]) -> Any:
    """``value`` with each of its figures made the :class:`CachedFigure` that
    :func:`load_output` would give (frozen arrays, the JSON just made), without unpickling
    and rebuilding them: on a cold request that rebuild costs as much as the pickling."""
    for figure, stored_json in figures:
        if type(figure) is go.Figure:
            figure.__class__ = CachedFigure
            _freeze_arrays({"data": figure._data, "layout": figure._layout})
        if isinstance(figure, CachedFigure):
            figure._stored_json = stored_json
    return value


def load_output(blob: bytes) -> Any:
    """The output :func:`dump_output` stored: components as they were, figures rebuilt without
    re-validating them (the cheap warm path of :func:`cached_output`)."""
    return pickle.loads(blob)


def cached_output(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a callback (under ``safe_callback``) to serve repeated inputs from the cache.

    The key is the user's scope (role and facilities), the code version, the data key (a new
    import changes it), the suppression threshold (outputs are suppressed displays) and the
    callback's inputs. Exceptions and
    ``no_update`` results are never stored. Outputs are stored with :func:`dump_output`, and
    the first call returns what later calls read (:func:`load_output`), so a computed and a
    cached answer are the same kind of value.
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
        stored = cache.get(name, default=_MISSING, retry=True)
        if isinstance(stored, bytes):
            return load_output(stored)
        value = function(*args)
        if not _holds_no_update(value):
            blob, figures = _dump(value)
            cache.set(name, blob, expire=EXPIRE_SECONDS, tag=namespace, retry=True)
            # The caller gets the same kind of value a later request reads from the cache
            # (figures as CachedFigure carrying their JSON), so the first and the repeated
            # answers serialise alike.
            return _as_stored(value, figures)
        return value

    return wrapper
