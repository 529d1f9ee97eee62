"""Signals: every current funnel alarm/alert and CUSUM signal, with their review status.

The list comes from :func:`analysis.signals.current_signals` on the records the user may see
(a facility-restricted user's own rows, as on the Quality page), with the Quality page's
settings and its small-cell rule (hidden units left out of a comparison exactly as there).
Computing it runs every outcome's funnel and every unit's CUSUM (about a tenth of a second per
unit and outcome, for the Markov-chain limits), so it is cached per (store, data version, user
scope) with every CUSUM crossing; the date only filters them. Analysts and administrators
acknowledge a signal with a status and a short note; each review is kept in the store and
audited (:mod:`data.signal_reviews`).
"""

from __future__ import annotations

import datetime as dt
import functools

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

import analysis.quality
import analysis.signals
from analysis.signals import READ_COLUMNS, SignalOptions, current_signals
from dashboard import data_access
from dashboard.auth import current_user, requires_role, scope_key
from dashboard.components import empty_state, page_header, safe_callback
from dashboard.compute_cache import code_version, memoised
from dashboard.context import database
from dashboard.figures.quality import outcome_label, unit_name
from dashboard.figures.signals import LABELS, page_exclude, signals_table, summary_text
from dashboard.suppression import threshold
from data import signal_reviews, store

PATH = "/signals"
dash.register_page(__name__, path=PATH, name="Signals", title="Quality signals", order=7.5,
                   nav_group="Monitoring")

CODE_VERSION = code_version(analysis.quality, analysis.signals)
#: Default look-back of the "since" date: one year before the newest procedure.
DEFAULT_DAYS = 365
STATUS_OPTIONS = [{"label": s.capitalize(), "value": s} for s in signal_reviews.STATUSES]
SHOWN = ["new", "signal", "outcome", "unit_type", "unit_id", "n", "observed", "expected", "oe",
         "oe_ci", "false_alarm", "signal_date", "status", "link"]


def _url() -> str:
    return store.database_url(database())


@functools.lru_cache(maxsize=4)
def _signals(url: str, version: str, scope: str, limit: int):
    """The signals of the user's records with every CUSUM crossing (scope and threshold are
    part of the key); a date only filters them (:meth:`SignalsResult.since_date`). Kept on
    disk too (:func:`dashboard.compute_cache.memoised`, scoped to the user's role and
    facilities), so every worker shares one computation per data version."""
    def compute():
        records = data_access.all_records()
        records = records[[c for c in READ_COLUMNS if c in records.columns]]
        return current_signals(records, SignalOptions(exclude=page_exclude))

    return memoised("signals", (CODE_VERSION, url, version, limit), compute)


def default_since() -> dt.date | None:
    records = data_access.all_records()
    if records.empty or "procedure_date" not in records:
        return None
    latest = pd.to_datetime(records["procedure_date"]).max()
    return None if pd.isna(latest) else (latest - pd.Timedelta(days=DEFAULT_DAYS)).date()


def visible_signals(since: dt.date | None):
    url = _url()
    return _signals(url, data_access.data_version(url), scope_key(), threshold()).since_date(
        since)


def _since(value) -> dt.date | None:
    if not value:
        return default_since()
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return default_since()


# ------------------------------------------------------------------------------------ layout
def layout(since: str | None = None, **_query) -> html.Div:
    analyst = current_user().has_role("analyst")
    review = dbc.Card([
        dbc.CardHeader(html.H2("Review a signal", className="h6 mb-0")),
        dbc.CardBody([
            dbc.Label("Signal", html_for="signals-ack-key", className="small fw-semibold"),
            dcc.Dropdown(id="signals-ack-key", placeholder="Choose a signal", className="mb-2"),
            html.Fieldset([
                html.Legend("Status", className="form-label small fw-semibold mb-1 fs-6"),
                dbc.RadioItems(id="signals-ack-status", options=STATUS_OPTIONS,
                               value="under review", inline=True),
            ], className="mb-2"),
            dbc.Label("Note (no patient details)", html_for="signals-ack-note",
                      className="small fw-semibold"),
            dbc.Input(id="signals-ack-note", maxLength=signal_reviews.MAX_NOTE_CHARS,
                      placeholder="e.g. case notes requested", className="mb-2"),
            dbc.Button("Save review", id="signals-ack-save", color="primary", size="sm"),
            html.Div(id="signals-ack-message", className="small mt-2"),
        ]),
    ], className="mb-3", style={} if analyst else {"display": "none"})
    return html.Div([
        page_header("Quality signals", "Every current funnel alarm or alert and every CUSUM "
                    "signal since a date, across all monitored outcomes, for facilities and "
                    "operators: worse than expected first, then by severity. A signal is a "
                    "prompt to look, not a verdict."),
        dbc.Card(dbc.CardBody(dbc.Row([
            dbc.Col([
                dbc.Label("CUSUM signals since", html_for="signals-since",
                          className="small fw-semibold mb-1 d-block"),
                dcc.DatePickerSingle(id="signals-since", date=since, display_format="YYYY-MM-DD",
                                     clearable=True),
            ], xs=12, md=4),
            dbc.Col(html.P("Funnel flags are the units' current position over all their "
                           "records; CUSUM signals are crossings of the risk-adjusted CUSUM "
                           "on or after the date (default: one year before the newest "
                           "procedure). Counts of 1 to the suppression threshold are hidden.",
                           className="small text-muted mb-0"), xs=12, md=8),
        ])), className="mb-3"),
        dcc.Store(id="signals-reviewed", data=0),
        dcc.Loading(html.Div(id="signals-list"), delay_show=400),
        review,
        html.Div(id="signals-history"),
    ])


