"""Overview: VP and KP side by side (KPIs with 95% CIs and n), and the quarterly trend."""

from __future__ import annotations

from typing import NamedTuple

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.descriptive import trend_by_period
from analysis.filters import RecordFilter
from analysis.key_figures import KeyFigures, key_figures
from analysis.outcomes import ResponderDefinition
from dashboard.components import (
    chart_card,
    data_grid,
    empty_state,
    nowrap_intervals,
    page_header,
    safe_callback,
)
from dashboard.compute_cache import cached_output
from dashboard.data_access import filtered_records
from dashboard.figures.common import PROCEDURE_TEXT_COLOURS, PROCEDURES, procedure_label
from dashboard.figures.overview import key_figures_table, kpi_rows, trend_figure, trend_summary
from dashboard.report import ReportSection, register_report

dash.register_page(__name__, path="/", name="Overview", title="Overview", order=0)

#: The record columns this page reads: only these are copied for a selection, which at a
#: million records is most of a filter change's time (found by tracing every callback).
RECORD_COLUMNS = (
    "procedure_date", "procedure", "cement_volume_ml", "duration_min",
    "length_of_stay_days", "pain_baseline", "pain_month1", "cement_leakage",
    "leakage_symptomatic", "pulmonary_embolism", "embolism_symptomatic",
    "adjacent_fracture", "adjacent_fracture_days", "followup_days", "died", "death_days",
    "infection", "new_neurologic_deficit", "cost", "currency", "country",
)

def layout(**_query) -> html.Div:
    return html.Div([
        page_header("Overview", "Vertebroplasty and kyphoplasty side by side for the selected "
                    "records: rates with 95% confidence intervals and the number of patients "
                    "each rests on."),
        dcc.Loading(html.Div(id="overview-body"), delay_show=400, overlay_style={"visibility": "visible", "opacity": 0.5}),
    ])


class OverviewResults(NamedTuple):  # not a dataclass: Dash runs page modules outside sys.modules
    """What the Overview shows of a selection: the key figures and the quarterly trend."""

    key_figures: KeyFigures
    trend: pd.DataFrame


def compute(records: pd.DataFrame) -> OverviewResults:
    """The page's statistics (shared by the callback and the report)."""
    return OverviewResults(key_figures=key_figures(records), trend=_trend(records))


def kpi_section(kpis: pd.DataFrame) -> html.Div:
    """One card per measure, VP and KP side by side in it.

    The cards wrap in a flexible row whose cards grow to fill each line (``flex: 1 1 16rem``),
    so seven cards never leave an empty slot as a fixed four-column grid did; an interval in
    a detail line never breaks inside the numbers (:func:`nowrap_intervals`).
    """
    cards = []
    for index, measure in enumerate(dict.fromkeys(kpis.measure)):
        halves = []
        for procedure in PROCEDURES:
            row = kpis[(kpis.measure == measure) & (kpis.procedure == procedure)].iloc[0]
            halves.append(dbc.Col([
                html.Div(procedure_label(procedure).split(" (")[1].rstrip(")"),
                         className="small fw-semibold", style={"color": PROCEDURE_TEXT_COLOURS[procedure]}),
                html.Div(row.value, id=f"kpi-{index}-{procedure}",
                         className="fs-5 fw-semibold text-nowrap"),
                html.Div(nowrap_intervals(row.detail), className="small text-muted"),
            ], width=6))
        cards.append(html.Div(dbc.Card(dbc.CardBody([
            html.H2(measure, className="h6 mb-2"), dbc.Row(halves, className="g-1")]),
            className="h-100"), className="kpi-card", style={"flex": "1 1 16rem"}))
    return html.Div(cards, className="d-flex flex-wrap gap-2 mb-3", id="kpi-cards")


@register_report("/", "Overview")
def overview_report(selection: RecordFilter, _settings: dict | None = None) -> list[ReportSection]:
    records = filtered_records(selection, RECORD_COLUMNS)
    if records.empty:
        return [ReportSection("No records", "No records match the filters.")]
    results = compute(records)
    return [ReportSection("Key figures, VP and KP", KEY_FIGURES_NOTE,
                          table=key_figures_table(kpi_rows(results.key_figures))),
            ReportSection("Quarterly volume and rates", trend_summary(results.trend),
                          figure=trend_figure(results.trend))]


KEY_FIGURES_NOTE = (
    "Rates with 95% Wilson intervals; new fracture by 12 months is the cumulative incidence "
    "at 365 days (Aalen–Johansen, death as a competing risk, log(−log) interval), so that "
    "patients followed for less than a year count for as long as they were followed, with "
    "the number still at risk at 12 months; medians with distribution-free intervals.")


def _trend(records: pd.DataFrame) -> pd.DataFrame:
    # Only the columns the trend reads: assign() on the whole frame would copy every column.
    columns = ["procedure_date", "procedure", "cement_leakage", "pulmonary_embolism"]
    with_responder = records[columns].assign(responder=ResponderDefinition().is_responder(records))
    return trend_by_period(with_responder, ("responder", "cement_leakage", "pulmonary_embolism"))


@callback(Output("overview-body", "children"), Input("filter-state", "data"))
@safe_callback()
@cached_output
def update_overview(state):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return empty_state()
    return body(compute(records))


def body(results: OverviewResults) -> html.Div:
    kpis = kpi_rows(results.key_figures)
    return html.Div([
        kpi_section(kpis),
        chart_card("Quarterly volume and complication rates", trend_figure(results.trend),
                   trend_summary(results.trend), graph_id="overview-trend"),
        html.H2("Key figures", className="h6"),
        data_grid(key_figures_table(kpis), "overview-kpis", "overview-key-figures",
                  flex={"Measure": 1.4, "VP 95% CI and n": 1.6, "KP 95% CI and n": 1.6}),
        html.P(KEY_FIGURES_NOTE, className="small text-muted mt-1", id="overview-key-note"),
    ])
