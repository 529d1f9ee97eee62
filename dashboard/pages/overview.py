"""Overview: VP and KP side by side (KPIs with 95% CIs and n), and the quarterly trend."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.descriptive import median_ci, trend_by_period
from analysis.filters import RecordFilter
from analysis.outcomes import ResponderDefinition, outcome_summary
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
from dashboard.figures.overview import key_figures_table, trend_figure, trend_summary
from dashboard.report import ReportSection, register_report
from dashboard.suppression import (
    format_count,
    is_small,
    is_small_or_complement,
    label,
    partition_texts,
)

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

KPI_OUTCOMES = {  # outcome_summary outcome -> card title
    "responder": "Pain relief (≥30% at 1 month)",
    "cement_leakage": "Cement leakage",
    "pulmonary_embolism": "Cement embolism",
    "adjacent_fracture_12m": "New fracture by 12 months (cumulative incidence)",
}
#: Card outcomes estimated as a cumulative incidence at a horizon (analysis.horizon): their
#: detail also gives the number still at risk at the horizon.
HORIZON_CARDS = {"adjacent_fracture_12m": "12 months"}


def layout(**_query) -> html.Div:
    return html.Div([
        page_header("Overview", "Vertebroplasty and kyphoplasty side by side for the selected "
                    "records: rates with 95% confidence intervals and the number of patients "
                    "each rests on."),
        dcc.Loading(html.Div(id="overview-body"), delay_show=400, overlay_style={"visibility": "visible", "opacity": 0.5}),
    ])


def kpi_rows(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (procedure, measure): value text, detail text, suppressed flag."""
    summary = outcome_summary(records, by=("procedure",), responder=ResponderDefinition(),
                              outcomes=tuple(KPI_OUTCOMES))
    # Per-procedure row masks and the two numeric columns as arrays, once: slicing whole
    # frames per procedure costs more than every statistic on this page at a million rows.
    procedure = records["procedure"]
    if isinstance(procedure.dtype, pd.CategoricalDtype):  # integer codes: no string compares
        codes, categories = procedure.cat.codes.to_numpy(), list(procedure.cat.categories)
        masks = {p: (codes == categories.index(p)) if p in categories
                 else np.zeros(len(records), dtype=bool) for p in PROCEDURES}
    else:
        procedure_values = procedure.astype(object).to_numpy()
        masks = {p: procedure_values == p for p in PROCEDURES}
    sizes = {p: int(masks[p].sum()) for p in PROCEDURES}
    durations = records["duration_min"].to_numpy(dtype=float, na_value=np.nan)
    costs_usd = _costs_usd(records)
    # Secondary suppression: the match count is shown, so when one procedure's count is hidden
    # the other's exact count (and the n of its rates) must go too, or subtraction reveals it.
    # The counts are the selection's totals per procedure: rounded like the match count.
    protect = bool(is_small(list(sizes.values())).any())
    shown_sizes = partition_texts(sizes, rounded=True)
    rows = []
    for procedure in PROCEDURES:
        hidden_n = protect and not is_small([sizes[procedure]])[0] and sizes[procedure] > 0
        rows.append({"procedure": procedure, "measure": "Procedures",
                     "value": shown_sizes[procedure],
                     "detail": "exact count hidden (the other group is small)" if hidden_n
                     else "records in the selection"})
        for outcome, title in KPI_OUTCOMES.items():
            match = summary[(summary["procedure"].astype(str) == procedure) & (summary["outcome"] == outcome)]
            if match.empty:
                rows.append({"procedure": procedure, "measure": title, "value": "–", "detail": "no data"})
                continue
            row = match.iloc[0]
            if is_small_or_complement([row.n], [row.events])[0]:
                value = label()
                detail = "suppressed" if hidden_n else f"suppressed (n {format_count(row.n)})"
            elif pd.isna(row.estimate):
                value, detail = "–", "" if hidden_n else f"n {format_count(row.n)}"
            else:
                value = f"{100 * row.estimate:.1f}%"
                detail = f"95% CI {100 * row.low:.1f}–{100 * row.high:.1f}%" + (
                    "" if hidden_n else f", n {int(row.n):,}")
                if outcome in HORIZON_CARDS:
                    detail += (f"; {format_count(row.at_risk)} at risk at "
                               f"{HORIZON_CARDS[outcome]}")
            rows.append({"procedure": procedure, "measure": title, "value": value, "detail": detail})
        for values, title, unit in ((durations, "Median duration", "min"),):
            values = values[masks[procedure]]
            values = values[~np.isnan(values)]
            median, low, high = median_ci(values)
            if is_small([len(values)])[0]:
                value, detail = label(), "suppressed"
            elif np.isnan(median):
                value, detail = "–", "no durations recorded"
            else:
                value = f"{median:.0f} {unit}"
                detail = f"95% CI {low:.0f}–{high:.0f}" + ("" if hidden_n else f", n {len(values):,}")
            rows.append({"procedure": procedure, "measure": title, "value": value, "detail": detail})
        rows.append(_median_cost_row(None if costs_usd is None else costs_usd[masks[procedure]],
                                     procedure, show_n=not hidden_n))
    return pd.DataFrame(rows)


def _costs_usd(records: pd.DataFrame) -> np.ndarray | None:
    """Every record's cost in USD (NaN when missing or not convertible); None without the
    costs module."""
    try:
        from analysis.costs import CostOptions, converted_costs
    except ImportError:  # the costs module is optional for this card
        return None
    return converted_costs(records, CostOptions(reporting_currency="USD"))


def _median_cost_row(costs: np.ndarray | None, procedure: str, show_n: bool = True) -> dict:
    title = "Median cost (USD)"
    if costs is None:
        return {"procedure": procedure, "measure": title, "value": "–", "detail": "not available"}
    costs = costs[~np.isnan(costs)]
    median, low, high = median_ci(costs)
    if is_small([len(costs)])[0]:
        return {"procedure": procedure, "measure": title, "value": label(), "detail": "suppressed"}
    if np.isnan(median):
        return {"procedure": procedure, "measure": title, "value": "–", "detail": "no costs recorded"}
    return {"procedure": procedure, "measure": title, "value": f"${median:,.0f}",
            "detail": f"95% CI ${low:,.0f}–${high:,.0f}" + (f", n {len(costs):,}" if show_n else "")}


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
    kpis = kpi_rows(records)
    trend = _trend(records)
    return [ReportSection("Key figures, VP and KP", KEY_FIGURES_NOTE,
                          table=key_figures_table(kpis)),
            ReportSection("Quarterly volume and rates", trend_summary(trend), figure=trend_figure(trend))]


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
    kpis = kpi_rows(records)
    trend = _trend(records)
    return html.Div([
        kpi_section(kpis),
        chart_card("Quarterly volume and complication rates", trend_figure(trend), trend_summary(trend),
                   graph_id="overview-trend"),
        html.H2("Key figures", className="h6"),
        data_grid(key_figures_table(kpis), "overview-kpis", "overview-key-figures",
                  flex={"Measure": 1.4, "VP 95% CI and n": 1.6, "KP 95% CI and n": 1.6}),
        html.P(KEY_FIGURES_NOTE, className="small text-muted mt-1", id="overview-key-note"),
    ])
