"""Data: where the records come from and how complete they are.

Import batches and their rejected rows (store-wide: counts of file rows, not patients), the
completeness of every dictionary field for the filtered records (small cells suppressed), and
the data dictionary with the command-line import instructions. Admins can upload an export:
it goes through the same import pipeline as ``python -m data import`` (:func:`handle_upload`).

The module is imported as ``dashboard.pages.data``; ``data`` below is always the top-level
data package (absolute imports).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from analysis.filters import RecordFilter
from dashboard import data_access
from dashboard.auth import current_user, requires_role
from dashboard.components import (
    chart_card,
    data_grid,
    empty_state,
    page_header,
    safe_callback,
    stat_card,
)
from dashboard.compute_cache import cached_output
from dashboard.context import database
from dashboard.exports import upload_limit_bytes, upload_limit_mb
from dashboard.figures import data_quality as dq
from dashboard.figures.common import PROCEDURE_TEXT_COLOURS, procedure_label
from dashboard.report import ReportSection, register_report
from dashboard.suppression import label, threshold

dash.register_page(__name__, path="/data", name="Data", title="Data", order=8)

LOADING = {"delay_show": 400, "overlay_style": {"visibility": "visible", "opacity": 0.5}}
BATCH_LABELS = dq.BATCH_COLUMNS
REJECTION_LABELS = {"batch_id": "Batch", "file_name": "File", "outcome": "Outcome",
                    "reason": "Reason (field: rule)", "rows": "Rows"}


def _columns(grid: html.Div, pinned: tuple[str, ...] = (), **overrides: dict) -> html.Div:
    """Adjust column definitions of a :func:`data_grid` (widths, wrapping, pinned columns)."""
    table = grid.children[1]
    table.columnDefs = [{**column, **({"pinned": "left"} if column["field"] in pinned else {}),
                         **overrides.get(column["field"], {}),
                         **({"cellClass": "va-wrap"} if overrides.get(column["field"], {})
                            .get("wrapText") else {}),
                         # never narrower than data_grid's width for the longest word/number
                         "minWidth": max(column["minWidth"],
                                         overrides.get(column["field"], {}).get("minWidth", 0))}
                        for column in table.columnDefs]
    return grid


WRAP = {"wrapText": True, "autoHeight": True,
        "cellStyle": {"lineHeight": "1.35", "wordBreak": "normal", "paddingTop": "11px",
                      "paddingBottom": "11px"}}


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def layout(**_query) -> html.Div:
    return html.Div([
        page_header("Data", "Where the records come from: every import batch and the rows it "
                    "rejected, how complete each field is for the selected records, and the "
                    "data dictionary."),
        upload_section() if current_user().has_role("admin") else html.Div(id="data-upload-off"),
        imports_panel(data_access.store_wide_visible()),
        demo_data_section() if current_user().has_role("admin")
        and data_access.store_wide_visible() else html.Div(id="data-demo-off"),
        quarantine_section() if current_user().has_role("admin")
        and data_access.store_wide_visible() else html.Div(id="data-quarantine-off"),
        html.Section([
            html.H2("Field completeness of the selected records", id="data-completeness-heading",
                    className="h5"),
            html.P(["Share of the filtered records with a value in each of the "
                    f"{len(dq.FIELDS)} dictionary fields, by procedure. Required fields are "
                    "checked on import and should be 100%. Counts from 1 to "
                    f"{threshold()} are shown as {label()} and their percentage is hidden."],
                   className="small text-muted"),
            dcc.Loading(html.Div(id="data-completeness"), **LOADING),
        ], className="mb-4", **{"aria-labelledby": "data-completeness-heading"}),
        html.Section([
            html.H2("How to import, and the data dictionary", id="data-dictionary-heading",
                    className="h5"),
            import_help(),
            html.H3("Data dictionary", className="h6 mt-3"),
            html.P("Every field of a procedure record. Column headings of an export are matched "
                   "to the field names and their aliases ignoring case, spaces and punctuation.",
                   className="small text-muted"),
            _columns(data_grid(dq.dictionary_table(), "data-dictionary", "data-dictionary",
                               height=560),
                     pinned=("field",), field={"width": 150, "flex": 0},
                     type={"minWidth": 95}, unit={"minWidth": 90, **WRAP},
                     required={"minWidth": 100, **WRAP}, values={"minWidth": 140, **WRAP},
                     description={"minWidth": 230, "flex": 3, **WRAP},
                     aliases={"minWidth": 170, "flex": 2, **WRAP}),
            html.H3("Cross-field rules", className="h6"),
            html.P("Rules that relate several fields; their names appear as rejection reasons.",
                   className="small text-muted"),
            _columns(data_grid(dq.rules_table(), "data-rules", "data-cross-field-rules"),
                     rule={"minWidth": 230}, fields={"minWidth": 220, **WRAP},
                     requirement={"flex": 2, "minWidth": 300, **WRAP}),
        ], **{"aria-labelledby": "data-dictionary-heading"}),
    ])


STORE_WIDE_HIDDEN = ("The import history counts the rows of every facility's files, so it is shown "
                     "only to users who may see all facilities.")


def imports_panel(visible: bool = True) -> html.Section:
    """The import history; store-wide, so only for users not restricted to some facilities
    (``visible`` False: the section says why, and its callback returns nothing either)."""
    if not visible:
        return html.Section([
            html.H2("Imports", id="data-imports-heading", className="h5"),
            html.P(STORE_WIDE_HIDDEN, id="data-imports-hidden", className="small text-muted"),
            html.Button(id="data-refresh", hidden=True),  # the upload callback's output
            html.Div(id="data-imports"),
        ], className="mb-4", **{"aria-labelledby": "data-imports-heading"})
    return html.Section([
        html.Div([
            html.H2("Imports", id="data-imports-heading", className="h5 mb-0 me-3"),
            dbc.Button("Refresh", id="data-refresh", size="sm", color="secondary",
                       outline=True, title="Reload the import history (after a new import)"),
        ], className="d-flex align-items-center mb-1"),
        html.P("All imports into this store, newest first. These are counts of rows in the "
               "imported files, not of patients, so they are shown in full; the filters on "
               "the left do not apply to them.", className="small text-muted"),
        dcc.Loading(html.Div(id="data-imports"), **LOADING),
    ], className="mb-4", **{"aria-labelledby": "data-imports-heading"})


def import_help() -> dbc.Card:
    """How to import files: the command line (browser upload comes with sign-in and roles)."""
    def command(text: str) -> html.Pre:
        return html.Pre(html.Code(text), className="bg-light border rounded p-2 mb-2 small")

    return dbc.Card(dbc.CardBody([
        html.P(["Exports are imported on the server with the command line (CSV, TSV, Excel "
                ".xlsx or Parquet). Each file becomes one batch; a file that is identical to an "
                "earlier batch changes nothing. The store is the one named by ",
                html.Code("--database"), " or ", html.Code("DATABASE_URL"), "."],
               className="mb-2"),
        command("python -m data import FILE [FILE ...]"),
        html.P(["Reads, checks and stores the rows. Every row ends as accepted, rejected (a "
                "rule failed; kept in quarantine with its reasons), duplicate (already stored) "
                "or conflict (same record_id, different content; never overwritten unless ",
                html.Code("--replace"), " is given). Exit status 0: all rows accepted or "
                "duplicates; 1: some rows rejected or in conflict; 2: the file was refused whole "
                "(for example a column that names a direct identifier)."], className="small"),
        command("python -m data rejected BATCH --csv OUT"),
        html.P("Writes the quarantined rows of a batch, with their reasons, to a CSV file: "
               "correct them in the source system or the file and import that file again.",
               className="small"),
        html.P(["Also: ", html.Code("python -m data batches"), " lists the batches, ",
                html.Code("python -m data dictionary"), " prints this dictionary as Markdown. "
                "Only de-identified data are accepted; ages above 89 are stored as 90. Admins "
                "can also upload a file on this page (same checks, same accounting), download a "
                "batch's quarantined rows, and remove the demo data (also ",
                html.Code("python -m data remove-demo --yes"), ")."],
               className="small mb-0"),
    ]), className="mb-2")


# --------------------------------------------------------------------------------------------
# Upload (admins)
# --------------------------------------------------------------------------------------------

UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".parquet")


def upload_section() -> html.Section:
    """The admin's upload box: one file at a time, through the command line's pipeline."""
    return html.Section([
        html.H2("Upload an export", id="data-upload-heading", className="h5"),
        html.P(f"CSV, TSV, TXT, Excel .xlsx or Parquet, up to {upload_limit_mb():g} MB. The file "
               "is checked and imported exactly as by python -m data import: files with "
               "identifier columns are refused whole, and every row is accounted for.",
               className="small text-muted"),
        dcc.Upload(
            id="data-upload", multiple=False, accept=",".join(UPLOAD_SUFFIXES),
            children=html.Div(["Drop a file here or ", html.A("choose a file", href="#")]),
            className="border border-2 border-secondary-subtle rounded p-3 text-center mb-2",
            style={"borderStyle": "dashed", "cursor": "pointer"},
        ),
        dcc.Loading(html.Div(id="data-upload-result", role="status"), **LOADING),
    ], className="mb-4", **{"aria-labelledby": "data-upload-heading"})


def _upload_name(filename: str | None) -> str:
    """The file's own name (no folders from either path convention), at most 255 characters."""
    text = str(filename or "").strip()
    name = PureWindowsPath(PurePosixPath(text).name).name
    return name[:255] or "upload"


