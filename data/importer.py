"""Import of exported procedure records: read, map, screen, normalise, validate, store.

Every row read ends in exactly one of four outcomes, so that
``rows_read == accepted + rejected + duplicates + conflicts`` always holds:

* **accepted**: stored (with ``replace=True`` this includes rows that replaced a stored record
  with the same ``record_id``; they are also counted in ``replaced``);
* **rejected**: failed a rule; kept in quarantine with every reason (field, rule, value);
* **duplicate**: identical to a stored record, or to an earlier row of the same import;
* **conflict**: same ``record_id`` as a stored record but different content; never overwritten
  silently (quarantined with the reason ``conflict``; ``replace=True`` is the explicit way).

A whole import is one database transaction: a failure or a kill midway leaves nothing behind.
Re-importing a file that is identical to an earlier batch changes nothing.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from data import audit, phi, store
from data.dictionary import FIELDS, FIELDS_BY_NAME, REQUIRED_FIELDS, alias_map, normalise_heading
from data.limits import ImportLimits, LimitExceeded, check_parquet, check_xlsx
from data.normalise import TEXT_DTYPE, TYPE_RULES, ReadOptions, normalise_column
from data.validation import find_violations

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
# Longest text per field, from the store's column types (id 64, text 120 characters).
MAX_TEXT_CHARS: dict[str, int] = {
    column.name: column.type.length for column in store.records.columns
    if column.name in FIELDS_BY_NAME and isinstance(column.type, sa.String) and column.type.length
}
SUPPORTED_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".parquet")
REDACTED = "[redacted]"


class ImportRefused(Exception):
    """The whole file was refused (nothing stored). ``exit_status`` is 2."""

    exit_status = 2

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message  # without the path, so a caller can name the file differently
        super().__init__(f"{path}: {message}")


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why one row was not accepted."""

    row: int
    field: str
    rule: str
    value: str | None
    message: str


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """The accounting of one import batch (``rows_read = accepted + rejected + duplicates + conflicts``).

    Attributes
    ----------
    batch_id : int or None
        The batch number in the store; ``None`` when nothing was written (an identical re-import).
    file_name : str
    rows_read, accepted, rejected, duplicates, conflicts : int
    replaced : int
        Accepted rows that replaced a stored record (``replace=True`` only).
    top_coded_ages : int
        Ages above 89 recorded as 90.
    reasons : dict
        Rejection count per ``"field: rule"``, most frequent first.
    ignored_columns : list of str
        Headings that are not dictionary fields (not stored).
    identical_to_batch : int or None
        Set when the file is identical to an earlier batch and nothing changed.
    synthetic : bool
    sample_reasons : list of Reason
        The first rejection reasons (row, field, rule, value), for messages.
    """

    batch_id: int | None
    file_name: str
    rows_read: int
    accepted: int
    rejected: int
    duplicates: int
    conflicts: int
    replaced: int
    top_coded_ages: int
    reasons: dict[str, int]
    ignored_columns: list[str]
    identical_to_batch: int | None = None
    synthetic: bool = False
    sample_reasons: list[Reason] = dataclasses.field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.accepted + self.rejected + self.duplicates + self.conflicts

    def to_json_dict(self) -> dict:
        return {
            "batch_id": self.batch_id, "file": self.file_name, "rows_read": self.rows_read,
            "accepted": self.accepted, "rejected": self.rejected, "duplicates": self.duplicates,
            "conflicts": self.conflicts, "replaced": self.replaced,
            "top_coded_ages": self.top_coded_ages, "reasons": self.reasons,
            "ignored_columns": self.ignored_columns, "identical_to_batch": self.identical_to_batch,
            "synthetic": self.synthetic,
        }

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in self.to_json_dict().items()
                              if not isinstance(v, (dict, list))}])


# ----------------------------------------------------------------------------------------------
# Reading


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_encoding(path: Path) -> str:
    """``utf-16``/``utf-32`` when the file starts with their byte-order mark, ``utf-8-sig`` when
    the whole file decodes as UTF-8 (BOM or not), else ``latin-1``.

    A UTF-16 export without a byte-order mark is read as Latin-1; its NUL bytes then make the
    heading row unreadable and the file is refused with that reason.
    """
    with path.open("rb") as handle:
        start = handle.read(4)
    if start.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    incremental = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                incremental.decode(block)
            incremental.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig"


def sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def read_chunks(path: Path, chunk_rows: int = CHUNK_ROWS, limits: ImportLimits | None = None,
                ) -> tuple[list[str], Iterator[pd.DataFrame], ReadOptions]:
    """Headings and an iterator of raw text chunks (every cell a string, blank as "").

    ``limits`` (default: :meth:`ImportLimits.from_environment`) caps the columns, rows and
    uncompressed size a file may declare or hold; a file over a limit is refused with a
    message naming the limit and its setting (:mod:`data.limits`).
    """
    limits = ImportLimits.from_environment() if limits is None else limits
    try:
        return _read_chunks(path, chunk_rows, limits)
    except LimitExceeded as error:
        raise ImportRefused(str(path), f"{error}. Nothing was stored.") from error


def _read_chunks(path: Path, chunk_rows: int, limits: ImportLimits,
                 ) -> tuple[list[str], Iterator[pd.DataFrame], ReadOptions]:
    suffix = path.suffix.lower()
    options = ReadOptions()
    if suffix in (".csv", ".txt", ".tsv"):
        encoding = detect_encoding(path)
        try:
            with path.open(encoding=encoding, newline="") as handle:
                sample = handle.read(64 * 1024)
        except UnicodeError as error:
            raise ImportRefused(str(path), f"is not readable text in {encoding}: {error.reason} "
                                "(save it as UTF-8 CSV and try again)") from error
        if not sample.strip():
            raise ImportRefused(str(path), "the file is empty")
        if "\x00" in sample:
            # NUL characters never occur in a text export: this is a binary file or a UTF-16
            # file without a byte-order mark.
            raise ImportRefused(str(path), "is not a text (CSV) file: it contains NUL bytes. "
                                "Save it as UTF-8 CSV, or give an .xlsx/.parquet file its own "
                                "extension.")
        delimiter = "\t" if suffix == ".tsv" else sniff_delimiter(sample)
        options.decimal_comma = delimiter == ";"
        csv.field_size_limit(FIELD_SIZE_LIMIT)
        handle = path.open(encoding=encoding, newline="")
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        try:
            headings = [h.strip() for h in next(reader)]
        except StopIteration as error:
            handle.close()
            raise ImportRefused(str(path), "the file has no heading row") from error
        except (csv.Error, UnicodeError) as error:
            handle.close()
            raise ImportRefused(str(path), f"cannot read the heading row: {error}") from error
        if any(len(h) > MAX_HEADING_CHARS for h in headings):
            handle.close()
            raise ImportRefused(str(path), f"the heading row has a heading longer than "
                                f"{MAX_HEADING_CHARS} characters: is the first line really the "
                                "heading row?")
        try:
            limits.check_columns(len(headings), "the heading row")
        except LimitExceeded:
            handle.close()
            raise
        return headings, _csv_chunks(str(path), handle, reader, headings, chunk_rows,
                                     limits), options
    if suffix == ".xlsx":
        return _read_xlsx(path, chunk_rows, limits, options)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:
            raise ImportRefused(str(path), f"cannot be read as Parquet: {error}") from error
        check_parquet(parquet.metadata, limits)
        headings = list(parquet.schema_arrow.names)

        def parquet_chunks() -> Iterator[pd.DataFrame]:
            try:
                for batch in parquet.iter_batches(batch_size=chunk_rows):
                    yield _parquet_text(batch)
            except (OSError, pa.ArrowException) as error:  # a damaged row group midway
                raise ImportRefused(str(path), f"cannot be read as Parquet: {error}") from error

        return headings, parquet_chunks(), options
    raise ImportRefused(str(path), f"unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _read_xlsx(path: Path, chunk_rows: int, limits: ImportLimits, options: ReadOptions,
               ) -> tuple[list[str], Iterator[pd.DataFrame], ReadOptions]:
    """The first sheet of a workbook, streamed (openpyxl's read-only mode) after its
    uncompressed size and declared dimension passed the limits; rows are never padded to a
    declared width, and each row's actual width and the row count are checked as they come."""
    import openpyxl

    try:
        check_xlsx(path, limits)
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        # Read-only mode takes these from the sheet's <dimension ref="A1:XFD9"> (None if absent).
        declared_rows, declared_columns = sheet.max_row, sheet.max_column
    except (LimitExceeded, MemoryError):
        raise
    except Exception as error:  # zipfile and openpyxl raise many types for damaged workbooks
        raise ImportRefused(str(path), f"cannot be read as an Excel workbook: {error}") from error
    what = f"the sheet {sheet.title!r} (its declared dimension)"
    try:
        if declared_columns is not None:
            limits.check_columns(declared_columns, what)
        if declared_rows is not None:
            limits.check_rows(declared_rows - 1, what)
    except LimitExceeded:
        workbook.close()
        raise
    sheet.reset_dimensions()  # rows as wide as their last cell, not as the declaration says
    rows = sheet.iter_rows(values_only=True)
    heading_row = 0
    headings: list[str] | None = None
    try:
        for heading_row, row in enumerate(rows, start=1):
            limits.check_columns(len(row), f"row {heading_row} of the sheet")
            if any(cell not in (None, "") for cell in row):
                headings = _xlsx_headings(row)
                break
    except (LimitExceeded, MemoryError):
        workbook.close()
        raise
    except Exception as error:
        workbook.close()
        raise ImportRefused(str(path), f"cannot be read as an Excel workbook: {error}") from error
    if headings is None:
        workbook.close()
        raise ImportRefused(str(path), "the workbook's first sheet is empty")
    return headings, _xlsx_chunks(str(path), workbook, rows, headings, heading_row, chunk_rows,
                                  limits), options


