"""Figures and display tables of the Complications page (pure: no Dash callbacks, no data access).

Inputs are the aggregates the page computes with ``analysis``; every builder applies small-cell
suppression itself (counts 1–10 shown as "<11", the rates and intervals resting on them hidden),
so figures, hover texts, tables and reports agree.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.common import (
    OKABE_ITO,
    PROCEDURE_COLOURS,
    PROCEDURES,
    TEXT_COLOURS,
    axis_layout,
    build_figure,
    empty_figure,
    legend_below_toolbar,
    procedure_label,
    subplot_grid,
    top_margin_for_titles,
)
from dashboard.suppression import format_count, is_small, label, suppress_table, threshold

SHORT = {"vertebroplasty": "VP", "kyphoplasty": "KP", "vp_or_kp": "VP or KP", "kp_vs_vp": "KP vs VP"}
DASHES = {"vertebroplasty": "solid", "kyphoplasty": "dash"}
SYMBOLS = {"vertebroplasty": "circle", "kyphoplasty": "square"}
TREND_OUTCOMES = {"cement_leakage": "Cement leakage",
                  "pulmonary_embolism": "Pulmonary cement embolism"}
PERIOD_NAMES = {"Y": "year", "Q": "quarter"}
PERIOD_HOVER = {"Y": "%{x|%Y}", "Q": "%{x|%Y Q%q}"}
#: Largest number of points drawn per cumulative-incidence curve (the rest is thinned out).
MAX_CURVE_POINTS = 400
TESTS = {"pearson_chi2": "Pearson χ²", "fisher_exact": "Fisher exact",
         "wald_z": "Wald z, delta-method SE"}
SHORT_TESTS = {"pearson_chi2": "χ²", "fisher_exact": "Fisher", "wald_z": "Wald z"}
#: Marks a risk ratio computed with 0.5 added to every cell of the 2×2 table (a zero cell).
ZERO_CELL_MARK = "†"
MINUS = "−"


# --------------------------------------------------------------------------------------------
# Building figures at once
# --------------------------------------------------------------------------------------------


def legend_above_titles(height: int, legend_lines: int = 2) -> dict:
    """A layout update: the legend below the toolbar band and above the subplot titles."""
    return {"legend": legend_below_toolbar(height),
            "margin": {"t": top_margin_for_titles(legend_lines)}}


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def pct(value, digits: int | None = None) -> str:
    """A proportion as a percentage: 1 decimal, 2 below 1% (rare complications)."""
    if value is None or pd.isna(value):
        return "–"
    places = digits if digits is not None else (2 if 0 < abs(value) < 0.01 else 1)
    return f"{100 * value:.{places}f}%".replace("-", MINUS)


def rate_text(rate, low, high) -> str:
    """``"36.2% (34.2–38.3)"``; "–" when not available."""
    if rate is None or pd.isna(rate):
        return "–"
    places = 2 if 0 < rate < 0.01 else 1
    return f"{100 * rate:.{places}f}% ({100 * low:.{places}f}–{100 * high:.{places}f})"


def signed(value: float, places: int) -> str:
    return f"{value:.{places}f}".replace("-", MINUS)


def rd_text(rd, low, high) -> str:
    """Risk difference in percentage points with its interval."""
    if rd is None or pd.isna(rd):
        return "–"
    return f"{signed(100 * rd, 1)} ({signed(100 * low, 1)} to {signed(100 * high, 1)})"


def ratio_text(rr, low, high) -> str:
    if rr is None or pd.isna(rr) or not np.isfinite(rr):
        return "–"
    return f"{rr:.2f} ({low:.2f}–{high:.2f})"


def p_text(p) -> str:
    if p is None or pd.isna(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------------------------
# 1. Rates and comparisons
# --------------------------------------------------------------------------------------------

COMPARISON_COLUMNS = (
    "outcome", "label", "vp_events", "vp_n", "vp_rate", "vp_low", "vp_high", "kp_events", "kp_n",
    "kp_rate", "kp_low", "kp_high", "rd", "rd_low", "rd_high", "rr", "rr_low", "rr_high",
    "p_value", "test", "zero_cell_correction", "vp_at_risk", "kp_at_risk", "estimand",
)
#: Columns of :func:`rates_table`. For an outcome "by day N" the rate is the cumulative
#: incidence at the horizon, "events / n" the events observed by then of the patients
#: analysed, and "at risk" the patients still followed without the event at the horizon.
RATE_COLUMNS = ("Outcome", "VP events / n", "VP at risk at horizon", "VP rate (95% CI)",
                "KP events / n", "KP at risk at horizon", "KP rate (95% CI)",
                "KP − VP, percentage points (95% CI)", "Risk ratio KP/VP (95% CI)", "p (test)")


def suppression_flags(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per outcome: which arm's rate is hidden, and whether the comparison is hidden.

    A comparison rests on both arms' counts, so it is hidden when either arm is suppressed.
    """
    vp = is_small(comparison["vp_events"]) | is_small(comparison["vp_n"])
    kp = is_small(comparison["kp_events"]) | is_small(comparison["kp_n"])
    estimable = comparison["rd"].notna().to_numpy()
    return pd.DataFrame({"vp": vp, "kp": kp, "comparison": vp | kp, "estimable": estimable},
                        index=comparison.index)


