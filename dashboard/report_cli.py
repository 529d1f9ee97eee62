"""Scheduled reports: ``python -m dashboard.report`` renders pages as HTML and PDF files.

Any page with a report (see :data:`dashboard.report.REPORT_BUILDERS`), for the filters and page
settings of a URL path and query string — the state the browser shows in its address bar —
as one self-contained HTML file (plotly.js embedded, opens offline) and, optionally, a PDF
printed by headless Chromium. For one URL, for every facility in one run (``--each-facility``:
one file each plus ``index.html``), or as the monthly quality pack (``--pack quality``: the
scorecard and the Quality page of each facility, and the Signals page once it exists).

Examples
--------
::

    python -m dashboard.report --url "/quality?facility=FAC-009" --out reports/ --pdf
    python -m dashboard.report --url "/scorecard?peers=country" --each-facility --out reports/
    python -m dashboard.report --pack quality --out reports/2026-12 --pdf

The store is ``--database`` or ``DATABASE_URL`` (as for ``app.py``); the run reads it as the
local administrator (every facility), so keep the output folder as private as the data, and
use ``--anonymise`` for packs that are sent to the facilities (peers as "Peer 1…N").

PDF: each HTML file is opened in headless Chromium (Debian's ``chromium`` and
``chromedriver``, through Selenium), every plotly chart is drawn and replaced by a PNG image of
itself (so the PDF holds the charts as images, never a half-drawn chart), and the page is
printed with Chrome's ``Page.printToPDF`` on A4 with page numbers. Print CSS keeps a chart, a
heading with what follows, and a table row on one page.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

#: Print rules added to every report: a chart, a table row and a heading with its next block
#: are never cut by a page break; each part of a pack starts on a new page.
PRINT_STYLE = """
@page{size:A4;margin:14mm 12mm 16mm 12mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:11pt}
h1,h2,h3{break-after:avoid;page-break-after:avoid}
.plotly-graph-div,.js-plotly-plot,img.report-chart,figure{break-inside:avoid;page-break-inside:avoid}
tr,td,th{break-inside:avoid;page-break-inside:avoid}
thead{display:table-header-group}
.pack-part+.pack-part{break-before:page;page-break-before:always}
}
img.report-chart{max-width:100%;height:auto;display:block}
"""
#: The pages of the monthly quality pack, per facility (``{facility}``, ``{peers}``,
#: ``{anonymise}`` are filled in; the filters given with ``--url`` are added).
QUALITY_PACK_PAGES: list[str] = [
    "/scorecard?facility={facility}&peers={peers}&anonymise={anonymise}",
    "/quality?facility={facility}&unit=operator_id",
]
#: Hook for the Signals page (built in parallel): when a report is registered for this path,
#: the pack includes it for each facility, right after the scorecard.
SIGNALS_PACK_PAGE = "/signals?facility={facility}"
#: Width (CSS px) at which charts are laid out before printing: A4 less the margins.
PRINT_WIDTH_PX = 720
CHART_WAIT_SECONDS = 60

# In the browser: draw every chart, then replace it with a PNG image of itself.
_CHARTS_TO_IMAGES = """
const done = arguments[arguments.length - 1];
const divs = Array.from(document.querySelectorAll('.plotly-graph-div'));
const ready = d => d._fullLayout && d.querySelector('.main-svg');
const start = Date.now();
function convert() {
  Promise.all(divs.map(d => Plotly.toImage(d, {format: 'png', scale: 2,
      width: d._fullLayout.width, height: d._fullLayout.height}).then(url => {
    const img = document.createElement('img');
    img.src = url; img.className = 'report-chart'; img.alt = 'chart';
    img.style.width = d._fullLayout.width + 'px';
    d.replaceWith(img);
    return new Promise(r => { if (img.complete) r(); else img.onload = r; });
  }))).then(() => done(divs.length), e => done('error: ' + e));
}
(function wait() {
  if (divs.every(ready)) { convert(); }
  else if (Date.now() - start > %d) { done('timeout'); }
  else { setTimeout(wait, 50); }
})();
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def with_print_style(document: str) -> str:
    """``document`` with :data:`PRINT_STYLE` added to its head."""
    return document.replace("</head>", f"<style>{PRINT_STYLE}</style></head>", 1)


