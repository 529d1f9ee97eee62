"""Reading stored records into a typed pandas DataFrame.

Reading a million records through a DB-API driver costs ~25 s (a Python object per cell), so:

* **PostgreSQL** is read straight into Arrow with ADBC (``adbc-driver-postgresql``, binary COPY).
* **SQLite** is read through Python's own ``sqlite3`` once per data version, and a Parquet
  snapshot of the typed frame is written beside the store file; later loads (app restarts,
  other workers, notebooks) read the snapshot in about a second. The snapshot name carries the
  data version, so a new import is never answered from an old snapshot. (ADBC's SQLite driver is
  deliberately not used: it links a second copy of SQLite into the process, and two copies break
  each other's file locks, which gave stale reads and I/O errors in testing.)

Both fast paths fall back to the DB-API reader, which gives the same frame.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from data import store
from data.dictionary import FIELDS

log = logging.getLogger(__name__)


def apply_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Give dictionary columns their pandas dtypes (categoricals with every allowed value)."""
    typed = {}
    for field in FIELDS:
        column = frame[field.name] if field.name in frame else pd.Series(pd.NA, index=frame.index)
        if field.kind == "category":
            typed[field.name] = pd.Categorical(column.astype(object).where(column.notna(), None),
                                               categories=list(field.allowed))
        elif field.kind == "date":
            typed[field.name] = pd.to_datetime(column).astype("datetime64[ns]")
        elif field.kind == "boolean":
            typed[field.name] = column.astype("boolean")
        else:
            typed[field.name] = column.astype(field.pandas_dtype)
    return pd.DataFrame(typed, index=frame.index)


def _arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """Typed frame from an Arrow table of the records columns (conversions done in Arrow)."""
    columns = {}
    for field in FIELDS:
        array = table.column(field.name)
        if field.kind == "category":
            text = array.cast(pa.string()) if not pa.types.is_string(array.type) else array
            codes = pc.index_in(text, value_set=pa.array(field.allowed)).fill_null(-1)
            columns[field.name] = pd.Categorical.from_codes(
                codes.to_numpy().astype(np.int16), categories=list(field.allowed))
        elif field.kind == "date":
            if pa.types.is_string(array.type) or pa.types.is_null(array.type):
                array = pc.strptime(array.cast(pa.string()), format="%Y-%m-%d", unit="s")
            columns[field.name] = pd.Series(array.cast(pa.timestamp("ns")).to_pandas()).astype(
                "datetime64[ns]").to_numpy()
        elif field.kind == "boolean":
            values = array.cast(pa.bool_()) if not pa.types.is_boolean(array.type) else array
            columns[field.name] = pd.array(values.to_pandas(types_mapper=pd.ArrowDtype), dtype="boolean")
        elif field.kind == "integer":
            columns[field.name] = pd.array(array.cast(pa.int64()).to_pandas(types_mapper=pd.ArrowDtype),
                                           dtype="Int64")
        elif field.kind == "number":
            columns[field.name] = pd.array(array.cast(pa.float64()).to_pandas(types_mapper=pd.ArrowDtype),
                                           dtype="Float64")
        else:
            columns[field.name] = pd.array(array.cast(pa.string()).to_pandas(types_mapper=pd.ArrowDtype),
                                           dtype="string")
    return pd.DataFrame(columns)


def _select_sql(dialect) -> str:
    columns = [store.records.c[field.name] for field in FIELDS]
    query = sa.select(*columns).order_by(store.records.c.procedure_date, store.records.c.record_id)
    return str(query.compile(dialect=dialect))


