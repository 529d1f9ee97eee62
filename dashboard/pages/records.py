"""Records: the de-identified procedure records matching the global filters (analysts, admins).

The grid uses AG Grid's infinite row model: the browser asks for one block of 100 rows at a
time (``getRowsRequest``), and the server filters, sorts and slices the records and answers
with that block only (``getRowsResponse``), so the table never travels to the browser whole.
Column filters and sorting are applied on the server too. The records come from
:func:`dashboard.data_access.filtered_records`, which applies the user's facility restriction.

Browsing is audited per session and selection (:func:`audit_rows_served`,
:func:`data.audit.note_records_served`): a ``records_view`` event when a session asks for a
new selection (filters, column filters, sort), follow-ups at most every five minutes while it
keeps scrolling, all with the rows the server sent (counted on the server).

Only the dictionary's non-identifying fields are shown: ``record_id`` and ``patient_id``
(pseudonyms that link rows to the source system and to each other) are left out, and cannot be
filtered or sorted on. Cells are plain text (no HTML or Markdown renderer).
"""

from __future__ import annotations

import collections
import json
import threading

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import flask
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from analysis.filters import RecordFilter
from dashboard import data_access
from dashboard.auth import current_user, requires_role, scope_key
from dashboard.components import page_header
from dashboard.context import database
from dashboard.exports import filter_detail, log_download, safe_csv
from data import audit
from data.dictionary import FIELDS, FIELDS_BY_NAME

dash.register_page(__name__, path="/records", name="Records", title="Records", order=8.5,
                   required_role="analyst")

GRID_ID = "records-grid"
BLOCK_SIZE = 100
#: Pseudonyms that link a row to the source system or to other rows: never shown.
IDENTIFYING_FIELDS = frozenset({"record_id", "patient_id"})
COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.name not in IDENTIFYING_FIELDS)
#: Columns shown until the user chooses others (the rest are a choice away in "Columns").
DEFAULT_COLUMNS: tuple[str, ...] = (
    "facility_id", "operator_id", "region", "country", "procedure_date", "procedure", "age",
    "sex", "etiology", "levels_treated", "pain_baseline", "pain_month1", "cement_leakage", "cost", "currency")
_FILTERS = {"integer": "agNumberColumnFilter", "number": "agNumberColumnFilter",
            "date": "agDateColumnFilter"}


def column_defs(shown: list[str] | tuple[str, ...] | None = None) -> list[dict]:
    """One grid column per field: plain-text cells, a server-side filter and sort; only the
    ``shown`` ones visible (default :data:`DEFAULT_COLUMNS`)."""
    visible = set(DEFAULT_COLUMNS if shown is None else shown)
    return [{
        "field": name, "headerName": name.replace("_", " "),
        "headerTooltip": FIELDS_BY_NAME[name].description,
        "filter": _FILTERS.get(FIELDS_BY_NAME[name].kind, "agTextColumnFilter"),
        "filterParams": {"maxNumConditions": 2, "buttons": ["reset", "apply"],
                         "closeOnApply": True},
        "sortable": True, "resizable": True, "minWidth": 120, "hide": name not in visible,
    } for name in COLUMNS]


def layout(**_query) -> html.Div:
    # required_role above: dashboard.auth.gate shows "not permitted" to lower roles.
    return html.Div([
        page_header("Records", "The de-identified procedure records that match the filters, "
                    "100 at a time: sort by a column heading, filter with a column's menu. "
                    "Record and patient pseudonyms are not shown."),
        html.Div([
            dbc.Button("Download records (CSV)", id="records-download-button", size="sm",
                       color="secondary", outline=True,
                       title="Every record matching the filters and the column filters, as CSV"),
            dcc.Download(id="records-download"),
            dcc.Store(id="records-refresh"),
        ], className="mb-2"),
        html.Details([  # the column chooser: 50 columns do not fit a screen
            html.Summary(f"Columns ({len(DEFAULT_COLUMNS)} of {len(COLUMNS)} shown: choose)",
                         id="records-columns-summary", className="small fw-semibold"),
            dbc.Checklist(id="records-columns", value=list(DEFAULT_COLUMNS), inline=True,
                          options=[{"label": name.replace("_", " "), "value": name}
                                   for name in COLUMNS], className="small mt-1"),
        ], className="mb-2"),
        # Filled in the browser from the grid (assets/records_position.js): the rows in view and
        # the number of records the server says match (filters, facility restriction, column
        # filters).
        html.Div("Counting the matching records…", id="records-position", role="status",
                 **{"aria-live": "polite"}, className="small text-muted mb-1"),
        dag.AgGrid(
            id=GRID_ID, rowModelType="infinite", columnDefs=column_defs(),
            defaultColDef={"resizable": True, "sortable": True, "minWidth": 110},
            dashGridOptions={"cacheBlockSize": BLOCK_SIZE, "maxBlocksInCache": 20,
                             "infiniteInitialRowCount": BLOCK_SIZE, "rowBuffer": 0,
                             "maxConcurrentDatasourceRequests": 2,
                             "enableCellTextSelection": True, "ensureDomOrder": True},
            style={"height": "620px"}, className="ag-theme-alpine",
        ),
    ])