def rates_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """The display table of rates and KP vs VP comparisons (suppressed, text cells)."""
    columns = list(RATE_COLUMNS)
    if comparison.empty:
        return pd.DataFrame(columns=columns)
    vp = suppress_table(comparison, ["vp_events", "vp_n"], ["vp_rate", "vp_low", "vp_high"])
    kp = suppress_table(comparison, ["kp_events", "kp_n"], ["kp_rate", "kp_low", "kp_high"])
    hidden = vp["suppressed"].to_numpy() | kp["suppressed"].to_numpy()
    rows = []
    for i, row in enumerate(comparison.itertuples(index=False)):
        vp_row, kp_row = vp.iloc[i], kp.iloc[i]
        shown = not hidden[i] and not pd.isna(row.rd)
        rows.append({
            "Outcome": row.label,
            "VP events / n": f"{vp_row.vp_events} / {vp_row.vp_n}",
            "VP at risk at horizon": format_count(getattr(row, "vp_at_risk", None)),
            "VP rate (95% CI)": ("suppressed" if vp_row.suppressed
                                 else rate_text(row.vp_rate, row.vp_low, row.vp_high)),
            "KP events / n": f"{kp_row.kp_events} / {kp_row.kp_n}",
            "KP at risk at horizon": format_count(getattr(row, "kp_at_risk", None)),
            "KP rate (95% CI)": ("suppressed" if kp_row.suppressed
                                 else rate_text(row.kp_rate, row.kp_low, row.kp_high)),
            "KP − VP, percentage points (95% CI)": (rd_text(row.rd, row.rd_low, row.rd_high)
                                                    if shown else _why_hidden(hidden[i])),
            "Risk ratio KP/VP (95% CI)": ((ratio_text(row.rr, row.rr_low, row.rr_high)
                                           + (f" {ZERO_CELL_MARK}" if row.zero_cell_correction else ""))
                                          if shown else _why_hidden(hidden[i])),
            "p (test)": (f"{p_text(row.p_value)} ({SHORT_TESTS.get(row.test, row.test)})"
                         if shown else "–"),
        })
    return pd.DataFrame(rows, columns=columns)


def _why_hidden(suppressed: bool) -> str:
    return "suppressed" if suppressed else "not estimable"


def forest_figure(comparison: pd.DataFrame, measure: str = "rr") -> go.Figure:
    """Forest plot of KP vs VP for every outcome: risk ratios (log axis) or risk differences.

    Suppressed or non-estimable outcomes keep their row, with the reason in the axis label
    and no point. Estimates with the 0.5 zero-cell correction are drawn as open diamonds.
    """
    if comparison.empty:
        return empty_figure()
    flags = suppression_flags(comparison)
    ratio = measure == "rr"
    names = []
    for row, flag in zip(comparison.itertuples(index=False), flags.itertuples(index=False),
                         strict=True):
        suffix = (f" ({label()}: suppressed)" if flag.comparison
                  else "" if flag.estimable else " (not estimable)")
        names.append(row.label + suffix)
    traces = []
    shown = comparison[~flags["comparison"].to_numpy() & flags["estimable"].to_numpy()]
    shown_names = [n for n, keep in zip(names, (~flags["comparison"] & flags["estimable"]),
                                        strict=True) if keep]
    for corrected in (False, True):
        part = shown[shown["zero_cell_correction"].astype(bool) == corrected]
        part_names = [n for n, c in zip(shown_names, shown["zero_cell_correction"].astype(bool),
                                        strict=True) if c == corrected]
        if part.empty:
            continue
        if ratio:
            x, low, high = part["rr"], part["rr_low"], part["rr_high"]
        else:
            x, low, high = 100 * part["rd"], 100 * part["rd_low"], 100 * part["rd_high"]
        hover = [_forest_hover(row, ratio) for row in part.itertuples(index=False)]
        traces.append({
            "type": "scatter", "x": x, "y": part_names, "mode": "markers",
            "marker": {"symbol": "diamond-open" if corrected else "square", "size": 11,
                       "color": OKABE_ITO["black"], "line": {"width": 2}},
            "error_x": {"type": "data", "symmetric": False, "array": high - x,
                        "arrayminus": x - low, "thickness": 1.5, "width": 5,
                        "color": OKABE_ITO["black"]},
            "name": ("Zero cell: 0.5 added to every cell" if corrected
                     else "KP vs VP (95% CI)"),
            "customdata": hover, "hovertemplate": "%{customdata}<extra></extra>",
        })
    no_effect = 1.0 if ratio else 0.0
    if ratio:
        title = "Risk ratio KP/VP (log scale);<br>below 1: fewer events with kyphoplasty"
        xaxis = {"type": "log", "title": {"text": title}}
    else:
        title = "Risk difference KP − VP (percentage points);<br>below 0: fewer events with KP"
        xaxis = {"title": {"text": title}, "zeroline": False}
    # Every outcome keeps its row even without a point.
    traces.append({"type": "scatter", "x": [None] * len(names), "y": names, "mode": "markers",
                   "showlegend": False, "hoverinfo": "skip"})
    layout = {
        "shapes": [{"type": "line", "x0": no_effect, "x1": no_effect, "xref": "x", "y0": 0,
                    "y1": 1, "yref": "y domain",
                    "line": {"color": OKABE_ITO["grey"], "dash": "dash", "width": 1.5}}],
        "xaxis": xaxis,
        "yaxis": {"categoryorder": "array", "categoryarray": names[::-1], "automargin": True,
                  "range": [-0.5, len(names) - 0.5]},
    }
    if shown.empty:
        layout["annotations"] = [{
            "text": f"No outcome has at least {threshold() + 1} patients and events in both "
                    "procedures", "showarrow": False, "xref": "x domain", "yref": "y domain",
            "x": 0.5, "y": 0.5, "bgcolor": "white",
            "font": {"color": TEXT_COLOURS["grey"], "size": 13}}]
    # Two-line axis title: room below the ticks for both lines.
    return build_figure(traces, layout, 140 + 42 * len(names), {"margin": {"l": 20, "b": 76}})


