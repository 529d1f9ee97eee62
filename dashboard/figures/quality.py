"""Figures, tables and texts of the Quality monitoring page (pure functions, no Dash callbacks).

Every builder takes results of :mod:`analysis.quality` and applies small-cell suppression.

**The small-unit rule** (one rule for the Quality page, the Signals page, their reports and
signal alerts): a unit with 1–10 cases, events or non-events (the threshold of
:mod:`dashboard.suppression`) keeps its place in the comparison and its flag is listed (alarm,
alert, within, low volume: "Alarm high (counts hidden)" in the table, the signal in the Signals
list), but its counts are hidden — n and events show as "<11", or "–" for a large count whose
complement is small — and so are its rate, expected count, O/E, CI, z, p-value and CUSUM
crossing dates, in hover texts, tables and texts alike; it is not drawn on the funnel or
caterpillar plot, nor charted by the CUSUM. The cards, the funnel's summary and the table
count the same listed flags (:func:`flag_counts`) and say how many of them are not drawn.
When the hidden units *together* form a small cell the page compares the shown units among
themselves (:func:`excluded_units`), so the pooled target reveals nothing hidden: those units
were not compared, have no flag, and are listed as "Hidden (small counts)" (no signal).
A flag is withheld in the same way (listed as "Hidden (small counts)", no signal) where the
flag itself would give a hidden count away (:func:`withheld_flags`): when the unit's number
of cases is itself hidden (being tested at all says it has at least 10), and, where the
limits are known in counts (a crude funnel of proportions, whose volume is the shown n), when
one of the flag bands over the possible hidden counts holds a single count.
The limit curves span the drawn units' volumes only.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.quality import (
    TIME_TO_EVENT,
    CusumResult,
    FunnelResult,
    RiskModelResult,
    limit_curves,
    oe_ratio,
    outcome_values,
)
from dashboard.figures.common import (
    OKABE_ITO,
    axis_layout,
    build_figure,
    empty_figure,
    plain_text,
    subplot_grid,
)
from dashboard.suppression import format_count, is_small, label, range_text, suppress_table

OUTCOME_LABELS: dict[str, str] = {
    "cement_leakage": "Cement leakage",
    "pulmonary_embolism": "Cement embolism",
    "adjacent_fracture": "New fracture",
    "non_response": "Non-response (<30% pain relief at 1 month)",
}
UNIT_NAMES: dict[str, tuple[str, str]] = {  # column -> (singular, plural)
    "facility_id": ("facility", "facilities"),
    "operator_id": ("operator", "operators"),
}
# flag -> (legend text, colour, marker symbol): colour AND shape, never colour alone.
FLAG_STYLES: dict[str, tuple[str, str, str]] = {
    "alarm_high": ("Alarm: above the 99.8% limit", OKABE_ITO["vermillion"], "diamond"),
    "alert_high": ("Alert: above the 95% limit", OKABE_ITO["orange"], "triangle-up"),
    "within": ("Within the limits", OKABE_ITO["blue"], "circle"),
    "alert_low": ("Alert: below the 95% limit", OKABE_ITO["sky_blue"], "triangle-down"),
    "alarm_low": ("Alarm: below the 99.8% limit", OKABE_ITO["bluish_green"], "square"),
    "low_volume": ("Low volume (not tested)", OKABE_ITO["grey"], "circle-open"),
}
#: The flag of a unit whose counts are suppressed: never its real flag (that is a count too).
HIDDEN_FLAG = "hidden"
LIMIT_STYLES = {0.95: ("95% limits (alert)", "dash"), 0.998: ("99.8% limits (alarm)", "solid")}
#: The CUSUM figure shows at most about this many points per series (peaks and signals kept).
CUSUM_MAX_POINTS = 3000


OUTCOME_SHORT: dict[str, str] = {"non_response": "Non-response"}
# Short flag texts for the table (the legend and hover use FLAG_STYLES' longer texts).
TABLE_FLAGS: dict[str, str] = {
    "alarm_high": "Alarm high", "alert_high": "Alert high", "within": "Within",
    "alert_low": "Alert low", "alarm_low": "Alarm low", "low_volume": "Low volume",
    HIDDEN_FLAG: "Hidden (small counts)",
}
#: Added to the table flag of a unit whose counts are hidden (its flag is listed).
COUNTS_HIDDEN = " (counts hidden)"


def outcome_label(outcome: str, short: bool = False) -> str:
    if short and outcome in OUTCOME_SHORT:
        return OUTCOME_SHORT[outcome]
    return OUTCOME_LABELS.get(outcome, outcome.replace("_", " "))


def unit_name(unit: str, plural: bool = False) -> str:
    singular, many = UNIT_NAMES.get(unit, (unit.replace("_id", ""), unit.replace("_id", "") + "s"))
    return many if plural else singular


def flag_label(flag: str) -> str:
    return FLAG_STYLES.get(flag, (str(flag),))[0]


def suppressed_units(units: pd.DataFrame, count_columns=("n", "events")) -> np.ndarray:
    """Units whose cases, events or non-events (cases − events) are 1..threshold (shown only
    as "<11"; a plotted rate with its n would give the events)."""
    hidden = np.zeros(len(units), dtype=bool)
    for column in count_columns:
        hidden |= is_small(units[column])
    total, part = count_columns
    hidden |= is_small(pd.to_numeric(units[total], errors="coerce")
                       - pd.to_numeric(units[part], errors="coerce"))
    if "flag" in units:
        hidden |= (units["flag"] == HIDDEN_FLAG).to_numpy()
    return hidden


def excluded_units(names, n, events) -> tuple[str, ...]:
    """Hidden units to leave out of the displayed comparison, by the secondary rule.

    A unit is hidden when its cases, events or non-events are 1..threshold. When the hidden
    units *together* have 1..threshold cases, events or non-events, the pooled target (all
    events ÷ all cases) and the shown units' exact counts would give that small cell by
    subtraction, so all hidden units are left out of the target and the limits (returned
    here); otherwise none is (the hidden pool is no small cell, and the target keeps every
    unit).

    >>> excluded_units(["A", "B", "C"], [100, 120, 8], [20, 30, 3])
    ('C',)
    >>> excluded_units(["A", "B", "C", "D"], [100, 120, 300, 280], [20, 30, 6, 7])
    ()
    """
    frame = pd.DataFrame({"n": np.asarray(n, dtype=float), "events": np.asarray(events, float)})
    hidden = suppressed_units(frame)
    pool_n, pool_events = frame["n"][hidden].sum(), frame["events"][hidden].sum()
    if not hidden.any() or not is_small([pool_n, pool_events, pool_n - pool_events]).any():
        return ()
    return tuple(str(name) for name, h in zip(names, hidden, strict=True) if h)


def unit_counts(records: pd.DataFrame, unit: str, outcome: str) -> pd.DataFrame:
    """Cases (``n``) and ``events`` of each unit with the outcome recorded (units with none
    left out), counted on integer codes (a million records in milliseconds)."""
    values = outcome_values(records, outcome).to_numpy(dtype=float, na_value=np.nan)
    units = records[unit]
    if isinstance(units.dtype, pd.CategoricalDtype):
        codes, names = units.cat.codes.to_numpy(), np.asarray(units.cat.categories, dtype=object)
    else:
        codes, names = pd.factorize(units.astype(object), use_na_sentinel=True)
        names = np.asarray(names, dtype=object)
    keep = (codes >= 0) & ~np.isnan(values)
    n = np.bincount(codes[keep], minlength=len(names))
    events = np.bincount(codes[keep], weights=values[keep], minlength=len(names))
    present = n > 0
    return pd.DataFrame({"unit": names[present].astype(str), "n": n[present],
                         "events": np.rint(events[present]).astype(int)})


def _hidden_rows(records: pd.DataFrame, unit: str, outcome: str,
                 units: tuple[str, ...]) -> pd.DataFrame:
    """Rows of hidden units for the unit table: their counts (shown as "<11") and flag."""
    counts = unit_counts(records, unit, outcome)
    rows = counts[counts["unit"].isin(units)].reset_index(drop=True)
    rows["flag"] = HIDDEN_FLAG
    for column in ("rate", "expected", "oe", "z", "z_raw", "p_value", "p_adjusted", "plot_n",
                   "plot_rate"):
        rows[column] = np.nan
    return rows


def with_hidden_units(result: FunnelResult, records: pd.DataFrame,
                      units: tuple[str, ...]) -> FunnelResult:
    """``result`` (of the shown units) with the left-out hidden ``units`` listed as hidden."""
    rows = _hidden_rows(records, result.unit, result.outcome, units)
    return dataclasses.replace(result, units=pd.concat([result.units, rows], ignore_index=True))


def every_unit_hidden(records: pd.DataFrame, unit: str, outcome: str) -> FunnelResult:
    """A result listing every unit as hidden, with no target and no limits."""
    rows = _hidden_rows(records, unit, outcome,
                        tuple(unit_counts(records, unit, outcome)["unit"]))
    return FunnelResult(units=rows, limits=pd.DataFrame(columns=["n", "level", "low", "high"]),
                        outcome=outcome, unit=unit, target=float("nan"), target_source="pooled",
                        phi=float("nan"), phi_p_value=float("nan"), tau2=float("nan"),
                        overdispersion="none", overdispersion_applied=False, adjusted=False,
                        min_volume=0)


def nothing_shown(result: FunnelResult | None) -> bool:
    """Every unit hidden: no target, limits nor flags may be shown."""
    return result is not None and not np.isfinite(result.target)


#: The table's order of (display) flags: flagged units first, hidden units last.
TABLE_ORDER: tuple[str, ...] = ("alarm_high", "alarm_low", "alert_high", "alert_low", "within",
                                "low_volume", HIDDEN_FLAG)


_LIMIT_COLUMNS = ("low_95", "high_95", "low_998", "high_998")


def _band(y: np.ndarray, row) -> np.ndarray:
    """The funnel band of each plotted value ``y`` at the limits of ``row`` (the flags' bands:
    beyond 99.8%, beyond 95% only, within)."""
    return np.select([y < row.low_998, y > row.high_998, y < row.low_95, y > row.high_95],
                     [0, 4, 1, 3], default=2)


def _a_band_pins_a_count(row, limit: int) -> bool:
    """Whether, at this unit's shown n and limits, some flag band holds exactly one of the
    possible values of its hidden events or non-events (1..``limit``): the flag would then
    give that count away. It depends on n and the limits only, never on the hidden count, so
    withholding a flag says nothing about the count either."""
    n = float(row.n)
    counts = np.arange(1, min(limit, int(n)) + 1, dtype=float)
    pinned = False
    for hidden_events in (is_small(row.events), is_small(n - float(row.events))):
        if hidden_events and counts.size:
            events = counts if is_small(row.events) else n - counts
            bands = _band(events / float(row.plot_n), row)
            pinned |= bool((np.bincount(bands, minlength=5) == 1).any())
    return pinned


def withheld_flags(units: pd.DataFrame) -> np.ndarray:
    """Units listed as hidden, without their flag (the exceptions of the small-unit rule).

    Left out of the comparison (:func:`excluded_units`); or the unit's counts are hidden and
    its flag would give one away: its number of cases is hidden (a tested unit has at least
    ``min_volume`` cases, so n would be known to lie in min_volume..threshold — exactly 10 at
    the defaults), or its volume is its shown n (crude proportions) and a flag band over the
    possible hidden counts holds one count (:func:`_a_band_pins_a_count`). For a risk-adjusted
    or time-to-event funnel the volume is E/θ, with E hidden, so the limits in counts are not
    known to the reader.

    >>> units = pd.DataFrame({"unit": ["A", "B", "C"], "n": [8, 300, 30], "events": [2, 3, 1],
    ...     "flag": ["low_volume", "alarm_low", "alert_low"], "plot_n": [8.0, 290.0, 30.0],
    ...     "low_998": [0.0, 0.12, 0.0], "high_998": [0.9, 0.35, 0.5],
    ...     "low_95": [0.0, 0.16, 0.05], "high_95": [0.8, 0.3, 0.45]})
    >>> withheld_flags(units).tolist()  # A: n hidden; C: 1 event is alone below 0.05 × 30
    [True, False, True]
    """
    from dashboard.suppression import threshold

    hidden = suppressed_units(units)
    n = pd.to_numeric(units["n"], errors="coerce").to_numpy(dtype=float)
    withheld = (units["flag"] == HIDDEN_FLAG).to_numpy() | (hidden & is_small(n))
    if not set(_LIMIT_COLUMNS) <= set(units.columns) or "plot_n" not in units:
        return withheld
    volume = pd.to_numeric(units["plot_n"], errors="coerce").to_numpy(dtype=float)
    known = hidden & ~withheld & np.isclose(volume, n)
    limit = threshold()
    for position in np.flatnonzero(known):
        withheld[position] = _a_band_pins_a_count(units.iloc[position], limit)
    return withheld


def display_flags(units: pd.DataFrame) -> pd.Series:
    """Each unit's flag as the page lists it: its own flag, also for a unit whose counts are
    hidden (the small-unit rule above); ``hidden`` for a unit left out of the comparison or
    whose flag would give a hidden count away (:func:`withheld_flags`)."""
    return units["flag"].astype(object).where(~withheld_flags(units), HIDDEN_FLAG)


def table_flag(flag: str, counts_hidden: bool) -> str:
    """The flag's table text, marked when the unit's counts are hidden.

    >>> table_flag("alarm_high", True), table_flag("hidden", True), table_flag("within", False)
    ('Alarm high (counts hidden)', 'Hidden (small counts)', 'Within')
    """
    text = TABLE_FLAGS.get(flag, flag)
    return text + COUNTS_HIDDEN if counts_hidden and flag != HIDDEN_FLAG else text


def ordered_units(units: pd.DataFrame) -> pd.DataFrame:
    """``units`` in the table's order: by :data:`TABLE_ORDER` of the displayed flag, then by
    name.

    >>> units = pd.DataFrame({"unit": ["A", "B", "C", "D"], "n": [50, 60, 5, 70],
    ...                       "events": [20, 30, 2, 12], "flag": ["within", "alert_low",
    ...                       "alarm_high", "alarm_high"]})
    >>> ordered_units(units)["unit"].tolist()
    ['D', 'B', 'A', 'C']
    """
    rank = display_flags(units).map({flag: i for i, flag in enumerate(TABLE_ORDER)})
    keys = pd.DataFrame({"rank": rank.fillna(len(TABLE_ORDER)).to_numpy(),
                         "unit": units["unit"].astype(str).to_numpy()})
    order = keys.sort_values(["rank", "unit"], kind="mergesort").index.to_numpy()
    return units.iloc[order]


def flag_counts(result: FunnelResult) -> dict[str, int]:
    """Units per listed flag (:data:`TABLE_ORDER`): what the cards, the funnel plot's
    summary and the table each count (units with hidden counts by their own flag)."""
    counts = display_flags(result.units).value_counts()
    return {flag: int(counts.get(flag, 0)) for flag in TABLE_ORDER}


def shown_flags(result: FunnelResult) -> pd.Series:
    """Counts of each flag among the units drawn (units with hidden counts are not drawn)."""
    units = result.units
    return units.loc[~suppressed_units(units), "flag"].value_counts()


def undrawn_flags(result: FunnelResult) -> dict[str, int]:
    """Listed flags of units not drawn (their counts are hidden), per flag."""
    units = result.units
    counts = display_flags(units)[suppressed_units(units)].value_counts()
    return {flag: int(counts.get(flag, 0)) for flag in TABLE_ORDER if flag != HIDDEN_FLAG}


def _pct(value: float, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


#: Unit of a time-to-event outcome's rates (events per 100 person-years).
RATE_UNIT = "per 100 person-years"


def _value(value: float, measure: str = "proportion", digits: int = 1) -> str:
    """A proportion as a percentage, or a rate (events per person-year) per 100 person-years."""
    if measure != "rate":
        return _pct(value, digits)
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f} {RATE_UNIT}"


def cusum_outcome_label(result: CusumResult) -> str:
    """What the CUSUM charts: the outcome, or a time-to-event outcome's 12-month indicator."""
    name = outcome_label(result.outcome, short=True)
    if result.chart_outcome and result.chart_outcome != result.outcome:
        return f"{name} within 12 months (procedures with 12 months of follow-up or earlier death)"
    return name