def _read_adbc_postgres(url: str) -> pa.Table:
    import adbc_driver_postgresql.dbapi as driver

    parsed = sa.make_url(url)
    libpq_url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with driver.connect(libpq_url, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(_select_sql(store.get_engine(url).dialect))
        return cursor.fetch_arrow_table()


def snapshot_path(url: str, version: str) -> Path | None:
    """Where the Parquet snapshot of a SQLite store's records for ``version`` lives."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    database = Path(parsed.database)
    return database.with_name(f"{database.name}.records-{version}.parquet")


def _write_snapshot(frame: pd.DataFrame, path: Path) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        # Mode 0600 like the store it copies (patient-level records), whatever the umask.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            frame.to_parquet(handle, index=False)
        os.replace(temporary, path)  # atomic: other workers see the old file or the new one
    except OSError as error:  # a read-only folder only costs speed
        log.warning("could not write the records snapshot %s: %s", path, error)
        temporary.unlink(missing_ok=True)
        return
    for old in path.parent.glob(f"{path.name.split('.records-')[0]}.records-*.parquet"):
        if old != path:
            old.unlink(missing_ok=True)


def _read_dbapi(url: str) -> pd.DataFrame:
    engine = store.get_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # In chunks: a Python tuple per row for a million rows would need gigabytes.
            cursor = connection.connection.driver_connection.execute(_select_sql(connection.dialect))
            names = [f.name for f in FIELDS]
            parts = []
            while rows := cursor.fetchmany(100_000):
                parts.append(apply_dtypes(pd.DataFrame.from_records(rows, columns=names)))
            if not parts:
                return apply_dtypes(pd.DataFrame(columns=names))
            return pd.concat(parts, ignore_index=True)
        else:
            columns = [store.records.c[field.name] for field in FIELDS]
            query = sa.select(*columns).order_by(store.records.c.procedure_date, store.records.c.record_id)
            frame = pd.read_sql_query(query, connection)
    return apply_dtypes(frame)


def load_records(database: str | None = None, *, fast: bool = True,
                 facilities: Sequence[str] | None = None) -> pd.DataFrame:
    """All stored procedure records, one row per procedure, with dictionary columns and dtypes.

    Parameters
    ----------
    database : str, optional
        SQLAlchemy URL or SQLite path; default ``DATABASE_URL`` or the embedded SQLite store.
    fast : bool
        Use the Arrow (ADBC) reader when it is available; ``False`` forces the DB-API reader.
    facilities : sequence of str, optional
        Only the records of these facility ids (``facility_id``); ``None`` reads every
        facility, an empty sequence none. The dashboard passes a restricted user's facilities
        here, so their other rows never reach a page.

    Returns
    -------
    pandas.DataFrame
        Columns in data-dictionary order: categoricals for coded fields, nullable ``Int64``,
        ``Float64`` and ``boolean`` for the rest, ``datetime64[ns]`` for dates, ``string`` ids.
        Sorted by ``procedure_date`` then ``record_id``; a default ``RangeIndex``.

    Examples
    --------
    >>> from data import load_records
    >>> records = load_records()  # doctest: +SKIP
    >>> records.groupby("procedure", observed=True).size()  # doctest: +SKIP
    >>> north = load_records(facilities=["F01", "F02"])  # doctest: +SKIP
    """
    try:
        frame = _load_all(database, fast=fast)
    finally:
        _release_arrow_memory()
    return frame if facilities is None else restrict_to_facilities(frame, facilities)


def _release_arrow_memory() -> None:
    """Give Arrow's freed buffers back to the operating system.

    Arrow's allocator (mimalloc or jemalloc) keeps the pages of freed buffers for reuse. After
    a load every Arrow buffer has been converted to pandas, so at 1,000,000 records the process
    would otherwise keep about 330 MB of resident memory it no longer uses (1.09 GB resident
    instead of 0.77 GB after reading the Parquet snapshot; issue 6's memory target).
    """
    pa.default_memory_pool().release_unused()


def restrict_to_facilities(frame: pd.DataFrame, facilities: Sequence[str]) -> pd.DataFrame:
    """The rows of ``frame`` whose ``facility_id`` is one of ``facilities`` (a new frame with
    a fresh ``RangeIndex``; the order of the rows is kept).

    >>> frame = pd.DataFrame({"facility_id": ["A", "B", "A"], "x": [1, 2, 3]})
    >>> restrict_to_facilities(frame, ["A"]).x.tolist()
    [1, 3]
    """
    if isinstance(facilities, str):  # a lone id would otherwise be read as its characters
        raise TypeError("facilities must be a sequence of facility ids, not a string")
    wanted = {str(f) for f in facilities}
    mask = frame["facility_id"].isin(wanted).fillna(False).to_numpy(dtype=bool)
    return frame.loc[mask].reset_index(drop=True)


def _load_all(database: str | None, *, fast: bool) -> pd.DataFrame:
    url = store.database_url(database)
    engine = store.get_engine(url)  # creates or upgrades the schema, refuses a foreign database
    if not fast:
        return _read_dbapi(url)
    if engine.dialect.name == "postgresql":
        try:
            return _arrow_to_frame(_read_adbc_postgres(url))
        except ImportError:
            return _read_dbapi(url)
        except Exception as error:  # noqa: BLE001 - any driver problem: use the reliable path
            log.warning("fast Arrow read failed (%s); reading through the DB-API instead", error)
            return _read_dbapi(url)
    path = snapshot_path(url, store.data_version(url))
    if path is not None and path.exists():
        try:
            frame = pd.read_parquet(path)
            expected = {f.name: f.pandas_dtype for f in FIELDS}
            if all(str(frame[name].dtype) == dtype for name, dtype in expected.items()):
                return frame
            return apply_dtypes(frame)
        except Exception as error:  # noqa: BLE001 - a damaged snapshot is rebuilt
            log.warning("ignoring unreadable snapshot %s: %s", path, error)
    frame = _read_dbapi(url)
    if path is not None:
        _write_snapshot(frame, path)
    return frame