def handle_upload(contents: str | None, filename: str | None, database_url: str | None,
                  actor: str) -> html.Div:
    """Import an uploaded file through :func:`data.import_file` and describe the outcome.

    The file is written to a private temporary folder (mode 0700, file 0600), imported as one
    batch with the upload's name and ``actor`` in the audit log, in a child process with the
    memory and time limits of :mod:`data.limits` (:func:`data.isolation.import_file_isolated`),
    and deleted. Returns the same
    accounting as the command line (``rows read = accepted + rejected + duplicates +
    conflicts``), the refusal message of a refused file (it names columns, never values), or a
    message for a wrong type, an oversized or an unreadable upload.

    Examples
    --------
    >>> handle_upload("data:text/csv;base64,", "x.exe", None, "admin").id  # doctest: +SKIP
    'data-upload-refused'
    """
    from data import store
    from data.importer import ImportRefused
    from data.isolation import import_file_isolated
    from data.limits import ImportLimits

    name = _upload_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        return _upload_refused(name, f"files of type {suffix or '(none)'!r} are not accepted; "
                               f"upload one of {', '.join(UPLOAD_SUFFIXES)}.")
    _header, _comma, encoded = str(contents or "").partition(",")
    limit = upload_limit_bytes()
    if len(encoded) * 3 // 4 > limit + 2:
        return _upload_refused(name, f"the file is larger than the upload limit of "
                               f"{upload_limit_mb():g} MB (VA_UPLOAD_MAX_MB). Import it on the "
                               "server with python -m data import instead.")
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return _upload_refused(name, "the upload arrived damaged (not valid base64); try again.")
    if len(payload) > limit:
        return _upload_refused(name, f"the file is larger than the upload limit of "
                               f"{upload_limit_mb():g} MB (VA_UPLOAD_MAX_MB).")
    with tempfile.TemporaryDirectory(prefix="va-upload-") as folder:  # created with mode 0700
        path = Path(folder) / f"upload{suffix}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        try:
            # In a child process with the memory and time limits (VA_IMPORT_MEMORY_MB,
            # VA_UPLOAD_SECONDS): a hostile workbook stops the child, not this worker.
            result = import_file_isolated(path, database_url, actor=actor, file_name=name,
                                          limits=ImportLimits.from_environment(upload=True),
                                          time_setting="VA_UPLOAD_SECONDS")
        except ImportRefused as refused:
            return _upload_refused(name, refused.reason)
        except store.StoreError as error:
            return _upload_refused(name, f"the store cannot be used: {error}")
    from data.importer import run_import_listeners

    run_import_listeners(database_url, result)  # quality alerts (dashboard.alerts.install)
    return upload_summary(result)