def _forest_hover(row, ratio: bool) -> str:
    effect = (f"RR {ratio_text(row.rr, row.rr_low, row.rr_high)}" if ratio
              else f"RD {rd_text(row.rd, row.rd_low, row.rd_high)} percentage points")
    lines = [f"<b>{row.label}</b>", effect,
             f"KP {pct(row.kp_rate)} ({int(row.kp_events):,}/{int(row.kp_n):,}) vs "
             f"VP {pct(row.vp_rate)} ({int(row.vp_events):,}/{int(row.vp_n):,})",
             f"p {p_text(row.p_value)} ({TESTS.get(row.test, row.test)})"]
    if row.zero_cell_correction and ratio:
        lines.append("zero cell: 0.5 added to every cell")
    return "<br>".join(lines)


def forest_summary(comparison: pd.DataFrame, measure: str = "rr") -> str:
    """The forest plot's text alternative."""
    if comparison.empty:
        return "No records match the filters."
    flags = suppression_flags(comparison)
    keep = ~flags["comparison"] & flags["estimable"]
    parts = []
    for row in comparison[keep.to_numpy()].itertuples(index=False):
        if measure == "rr":
            parts.append(f"{row.label} RR {ratio_text(row.rr, row.rr_low, row.rr_high)}")
        else:
            parts.append(f"{row.label} RD {rd_text(row.rd, row.rd_low, row.rd_high)} points")
    hidden = int(flags["comparison"].sum())
    name = "risk ratios" if measure == "rr" else "risk differences"
    text = f"Kyphoplasty compared with vertebroplasty, {name} with 95% CIs: " + (
        "; ".join(parts) if parts else "none can be shown") + "."
    if hidden:
        text += (f" {hidden} outcome(s) not shown because an arm has fewer than "
                 f"{threshold() + 1} patients or events.")
    return text


# --------------------------------------------------------------------------------------------
# 3. Trend by period
# --------------------------------------------------------------------------------------------


def trend_table(trend: pd.DataFrame) -> pd.DataFrame:
    """Display table of the trend: counts suppressed, rates hidden with them."""
    columns = ["Period", "Procedure", "Outcome", "Procedures", "n", "Events", "Rate",
               "95% CI"]
    if trend.empty:
        return pd.DataFrame(columns=columns)
    shown = suppress_table(trend, ["procedures", "n", "events"], ["rate", "low", "high"])
    return pd.DataFrame({
        "Period": shown["period"], "Procedure": shown["procedure"].map(SHORT),
        "Outcome": shown["outcome"].map(TREND_OUTCOMES),
        "Procedures": shown["procedures"], "n": shown["n"], "Events": shown["events"],
        "Rate": [pct(r) if r is not None else "–" for r in shown["rate"]],
        "95% CI": [f"{pct(lo)}–{pct(hi)}" if lo is not None and not pd.isna(lo) else "–"
                   for lo, hi in zip(shown["low"], shown["high"], strict=True)],
    }, columns=columns)


