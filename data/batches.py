"""What the stored data are: the share of synthetic (demo) records, removing the demo batches,
and a batch's quarantine as a table.

* :func:`synthetic_share` — how many stored records came from a synthetic batch (the demo
  generator), counted over the records themselves (a demo record replaced by a real import
  belongs to the real batch), optionally only for some facilities.
* :func:`remove_synthetic_batches` — delete the records and quarantined rows of every
  synthetic batch, mark the batches ``removed`` (their row stays, so the import history shows
  what happened) and write a ``remove_batch`` audit event, all in one transaction.
* :func:`quarantine_table` — a batch's quarantined rows with their reasons (the columns of
  ``python -m data rejected``); the quarantine holds the redacted values of the mapped columns
  only, never a refused identifier column.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

import pandas as pd
import sqlalchemy as sa

from data import audit, store

#: Status of a batch whose records were removed (the batch row is kept for the history).
REMOVED = "removed"


@dataclasses.dataclass(frozen=True)
class SyntheticShare:
    """Stored records that came from a synthetic (demo) batch.

    Attributes
    ----------
    synthetic : int
        Records whose batch is marked synthetic.
    total : int
        All stored records (of the facilities asked for).

    Examples
    --------
    >>> share = SyntheticShare(synthetic=5000, total=5002)
    >>> share.any, share.all, round(share.percent, 2)
    (True, False, 99.96)
    >>> share.sentence()
    '5,000 of 5,002 records (99.96%) are synthetic demo data.'
    """

    synthetic: int
    total: int

    @property
    def any(self) -> bool:
        return self.synthetic > 0

    @property
    def all(self) -> bool:
        return self.total > 0 and self.synthetic == self.total

    @property
    def percent(self) -> float:
        return 100.0 * self.synthetic / self.total if self.total else 0.0

    def sentence(self, count: Callable[[int], str] = "{:,}".format) -> str:
        """``"5,000 of 5,002 records (99.96%) are synthetic demo data."`` (empty when none).

        ``count`` formats each count; the dashboard passes its small-cell suppression, which
        shows counts from 1 to the threshold as a label. A count it hides is not revealed
        another way: the percentage is left out, and when the real records (the total minus
        the synthetic ones) are few, only the total is given ("all but <11 of 5,002").

        Examples
        --------
        >>> hide = lambda n: "<11" if 1 <= n <= 10 else f"{n:,}"
        >>> SyntheticShare(5000, 5002).sentence(hide)
        'All but <11 of 5,002 records are synthetic demo data.'
        >>> SyntheticShare(3, 5002).sentence(hide)
        '<11 of 5,002 records are synthetic demo data.'
        """
        if not self.any:
            return ""
        synthetic, total = count(self.synthetic), count(self.total)
        if self.all:
            return f"All {total} records are synthetic demo data."
        real = self.total - self.synthetic
        if count(real) != f"{real:,}":
            return f"All but {count(real)} of {total} records are synthetic demo data."
        shown = synthetic == f"{self.synthetic:,}" and total == f"{self.total:,}"
        percent = f" ({_percent(self.synthetic, self.total)})" if shown else ""
        return f"{synthetic} of {total} records{percent} are synthetic demo data."

    def to_frame(self) -> pd.DataFrame:
        """One row: ``synthetic, total, percent``."""
        return pd.DataFrame([{"synthetic": self.synthetic, "total": self.total,
                              "percent": self.percent}])


def _percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage with up to two decimals; a proper part never reads
    0% or 100% (``99.96%``, ``50%``, ``<0.01%``, ``>99.99%``)."""
    value = 100.0 * part / whole
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    if 0 < part < whole and float(text) == 0.0:
        return "<0.01%"
    if 0 < part < whole and float(text) == 100.0:
        return ">99.99%"
    return f"{text}%"


def synthetic_share(database: str | None = None,
                    facilities: Sequence[str] | None = None) -> SyntheticShare:
    """Count the stored records that came from a synthetic batch.

    Parameters
    ----------
    database : str or None
        Store URL or SQLite path (``None``: ``DATABASE_URL`` or the default store).
    facilities : sequence of str, optional
        Only the records of these facilities (a facility-restricted user's view).

    Returns
    -------
    SyntheticShare

    Examples
    --------
    >>> synthetic_share("sqlite:///:memory:")
    SyntheticShare(synthetic=0, total=0)
    """
    records, batches = store.records, store.import_batches
    where = [] if facilities is None else [records.c.facility_id.in_(list(facilities))]
    with store.get_engine(database).connect() as connection:
        kinds = {bool(flag) for flag in connection.execute(
            sa.select(batches.c.synthetic).where(batches.c.status == "complete").distinct())
            .scalars()}
        if len(kinds) < 2:  # all batches alike: a plain count (0.4 s less at 1M records)
            total = int(connection.execute(
                sa.select(sa.func.count()).select_from(records).where(*where)).scalar_one())
            return SyntheticShare(synthetic=total if kinds == {True} else 0, total=total)
        statement = (sa.select(batches.c.synthetic, sa.func.count())
                     .select_from(records.join(batches, records.c.batch_id == batches.c.batch_id))
                     .where(*where).group_by(batches.c.synthetic))
        counts = {bool(flag): int(n) for flag, n in connection.execute(statement)}
    return SyntheticShare(synthetic=counts.get(True, 0), total=sum(counts.values()))