def _upload_refused(name: str, message: str) -> html.Div:
    return html.Div(dbc.Alert([html.Strong(f"{name} was not imported. "), message,
                               " Nothing was stored."], color="danger", className="mb-0"),
                    id="data-upload-refused")


def upload_summary(result) -> html.Div:
    """The accounting of an uploaded file, as the command line prints it."""
    balanced = result.rows_read == (result.accepted + result.rejected + result.duplicates
                                    + result.conflicts)
    equation = (f"{result.rows_read:,} rows read = {result.accepted:,} accepted + "
                f"{result.rejected:,} rejected + {result.duplicates:,} duplicates + "
                f"{result.conflicts:,} conflicts")
    items = [html.Li(equation, id="data-upload-accounting")]
    if result.batch_id is not None:
        items.append(html.Li(f"Stored as batch {result.batch_id}."))
    if result.identical_to_batch is not None:
        items.append(html.Li(f"Identical to batch {result.identical_to_batch}: nothing changed."))
    if result.replaced:
        items.append(html.Li(f"{result.replaced:,} stored records replaced."))
    if result.top_coded_ages:
        items.append(html.Li(f"{result.top_coded_ages:,} ages above 89 recorded as 90."))
    if result.ignored_columns:
        items.append(html.Li("Columns not in the data dictionary (not stored): "
                             + ", ".join(result.ignored_columns)))
    body = [html.Ul(items, className="mb-2")]
    if result.reasons:
        body += [html.Div("Rejection reasons (field: rule, rows):", className="fw-semibold"),
                 html.Ul([html.Li(f"{reason}: {count:,}") for reason, count in
                          list(result.reasons.items())[:10]], id="data-upload-reasons")]
        body.append(html.Div("First rejected rows:", className="fw-semibold"))
        body.append(html.Ul([html.Li(f"row {r.row}, column {r.field}, rule {r.rule}: {r.message}")
                             for r in result.sample_reasons[:8]], id="data-upload-rows"))
        if result.batch_id is not None:
            body.append(html.P(["Every quarantined row with its values: ",
                                html.Code(f"python -m data rejected {result.batch_id} --csv "
                                          f"rejected_{result.batch_id}.csv"),
                                "; the reasons of all batches are listed under Imports below."],
                               className="small mb-0"))
    colour = "success" if not (result.rejected or result.conflicts) else "warning"
    title = f"{result.file_name} imported" if balanced else f"{result.file_name}: accounting error"
    return html.Div(dbc.Alert([html.Strong(title), *body], color=colour, className="mb-0"),
                    id="data-upload-summary")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def imports_section(batches, reasons) -> html.Div:
    """Summary cards, the batch grid and the rejection reasons (chart and grid)."""
    if batches.empty:
        return html.Div(dbc.Alert(["No file has been imported into this store yet. Use ",
                                   html.Code("python -m data import FILE"), " (see below)."],
                                  color="info"), id="data-no-batches")
    totals = dq.batch_totals(batches)
    quarantined = totals["rejected"] + totals["conflicts"]
    cards = dbc.Row([
        dbc.Col(stat_card("Import batches", f"{totals['batches']:,}",
                          f"last import {totals['last_import']}", "data-stat-batches"), xs=6, lg=3),
        dbc.Col(stat_card("Rows read", f"{totals['rows_read']:,}",
                          _n(totals["duplicates"], "duplicate"), "data-stat-rows"), xs=6, lg=3),
        dbc.Col(stat_card("Rows accepted", f"{totals['accepted']:,}",
                          f"{_n(totals['replaced'], 'stored record')} replaced; "
                          f"{_n(totals['top_coded_ages'], 'age')} top-coded to 90",
                          "data-stat-accepted"),
                xs=6, lg=3),
        dbc.Col(stat_card("Rows quarantined", f"{quarantined:,}",
                          f"{totals['rejected']:,} rejected, {_n(totals['conflicts'], 'conflict')}",
                          "data-stat-quarantined"), xs=6, lg=3),
    ], className="g-2 mb-3")
    top = dq.top_reasons(reasons)
    rejections = dq.rejection_table(reasons, batches)
    table = (_columns(data_grid(rejections, "data-rejections", "rejection-reasons",
                                column_labels=REJECTION_LABELS),
                      batch_id={"maxWidth": 100}, file_name={"minWidth": 170},
                      reason={"minWidth": 280, "flex": 2})
             if len(rejections) else html.P("No quarantined rows.", className="small"))
    return html.Div([
        cards,
        html.H3("Import batches", className="h6"),
        _columns(data_grid(dq.batch_table(batches), "data-batches", "import-batches",
                           column_labels=BATCH_LABELS),
                 pinned=("batch_id", "file_name"), batch_id={"minWidth": 80, "maxWidth": 90},
                 file_name={"minWidth": 180}, started={"minWidth": 170},
                 finished={"minWidth": 170}, ignored_columns={"minWidth": 160, **WRAP}),
        chart_card("Most frequent rejection reasons", dq.rejection_figure(top),
                   dq.rejection_summary(top, reasons), graph_id="data-rejection-chart",
                   table=table),
    ])


