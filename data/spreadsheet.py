"""Spreadsheet-safe tables: neutralise formula injection in CSV (and Excel) output.

A text cell starting with ``=``, ``+``, ``-`` or ``@`` (also after leading white space or control
characters, which spreadsheets skip), or with a tab, carriage return or line feed, gets a leading
apostrophe, so Excel or LibreOffice show it as text instead of evaluating it; numbers stay
numbers (OWASP, "CSV Injection"). The one implementation of the project: the dashboard's
downloads (``dashboard.exports`` re-exports it) and the command line's quarantine export
(``python -m data rejected``) both use it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# A cell a spreadsheet may evaluate: a formula character after any leading white space or
# control characters (Excel and LibreOffice skip a leading space or line feed before ``=``), or
# a leading tab, carriage return or line feed (OWASP's CSV-injection list).
_FORMULA_START = re.compile(r"[\s\x00-\x1f\x7f]*[=+\-@]|[\t\r\n]")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise_cell(value):
    """A cell that a spreadsheet will show as text, never evaluate as a formula.

    Text starting with ``=``, ``+``, ``-`` or ``@``, also after leading white space or control
    characters (``" =1+1"``, ``"\\n=1+1"``), or with a tab, carriage return or line feed, gets a
    leading apostrophe. Numbers (and text that is just a number, such as ``"-2.5"``) are
    unchanged. This is the one rule; :func:`safe_frame` is its vectorised form.

    Examples
    --------
    >>> neutralise_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> neutralise_cell("-2.5"), neutralise_cell(-3), neutralise_cell("@SUM(A1)")
    ('-2.5', -3, "'@SUM(A1)")
    >>> neutralise_cell(" =1+1"), neutralise_cell("a =1")
    ("' =1+1", 'a =1')
    """
    if isinstance(value, str) and _FORMULA_START.match(value) \
            and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and headings are neutralised (for CSV or Excel).

    Examples
    --------
    >>> safe_frame(pd.DataFrame({"=x": ["+1+1", "ok"], "n": [1, -2]})).to_dict("list")
    {"'=x": ["'+1+1", 'ok'], 'n': [1, -2]}
    """
    safe = frame.copy()
    safe.columns = [neutralise_cell(str(column)) for column in frame.columns]
    for position in range(safe.shape[1]):
        column = safe.iloc[:, position]
        if not (column.dtype == object or pd.api.types.is_string_dtype(column)
                or isinstance(column.dtype, pd.CategoricalDtype)):
            continue  # numeric, boolean and date columns cannot hold a formula
        # Vectorised form of neutralise_cell (a million-row records export stays fast): only
        # str cells are candidates; numbers in an object column stay numbers.
        values = column.to_numpy(dtype=object, copy=True)
        is_text = pd.Series(values).map(type).eq(str).to_numpy()
        if not is_text.any():
            continue
        text = pd.Series(values[is_text], dtype="string")
        risky = (text.str.match(_FORMULA_START.pattern)
                 & ~text.str.fullmatch(_PLAIN_NUMBER.pattern)).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            positions = np.flatnonzero(is_text)[risky]  # by position: the index may repeat
            values[positions] = ("'" + text[risky]).to_numpy(dtype=object)
            safe.isetitem(position, pd.Series(values, index=safe.index, dtype=object))
    return safe


def safe_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index) with formula injection neutralised.

    Examples
    --------
    >>> print(safe_csv(pd.DataFrame({"site": ["=cmd|' /C calc'!A0"], "n": [12]})), end="")
    site,n
    '=cmd|' /C calc'!A0,12
    """
    return safe_frame(frame).to_csv(index=False)
