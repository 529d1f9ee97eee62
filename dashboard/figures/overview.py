"""Figures and tables of the Overview page."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from analysis.key_figures import KEY_OUTCOMES, PROCEDURES, KeyFigures
from dashboard.figures.common import (
    PROCEDURE_COLOURS,
    axis_layout,
    build_figure,
    empty_figure,
    procedure_label,
    subplot_grid,
    top_margin_for_titles,
)
from dashboard.suppression import (
    format_count,
    is_small,
    is_small_or_complement,
    label,
    partition_texts,
    threshold,
)

TREND_OUTCOMES = {"responder": "Pain relief (≥30% at 1 month)", "cement_leakage": "Cement leakage",
                  "pulmonary_embolism": "Cement embolism"}


def trend_figure(trend: pd.DataFrame) -> go.Figure:
    """Quarterly volume (bars) and event rates with 95% CIs (lines), VP and KP.

    Suppressed periods (1–10 procedures or events) show no rate, and their hover says "<11".
    The figure is built from dicts in one call (:func:`build_figure`): adding its traces one
    by one cost more than the page's statistics at a million records.
    """
    if trend.empty:
        return empty_figure()
    outcomes = [o for o in TREND_OUTCOMES if o in set(trend.outcome)]
    layout, axes = subplot_grid(
        1 + len(outcomes), 1, shared_xaxes=True, vertical_spacing=0.06,
        subplot_titles=["Procedures per quarter"] + [TREND_OUTCOMES[o] for o in outcomes])
    annotations = layout.setdefault("annotations", [])  # the subplot titles first
    traces = []
    volume = trend.drop_duplicates(["period", "procedure"])
    for procedure, colour in PROCEDURE_COLOURS.items():
        rows = volume[volume.procedure == procedure]
        small = is_small(rows.procedures)
        traces.append({
            "type": "bar", "x": rows.period_start, "y": rows.procedures.where(~small, None),
            "name": procedure_label(procedure), "marker": {"color": colour},
            "legendgroup": procedure,
            "customdata": [label() if s else f"{int(v):,}"
                           for s, v in zip(small, rows.procedures, strict=True)],
            "hovertemplate": "%{x|%Y Q%q}: %{customdata} procedures<extra>" + procedure
                             + "</extra>",
            **axes[(1, 1)]})
        for index, outcome in enumerate(outcomes, start=2):
            part = trend[(trend.procedure == procedure) & (trend.outcome == outcome)]
            small_events, small_n = is_small(part.events), is_small(part.n)
            hidden = small_events | small_n
            traces.append({
                "type": "scatter", "x": part.period_start,
                "y": (100 * part.rate).where(~hidden, None), "mode": "lines+markers",
                "line": {"color": colour}, "name": procedure_label(procedure),
                "legendgroup": procedure, "showlegend": False,
                "error_y": {"type": "data", "symmetric": False,
                            "array": (100 * (part.high - part.rate)).where(~hidden, None),
                            "arrayminus": (100 * (part.rate - part.low)).where(~hidden, None),
                            "thickness": 1, "width": 2},
                "customdata": [[label() if h else f"{100 * r:.1f}%",
                                label() if se else f"{int(e):,}",
                                label() if sn else f"{int(n):,}"]
                               for h, r, e, n, se, sn in zip(hidden, part.rate.fillna(0),
                                                             part.events, part.n, small_events,
                                                             small_n, strict=True)],
                "hovertemplate": "%{x|%Y Q%q}: %{customdata[0]} (%{customdata[1]} of "
                                 "%{customdata[2]})<extra>" + procedure + "</extra>",
                **axes[(index, 1)]})
            axis_layout(layout, axes[(index, 1)]["yaxis"]).update(
                title={"text": "%"}, rangemode="tozero")
    for index, outcome in enumerate(outcomes, start=2):
        part = trend[trend.outcome == outcome]
        if len(part) and (is_small(part.events) | is_small(part.n)).all():
            annotations.append({
                "text": f"every quarter has fewer than {threshold() + 1} events: rates suppressed",
                "showarrow": False, "xref": axes[(index, 1)]["xaxis"] + " domain",
                "yref": axes[(index, 1)]["yaxis"] + " domain", "x": 0.5, "y": 0.5,
                "font": {"color": "#666"}})
    axis_layout(layout, axes[(1, 1)]["yaxis"])["title"] = {"text": "n"}
    return build_figure(traces, layout, 220 + 170 * len(outcomes),
                        {"margin": {"t": top_margin_for_titles(1)}}, barmode="group")


def trend_summary(trend: pd.DataFrame) -> str:
    """One sentence describing the trend figure (its text alternative)."""
    if trend.empty:
        return "No procedures in the selected period."
    volume = trend.drop_duplicates(["period", "procedure"])
    quarters = volume.period.nunique()
    totals = volume.groupby("procedure", observed=True).procedures.sum()
    # Suppressed once, where the counts become text: a small total shows "<11" and, with a
    # complement that the match count would reveal, the other total "≥11" (the KPI cards'
    # rule); totals of the selection are rounded like the match count.
    shown = partition_texts({str(p): int(n) for p, n in totals.items()}, rounded=True)
    parts = [f"{quarters} quarters from {volume.period.min()} to {volume.period.max()}"]
    parts += [f"{procedure_label(p)}: {text} procedures" for p, text in shown.items()]
    return "; ".join(parts) + (f". Rates with 95% Wilson intervals; periods with fewer than "
                               f"{threshold() + 1} procedures or events are not shown.")


#: Card titles of the key figures' rates (analysis.key_figures.KEY_OUTCOMES).
KPI_TITLES = {
    "responder": "Pain relief (≥30% at 1 month)",
    "cement_leakage": "Cement leakage",
    "pulmonary_embolism": "Cement embolism",
    "adjacent_fracture_12m": "New fracture by 12 months (cumulative incidence)",
}
#: Card outcomes estimated as a cumulative incidence at a horizon (analysis.horizon): their
#: detail also gives the number still at risk at the horizon.
HORIZON_CARDS = {"adjacent_fracture_12m": "12 months"}


def kpi_rows(figures: KeyFigures) -> pd.DataFrame:
    """The key figures as display text, suppressed: one row per (procedure, measure) with
    ``value`` and ``detail`` (interval and n), in the cards' order.

    Secondary suppression: the match count is shown, so when one procedure's count is hidden
    the other's exact count (and the n of its rates) goes too, or subtraction would reveal
    it; the counts are the selection's totals per procedure, rounded like the match count.
    """
    sizes = figures.sizes
    protect = bool(is_small(list(sizes.values())).any())
    shown_sizes = partition_texts(sizes, rounded=True)
    rows = []
    for procedure in PROCEDURES:
        hidden_n = protect and not is_small([sizes[procedure]])[0] and sizes[procedure] > 0
        rows.append({"procedure": procedure, "measure": "Procedures",
                     "value": shown_sizes[procedure],
                     "detail": "exact count hidden (the other group is small)" if hidden_n
                     else "records in the selection"})
        for outcome in KEY_OUTCOMES:
            rows.append({"procedure": procedure, "measure": KPI_TITLES[outcome],
                         **_rate_text(figures.row(procedure, outcome), outcome, hidden_n)})
        rows.append({"procedure": procedure, "measure": "Median duration",
                     **_median_text(figures.row(procedure, "median_duration_min"), hidden_n,
                                    lambda v: f"{v:.0f} min", lambda v: f"{v:.0f}",
                                    "no durations recorded")})
        rows.append({"procedure": procedure, "measure": "Median cost (USD)",
                     **_median_text(figures.row(procedure, "median_cost_usd"), hidden_n,
                                    lambda v: f"${v:,.0f}", lambda v: f"${v:,.0f}",
                                    "no costs recorded")})
    return pd.DataFrame(rows, columns=["procedure", "measure", "value", "detail"])


def _rate_text(row: pd.Series | None, outcome: str, hidden_n: bool) -> dict[str, str]:
    if row is None:
        return {"value": "–", "detail": "no data"}
    if is_small_or_complement([row.n], [row.events])[0]:
        return {"value": label(),
                "detail": "suppressed" if hidden_n else f"suppressed (n {format_count(row.n)})"}
    if pd.isna(row.estimate):
        return {"value": "–", "detail": "" if hidden_n else f"n {format_count(row.n)}"}
    detail = f"95% CI {100 * row.low:.1f}–{100 * row.high:.1f}%" + (
        "" if hidden_n else f", n {int(row.n):,}")
    if outcome in HORIZON_CARDS:
        detail += f"; {format_count(row.at_risk)} at risk at {HORIZON_CARDS[outcome]}"
    return {"value": f"{100 * row.estimate:.1f}%", "detail": detail}


def _median_text(row: pd.Series, hidden_n: bool, value_text, bound_text,
                 nothing: str) -> dict[str, str]:
    n = int(row.n)
    if is_small([n])[0]:
        return {"value": label(), "detail": "suppressed"}
    if math.isnan(row.estimate):
        return {"value": "–", "detail": nothing}
    return {"value": value_text(row.estimate),
            "detail": f"95% CI {bound_text(row.low)}–{bound_text(row.high)}"
                      + ("" if hidden_n else f", n {n:,}")}


def key_figures_table(kpis: pd.DataFrame) -> pd.DataFrame:
    """The key figures as a table in the cards' order (not alphabetical): each measure's VP
    and KP value with its 95% interval and n (the cards' detail line).

    ``kpis`` is :func:`kpi_rows`' frame (procedure, measure, value,
    detail).

    Examples
    --------
    >>> kpis = pd.DataFrame({"procedure": ["vertebroplasty", "kyphoplasty"] * 2,
    ...                      "measure": ["Procedures"] * 2 + ["Cement leakage"] * 2,
    ...                      "value": ["100", "90", "20.0%", "10.0%"],
    ...                      "detail": ["", "", "95% CI 13.3–28.9%, n 100", "95% CI 5.4–18.1%"]})
    >>> key_figures_table(kpis).Measure.tolist()
    ['Procedures', 'Cement leakage']
    """
    columns = ["Measure", "VP", "VP 95% CI and n", "KP", "KP 95% CI and n"]
    rows = []
    for measure in dict.fromkeys(kpis["measure"]):
        row = {"Measure": measure}
        for procedure, short in (("vertebroplasty", "VP"), ("kyphoplasty", "KP")):
            match = kpis[(kpis["measure"] == measure) & (kpis["procedure"] == procedure)]
            value = match["value"].iloc[0] if len(match) else "–"
            detail = match["detail"].iloc[0] if len(match) else ""
            row[short] = value
            row[f"{short} 95% CI and n"] = str(detail).removeprefix("95% CI ")
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