def completeness_section(completeness) -> html.Div:
    """Records per procedure, the compact chart of optional fields and the full grid."""
    counts = dq.completeness_counts(completeness)
    missing = dq.incomplete_required(completeness)
    badges = html.Div([
        html.Span([html.Span(procedure_label(p) + ": ", className="fw-semibold",
                             style={"color": PROCEDURE_TEXT_COLOURS.get(p)}),
                   html.Span(counts[p], id=f"data-completeness-n-{p}"), " records"],
                  className="me-4")
        for p in dq.PROCEDURES
    ] + [html.Span(["Required fields: ", html.Strong(
        "all 100% complete" if not missing else "incomplete: " + ", ".join(missing),
        id="data-required-check")])], className="mb-2")
    return html.Div([
        badges,
        chart_card("Optional fields: records with a value", dq.completeness_figure(completeness),
                   dq.completeness_summary(completeness), graph_id="data-completeness-chart"),
        html.H3("All fields", className="h6"),
        _columns(data_grid(dq.completeness_table(completeness), "data-completeness-grid",
                           "field-completeness"),
                 pinned=("field",), field={"minWidth": 170}, type={"maxWidth": 110},
                 required={"minWidth": 100}, **{"applies to": {"minWidth": 190, **WRAP}}),
    ])


