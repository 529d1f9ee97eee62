"""Complications: VP and KP rates with KP − VP comparisons, a forest plot, the trend of leakage
and embolism, the cumulative incidence of a new fracture, and published benchmarks."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.benchmarks import literature_benchmarks
from analysis.comparison import fracture_survival
from analysis.descriptive import trend_by_period
from analysis.filters import RecordFilter
from analysis.horizon import HORIZON_OUTCOMES, compare_cumulative_incidence
from analysis.outcomes import COMPLICATION_OUTCOMES, complication_rates
from analysis.proportions import compare_proportions
from dashboard.components import chart_card, data_grid, empty_state, page_header, safe_callback
from dashboard.compute_cache import cached_output
from dashboard.data_access import filtered_records
from dashboard.figures.complications import (
    BENCHMARK_CAVEAT,
    COMPARISON_COLUMNS,
    TREND_OUTCOMES,
    FractureCurves,
    at_risk_table,
    benchmark_figure,
    benchmark_summary,
    benchmark_table,
    forest_figure,
    forest_summary,
    incidence_figure,
    incidence_summary,
    rates_table,
    trend_figure,
    trend_summary,
    trend_table,
)
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query
from dashboard.suppression import label, threshold

dash.register_page(__name__, path="/complications", name="Complications", title="Complications",
                   order=2)

#: The record columns this page reads: only these are copied for a selection, which at a
#: million records is most of a filter change's time (found by tracing every callback).
RECORD_COLUMNS = (
    "procedure_date", "procedure", "cement_leakage", "leakage_symptomatic",
    "pulmonary_embolism", "embolism_symptomatic", "adjacent_fracture",
    "adjacent_fracture_days", "followup_days", "died", "death_days", "infection",
    "new_neurologic_deficit",
)

LOADING = {"delay_show": 400, "overlay_style": {"visibility": "visible", "opacity": 0.5}}
MEASURES = [{"label": "Risk ratio (KP/VP)", "value": "rr"},
            {"label": "Risk difference (KP − VP)", "value": "rd"}]
PERIODS = [{"label": "Yearly", "value": "Y"}, {"label": "Quarterly", "value": "Q"}]
#: The page's controls kept in the URL (``?measure=rd&period=Q``).
SETTINGS = register_settings(
    "/complications",
    PageSetting("complications-measure", "measure", "rr", tuple(o["value"] for o in MEASURES),
                label="Forest plot shows", names={o["value"]: o["label"] for o in MEASURES}),
    PageSetting("complications-period", "period", "Y", tuple(o["value"] for o in PERIODS),
                label="Trend period", names={o["value"]: o["label"] for o in PERIODS}),
)


def _control(control_id: str, text: str, options: list[dict], value: str) -> html.Div:
    """A labelled radio group above its chart (hidden with the charts when nothing matches)."""
    return html.Div(html.Div([  # the outer Div hides it: Bootstrap's d-flex is !important
        dbc.Label(text, html_for=control_id, className="small fw-semibold me-2 mb-0"),
        # dbc's radios are plain labelled inputs (dcc's wrap each in a listbox option, which
        # axe reports as nested interactive controls without a name).
        dbc.RadioItems(id=control_id, options=options, value=value, inline=True,
                       labelClassName="small"),
    ], className="d-flex align-items-center flex-wrap mb-1"), id=f"{control_id}-row")


def layout(**query) -> html.Div:
    chosen = settings_from_query("/complications", query)
    return html.Div([
        page_header("Complications", "Complication rates of vertebroplasty (VP) and kyphoplasty "
                    "(KP) in the selected records, kyphoplasty compared with vertebroplasty, the "
                    "trend over time, the risk of a new fracture, and published figures."),
        dcc.Loading(html.Div(id="complications-rates"), **LOADING),
        _control("complications-measure", "Forest plot shows", MEASURES, chosen["measure"]),
        dcc.Loading(html.Div(id="complications-forest"), **LOADING),
        _control("complications-period", "Trend period", PERIODS, chosen["period"]),
        dcc.Loading(html.Div(id="complications-trend"), **LOADING),
        dcc.Loading(html.Div(id="complications-fracture"), **LOADING),
        dcc.Loading(html.Div(id="complications-benchmarks"), **LOADING),
    ])


# --------------------------------------------------------------------------------------------
# Numbers (from analysis only)
# --------------------------------------------------------------------------------------------


def comparison_frame(records: pd.DataFrame) -> pd.DataFrame:
    """One row per complication: VP and KP events, n and rate (95% CI) from
    ``complication_rates``, and KP vs VP from ``compare_proportions``; for the outcomes "by
    day N" (new fracture by 12 months, death by 30 days) the rate is the cumulative
    incidence at the horizon with the number at risk there, and KP vs VP comes from
    ``compare_cumulative_incidence`` (difference with SE sqrt(var_KP + var_VP), ratio on the
    log scale, Wald z test)."""
    rates = complication_rates(records, by=("procedure",))
    rates = rates.assign(procedure=rates["procedure"].astype(str)).set_index(
        ["procedure", "outcome"])
    rows = []
    for outcome, title in COMPLICATION_OUTCOMES.items():
        row: dict = {"outcome": outcome, "label": title}
        for procedure, prefix in (("vertebroplasty", "vp"), ("kyphoplasty", "kp")):
            found = (procedure, outcome) in rates.index
            rate = rates.loc[(procedure, outcome)] if found else None
            row[f"{prefix}_events"] = int(rate["events"]) if found else 0
            row[f"{prefix}_n"] = int(rate["n"]) if found else 0
            for key in ("rate", "low", "high", "se", "at_risk"):
                row[f"{prefix}_{key}"] = float(rate[key]) if found else np.nan
            if found:
                row["estimand"] = rate["estimand"]
        row.setdefault("estimand", "")
        row.update({key: np.nan for key in ("rd", "rd_low", "rd_high", "rr", "rr_low",
                                            "rr_high", "p_value")})
        row.update(test="", zero_cell_correction=False)
        if outcome in HORIZON_OUTCOMES:
            if row["vp_n"] > 0 and row["kp_n"] > 0:
                result = compare_cumulative_incidence(row["kp_rate"], row["kp_se"],
                                                      row["vp_rate"], row["vp_se"])
                row.update(rd=result.difference, rd_low=result.diff_low,
                           rd_high=result.diff_high, rr=result.ratio, rr_low=result.ratio_low,
                           rr_high=result.ratio_high, p_value=result.p_value, test="wald_z")
        elif row["vp_n"] > 0 and row["kp_n"] > 0:
            result = compare_proportions(row["kp_events"], row["kp_n"], row["vp_events"],
                                         row["vp_n"])
            row.update(rd=result.risk_difference, rd_low=result.rd_low, rd_high=result.rd_high,
                       rr=result.risk_ratio, rr_low=result.rr_low, rr_high=result.rr_high,
                       p_value=result.p_value, test=result.test,
                       zero_cell_correction=result.zero_cell_correction)
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(COMPARISON_COLUMNS))


def trend_frame(records: pd.DataFrame, freq: str) -> pd.DataFrame:
    return trend_by_period(records, tuple(TREND_OUTCOMES), freq=freq if freq in ("Y", "Q") else "Y")


def fracture_curves(records: pd.DataFrame) -> FractureCurves:
    """Kaplan–Meier and Aalen–Johansen curves of a new fracture per procedure, from
    ``analysis.comparison.fracture_survival`` without its log-rank test and adjusted Cox model
    (``models=False``: those take about 10 s on a million records and are not shown here).
    The cumulative incidence carries the number at risk under each time, for suppression."""
    result = fracture_survival(records, models=False)
    km_columns = ["procedure", "time", "at_risk", "events", "survival", "low", "high"]
    cif_columns = ["procedure", "time", "cumulative_incidence", "low", "high", "at_risk"]
    competing = bool(result.competing_risk)
    cif = result.cumulative_incidence
    return FractureCurves(
        km=result.km[km_columns] if len(result.km) else pd.DataFrame(columns=km_columns),
        cif=cif[cif_columns].reset_index(drop=True) if competing and len(cif)
        else pd.DataFrame(columns=cif_columns),
        at_risk=result.at_risk_table,
        competing=competing,
        counts={"vertebroplasty": (result.n_vp, result.events_vp),
                "kyphoplasty": (result.n_kp, result.events_kp)})


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

def rates_note() -> str:
    return (
        "Rates per patient with 95% Wilson intervals (Clopper–Pearson at 0 or 100%). KP − VP "
        "risk difference with Newcombe's interval, risk ratio KP/VP with Katz's log interval; p "
        "from Pearson's χ² when every expected count is at least 5, otherwise Fisher's exact "
        "test. † zero-cell correction: a cell of the 2×2 table is 0, so 0.5 was added to every "
        "cell for the risk ratio (the risk difference is never corrected). New fracture by 12 "
        "months and death by 30 days are cumulative incidences at the horizon, so that every "
        "patient counts for as long as followed: Aalen–Johansen with death as a competing "
        "risk for the fracture (a death after the last contact is censored there), 1 − "
        "Kaplan–Meier for death, log(−log) intervals; events are those observed by the "
        "horizon, at risk the patients still followed without the event at the horizon; "
        "their KP − VP difference has the SE √(var KP + var VP) and the ratio a log-scale "
        "interval (delta method), p from the Wald z test. "
        f"Counts from 1 to {threshold()} are shown as {label()} and the rates and comparisons "
        "resting on them are hidden."
    )


RATE_FLEX = {"Outcome": 1.9, "VP rate (95% CI)": 1.4, "KP rate (95% CI)": 1.4,
             "VP at risk at horizon": 0.9, "KP at risk at horizon": 0.9,
             "KP − VP, percentage points (95% CI)": 1.5, "Risk ratio KP/VP (95% CI)": 1.4,
             "p (test)": 1.1}


def rates_section(comparison: pd.DataFrame) -> dbc.Card:
    table = rates_table(comparison)
    return dbc.Card([
        dbc.CardHeader(html.H2("Complication rates, VP and KP side by side", className="h6 mb-0")),
        dbc.CardBody([
            data_grid(table, "complications-rates", "complication-rates", flex=RATE_FLEX),
            html.P(rates_note(), className="small text-muted mb-0"),
        ]),
    ], className="mb-3")


def forest_section(comparison: pd.DataFrame, measure: str) -> dbc.Card:
    title = ("Risk ratios, KP compared with VP" if measure == "rr"
             else "Risk differences, KP − VP")
    return chart_card(title, forest_figure(comparison, measure),
                      forest_summary(comparison, measure), graph_id="complications-forest-graph")


def trend_section(trend: pd.DataFrame, freq: str) -> dbc.Card:
    table = data_grid(trend_table(trend), "complications-trend", "complication-trend")
    return chart_card("Cement leakage and embolism over time", trend_figure(trend, freq),
                      trend_summary(trend, freq), graph_id="complications-trend-graph",
                      table=table)


def fracture_section(curves: FractureCurves) -> dbc.Card:
    risk = html.Div([html.H3("Number at risk (followed and without a new fracture)",
                             className="h6"),
                     data_grid(at_risk_table(curves.at_risk), "complications-at-risk",
                               "fracture-number-at-risk", flex={"Count": 1.8})], className="mt-2")
    return chart_card("Cumulative incidence of a new vertebral fracture",
                      incidence_figure(curves), incidence_summary(curves),
                      graph_id="complications-fracture-graph", extra=[risk])


def benchmark_section(comparison: pd.DataFrame) -> dbc.Card:
    benchmarks = literature_benchmarks()
    table = data_grid(benchmark_table(benchmarks), "complications-benchmarks",
                      "complication-benchmarks",
                      flex={"Population": 1.6, "Definition and caveats": 1.8, "Citation": 2.2,
                            "Link": 1.4})
    caveat = dbc.Alert(BENCHMARK_CAVEAT, color="light", id="complications-benchmark-caveat",
                       className="small py-2 mb-2")
    return chart_card("This selection beside published figures",
                      benchmark_figure(comparison, benchmarks),
                      benchmark_summary(comparison, benchmarks),
                      graph_id="complications-benchmark-graph", table=table, before=[caveat])


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------


HIDDEN = {"display": "none"}


@callback(Output("complications-rates", "children"),
          Output("complications-benchmarks", "children"),
          Output("complications-measure-row", "style"), Output("complications-period-row", "style"),
          Input("filter-state", "data"))
@safe_callback(4)
@cached_output
def update_rates(state):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return empty_state(), None, HIDDEN, HIDDEN
    comparison = shared_comparison(RecordFilter.from_dict(state), records)
    return rates_section(comparison), benchmark_section(comparison), None, None


_COMPARISON: dict[tuple, tuple[object, pd.DataFrame]] = {}


def shared_comparison(selection: RecordFilter,
                      records: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`comparison_frame` of a selection, computed once for the rates and the forest
    callbacks of one filter change (the last selection per process).

    `records` is ``filtered_records(selection, RECORD_COLUMNS)`` when the caller has it
    (each call asks the store for its data version). The key is the selection and the
    selected ``procedure`` column itself: :func:`dashboard.data_access.filtered_records` hands
    the same read-only column to every callback of one selection of one records frame, and a
    new import or another user scope gives another one, so they never share a result.
    """
    if records is None:
        records = filtered_records(selection, RECORD_COLUMNS)
    anchor = records["procedure"].array
    key = (id(anchor), selection)
    hit = _COMPARISON.get(key)
    if hit is not None and hit[0] is anchor:
        return hit[1]
    comparison = comparison_frame(records)
    _COMPARISON.clear()
    _COMPARISON[key] = (anchor, comparison)  # holding the column keeps its id unique
    return comparison