def _xlsx_headings(row: tuple) -> list[str]:
    """Heading texts; a trailing run of blank cells is not a column, an inner blank one is
    ``Unnamed: i`` (as pandas names it)."""
    cells = list(row)
    while cells and cells[-1] in (None, ""):
        cells.pop()
    return [f"Unnamed: {i}" if cell in (None, "") else _xlsx_text(cell).strip()
            for i, cell in enumerate(cells)]


def _xlsx_text(value) -> str:
    """A cell as the text pandas' Excel reader gave it (``dtype=str``): whole numbers without
    ``.0``, dates as ``YYYY-MM-DD HH:MM:SS``, blank as ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_chunks(path: str, workbook, rows: Iterator[tuple], headings: list[str], heading_row: int,
                 chunk_rows: int, limits: ImportLimits) -> Iterator[pd.DataFrame]:
    """Data rows as text chunks; blank rows are skipped (as in a CSV file), cells beyond the
    headings are not read into the frame, and a row wider than the column limit or a sheet
    longer than the row limit stops the import."""
    width = len(headings)
    read = 0
    batch: list[list[str]] = []
    try:
        for number, row in enumerate(rows, start=heading_row + 1):
            limits.check_columns(len(row), f"row {number} of the sheet")
            cells = [_xlsx_text(cell) for cell in row[:width]]
            if not any(cells):
                continue
            read += 1
            limits.check_rows(read, "the sheet")
            batch.append(cells + [""] * (width - len(cells)))
            if len(batch) == chunk_rows:
                yield _xlsx_frame(batch, headings)
                batch = []
        if batch:
            yield _xlsx_frame(batch, headings)
    except LimitExceeded as error:
        raise ImportRefused(path, f"{error}. Nothing was stored.") from error
    except (ImportRefused, MemoryError):
        raise
    except Exception as error:  # a damaged sheet part midway
        raise ImportRefused(path, f"cannot be read as an Excel workbook: {error}") from error
    finally:
        workbook.close()


def _xlsx_frame(rows: list[list[str]], headings: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=range(len(headings)), dtype=object)
    frame.columns = headings  # set afterwards: duplicate headings must not collapse columns
    return frame


def _parquet_text(batch: pa.RecordBatch) -> pd.DataFrame:
    """One Parquet record batch as text cells (blank for null), column by column and by
    position, so that binary, nested and repeated-name columns cannot break the import."""
    columns = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            # Arrow formats any date (year 1 too; a zoned timestamp in its own zone), where
            # pandas' nanosecond datetimes would overflow.
            text = pc.strftime(column, format="%Y-%m-%d").to_pandas()
            columns.append(pd.Series(text, dtype="string"))
            continue
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) \
                or pa.types.is_fixed_size_binary(kind):
            values = [None if v is None else v.decode("utf-8", "replace")
                      for v in column.to_pylist()]
        elif pa.types.is_nested(kind):
            values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
        else:
            columns.append(pd.Series(column.to_pandas(), dtype=object).astype("string"))
            continue
        columns.append(pd.Series(values, dtype="string"))
    frame = pd.concat(columns, axis=1, ignore_index=True) if columns else pd.DataFrame()
    frame.columns = list(batch.schema.names)
    return frame.fillna("")


FIELD_COUNT = "__field_count__"  # hidden column: how many cells the CSV row really had
# Python's csv module refuses cells over 131,072 characters; real exports can carry long free
# text, so the limit is raised; a longer cell is a damaged file, refused with its line number.
FIELD_SIZE_LIMIT = 16 * 1024 * 1024
MAX_HEADING_CHARS = 1000


def _csv_chunks(path: str, handle, reader, headings: list[str], chunk_rows: int,
                limits: ImportLimits | None = None) -> Iterator[pd.DataFrame]:
    """Rows as text chunks; a ragged row is padded or cut to the headings and tagged with its
    true cell count so that it is rejected (never silently realigned). More rows than
    ``limits`` allow stop the import."""
    width = len(headings)
    max_rows = limits.max_rows if limits is not None else None
    read = 0
    with handle:
        rows: list[list[str]] = []
        counts: list[int] = []
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line is not a record
                read += 1
                if max_rows is not None and read > max_rows:
                    raise ImportRefused(path, f"the file has more than {max_rows:,} rows, the "
                                        "limit (VA_IMPORT_MAX_ROWS). Nothing was stored.")
                counts.append(len(row))
                rows.append(row if len(row) == width else (row + [""] * width)[:width])
                if len(rows) == chunk_rows:
                    yield _text_frame(rows, counts, headings)
                    rows, counts = [], []
        except csv.Error as error:
            raise ImportRefused(path, f"line {reader.line_num} cannot be read: {error}") from error
        except UnicodeError as error:
            raise ImportRefused(path, f"after line {reader.line_num} the text cannot be decoded "
                                f"({error.reason}); save the file as UTF-8 CSV") from error
        if rows:
            yield _text_frame(rows, counts, headings)


def _text_frame(rows: list[list[str]], counts: list[int], headings: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=range(len(headings)), dtype=object)
    frame.columns = headings  # set afterwards: duplicate headings must not collapse columns
    frame[FIELD_COUNT] = counts
    return frame


# ----------------------------------------------------------------------------------------------
# Mapping headings


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
    field_of: dict[str, str]  # heading -> field
    ignored: list[str]


def map_headings(path: str, headings: list[str]) -> ColumnMapping:
    """Match headings to fields; refuse identifier columns, duplicate fields and missing required fields."""
    aliases = alias_map()
    field_of = {h: aliases[normalise_heading(h)] for h in headings if normalise_heading(h) in aliases}
    identifiers = phi.identifier_columns(headings, known=set(field_of))
    if identifiers:
        raise ImportRefused(
            path, "refused: the file has columns that look like direct patient identifiers ("
            + ", ".join(repr(h) for h in identifiers)
            + "). Only de-identified data may be imported: remove these columns and try again. "
            "Nothing was stored.")
    # Counted over the heading list, not the dict, so that repeated identical headings count too.
    mapped = [(h, aliases[normalise_heading(h)]) for h in headings if normalise_heading(h) in aliases]
    claimed = Counter(field for _h, field in mapped)
    doubled = {field: [h for h, f in mapped if f == field] for field, n in claimed.items() if n > 1}
    if doubled:
        detail = "; ".join(f"{field} ← {', '.join(repr(h) for h in hs)}" for field, hs in doubled.items())
        raise ImportRefused(path, f"several columns map to the same field ({detail}). Nothing was stored.")
    missing = [name for name in REQUIRED_FIELDS if name not in claimed and name != "procedure"]
    if "procedure" not in claimed and "cpt_code" not in claimed:
        missing.insert(0, "procedure")
    if missing:
        raise ImportRefused(
            path, "required column(s) missing: " + ", ".join(missing)
            + ". See docs/data-dictionary.md for the accepted headings. Nothing was stored.")
    return ColumnMapping(field_of, [h for h in headings if h not in field_of])


# ----------------------------------------------------------------------------------------------
# Per-chunk processing


@dataclasses.dataclass
class ChunkOutcome:
    typed: pd.DataFrame  # typed rows that passed every check (index = file row number)
    reasons: list[Reason]
    raw: pd.DataFrame  # mapped raw text (index = file row number), identifiers redacted
    top_coded: int


def process_chunk(raw_chunk: pd.DataFrame, mapping: ColumnMapping, options: ReadOptions,
                  first_row: int) -> ChunkOutcome:
    """Normalise and validate one chunk; ``first_row`` is the file row number of its first row."""
    raw = raw_chunk[list(mapping.field_of)].rename(columns=mapping.field_of)
    raw.index = pd.RangeIndex(first_row, first_row + len(raw))
    raw = raw.astype(TEXT_DTYPE)
    reasons: list[Reason] = []
    typed = pd.DataFrame(index=raw.index)
    unreadable: set[tuple[int, str]] = set()

    if FIELD_COUNT in raw_chunk:
        width = len(raw_chunk.columns) - 1
        counts = raw_chunk[FIELD_COUNT].to_numpy()
        for position in np.flatnonzero(counts != width):
            reasons.append(Reason(first_row + int(position), "(row)", "field_count", str(counts[position]),
                                  f"the row has {counts[position]} cells but the heading row has {width}"))

    for name in raw.columns:
        values, failed = normalise_column(name, raw[name], options)
        typed[name] = values
        for row in raw.index[failed.to_numpy(dtype=bool)]:
            kind = FIELDS_BY_NAME[name].kind
            reasons.append(Reason(int(row), name, TYPE_RULES[kind], str(raw.at[row, name]),
                                  f"{name} must be {_expected_text(name)}"))
            unreadable.add((int(row), name))

    # A value longer than its store column is rejected here: PostgreSQL would refuse the whole
    # batch ("value too long") and SQLite would store it silently. The value itself is not
    # repeated in the reason (it may be megabytes long).
    for name in raw.columns:
        limit = MAX_TEXT_CHARS.get(name)
        if limit is None:
            continue
        lengths = typed[name].astype(TEXT_DTYPE).str.len()
        for row in typed.index[(lengths > limit).fillna(False).to_numpy(dtype=bool)]:
            reasons.append(Reason(int(row), name, "max_length", f"{int(lengths[row])} characters",
                                  f"{name} must be at most {limit} characters"))
            typed.at[row, name] = pd.NA
            unreadable.add((int(row), name))

    # The procedure may be given only as a CPT code.
    if "cpt_code" in typed:
        is_vp = (typed["cpt_code"] <= 22512).fillna(False).to_numpy(dtype=bool)
        from_cpt = pd.Series(np.where(is_vp, "vertebroplasty", "kyphoplasty"),
                             index=typed.index).where(typed["cpt_code"].notna())
        typed["procedure"] = typed["procedure"].fillna(from_cpt) if "procedure" in typed else from_cpt

    # Identifier-looking values: reject the row and never keep the value.
    for name in phi.SCREENED_FIELDS:
        if name not in typed:
            continue
        kinds = phi.identifier_values(typed[name])
        for row in kinds.index[kinds.notna().to_numpy(dtype=bool)]:
            reasons.append(Reason(int(row), name, "identifier_pattern", REDACTED,
                                  f"{name} looks like a {kinds[row]}; only pseudonymous values are accepted"))
            raw.at[row, name] = REDACTED
            typed.at[row, name] = pd.NA
            unreadable.add((int(row), name))

    top_coded = 0
    if "age" in typed:
        over = (typed["age"] > 89) & (typed["age"] <= 120)
        top_coded = int(over.sum())
        typed.loc[over.fillna(False).astype(bool), "age"] = 90

    for failure in find_violations(typed).itertuples(index=False):
        row = int(failure.index)
        if (row, failure.field) in unreadable:
            continue  # already rejected for unreadable text; do not repeat as "required" etc.
        value = None if failure.value is None or pd.isna(failure.value) else str(failure.value)
        reasons.append(Reason(row, failure.field, failure.rule, value, failure.message))

    # A ragged row's other failures are consequences of the misalignment: report the cause only.
    ragged = {reason.row for reason in reasons if reason.rule == "field_count"}
    if ragged:
        reasons = [r for r in reasons if r.row not in ragged or r.rule == "field_count"]
    bad_rows = {reason.row for reason in reasons}
    keep = ~typed.index.isin(list(bad_rows))
    return ChunkOutcome(typed[keep], reasons, raw, top_coded)


def _expected_text(name: str) -> str:
    field = FIELDS_BY_NAME[name]
    return {
        "category": f"one of {field.values_text}",
        "boolean": "yes/no (Y/N, true/false, 1/0)",
        "integer": "a whole number",
        "number": "a number",
        "date": "a date (YYYY-MM-DD or a common date format)",
    }[field.kind]


def to_store_rows(typed: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Record columns in store order with Python scalars (dates as ISO text) and content hashes.

    The content hash is the SHA-256 of the record's canonical text (each field's value as text,
    a NUL for missing, joined by a unit separator), so identical records hash identically
    whatever file format they came from.
    """
    frame = pd.DataFrame(index=typed.index)
    texts = []
    for field in FIELDS:
        column = typed[field.name] if field.name in typed else pd.Series(pd.NA, index=typed.index)
        if field.kind == "date":
            days = pd.to_datetime(column).to_numpy(dtype="datetime64[D]")
            column = pd.Series(np.datetime_as_string(days), index=typed.index).where(~np.isnat(days))
        else:
            column = column.astype({"integer": "Int64", "number": "Float64", "boolean": "boolean"}
                                   .get(field.kind, TEXT_DTYPE))
        values = column.astype(object).where(column.notna(), None)
        frame[field.name] = values
        texts.append(pa.array(values, from_pandas=True).cast(pa.string()).fill_null("\x00"))
    joined = pc.binary_join_element_wise(*texts, "\x1f").to_pylist()
    frame["content_hash"] = [hashlib.sha256(value.encode()).hexdigest() for value in joined]
    return list(store.RECORD_COLUMNS), frame