def _p_text(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _hidden_note(count: int, unit: str) -> str:
    word = unit_name(unit) if count == 1 else unit_name(unit, plural=True)
    return (f"{count} {word} with fewer than {label()[1:]} cases or events not plotted "
            "(counts shown as " + label() + " in the table)")


# ----------------------------------------------------------------------------------- funnel
#: The global filter (query key) a unit column stands for.
UNIT_FILTER_KEYS = {"facility_id": "facility", "operator_id": "operator"}


def unit_point_ids(units, unit: str) -> list[str]:
    """Plotly point ids that make a click on a unit's point set the unit's global filter
    (:mod:`dashboard.drilldown`).

    >>> unit_point_ids(["FAC-009"], "facility_id")
    ['facility=FAC-009']
    """
    from dashboard.drilldown import point_id

    key = UNIT_FILTER_KEYS.get(unit, "facility")
    return [point_id(**{key: str(name)}) for name in units]


def funnel_figure(result: FunnelResult | None) -> go.Figure:
    """Each unit's rate (or O/E × target) against volume, with smooth 95%/99.8% limits.

    Suppressed units are omitted (their position would reveal the count); units below the minimum
    volume are grey open circles; flags use an Okabe–Ito colour and a marker shape each.
    """
    if result is None or result.units.empty:
        return empty_figure()
    units = result.units
    hidden = suppressed_units(units)
    shown = units[~hidden]
    if shown.empty:
        return empty_figure(f"Every {unit_name(result.unit)} has {range_text()} cases or "
                            "events: nothing can be shown.")
    # The curves span the shown units' volumes only (as funnel_data spans all of them), so
    # their extent reveals no hidden unit's n.
    limits = limit_curves(result, 0.5 * float(shown["plot_n"].min()),
                          1.1 * float(shown["plot_n"].max()))
    traces: list[dict] = []
    for level, (name, dash) in LIMIT_STYLES.items():
        part = limits[np.isclose(limits["level"], level)]
        for bound, show in (("high", True), ("low", False)):
            traces.append({"type": "scatter", "x": part["n"].to_numpy(),
                           "y": (100 * part[bound]).to_numpy(), "mode": "lines", "name": name,
                           "legendgroup": name, "showlegend": show, "hoverinfo": "skip",
                           "line": {"color": "#444444", "dash": dash, "width": 1.3}})
    x_range = [0.0, float(limits["n"].max())]
    traces.append({"type": "scatter", "x": x_range, "y": [100 * result.target] * 2,
                   "mode": "lines", "line": {"color": OKABE_ITO["black"], "width": 1.5},
                   "name": f"Target {_value(result.target, result.measure)} "
                           f"({result.target_source} rate)",
                   "hoverinfo": "skip"})
    for flag, (name, colour, symbol) in FLAG_STYLES.items():
        rows = shown[shown["flag"] == flag]
        if rows.empty:
            continue
        traces.append({
            "type": "scatter", "x": rows["plot_n"].to_numpy(),
            "y": (100 * rows["plot_rate"]).to_numpy(), "mode": "markers", "name": name,
            "marker": {"color": colour, "symbol": symbol, "size": 11,
                       "line": {"width": 1,
                                "color": colour if symbol.endswith("open") else "white"}},
            "hovertext": [_funnel_hover(row, result.adjusted, result.measure)
                          for row in rows.itertuples()],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "ids": unit_point_ids(rows["unit"], result.unit),  # a click filters to the unit
        })
    outcome = outcome_label(result.outcome, short=True)
    if result.measure == "rate":
        x_title = ("Effective person-years: expected events ÷ target rate" if result.adjusted
                   else "Person-years at risk")
        y_title = (f"{'Risk-adjusted ' + outcome.lower() if result.adjusted else outcome} "
                   f"rate{': O/E × target' if result.adjusted else ''} ({RATE_UNIT})")
    elif result.adjusted:
        x_title = "Effective volume: expected events ÷ target (procedures)"
        y_title = f"Risk-adjusted {outcome.lower()}: O/E × target (%)"
    else:
        x_title = "Procedures with the outcome recorded (n)"
        y_title = f"{outcome} rate (%)"
    tops = [2.0 * result.target] + list(shown["plot_rate"])
    y_max = 115.0 * max(tops)
    if result.measure != "rate":
        y_max = min(100.0, y_max)
    layout = {"xaxis": {"title": {"text": x_title}, "rangemode": "tozero"},
              "yaxis": {"title": {"text": y_title}, "range": [0, y_max]}}
    if hidden.any():
        layout["annotations"] = [_hidden_annotation(int(hidden.sum()), result.unit)]
    return build_figure(traces, layout, 460)


def _hidden_annotation(n_hidden: int, unit: str) -> dict:
    """The note, top right, that some units are left out of a figure (suppressed)."""
    return {"text": _hidden_note(n_hidden, unit), "showarrow": False, "xref": "paper",
            "yref": "paper", "x": 1, "y": 0.98, "xanchor": "right",
            "font": {"size": 12, "color": "#555555"}}


def _funnel_hover(row, adjusted: bool, measure: str = "proportion") -> str:
    parts = [f"<b>{plain_text(row.unit)}</b>",
             f"n {format_count(row.n)} · events {format_count(row.events)}"]
    if is_small([row.n])[0] or is_small([row.events])[0]:
        parts.append("rate suppressed (" + label() + ")")
    else:
        parts.append(f"rate {_value(row.rate, measure)} · expected {row.expected:,.1f} · "
                     f"O/E {row.oe:.2f}")
        if adjusted:
            parts.append(f"risk-adjusted rate {_value(row.plot_rate, measure)}")
    parts.append(flag_label(row.flag))
    return "<br>".join(parts)


def funnel_summary(result: FunnelResult | None) -> str:
    """The funnel plot's text alternative (one sentence)."""
    if result is None or result.units.empty:
        return "No units to plot."
    units = result.units
    hidden = suppressed_units(units)
    flags = flag_counts(result)
    plural = unit_name(result.unit, plural=True)
    words = {"alarm_high": "alarm(s) above", "alert_high": "alert(s) above",
             "alert_low": "alert(s) below", "alarm_low": "alarm(s) below"}
    counts = ", ".join(f"{int(flags.get(f, 0))} {w}" for f, w in words.items())
    undrawn = sum(c for f, c in undrawn_flags(result).items() if f in words)
    if undrawn:
        counts += f" ({undrawn} of these with counts hidden, not drawn)"
    scale = "risk-adjusted rates (O/E × target)" if result.adjusted else "crude rates"
    volume = "person-years at risk" if result.measure == "rate" else "volume"
    text = (f"Funnel plot of {int((~hidden).sum())} {plural}' {scale} of "
            f"{outcome_label(result.outcome, short=True).lower()} against {volume}, with the "
            f"target {_value(result.target, result.measure)} and 95% and 99.8% limits: "
            f"{counts}.")
    if hidden.any():
        text += f" {_hidden_note(int(hidden.sum()), result.unit)}."
    return text


# ------------------------------------------------------------------------------ caterpillar
def caterpillar_figure(table: pd.DataFrame | None, unit: str = "facility_id",
                       outcome: str = "cement_leakage") -> go.Figure:
    """O/E with its 95% CI per unit, sorted by O/E, with a reference line at 1.

    ``table`` is :func:`analysis.quality.caterpillar`'s result; suppressed units are omitted.
    """
    if table is None or table.empty:
        return empty_figure()
    hidden = suppressed_units(table, ("n", "observed"))
    shown = table[~hidden].reset_index(drop=True)
    if shown.empty:
        return empty_figure(f"Every unit has {range_text()} cases, events or non-events: "
                            "O/E suppressed.")
    above = shown["low"] > 1.0
    below = shown["high"] < 1.0
    groups = (("CI above 1", above, OKABE_ITO["vermillion"], "triangle-up"),
              ("CI includes 1", ~above & ~below, OKABE_ITO["blue"], "circle"),
              ("CI below 1", below, OKABE_ITO["bluish_green"], "triangle-down"))
    traces: list[dict] = []
    for name, mask, colour, symbol in groups:
        rows = shown[mask]
        if rows.empty:
            continue
        traces.append({
            "type": "scatter", "x": [plain_text(u) for u in rows["unit"]],
            "y": rows["oe"].to_numpy(), "mode": "markers", "name": name,
            "marker": {"color": colour, "symbol": symbol, "size": 9},
            "error_y": {"type": "data", "symmetric": False,
                        "array": (rows["high"] - rows["oe"]).to_numpy(),
                        "arrayminus": (rows["oe"] - rows["low"]).to_numpy(), "color": colour,
                        "thickness": 1.3, "width": 0},
            "hovertext": [f"<b>{plain_text(r.unit)}</b><br>O/E {r.oe:.2f} (95% CI "
                          f"{r.low:.2f}–{r.high:.2f})<br>observed {format_count(r.observed)}"
                          f" · expected {r.expected:,.1f} · n {format_count(r.n)}"
                          for r in rows.itertuples()],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "ids": unit_point_ids(rows["unit"], unit),  # a click filters to the unit
        })
    name = outcome_label(outcome, short=True).lower()
    layout = {
        "shapes": [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y",
                    "y0": 1.0, "y1": 1.0,
                    "line": {"color": OKABE_ITO["black"], "dash": "dash", "width": 1.2}}],
        "xaxis": {"categoryorder": "array",
                  "categoryarray": [plain_text(u) for u in shown["unit"]],
                  "showticklabels": len(shown) <= 60, "tickangle": -60,
                  "title": {"text": f"{unit_name(unit, plural=True).capitalize()}, sorted by "
                                    "O/E"}},
        "yaxis": {"title": {"text": f"Observed / expected {name} (ratio)"},
                  "rangemode": "tozero"}}
    if hidden.any():
        layout["annotations"] = [_hidden_annotation(int(hidden.sum()), unit)]
    return build_figure(traces, layout, 400)