def trend_figure(trend: pd.DataFrame, freq: str = "Y") -> go.Figure:
    """Leakage and embolism rates per period with 95% CIs, VP and KP.

    Under each panel a strip marks the suppressed periods ("<11": 1–10 events or patients)
    of each procedure, so a gap in a line is never mistaken for missing data or a zero.
    """
    if trend.empty:
        return empty_figure()
    outcomes = [o for o in TREND_OUTCOMES if o in set(trend["outcome"])]
    specs = []
    titles = []
    for outcome in outcomes:
        titles += [f"{TREND_OUTCOMES[outcome]} per {PERIOD_NAMES.get(freq, freq)}", ""]
        specs += [0.78, 0.22]
    weights = [w / len(outcomes) for w in specs]
    layout, axes = subplot_grid(2 * len(outcomes), 1, shared_xaxes=True, vertical_spacing=0.05,
                         row_heights=weights, subplot_titles=titles)
    annotations = layout.setdefault("annotations", [])  # the subplot titles first
    traces = []
    when = PERIOD_HOVER.get(freq, "%{x}")
    for index, outcome in enumerate(outcomes):
        row = 1 + 2 * index
        for procedure in PROCEDURES:
            part = trend[(trend["procedure"] == procedure) & (trend["outcome"] == outcome)]
            if part.empty:
                continue
            hidden = is_small(part["events"]) | is_small(part["n"])
            rate = (100 * part["rate"]).where(~hidden)
            colour = PROCEDURE_COLOURS[procedure]
            customdata = [
                [label() if h else pct(r), label() if is_small([e])[0] else f"{int(e):,}",
                 label() if is_small([n])[0] else f"{int(n):,}"]
                for h, r, e, n in zip(hidden, part["rate"], part["events"], part["n"], strict=True)]
            traces.append({
                "type": "scatter", "x": part["period_start"], "y": rate,
                "mode": "lines+markers", "line": {"color": colour, "dash": DASHES[procedure]},
                "marker": {"symbol": SYMBOLS[procedure], "size": 7},
                "name": procedure_label(procedure), "legendgroup": procedure,
                "showlegend": index == 0,
                "error_y": {"type": "data", "symmetric": False,
                            "array": (100 * (part["high"] - part["rate"])).where(~hidden),
                            "arrayminus": (100 * (part["rate"] - part["low"])).where(~hidden),
                            "thickness": 1, "width": 3, "color": colour},
                "customdata": customdata,
                "hovertemplate": when + ": %{customdata[0]} (%{customdata[1]} of "
                                 "%{customdata[2]})<extra>" + SHORT[procedure] + "</extra>",
                **axes[(row, 1)]})
            small = part[hidden]
            traces.append({
                "type": "scatter", "x": small["period_start"],
                "y": [SHORT[procedure]] * len(small), "mode": "text",
                "text": [label()] * len(small), "textfont": {"color": colour, "size": 11},
                "showlegend": False, "legendgroup": procedure,
                "hovertemplate": when + ": fewer than " + str(threshold() + 1)
                + " events or patients, rate suppressed<extra>" + SHORT[procedure] + "</extra>",
                **axes[(row + 1, 1)]})
        axis_layout(layout, axes[(row, 1)]["yaxis"]).update(
            title={"text": "% of procedures"}, rangemode="tozero")
        strip = axes[(row + 1, 1)]
        axis_layout(layout, strip["yaxis"]).update(
            type="category", categoryorder="array",
            categoryarray=[SHORT[p] for p in PROCEDURES[::-1]], range=[-0.6, 1.6],
            showgrid=False, title={"text": "suppressed", "font": {"size": 11}})
        shown = trend[trend["outcome"] == outcome]
        if not (is_small(shown["events"]) | is_small(shown["n"])).any():
            annotations.append({"text": "no suppressed periods", "showarrow": False,
                                "xref": strip["xaxis"] + " domain",
                                "yref": strip["yaxis"] + " domain", "x": 0.5, "y": 0.5,
                                "font": {"color": TEXT_COLOURS["grey"], "size": 11}})
    for row in range(1, 2 * len(outcomes) + 1):  # also the strips, which may hold no point
        xaxis = axis_layout(layout, axes[(row, 1)]["xaxis"])
        xaxis["type"] = "date"
        if freq == "Y":
            xaxis.update(dtick="M12", tickformat="%Y")
    axis_layout(layout, axes[(2 * len(outcomes), 1)]["xaxis"])["title"] = {"text": "Procedure date"}
    height = 200 + 260 * len(outcomes)
    return build_figure(traces, layout, height, legend_above_titles(height))


