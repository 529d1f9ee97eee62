"""Reading stored records into a typed pandas DataFrame."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from data import store
from data.dictionary import FIELDS


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


def load_records(database: str | None = None) -> pd.DataFrame:
    """All stored procedure records, one row per procedure, with dictionary columns and dtypes.

    Parameters
    ----------
    database : str, optional
        SQLAlchemy URL or SQLite path; default ``DATABASE_URL`` or the embedded SQLite store.

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
    """
    engine = store.get_engine(database)
    columns = [store.records.c[field.name] for field in FIELDS]
    query = sa.select(*columns).order_by(store.records.c.procedure_date, store.records.c.record_id)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # The raw DB-API path is several times faster than SQLAlchemy's row processing;
            # dates come back as ISO text and booleans as 0/1, which apply_dtypes converts.
            sql = str(query.compile(dialect=connection.dialect))
            cursor = connection.connection.driver_connection.execute(sql)
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=[f.name for f in FIELDS])
        else:
            frame = pd.read_sql_query(query, connection)
    return apply_dtypes(frame)