# ----------------------------------------------------------------------------------------------
# The batch


#: Functions ``listener(database, result)`` the import entry points call after a batch commits
#: (:func:`run_import_listeners`). The data layer names no listener itself: a higher layer
#: registers one (the web app, for quality alerts: ``dashboard.alerts.install``), and the
#: command line loads the modules named in ``VA_IMPORT_LISTENERS`` (each with ``on_import``).
IMPORT_LISTENERS: list = []
ENV_IMPORT_LISTENERS = "VA_IMPORT_LISTENERS"


def add_import_listener(listener) -> None:
    """Call ``listener(database, result)`` after each committed import batch (once each)."""
    if listener not in IMPORT_LISTENERS:
        IMPORT_LISTENERS.append(listener)


def load_import_listeners(names: str | None = None) -> list[str]:
    """Register the ``on_import`` of each module named (comma-separated; default
    ``VA_IMPORT_LISTENERS``); returns the modules loaded."""
    import importlib

    loaded = []
    text = os.environ.get(ENV_IMPORT_LISTENERS, "") if names is None else names
    for name in (n.strip() for n in text.split(",")):
        if name:
            add_import_listener(importlib.import_module(name).on_import)
            loaded.append(name)
    return loaded


def run_import_listeners(database: str | None, result: ImportResult) -> None:
    """Tell the listeners about a committed batch; a failing listener is logged, never raised
    (the batch is stored whatever a listener does)."""
    if result.batch_id is None:
        return
    for listener in list(IMPORT_LISTENERS):
        try:
            listener(database, result)
        except Exception:  # noqa: BLE001 - the import succeeded; a listener must not undo that
            log.exception("import listener %s failed", getattr(listener, "__name__", listener))