def combine(documents: Sequence[str], title: str | None = None) -> str:
    """One HTML document holding several reports (each a ``.pack-part``, each part with its own
    title, filters, data version and date); plotly.js is kept once, from the first; ``title``
    replaces the document's title (the PDF's footer and metadata)."""
    if not documents:
        raise ValueError("no document to combine")
    bodies = []
    for document in documents:
        match = re.search(r"<body[^>]*>(.*)</body>", document, flags=re.S)
        bodies.append(match.group(1) if match else document)
    head = documents[0].split("<body", 1)[0]
    if title is not None:
        head = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", head,
                      count=1, flags=re.S)
    parts = "".join(f"<section class='pack-part'>{body}</section>" for body in bodies)
    return f"{head}<body>{parts}</body></html>"


def url_with(url: str, **settings: str) -> tuple[str, str]:
    """``(path, search)`` of ``url`` with ``settings`` set (replacing those keys)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in settings]
    query += [(k, v) for k, v in settings.items() if v != ""]
    search = urllib.parse.urlencode(query, safe=",")
    return parts.path or "/", f"?{search}" if search else ""


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (e.g. ``"/quality"`` → ``"quality"``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "overview"


class PdfPrinter:
    """Headless Chromium (through Selenium) that prints HTML files to PDF, charts as images.

    One browser serves every file of a run; use it as a context manager.
    """

    def __init__(self, chromium: str | None = None) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options

        options = Options()
        options.binary_location = chromium or os.environ.get("VA_CHROMIUM", "/usr/bin/chromium")
        # No network needed (the HTML is self-contained): keep Chromium from calling home.
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         f"--window-size={PRINT_WIDTH_PX + 40},1200"):
            options.add_argument(argument)
        self.driver = webdriver.Chrome(options=options)
        self.driver.set_script_timeout(CHART_WAIT_SECONDS + 30)

    def __enter__(self) -> PdfPrinter:
        return self

    def __exit__(self, *exc) -> None:
        self.driver.quit()

    def print_pdf(self, html_file: Path, pdf_file: Path) -> int:
        """Print ``html_file`` to ``pdf_file``; returns the number of charts drawn."""
        self.driver.get(html_file.resolve().as_uri())
        self.driver.execute_script(  # lay the charts out at the printable width
            "document.body.style.maxWidth = arguments[0] + 'px';"
            "document.body.style.margin = '0'; document.body.style.padding = '0';",
            PRINT_WIDTH_PX)
        charts = self.driver.execute_async_script(
            _CHARTS_TO_IMAGES % (CHART_WAIT_SECONDS * 1000))
        if not isinstance(charts, int):
            raise RuntimeError(f"charts of {html_file.name} were not drawn ({charts})")
        footer = ("<div style='font-size:8px;width:100%;text-align:center;color:#555'>"
                  "<span class='title'></span> · page <span class='pageNumber'></span> of "
                  "<span class='totalPages'></span></div>")
        result = self.driver.execute_cdp_cmd("Page.printToPDF", {
            "printBackground": True, "preferCSSPageSize": True, "displayHeaderFooter": True,
            "headerTemplate": "<div></div>", "footerTemplate": footer,
        })
        pdf_file.write_bytes(base64.b64decode(result["data"]))
        return charts


def _facilities(facilities: str | None) -> list[str]:
    if facilities:
        return [f for f in (x.strip() for x in facilities.split(",")) if f]
    from dashboard import data_access

    ids = data_access.all_records()["facility_id"].dropna().astype(str).unique()
    return sorted(ids)


def pack_pages() -> list[str]:
    """The pages of the quality pack: :data:`QUALITY_PACK_PAGES`, plus
    :data:`SIGNALS_PACK_PAGE` once a Signals page has a report."""
    from dashboard.report import REPORT_BUILDERS

    pages = list(QUALITY_PACK_PAGES)
    if urllib.parse.urlsplit(SIGNALS_PACK_PAGE).path in REPORT_BUILDERS:
        pages.insert(1, SIGNALS_PACK_PAGE)
    return pages


Job = tuple[str, str, list[tuple[str, str]]]  # file name, title, [(path, search), ...]


def render_documents(jobs: Iterable[Job], database_url: str | None,
                     rendered: list | None = None) -> Iterable[tuple[str, str]]:
    """``(name, html)`` per job; a job of several pages is combined into one document. Each
    page's :class:`dashboard.report.UrlReport` is appended to ``rendered`` (for the audit)."""
    from dashboard.report import url_report

    for name, title, pages in jobs:
        reports = [url_report(path, search, database_url) for path, search in pages]
        if rendered is not None:
            rendered.extend(reports)
        documents = [r.document for r in reports]
        document = documents[0] if len(documents) == 1 else combine(documents, title)
        yield name, with_print_style(document)