def trend_summary(trend: pd.DataFrame, freq: str = "Y") -> str:
    if trend.empty:
        return "No procedures in the selected period."
    name = PERIOD_NAMES.get(freq, freq)
    periods = trend["period"].nunique()
    hidden = is_small(trend["events"]) | is_small(trend["n"])
    suppressed = int(hidden.sum())
    return (f"Cement leakage and pulmonary cement embolism rates per {name} for "
            f"vertebroplasty and kyphoplasty, {periods} {name}s from {trend['period'].min()} to "
            f"{trend['period'].max()}, with 95% Wilson intervals; {suppressed} of {len(trend)} "
            f"period rates are suppressed (marked {label()}) because they rest on 1 to "
            f"{threshold()} events or patients.")


# --------------------------------------------------------------------------------------------
# 4. Time to a new fracture
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FractureCurves:
    """What the cumulative-incidence figure needs (computed by the page with ``analysis``).

    ``km``: Kaplan–Meier rows per procedure (``procedure, time, at_risk, events, survival,
    low, high``); ``cif``: Aalen–Johansen rows (``procedure, time, cumulative_incidence, low,
    high, at_risk``), empty when deaths are not recorded; ``at_risk``: ``procedure, time,
    at_risk, cumulative_events``; ``counts``: procedure → (records with a time, fractures).
    """

    km: pd.DataFrame
    cif: pd.DataFrame
    at_risk: pd.DataFrame
    competing: bool
    counts: dict


def curve_is_hidden(curves: FractureCurves, procedure: str) -> bool:
    """A curve resting on 1–10 patients or 1–10 fractures is not drawn."""
    n, events = curves.counts.get(procedure, (0, 0))
    return n == 0 or bool(is_small([n])[0] or is_small([events])[0])


