"""Records for callbacks: loaded once per data version, then filtered per request.

The loaded frame is cached per process and keyed by (store, data version), so a new import
invalidates it; the cache holds at most two versions (the current one and the one being
replaced), which bounds memory.
"""

from __future__ import annotations

import functools

import pandas as pd
import sqlalchemy as sa

from analysis.filters import RecordFilter, apply_filter
from dashboard.context import database
from data import load_records, store


@functools.lru_cache(maxsize=2)
def _records(url: str, version: str) -> pd.DataFrame:  # version is part of the cache key
    return load_records(url)


def data_version(url: str | None = None) -> str:
    return store.data_version(url if url is not None else database())


def all_records() -> pd.DataFrame:
    """Every stored record (shared, read-only: never modify the returned frame)."""
    url = store.database_url(database())
    return _records(url, store.data_version(url))


def filtered_records(selection: RecordFilter) -> pd.DataFrame:
    """The records a filter selects."""
    return apply_filter(all_records(), selection)


def batches() -> pd.DataFrame:
    """Import batches, newest first."""
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


def is_synthetic() -> bool:
    """True when every stored record came from a synthetic (demo) batch."""
    frame = batches()
    complete = frame[frame.status == "complete"]
    return bool(len(complete)) and bool(complete.loc[complete.accepted > 0, "synthetic"].all())