# ----------------------------------------------------------------------------------------------
# Server-side filtering, sorting and paging (pure functions of a frame and a grid request)


def _text(series: pd.Series) -> pd.Series:
    if FIELDS_BY_NAME[series.name].kind == "boolean":
        series = series.astype("boolean").map({True: "true", False: "false"}, na_action="ignore")
    return series.astype("string").str.lower()


def _condition_mask(series: pd.Series, condition: dict) -> pd.Series:
    """Rows of ``series`` that satisfy one AG Grid filter condition (unknown: all rows)."""
    kind = condition.get("type")
    if kind == "blank":
        return series.isna()
    if kind == "notBlank":
        return series.notna()
    filter_type = condition.get("filterType")
    if filter_type == "number":
        values = pd.to_numeric(series, errors="coerce").astype("Float64")
        low, high = condition.get("filter"), condition.get("filterTo")
        tests = {"equals": lambda: values == low, "notEqual": lambda: values != low,
                 "lessThan": lambda: values < low, "lessThanOrEqual": lambda: values <= low,
                 "greaterThan": lambda: values > low,
                 "greaterThanOrEqual": lambda: values >= low,
                 "inRange": lambda: (values >= low) & (values <= high)}
        if kind not in tests or low is None or (kind == "inRange" and high is None):
            return pd.Series(True, index=series.index)
        return tests[kind]().fillna(kind == "notEqual").astype(bool)
    if filter_type == "date":
        values = pd.to_datetime(series, errors="coerce").dt.normalize()
        low = pd.to_datetime(condition.get("dateFrom"), errors="coerce")
        high = pd.to_datetime(condition.get("dateTo"), errors="coerce")
        tests = {"equals": lambda: values == low.normalize(),
                 "notEqual": lambda: values != low.normalize(),
                 "lessThan": lambda: values < low, "greaterThan": lambda: values > low,
                 "inRange": lambda: (values > low) & (values < high)}
        if kind not in tests or pd.isna(low) or (kind == "inRange" and pd.isna(high)):
            return pd.Series(True, index=series.index)
        return tests[kind]().fillna(False).astype(bool)
    needle = str(condition.get("filter") or "").lower()
    if not needle:
        return pd.Series(True, index=series.index)
    text = _text(series)
    tests = {"contains": lambda: text.str.contains(needle, regex=False),
             "notContains": lambda: ~text.str.contains(needle, regex=False),
             "equals": lambda: text == needle, "notEqual": lambda: text != needle,
             "startsWith": lambda: text.str.startswith(needle),
             "endsWith": lambda: text.str.endswith(needle)}
    if kind not in tests:
        return pd.Series(True, index=series.index)
    return tests[kind]().fillna(kind in ("notContains", "notEqual")).astype(bool)