def _table(display: pd.DataFrame) -> dbc.Table:
    header = html.Thead(html.Tr([html.Th(LABELS[c]) for c in SHOWN]))
    rows = []
    for position, row in enumerate(display.itertuples()):
        cells = []
        for column in SHOWN:
            value = getattr(row, column)
            if column == "link":
                cells.append(html.Td(html.A("Open", href=value, id=f"signals-link-{position}")))
            else:
                cells.append(html.Td("–" if value is None or value == "" and column != "new"
                                     else value,
                                     className="va-id" if column == "unit_id" else None))
        rows.append(html.Tr(cells, className="table-warning" if row.new == "New" else None))
    return dbc.Table([header, html.Tbody(rows)], id="signals-table", size="sm", hover=True,
                     responsive=True, className="small")


def _history(keys: list[str]) -> html.Div:
    history = signal_reviews.review_history(_url(), keys)
    if history.empty:
        return html.Div()
    history = history.sort_values("review_id", ascending=False).head(50)
    rows = [html.Tr([html.Td(f"{r.reviewed_at:%Y-%m-%d %H:%M}"), html.Td(r.actor),
                     html.Td(r.signal_key.split("|")[3], className="va-id"), html.Td(r.status), html.Td(r.note)])
            for r in history.itertuples()]
    return dbc.Card([
        dbc.CardHeader(html.H2("Review history", className="h6 mb-0")),
        dbc.CardBody(dbc.Table([html.Thead(html.Tr([html.Th(t) for t in (
            "When (UTC)", "Who", "Unit", "Status", "Note")])), html.Tbody(rows)],
            id="signals-history-table", size="sm", className="small")),
    ], className="mb-3")


def _option(row) -> dict:
    return {"label": f"{row.unit_id} — {row.outcome} — {row.signal}", "value": row.key}


# ------------------------------------------------------------------------------- callbacks
@callback(Output("signals-list", "children"), Output("signals-ack-key", "options"),
          Output("signals-history", "children"), Input("signals-since", "date"),
          Input("signals-reviewed", "data"))
@safe_callback(3)
def update_signals(since, _reviewed=0):
    chosen = _since(since)
    result = visible_signals(chosen)
    reviews = signal_reviews.current_reviews(_url())
    display = signals_table(result.signals, reviews)
    last = reviews.loc[reviews.index.isin(display["key"]), "reviewed_at"].max() if len(
        reviews) else None
    summary = html.P(summary_text(display, chosen, last), id="signals-summary",
                     className="fw-semibold")
    if display.empty:
        return [summary, empty_state("No current signal.")], [], _history([])
    options = [_option(r) for r in display.itertuples()]
    return [summary, _table(display)], options, _history(display["key"].tolist())


@callback(Output("signals-ack-message", "children"), Output("signals-reviewed", "data"),
          Input("signals-ack-save", "n_clicks"), State("signals-ack-key", "value"),
          State("signals-ack-status", "value"), State("signals-ack-note", "value"),
          State("signals-since", "date"), State("signals-reviewed", "data"),
          prevent_initial_call=True)
@requires_role("analyst")
@safe_callback(2)
def save_review(n_clicks, key, status, note, since, reviewed):
    if not key:
        return dbc.Alert("Choose a signal first.", color="warning", className="py-1"), reviewed
    shown = set(visible_signals(_since(since)).signals["key"])
    if key not in shown:  # only signals of the user's own records
        return dbc.Alert("That signal is not in your list.", color="warning",
                         className="py-1"), reviewed
    try:
        signal_reviews.record_review(_url(), key, status, note or "", current_user().name)
    except ValueError as error:
        return dbc.Alert(str(error), color="warning", className="py-1"), reviewed
    _, _, unit, unit_id, _ = key.split("|")
    outcome = key.split("|")[1]
    text = (f"Saved: {unit_name(unit)} {unit_id}, {outcome_label(outcome).lower()} — "
            f"{status}.")
    return dbc.Alert(text, color="success", className="py-1", id="signals-ack-saved"), (
        (reviewed or 0) + 1)