@callback(Output("complications-forest", "children"), Input("filter-state", "data"),
          Input("complications-measure", "value"))
@safe_callback()
@cached_output
def update_forest(state, measure):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return None
    return forest_section(shared_comparison(RecordFilter.from_dict(state), records),
                          measure or "rr")


@callback(Output("complications-trend", "children"), Input("filter-state", "data"),
          Input("complications-period", "value"))
@safe_callback()
@cached_output
def update_trend(state, freq):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return None
    freq = freq or "Y"
    return trend_section(trend_frame(records, freq), freq)


@callback(Output("complications-fracture", "children"), Input("filter-state", "data"))
@safe_callback()
@cached_output
def update_fracture(state):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return None
    return fracture_section(fracture_curves(records))


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@register_report("/complications", "Complications")
def complications_report(selection: RecordFilter,
                         settings: dict | None = None) -> list[ReportSection]:
    """The page's report with its settings (forest-plot measure, trend period)."""
    settings = settings or settings_from_query("/complications", None)
    measure, freq = settings["measure"], settings["period"]
    records = filtered_records(selection, RECORD_COLUMNS)
    if records.empty:
        return [ReportSection("No records", "No records match the filters.")]
    comparison = comparison_frame(records)
    trend = trend_frame(records, freq)
    curves = fracture_curves(records)
    benchmarks = literature_benchmarks()
    return [
        ReportSection("Complication rates, VP and KP side by side", rates_note(),
                      table=rates_table(comparison)),
        ReportSection(("Risk ratios" if measure == "rr" else "Risk differences")
                      + ", KP compared with VP", forest_summary(comparison, measure),
                      figure=forest_figure(comparison, measure)),
        ReportSection("Cement leakage and embolism per "
                      + ("year" if freq == "Y" else "quarter"), trend_summary(trend, freq),
                      figure=trend_figure(trend, freq), table=trend_table(trend)),
        ReportSection("Cumulative incidence of a new vertebral fracture",
                      incidence_summary(curves), figure=incidence_figure(curves),
                      table=at_risk_table(curves.at_risk)),
        ReportSection("This selection beside published figures",
                      benchmark_summary(comparison, benchmarks) + " " + BENCHMARK_CAVEAT,
                      figure=benchmark_figure(comparison, benchmarks),
                      table=benchmark_table(benchmarks)),
    ]