def filter_mask(frame: pd.DataFrame, filter_model: dict | None) -> np.ndarray:
    """Rows passing every column filter of an AG Grid ``filterModel`` (shown columns only).

    Examples
    --------
    >>> frame = pd.DataFrame({"age": pd.array([70, 80], dtype="Int64")})
    >>> filter_mask(frame, {"age": {"filterType": "number", "type": "greaterThan",
    ...                             "filter": 75}}).tolist()
    [False, True]
    """
    mask = np.ones(len(frame), dtype=bool)
    for column, model in (filter_model or {}).items():
        if column not in COLUMNS or column not in frame or not isinstance(model, dict):
            continue  # never filter on hidden fields (that would reveal them)
        series = frame[column]
        if isinstance(model.get("conditions"), list):
            parts = [_condition_mask(series, {**c, "filterType": model.get("filterType")})
                     for c in model["conditions"] if isinstance(c, dict)]
            if not parts:
                continue
            combined = parts[0]
            for part in parts[1:]:
                combined = (combined | part) if model.get("operator") == "OR" else (combined & part)
            mask &= combined.to_numpy(dtype=bool)
        else:
            mask &= _condition_mask(series, model).to_numpy(dtype=bool)
    return mask


def ordered_positions(frame: pd.DataFrame, request: dict | None) -> np.ndarray:
    """Row positions of ``frame`` after the request's column filters and sort (stable; blanks
    last)."""
    request = request or {}
    positions = np.flatnonzero(filter_mask(frame, request.get("filterModel")))
    sort_model = [s for s in request.get("sortModel") or []
                  if isinstance(s, dict) and s.get("colId") in COLUMNS and s.get("colId") in frame]
    if sort_model and len(positions):
        subset = frame.iloc[positions]
        keys = []
        for item in sort_model:
            values = subset[item["colId"]]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype("string")  # alphabetical, as the grid shows them
            keys.append(values)
        order = pd.DataFrame({f"k{i}": k.to_numpy() for i, k in enumerate(keys)}).sort_values(
            [f"k{i}" for i in range(len(keys))],
            ascending=[item.get("sort") != "desc" for item in sort_model],
            kind="stable", na_position="last").index.to_numpy()
        positions = positions[order]
    return positions


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """Records as JSON-ready dicts of the shown columns (dates as ISO text, blanks as None)."""
    shown = frame[[c for c in COLUMNS if c in frame]].copy()
    for name in shown.columns:
        if FIELDS_BY_NAME[name].kind == "date":
            shown[name] = shown[name].dt.strftime("%Y-%m-%d")
    objects = shown.astype(object)
    return objects.where(shown.notna(), None).to_dict("records")


def block(frame: pd.DataFrame, request: dict | None,
          cache_key: str | None = None) -> tuple[list[dict], int]:
    """The rows one ``getRowsRequest`` asks for (at most :data:`BLOCK_SIZE`) and the total.

    ``cache_key`` names ``frame`` (data version, user scope, global filters): the ordering of
    the rows is then kept for the next blocks of the same request.

    >>> frame = pd.DataFrame({"age": pd.array(range(250), dtype="Int64")})
    >>> rows, total = block(frame, {"startRow": 200, "endRow": 100000})
    >>> len(rows), total, rows[0]["age"]
    (50, 250, 200)
    """
    positions = (ordered_positions(frame, request) if cache_key is None
                 else _cached_positions(frame, request, cache_key))
    start = max(0, int((request or {}).get("startRow") or 0))
    end = min(int((request or {}).get("endRow") or start + BLOCK_SIZE), start + BLOCK_SIZE)
    return json_rows(frame.iloc[positions[start:end]]), len(positions)


# The ordering of the last few (data, scope, filters, sort) is kept, so scrolling a sorted
# million-record table sorts it once, not once per block of 100.
_ORDERS: collections.OrderedDict[tuple, np.ndarray] = collections.OrderedDict()
_ORDERS_LOCK = threading.Lock()
_ORDERS_SIZE = 4


def _cached_positions(frame: pd.DataFrame, request: dict | None, cache_key: str) -> np.ndarray:
    request = request or {}
    key = (cache_key, len(frame),
           json.dumps([request.get("filterModel"), request.get("sortModel")], sort_keys=True,
                      default=str))
    with _ORDERS_LOCK:
        found = _ORDERS.get(key)
        if found is not None:
            _ORDERS.move_to_end(key)
            return found
    positions = ordered_positions(frame, request)
    with _ORDERS_LOCK:
        _ORDERS[key] = positions
        while len(_ORDERS) > _ORDERS_SIZE:
            _ORDERS.popitem(last=False)
    return positions


# ----------------------------------------------------------------------------------------------
# Callbacks (all analyst-only, checked on the server)


