"""Reusable layout pieces: data grids with CSV export, chart cards with text alternatives,
error and empty states, and a wrapper that keeps callback failures inside the page."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable, Sequence

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard.figures.common import GRAPH_CONFIG
from dashboard.headings import heading

log = logging.getLogger(__name__)


def data_grid(frame: pd.DataFrame, grid_id: str, file_name: str, height: int | None = None,
              column_labels: dict[str, str] | None = None,
              flex: dict[str, float] | None = None, filterable: bool = False,
              min_widths: dict[str, int] | None = None) -> html.Div:
    """An AG Grid of a (suppressed) display table with a "Download CSV" button.

    The CSV is written on the server (:mod:`dashboard.exports`) from the rows the grid shows:
    neutralised against formula injection, suppressed again, audited, and only for analysts
    and admins; the grid never exports by itself. The button is shown only to those roles (the
    callback's role check is what enforces it). Long cells wrap onto several lines; ``flex``
    gives wide columns more room (default 1 each); ``filterable`` adds column filters (useful
    for long tables such as facilities); ``min_widths`` sets minimum widths in pixels for wide
    text columns. The grid is the returned block's second and last child.

    Examples
    --------
    >>> block = data_grid(pd.DataFrame({"n": [12]}), "demo", "demo-table")  # doctest: +SKIP
    >>> block.children[-1].id  # doctest: +SKIP
    {'type': 'data-grid', 'name': 'demo'}
    """
    labels = column_labels or {}
    widths = flex or {}
    columns = []
    for c in frame.columns:
        name = str(c)
        title = labels.get(name, heading(c))
        texts = _display_texts(frame[c])
        number_like = _is_number_like(frame[c], texts)
        # Wide enough for the heading's longest word (headings wrap at spaces only) and, for
        # numbers and intervals, for the longest value on one line: nothing breaks in a word.
        least = max((min_widths or {}).get(name, 72), _text_width(_longest_word(title)) + 40,
                    _text_width(max(texts, key=len, default="")) + 40 if number_like
                    else min(_text_width(_longest_word_of(texts)) + 30, 260))
        columns.append({
            "field": name, "headerName": title, "sortable": True, "resizable": True,
            "filter": filterable, "suppressHeaderMenuButton": not filterable,
            "flex": widths.get(name, 1), "minWidth": least,
            "wrapText": not number_like, "autoHeight": not number_like,
            "cellClass": "va-nowrap" if number_like else "va-wrap",
            "cellStyle": {"lineHeight": "1.35", "paddingTop": "6px", "paddingBottom": "6px"}})
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    # The grid grows with its rows (no small scroll box inside the page); long tables page.
    grid = dag.AgGrid(
        id={"type": "data-grid", "name": grid_id}, rowData=rows, columnDefs=columns,
        defaultColDef={"minWidth": 90, "flex": 1, "wrapHeaderText": True, "autoHeaderHeight": True},
        csvExportParams={"fileName": f"{file_name}.csv"},
        dashGridOptions={"domLayout": "autoHeight", "pagination": len(rows) > 25,
                         "paginationPageSize": 25, "paginationPageSizeSelector": [25, 50, 100],
                         # Every column is drawn (no virtual columns), so hidden or narrow
                         # grids still have complete header rows for assistive technology.
                         "suppressColumnVirtualisation": True},
        style={"height": None} if height is None else {"minHeight": f"{min(height, 200)}px"},
        className="ag-theme-alpine",
    )
    from werkzeug.exceptions import Forbidden

    from dashboard.auth import current_user

    try:  # the button only for analysts and admins; nobody signed in: no button
        may_download = current_user().has_role("analyst")
    except Forbidden:
        may_download = False
    if may_download:
        controls = html.Div([
            dbc.Button("Download CSV", id={"type": "csv-export", "name": grid_id}, size="sm",
                       color="secondary", outline=True, className="mb-2",
                       title=f"Download this table as {file_name}.csv"),
            dcc.Download(id={"type": "csv-file", "name": grid_id}),
        ])
    else:
        controls = html.Div()
    return html.Div([controls, grid], className="mb-3")


_NUMBER_LIKE = re.compile(r"^[\s<>≤≥~±+\-−–—0-9.,%()\[\]/:×]*\d[\s<>≤≥~±+\-−–—0-9.,%()\[\]/:×]*"
                          r"(\s?[A-Za-z%]{1,4})?(\s?\((unstable|suppressed)\))?$")


#: Values of a column read to size it and to decide whether it holds numbers.
_SAMPLE = 500


def _display_texts(column: pd.Series) -> list[str]:
    """The first non-missing values of a display column as text (``str`` of each value, as
    ``Series.astype(str)`` gives for object columns). Display tables are small: plain Python
    over a list is several times faster here than pandas string methods."""
    present = column.dropna()
    if present.dtype == object:
        return [str(value) for value in present.iloc[:_SAMPLE].tolist()]
    return present.iloc[:_SAMPLE].astype(str).tolist()


def _is_number_like(column: pd.Series, texts: list[str] | None = None) -> bool:
    """Whether a display column holds numbers, intervals or counts (kept on one line)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return True
    if texts is None:
        texts = _display_texts(column)
    # Placeholders without digits ("suppressed", "—", "n/a") say nothing either way.
    values = [text for text in texts[:200] if _DIGIT.search(text)]
    if not values:
        return False
    return sum(bool(_NUMBER_LIKE.match(text)) for text in values) / len(values) >= 0.8


_DIGIT = re.compile(r"\d")


def _longest_word(text: str) -> str:
    return max(str(text).split(), key=len, default="")


def _longest_word_of(texts: list[str]) -> str:
    return max((word for text in texts for word in text.split()), key=len, default="")


def _text_width(text: str) -> int:
    """A generous estimate of ``text``'s width in pixels at the grid's 14 px font."""
    return int(round(8.6 * len(text)))


def chart_card(title: str, figure, summary: str, graph_id: str | None = None,
               table: html.Div | None = None, extra: list | None = None,
               before: list | None = None) -> dbc.Card:
    """A chart with its text alternative: a summary sentence and, optionally, its data table.

    ``before`` components go above the chart (e.g. a caveat), ``extra`` ones below the summary
    (e.g. a number-at-risk table).
    """
    graph_id = graph_id or f"graph-{uuid.uuid4().hex[:8]}"
    body = [*(before or []), dcc.Graph(id=graph_id, figure=figure, config=GRAPH_CONFIG),
            html.P(summary, id=f"{graph_id}-summary", className="small text-muted mb-1"),
            *(extra or [])]
    if table is not None:
        body.append(html.Details([html.Summary("Data table"), table], className="mt-1"))
    return dbc.Card([dbc.CardHeader(html.H2(title, className="h6 mb-0")), dbc.CardBody(body)],
                    className="mb-3")


def empty_state(message: str = "No records match the current filters.") -> dbc.Alert:
    return dbc.Alert([html.Strong("Nothing to show. "), message,
                      " Widen the filters or press Reset."], color="info", className="my-3")


def limitation_state(message: str) -> dbc.Alert:
    """An analysis that the selection cannot support (too few records or events): expected,
    not a failure, so it reads as information and says what is missing."""
    return dbc.Alert([html.Strong("Not enough data for this part of the page. "), message],
                     color="info", className="my-3")


def error_state(message: str) -> dbc.Alert:
    return dbc.Alert([html.Strong("This part of the page could not be computed. "), message],
                     color="warning", className="my-3")


def mask_small_counts(text: str) -> str:
    """Counts from 1 to the threshold in a message replaced by the suppression label (see
    :func:`dashboard.suppression.mask_small_counts`, which follows the configured threshold)."""
    from dashboard.suppression import mask_small_counts as mask

    return mask(text)


def safe_callback(n_outputs: int = 1, message: str = "Please adjust the filters or try again."
                  ) -> Callable:
    """Decorate a callback so an exception becomes a message in the page, never a traceback.

    The first output receives an :func:`error_state` alert (a :func:`limitation_state` one
    when an analysis says the selection cannot support it); the other outputs receive ``None``.
    The error is logged server-side (without record data). A lost database connection shows
    :func:`dashboard.availability.database_unavailable_alert` instead: the same callback works
    again, unchanged, once the database is back.
    """
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the page must keep working
                from analysis.errors import AnalysisError
                from dashboard.availability import (
                    database_unavailable_alert,
                    is_database_unavailable,
                    log_unavailable,
                )

                if is_database_unavailable(error):
                    # An outage, not a bug: no traceback (nor SQL parameters) in the log.
                    log_unavailable(error, f"callback {function.__name__}")
                    alert = database_unavailable_alert()
                elif isinstance(error, AnalysisError):
                    # A method the selection cannot support: expected, so no traceback either.
                    log.info("callback %s: %s", function.__name__, type(error).__name__)
                    from dashboard.suppression import display_error

                    alert = limitation_state(display_error(error))
                else:
                    log.exception("callback %s failed", function.__name__)
                    alert = error_state(message)
                return alert if n_outputs == 1 else (alert, *([None] * (n_outputs - 1)))
        return wrapper
    return decorate


def stat_card(title: str, value: str, detail: str, card_id: str, colour: str | None = None) -> dbc.Card:
    """A KPI card: title, big value, and a detail line (CI and n)."""
    style = {"borderTop": f"4px solid {colour}"} if colour else {}
    return dbc.Card(dbc.CardBody([
        html.Div(title, className="small text-muted"),
        html.Div(value, id=card_id, className="fs-4 fw-semibold"),
        html.Div(detail, id=f"{card_id}-detail", className="small"),
    ]), style=style, className="h-100")


#: An interval or range in running text: "33.5–37.7%", "$5,100–$5,900", "+1.2 to +3.4".
_INTERVAL = re.compile(r"[+\-−$]?\d[\d,.]*%?\s?(?:–|to)\s?[+\-−$]?\d[\d,.]*%?")


def nowrap_intervals(text: str) -> list:
    """``text`` with each interval in a ``text-nowrap`` span, so a narrow card breaks the line
    before or after "33.5–37.7%", never inside it ("33.5–/37.7%").

    Examples
    --------
    >>> parts = nowrap_intervals("95% CI 33.5–37.7%, n 1,024")
    >>> parts[0], parts[1].children, parts[1].className, parts[2]
    ('95% CI ', '33.5–37.7%', 'text-nowrap', ', n 1,024')
    """
    parts: list = []
    position = 0
    for match in _INTERVAL.finditer(str(text)):
        if match.start() > position:
            parts.append(text[position:match.start()])
        parts.append(html.Span(match.group(0), className="text-nowrap"))
        position = match.end()
    if position < len(str(text)):
        parts.append(str(text)[position:])
    return parts


def page_header(title: str, lead: str) -> html.Div:
    return html.Div([html.H1(title, className="h3 mb-1"), html.P(lead, className="text-muted")],
                    className="mb-3")


def columns_present(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c in frame.columns]