def caterpillar_summary(table: pd.DataFrame | None, unit: str = "facility_id") -> str:
    if table is None or table.empty:
        return "No units to plot."
    hidden = suppressed_units(table, ("n", "observed"))
    shown = table[~hidden]
    plural = unit_name(unit, plural=True)
    text = (f"Observed/expected ratios with 95% confidence intervals for {len(shown)} {plural}, "
            f"sorted from lowest to highest: {int((shown['low'] > 1).sum())} with the whole "
            f"interval above 1 and {int((shown['high'] < 1).sum())} with it below 1.")
    if hidden.any():
        text += f" {_hidden_note(int(hidden.sum()), unit)}."
    return text


# ------------------------------------------------------------------------------------ CUSUM
def _display_index(chart: pd.DataFrame, max_points: int = CUSUM_MAX_POINTS) -> np.ndarray:
    """Rows to draw: everything for short series, else per-bucket extremes plus every signal."""
    n = len(chart)
    if n <= max_points:
        return np.arange(n)
    buckets = np.arange(n) * (max_points // 4) // n
    keep = {0, n - 1}
    frame = pd.DataFrame({"b": buckets, "upper": chart["upper"].to_numpy(),
                          "lower": chart["lower"].to_numpy(), "vlad": chart["vlad"].to_numpy()})
    grouped = frame.groupby("b")
    for column, how in (("upper", "idxmax"), ("lower", "idxmin"), ("vlad", "idxmax"),
                        ("vlad", "idxmin")):
        keep.update(getattr(grouped[column], how)().tolist())
    signals = np.flatnonzero(chart["signal_upper"].to_numpy() | chart["signal_lower"].to_numpy())
    keep.update(signals.tolist())
    return np.array(sorted(keep))


def _day_text(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)


def cusum_figure(result: CusumResult | None) -> go.Figure:
    """Upper and lower risk-adjusted CUSUM with their limits and signals, and the VLAD below.

    Long series are thinned for display (per-bucket extremes and all signals are kept).
    """
    if result is None or result.chart.empty:
        return empty_figure("No unit selected.")
    chart = result.chart
    index = _display_index(chart)
    part = chart.iloc[index]
    # Dates as "YYYY-MM-DD" text: half the bytes of ISO timestamps in the JSON response (three
    # traces share the x values; a long series sends thousands of them).
    x = _day_text(part["procedure_date"])
    case = index + 1
    # No title above the first panel: the legend sits there and names its lines.
    layout, axes = subplot_grid(2, 1, shared_xaxes=True, vertical_spacing=0.12,
                                row_heights=[0.6, 0.4],
                                subplot_titles=["", "VLAD: cumulative expected − observed "
                                                    "events"])
    top, bottom = axes[(1, 1)], axes[(2, 1)]
    hover = "%{x|%Y-%m-%d}, case %{customdata:,}: %{y:.2f}<extra>%{fullData.name}</extra>"
    traces: list[dict] = [
        {"type": "scatter", **top, "x": x, "y": part["upper"].to_numpy(), "mode": "lines",
         "name": "Upper CUSUM", "line": {"color": OKABE_ITO["vermillion"], "width": 1.4},
         "customdata": case, "hovertemplate": hover},
        {"type": "scatter", **top, "x": x, "y": part["lower"].to_numpy(), "mode": "lines",
         "name": "Lower CUSUM", "line": {"color": OKABE_ITO["bluish_green"], "width": 1.4},
         "customdata": case, "hovertemplate": hover},
    ]
    x_span = [x[0], x[-1]] if len(x) else []
    h_up, h_low = result.threshold_upper, result.threshold_lower
    for value, name in ((h_up, f"Limit h⁺ = {h_up:.2f}"),
                        (-h_low, f"Limit −h⁻ (h⁻ = {h_low:.2f})")):
        traces.append({"type": "scatter", **top, "x": x_span, "y": [value, value],
                       "mode": "lines", "name": name,
                       "line": {"color": "#444444", "dash": "dash", "width": 1.2},
                       "hoverinfo": "skip"})
    for column, value, name, colour, symbol in (
        ("signal_upper", "upper", "Signal: deterioration", OKABE_ITO["vermillion"], "triangle-up"),
        ("signal_lower", "lower", "Signal: improvement", OKABE_ITO["bluish_green"],
         "triangle-down"),
    ):
        hits = part[part[column].to_numpy()]
        if hits.empty:
            continue
        traces.append({"type": "scatter", **top, "x": _day_text(hits["procedure_date"]),
                       "y": hits[value].to_numpy(), "mode": "markers", "name": name,
                       "marker": {"color": colour, "symbol": symbol, "size": 11,
                                  "line": {"width": 1, "color": "black"}},
                       "customdata": index[part[column].to_numpy()] + 1,
                       "hovertemplate": hover})
    traces.append({"type": "scatter", **bottom, "x": x, "y": part["vlad"].to_numpy(),
                   "mode": "lines", "name": "VLAD",
                   "line": {"color": OKABE_ITO["blue"], "width": 1.4}, "customdata": case,
                   "hovertemplate": hover})
    layout["shapes"] = [{"type": "line", "xref": f"{bottom['xaxis']} domain", "x0": 0, "x1": 1,
                         "yref": bottom["yaxis"], "y0": 0, "y1": 0,
                         "line": {"color": "#888888", "width": 1}}]
    axis_layout(layout, top["yaxis"]).update(
        title={"text": "CUSUM (log-likelihood ratio)"}, zeroline=True)
    axis_layout(layout, bottom["yaxis"]).update(title={"text": "Events (expected − observed)"})
    axis_layout(layout, bottom["xaxis"]).update(
        title={"text": "Procedure date (cases in date order)"})
    return build_figure(traces, layout, 560)


def cusum_summary(result: CusumResult | None) -> str:
    if result is None or result.chart.empty:
        return "No unit selected."
    signals = result.signals["direction"].value_counts()
    chart = result.chart
    first, last = (pd.Timestamp(chart["procedure_date"].iloc[i]).strftime("%Y-%m-%d")
                   for i in (0, -1))
    vlad = float(chart["vlad"].iloc[-1])
    trend = "fewer" if vlad > 0 else "more"
    return (f"Risk-adjusted CUSUM and VLAD of {cusum_outcome_label(result).lower()} for "
            f"{unit_name(result.unit)} {result.unit_id} over {result.n:,} cases from {first} to {last}: {int(signals.get('upper', 0))} upper "
            f"(deterioration) and {int(signals.get('lower', 0))} lower (improvement) signals; the "
            f"VLAD ends at {vlad:+.1f}, i.e. {abs(vlad):.1f} {trend} events than expected.")


def false_alarm_text(result: CusumResult) -> str:
    """The in-control probability of a false signal over the unit's series, in words."""
    up, low = result.false_alarm_upper, result.false_alarm_lower
    if not (np.isfinite(up) and np.isfinite(low)):
        return "The chance of a false signal over this series could not be computed."
    text = (f"If this {unit_name(result.unit)} performed exactly on target, the chance of at "
            f"least one false signal over its {result.n:,} charted cases would be "
            f"{100 * up:.1f}% for the upper chart and {100 * low:.1f}% for the lower chart "
            f"(at most {100 * min(1.0, up + low):.1f}% for either).")
    if np.isfinite(result.false_alarm):
        text += (f" The limits were chosen for at most {100 * result.false_alarm:g}% "
                 "together.")
    return text


def cusum_text(result: CusumResult, arl_capped: bool = False) -> str:
    """How the CUSUM limits were chosen, in words (``arl_capped`` is no longer used)."""
    adjusted = ("expected risks from the case-mix model" if result.adjusted
                else "the pooled rate as every case's expected risk (crude)")
    text = ""
    if result.chart_outcome and result.chart_outcome != result.outcome:
        text += ("New fracture is a time-to-event outcome: the chart follows \"new fracture "
                 "within 12 months\" among procedures whose status at 12 months is known "
                 "(follow-up of at least 365 days, or death before then), so every case has "
                 "the same window; recent procedures enter once their year has passed. ")
    text += (f"Each case adds a log-likelihood-ratio weight ({adjusted}); the upper chart looks "
             f"for a {result.odds_ratio:g}-fold increase in the odds of "
             f"{cusum_outcome_label(result).lower()}, the lower chart for a "
             f"{result.odds_ratio:g}-fold decrease. A chart signals when it crosses its decision "
             "limit h and then restarts at 0. ")
    limits = f"h⁺ = {result.threshold_upper:.2f} and h⁻ = {result.threshold_lower:.2f}"
    if result.threshold_method == "false_alarm":
        text += (f"The limits {limits} were computed from this unit's own case mix so that, "
                 "if it performed on target, the probability of any false signal over its "
                 f"{result.n:,} cases is at most {100 * result.false_alarm:g}% "
                 f"({100 * result.false_alarm / 2:g}% per chart; run-length distribution by "
                 "a Markov-chain approximation, Brook & Evans 1972). Average run lengths: "
                 f"{result.arl_upper:,.0f} and {result.arl_lower:,.0f} cases.")
    elif result.threshold_method in ("markov", "simulated"):
        how = ("computed" if result.threshold_method == "markov" else "simulated")
        arls = ("ARLs by a Markov-chain approximation of the run length, Brook & Evans 1972"
                if result.threshold_method == "markov" else "simulated ARLs")
        text += (f"The limits {limits} were {how} from this unit's own case mix to "
                 f"give an in-control average run length (ARL) of {result.in_control_arl:,.0f} "
                 f"cases ({arls}: {result.arl_upper:,.0f} and {result.arl_lower:,.0f}).")
    else:
        text += f"The limits {limits} were given (not simulated), not chosen for this unit."
    text += (" The VLAD rises when the unit has fewer events than expected and falls when it "
             "has more.")
    return text


# ------------------------------------------------------------------------------ choosing units
def chartable(units: pd.DataFrame) -> np.ndarray:
    """Units whose case-level CUSUM may be shown (not suppressed and tested)."""
    return ~suppressed_units(units) & (units["flag"] != "low_volume").to_numpy()


def default_cusum_unit(result: FunnelResult | None):
    """The unit to chart first: the most extreme |z| among alarms, else among all tested units."""
    if result is None or result.units.empty:
        return None
    units = result.units[chartable(result.units)]
    if units.empty:
        return None
    alarms = units[units["flag"].astype(str).str.startswith("alarm")]
    pool = alarms if not alarms.empty else units
    return pool.loc[pool["z"].abs().idxmax(), "unit"]


def cusum_options(result: FunnelResult | None) -> list[dict]:
    """Dropdown options: every unit; suppressed or low-volume ones disabled."""
    if result is None or result.units.empty:
        return []
    units = result.units
    ok = chartable(units)
    hidden = suppressed_units(units)
    options = []
    for row, can, small in zip(units.itertuples(), ok, hidden, strict=True):
        if can:
            text = f"{row.unit} — {flag_label(row.flag).lower()}"
        elif small:
            text = f"{row.unit} (fewer than {label()[1:]} cases or events: not charted)"
        else:
            text = f"{row.unit} (low volume: not charted)"
        options.append({"label": text, "value": str(row.unit), "disabled": not can})
    return options


# ------------------------------------------------------------------------------------ table
TABLE_LABELS = {
    "unit": "Unit", "n": "n", "events": "Events", "rate": "Rate %", "expected": "Expected",
    "oe": "O/E", "oe_ci": "O/E 95% CI", "z": "z", "flag": "Flag", "p_adjusted": "BH-adj. p",
    "completeness": "Recorded %",
}
COMPLETENESS_TEXT = {
    "non_response": "Recorded %: of the unit's patients with a baseline pain score, the share "
                    "with a month-1 score (the others, deaths included, are left out of the "
                    "non-response rate).",
}
COMPLETENESS_DEFAULT = "Recorded %: the share of the unit's records with this outcome recorded."


def table_labels(result: FunnelResult | None) -> dict[str, str]:
    """:data:`TABLE_LABELS`, with the rate column per 100 person-years for a time-to-event
    outcome."""
    labels = dict(TABLE_LABELS)
    if result is not None and result.measure == "rate":
        labels["rate"] = "Rate /100 PY"
        labels["expected"] = "Expected (person-time)"
    return labels


def completeness_note(outcome: str) -> str:
    """What the table's "Recorded %" column means for `outcome`."""
    return COMPLETENESS_TEXT.get(outcome, COMPLETENESS_DEFAULT)


def units_table(result: FunnelResult | None,
                completeness: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per unit, flagged units first, with suppression applied.

    The order is that of :data:`TABLE_ORDER`: alarms (high, then low), alerts, units within
    the limits, units not tested (low volume), then units left out of the comparison (listed
    as hidden, without a flag); alphabetical within each group. A unit whose counts are hidden
    is listed by its own flag, marked "(counts hidden)" (the small-unit rule of the module). It is an order of flags, not
    a ranking of units, and the counts per group agree with the page's cards and the funnel
    plot's summary (:func:`flag_counts`).

    O/E CIs come from :func:`analysis.quality.oe_ratio` (exact below 10 events, Byar from 10),
    the same as the caterpillar plot. With `completeness`
    (:func:`analysis.quality.outcome_completeness`) a ``completeness`` column (percent) is
    added; it is hidden when the unit's eligible or missing records number 1 to the
    suppression threshold (the share would reveal them).
    """
    columns = ["unit", "n", "events", "rate", "expected", "oe", "oe_ci", "z", "flag",
               "p_adjusted"]
    if result is None or result.units.empty:
        return pd.DataFrame(columns=columns)
    units = ordered_units(result.units)
    cis = []
    hidden = suppressed_units(units)
    for row, small in zip(units.itertuples(), hidden, strict=True):
        if not small and row.expected > 0:
            ratio = oe_ratio(int(row.events), float(row.expected))
            cis.append(f"{ratio.low:.2f}–{ratio.high:.2f}")
        else:
            cis.append(None)
    table = pd.DataFrame({
        "unit": units["unit"].astype(str).to_numpy(),
        "n": units["n"].to_numpy(),
        "events": units["events"].to_numpy(),
        "rate": (100 * units["rate"]).round(1).to_numpy(),
        "expected": units["expected"].round(1).to_numpy(),
        "oe": units["oe"].round(2).to_numpy(),
        "oe_ci": cis,
        "z": units["z"].round(2).to_numpy(),
        "flag": [table_flag(f, small) for f, small in zip(display_flags(units), hidden,
                                                           strict=True)],
        "p_adjusted": [_p_text(p) for p in units["p_adjusted"]],
    })
    shown = suppress_table(table, ["n", "events"],
                           ["rate", "expected", "oe", "oe_ci", "z", "p_adjusted"])
    # Few non-events (n − events of 1..threshold): n and events are both large, but together
    # they give the small complement, so the events are withheld too.
    complement = is_small(table["n"] - table["events"]) & ~is_small(table["events"])
    shown["events"] = shown["events"].where(~complement, "–")
    for column in ("rate", "expected", "oe", "oe_ci", "z", "p_adjusted"):
        shown[column] = shown[column].astype(object).where(~hidden, None)
    if completeness is not None:
        found = completeness.assign(unit=completeness["unit"].astype(str)).set_index("unit")
        found = found.reindex(table["unit"])
        eligible = found["n_eligible"].to_numpy(dtype=float)
        missing = eligible - found["n_recorded"].to_numpy(dtype=float)
        small_share = is_small(eligible) | is_small(missing) | np.isnan(eligible)
        share = (100 * found["completeness"].to_numpy(dtype=float)).round(1)
        shown["completeness"] = np.where(small_share, None, share).tolist()
    return shown.drop(columns="suppressed")  # "<11" in the count columns says it


# ------------------------------------------------------------------------------------ words
_COUNT_NOTE = re.compile(r"\b(\d[\d,]*)(?= (?:record|missing value|event|non-event))")


def _sanitise_note(note: str) -> str:
    """Model notes may quote small counts (e.g. "3 record(s)"): suppress them."""
    return _COUNT_NOTE.sub(lambda m: format_count(int(m.group(1).replace(",", ""))), note)


def adjustment_text(outcome: str, unit: str, model: RiskModelResult | None = None,
                    adjustment_failed: str | None = None) -> str:
    """Which adjustment is active, in words: the case-mix model (c-statistic, calibration) when
    ``model`` is given, else crude (and why, when adjustment was requested but failed)."""
    name = outcome_label(outcome, short=True).lower()
    if model is None:
        text = (f"Active adjustment: none (crude rates). Every procedure is expected to have "
                f"the pooled rate, so differences in case mix between "
                f"{unit_name(unit, plural=True)} are not taken into account.")
        if outcome in TIME_TO_EVENT:
            text += (" New fracture is compared per person-time: each procedure's expected "
                     "events are its time at risk × the pooled events per person-year.")
        if adjustment_failed:
            text += (" Risk adjustment was requested but is not possible for this selection: "
                     + adjustment_failed)
        return text
    cal = model.calibration
    ratios = cal["observed"] / cal["expected"].where(cal["expected"] > 0)
    c = model.c_statistic
    discrimination = ("weak" if c < 0.6 else "moderate" if c < 0.7 else "good" if c < 0.8
                      else "strong")
    covariates = ("age, sex, etiology, levels treated"
                  + (", procedure (VP/KP: the option is on)" if "procedure" in model.formula
                     else "")
                  + " and prior fractures where recorded"
                  + ("" if "procedure" in model.formula
                     else "; not the procedure, which is the unit's own choice"))
    if model.reference_n is None:
        fitted = f"on the {format_count(model.n)} selected procedures with the outcome recorded"
    else:
        fitted = (f"once on all {format_count(model.reference_n)} procedures with the outcome "
                  f"recorded (the reference population) and applied to the "
                  f"{format_count(model.n)} selected ones, its intercept shifted so that their "
                  "expected events equal their observed events")
    if model.family == "poisson":
        text = (f"Active adjustment: risk-adjusted (indirect standardisation) on the "
                f"person-time scale. Each procedure's expected number of {name}s is its time "
                "at risk (to the first new fracture, death or last contact, whichever comes "
                f"first) × its rate from a Poisson case-mix model ({covariates}; log "
                f"person-time as offset) fitted {fitted}; a unit's expected count E is the sum "
                "over its procedures and its plotted value is O/E × target, so a unit is not "
                "flagged for following its patients longer or shorter. Calibration in this "
                "data: observed/expected events across tenths of predicted rate range from "
                f"{np.nanmin(ratios):.2f} to {np.nanmax(ratios):.2f} (1 is perfect; checked "
                "on the fitting data, so optimistic). Adjustment removes differences in the "
                "recorded case mix only.")
    else:
        text = (f"Active adjustment: risk-adjusted (indirect standardisation). Each "
                f"procedure's expected risk of {name} comes from a logistic case-mix model "
                f"({covariates}) fitted {fitted}; "
                f"a unit's expected count E is the sum of its risks and its plotted value is "
                f"O/E × target. The model's c-statistic is {c:.2f} "
                f"({discrimination} discrimination; 0.5 is chance, 1 perfect). Calibration in "
                f"this data: observed/expected events across tenths of predicted risk range "
                f"from {np.nanmin(ratios):.2f} to {np.nanmax(ratios):.2f} (1 is perfect; "
                "checked on the fitting data, so optimistic). Adjustment removes differences "
                "in the recorded case mix only.")
    notes = [_sanitise_note(n) for n in model.notes]
    if notes:
        text += " Model notes: " + "; ".join(notes) + "."
    return text


def interpretation(result: FunnelResult, model: RiskModelResult | None = None,
                   adjustment_failed: str | None = None) -> list[str]:
    """The page's explanation, computed from the results: adjustment (see
    :func:`adjustment_text`), target, over-dispersion, flags and what an alert or alarm means.
    One string per paragraph."""
    return [adjustment_text(result.outcome, result.unit, model if result.adjusted else None,
                            adjustment_failed)] + funnel_text(result)


def funnel_text(result: FunnelResult) -> list[str]:
    """Target, over-dispersion and flags in words (the paragraphs after the adjustment)."""
    units = result.units
    plural = unit_name(result.unit, plural=True)
    outcome = outcome_label(result.outcome, short=True).lower()
    paragraphs = []
    # 2. target and over-dispersion
    hidden = suppressed_units(units)
    left_out = int((units["flag"] == HIDDEN_FLAG).sum())
    listed = display_flags(units)
    tested = ~listed.isin(["low_volume", HIDDEN_FLAG])
    pooled = units[units["flag"] != HIDDEN_FLAG]
    if result.measure == "rate":
        text = (f"Target: {_value(result.target, 'rate')}, the {result.target_source} {outcome} "
                f"rate (events per person-time at risk) of the {len(pooled)} {plural} compared. "
                "New fracture is a time-to-event outcome: each unit's observed events "
                "are compared with the events expected over its procedures' time at risk (to "
                "the first new fracture, death or last contact; a death recorded after the "
                "last contact does not extend it), against Poisson limits, so longer follow-up "
                "is not mistaken for more fractures. ")
    else:
        text = (f"Target: {_pct(result.target)}, the {result.target_source} {outcome} rate of "
                f"the {len(pooled)} {plural} compared. ")
    text += (f"Units with fewer than {result.min_volume} procedures are shown as low "
             "volume and not tested. The limits, the z-scores, the p-values and the flags come "
             f"from one {result.distribution} model, so a unit is outside the 95% (99.8%) "
             "limits exactly when its p-value is below 0.05 (0.002). ")
    if left_out:
        text += (f"{left_out} {plural if left_out != 1 else unit_name(result.unit)} with "
                 f"{range_text()} cases or events (together, too) are left out of the target "
                 "and the limits: including them would let their counts be worked out. ")
    if not np.isfinite(result.phi):
        text += "Over-dispersion cannot be estimated (fewer than 2 tested units). "
    else:
        scale = "rate (per person-year)" if result.measure == "rate" else "proportion"
        text += (f"Over-dispersion: φ = {result.phi:.2f} (1 means chance variation only; "
                 f"χ² test p {_p_text(result.phi_p_value)}), between-unit variance "
                 f"τ² = {result.tau2:.3g} on the {scale} scale. ")
    significant = (np.isfinite(result.phi) and result.phi > 1
                   and result.phi_p_value < 0.05)
    if result.overdispersion == "none":
        text += ("Active over-dispersion model: none (switched off): the limits allow for "
                 "chance alone.")
        if significant:
            text += (f" The {plural} vary more than chance predicts; the additive (default) or "
                     "multiplicative model widens the limits for that.")
    elif result.overdispersion_applied:
        text += (f"Active over-dispersion model: {result.overdispersion}, applied because the "
                 "χ² test shows over-dispersion: "
                 + (f"limits widened by √φ = {math.sqrt(result.phi):.2f}."
                    if result.overdispersion == "multiplicative"
                    else "τ² is added to each unit's variance (random-effects limits).")
                 + " Flags then mean \"unusual even allowing for the usual spread between "
                 f"{plural}\". Choose \"None\" to see the limits for chance alone.")
    else:
        text += (f"Active over-dispersion model: none. The {result.overdispersion} model is "
                 "selected but not applied because the over-dispersion is not significant "
                 "(φ ≤ 1 or p ≥ 0.05): the limits allow for chance alone.")
    paragraphs.append(text)
    # 3. flags and what they mean
    n_tested = int(tested.sum())
    flags = flag_counts(result)
    count = {f: int(flags.get(f, 0)) for f in FLAG_STYLES}
    text = (f"Of {n_tested} tested {plural}, {count['alarm_high']} are above and "
            f"{count['alarm_low']} below the 99.8% limits (alarms), and {count['alert_high']} "
            f"above and {count['alert_low']} below the 95% limits only (alerts). An alert "
            "(outside 95%) or alarm (outside 99.8%) is a prompt to look at the data, the case "
            "mix and the processes of care — not a verdict on quality. With "
            f"{n_tested} units, about {0.05 * n_tested:.1f} alerts and {0.002 * n_tested:.2f} "
            "alarms are expected by chance alone even if every unit performed at the target, so "
            "the table also gives Benjamini–Hochberg adjusted p-values (false discovery rate "
            "across all tested units).")
    compared = int((hidden & (listed != HIDDEN_FLAG).to_numpy()).sum())
    if compared:
        text += (f" {compared} {plural if compared != 1 else unit_name(result.unit)} with "
                 f"{range_text()} cases, events or non-events "
                 f"{'are' if compared != 1 else 'is'} compared and counted by "
                 "flag, but not plotted: the table lists the flag with the counts hidden "
                 f"({label()}) and no rate, O/E or p-value.")
    paragraphs.append(text)
    return paragraphs
