"""Pain relief: responder rates for a chosen definition, pain over follow-up, the distribution
of pain reduction, disability (ODI) and opioid use, VP and KP side by side."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.filters import RecordFilter
from analysis.outcomes import (
    ResponderDefinition,
    odi_change,
    opioid_use,
    pain_trajectory,
    responder_rates,
)
from dashboard.components import (
    chart_card,
    data_grid,
    empty_state,
    page_header,
    safe_callback,
    stat_card,
)
from dashboard.compute_cache import cached_output
from dashboard.data_access import filtered_records
from dashboard.figures.common import PROCEDURE_COLOURS, procedure_label
from dashboard.figures.pain import (
    DEATHS,
    DEATHS_TEXT,
    DEFAULT_THRESHOLDS,
    DEFAULT_TIME_POINT,
    KINDS,
    METHODS_TEXT,
    PROCEDURES,
    THRESHOLDS,
    TIME_POINTS,
    change_histogram,
    compare_kp_vp,
    definition_from_controls,
    difference_text,
    histogram_figure,
    histogram_summary,
    histogram_table,
    odi_figure,
    odi_summary,
    odi_table,
    opioid_figure,
    opioid_summary,
    opioid_table,
    rate_text,
    responder_figure,
    responder_summary,
    responder_table,
    responder_table_wide,
    trajectory_figure,
    trajectory_summary,
    trajectory_table,
)
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query

dash.register_page(__name__, path="/pain", name="Pain relief", title="Pain relief", order=1)

#: The record columns this page reads: only these are copied for a selection, which at a
#: million records is most of a filter change's time (found by tracing every callback).
RECORD_COLUMNS = (
    "procedure", "pain_baseline", "pain_day1", "pain_week1", "pain_month1", "pain_month3",
    "pain_month6", "pain_month12", "odi_baseline", "odi_month1", "odi_month12",
    "opioid_baseline", "opioid_month1", "died", "death_days",
)

#: The responder definition kept in the URL (``?visit=month3&kind=absolute&abs=3``): the page
#: restores it from there when the shell re-renders the page after a filter change.
SETTINGS = register_settings(
    "/pain",
    PageSetting("pain-timepoint", "visit", DEFAULT_TIME_POINT, tuple(TIME_POINTS),
                label="Follow-up visit", names=TIME_POINTS),
    PageSetting("pain-kind", "kind", "relative", tuple(KINDS), label="Reduction measured as",
                names=KINDS),
    PageSetting("pain-threshold-relative", "rel", DEFAULT_THRESHOLDS["relative"],
                tuple(THRESHOLDS["relative"]), label="Relative threshold (%)"),
    PageSetting("pain-threshold-absolute", "abs", DEFAULT_THRESHOLDS["absolute"],
                tuple(THRESHOLDS["absolute"]), label="Absolute threshold (points)"),
    PageSetting("pain-deaths", "deaths", "missing", tuple(DEATHS),
                label="A death before the visit counts as", names=DEATHS),
)
COLUMN_LABELS = {
    "n_followed": "followed", "n_missing": "missing", "rate_pct": "rate %",
    "ci_95": "95% CI", "n_paired": "n (both recorded)", "pct_before": "% before",
    "ci_before": "95% CI before", "pct_after": "% at month 1", "ci_after": "95% CI month 1",
    "on_before": "on opioids before", "on_after": "on opioids at month 1",
    "p_mcnemar": "McNemar p", "mean_baseline": "mean baseline", "mean_followup": "mean follow-up",
    "mean_change": "mean change", "time_point": "visit", "iqr": "IQR",
    "n_died_before_visit": "died before the visit (non-responders)",
}


def _threshold_options(kind: str) -> list[dict]:
    return [{"label": text, "value": value} for value, text in THRESHOLDS[kind].items()]


def controls(definition: ResponderDefinition, relative: float | None = None,
             absolute: float | None = None) -> dbc.Card:
    """The responder definition: visit, kind of reduction and threshold (keyboard usable);
    the threshold of the other kind keeps ``relative`` / ``absolute`` when given."""
    kind = definition.kind
    relative = definition.threshold if kind == "relative" else (
        relative or DEFAULT_THRESHOLDS["relative"])
    absolute = definition.threshold if kind == "absolute" else (
        absolute or DEFAULT_THRESHOLDS["absolute"])

    def threshold_dropdown(name: str, value: float) -> html.Div:
        return html.Div(
            dcc.Dropdown(id=f"pain-threshold-{name}", options=_threshold_options(name),
                         value=value, clearable=False, searchable=False),
            id=f"pain-threshold-{name}-wrap",
            style={} if kind == name else {"display": "none"},
        )

    return dbc.Card(dbc.CardBody([
        html.H2("Responder definition", className="h6"),
        dbc.Row([
            dbc.Col([
                dbc.Label("Follow-up visit", html_for="pain-timepoint", className="small mb-0"),
                dcc.Dropdown(id="pain-timepoint", clearable=False, searchable=False,
                             options=[{"label": v, "value": k} for k, v in TIME_POINTS.items()],
                             value=definition.time_point),
            ], xs=12, md=3),
            dbc.Col([
                dbc.Label("Reduction measured as", html_for="pain-kind", className="small mb-0"),
                dbc.RadioItems(id="pain-kind", value=kind, inline=True,
                               options=[{"label": v, "value": k} for k, v in KINDS.items()]),
            ], xs=12, md=4),
            dbc.Col([
                dbc.Label("Threshold (source)", html_for="pain-threshold-relative",
                          className="small mb-0"),
                threshold_dropdown("relative", relative),
                threshold_dropdown("absolute", absolute),
            ], xs=12, md=5),
            dbc.Col([
                dbc.Label("A death before the visit counts as", html_for="pain-deaths",
                          className="small mb-0"),
                dbc.RadioItems(id="pain-deaths", value=definition.deaths, inline=True,
                               options=[{"label": v, "value": k} for k, v in DEATHS.items()]),
            ], xs=12),
        ], className="g-2"),
        html.Details([html.Summary("How responders are defined, and the sources"),
                      html.P(METHODS_TEXT, className="small mb-1 mt-1"),
                      html.P(DEATHS_TEXT, className="small mb-0")],
                     className="small mt-2"),
    ]), className="mb-3", id="pain-definition")


def definition_from_settings(settings: dict) -> ResponderDefinition:
    """The responder definition of the page's URL settings (:data:`SETTINGS`)."""
    return definition_from_controls(settings["visit"], settings["kind"], settings["rel"],
                                    settings["abs"], settings["deaths"])