# --------------------------------------------------------------------------------------------
# Callbacks and report
# --------------------------------------------------------------------------------------------


@callback(Output("data-upload-result", "children"), Output("data-refresh", "n_clicks"),
          Input("data-upload", "contents"), State("data-upload", "filename"),
          State("data-refresh", "n_clicks"), prevent_initial_call=True)
@requires_role("admin")
@safe_callback(n_outputs=2, message="The upload could not be imported; nothing was stored.")
def upload_export(contents, filename, refreshes):
    """Import an uploaded file (admins only), then refresh the import history.

    A regular callback, not a background one: an upload is at most ``VA_UPLOAD_MAX_MB``
    (50 MB by default), which the pipeline imports in seconds, and the request carries the
    file anyway; the user sees a spinner meanwhile. The import runs in a child process that is
    stopped after ``VA_UPLOAD_SECONDS`` (100 s), below the web worker's timeout.
    """
    if not contents:
        return dash.no_update, dash.no_update
    return handle_upload(contents, filename, database(), current_user().name), (refreshes or 0) + 1


@callback(Output("data-imports", "children"), Input("data-refresh", "n_clicks"))
@safe_callback()
def update_imports(_clicks):
    if not data_access.store_wide_visible():  # checked here too: the layout is not the gate
        return html.P(STORE_WIDE_HIDDEN, className="small text-muted")
    return imports_section(data_access.batches(), data_access.rejection_reasons())