def default_actor(prefix: str = "python") -> str:
    """``<prefix>:<OS user>``: who runs an import outside the dashboard (e.g. ``cli:alice``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{prefix}:{user}"


def _audit_detail(file_name: str, sha256: str | None, status: str, **counts) -> dict:
    return {"file": file_name, "sha256_prefix": (sha256 or "")[:12], "status": status, **counts}


def _write_import_event(connection, actor: str, detail: dict) -> None:
    """The ``import`` audit event, in the caller's transaction. A file name that itself looks
    like an identifier (an e-mail address, say) is recorded as redacted rather than failing."""
    try:
        audit.write_event(connection, actor, "import", detail)
    except audit.AuditError:
        audit.write_event(connection, actor, "import", {**detail, "file": REDACTED})


def _log_refusal(database: str | None, actor: str, file_name: str) -> None:
    """Audit a refused file (nothing was stored; the reason is not logged: it names columns)."""
    with store.get_engine(database).begin() as connection:
        _write_import_event(connection, actor, _audit_detail(file_name, None, "refused"))


def import_file(path: str | os.PathLike[str], database: str | None = None, *, replace: bool = False,
                synthetic: bool = False, progress: bool | None = None, actor: str | None = None,
                file_name: str | None = None, limits: ImportLimits | None = None) -> ImportResult:
    """Import one export file (CSV, Excel .xlsx or Parquet) into the store as one batch.

    Parameters
    ----------
    path : str or path-like
        The file. CSV delimiter and encoding (UTF-8 with or without BOM, else Latin-1) are
        detected.
    database : str, optional
        SQLAlchemy URL or SQLite path; default ``DATABASE_URL`` or ``instance/…db``.
    replace : bool
        Let rows whose ``record_id`` is stored with different content replace the stored record.
    synthetic : bool
        Mark the batch as synthetic (demo) data.
    progress : bool, optional
        Show a progress bar (default: when standard error is a terminal).
    actor : str, optional
        Who imports, for the audit log (``cli:<OS user>``, a signed-in user's name); default
        ``python:<OS user>``.
    file_name : str, optional
        The name to record and show instead of ``path``'s (an upload saved to a temporary file).
    limits : ImportLimits, optional
        Caps on the columns, rows and uncompressed size the file may declare or hold; default
        :meth:`ImportLimits.from_environment`, ``ImportLimits.unlimited()`` lifts them. (The
        memory and time limits apply when the import runs in a child process:
        :func:`data.isolation.import_file_isolated`.)

    Returns
    -------
    ImportResult

    Raises
    ------
    ImportRefused
        The whole file was refused (identifier columns, missing required columns, unreadable,
        over a limit); nothing was stored.

    Examples
    --------
    >>> from data import import_file
    >>> result = import_file("tests/fixtures/messy_export.csv", "sqlite:///:memory:")  # doctest: +SKIP
    >>> result.rows_read == result.accepted + result.rejected + result.duplicates + result.conflicts  # doctest: +SKIP
    True
    """
    path = Path(path)
    actor = actor or default_actor()
    name = file_name or path.name
    try:
        if not path.is_file():
            raise ImportRefused(str(path), "no such file")
        headings, chunks, options = read_chunks(path, limits=limits)
        mapping = map_headings(str(path), headings)
        return _import(name, file_sha256(path), mapping, chunks, options, database,
                       replace=replace, synthetic=synthetic, progress=progress,
                       size_hint=path.stat().st_size, actor=actor)
    except ImportRefused as refused:
        _log_refusal(database, actor, name)
        if file_name is not None and refused.path != file_name:
            raise ImportRefused(file_name, refused.reason) from refused
        raise


def import_dataframe(frame: pd.DataFrame, name: str, database: str | None = None, *,
                     replace: bool = False, synthetic: bool = False,
                     actor: str | None = None) -> ImportResult:
    """Import a DataFrame through the same pipeline as a file (used for the demo data).

    Examples
    --------
    >>> from data import demo_records, import_dataframe
    >>> import_dataframe(demo_records(100, seed=1), "demo", "sqlite:///demo.db",
    ...                  synthetic=True).accepted  # doctest: +SKIP
    100
    """
    text = frame.copy()
    for column in text:
        if pd.api.types.is_datetime64_any_dtype(text[column]):
            text[column] = text[column].dt.strftime("%Y-%m-%d")
    text = text.astype("string").fillna("")
    headings = [str(c) for c in text.columns]
    mapping = map_headings(name, headings)
    digest = hashlib.sha256(pd.util.hash_pandas_object(text, index=False).to_numpy().tobytes()).hexdigest()
    chunks = (text.iloc[i:i + CHUNK_ROWS] for i in range(0, len(text), CHUNK_ROWS))
    return _import(name, digest, mapping, chunks, ReadOptions(), database, replace=replace,
                   synthetic=synthetic, progress=False, size_hint=None,
                   actor=actor or default_actor())


def _import(file_name: str, sha256: str, mapping: ColumnMapping, chunks: Iterator[pd.DataFrame],
            options: ReadOptions, database: str | None, *, replace: bool, synthetic: bool,
            progress: bool | None, size_hint: int | None, actor: str) -> ImportResult:
    engine = store.get_engine(database)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    counts = Counter()
    reason_counts: Counter[str] = Counter()
    samples: list[Reason] = []
    show_progress = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(desc=f"importing {file_name}", unit=" rows", file=sys.stderr)

    with engine.begin() as connection:
        batch_id = connection.execute(store.import_batches.insert().values(
            file_name=file_name[:255], sha256=sha256, started_at=started, finished_at=started,
            status="running", synthetic=synthetic, rows_read=0, accepted=0, rejected=0,
            duplicates=0, conflicts=0, replaced=0, top_coded_ages=0,
            ignored_columns=json.dumps(mapping.ignored))).inserted_primary_key[0]
        next_row = 2  # row 1 is the heading row, as a spreadsheet shows it
        for raw_chunk in chunks:
            outcome = process_chunk(raw_chunk, mapping, options, next_row)
            next_row += len(raw_chunk)
            counts["rows_read"] += len(raw_chunk)
            counts["top_coded_ages"] += outcome.top_coded
            _quarantine(connection, batch_id, outcome, counts, reason_counts, samples)
            _store_accepted(connection, batch_id, outcome, replace, counts)
            if bar is not None:
                bar.update(len(raw_chunk))
        if bar is not None:
            bar.close()

        identical = connection.execute(
            sa.select(store.import_batches.c.batch_id).where(
                store.import_batches.c.sha256 == sha256,
                store.import_batches.c.batch_id != batch_id,
                store.import_batches.c.status == "complete",
            ).order_by(store.import_batches.c.batch_id).limit(1)).scalar()
        result_batch: int | None = batch_id
        totals = {key: counts[key] for key in ("rows_read", "accepted", "rejected", "duplicates",
                                               "conflicts", "replaced", "top_coded_ages")}
        if identical is not None and counts["accepted"] == 0:
            connection.rollback()  # a re-import of the same file: leave the store exactly as it was
            result_batch = None
            # The audit row of an unchanged re-import goes in a transaction of its own (below).
        else:
            connection.execute(store.import_batches.update().where(
                store.import_batches.c.batch_id == batch_id).values(
                    status="complete", finished_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    **totals))
            # Same transaction as the batch: a killed import leaves neither batch nor audit row.
            _write_import_event(connection, actor, _audit_detail(
                file_name, sha256, "complete", batch_id=batch_id, synthetic=synthetic, **totals))
    if result_batch is None:
        with engine.begin() as connection:
            _write_import_event(connection, actor, _audit_detail(
                file_name, sha256, "unchanged", batch_id=None, identical_to_batch=identical,
                synthetic=synthetic, **totals))
    return ImportResult(
        batch_id=result_batch, file_name=file_name, rows_read=counts["rows_read"],
        accepted=counts["accepted"], rejected=counts["rejected"], duplicates=counts["duplicates"],
        conflicts=counts["conflicts"], replaced=counts["replaced"],
        top_coded_ages=counts["top_coded_ages"], reasons=dict(reason_counts.most_common()),
        ignored_columns=mapping.ignored, identical_to_batch=identical if result_batch is None else None,
        synthetic=synthetic, sample_reasons=samples)


def _quarantine(connection, batch_id: int, outcome: ChunkOutcome, counts: Counter,
                reason_counts: Counter, samples: list[Reason]) -> None:
    by_row: dict[int, list[Reason]] = {}
    for reason in outcome.reasons:
        by_row.setdefault(reason.row, []).append(reason)
    if not by_row:
        return
    counts["rejected"] += len(by_row)
    rows = []
    raw = outcome.raw
    for row, reasons in sorted(by_row.items()):
        for reason in reasons:
            reason_counts[f"{reason.field}: {reason.rule}"] += 1
        if len(samples) < 20:
            samples.extend(reasons[: 20 - len(samples)])
        raw_values = {k: v for k, v in raw.loc[row].items() if not pd.isna(v) and v != ""}
        rows.append((batch_id, row, "rejected", json.dumps([dataclasses.asdict(r) for r in reasons]),
                     json.dumps(raw_values)))
    store.bulk_insert(connection, store.rejected_rows,
                      ("batch_id", "row_number", "outcome", "reasons", "raw_values"), rows)


def _store_accepted(connection, batch_id: int, outcome: ChunkOutcome, replace: bool, counts: Counter) -> None:
    typed = outcome.typed
    if typed.empty:
        return
    columns, frame = to_store_rows(typed)
    ids = frame["record_id"].tolist()
    stored = store.existing_hashes(connection, list(dict.fromkeys(ids)))
    seen_in_chunk: dict[str, str] = {}
    to_insert: list[int] = []
    to_replace: list[str] = []
    conflict_rows = []
    for position, (record_id, content_hash) in enumerate(zip(ids, frame["content_hash"], strict=True)):
        previous = seen_in_chunk.get(record_id, stored.get(record_id))
        if previous is None:
            to_insert.append(position)
        elif previous == content_hash:
            counts["duplicates"] += 1
            continue
        elif replace:
            to_insert.append(position)
            to_replace.append(record_id)
        else:
            counts["conflicts"] += 1
            row = int(frame.index[position])
            raw_values = {k: v for k, v in outcome.raw.loc[row].items() if not pd.isna(v) and v != ""}
            reason = Reason(row, "record_id", "conflict", record_id,
                            "a stored record has this record_id with different content; "
                            "use --replace to replace it")
            conflict_rows.append((batch_id, row, "conflict", json.dumps([dataclasses.asdict(reason)]),
                                  json.dumps(raw_values)))
            continue
        seen_in_chunk[record_id] = content_hash
    if to_replace:
        # A replaced id may appear twice in one chunk; only the last version is kept.
        store.delete_records(connection, list(dict.fromkeys(to_replace)))
        counts["replaced"] += len(to_replace)
    if to_insert:
        chosen = frame.iloc[to_insert]
        if to_replace:
            chosen = chosen.drop_duplicates("record_id", keep="last")
            counts["duplicates"] += len(to_insert) - len(chosen)  # superseded within the same file
        counts["accepted"] += len(chosen)
        values = chosen[[*columns, "content_hash"]].assign(batch_id=batch_id)
        store.bulk_insert(connection, store.records, [*columns, "content_hash", "batch_id"],
                          values.itertuples(index=False, name=None))
    if conflict_rows:
        store.bulk_insert(connection, store.rejected_rows,
                          ("batch_id", "row_number", "outcome", "reasons", "raw_values"), conflict_rows)
