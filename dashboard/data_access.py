"""Records for callbacks: loaded once per data version, then filtered per request.

The loaded frame is cached per process and keyed by (store, data version), so a new import
invalidates it; the cache holds at most two versions (the current one and the one being
replaced), which bounds memory.

**Facility restriction.** :func:`all_records` returns only the facilities of the signed-in
user (:func:`dashboard.auth.current_user`), so every page, filter option, total, report and
background job that reads records through this module sees nothing else. Restricted frames
are cached per (store, data version, facilities), at most :data:`RESTRICTED_CACHE_SIZE`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analysis.filters import FilterIndex, RecordFilter, filter_mask
from dashboard.auth import current_user
from dashboard.context import database
from data import batches as data_batches
from data import load_records, store
from data.batches import SyntheticShare
from data.load import restrict_to_facilities

#: Restricted frames kept per process (distinct facility sets in use at once).
RESTRICTED_CACHE_SIZE = 8


#: Grouping ids held as categoricals in the shared frame: each page groups, clusters or filters
#: by them, and coding a million id strings (~80 ms each time) is then done once per data
#: version instead of on every filter change; it also saves ~190 MB at a million records.
CATEGORICAL_IDS = ("facility_id", "operator_id", "region")


def _coded_ids(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with :data:`CATEGORICAL_IDS` as categoricals of their observed values
    (sorted), so that a frame never names an id it does not hold."""
    coded = {column: records[column].astype(pd.CategoricalDtype(
                 sorted(records[column].dropna().unique())))
             for column in CATEGORICAL_IDS if column in records.columns}
    return records.assign(**coded) if coded else records


@functools.lru_cache(maxsize=2)
def _records(url: str, version: str) -> pd.DataFrame:  # version is part of the cache key
    return _coded_ids(load_records(url))


@functools.lru_cache(maxsize=RESTRICTED_CACHE_SIZE)
def _restricted(url: str, version: str, facilities: tuple[str, ...]) -> pd.DataFrame:
    return _coded_ids(restrict_to_facilities(_records(url, version), facilities))


def data_version(url: str | None = None) -> str:
    return store.data_version(url if url is not None else database())


def all_records() -> pd.DataFrame:
    """Every stored record the current user may see (shared, read-only: never modify it).

    A user restricted to facilities gets only their rows; nobody signed in gets
    ``werkzeug.exceptions.Forbidden`` (from :func:`dashboard.auth.current_user`).
    """
    facilities = current_user().facilities  # first: deny before touching the store
    url = store.database_url(database())
    version = store.data_version(url)
    if facilities is None:
        return _records(url, version)
    return _restricted(url, version, tuple(facilities))


@dataclasses.dataclass(eq=False)
class _Selected:
    """One selection of one records frame: its row positions and the columns taken so far."""

    records: pd.DataFrame  # held so that its id() cannot be reused by another frame
    positions: np.ndarray | slice | None  # None: every row; a slice: one run of rows
    index: pd.Index
    columns: dict[str, object] = dataclasses.field(default_factory=dict)


_SELECTED: collections.OrderedDict[tuple, _Selected] = collections.OrderedDict()
_SELECTED_LOCK = threading.Lock()


def _fresh_locks_after_fork() -> None:
    # A background job forked while another request thread held the lock would inherit it
    # held and wait for it forever: the child gets a fresh one.
    global _SELECTED_LOCK
    _SELECTED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)

#: Attribute of a shared records frame holding its FilterIndex.
_INDEX_ATTRIBUTE = "_va_filter_index"


def frame_index(records: pd.DataFrame) -> FilterIndex:
    """The :class:`analysis.filters.FilterIndex` of a shared records frame, built on first use.

    Only for frames that are never modified (as the frames of :func:`all_records`): a frame
    changed in place would be filtered on its old values. The index lives on the frame itself
    (a private attribute, not copied or pickled with it), so it goes when the frame goes: an
    index kept in a registry would keep its frame, which it reads, alive after a new import
    replaced it. Two threads indexing a frame at once may both build one; either is right.
    """
    index = records.__dict__.get(_INDEX_ATTRIBUTE)
    if index is None:
        index = FilterIndex(records)
        object.__setattr__(records, _INDEX_ATTRIBUTE, index)
    return index


#: Selections kept per process. All callbacks of one filter change ask for the same
#: selection, so one entry shares it among them; an entry can hold as much as the records.
FILTERED_CACHE_SIZE = 1