def write_index(out: Path, rows: list[dict], title: str) -> Path:
    """``index.html`` listing the files of the run (names and links only, no data)."""
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    items = "".join(
        f"<tr><td>{html.escape(row['name'])}</td>"
        f"<td><a href='{html.escape(row['html'])}'>HTML</a></td>"
        f"<td>{'<a href=' + chr(39) + html.escape(row['pdf']) + chr(39) + '>PDF</a>' if row.get('pdf') else '–'}</td>"
        f"<td>{html.escape(row['pages'])}</td></tr>"
        for row in rows)
    document = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui,"
                "sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border:1px solid "
                "#ccc;padding:.25rem .5rem}</style></head><body>"
                f"<h1>{html.escape(title)}</h1><p>Created {created}.</p><table><thead><tr>"
                "<th>Report</th><th>HTML</th><th>PDF</th><th>Pages (URL)</th></tr></thead>"
                f"<tbody>{items}</tbody></table></body></html>")
    path = out / "index.html"
    path.write_text(document, encoding="utf-8")
    return path


def build_jobs(args: argparse.Namespace) -> tuple[list[Job], str]:
    """The files to write (:data:`Job`) and the run's title."""
    if args.pack:
        base = urllib.parse.urlsplit(args.url or "/")
        filters = dict(urllib.parse.parse_qsl(base.query))
        jobs = []
        for facility in _facilities(args.facilities):
            pages = []
            for template in pack_pages():
                filled = template.format(facility=facility, peers=args.peers,
                                         anonymise="on" if args.anonymise else "")
                page = urllib.parse.urlsplit(filled)
                settings = {**filters, **dict(urllib.parse.parse_qsl(page.query))}
                pages.append(url_with(page.path, **settings))
            jobs.append((f"quality-pack-{slug(facility)}", f"Quality pack: {facility}", pages))
        return jobs, "Monthly quality pack"
    if not args.url:
        raise SystemExit("give --url (a page path with its query string) or --pack quality")
    if args.each_facility:
        # The facility filter is replaced; a profiled facility (``sc_facility``) is dropped, so
        # the scorecard profiles each facility in turn.
        jobs = [(f"{slug(urllib.parse.urlsplit(args.url).path)}-{slug(facility)}", facility,
                 [url_with(args.url, facility=facility, sc_facility="")])
                for facility in _facilities(args.facilities)]
        return jobs, f"Reports of {urllib.parse.urlsplit(args.url).path} per facility"
    path, search = url_with(args.url)
    return [(slug(path), args.url, [(path, search)])], f"Report of {args.url}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dashboard.report",
        description="Render dashboard pages as self-contained HTML (and PDF) reports.")
    p.add_argument("--url", help='page path and query string, e.g. "/quality?facility=FAC-009"'
                   " (with --pack: the filters applied to every page)")
    p.add_argument("--each-facility", action="store_true",
                   help="one report per facility (the facility setting of --url replaced)")
    p.add_argument("--pack", choices=["quality"], help="the monthly quality pack per facility")
    p.add_argument("--facilities", help="comma-separated facility ids (default: every one)")
    p.add_argument("--peers", default="all", help="peer group of the pack's scorecard "
                   "(all, country, region, volume)")
    p.add_argument("--anonymise", action="store_true",
                   help="show the scorecard's peers as 'Peer 1…N' (for packs sent to facilities)")
    p.add_argument("--out", default="reports", help="output folder (created)")
    p.add_argument("--pdf", action="store_true", help="also print each report to PDF")
    p.add_argument("--database", default=os.environ.get("DATABASE_URL"),
                   help="store URL or SQLite path (default: $DATABASE_URL)")
    return p