def layout(**query) -> html.Div:
    chosen = settings_from_query("/pain", query)
    definition = definition_from_settings(chosen)
    loading = {"delay_show": 400, "overlay_style": {"visibility": "visible", "opacity": 0.5}}
    return html.Div([
        page_header("Pain relief", "How many patients had meaningful pain relief after "
                    "vertebroplasty (VP) and kyphoplasty (KP), how pain, disability and opioid "
                    "use changed over follow-up, with 95% confidence intervals and the number of "
                    "patients each rests on."),
        controls(definition, chosen["rel"], chosen["abs"]),
        dcc.Loading(html.Div(id="pain-responders"), **loading),
        dcc.Loading(html.Div(id="pain-trajectory"), **loading),
        dcc.Loading(html.Div(id="pain-distribution"), **loading),
        dcc.Loading(html.Div(id="pain-function"), **loading),
    ])


# --------------------------------------------------------------------------------------------
# Sections (shared by the callbacks and the report)
# --------------------------------------------------------------------------------------------


def responder_section(rates: pd.DataFrame, definition: ResponderDefinition) -> html.Div:
    rows = {str(row["procedure"]): row for _, row in rates.iterrows()}
    cards = []
    for procedure in PROCEDURES:
        value, detail = rate_text(rows.get(procedure))
        cards.append(dbc.Col(stat_card(f"Responders, {procedure_label(procedure)}", value, detail,
                                       f"pain-rate-{procedure}", PROCEDURE_COLOURS[procedure]),
                             xs=12, md=4, className="mb-2"))
    comparison, reason = compare_kp_vp(rates)
    value, detail = difference_text(comparison, reason)
    cards.append(dbc.Col(stat_card("Difference KP − VP", value, detail, "pain-rd"),
                         xs=12, md=4, className="mb-2"))
    table = responder_table_wide(rates)
    return html.Div([
        html.H2(f"Responders: {definition.label}", className="h5 mt-2", id="pain-responder-title"),
        html.P("Missing follow-up is reported, never counted as a non-responder: rates are "
               "responders / patients with a score at the visit"
               + (", plus the patients who died before it, counted as non-responders "
                  "(composite)." if definition.deaths == "non_response" else
                  " (complete case; deaths before the visit are missing: the composite option "
                  "counts them as non-responders)."),
               className="small text-muted", id="pain-responder-note"),
        dbc.Row(cards, className="g-2 mb-2"),
        dbc.Row([
            dbc.Col(chart_card("Responder rate by procedure", responder_figure(rates),
                               responder_summary(rates, comparison, reason),
                               graph_id="pain-responder-graph"), xs=12, lg=5),
            dbc.Col(dbc.Card([
                dbc.CardHeader(html.H2("Responders, patients followed and missing follow-up",
                                       className="h6 mb-0")),
                dbc.CardBody([
                    data_grid(table, "pain-responder-table", "pain-responder-rates"),
                    html.P("Followed: patients with a baseline score and a score at the visit. "
                           "Missing follow-up: baseline score but none at the visit (lost, not "
                           "yet due or not recorded); they are left out of the rate, not counted "
                           "as non-responders. 95% CI: Wilson score interval.",
                           className="small text-muted mb-0"),
                ]),
            ], className="mb-3"), xs=12, lg=7),
        ], className="g-2"),
    ])