def _column_filters(request: dict) -> list[str]:
    """The shown columns a grid request filters on (names only, never the typed text)."""
    model = request.get("filterModel")
    return sorted(c for c in (model if isinstance(model, dict) else {}) if c in COLUMNS)


def _sort(request: dict) -> list[str]:
    """The shown columns a grid request sorts by, in order, with ``-`` for descending."""
    model = request.get("sortModel")
    return [("-" if s.get("sort") == "desc" else "") + s["colId"]
            for s in (model if isinstance(model, list) else [])
            if isinstance(s, dict) and s.get("colId") in COLUMNS]


def audit_rows_served(request: dict | None, state: dict | None, rows: int, total: int) -> None:
    """Audit record-grid browsing: per session and selection, with the rows this server sent.

    ``rows`` and ``total`` are the server's counts of the block it answers and of the matching
    records; the table name is fixed here. Nothing the browser claims is logged as a count.
    """
    request = request if isinstance(request, dict) else {}
    selection = {"filters": filter_detail(state), "column_filters": _column_filters(request),
                 "sort": _sort(request)}
    identity = json.dumps([request.get("filterModel"), request.get("sortModel")],
                          sort_keys=True, default=str)
    session = getattr(flask.g, "va_session", None) or "local"
    audit.note_records_served(database(), session, current_user().name, selection, rows,
                              total, identity)


@callback(Output(GRID_ID, "getRowsResponse"), Input(GRID_ID, "getRowsRequest"),
          State("filter-state", "data"), prevent_initial_call=True)
@requires_role("analyst")
def serve_rows(request, state):
    selection = RecordFilter.from_dict(state)
    records = data_access.filtered_records(selection)
    key = json.dumps([data_access.data_version(), scope_key(), selection.to_dict()],
                     sort_keys=True, default=str)
    rows, total = block(records, request, key)
    audit_rows_served(request, state, len(rows), total)
    return {"rowData": rows, "rowCount": total}


@callback(Output(GRID_ID, "columnDefs"), Output("records-columns-summary", "children"),
          Input("records-columns", "value"), prevent_initial_call=True)
def choose_columns(shown):
    """The grid's columns with only the chosen ones visible (all when none is chosen)."""
    chosen = [c for c in (shown or COLUMNS) if c in COLUMNS]
    return column_defs(chosen), f"Columns ({len(chosen)} of {len(COLUMNS)} shown: choose)"


@callback(Output("records-download", "data"), Input("records-download-button", "n_clicks"),
          State(GRID_ID, "getRowsRequest"), State("filter-state", "data"),
          prevent_initial_call=True)
@requires_role("analyst")
def download_records(n_clicks, request, state):
    if not n_clicks:
        return dash.no_update
    records = data_access.filtered_records(RecordFilter.from_dict(state))
    positions = ordered_positions(records, request)
    frame = records.iloc[positions][[c for c in COLUMNS if c in records]].copy()
    for name in frame.columns:
        if FIELDS_BY_NAME[name].kind == "date":
            frame[name] = frame[name].dt.strftime("%Y-%m-%d")
    stamp = pd.Timestamp.now().strftime("%Y%m%d-%H%M")
    file_name = f"records-{stamp}.csv"
    request = request or {}
    # Which columns were filtered or sorted, not the typed filter text (it could be anything).
    log_download("records", file_name, len(frame), state,
                 column_filters=sorted(c for c in (request.get("filterModel") or {})
                                       if c in COLUMNS),
                 sort=[s.get("colId") for s in request.get("sortModel") or []
                       if isinstance(s, dict) and s.get("colId") in COLUMNS])
    return dcc.send_string(safe_csv(frame), file_name, type="text/csv")


# A new global filter empties the grid's block cache, so it asks the server again.
clientside_callback(
    """function(state) {
        try {
            const api = window.dash_ag_grid && window.dash_ag_grid.getApi("records-grid");
            if (api) { api.purgeInfiniteCache(); }
        } catch (error) { /* the grid is not mounted yet: it will ask for rows itself */ }
        return window.dash_clientside.no_update;
    }""",
    Output("records-refresh", "data"), Input("filter-state", "data"), prevent_initial_call=True,
)
