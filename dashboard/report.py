"""Self-contained HTML reports of a page: figures, tables, the filter summary, data version
and date, in one file that opens offline (plotly.js is embedded once).

Each page registers a builder with :func:`register_report`; the shell's "Report"
button calls the builder of the page being viewed with the current filters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from analysis.filters import RecordFilter
from dashboard.exports import safe_frame


@dataclasses.dataclass(frozen=True)
class ReportSection:
    """One block of a report: a heading, optional text, figure and (display) table."""

    title: str
    text: str = ""
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None


ReportBuilder = Callable[[RecordFilter], list[ReportSection]]

# page path -> builder; filled when page modules are imported (like Dash's page registry).
REPORT_BUILDERS: dict[str, tuple[str, ReportBuilder]] = {}


def register_report(path: str, title: str) -> Callable[[ReportBuilder], ReportBuilder]:
    """Decorator: ``builder(selection) -> list[ReportSection]`` makes the report of ``path``."""
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
.meta{color:#555;font-size:.9rem}.note{background:#fff7e0;border:1px solid #f0d080;padding:.5rem .75rem}
"""


def render_report(title: str, sections: list[ReportSection], selection: RecordFilter,
                  data_version: str, synthetic: bool | str, suppression_note: str) -> str:
    """The report as one HTML document (text from data is escaped, never rendered as HTML;
    table cells that a spreadsheet would run as a formula get a leading apostrophe).

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
        f"{html.escape(selection.describe())}</p>",
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
            shown = section.table.astype(object).where(section.table.notna(), "–")
            # Escaped for the browser, and neutralised for spreadsheets: Excel opens an HTML
            # table as a sheet and would evaluate a cell such as "=HYPERLINK(...)".
            parts.append(safe_frame(shown).to_html(index=False, escape=True, border=0))
    parts.append("</body></html>")
    return "".join(parts)


# ------------------------------------------------------------------ reports outside a request
def report_for_url(path: str, search: str, database_url: str | None = None) -> str:
    """The report of the page at ``path`` with the filters and page settings of ``search``
    (the browser's URL state, e.g. ``"?facility=FAC-009&peers=country"``) as one HTML document.

    Used by ``python -m dashboard.report`` (:mod:`dashboard.report_cli`). Outside a Flask app
    context an app is created for ``database_url`` (as the local admin: every facility). A
    builder that takes a second parameter receives the page settings (the query parameters
    that are not filters).

    Raises
    ------
    KeyError
        When no page at ``path`` has a report.
    """
    import flask

    if not flask.has_app_context():
        from dashboard.app_factory import create_app

        app = create_app(database_url)
        with app.server.app_context():
            return report_for_url(path, search, database_url)
    import inspect

    from dashboard import data_access, suppression
    from dashboard.state import filter_from_query, page_parameters

    page = REPORT_BUILDERS.get(path or "/")
    if page is None:
        raise KeyError(f"no report for the page {path!r}; pages with a report: "
                       f"{', '.join(sorted(REPORT_BUILDERS))}")
    title, builder = page
    selection = filter_from_query(search)
    takes_settings = len(inspect.signature(builder).parameters) > 1
    sections = builder(selection, page_parameters(search)) if takes_settings else builder(selection)
    note = (f"Small-cell suppression: counts from 1 to {suppression.threshold()} are shown as "
            f"{suppression.label()} and the rates computed from them are hidden.")
    return render_report(title, sections, selection, data_access.data_version(),
                         data_access.synthetic_note(), note)


if __name__ == "__main__":  # python -m dashboard.report: the scheduled-report command line
    from dashboard.report_cli import main

    raise SystemExit(main())