@callback(Output("data-completeness", "children"), Input("filter-state", "data"))
@safe_callback()
@cached_output
def update_completeness(state):
    records = data_access.filtered_records(RecordFilter.from_dict(state))
    if records.empty:
        return empty_state()
    return completeness_section(dq.field_completeness(records))


@register_report("/data", "Data")
def data_report(selection: RecordFilter, _settings: dict | None = None) -> list[ReportSection]:
    if not data_access.store_wide_visible():
        return _selected_records_sections(selection)
    batches = data_access.batches()
    reasons = data_access.rejection_reasons()
    top = dq.top_reasons(reasons)
    sections = [
        ReportSection("Import batches", "All imports into the store, newest first (counts of "
                      "file rows, not patients; the filters do not apply).",
                      table=dq.batch_table(batches).rename(columns=BATCH_LABELS)),
        ReportSection("Rejection reasons", dq.rejection_summary(top, reasons),
                      figure=dq.rejection_figure(top),
                      table=dq.rejection_table(reasons, batches).rename(columns=REJECTION_LABELS)),
    ]
    return sections + _selected_records_sections(selection)


def _selected_records_sections(selection: RecordFilter) -> list[ReportSection]:
    """The report's sections about the selected records (completeness, dictionary)."""
    sections = []
    records = data_access.filtered_records(selection)
    if records.empty:
        sections.append(ReportSection("Field completeness", "No records match the filters."))
    else:
        completeness = dq.field_completeness(records)
        sections.append(ReportSection(
            "Field completeness of the selected records", dq.completeness_summary(completeness),
            figure=dq.completeness_figure(completeness),
            table=dq.completeness_table(completeness)))
    sections.append(ReportSection("Data dictionary", "Every field of a procedure record.",
                                  table=dq.dictionary_table()))
    return sections


# --------------------------------------------------------------------------------------------
# Demo data: remove the synthetic batches (admins), with a confirmation step
# --------------------------------------------------------------------------------------------


def demo_data_section() -> html.Section:
    """The admin's "Remove demo data" control: how many records the synthetic batches hold,
    a button that asks for confirmation, and the outcome (:func:`remove_demo_data`)."""
    from data.batches import synthetic_batches

    demo = synthetic_batches(database())
    held = int(demo["records"].sum()) if len(demo) else 0
    if demo.empty:
        body = [html.P("The store holds no synthetic (demo) batch.", id="data-demo-none",
                       className="small text-muted mb-0")]
    else:
        names = ", ".join(f"batch {row.batch_id} ({row.file_name})" for row in demo.itertuples())
        body = [
            html.P([f"{_n(held, 'record')} of the store came from the demo generator ({names}). "
                    "Removing them deletes those records and their quarantined rows; the batches "
                    "stay in the import history, marked removed, and the removal is written to "
                    "the audit log. Imported files are not touched."],
                   id="data-demo-summary", className="small"),
            dbc.Button("Remove demo data…", id="data-demo-open", color="danger", outline=True,
                       size="sm"),
            dbc.Modal([
                dbc.ModalHeader(dbc.ModalTitle("Remove the demo data?")),
                dbc.ModalBody(f"This deletes {_n(held, 'synthetic record')} ({names}) from the "
                              "store for every user. It cannot be undone here; the demo data "
                              "can be generated again with python -m data demo."),
                dbc.ModalFooter([
                    dbc.Button("Cancel", id="data-demo-cancel", color="secondary", outline=True),
                    dbc.Button("Remove demo data", id="data-demo-confirm", color="danger"),
                ]),
            ], id="data-demo-modal", is_open=False),
        ]
    return html.Section([
        html.H2("Demo data", id="data-demo-heading", className="h5"),
        *body,
        html.Div(id="data-demo-result", role="status", className="mt-2"),
    ], className="mb-4", **{"aria-labelledby": "data-demo-heading"})


