"""Durations and resources: procedure duration (by procedure, levels treated and anaesthesia),
cement volume, length of stay, care setting, and the KP − VP duration difference."""

from __future__ import annotations

from typing import NamedTuple

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.filters import RecordFilter
from analysis.means import MeanComparison, compare_means
from analysis.outcomes import RESOURCE_VARIABLES, resource_summary, setting_mix
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
from dashboard.figures.common import PROCEDURE_COLOURS
from dashboard.figures.durations import (
    SUMMARY_LABELS,
    WHISKER,
    WIDE_COLUMNS,
    box_statistics,
    difference_rows,
    grouped_box_figure,
    grouped_summary_text,
    procedure_durations,
    resource_box_figure,
    resource_frame,
    resource_summary_text,
    setting_figure,
    setting_summary_text,
    setting_table,
    summary_table,
)
from dashboard.report import ReportSection, register_report
from dashboard.suppression import format_count, is_small, label

dash.register_page(__name__, path="/durations", name="Durations",
                   title="Durations and resources", order=3)

#: The record columns this page reads: only these are copied for a selection, which at a
#: million records is most of a filter change's time (found by tracing every callback).
RECORD_COLUMNS = (
    "procedure", "levels_treated", "anesthesia", "cement_volume_ml", "duration_min",
    "setting", "length_of_stay_days",
)

#: compare_means takes about 1 s on 1,000,000 records (the Hodges–Lehmann interval needs
#: order statistics of ~10¹¹ pairwise differences); above this many durations per procedure it
#: runs on a simple random subsample of this size (about 0.03 s), seeded so it is reproducible.
SUBSAMPLE_MAX = 20_000
SUBSAMPLE_SEED = 20240601


class DurationResults(NamedTuple):  # not a dataclass: Dash runs page modules outside sys.modules
    by_procedure: dict[str, pd.DataFrame]
    by_levels: pd.DataFrame
    by_anesthesia: pd.DataFrame
    mix: pd.DataFrame
    comparison: MeanComparison | None
    comparison_note: str


def duration_difference(frame: pd.DataFrame) -> tuple[MeanComparison | None, str]:
    """KP − VP duration: :func:`compare_means` (Welch and Hodges–Lehmann), or why it is not shown.

    Groups with more than :data:`SUBSAMPLE_MAX` durations are replaced by a simple random
    subsample of that size (without replacement, seed :data:`SUBSAMPLE_SEED`).
    """
    values = procedure_durations(frame, ("kyphoplasty", "vertebroplasty"))
    sizes = {p: v.size for p, v in values.items()}
    if min(sizes.values()) == 0:
        return None, "Not estimable: both procedures need recorded durations."
    if is_small(list(sizes.values())).any():
        return None, (f"Not shown: a procedure has fewer than 11 recorded durations "
                      f"({label()}).")
    if min(sizes.values()) < 2:
        return None, "Not estimable: at least 2 durations per procedure are needed."
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    sampled = [p for p, n in sizes.items() if n > SUBSAMPLE_MAX]
    for procedure in ("kyphoplasty", "vertebroplasty"):  # fixed order: reproducible draws
        if procedure in sampled:
            values[procedure] = rng.choice(values[procedure], SUBSAMPLE_MAX, replace=False)
    comparison = compare_means(values["kyphoplasty"], values["vertebroplasty"])
    note = (f"KP n {sizes['kyphoplasty']:,}, VP n {sizes['vertebroplasty']:,} durations.")
    if sampled:
        note = (f"Computed on a simple random subsample of {SUBSAMPLE_MAX:,} durations per "
                f"procedure (seed {SUBSAMPLE_SEED}) out of KP {sizes['kyphoplasty']:,} and VP "
                f"{sizes['vertebroplasty']:,}, to keep the page fast; the summary table uses "
                "every record.")
    return comparison, note


def compute(records: pd.DataFrame) -> DurationResults:
    frame = resource_frame(records)
    comparison, note = duration_difference(frame)
    overall = resource_summary(frame, by=("procedure",), variables=tuple(RESOURCE_VARIABLES),
                               fences=WHISKER)
    return DurationResults(
        by_procedure={v: box_statistics(frame, ("procedure",), v, overall)
                      for v in RESOURCE_VARIABLES},
        by_levels=box_statistics(frame, ("procedure", "levels_group"), "duration_min"),
        by_anesthesia=box_statistics(frame, ("procedure", "anesthesia"), "duration_min"),
        mix=setting_mix(records),
        comparison=comparison, comparison_note=note,
    )


def all_summary(results: DurationResults) -> pd.DataFrame:
    parts = [(v, "", s) for v, s in results.by_procedure.items()]
    parts += [("duration_min", "levels_group", results.by_levels),
              ("duration_min", "anesthesia", results.by_anesthesia)]
    return summary_table(parts)