def step_points(frame: pd.DataFrame, value_columns: list[str],
                max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """The rows of a step curve worth drawing: where a value changes, thinned to at most
    `max_points` by keeping the last row of each of equal-width time bins (the first and last
    rows are always kept), so a million records still send a few hundred points."""
    if len(frame) <= 2:
        return frame
    values = frame[value_columns]
    changed = values.ne(values.shift()).any(axis=1).to_numpy()
    changed[0] = changed[-1] = True
    kept = frame[changed]
    if len(kept) <= max_points:
        return kept
    times = kept["time"].to_numpy(dtype=float)
    span = times[-1] - times[0]
    bins = np.floor((times - times[0]) / span * (max_points - 2)).astype(int)
    last = np.r_[bins[1:] != bins[:-1], True]
    last[0] = True
    return kept[last]


def curve_frame(curves: FractureCurves, kind: str, procedure: str) -> pd.DataFrame:
    """Cumulative incidence of one estimator and procedure: ``time, estimate, low, high,
    at_risk``, starting at (0, 0), cut where fewer than 11 patients remain at risk."""
    if kind == "km":
        rows = curves.km[curves.km["procedure"] == procedure]
        frame = pd.DataFrame({"time": rows["time"], "estimate": 1 - rows["survival"],
                              "low": 1 - rows["high"], "high": 1 - rows["low"],
                              "at_risk": rows["at_risk"]})
    else:
        rows = curves.cif[curves.cif["procedure"] == procedure]
        frame = pd.DataFrame({"time": rows["time"], "estimate": rows["cumulative_incidence"],
                              "low": rows["low"], "high": rows["high"],
                              "at_risk": rows["at_risk"]})
    frame = frame[frame["at_risk"] > threshold()]
    if frame.empty:
        return frame
    start = pd.DataFrame({"time": [0.0], "estimate": [0.0], "low": [0.0], "high": [0.0],
                          "at_risk": [int(frame["at_risk"].iloc[0])]})
    frame = pd.concat([start, frame], ignore_index=True)
    return step_points(frame, ["estimate", "low", "high"])


PANELS = {"km": "1 − Kaplan–Meier (deaths censored)",
          "aj": "Aalen–Johansen (death as a competing risk)"}


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def incidence_figure(curves: FractureCurves) -> go.Figure:
    """Cumulative incidence of a new vertebral fracture by procedure with 95% bands.

    Left: 1 − Kaplan–Meier (deaths censored); right, when deaths are recorded: Aalen–Johansen
    with death as a competing risk. Curves stop where fewer than 11 patients remain at risk.
    """
    if curves.km.empty:
        return empty_figure("No records with a follow-up time.")
    kinds = ["km", "aj"] if curves.competing and not curves.cif.empty else ["km"]
    layout, axes = subplot_grid(1, len(kinds), shared_yaxes=True, horizontal_spacing=0.05,
                         subplot_titles=[PANELS[k] for k in kinds])
    traces = []
    notes = []
    top = 0.0
    for col, kind in enumerate(kinds, start=1):
        for procedure in PROCEDURES:
            if curve_is_hidden(curves, procedure):
                if col == 1 and curves.counts.get(procedure, (0, 0))[0]:
                    notes.append(f"{SHORT[procedure]}: fewer than {threshold() + 1} patients or "
                                 "new fractures, curve suppressed")
                continue
            points = curve_frame(curves, kind, procedure)
            if points.empty:
                continue
            top = max(top, float(points["high"].max()))
            colour = PROCEDURE_COLOURS[procedure]
            step = {"shape": "hv", "width": 0}
            cell = axes[(1, col)]
            traces.append({"type": "scatter", "x": points["time"], "y": 100 * points["high"],
                           "mode": "lines", "line": step, "showlegend": False,
                           "hoverinfo": "skip", "legendgroup": procedure, **cell})
            traces.append({"type": "scatter", "x": points["time"], "y": 100 * points["low"],
                           "mode": "lines", "line": step, "fill": "tonexty",
                           "fillcolor": _rgba(colour, 0.18), "showlegend": False,
                           "hoverinfo": "skip", "legendgroup": procedure, **cell})
            customdata = [[pct(e), pct(lo), pct(hi), f"{int(r):,}"] for e, lo, hi, r in zip(
                points["estimate"], points["low"], points["high"], points["at_risk"],
                strict=True)]
            traces.append({
                "type": "scatter", "x": points["time"], "y": 100 * points["estimate"],
                "mode": "lines",
                "line": {"shape": "hv", "color": colour, "dash": DASHES[procedure],
                         "width": 2.5},
                "name": procedure_label(procedure), "legendgroup": procedure,
                "showlegend": col == 1, "customdata": customdata,
                "hovertemplate": "Day %{x:.0f}: %{customdata[0]} (95% CI %{customdata[1]}–"
                                 "%{customdata[2]}), %{customdata[3]} at risk<extra>"
                                 + SHORT[procedure] + "</extra>",
                **cell})
        axis_layout(layout, axes[(1, col)]["xaxis"]).update(
            title={"text": "Days since procedure"},
            tickvals=[0, 180, 365, 730, 1095, 1460, 1825], rangemode="tozero")
    axis_layout(layout, axes[(1, 1)]["yaxis"]).update(
        title={"text": "Cumulative incidence of a new fracture (%)"},
        range=[0, max(5.0, 100 * top * 1.08)])
    layout.setdefault("annotations", []).extend(
        {"text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0,
         "y": 0.98 - 0.07 * index, "xanchor": "left",
         "font": {"color": TEXT_COLOURS["grey"], "size": 12}} for index, note in enumerate(notes))
    return build_figure(traces, layout, 440, legend_above_titles(440))


def value_at(curves: FractureCurves, kind: str, procedure: str, day: int):
    """(estimate, low, high) at `day` from the drawn curve, or None when hidden or cut."""
    if curve_is_hidden(curves, procedure):
        return None
    points = curve_frame(curves, kind, procedure)
    if points.empty or points["time"].max() < day:
        return None
    row = points[points["time"] <= day].iloc[-1]
    return float(row["estimate"]), float(row["low"]), float(row["high"])


def incidence_summary(curves: FractureCurves, day: int = 365) -> str:
    """The text alternative of the cumulative-incidence figure."""
    if curves.km.empty:
        return "No records with a follow-up time."
    kind = "aj" if curves.competing and not curves.cif.empty else "km"
    method = ("with death as a competing risk (Aalen–Johansen)" if kind == "aj"
              else "by 1 − Kaplan–Meier (deaths not recorded, so censored)")
    parts = []
    for procedure in PROCEDURES:
        value = value_at(curves, kind, procedure, day)
        parts.append(f"{SHORT[procedure]} " + (f"{pct(value[0])} (95% CI {pct(value[1])}–"
                                               f"{pct(value[2])})" if value else "not shown"))
    text = (f"Cumulative incidence of a new vertebral fracture at {day} days {method}: "
            + ", ".join(parts) + ".")
    text += (f" Curves stop where {threshold()} or fewer patients remain at risk; 1 − KM "
             "overstates the risk when patients die before a fracture.")
    return text


def at_risk_table(table: pd.DataFrame) -> pd.DataFrame:
    """Number at risk and cumulative new fractures per day, one row per procedure and count
    (each cell suppressed on its own)."""
    if table.empty:
        return pd.DataFrame(columns=["Procedure", "Count"])
    days = sorted(table["time"].unique())
    day_columns = [f"Day {int(d)}" for d in days]
    rows = []
    for procedure in PROCEDURES:
        part = table[table["procedure"] == procedure].set_index("time")
        if part.empty:
            continue
        for column, name in (("at_risk", "At risk"),
                             ("cumulative_events", "New fractures so far")):
            rows.append({"Procedure": SHORT[procedure], "Count": name,
                         **{f"Day {int(d)}": int(part.loc[d, column]) for d in days}})
    wide = pd.DataFrame(rows, columns=["Procedure", "Count", *day_columns])
    return suppress_table(wide, day_columns).drop(columns="suppressed")


# --------------------------------------------------------------------------------------------
# 5. Literature benchmarks
# --------------------------------------------------------------------------------------------

#: Benchmark groups: title, the local outcome, and the literature outcomes shown with it.
BENCHMARK_GROUPS = (
    ("Cement leakage", "cement_leakage", ("cement_leakage",)),
    ("Pulmonary cement embolism", "pulmonary_embolism", ("pulmonary_embolism",)),
    ("New vertebral fracture", "adjacent_fracture_12m",
     ("adjacent_fracture_12m", "subsequent_fracture")),
)
BENCHMARK_CAVEAT = (
    "Published figures are context, not targets: definitions (per patient or per treated "
    "level, any or symptomatic leakage, imaging used), surveillance and follow-up differ "
    "between studies and from this registry."
)


def short_citation(citation: str) -> str:
    """``"Papanastassiou et al. 2012"`` or, for a citation that starts with the title,
    ``"World Neurosurg 2017"``."""
    text = citation.strip()
    year = re.search(r"(19|20)\d\d", text)
    year_text = year.group(0) if year else ""
    if text.startswith('"'):
        rest = text.split('"', 2)[-1].strip() if text.count('"') >= 2 else text
        journal = rest.split(year_text)[0].strip(" .;,") if year_text else rest
        return f"{journal} {year_text}".strip()
    author = re.split(r"[ ,]", text, maxsplit=1)[0]
    return f"{author} et al. {year_text}".strip()


def benchmark_rows(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """The literature rows shown on the page: proportions and ranges of the grouped
    outcomes, in display order."""
    outcomes = [o for _, _, group in BENCHMARK_GROUPS for o in group]
    rows = benchmarks[benchmarks["outcome"].isin(outcomes)
                      & benchmarks["measure"].isin(["proportion", "range"])].copy()
    rows["order"] = rows["outcome"].map({o: i for i, o in enumerate(outcomes)})
    return rows.sort_values(["order"], kind="stable").drop(columns="order")


def benchmark_table(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Display table of the published figures, with full citations and definitions."""
    outcomes = {o: title for title, _, group in BENCHMARK_GROUPS for o in group}
    chosen = benchmarks[benchmarks["outcome"].isin(outcomes)]
    return pd.DataFrame({
        "Outcome": chosen["outcome"].map(outcomes),
        "Procedure": chosen["procedure"].map(SHORT),
        "Published": chosen["reported"],
        "Population": chosen["population"],
        "Definition and caveats": chosen["notes"],
        "Citation": chosen["citation"],
        "Link": chosen["url"],
    }).reset_index(drop=True)


def benchmark_figure(comparison: pd.DataFrame, benchmarks: pd.DataFrame) -> go.Figure:
    """Local VP and KP rates (filled, 95% CI) beside published figures (open diamonds with
    their interval, or a bar for a reported range), each labelled with its citation."""
    rows = benchmark_rows(benchmarks)
    if comparison.empty:
        return empty_figure()
    flags = suppression_flags(comparison)
    local = comparison.set_index("outcome")
    hidden = flags.set_index(comparison["outcome"])
    heights = []
    for _, _outcome, group in BENCHMARK_GROUPS:
        heights.append(2 + int(rows["outcome"].isin(group).sum()))
    layout, axes = subplot_grid(len(BENCHMARK_GROUPS), 1, shared_xaxes=True, vertical_spacing=0.07,
                         row_heights=[h / sum(heights) for h in heights],
                         subplot_titles=[title for title, _, _ in BENCHMARK_GROUPS])
    traces = []
    top = 0.0
    for index, (_, outcome, group) in enumerate(BENCHMARK_GROUPS, start=1):
        names = []
        horizon = (" (12-month cumulative incidence)" if outcome == "adjacent_fracture_12m"
                   else "")
        for procedure, prefix in (("vertebroplasty", "vp"), ("kyphoplasty", "kp")):
            name = f"This selection · {SHORT[procedure]}{horizon}"
            if outcome not in local.index:
                names.append(name + " (no data)")
                continue
            row = local.loc[outcome]
            if hidden.loc[outcome, prefix]:
                names.append(f"{name} ({label()}: suppressed)")
                continue
            if pd.isna(row[f"{prefix}_rate"]):
                names.append(name + " (no data)")
                continue
            names.append(name)
            rate, low, high = (100 * row[f"{prefix}_{k}"] for k in ("rate", "low", "high"))
            top = max(top, high)
            traces.append({
                "type": "scatter", "x": [rate], "y": [name], "mode": "markers",
                "marker": {"symbol": SYMBOLS[procedure], "size": 11,
                           "color": PROCEDURE_COLOURS[procedure]},
                "error_x": {"type": "data", "symmetric": False, "array": [high - rate],
                            "arrayminus": [rate - low], "color": PROCEDURE_COLOURS[procedure],
                            "thickness": 2, "width": 5},
                "showlegend": False,
                "hovertemplate": (f"{name}: {pct(row[f'{prefix}_rate'])} (95% CI "
                                  f"{pct(row[f'{prefix}_low'])}–{pct(row[f'{prefix}_high'])}), "
                                  f"{int(row[f'{prefix}_events']):,} of "
                                  f"{int(row[f'{prefix}_n']):,}<extra></extra>"),
                **axes[(index, 1)]})
        for item in rows[rows["outcome"].isin(group)].itertuples(index=False):
            name = f"{SHORT.get(item.procedure, item.procedure)} · {short_citation(item.citation)}"
            while name in names:
                name += " "
            names.append(name)
            colour = PROCEDURE_COLOURS.get(item.procedure, OKABE_ITO["grey"])
            hover = (f"<b>{short_citation(item.citation)}</b>: {item.reported}<br>"
                     f"{item.population}<br>{item.notes}<extra></extra>")
            if item.measure == "range":
                top = max(top, 100 * item.high)
                traces.append({
                    "type": "scatter", "x": [100 * item.low, 100 * item.high],
                    "y": [name, name], "mode": "lines+markers",
                    "line": {"color": colour, "width": 6},
                    "marker": {"symbol": "line-ns-open", "size": 14, "color": colour},
                    "showlegend": False, "hovertemplate": hover, **axes[(index, 1)]})
                continue
            has_ci = not pd.isna(item.low) and not pd.isna(item.high)
            top = max(top, 100 * (item.high if has_ci else item.estimate))
            trace = {"type": "scatter", "x": [100 * item.estimate], "y": [name],
                     "mode": "markers",
                     "marker": {"symbol": "diamond-open", "size": 12, "color": colour,
                                "line": {"width": 2}},
                     "showlegend": False, "hovertemplate": hover, **axes[(index, 1)]}
            if has_ci:
                trace["error_x"] = {"type": "data", "symmetric": False,
                                    "array": [100 * (item.high - item.estimate)],
                                    "arrayminus": [100 * (item.estimate - item.low)],
                                    "color": colour, "thickness": 1.5, "width": 4}
            traces.append(trace)
        traces.append({"type": "scatter", "x": [None] * len(names), "y": names,
                       "mode": "markers", "showlegend": False, "hoverinfo": "skip",
                       **axes[(index, 1)]})  # every row keeps its label
        axis_layout(layout, axes[(index, 1)]["yaxis"]).update(
            type="category", categoryorder="array", categoryarray=names[::-1],
            range=[-0.6, len(names) - 0.4], automargin=True)
    # Legend keys (shapes, not colour alone, tell local from published).
    for name, marker in (("This selection (95% CI)", {"symbol": "circle", "color": "#444"}),
                         ("Published (interval if reported)",
                          {"symbol": "diamond-open", "color": "#444", "line": {"width": 2}}),
                         ("Published range", {"symbol": "line-ew-open", "color": "#444",
                                              "line": {"width": 3}})):
        traces.append({"type": "scatter", "x": [None], "y": [None], "mode": "markers",
                       "name": name, "marker": {**marker, "size": 11}, **axes[(1, 1)]})
    axis_layout(layout, axes[(len(BENCHMARK_GROUPS), 1)]["xaxis"]).update(
        title={"text": "% of patients"}, range=[0, max(10.0, top * 1.05)])
    height = 140 + 30 * sum(heights)
    after = legend_above_titles(height, legend_lines=3)  # five entries: three lines at 800 px
    after["margin"]["l"] = 20
    return build_figure(traces, layout, height, after)


def benchmark_summary(comparison: pd.DataFrame, benchmarks: pd.DataFrame) -> str:
    rows = benchmark_rows(benchmarks)
    flags = suppression_flags(comparison) if not comparison.empty else None
    parts = []
    for title, outcome, _ in BENCHMARK_GROUPS:
        match = comparison[comparison["outcome"] == outcome]
        if match.empty:
            continue
        row, flag = match.iloc[0], flags.loc[match.index[0]]
        vp = label() if flag["vp"] else pct(row["vp_rate"])
        kp = label() if flag["kp"] else pct(row["kp_rate"])
        parts.append(f"{title.lower()} VP {vp}, KP {kp}")
    sources = ", ".join(dict.fromkeys(short_citation(c) for c in rows["citation"]))
    return ("This selection: " + "; ".join(parts) + f". Published figures from {sources}.")
