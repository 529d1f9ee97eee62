"""Self-contained HTML reports of a page: figures, tables, the filter summary, data version
and date, in one file that opens offline (plotly.js is embedded once).

Each page registers a builder with :func:`register_report`; the shell's "Report"
button calls the builder of the page being viewed with the current filters and the page's
settings from the URL (:mod:`dashboard.state`), so the report is the view on screen.
:func:`report_for_url` builds the same report from a page address (path and query string).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from analysis.filters import RecordFilter
from dashboard.headings import heading
from data.spreadsheet import neutralise_cell


@dataclasses.dataclass(frozen=True)
class ReportSection:
    """One block of a report: a heading, optional text, figure and (display) table."""

    title: str
    text: str = ""
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None


#: ``builder(selection, settings)``: ``settings`` maps the page's query keys to its control
#: values (:func:`dashboard.state.settings_from_query`: validated, defaults filled in).
ReportBuilder = Callable[[RecordFilter, Mapping[str, Any]], list[ReportSection]]

# page path -> builder; filled when page modules are imported (like Dash's page registry).
REPORT_BUILDERS: dict[str, tuple[str, ReportBuilder]] = {}


def register_report(path: str, title: str) -> Callable[[ReportBuilder], ReportBuilder]:
    """Decorator: ``builder(selection, settings) -> list[ReportSection]`` makes the report of
    ``path``."""
    def decorate(builder: ReportBuilder) -> ReportBuilder:
        REPORT_BUILDERS[path] = (title, builder)
        return builder
    return decorate


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#f3f3f3}
.nw{white-space:nowrap}
.meta{color:#555;font-size:.9rem}.note{background:#fff7e0;border:1px solid #f0d080;padding:.5rem .75rem}
"""