def _cards(results: DurationResults) -> dbc.Row:
    c = results.comparison
    if c is None:
        md = hl = ("–", results.comparison_note)
    else:
        md = (f"{c.mean_difference:+.1f} min",
              f"95% CI {c.md_low:+.1f} to {c.md_high:+.1f} (Welch)"
              if np.isfinite(c.md_low) else "CI not estimable")
        hl = (f"{c.hodges_lehmann:+.1f} min", f"95% CI {c.hl_low:+.1f} to {c.hl_high:+.1f}")
    cards = [
        stat_card("Mean duration difference, KP − VP", md[0], md[1], "durations-md"),
        stat_card("Hodges–Lehmann shift, KP − VP", hl[0], hl[1], "durations-hl"),
    ]
    for procedure, short in (("vertebroplasty", "VP"), ("kyphoplasty", "KP")):
        part = results.mix[results.mix["procedure"].astype(str) == procedure]
        if part.empty or int(part.iloc[0].n) == 0:
            value, detail = "–", "no setting recorded"
        else:
            row = part.iloc[0]
            if is_small([row.n, row.outpatient, row.inpatient]).any():
                value, detail = label(), f"suppressed (n {format_count(row.n)})"
            else:
                value = f"{100 * row.share_outpatient:.1f}%"
                detail = f"95% CI {100 * row.low:.1f}–{100 * row.high:.1f}%, n {int(row.n):,}"
        cards.append(stat_card(f"Outpatient share, {short}", value, detail,
                               f"durations-outpatient-{short.lower()}", PROCEDURE_COLOURS[procedure]))
    return dbc.Row([dbc.Col(card, xs=12, sm=6, xl=3, className="mb-2") for card in cards],
                   className="g-2 mb-1")


def body(results: DurationResults) -> html.Div:
    summary = all_summary(results)
    return html.Div([
        _cards(results),
        html.P(["KP − VP difference in procedure duration: Welch mean difference and "
                "Hodges–Lehmann shift (median of all pairwise differences). ",
                results.comparison_note], id="durations-difference-note",
               className="small text-muted"),
        chart_card("Duration, cement volume and length of stay by procedure",
                   resource_box_figure(results.by_procedure),
                   resource_summary_text(results.by_procedure), graph_id="durations-resources"),
        dbc.Row([
            dbc.Col(chart_card("Procedure duration by levels treated",
                               grouped_box_figure(results.by_levels, "levels_group"),
                               grouped_summary_text(results.by_levels, "levels_group"),
                               graph_id="durations-levels"), xs=12, xl=6),
            dbc.Col(chart_card("Procedure duration by anaesthesia",
                               grouped_box_figure(results.by_anesthesia, "anesthesia"),
                               grouped_summary_text(results.by_anesthesia, "anesthesia"),
                               graph_id="durations-anesthesia"), xs=12, xl=6),
        ], className="g-2"),
        chart_card("Care setting: outpatient share", setting_figure(results.mix),
                   setting_summary_text(results.mix), graph_id="durations-setting",
                   table=data_grid(setting_table(results.mix), "durations-setting-table",
                                   "durations-setting")),
        html.H2("Summary table", className="h6"),
        html.P("n = records with a value; mean (SD); median [interquartile range]. Groups with "
               f"fewer than 11 values show {label()} and no statistics.",
               className="small text-muted mb-1"),
        data_grid(summary, "durations-summary", "durations-summary", column_labels=SUMMARY_LABELS,
                  min_widths=WIDE_COLUMNS),
    ])


def layout(**_query) -> html.Div:
    return html.Div([
        page_header("Durations and resources",
                    "How long procedures take, how much cement is used, how long patients stay "
                    "and where they are treated, for vertebroplasty (VP) and kyphoplasty (KP)."),
        dcc.Loading(html.Div(id="durations-body"), delay_show=400,
                    overlay_style={"visibility": "visible", "opacity": 0.5}),
    ])


@callback(Output("durations-body", "children"), Input("filter-state", "data"))
@safe_callback()
@cached_output
def update_durations(state):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return empty_state()
    return body(compute(records))


@register_report("/durations", "Durations and resources")
def durations_report(selection: RecordFilter, _settings: dict | None = None) -> list[ReportSection]:
    records = filtered_records(selection, RECORD_COLUMNS)
    if records.empty:
        return [ReportSection("No records", "No records match the filters.")]
    results = compute(records)
    return [
        ReportSection("KP − VP difference in procedure duration",
                      "Welch mean difference and Hodges–Lehmann shift with 95% CIs. "
                      + results.comparison_note,
                      table=difference_rows(results.comparison)),
        ReportSection("Duration, cement volume and length of stay by procedure",
                      resource_summary_text(results.by_procedure),
                      figure=resource_box_figure(results.by_procedure)),
        ReportSection("Procedure duration by levels treated",
                      grouped_summary_text(results.by_levels, "levels_group"),
                      figure=grouped_box_figure(results.by_levels, "levels_group")),
        ReportSection("Procedure duration by anaesthesia",
                      grouped_summary_text(results.by_anesthesia, "anesthesia"),
                      figure=grouped_box_figure(results.by_anesthesia, "anesthesia")),
        ReportSection("Care setting", setting_summary_text(results.mix),
                      figure=setting_figure(results.mix), table=setting_table(results.mix)),
        ReportSection("Summary table", "n, mean (SD), median [IQR] per group.",
                      table=all_summary(results).rename(columns=SUMMARY_LABELS)),
    ]