def trajectory_section(trajectory: pd.DataFrame) -> dbc.Card:
    detail = data_grid(trajectory_table(trajectory), "pain-trajectory-table", "pain-trajectory")
    return chart_card("Pain over follow-up (mean and 95% CI)", trajectory_figure(trajectory),
                      trajectory_summary(trajectory), graph_id="pain-trajectory-graph",
                      table=detail)


def distribution_section(histogram: pd.DataFrame, definition: ResponderDefinition) -> dbc.Card:
    return chart_card(
        f"Pain reduction at {TIME_POINTS[definition.time_point].lower()}, distribution",
        histogram_figure(histogram, definition), histogram_summary(histogram, definition),
        graph_id="pain-histogram-graph",
        table=data_grid(histogram_table(histogram), "pain-histogram-table",
                        "pain-reduction-distribution"))


def function_section(odi: pd.DataFrame, opioids: pd.DataFrame) -> dbc.Row:
    return dbc.Row([
        dbc.Col(chart_card("Disability (Oswestry Disability Index)", odi_figure(odi),
                           odi_summary(odi), graph_id="pain-odi-graph",
                           table=data_grid(odi_table(odi), "pain-odi-table", "pain-odi-change",
                                           column_labels=COLUMN_LABELS)), xs=12, lg=6),
        dbc.Col(chart_card("Opioid use before and at 1 month", opioid_figure(opioids),
                           opioid_summary(opioids), graph_id="pain-opioid-graph",
                           table=data_grid(opioid_table(opioids), "pain-opioid-table",
                                           "pain-opioid-use", column_labels=COLUMN_LABELS)),
                xs=12, lg=6),
    ], className="g-2")


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------


@callback(Output("pain-threshold-relative-wrap", "style"),
          Output("pain-threshold-absolute-wrap", "style"), Input("pain-kind", "value"))
def show_threshold_choices(kind):
    """Only the threshold list of the chosen kind is shown."""
    hidden = {"display": "none"}
    return ({}, hidden) if kind != "absolute" else (hidden, {})


@callback(Output("pain-responders", "children"), Output("pain-distribution", "children"),
          Input("filter-state", "data"), Input("pain-timepoint", "value"),
          Input("pain-kind", "value"), Input("pain-threshold-relative", "value"),
          Input("pain-threshold-absolute", "value"), Input("pain-deaths", "value"))
@safe_callback(2)
@cached_output
def update_responders(state, time_point, kind, relative, absolute, deaths="missing"):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return empty_state(), None
    definition = definition_from_controls(time_point, kind, relative, absolute, deaths)
    rates = responder_rates(records, definition, by=("procedure",))
    histogram = change_histogram(records, definition)
    return responder_section(rates, definition), distribution_section(histogram, definition)


@callback(Output("pain-trajectory", "children"), Output("pain-function", "children"),
          Input("filter-state", "data"))
@safe_callback(2)
@cached_output
def update_followup(state):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return None, None
    return (trajectory_section(pain_trajectory(records, by=("procedure",))),
            function_section(odi_change(records, by=("procedure",)),
                             opioid_use(records, by=("procedure",))))


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _report_table(table: pd.DataFrame) -> pd.DataFrame:
    """Blank cells as "–" (``DataFrame.to_html`` prints None in text columns as "None")."""
    return table.astype(object).where(table.notna(), "–").rename(columns=COLUMN_LABELS)


@register_report("/pain", "Pain relief")
def pain_report(selection: RecordFilter, settings: dict | None = None) -> list[ReportSection]:
    """The page's report, with the page's responder definition (default ≥30% at month 1)."""
    records = filtered_records(selection, RECORD_COLUMNS)
    if records.empty:
        return [ReportSection("No records", "No records match the filters.")]
    definition = definition_from_settings(settings or settings_from_query("/pain", None))
    rates = responder_rates(records, definition, by=("procedure",))
    comparison, reason = compare_kp_vp(rates)
    value, detail = difference_text(comparison, reason)
    trajectory = pain_trajectory(records, by=("procedure",))
    histogram = change_histogram(records, definition)
    odi = odi_change(records, by=("procedure",))
    opioids = opioid_use(records, by=("procedure",))
    return [
        ReportSection(f"Responders: {definition.label}",
                      f"{METHODS_TEXT} KP − VP difference: {value} ({detail}).",
                      figure=responder_figure(rates), table=_report_table(responder_table(rates))),
        ReportSection("Pain over follow-up", trajectory_summary(trajectory),
                      figure=trajectory_figure(trajectory),
                      table=_report_table(trajectory_table(trajectory))),
        ReportSection("Distribution of pain reduction", histogram_summary(histogram, definition),
                      figure=histogram_figure(histogram, definition),
                      table=_report_table(histogram_table(histogram, by_bin=True))),
        ReportSection("Disability (ODI)", odi_summary(odi), figure=odi_figure(odi),
                      table=_report_table(odi_table(odi))),
        ReportSection("Opioid use", opioid_summary(opioids), figure=opioid_figure(opioids),
                      table=_report_table(opioid_table(opioids))),
    ]
