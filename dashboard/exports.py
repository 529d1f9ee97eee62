"""Safe CSV exports: formula-injection neutralisation, suppression, role check and audit.

Every table download of the dashboard is a server-side callback (never the grid's own
client-side export), so that

* only analysts and admins can download (:func:`dashboard.auth.requires_role`, checked on the
  server; hiding the button is not access control);
* every file is neutralised against spreadsheet formula injection (:func:`neutralise_cell`,
  :func:`safe_csv`): a text cell starting with ``=``, ``+``, ``-`` or ``@`` (also after leading
  white space or control characters, which spreadsheets skip), or with a tab, carriage return
  or line feed, gets a leading apostrophe, so Excel or LibreOffice show it as text instead of
  evaluating it; numbers stay numbers;
* small-cell suppression is applied again to the count columns it can identify
  (:func:`resuppress`), so a tampered request cannot export a hidden count;
* every download is written to the audit log (who, which table, which filters).

Uploads share this module's size limit (:func:`upload_limit_bytes`, ``VA_UPLOAD_MAX_MB``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

import dash
import pandas as pd
from dash import MATCH, Input, Output, State, dcc

from analysis.filters import RecordFilter
from dashboard.auth import current_user, requires_role
from dashboard.context import database
from data import audit

# The one formula-injection neutralisation lives in the data package (the CLI's quarantine
# export uses it too; data never imports dashboard); re-exported here for the dashboard.
from data.spreadsheet import neutralise_cell, safe_csv, safe_frame

__all__ = ["neutralise_cell", "safe_csv", "safe_frame"]
DEFAULT_UPLOAD_MAX_MB = 50

# Column names (field or heading, lower case) that hold counts of patients or procedures.
_COUNT_COLUMN = re.compile(
    r"^(n|count|counts|events?|records?|procedures?|patients?|responders?|cases?|deaths?|"
    r"fractures?|followed|at[ _]risk|number[ _].*|n[ _].*|.*[ _]n|.*[ _](count|events|"
    r"records|procedures|patients|responders))$")
# Grids whose counts are of file rows or dictionary facts, shown in full on their page (the Data
# page's import history and rules): suppression does not apply to them.
UNSUPPRESSED_GRIDS = frozenset({"data-batches", "data-rejections", "data-dictionary",
                                "data-rules"})
#: Every display grid of the pages (``data_grid(frame, name, ...)``). A download's audit event
#: names the grid only when it is one of these: the name arrives from the browser, so anything
#: else is logged as an unlisted grid (tests/unit check that every page's grid is listed).
GRID_NAMES = frozenset({
    "comparison-balance", "comparison-effects", "comparison-mdd", "comparison-overlap-bins",
    "comparison-table-one", "comparison-weights", "complications-at-risk",
    "complications-benchmarks", "complications-rates", "complications-trend", "costs-icer",
    "costs-index", "costs-ranking", "costs-rates", "costs-responders", "costs-summary",
    "data-batches",
    "data-completeness-grid", "data-dictionary", "data-rejections", "data-rules",
    "durations-setting-table", "durations-summary", "overview-kpis", "pain-histogram-table",
    "pain-odi-table", "pain-opioid-table", "pain-responder-table", "pain-trajectory-table",
    "quality-units", "scorecard-benchmarks", "scorecard-table",
})


def is_count_column(name: str) -> bool:
    """Whether a column (by field name or heading) holds counts that suppression applies to.

    >>> is_count_column("events"), is_count_column("KP n"), is_count_column("rate")
    (True, True, False)
    """
    return bool(_COUNT_COLUMN.match(str(name).strip().lower()))


def resuppress(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Replace counts from 1 to the threshold by the suppression label in count columns.

    ``columns`` are the names to test with :func:`is_count_column` (default: the frame's own),
    one per frame column. Values that are not whole numbers (already suppressed labels, text,
    rates) are left as they are.

    >>> resuppress(pd.DataFrame({"n": [3, 40, "<11"], "rate": [0.1, 0.2, None]})).n.tolist()
    ['<11', 40, '<11']
    """
    from dashboard.suppression import is_small, label

    names = list(columns) if columns is not None else [str(c) for c in frame.columns]
    result = frame.copy()
    for position, name in enumerate(names):
        if not is_count_column(name):
            continue
        column = result.iloc[:, position]
        numbers = pd.to_numeric(column.astype(object).map(_as_count), errors="coerce")
        hidden = is_small(numbers)
        if hidden.any():
            values = column.astype(object).copy()
            values[hidden] = label()
            result.isetitem(position, values)
    return result


