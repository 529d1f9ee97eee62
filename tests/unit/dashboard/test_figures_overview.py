"""The Overview trend figure, built from dicts in one call (issue 6), equals the figure the
step-by-step plotly calls build (the reference below is that straightforward construction)."""

from __future__ import annotations

import json
import math

import pytest
from plotly.subplots import make_subplots

from analysis.descriptive import trend_by_period
from analysis.outcomes import ResponderDefinition
from dashboard.figures.common import (
    PROCEDURE_COLOURS,
    base_layout,
    procedure_label,
    top_margin_for_titles,
)
from dashboard.figures.overview import TREND_OUTCOMES, trend_figure
from dashboard.suppression import is_small, label
from data.demo import demo_records


def _trend(records):
    """The Overview's trend table (as dashboard.pages.overview builds it)."""
    columns = ["procedure_date", "procedure", "cement_leakage", "pulmonary_embolism"]
    frame = records[columns].assign(responder=ResponderDefinition().is_responder(records))
    return trend_by_period(frame, ("responder", "cement_leakage", "pulmonary_embolism"))


def incremental_trend_figure(trend):
    """The figure as make_subplots, add_bar/add_scatter, update_yaxes, add_annotation and
    base_layout build it, one call at a time."""
    outcomes = [o for o in TREND_OUTCOMES if o in set(trend.outcome)]
    figure = make_subplots(rows=1 + len(outcomes), cols=1, shared_xaxes=True,
                           vertical_spacing=0.06, subplot_titles=["Procedures per quarter"]
                           + [TREND_OUTCOMES[o] for o in outcomes])
    volume = trend.drop_duplicates(["period", "procedure"])
    for procedure, colour in PROCEDURE_COLOURS.items():
        rows = volume[volume.procedure == procedure]
        small = is_small(rows.procedures)
        figure.add_bar(x=rows.period_start, y=rows.procedures.where(~small, None),
                       name=procedure_label(procedure), marker_color=colour,
                       legendgroup=procedure,
                       customdata=[label() if s else f"{int(v):,}"
                                   for s, v in zip(small, rows.procedures, strict=True)],
                       hovertemplate="%{x|%Y Q%q}: %{customdata} procedures<extra>"
                                     + procedure + "</extra>", row=1, col=1)
        for index, outcome in enumerate(outcomes, start=2):
            part = trend[(trend.procedure == procedure) & (trend.outcome == outcome)]
            hidden = is_small(part.events) | is_small(part.n)
            figure.add_scatter(
                x=part.period_start, y=(100 * part.rate).where(~hidden, None),
                mode="lines+markers", line={"color": colour}, name=procedure_label(procedure),
                legendgroup=procedure, showlegend=False,
                error_y={"type": "data", "symmetric": False,
                         "array": (100 * (part.high - part.rate)).where(~hidden, None),
                         "arrayminus": (100 * (part.rate - part.low)).where(~hidden, None),
                         "thickness": 1, "width": 2},
                customdata=[[label() if h else f"{100 * r:.1f}%",
                             label() if is_small([e])[0] else f"{int(e):,}",
                             f"{int(n):,}" if not is_small([n])[0] else label()]
                            for h, r, e, n in zip(hidden, part.rate.fillna(0), part.events,
                                                  part.n, strict=True)],
                hovertemplate="%{x|%Y Q%q}: %{customdata[0]} (%{customdata[1]} of "
                              "%{customdata[2]})<extra>" + procedure + "</extra>",
                row=index, col=1)
            figure.update_yaxes(title_text="%", rangemode="tozero", row=index, col=1)
    for index, outcome in enumerate(outcomes, start=2):
        part = trend[trend.outcome == outcome]
        if len(part) and (is_small(part.events) | is_small(part.n)).all():
            figure.add_annotation(text="every quarter has fewer than 11 events: rates "
                                  "suppressed", showarrow=False, xref="x domain",
                                  yref="y domain", x=0.5, y=0.5, row=index, col=1,
                                  font={"color": "#666"})
    figure.update_yaxes(title_text="n", row=1, col=1)
    base_layout(figure, height=220 + 170 * len(outcomes), barmode="group")
    # Room for the legend below the toolbar band and the subplot titles under it.
    return figure.update_layout(margin_t=top_margin_for_titles(1))


@pytest.mark.parametrize("n, seed", [(3000, 1), (400, 2), (60, 3)])
def test_trend_figure_equals_the_incremental_build(n, seed):
    # 60 records: nearly every quarter suppressed (the annotation path); 3,000: few.
    trend = _trend(demo_records(n, seed=seed))
    got = json.loads(trend_figure(trend).to_json())
    assert got == json.loads(incremental_trend_figure(trend).to_json())
    assert len(got["data"]) == 2 * (1 + 3)


def test_suppressed_rates_are_hidden_and_annotated():
    trend = _trend(demo_records(60, seed=3))
    figure = trend_figure(trend)
    texts = [a.text for a in figure.layout.annotations]
    assert any(t.startswith("every quarter has fewer than 11 events") for t in texts)
    lines = [t for t in figure.data if t.type == "scatter"]
    hidden = [y for t in lines for y, data in zip(t.y, t.customdata, strict=True)
              if data[0] == label()]
    assert hidden and all(y is None or math.isnan(y) for y in hidden)


def test_trend_summary_suppresses_and_protects_the_procedure_totals():
    """Issue 13: FAC-005 of the demo read "Kyphoplasty (KP): 26 procedures; Vertebroplasty
    (VP): 1 procedures" under a card that showed VP "<11"."""
    import pandas as pd

    from dashboard.figures.overview import trend_summary

    records = demo_records(400, seed=5)
    kp = records[records.procedure == "kyphoplasty"].head(33)
    vp = records[records.procedure == "vertebroplasty"].head(1)
    text = trend_summary(_trend(pd.concat([kp, vp])))
    assert "Vertebroplasty (VP): <11 procedures" in text
    assert "Kyphoplasty (KP): ≥11 procedures" in text
    assert " 1 procedures" not in text and "33" not in text
    # Without a small group the totals are shown, rounded like the match count.
    text = trend_summary(_trend(pd.concat([kp, records[records.procedure == "vertebroplasty"]
                                           .head(24)])))
    assert "Kyphoplasty (KP): ≈35 procedures" in text
    assert "Vertebroplasty (VP): ≈25 procedures" in text