def render_report(title: str, sections: list[ReportSection], selection: RecordFilter,
                  data_version: str, synthetic: bool | str, suppression_note: str,
                  settings: str = "") -> str:
    """The report as one HTML document: text from data is escaped, never rendered as HTML;
    tables have human headings (:func:`dashboard.headings.heading`) and plain cell text (see
    :func:`html_table` for why no apostrophe is added, as it is in CSV downloads).

    Examples
    --------
    >>> document = render_report("Data", [ReportSection("T", table=pd.DataFrame(
    ...     {"region": ["<script>x</script>"]}))], RecordFilter(), "b1", False, "")
    >>> "<script>x" in document, "&lt;script&gt;x" in document
    (False, True)
    """
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='meta'>Vertebral augmentation outcomes report · created "
        f"{created} · data version {html.escape(data_version)}<br>Filters: "
        f"{html.escape(selection.describe())}"
        + (f"<br><span id='report-settings'>Page settings: {html.escape(settings)}</span>"
           if settings else "") + "</p>",
    ]
    if isinstance(synthetic, str) and synthetic:
        # The share of synthetic records (dashboard.data_access.synthetic_note), suppressed.
        parts.append("<p class='note' id='synthetic-note'>Synthetic demonstration data: "
                     f"{html.escape(synthetic)} They were made by the demo generator and "
                     "describe no real patient.</p>")
    elif synthetic is True:
        parts.append("<p class='note'>Synthetic demonstration data: no real patient is described.</p>")
    parts.append(f"<p class='meta'>{html.escape(suppression_note)}</p>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for paragraph in (p for p in section.text.split("\n\n") if p.strip()):
            parts.append(f"<p>{html.escape(paragraph.strip())}</p>")
        if section.figure is not None:
            parts.append(section.figure.to_html(full_html=False, include_plotlyjs=False,
                                                config={"displaylogo": False}))
        if section.table is not None:
            parts.append(html_table(section.table))
    parts.append("</body></html>")
    return "".join(parts)


#: Excel's text number format (Office HTML: ``mso-number-format:"\\@"``): a cell so styled
#: is read as text when Excel opens the report, never evaluated as a formula. Browsers
#: ignore the property, so the reader sees the value itself, without an apostrophe.
_TEXT_CELL = "<td style='mso-number-format:\"\\@\"'>"
#: Short cells that are a number, a signed amount or an interval ("33.5–37.7%", "−2,159 USD")
#: do not wrap inside the number.
_NUMBER_LIKE = re.compile(r"^[\s<>≤≥~$€£₹+\-−(]*\d[\d,.\s]*[%A-Za-z ]{0,5}"
                          r"(\s*(–|to)\s*[+\-−$€£₹]?\d[\d,.]*[%A-Za-z ]{0,5})?\)?$")


_BREAKABLE = re.compile(r"[\s\-–−]")


def html_table(table: pd.DataFrame) -> str:
    """A display table as an HTML ``<table>``: human headings, escaped cell text, no index.

    Spreadsheet formula neutralisation (the leading apostrophe of
    :func:`data.spreadsheet.neutralise_cell`) belongs to spreadsheet formats (CSV downloads):
    in HTML it would be shown as a stray character ("'+2,159 USD"). A browser never evaluates
    cell text, and it is escaped, so markup cannot run either. Only Excel opening the HTML
    file could treat a cell starting with ``=``, ``+``, ``-`` or ``@`` as a formula, so those
    cells (exactly the ones the CSV rule would neutralise) carry Excel's text format instead,
    which is invisible in a browser. Numbers and intervals do not wrap inside the number.

    Examples
    --------
    >>> print(html_table(pd.DataFrame({"ci_95": ["+1 to +3"], "n": [12]})))
    <table><thead><tr><th>95% CI</th><th>n</th></tr></thead><tbody><tr><td style='mso-number-format:"\\@"'><span class='nw'>+1 to +3</span></td><td>12</td></tr></tbody></table>
    """
    shown = table.astype(object).where(table.notna(), "–")
    head = "".join(f"<th>{html.escape(heading(column))}</th>" for column in shown.columns)
    rows = []
    for values in shown.itertuples(index=False, name=None):
        cells = []
        for value in values:
            text = str(value)
            escaped = html.escape(text)
            if len(text) <= 40 and _BREAKABLE.search(text) and _NUMBER_LIKE.match(text):
                escaped = f"<span class='nw'>{escaped}</span>"
            opening = _TEXT_CELL if neutralise_cell(text) != text else "<td>"
            cells.append(f"{opening}{escaped}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def page_report(path: str, selection: RecordFilter,
                settings: Mapping[str, Any]) -> tuple[str, list[ReportSection], str]:
    """The title, sections and HTML document of the report of the page at ``path`` for the
    records the current user may see (call within the app's request or app context)."""
    from dashboard import data_access, suppression
    from dashboard.state import describe_settings

    title, builder = REPORT_BUILDERS[path]
    sections = builder(selection, settings)
    note = (f"Small-cell suppression: counts from 1 to {suppression.threshold()} are shown as "
            f"{suppression.label()} and the rates computed from them are hidden.")
    document = render_report(title, sections, selection, data_access.data_version(),
                             data_access.synthetic_note(), note,
                             describe_settings(path, settings))
    return title, sections, document


def report_for_url(path: str, search: str, database_url: str | None = None) -> str:
    """The HTML report of the page at ``path`` with the filters and page settings of the query
    string ``search`` (as in the page's address), from the store ``database_url``
    (:func:`url_report`'s document).

    Unknown keys and bad values fall back to the defaults, as when the address is opened in a
    browser. It runs as the local user (every facility): the caller decides who may read it.
    Called within an app's context it uses that app (and its store) instead of making one.

    Examples
    --------
    >>> report_for_url("/costs", "?country=IN&cur=INR&group=country")  # doctest: +SKIP
    '<!DOCTYPE html>…'
    """
    return url_report(path, search, database_url).document


@dataclasses.dataclass(frozen=True)
class UrlReport:
    """A page's report from an address: what was asked (page, the filters and settings as the
    server parsed them) and what was rendered (sections, the HTML document)."""

    path: str
    filters: dict
    settings: dict
    sections: list[ReportSection]
    document: str

    @property
    def table_rows(self) -> int:
        """Rows of the report's tables (what an audit event counts)."""
        return sum(len(s.table) for s in self.sections if s.table is not None)


def url_report(path: str, search: str, database_url: str | None = None) -> UrlReport:
    """:func:`report_for_url` with what was parsed and rendered (for the command line's audit
    event)."""
    import flask

    from dashboard.app_factory import create_app
    from dashboard.state import (
        PAGE_SETTINGS,
        filter_from_query,
        page_parameters,
        settings_from_query,
    )

    path = path or "/"
    # Within an app's context (python -m dashboard.report renders many reports) that app and
    # its store serve; otherwise an app is made for ``database_url``.
    server = flask.current_app if flask.has_app_context() else create_app(database_url).server
    if path not in REPORT_BUILDERS:
        raise ValueError(f"no report for page {path!r}; pages with a report: "
                         + ", ".join(sorted(REPORT_BUILDERS)))
    with server.test_request_context(path + (search or "")):
        # A page that parses its own settings (the scorecard) gets the query's other keys.
        settings = (settings_from_query(path, search) if path in PAGE_SETTINGS
                    else page_parameters(search))
        selection = filter_from_query(search)
        _title, sections, document = page_report(path, selection, settings)
    filters = {k: v for k, v in selection.to_dict().items() if v not in (None, [], "")}
    return UrlReport(path, filters, dict(settings), sections, document)


if __name__ == "__main__":  # python -m dashboard.report: the scheduled-report command line
    from dashboard.report_cli import main

    raise SystemExit(main())