#: At most this many file names are listed in a run's audit event (the count is always kept).
AUDIT_MAX_FILES = 100


def run_detail(args: argparse.Namespace, rendered: list, rows: list[dict], seconds: float,
               status: str) -> dict:
    """The ``report_run`` audit event of a run: what was asked, as the server parsed it (pages,
    filters, settings per page), the facilities, the files written and the counts of what the
    reports hold (reports, sections, table rows). Names and counts only: no record data."""
    mode = "pack" if args.pack else "each_facility" if args.each_facility else "url"
    settings: dict[str, dict] = {}
    for report in rendered:  # one page's settings (the same for each facility but its id)
        settings.setdefault(report.path, {k: v for k, v in report.settings.items()
                                          if k != "sc_facility"})
    filters = rendered[0].filters if rendered else {}
    per_facility = mode != "url"
    files = [name for row in rows for name in (row["html"], row.get("pdf")) if name]
    if len(rows) > 1:
        files.append("index.html")
    return {
        "mode": mode, "status": status, "pages": sorted({r.path for r in rendered}),
        "filters": {k: v for k, v in filters.items() if not (per_facility and k == "facilities")},
        "settings": settings,
        "facilities": sorted({f for r in rendered for f in r.filters.get("facilities", [])})
        if per_facility else None,
        "anonymise": bool(args.anonymise), "pdf": bool(args.pdf),
        "files_written": len(files), "files": files[:AUDIT_MAX_FILES],
        "reports": len(rendered), "sections": sum(len(r.sections) for r in rendered),
        "table_rows": sum(r.table_rows for r in rendered), "seconds": round(seconds, 1),
    }


def audit_run(database: str | None, detail: dict) -> None:
    """Write the run's ``report_run`` event (actor ``cli:<OS user>``, as for imports)."""
    from data import audit
    from data.importer import default_actor

    audit.log_event(database, default_actor("cli"), "report_run", detail)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0: every report written and the run
    audited; 2: a page without a report; 1: the audit event could not be written)."""
    args = parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from dashboard.app_factory import create_app

    app = create_app(args.database)
    started = time.perf_counter()
    rows: list[dict] = []
    rendered: list = []
    printer = PdfPrinter() if args.pdf else None
    try:
        with app.server.app_context():
            jobs, title = build_jobs(args)
            pages_of = {name: " + ".join(p + s for p, s in pages) for name, _, pages in jobs}
            for name, document in render_documents(jobs, args.database, rendered):
                html_file = out / f"{name}.html"
                html_file.write_text(document, encoding="utf-8")
                row = {"name": name, "html": html_file.name, "pages": pages_of[name]}
                if printer is not None:
                    pdf_file = out / f"{name}.pdf"
                    printer.print_pdf(html_file, pdf_file)
                    row["pdf"] = pdf_file.name
                rows.append(row)
                _log(f"wrote {html_file}" + (f" and {row['pdf']}" if "pdf" in row else ""))
    except ValueError as error:  # an unknown page: say so, without a traceback
        print(f"error: {error}", file=sys.stderr)
        if rows:  # files already written are audited too
            audit_run(args.database, run_detail(args, rendered, rows,
                                                time.perf_counter() - started, "stopped"))
        return 2
    finally:
        if printer is not None:
            printer.driver.quit()
    if len(rows) > 1:
        write_index(out, rows, title)
    seconds = time.perf_counter() - started
    try:
        audit_run(args.database, run_detail(args, rendered, rows, seconds, "complete"))
    except ValueError as error:  # AuditError: a detail the audit log refuses
        print(f"error: the run was not audited: {error}", file=sys.stderr)
        return 1
    _log(f"{len(rows)} report(s) in {seconds:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