@callback(Output("data-demo-modal", "is_open"), Input("data-demo-open", "n_clicks"),
          Input("data-demo-cancel", "n_clicks"), Input("data-demo-confirm", "n_clicks"),
          prevent_initial_call=True)
def toggle_demo_confirmation(_open, _cancel, _confirm):
    """Open the confirmation on "Remove demo data…", close it on Cancel or after confirming."""
    return confirmation_open(dash.ctx.triggered_id)


def confirmation_open(trigger: str | None) -> bool:
    """Whether the confirmation shows after a click on ``trigger`` (a button id)."""
    return trigger == "data-demo-open"


@callback(Output("data-demo-result", "children"),
          Output("data-refresh", "n_clicks", allow_duplicate=True),
          Input("data-demo-confirm", "n_clicks"), State("data-refresh", "n_clicks"),
          prevent_initial_call=True)
@requires_role("admin")
@safe_callback(n_outputs=2, message="The demo data could not be removed; nothing was changed.")
def confirm_demo_removal(clicks, refreshes):
    """Remove the synthetic batches (admins only; checked on the server), then refresh the
    import history and, through it, the data version every page listens to."""
    if not clicks:
        return dash.no_update, dash.no_update
    return remove_demo_data(database(), current_user().name), (refreshes or 0) + 1


def remove_demo_data(database_url: str | None, actor: str) -> html.Div:
    """Remove the synthetic batches for ``actor`` and describe the outcome.

    A user restricted to some facilities may not change store-wide data, whatever the role.
    """
    from data.batches import remove_synthetic_batches

    if not data_access.store_wide_visible():
        return dbc.Alert("Removing demo data changes every facility's data; it needs an admin "
                         "who may see all facilities.", color="danger", className="mb-0")
    result = remove_synthetic_batches(database_url, actor)
    if not result.batch_ids:
        return dbc.Alert("There was no demo data to remove.", color="info", className="mb-0",
                         id="data-demo-removed")
    batches = ", ".join(map(str, result.batch_ids))
    return dbc.Alert(f"Removed {_n(result.records, 'synthetic record')} (batch "
                     f"{batches}); every page now shows the remaining records.",
                     color="success", className="mb-0", id="data-demo-removed")


@callback(Output("data-version", "data", allow_duplicate=True),
          Input("data-refresh", "n_clicks"), prevent_initial_call=True)
def announce_data_version(_clicks):
    """After an upload or a removal (both bump ``data-refresh``) tell the shell the new data
    version, so that the match count and the demo banner follow without a reload."""
    return data_access.data_version()


# --------------------------------------------------------------------------------------------
# Quarantine download (admins): a batch's rejected rows as a neutralised CSV, audited
# --------------------------------------------------------------------------------------------


def quarantine_options(batches) -> list[dict]:
    """Dropdown options: the batches with quarantined rows (rejected or in conflict), newest
    first."""
    if batches.empty:
        return []
    held = batches[(batches["rejected"] + batches["conflicts"]) > 0]
    return [{"label": f"Batch {row.batch_id}: {row.file_name} "
                      f"({_n(int(row.rejected) + int(row.conflicts), 'row')})",
             "value": int(row.batch_id)}
            for row in held.sort_values("batch_id", ascending=False).itertuples()]


