"""Signals: every current funnel alarm/alert and CUSUM signal, with their review status.

The list comes from :func:`analysis.signals.current_signals` on the records the user may see
(a facility-restricted user's own rows, as on the Quality page), with the Quality page's
settings and its small-cell rule (hidden units left out of a comparison exactly as there).
Computing it runs every outcome's funnel and every unit's CUSUM (about a tenth of a second per
unit and outcome, for the Markov-chain limits), so it is cached per (store, data version, user
scope) with every CUSUM crossing; the date only filters them. Analysts and administrators
acknowledge a signal with a status and a short note; each review is kept in the store and
audited (:mod:`data.signal_reviews`).

Every unit is compared over all the records the user may see, so of the global filters only
the facility filter applies: it narrows the list to the signals of those facilities and of
the operators who treated patients there (the monthly pack's Signals part of one facility).
The since-date is a page setting (``?since=2024-06-01``), and the report
(:func:`signals_report`) is the list on screen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

import analysis.quality
import analysis.signals
from analysis.filters import RecordFilter
from analysis.signals import READ_COLUMNS, SignalOptions, SignalsResult, current_signals
from dashboard import data_access
from dashboard.auth import current_user, requires_role, scope_key
from dashboard.components import empty_state, mask_small_counts, page_header, safe_callback
from dashboard.compute_cache import code_version, memoised
from dashboard.context import database
from dashboard.figures.quality import outcome_label, unit_name
from dashboard.figures.signals import LABELS, page_exclude, signals_table, summary_text
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query
from dashboard.suppression import label, range_text, threshold
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
#: The page's controls kept in the URL: the date of the first CUSUM crossing listed (empty:
#: one year before the newest procedure; a bad date gives that default too).
SETTINGS = register_settings(
    PATH, PageSetting("signals-since", "since", None, None, prop="date",
                      label="CUSUM signals since",
                      names={None: "one year before the newest procedure"}))
FILTER_NOTE = ("Every unit is compared over all the records you may see (as the Quality page "
               "does without filters); of the filters, only facility applies: it narrows the "
               "list to those facilities and to the operators who treated patients there.")


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


def visible_signals(since: dt.date | None, facilities: tuple[str, ...] = ()) -> SignalsResult:
    """The user's signals since ``since``; with ``facilities`` (the facility filter), only
    those of the facilities and of the operators who treated patients there."""
    url = _url()
    result = _signals(url, data_access.data_version(url), scope_key(), threshold()).since_date(
        since)
    if not facilities:
        return result
    operators = _operators_of(url, data_access.data_version(url), scope_key(),
                              tuple(sorted(facilities)))
    return dataclasses.replace(result, signals=of_units(result.signals, facilities, operators))


def of_units(signals: pd.DataFrame, facilities, operators) -> pd.DataFrame:
    """The signals on the given facilities and operators (order kept).

    >>> frame = pd.DataFrame({"unit": ["facility_id", "operator_id", "facility_id"],
    ...                       "unit_id": ["FAC-1", "OP-1", "FAC-2"]})
    >>> of_units(frame, ["FAC-1"], ["OP-1"])["unit_id"].tolist()
    ['FAC-1', 'OP-1']
    """
    ids = signals["unit_id"].astype(str)
    keep = (((signals["unit"] == "facility_id") & ids.isin([str(f) for f in facilities]))
            | ((signals["unit"] == "operator_id") & ids.isin([str(o) for o in operators])))
    return signals[keep.to_numpy()].reset_index(drop=True)


@functools.lru_cache(maxsize=8)
def _operators_of(url: str, version: str, scope: str, facilities: tuple[str, ...]
                  ) -> tuple[str, ...]:
    """Operators with a record at one of ``facilities`` (of the records the user may see)."""
    records = data_access.all_records()
    if "operator_id" not in records or "facility_id" not in records:
        return ()
    at = records["facility_id"].astype(object).isin(facilities).to_numpy(bool)
    return tuple(sorted(records.loc[at, "operator_id"].dropna().astype(str).unique()))


def _since(value) -> dt.date | None:
    if not value:
        return default_since()
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return default_since()


# ------------------------------------------------------------------------------------ layout
def _iso_date(text) -> str | None:
    """``text`` if it is an ISO date (``2024-06-01``), else ``None`` (the default date)."""
    try:
        return dt.date.fromisoformat(str(text)[:10]).isoformat() if text else None
    except ValueError:
        return None


def layout(**query) -> html.Div:
    since = _iso_date(settings_from_query(PATH, query)["since"])
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
                           "procedure). Counts of 1 to the suppression threshold are hidden. "
                           + FILTER_NOTE, className="small text-muted mb-0"), xs=12, md=8),
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
def _facilities(state) -> tuple[str, ...]:
    return RecordFilter.from_dict(state or {}).facilities


def signals_display(since: dt.date | None, facilities: tuple[str, ...] = ()
                    ) -> tuple[SignalsResult, pd.DataFrame, str]:
    """The signals, their display table (suppression applied) and the summary sentence: what
    the page shows and the report prints."""
    result = visible_signals(since, facilities)
    reviews = signal_reviews.current_reviews(_url())
    display = signals_table(result.signals, reviews)
    last = reviews.loc[reviews.index.isin(display["key"]), "reviewed_at"].max() if len(
        reviews) else None
    return result, display, summary_text(display, since, last)


@callback(Output("signals-list", "children"), Output("signals-ack-key", "options"),
          Output("signals-history", "children"), Input("signals-since", "date"),
          Input("signals-reviewed", "data"), Input("filter-state", "data"))
@safe_callback(3)
def update_signals(since, _reviewed=0, state=None):
    chosen = _since(since)
    _result, display, text = signals_display(chosen, _facilities(state))
    summary = html.P(text, id="signals-summary", className="fw-semibold")
    if display.empty:
        return [summary, empty_state("No current signal.")], [], _history([])
    options = [_option(r) for r in display.itertuples()]
    return [summary, _table(display)], options, _history(display["key"].tolist())


@callback(Output("signals-ack-message", "children"), Output("signals-reviewed", "data"),
          Input("signals-ack-save", "n_clicks"), State("signals-ack-key", "value"),
          State("signals-ack-status", "value"), State("signals-ack-note", "value"),
          State("signals-since", "date"), State("signals-reviewed", "data"),
          State("filter-state", "data"), prevent_initial_call=True)
@requires_role("analyst")
@safe_callback(2)
def save_review(n_clicks, key, status, note, since, reviewed, state=None):
    if not key:
        return dbc.Alert("Choose a signal first.", color="warning", className="py-1"), reviewed
    shown = set(visible_signals(_since(since), _facilities(state)).signals["key"])
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


# ---------------------------------------------------------------------------------- report
#: Report columns: the page's table without the link (a page address means nothing on paper).
REPORT_COLUMNS = [c for c in SHOWN if c != "link"]


@register_report(PATH, "Quality signals")
def signals_report(selection: RecordFilter, settings: dict | None = None
                   ) -> list[ReportSection]:
    """The Signals list on screen: the since-date of the address (default one year before the
    newest procedure), the facility filter, the review status; suppression as on the page
    (:func:`dashboard.figures.signals.signals_table`, the one place values become text)."""
    settings = settings if settings is not None else settings_from_query(PATH, None)
    since = _since(settings.get("since"))
    result, display, text = signals_display(since, selection.facilities)
    explanation = (
        "Funnel flags are each unit's current position over all its records (risk-adjusted, "
        "beyond the 95% limit: alert; beyond 99.8%: alarm); CUSUM signals are crossings of the "
        "risk-adjusted CUSUM on or after the date. A signal is a prompt to look, not a "
        f"verdict. {FILTER_NOTE} A signal on a unit with {range_text()} events or "
        f"non-events is listed with its counts shown as {label()} or –, and its expected "
        f"events, O/E, CI and crossing date hidden; a unit with {range_text()} cases has no "
        f"signal listed (no unit with fewer than {SignalOptions().min_volume} cases is tested, "
        "so a signal would give its n away).")
    sections = [ReportSection("Signals", text + "\n\n" + explanation,
                              table=display[REPORT_COLUMNS].rename(columns=LABELS)
                              if len(display) else None)]
    monitored = result.monitored.assign(
        outcome=[outcome_label(o) for o in result.monitored["outcome"]],
        unit=[unit_name(u, plural=True).capitalize() for u in result.monitored["unit"]],
        skipped=[mask_small_counts(str(t)) for t in result.monitored["skipped"]],
    ).rename(columns={"outcome": "Outcome", "unit": "Units", "tested": "Units tested",
                      "skipped": "Not monitored because"})
    sections.append(ReportSection("What was monitored", "Each outcome and unit type, with the "
                                  "number of units tested (units with fewer than 10 cases are "
                                  "not tested).", table=monitored))
    return sections
