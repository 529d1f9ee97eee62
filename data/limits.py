"""Limits of one import: what a file may declare and what reading it may cost.

A small file can describe a huge table: an 18 KB ``.xlsx`` with cells in columns A and XFD
made the former reader build 16,384 cells per row (33 s, 1.2 GB), a 68 KB one passed 3 GB.
Two layers keep an import bounded:

* **Declared size, checked before reading** (:func:`check_xlsx`, :func:`check_parquet`): the
  total uncompressed size of an ``.xlsx`` file's zip members, the sheet's declared dimension
  (``<dimension ref="A1:XFD9">``) and a Parquet file's declared rows, columns and uncompressed
  size. While streaming, the actual width and row count are checked again (a file may declare
  less than it holds); see :func:`data.importer.read_chunks`.
* **Memory and time of the process** (:mod:`data.isolation`): uploads and the command line
  run the import in a child process with an address-space limit (``RLIMIT_AS``) and a time
  limit, so that whatever slips through the first layer stops the child, not the server.

Every limit has a documented default, an environment variable, and can be lifted (``None``;
``python -m data import --no-limits``).

==============================  =================================  ==========
limit                           environment variable               default
==============================  =================================  ==========
columns of a file               ``VA_IMPORT_MAX_COLUMNS``          1,000
rows of a file                  ``VA_IMPORT_MAX_ROWS``             5,000,000
uncompressed size (xlsx, pq)    ``VA_IMPORT_MAX_UNCOMPRESSED_MB``  1,024 MB
memory of the import process    ``VA_IMPORT_MEMORY_MB``            4,096 MB
time of a command-line import   ``VA_IMPORT_SECONDS``              3,600 s
time of an upload               ``VA_UPLOAD_SECONDS``              100 s
==============================  =================================  ==========
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

DEFAULT_MAX_COLUMNS = 1_000
DEFAULT_MAX_ROWS = 5_000_000
DEFAULT_MAX_UNCOMPRESSED_MB = 1_024
DEFAULT_MEMORY_MB = 4_096
DEFAULT_SECONDS = 3_600
DEFAULT_UPLOAD_SECONDS = 100

_ENVIRONMENT = {
    "max_columns": ("VA_IMPORT_MAX_COLUMNS", DEFAULT_MAX_COLUMNS),
    "max_rows": ("VA_IMPORT_MAX_ROWS", DEFAULT_MAX_ROWS),
    "max_uncompressed_mb": ("VA_IMPORT_MAX_UNCOMPRESSED_MB", DEFAULT_MAX_UNCOMPRESSED_MB),
    "memory_mb": ("VA_IMPORT_MEMORY_MB", DEFAULT_MEMORY_MB),
    "seconds": ("VA_IMPORT_SECONDS", DEFAULT_SECONDS),
}


class LimitExceeded(ValueError):
    """A file declares or holds more than a limit allows; the message names limit and setting."""


@dataclasses.dataclass(frozen=True)
class ImportLimits:
    """The limits of one import; ``None`` lifts a limit.

    Attributes
    ----------
    max_columns : int or None
        Columns of the heading row, of the declared sheet dimension and of any row.
    max_rows : int or None
        Data rows (declared by an ``.xlsx`` sheet or a Parquet file, or read).
    max_uncompressed_mb : float or None
        Total uncompressed size of an ``.xlsx`` file's zip members, or a Parquet file's
        declared uncompressed size.
    memory_mb : int or None
        Address space of the child process that imports (:mod:`data.isolation`).
    seconds : float or None
        Wall time of that child process.

    Examples
    --------
    >>> ImportLimits.from_environment({"VA_IMPORT_MAX_COLUMNS": "50"}).max_columns
    50
    >>> ImportLimits.unlimited().max_columns is None
    True
    """

    max_columns: int | None = DEFAULT_MAX_COLUMNS
    max_rows: int | None = DEFAULT_MAX_ROWS
    max_uncompressed_mb: float | None = DEFAULT_MAX_UNCOMPRESSED_MB
    memory_mb: int | None = DEFAULT_MEMORY_MB
    seconds: float | None = DEFAULT_SECONDS

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None, *,
                         upload: bool = False) -> ImportLimits:
        """Limits from ``VA_IMPORT_*`` (``upload``: the time limit is ``VA_UPLOAD_SECONDS``,
        default 100 s, below a web worker's timeout). A value of 0 or below lifts a limit;
        an unreadable value is an error naming the variable."""
        environ = os.environ if environ is None else environ
        values = {}
        settings = dict(_ENVIRONMENT)
        if upload:
            settings["seconds"] = ("VA_UPLOAD_SECONDS", DEFAULT_UPLOAD_SECONDS)
        for name, (variable, default) in settings.items():
            text = environ.get(variable, "").strip()
            if not text:
                values[name] = default
                continue
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{variable}={text!r} is not a number") from None
            kind = type(default)
            values[name] = kind(number) if number > 0 else None
        return cls(**values)

    @classmethod
    def unlimited(cls) -> ImportLimits:
        return cls(None, None, None, None, None)

    def check_columns(self, columns: int, what: str) -> None:
        if self.max_columns is not None and columns > self.max_columns:
            raise LimitExceeded(f"{what} has {columns:,} columns, more than the limit of "
                                f"{self.max_columns:,} (VA_IMPORT_MAX_COLUMNS)")

    def check_rows(self, rows: int, what: str) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise LimitExceeded(f"{what} has more than {self.max_rows:,} rows, the limit "
                                "(VA_IMPORT_MAX_ROWS)")

    def check_uncompressed(self, size: int, what: str) -> None:
        if self.max_uncompressed_mb is not None and size > self.max_uncompressed_mb * 2**20:
            raise LimitExceeded(f"{what} is {size / 2**20:,.0f} MB uncompressed, more than "
                                f"the limit of {self.max_uncompressed_mb:,g} MB "
                                "(VA_IMPORT_MAX_UNCOMPRESSED_MB)")


def check_xlsx(path: Path, limits: ImportLimits) -> None:
    """Refuse an ``.xlsx`` file whose zip members add up to more than the uncompressed limit.

    The sizes are those the zip directory declares; Python's ``zipfile`` never inflates a
    member past its declared size (it stops and fails the CRC check), so a lying directory
    cannot get more through. The sheet's declared dimension is checked by the reader, which
    opens the workbook anyway.

    Raises
    ------
    LimitExceeded
    zipfile.BadZipFile
        Not a zip file (not a workbook).
    """
    with zipfile.ZipFile(path) as archive:
        total = sum(member.file_size for member in archive.infolist())
    limits.check_uncompressed(total, "the workbook")


def check_parquet(metadata, limits: ImportLimits) -> None:
    """Refuse a Parquet file that declares too many columns or rows, or too much data
    (``metadata``: :class:`pyarrow.parquet.FileMetaData`)."""
    limits.check_columns(metadata.num_columns, "the Parquet file")
    limits.check_rows(metadata.num_rows, "the Parquet file")
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    limits.check_uncompressed(size, "the Parquet file")