def filtered_records(selection: RecordFilter, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The records a filter selects (shared data, read-only: never modify the returned frame).

    Parameters
    ----------
    selection : RecordFilter
        The filter.
    columns : sequence of str, optional
        Only these columns (in the records' column order); default all. At a million records
        copying the selected rows of every column costs more than a page's statistics, so
        pages ask for the columns they read.

    Notes
    -----
    The last selection is kept per process, keyed by the records frame (store, data version
    and the user's facility scope each give a different frame) and the filter: the mask is
    computed once (with a :class:`analysis.filters.FilterIndex` built once per records frame)
    and each column's selected rows are copied once, however many callbacks of one filter
    change ask for them.

    Examples
    --------
    >>> frame = filtered_records(RecordFilter(countries=("US",)), ["procedure", "cost"])  # doctest: +SKIP
    """
    records = all_records()
    key = (id(records), selection)
    with _SELECTED_LOCK:
        entry = _SELECTED.get(key)
        if entry is not None and entry.records is records:
            _SELECTED.move_to_end(key)
        else:
            entry = None
    if entry is None:
        keep = None if selection.is_empty else filter_mask(records, selection, frame_index(records))
        if keep is not None and keep.all():
            keep = None
        positions = None if keep is None else _contiguous(np.flatnonzero(keep))
        entry = _Selected(records, positions,
                          records.index if positions is None else records.index[positions])
        with _SELECTED_LOCK:
            _SELECTED[key] = entry
            while len(_SELECTED) > FILTERED_CACHE_SIZE:
                _SELECTED.popitem(last=False)
    if columns is None and entry.positions is None:
        return records
    asked = None if columns is None else set(columns)
    wanted = [c for c in records.columns if asked is None or c in asked]
    arrays = {}
    for column in wanted:
        array = entry.columns.get(column)
        if array is None:
            source = records[column].array
            if entry.positions is None:
                array = source
            elif isinstance(entry.positions, slice):
                array = source[entry.positions]  # a view: no copy
            else:
                array = source.take(entry.positions)
            entry.columns[column] = array  # a dict item write: atomic under the GIL
        arrays[column] = array
    return pd.DataFrame(arrays, index=entry.index, columns=wanted, copy=False)


def _contiguous(positions: np.ndarray) -> np.ndarray | slice:
    """``positions`` as a slice when they are one run of rows.

    The records are sorted by procedure date, so a date window alone (the most common
    filter) selects one run, and its columns can be views instead of copies (about 40 ms
    saved per filter change at 1,000,000 records).
    """
    if positions.size and positions[-1] - positions[0] + 1 == positions.size:
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def store_wide_visible() -> bool:
    """True when the current user may see store-wide figures (the import history: rows per
    batch count every facility); False for a user restricted to some facilities."""
    return current_user().facilities is None


def batches() -> pd.DataFrame:
    """Import batches, newest first (store-wide: show them only if :func:`store_wide_visible`)."""
    engine = store.get_engine(database())
    with engine.connect() as connection:
        return pd.read_sql_query(
            sa.select(store.import_batches).order_by(store.import_batches.c.batch_id.desc()), connection)


def rejection_reasons() -> pd.DataFrame:
    """Quarantined rows per batch, outcome and reason (field: rule)."""
    import json

    engine = store.get_engine(database())
    with engine.connect() as connection:
        rows = connection.execute(sa.select(store.rejected_rows.c.batch_id, store.rejected_rows.c.outcome,
                                            store.rejected_rows.c.reasons)).all()
    counts: dict[tuple[int, str, str], int] = {}
    for batch_id, outcome, reasons in rows:
        for reason in json.loads(reasons):
            key = (batch_id, outcome, f"{reason['field']}: {reason['rule']}")
            counts[key] = counts.get(key, 0) + 1
    return pd.DataFrame([{"batch_id": b, "outcome": o, "reason": r, "rows": n}
                         for (b, o, r), n in sorted(counts.items())],
                        columns=["batch_id", "outcome", "reason", "rows"])


@functools.lru_cache(maxsize=RESTRICTED_CACHE_SIZE)
def _synthetic_share(url: str, version: str,  # version is part of the cache key
                     facilities: tuple[str, ...] | None) -> SyntheticShare:
    return data_batches.synthetic_share(url, facilities)


def synthetic_share() -> SyntheticShare:
    """Synthetic (demo) records among the records the current user may see (counted once per
    data version and facility scope: one grouped count over the records)."""
    facilities = current_user().facilities
    url = store.database_url(database())
    return _synthetic_share(url, store.data_version(url),
                            None if facilities is None else tuple(facilities))


def synthetic_note() -> str:
    """The banner's and the reports' sentence on synthetic records, counts suppressed
    (empty when there are none)."""
    from dashboard.suppression import format_count

    return synthetic_share().sentence(format_count)


def is_synthetic() -> bool:
    """True when every record the current user may see came from a synthetic (demo) batch."""
    return synthetic_share().all


def peer_records() -> pd.DataFrame:
    """Every stored record, whatever the user's facility scope (shared, read-only).

    Only for the facility scorecard's peer comparison
    (:mod:`dashboard.pages.scorecard`): a facility-restricted user is shown their own
    facility and nothing of the others but aggregates and anonymised labels ("Peer 1…N"). Never
    return another facility's id or record-level values to a restricted user from this frame.
    Nobody signed in gets ``werkzeug.exceptions.Forbidden`` (checked before the store is read).
    """
    current_user()  # deny before touching the store
    url = store.database_url(database())
    return _records(url, store.data_version(url))