def quarantine_section() -> html.Section:
    """Choose a batch and download its quarantined rows (the columns of
    ``python -m data rejected``: row, outcome, reasons, then the file's dictionary columns)."""
    options = quarantine_options(data_access.batches())
    return html.Section([
        html.H2("Download a batch's quarantined rows", id="data-quarantine-heading",
                className="h5"),
        html.P("Every rejected or conflicting row of the batch with its reasons and the values "
               "it had (dictionary columns only; values that looked like identifiers were "
               "redacted on import), to correct and import again. The same file as python -m "
               "data rejected BATCH --csv OUT; cells a spreadsheet would run as a formula get a "
               "leading apostrophe, and the download is written to the audit log.",
               className="small text-muted"),
        html.Div([
            html.Div([
                dbc.Label("Batch", html_for="data-quarantine-batch", className="small mb-0"),
                dcc.Dropdown(id="data-quarantine-batch", options=options, clearable=False,
                             value=options[0]["value"] if options else None,
                             placeholder="No batch has quarantined rows"),
            ], style={"minWidth": "18rem"}, className="me-2"),
            dbc.Button("Download CSV", id="data-quarantine-download-button", size="sm",
                       color="secondary", disabled=not options, className="mt-3"),
        ], className="d-flex align-items-start flex-wrap"),
        html.Div(id="data-quarantine-message", role="status", className="small mt-1"),
        dcc.Download(id="data-quarantine-download"),
    ], className="mb-4", **{"aria-labelledby": "data-quarantine-heading"})


@callback(Output("data-quarantine-download", "data"), Output("data-quarantine-message", "children"),
          Input("data-quarantine-download-button", "n_clicks"),
          State("data-quarantine-batch", "value"), prevent_initial_call=True)
@requires_role("admin")
@safe_callback(n_outputs=2, message="The quarantined rows could not be exported.")
def download_quarantine(clicks, batch):
    """The chosen batch's quarantine as CSV (admins only, checked on the server)."""
    if not clicks:
        return dash.no_update, dash.no_update
    return quarantine_download(batch, database())


def quarantine_download(batch, database_url: str | None) -> tuple:
    """``(download, message)`` for batch ``batch``: the neutralised CSV of its quarantine and
    a ``download`` audit event, or no file and a message saying why."""
    from dashboard.exports import log_download, safe_csv
    from data.batches import batch_exists, quarantine_table

    if not data_access.store_wide_visible():
        return dash.no_update, STORE_WIDE_HIDDEN
    try:
        batch_id = int(batch)
    except (TypeError, ValueError):
        return dash.no_update, "Choose a batch first."
    if isinstance(batch, bool) or not batch_exists(batch_id, database_url):
        return dash.no_update, f"There is no import batch {batch}."
    table = quarantine_table(batch_id, database_url)
    name = f"rejected_{batch_id}.csv"
    log_download("quarantine", name, len(table), None, batch=batch_id)
    return (dcc.send_string(safe_csv(table), name, type="text/csv"),
            f"{_n(len(table), 'quarantined row')} of batch {batch_id} downloaded as {name}.")


@callback(Output("data-quarantine-batch", "options"), Output("data-quarantine-batch", "value"),
          Output("data-quarantine-download-button", "disabled"),
          Input("data-refresh", "n_clicks"), State("data-quarantine-batch", "value"),
          prevent_initial_call=True)
@requires_role("admin")
def refresh_quarantine_batches(_clicks, chosen):
    """After an upload (or Refresh) offer the new batches too, keeping the chosen one."""
    if not data_access.store_wide_visible():
        return [], None, True
    options = quarantine_options(data_access.batches())
    values = [option["value"] for option in options]
    value = chosen if chosen in values else (values[0] if values else None)
    return options, value, not options