def _as_count(value):
    """A whole number from a cell (``12``, ``"1,234"``), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value if float(value).is_integer() else None
    text = str(value).replace(",", "").strip()
    return int(text) if text.isdigit() else None


# ----------------------------------------------------------------------------------------------
# The grid download callback


def grid_frame(rows: list[dict] | None, column_defs: list[dict] | None) -> pd.DataFrame:
    """The rows a grid shows, in its column order, with its column headings."""
    defs = [c for c in (column_defs or []) if isinstance(c, dict) and c.get("field")]
    fields = [str(c["field"]) for c in defs]
    frame = pd.DataFrame([{f: (row or {}).get(f) for f in fields} for row in rows or []],
                         columns=fields)
    frame.columns = [str(c.get("headerName") or c["field"]) for c in defs]
    return frame


def filter_detail(state: dict | None) -> dict:
    """The non-empty global filters, for an audit event."""
    try:
        selection = RecordFilter.from_dict(state)
    except (TypeError, ValueError):
        return {"unreadable": True}
    return {key: value for key, value in selection.to_dict().items() if value not in (None, [], "")}


def log_download(table: str, file_name: str, rows: int, state: dict | None, **extra) -> None:
    """Write a ``download`` audit event for the current user."""
    audit.log_event(database(), current_user().name, "download",
                    {"table": table, "file": file_name, "rows": int(rows),
                     "filters": filter_detail(state), **extra})


@requires_role("analyst")
def download_grid_csv(n_clicks, virtual_rows, rows, column_defs, export_params, grid_id, state,
                      pathname):
    """Server-side CSV of a display grid: what the grid shows (its filtered, sorted rows),
    suppressed again, neutralised, audited."""
    if not n_clicks:
        return dash.no_update
    name = str((grid_id or {}).get("name", "table"))
    shown = virtual_rows if virtual_rows is not None else rows
    frame = grid_frame(shown, column_defs)
    if name not in UNSUPPRESSED_GRIDS:
        fields = [str(c["field"]) for c in column_defs or [] if isinstance(c, dict)
                  and c.get("field")]
        # A column is a count column when either its field or its heading says so.
        frame = resuppress(resuppress(frame, fields), list(frame.columns))
    file_name = _file_name((export_params or {}).get("fileName"), name)
    # The table name is the server's (a listed grid); the count is of the rows written.
    listed = name in GRID_NAMES
    pages = {page.get("path") for page in dash.page_registry.values()}
    log_download(name if listed else "unlisted grid", file_name, len(frame), state,
                 page=pathname if pathname in pages else "unlisted page",
                 **({} if listed else {"grid_as_sent": _file_name(name, "grid")[:-4]}))
    return dcc.send_string(safe_csv(frame), file_name, type="text/csv")


def _file_name(requested, fallback: str) -> str:
    """A plain ``*.csv`` file name (letters, digits, dot, dash, underscore)."""
    stem = re.sub(r"\.csv$", "", str(requested or fallback), flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:100] or "table"
    return f"{stem}.csv"


# ----------------------------------------------------------------------------------------------
# Upload limit


def upload_limit_mb() -> float:
    """The largest upload in MB (``VA_UPLOAD_MAX_MB``, default 50)."""
    text = os.environ.get("VA_UPLOAD_MAX_MB", "")
    try:
        value = float(text) if text else DEFAULT_UPLOAD_MAX_MB
    except ValueError:
        value = DEFAULT_UPLOAD_MAX_MB
    return value if value > 0 else DEFAULT_UPLOAD_MAX_MB


def upload_limit_bytes() -> int:
    return int(upload_limit_mb() * 1024 * 1024)


def request_limit_bytes() -> int:
    """Flask's ``MAX_CONTENT_LENGTH``: an upload of twice the limit as base64 (4/3 larger)
    inside Dash's JSON request, plus 1 MB.

    Files up to twice the limit reach the upload callback, which refuses them with a message
    naming the limit; larger requests get HTTP 413 without reading them (the browser cannot
    tell the size before sending, and a refusal without any message would puzzle the user).
    """
    return math.ceil(2 * upload_limit_bytes() * 4 / 3) + 1024 * 1024


def register_export_callbacks(app: dash.Dash) -> None:
    """Attach the server-side CSV download of every :func:`dashboard.components.data_grid`,
    and cap request sizes at the upload limit (``MAX_CONTENT_LENGTH``)."""
    app.server.config["MAX_CONTENT_LENGTH"] = max(
        app.server.config.get("MAX_CONTENT_LENGTH") or 0, request_limit_bytes())
    app.callback(
        Output({"type": "csv-file", "name": MATCH}, "data"),
        Input({"type": "csv-export", "name": MATCH}, "n_clicks"),
        State({"type": "data-grid", "name": MATCH}, "virtualRowData"),
        State({"type": "data-grid", "name": MATCH}, "rowData"),
        State({"type": "data-grid", "name": MATCH}, "columnDefs"),
        State({"type": "data-grid", "name": MATCH}, "csvExportParams"),
        State({"type": "csv-export", "name": MATCH}, "id"),
        State("filter-state", "data"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )(download_grid_csv)