@dataclasses.dataclass(frozen=True)
class RemovalResult:
    """What :func:`remove_synthetic_batches` removed."""

    batch_ids: tuple[int, ...]
    records: int
    quarantined: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"batches": ", ".join(map(str, self.batch_ids)),
                              "records": self.records, "quarantined": self.quarantined}])


def synthetic_batches(database: str | None = None) -> pd.DataFrame:
    """The synthetic batches that still hold data (status ``complete``), oldest first, with the
    number of records each holds now (``batch_id, file_name, records``)."""
    batches, records = store.import_batches, store.records
    held = (sa.select(sa.func.count()).select_from(records)
            .where(records.c.batch_id == batches.c.batch_id).scalar_subquery())
    statement = (sa.select(batches.c.batch_id, batches.c.file_name, held.label("records"))
                 .where(batches.c.synthetic.is_(True), batches.c.status == "complete")
                 .order_by(batches.c.batch_id))
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(statement).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=["batch_id", "file_name", "records"])


def remove_synthetic_batches(database: str | None, actor: str) -> RemovalResult:
    """Remove every synthetic (demo) batch's records and quarantine, audited.

    In one transaction: the records and quarantined rows of each synthetic batch with status
    ``complete`` are deleted, the batch is marked ``removed`` (its row and counts stay, so the
    import history shows it) and a ``remove_batch`` audit event names the batches and counts.
    Batches from real files are never touched. The data version changes
    (:func:`data.store.data_version` counts removed batches), so caches and the Parquet
    snapshot are rebuilt.

    Parameters
    ----------
    database : str or None
        Store URL or SQLite path.
    actor : str
        Who asked: the signed-in admin, or ``cli:<OS user>``.

    Returns
    -------
    RemovalResult
        The batches removed (empty when there were none) and the rows deleted.

    Examples
    --------
    >>> remove_synthetic_batches("sqlite:///:memory:", "cli:alice")
    RemovalResult(batch_ids=(), records=0, quarantined=0)
    """
    batches = store.import_batches
    with store.get_engine(database).begin() as connection:
        rows = connection.execute(
            sa.select(batches.c.batch_id, batches.c.file_name)
            .where(batches.c.synthetic.is_(True), batches.c.status == "complete")
            .order_by(batches.c.batch_id)).all()
        ids = [int(row.batch_id) for row in rows]
        if not ids:
            return RemovalResult((), 0, 0)
        removed_records = connection.execute(
            store.records.delete().where(store.records.c.batch_id.in_(ids))).rowcount
        removed_quarantine = connection.execute(
            store.rejected_rows.delete().where(store.rejected_rows.c.batch_id.in_(ids))).rowcount
        connection.execute(batches.update().where(batches.c.batch_id.in_(ids))
                           .values(status=REMOVED))
        audit.write_event(connection, actor, "remove_batch", {
            "batches": ids, "files": [str(row.file_name) for row in rows], "synthetic": True,
            "records": int(removed_records), "quarantined": int(removed_quarantine)})
    return RemovalResult(tuple(ids), int(removed_records), int(removed_quarantine))


#: The leading columns of a quarantine export (then the file's mapped columns).
QUARANTINE_COLUMNS = ("row", "outcome", "reasons")


def batch_exists(batch_id: int, database: str | None = None) -> bool:
    with store.get_engine(database).connect() as connection:
        return connection.execute(sa.select(store.import_batches.c.batch_id).where(
            store.import_batches.c.batch_id == int(batch_id))).scalar() is not None


def quarantine_table(batch_id: int, database: str | None = None) -> pd.DataFrame:
    """A batch's quarantined rows: ``row, outcome, reasons`` and the mapped columns' values.

    The values are those the quarantine kept (already redacted on import: a file with an
    identifier column is refused whole, so none is stored). Not neutralised: pass the table
    through :func:`data.spreadsheet.safe_csv` before writing a spreadsheet file.

    Examples
    --------
    >>> quarantine_table(1, "sqlite:///:memory:").columns.tolist()
    ['row', 'outcome', 'reasons']
    """
    table = store.rejected_rows
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.batch_id == int(batch_id))
            .order_by(table.c.row_number)).mappings().all()
    frame = pd.DataFrame([
        {"row": row["row_number"], "outcome": row["outcome"],
         "reasons": "; ".join(f"{r['field']}: {r['rule']}" + (f" ({r['value']})" if r["value"] else "")
                              for r in json.loads(row["reasons"])),
         **json.loads(row["raw_values"])}
        for row in rows
    ])
    return frame if len(frame.columns) else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
