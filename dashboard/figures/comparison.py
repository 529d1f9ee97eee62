"""Analyses, figures and display tables of the "VP vs KP statistics" page.

Pure: no Dash callbacks and no data access. The page hands in filtered records (for the
analysis bundles below) or the bundles themselves (for the builders). Every builder applies
small-cell suppression itself (counts 1–10 shown as "<11", the estimates resting on them
hidden), so the figures, hover texts, tables, CSV exports and the report agree.

The two analysis bundles are what the page caches on disk: :class:`BaselineResult` (Table 1
unweighted and IPTW-weighted, balance, propensity-score histogram counts, weight summary) and
the frame of :func:`comparison_analysis` (``compare_procedures`` plus event counts). They hold
aggregates only — never a record-level value (the propensity scores become bin counts).
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.adjustment import SMD_THRESHOLD, propensity_weights
from analysis.comparison import (
    DEFAULT_CLUSTER,
    compare_procedures,
    fracture_time_event,
    minimum_detectable_differences,
)
from analysis.errors import AnalysisError
from analysis.horizon import HORIZON_OUTCOMES, horizon_time_event
from analysis.table_one import table_one
from dashboard.figures.common import (
    OKABE_ITO,
    PROCEDURE_COLOURS,
    TEXT_COLOURS,
    base_layout,
    empty_figure,
    legend_below_toolbar,
    top_margin_for_titles,
)
from dashboard.suppression import format_count, is_small, label, partition_suppression

VP, KP = "vertebroplasty", "kyphoplasty"
PROCEDURES = (VP, KP)
MINUS = "−"
#: Confidence levels offered by the page (the MDD always uses a two-sided 5% level).
LEVELS = {0.9: "90%", 0.95: "95%", 0.99: "99%"}
DEFAULT_LEVEL = 0.95
#: Width of the propensity-score histogram bins.
BIN_WIDTH = 0.025
MDD_POWER, MDD_ALPHA = 0.8, 0.05

OUTCOME_LABELS = {
    "pain_responder": "Pain responder",
    "pain_month1": "Pain at month 1",
    "cement_leakage": "Cement leakage",
    "pulmonary_embolism": "Cement embolism",
    "adjacent_fracture_12m": "New fracture by 12 months (cumulative incidence)",
    "duration_min": "Procedure duration",
    "cost": "Procedure cost",
    "time_to_fracture": "Time to new fracture",
}
VARIABLE_LABELS = {
    "n": "Procedures, n",
    "age": "Age (years), mean (SD)",
    "sex": "Sex, n (%)",
    "etiology": "Etiology, n (%)",
    "levels_treated": "Levels treated, mean (SD)",
    "index_region": "Region of the index level, n (%)",
    "fracture_age_weeks": "Fracture age (weeks), median [IQR]",
    "prior_fractures": "Prior fractures, median [IQR]",
    "country": "Country, n (%)",
    "pain_baseline": "Baseline pain (0–10), mean (SD)",
    "setting": "Setting, n (%)",
}
COVARIATE_LABELS = {
    "age": "Age",
    "sex": "Sex",
    "etiology": "Etiology",
    "levels_treated": "Levels treated",
    "country": "Country",
    "fracture_age_weeks": "Fracture age",
    "prior_fractures": "Prior fractures",
    "index_region": "Region of the index level",
    "pain_baseline": "Baseline pain",
    "setting": "Setting",
}
ESTIMATE_STYLES = {  # estimate type -> (legend name, colour, marker symbol, vertical offset)
    "unadjusted": ("Unadjusted", OKABE_ITO["black"], "circle-open", 0.22),
    "adjusted": ("Adjusted (model-based)", OKABE_ITO["vermillion"], "diamond", 0.0),
    "iptw": ("Adjusted (IPTW)", OKABE_ITO["bluish_green"], "square", -0.22),
}


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or bool(pd.isna(value))


def signed(value: float, places: int, thousands: bool = False) -> str:
    """``+1.2`` / ``−1.2`` (a true minus sign)."""
    text = f"{value:+,.{places}f}" if thousands else f"{value:+.{places}f}"
    return text.replace("-", MINUS)


def plain(value: float, places: int, thousands: bool = False) -> str:
    """``1.2`` / ``−1.2``; a value that rounds to zero is ``0.0``, never ``−0.0``."""
    value = 0.0 if round(value, places) == 0 else value
    text = f"{value:,.{places}f}" if thousands else f"{value:.{places}f}"
    return text.replace("-", MINUS)


def p_text(p) -> str:
    if _missing(p):
        return "–"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def level_text(level: float) -> str:
    return f"{100 * level:g}%"


def ci_label(level: float, clustered: bool) -> str:
    """``"95% CI, clustered by facility"`` (or ``"95% CI"`` for model-based intervals)."""
    return f"{level_text(level)} CI" + (", clustered by facility" if clustered else "")


def unclustered_outcomes(comparison: pd.DataFrame) -> set[str]:
    """Outcomes whose intervals are model-based although the comparison is clustered (a row
    whose clustered interval could not be computed, e.g. a cumulative incidence "by day N"
    when leaving out one facility removes every record of a procedure; its notes say why);
    their labels must not say "clustered"."""
    if not is_clustered(comparison):
        return set()
    return set(comparison.loc[~comparison["clustered"].astype(bool), "outcome"])


def is_clustered(comparison: pd.DataFrame) -> bool:
    """Whether the comparison's intervals are clustered by facility (rows that could not be
    clustered say so in their notes)."""
    return bool("clustered" in comparison and comparison["clustered"].any())


def currency_of(definition: str) -> str:
    found = re.search(r"\(([A-Z]{3})\)", definition or "")
    return found.group(1) if found else "USD"


_COUNT_NOUNS = (
    r"(?:non-events?|events?|records?|values?|patients?|costed|modelled|"
    r"observations?|deaths?|new fractures?|fractures?|kyphoplast\w*|vertebroplast\w*)"
)
_COUNT_BEFORE_NOUN = re.compile(
    r"(?<![\w.])(?<!than )(?<!least )(\d[\d,]*)(?=\s+" + _COUNT_NOUNS + r"\b)"
)
_FRACTION = re.compile(r"(?<![\w.])(\d[\d,]*)/(\d[\d,]*)(?![\w.])")


def redact_counts(text) -> str:
    """Method and note texts with every count from 1 to the threshold replaced by the label
    (``"<11"`` with the default threshold of 10; :func:`dashboard.suppression.is_small`).

    The analysis layer writes counts into its texts ("3 events in kyphoplasty", "12/40 vs
    7/35"); thresholds ("at least 10 needed", "fewer than 2 values") are left alone.
    """
    if not isinstance(text, str) or not text:
        return "" if _missing(text) else str(text)

    def one(number: str) -> str:
        return label() if is_small([int(number.replace(",", ""))])[0] else number

    text = _FRACTION.sub(lambda m: f"{one(m.group(1))}/{one(m.group(2))}", text)
    return _COUNT_BEFORE_NOUN.sub(lambda m: one(m.group(1)), text)


# --------------------------------------------------------------------------------------------
# Analysis bundles (what the page caches)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """Table 1, balance and propensity-score diagnostics of a selection (aggregates only).

    ``table_one`` is unweighted (with the optional p-values computed, shown only on request),
    ``table_one_weighted`` the IPTW-weighted
    table (None when the propensity model could not be fitted, ``ps_error`` says why).
    ``histogram``: ``procedure, bin_start, bin_end, count`` of the propensity scores.
    """

    table_one: pd.DataFrame
    table_one_weighted: pd.DataFrame | None
    balance: pd.DataFrame | None
    weight_summary: pd.DataFrame | None
    histogram: pd.DataFrame | None
    positivity_warning: str | None
    c_statistic: float
    n_used: int
    n_dropped_missing: int
    formula: str
    ps_error: str | None


def score_histogram(
    scores: pd.Series, procedure: pd.Series, width: float = BIN_WIDTH
) -> pd.DataFrame:
    """Counts of propensity scores per bin of ``width`` on [0, 1], per procedure."""
    edges = np.linspace(0.0, 1.0, int(round(1 / width)) + 1)
    rows = []
    for name in PROCEDURES:
        values = scores[(procedure.astype(str) == name).to_numpy()].dropna().to_numpy(dtype=float)
        counts, _ = np.histogram(values, bins=edges)
        rows += [
            {"procedure": name, "bin_start": lo, "bin_end": hi, "count": int(c)}
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ]
    return pd.DataFrame(rows, columns=["procedure", "bin_start", "bin_end", "count"])


def baseline_analysis(records: pd.DataFrame) -> BaselineResult:
    """Table 1 (unweighted and IPTW-weighted), balance and overlap of ``records``.

    The weights are :func:`analysis.adjustment.propensity_weights` (ATE, stabilised, the
    default covariates): the same weights as the IPTW estimate of the comparison.
    """
    unweighted = table_one(records, p_values=True)
    try:
        ps = propensity_weights(records)
    except (AnalysisError, ValueError) as error:
        return BaselineResult(
            unweighted, None, None, None, None, None, math.nan, 0, 0, "", str(error)
        )
    return BaselineResult(
        table_one=unweighted,
        table_one_weighted=table_one(records, weights=ps),
        balance=ps.balance,
        weight_summary=ps.weight_summary,
        histogram=score_histogram(ps.scores, records["procedure"]),
        positivity_warning=ps.positivity_warning,
        c_statistic=float(ps.c_statistic),
        n_used=int(ps.n_used),
        n_dropped_missing=int(ps.n_dropped_missing),
        formula=ps.formula,
        ps_error=None,
    )


def comparison_analysis(
    records: pd.DataFrame, level: float = DEFAULT_LEVEL, clustered: bool = True
) -> pd.DataFrame:
    """:func:`analysis.comparison.compare_procedures` (adjusted) plus ``events_vp, events_kp``.

    ``clustered``: intervals clustered by facility (``cluster="facility_id"``, the default),
    else model-based (``cluster=None``). Event counts (needed for suppression) are risk × n
    for binary outcomes, the events observed by the horizon for the cumulative incidences
    "by day N", and the new
    fractures of :func:`analysis.comparison.fracture_time_event` for the time-to-event row;
    NaN for continuous outcomes and costs.
    """
    table = compare_procedures(
        records, adjust=True, level=level, cluster=DEFAULT_CLUSTER if clustered else None
    )
    events = {VP: np.full(len(table), np.nan), KP: np.full(len(table), np.nan)}
    for i, row in table.iterrows():
        if row["outcome"] in HORIZON_OUTCOMES:
            # A cumulative incidence times n is not a count: the events observed by the horizon.
            time, code = horizon_time_event(records, row["outcome"])
            by_day = (code == 1) & (time <= HORIZON_OUTCOMES[row["outcome"]].horizon_days)
            arm = records["procedure"].astype(str).to_numpy()
            for name in PROCEDURES:
                events[name][i] = int((by_day & (arm == name)).sum())
        elif row["kind"] == "binary":
            for name, n, risk in (
                (VP, row["n_vp"], row["estimate_vp"]),
                (KP, row["n_kp"], row["estimate_kp"]),
            ):
                events[name][i] = round(risk * n) if not _missing(risk) else 0
        elif row["kind"] == "time_to_event":
            try:
                status = fracture_time_event(records)
            except ValueError:  # a column is missing: the row says so and has no estimate
                continue
            arm = records["procedure"].astype(str)
            for name in PROCEDURES:
                events[name][i] = int(((status["event"] == 1) & (arm == name)).sum())
    return table.assign(events_vp=events[VP], events_kp=events[KP])


def mdd_analysis(records: pd.DataFrame) -> pd.DataFrame:
    """Minimum detectable differences at 80% power and a two-sided 5% level."""
    return minimum_detectable_differences(records, power=MDD_POWER, alpha=MDD_ALPHA)


# --------------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------------


def _leading_count(text) -> int | None:
    """The n of an "n (%)" cell, e.g. 17 for "17 (0.8)"."""
    found = re.match(r"^\s*(\d+) \(", str(text)) if isinstance(text, str) else None
    return int(found.group(1)) if found else None


def _thousands(text) -> str:
    """Thousands separators in a Table 1 cell: "62997 (15.4)" → "62,997 (15.4)"."""
    return re.sub(r"(?<![\d.])\d{4,}(?=\.\d|\b)", lambda m: f"{int(m.group()):,}", str(text))


def _group_sizes(table: pd.DataFrame) -> dict[str, int]:
    head = table[table["variable"] == "n"].iloc[0]
    return {name: int(head[name]) for name in PROCEDURES}


def table_one_display(
    unweighted: pd.DataFrame, weighted: pd.DataFrame | None = None, p_values: bool = False
) -> pd.DataFrame:
    """Table 1 for display: VP, KP and SMD first, the IPTW-weighted columns, missing counts,
    and the p-values only when `p_values` is true (and `unweighted` has them).

    Balance is read from the SMD; baseline p-values are optional and off by default (STROBE
    item 14a; tableone ``test = FALSE``).

    One "Characteristic" column: the variable rows ("Sex, n (%)") followed by their levels,
    indented. Suppression: group sizes, level counts and missing counts from 1 to 10 show
    "<11"; a cell resting on such a count (a level's weighted share, a mean of fewer than 11
    values) shows "<11" too, and the SMDs of a row are hidden when either group's count is
    small. When a whole procedure group has 1–10 records every cell of that group is hidden,
    and so are the p-values and SMDs.
    """
    table = unweighted.copy()
    if weighted is not None:
        extra = weighted[["variable", "level", f"{VP}_weighted", f"{KP}_weighted", "smd_weighted"]]
        table = table.merge(extra, on=["variable", "level"], how="left", sort=False)
    sizes = _group_sizes(unweighted)
    small_group = {name: bool(is_small([sizes[name]])[0]) for name in PROCEDURES}
    any_group_small = small_group[VP] or small_group[KP]
    show_p = p_values and "p_value" in table
    # Secondary suppression within each categorical variable: a single hidden level could be
    # recovered as the group's n minus the levels shown.
    secondary: set[tuple[str, str, str]] = set()
    levels = table[table["level"] != ""]
    for variable, part in levels.groupby("variable", sort=False):
        for name in PROCEDURES:
            counts = {level: _leading_count(value) for level, value in zip(part["level"], part[name],
                                                                            strict=True)}
            secondary |= {(variable, level, name) for level in partition_suppression(counts)}
    rows = []
    for _, row in table.iterrows():
        variable, level = row["variable"], row["level"]
        is_level = level != ""
        counts = {}
        for name, short in ((VP, "vp"), (KP, "kp")):
            if variable == "n":
                counts[name] = sizes[name]
            elif is_level:
                counts[name] = _leading_count(row[name])
            else:  # values present = group size − missing
                missing = row[f"missing_{short}"]
                counts[name] = sizes[name] - (0 if _missing(missing) else int(missing))
        hidden = {
            name: small_group[name]
            or (counts[name] is not None and bool(is_small([counts[name]])[0]))
            or (variable, level, name) in secondary
            for name in PROCEDURES
        }
        out = {
            "Characteristic": f"\u2003{level}"
            if is_level
            else VARIABLE_LABELS.get(variable, variable.replace("_", " "))
        }
        for name, short in ((VP, "VP"), (KP, "KP")):
            if variable == "n":
                out[short] = format_count(sizes[name])
            else:
                out[short] = (
                    label()
                    if hidden[name] and row[name] not in ("", "–")
                    else _thousands(row[name])
                )
        missing = []
        for name, short in ((VP, "vp"), (KP, "kp")):
            value = row[f"missing_{short}"]
            if not _missing(value):
                missing.append(label() if small_group[name] else format_count(int(value)))
        either = hidden[VP] or hidden[KP]
        out["SMD"] = "" if either or _missing(row["smd"]) else plain(row["smd"], 3)
        if weighted is not None:
            for name, short in ((VP, "VP"), (KP, "KP")):
                value = row.get(f"{name}_weighted")
                value = "" if _missing(value) else value
                out[f"{short} (IPTW)"] = (
                    label() if hidden[name] and value not in ("", "–") else _thousands(value)
                )
            smd_w = row.get("smd_weighted")
            out["SMD (IPTW)"] = "" if either or _missing(smd_w) else plain(smd_w, 3)
        out["Missing (VP / KP)"] = " / ".join(missing) if len(missing) == 2 else ""
        if show_p:
            out["p-value"] = (
                "" if any_group_small or _missing(row["p_value"]) else p_text(row["p_value"])
            )
        rows.append(out)
    return pd.DataFrame(rows)


def table_one_summary(unweighted: pd.DataFrame, weighted: pd.DataFrame | None) -> str:
    """One sentence: group sizes and the imbalances (|SMD| ≥ 0.1) before and after weighting,
    from the displayed (suppressed) table, so it never states a hidden SMD."""
    sizes = _group_sizes(unweighted)
    text = f"{format_count(sizes[VP])} vertebroplasties and {format_count(sizes[KP])} kyphoplasties"
    shown = table_one_display(unweighted, weighted)
    rows = [
        (r.variable, d)
        for r, (_, d) in zip(unweighted.itertuples(), shown.iterrows(), strict=True)
        if r.variable != "n" and r.level == ""
    ]

    def values(column: str) -> list[tuple[str, float]]:
        found = [
            (v, abs(float(d[column].replace(MINUS, "-"))))
            for v, d in rows
            if column in d and d[column]
        ]
        return sorted(found, key=lambda item: -item[1])

    before = values("SMD")
    if not before:
        return text + "; standardised differences are not shown for groups this small."
    unbalanced = [(v, a) for v, a in before if a >= SMD_THRESHOLD]
    parts = [text]
    if unbalanced:
        names = ", ".join(
            f"{COVARIATE_LABELS.get(v, v.replace('_', ' '))} ({a:.2f})" for v, a in unbalanced
        )
        parts.append(f"|SMD| ≥ {SMD_THRESHOLD:g} before weighting for {names}")
    else:
        parts.append(f"every |SMD| shown is below {SMD_THRESHOLD:g} before weighting")
    after = values("SMD (IPTW)")
    if after:
        parts.append(
            f"largest |SMD| after IPTW {after[0][1]:.2f} "
            f"({COVARIATE_LABELS.get(after[0][0], after[0][0].replace('_', ' '))})"
        )
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------------------------
# Effects: forest plot and table
# --------------------------------------------------------------------------------------------


def suppressed_outcomes(comparison: pd.DataFrame) -> np.ndarray:
    """True for rows resting on 1–10 patients or events in either procedure."""
    hidden = is_small(comparison["n_vp"]) | is_small(comparison["n_kp"])
    for column in ("events_vp", "events_kp"):
        if column in comparison:
            hidden |= is_small(comparison[column])
    return hidden


def _panel(row: pd.Series, estimate: str) -> str:
    """Which axis an estimate goes on (effects on different scales never share an axis)."""
    kind = row["kind"]
    if kind == "binary":
        return "rd"
    if kind == "time_to_event":
        return "hr"
    if kind == "cost":
        return "cost_md" if estimate == "unadjusted" else "ratio"
    outcome = str(row["outcome"])
    if outcome.startswith("pain_"):
        return "md_points"
    return "md_minutes" if outcome == "duration_min" else f"md_{outcome}"


def _panel_spec(key: str, currency: str) -> tuple[str, str, bool]:
    """(title, x-axis title, log axis) of a panel."""
    specs = {
        "rd": ("Risk difference, KP − VP", "percentage points", False),
        "md_points": ("Difference in mean pain score, KP − VP", "points (0–10 scale)", False),
        "md_minutes": ("Difference in mean procedure duration, KP − VP", "minutes", False),
        "cost_md": ("Difference in mean cost, KP − VP (unadjusted)", currency, False),
        "ratio": ("Ratio of mean costs, KP / VP (adjusted)", "ratio (log scale)", True),
        "hr": ("Hazard ratio of a new fracture, KP / VP", "hazard ratio (log scale)", True),
    }
    if key in specs:
        return specs[key]
    name = key.removeprefix("md_").replace("_", " ")
    return (f"Difference in mean {name}, KP − VP", "outcome units", False)


PANEL_ORDER = ("rd", "md_points", "md_minutes", "cost_md", "ratio", "hr")


def effect_points(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per drawable estimate: ``outcome, label, estimate, panel, value, low, high, p,
    method, suppressed``; RD and MD panels in display units (percentage points …)."""
    hidden = suppressed_outcomes(comparison)
    rows = []
    for (_, row), suppressed in zip(comparison.iterrows(), hidden, strict=True):
        name = OUTCOME_LABELS.get(str(row["outcome"]), str(row["definition"]))
        for estimate, columns in (
            (
                "unadjusted",
                (
                    "unadjusted",
                    "unadjusted_low",
                    "unadjusted_high",
                    "p_unadjusted",
                    "unadjusted_method",
                ),
            ),
            (
                "adjusted",
                ("adjusted", "adjusted_low", "adjusted_high", "p_adjusted", "adjusted_method"),
            ),
            ("iptw", ("iptw", "iptw_low", "iptw_high", "p_iptw", None)),
        ):
            value, low, high, p = (row.get(c) for c in columns[:4])
            if estimate == "iptw" and _missing(value):
                continue
            panel = _panel(row, estimate)
            scale = 100.0 if panel == "rd" else 1.0
            method = (
                row[columns[4]] if columns[4] else "IPTW risk difference (stabilised ATE weights)"
            )
            rows.append(
                {
                    "outcome": row["outcome"],
                    "label": name,
                    "estimate": estimate,
                    "panel": panel,
                    "value": None if suppressed or _missing(value) else scale * value,
                    "low": None if suppressed or _missing(low) else scale * low,
                    "high": None if suppressed or _missing(high) else scale * high,
                    "p": None if suppressed else p,
                    "method": method,
                    "suppressed": bool(suppressed),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "outcome",
            "label",
            "estimate",
            "panel",
            "value",
            "low",
            "high",
            "p",
            "method",
            "suppressed",
        ],
    )


def _value_text(panel: str, value: float, currency: str) -> str:
    if panel == "rd":
        return f"{signed(value, 1)} pp"
    if panel in ("ratio", "hr"):
        return plain(value, 2)
    if panel == "cost_md":
        return f"{signed(value, 0, thousands=True)} {currency}"
    if panel == "md_minutes":
        return f"{signed(value, 1)} min"
    return f"{signed(value, 2)} points" if panel == "md_points" else signed(value, 2)


def _interval_text(panel: str, low, high, currency: str) -> str:
    if _missing(low) or _missing(high):
        return ""
    if panel in ("ratio", "hr"):
        return f"{plain(low, 2)} to {plain(high, 2)}"
    places = 0 if panel == "cost_md" else 2 if panel == "md_points" else 1
    return f"{plain(low, places, panel == 'cost_md')} to {plain(high, places, panel == 'cost_md')}"


def forest_figure(comparison: pd.DataFrame, level: float = DEFAULT_LEVEL) -> go.Figure:
    """Every outcome's unadjusted and adjusted effect, one panel (own x-axis) per scale.

    Risk differences (percentage points), differences in means (points, minutes, currency)
    and ratios (log axes: ratio of mean costs, hazard ratio) never share an axis. Markers
    differ in colour and shape; suppressed outcomes have no marker and say "<11" in their
    axis label.
    """
    if comparison.empty:
        return empty_figure()
    points = effect_points(comparison)
    currency = currency_of(
        str(comparison.loc[comparison["outcome"] == "cost", "definition"].iloc[0])
        if (comparison["outcome"] == "cost").any()
        else ""
    )
    panels = [p for p in PANEL_ORDER if p in set(points["panel"])]
    panels += sorted(set(points["panel"]) - set(panels))
    heights = [max(1, points.loc[points["panel"] == p, "outcome"].nunique()) for p in panels]
    titles = [_panel_spec(p, currency)[0] for p in panels]
    figure = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=False,
        subplot_titles=titles,
        row_heights=[h + 1.4 for h in heights],
        vertical_spacing=0.45 / len(panels),
    )
    figure.update_annotations(font={"size": 13}, xanchor="left", x=0)  # the panel titles
    shown_legend: set[str] = set()
    clustered, unclustered = is_clustered(comparison), unclustered_outcomes(comparison)
    for index, panel in enumerate(panels, start=1):
        part = points[points["panel"] == panel]
        outcomes = list(dict.fromkeys(part["outcome"]))
        ypos = {o: len(outcomes) - 1 - i for i, o in enumerate(outcomes)}
        for estimate, (name, colour, symbol, offset) in ESTIMATE_STYLES.items():
            rows = part[(part["estimate"] == estimate) & part["value"].notna()]
            if rows.empty:
                continue
            hover = [
                f"{r.label} — {name.lower()}: {_value_text(panel, r.value, currency)} "
                f"({ci_label(level, clustered and r.outcome not in unclustered)} "
                f"{_interval_text(panel, r.low, r.high, currency) or 'not available'}), "
                f"p {p_text(r.p)}"
                for r in rows.itertuples()
            ]
            has_ci = rows["low"].notna() & rows["high"].notna()
            figure.add_scatter(
                x=rows["value"],
                y=[ypos[o] + offset for o in rows["outcome"]],
                mode="markers",
                marker={
                    "color": colour,
                    "symbol": symbol,
                    "size": 10,
                    "line": {"color": colour, "width": 2},
                },
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "thickness": 1.5,
                    "width": 4,
                    "color": colour,
                    "array": (rows["high"] - rows["value"]).where(has_ci, None).tolist(),
                    "arrayminus": (rows["value"] - rows["low"]).where(has_ci, None).tolist(),
                },
                name=name,
                legendgroup=estimate,
                showlegend=estimate not in shown_legend,
                hovertext=hover,
                hoverinfo="text",
                row=index,
                col=1,
            )
            shown_legend.add(estimate)
        _, axis_title, log = _panel_spec(panel, currency)
        ticks = []
        for outcome in outcomes:
            first = part[part["outcome"] == outcome].iloc[0]
            text = first["label"]
            if first["suppressed"]:
                text += f" ({label()}: suppressed)"
            elif part.loc[part["outcome"] == outcome, "value"].isna().all():
                text += " (not estimable)"
            ticks.append(text)
        if part["value"].isna().all():  # keep the panel's axes and say why it is empty
            why = (
                "suppressed: fewer than 11 patients or events"
                if part["suppressed"].all()
                else "not estimable for this selection"
            )
            figure.add_scatter(
                x=[1.0 if _panel_spec(panel, currency)[2] else 0.0],
                y=[ypos[outcomes[0]]],
                mode="markers",
                showlegend=False,
                marker={"opacity": 0},
                hoverinfo="skip",
                row=index,
                col=1,
            )
            figure.add_annotation(
                text=f"No estimate shown ({why})",
                showarrow=False,
                xref="x domain",
                yref="y domain",
                x=0.5,
                y=0.5,
                font={"color": TEXT_COLOURS["grey"], "size": 12},
                row=index,
                col=1,
            )
        figure.update_yaxes(
            tickvals=[ypos[o] for o in outcomes],
            ticktext=ticks,
            range=[-0.6, len(outcomes) - 0.4],
            showgrid=False,
            zeroline=False,
            row=index,
            col=1,
        )
        null = 1.0 if log else 0.0
        values = pd.concat([part["low"], part["high"], part["value"]]).dropna().astype(float)
        if log:
            logs = np.log10(np.append(values[values > 0].to_numpy(), null))
            pad = max(0.02, 0.08 * (logs.max() - logs.min()))
            figure.update_xaxes(
                type="log", range=[logs.min() - pad, logs.max() + pad], row=index, col=1
            )
        else:
            span = np.append(values.to_numpy(), null)
            pad = max(0.5 if panel == "rd" else 0.05, 0.08 * (span.max() - span.min()))
            figure.update_xaxes(range=[span.min() - pad, span.max() + pad], row=index, col=1)
        figure.update_xaxes(
            title_text=axis_title, title_standoff=2, zeroline=False, row=index, col=1
        )
        figure.add_vline(
            x=null, line={"color": OKABE_ITO["grey"], "dash": "dash", "width": 1}, row=index, col=1
        )
    height = 120 + sum(34 * h + 110 for h in heights)
    base_layout(figure, height=height)
    figure.update_layout(
        margin={"l": 230, "r": 20, "t": top_margin_for_titles(2), "b": 40},
        legend=legend_below_toolbar(height),
    )
    return figure


def forest_summary(comparison: pd.DataFrame, level: float = DEFAULT_LEVEL) -> str:
    """The forest plot as one sentence: every adjusted effect (else unadjusted) with its CI."""
    if comparison.empty:
        return "No outcomes to compare."
    points = effect_points(comparison)
    currency = currency_of(" ".join(comparison["definition"].astype(str)))
    parts, hidden = [], []
    for outcome in dict.fromkeys(points["outcome"]):
        part = points[points["outcome"] == outcome]
        if part["suppressed"].any():
            hidden.append(part["label"].iloc[0])
            continue
        pick = part[(part["estimate"] == "adjusted") & part["value"].notna()]
        kind = "adjusted"
        if pick.empty:
            pick, kind = (
                part[(part["estimate"] == "unadjusted") & part["value"].notna()],
                "unadjusted",
            )
        if pick.empty:
            parts.append(f"{part['label'].iloc[0]} not estimable")
            continue
        r = pick.iloc[0]
        parts.append(
            f"{r['label']} {kind} {_value_text(r['panel'], r['value'], currency)} "
            f"({_interval_text(r['panel'], r['low'], r['high'], currency)})"
        )
    intervals = f"{level_text(level)} confidence intervals" + (
        " clustered by facility" if is_clustered(comparison) else " (model-based)"
    )
    text = f"KP compared with VP, {intervals}: " + "; ".join(parts)
    if hidden:
        text += f"; suppressed ({label()} patients or events): " + ", ".join(hidden)
    return text + "."


def _estimate_text(row: pd.Series, which: str) -> str:
    value = row[f"estimate_{which}"]
    if _missing(value):
        return "–"
    if row["kind"] in ("binary", "time_to_event"):
        text = f"{100 * value:.1f}%"
        return text + " at 1 year" if row["kind"] == "time_to_event" else text
    if row["kind"] == "cost":
        return f"{plain(value, 0, thousands=True)} {currency_of(row['definition'])}"
    return plain(value, 2 if str(row["outcome"]).startswith("pain_") else 1)


def effects_table(comparison: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """The comparison for display, one row per outcome: n and estimate per procedure, the
    unadjusted, adjusted (and IPTW) effects with CIs and p, the BH p, the methods and notes.

    Suppressed outcomes (1–10 patients or events in a procedure) show "<11" counts and no
    estimates; counts from 1 to 10 inside method and note texts become "<11" too.
    """
    hidden = suppressed_outcomes(comparison)
    ci = ci_label(level, is_clustered(comparison))
    unclustered = unclustered_outcomes(comparison)
    rows = []
    for (_, row), suppressed in zip(comparison.iterrows(), hidden, strict=True):
        currency = currency_of(row["definition"])
        out = {
            "Outcome": row["definition"],
            "n VP": format_count(row["n_vp"]),
            "n KP": format_count(row["n_kp"]),
            "VP": "suppressed" if suppressed else _estimate_text(row, "vp"),
            "KP": "suppressed" if suppressed else _estimate_text(row, "kp"),
        }
        for estimate, title in (("unadjusted", "Unadjusted"), ("adjusted", "Adjusted")):
            panel = _panel(row, estimate)
            scale = 100.0 if panel == "rd" else 1.0
            value = row[estimate]
            measure = row["unadjusted_measure" if estimate == "unadjusted" else "effect_measure"]
            if suppressed:
                text, p = "suppressed", ""
            elif _missing(value):
                text, p = "not estimated (see notes)", ""
            else:
                interval = _interval_text(
                    panel, scale * row[f"{estimate}_low"], scale * row[f"{estimate}_high"], currency
                )
                if row["outcome"] in unclustered:
                    interval += ", not clustered"
                text = f"{measure} {_value_text(panel, scale * value, currency)} ({interval})"
                p = p_text(row[f"p_{estimate}"])
            out[f"{title} ({ci})"] = text
            out[f"{title} p"] = p
        has_iptw = not _missing(row.get("iptw"))
        if has_iptw and not suppressed:
            interval = _interval_text("rd", 100 * row["iptw_low"], 100 * row["iptw_high"], currency)
            out[f"IPTW ({ci})"] = (
                f"RD {_value_text('rd', 100 * row['iptw'], currency)} ({interval})"
            )
            out["IPTW p"] = p_text(row["p_iptw"])
        else:
            out[f"IPTW ({ci})"] = "suppressed" if suppressed and has_iptw else ""
            out["IPTW p"] = ""
        out["p (BH)"] = "" if suppressed else p_text(row["p_bh"])
        out["Unadjusted method"] = "–" if suppressed else redact_counts(row["unadjusted_method"])
        out["Adjusted method"] = "–" if suppressed else redact_counts(row["adjusted_method"])
        out["Notes"] = redact_counts(row["note"])
        rows.append(out)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Balance (love plot)
# --------------------------------------------------------------------------------------------


def _covariate_text(name: str) -> str:
    found = re.match(r"^(.*)\[(.*)\]$", name)
    if found:
        base, level = found.groups()
        return f"{COVARIATE_LABELS.get(base, base)}: {level}"
    if name.endswith(" (all levels)"):
        base = name.removesuffix(" (all levels)")
        return f"{COVARIATE_LABELS.get(base, base)} (all levels)"
    if name.endswith("_missing"):
        base = name.removesuffix("_missing")
        return f"{COVARIATE_LABELS.get(base, base)} missing"
    return COVARIATE_LABELS.get(name, name.replace("_", " "))


def hidden_covariates(balance: pd.DataFrame, unweighted: pd.DataFrame) -> set[str]:
    """Balance rows resting on a small count: a level (or a missing-value indicator) with
    1–10 records in either procedure in Table 1, or every row when a group is that small."""
    sizes = _group_sizes(unweighted)
    if any(is_small([sizes[VP], sizes[KP]])):
        return set(balance["covariate"])
    hidden = set()
    for name in balance["covariate"]:
        found = re.match(r"^(.*)\[(.*)\]$", name)
        if found:
            base, level = found.groups()
            rows = unweighted[(unweighted["variable"] == base) & (unweighted["level"] == level)]
            counts = [_leading_count(rows.iloc[0][p]) for p in PROCEDURES] if len(rows) else []
            if any(c is not None and is_small([c])[0] for c in counts):
                hidden.add(name)
        elif name.endswith("_missing"):
            rows = unweighted[
                (unweighted["variable"] == name.removesuffix("_missing"))
                & (unweighted["level"] == "")
            ]
            if len(rows) and any(
                is_small([rows.iloc[0]["missing_vp"], rows.iloc[0]["missing_kp"]])
            ):
                hidden.add(name)
    return hidden


def balance_table(balance: pd.DataFrame, hidden: set[str]) -> pd.DataFrame:
    rows = []
    for r in balance.itertuples():
        secret = r.covariate in hidden
        rows.append(
            {
                "Covariate": _covariate_text(r.covariate),
                "SMD before": "suppressed" if secret else plain(r.smd_before, 3),
                "SMD after IPTW": "suppressed" if secret else plain(r.smd_after, 3),
                f"Balanced (|SMD| < {SMD_THRESHOLD:g})": ""
                if secret
                else ("yes" if r.balanced_after else "no"),
            }
        )
    return pd.DataFrame(rows)


def love_plot(balance: pd.DataFrame | None, hidden: set[str] = frozenset()) -> go.Figure:
    """|SMD| before and after IPTW per covariate, with the 0.1 balance line."""
    if balance is None or balance.empty:
        return empty_figure("No balance diagnostics: the propensity model was not fitted.")
    frame = balance.assign(
        text=[_covariate_text(c) for c in balance["covariate"]],
        before=balance["smd_before"].abs(),
        after=balance["smd_after"].abs(),
    )
    frame = frame.sort_values("before", ascending=True, kind="stable")
    secret = frame["covariate"].isin(hidden).to_numpy()
    ticks = [t + f" ({label()})" if s else t for t, s in zip(frame["text"], secret, strict=True)]
    figure = go.Figure()
    for column, name, colour, symbol in (
        ("before", "Before weighting", OKABE_ITO["vermillion"], "circle-open"),
        ("after", "After IPTW", OKABE_ITO["blue"], "circle"),
    ):
        values = [None if s else float(v) for s, v in zip(secret, frame[column], strict=True)]
        figure.add_scatter(
            x=values,
            y=ticks,
            mode="markers",
            name=name,
            marker={
                "color": colour,
                "symbol": symbol,
                "size": 9,
                "line": {"color": colour, "width": 2},
            },
            hovertext=[
                f"{t}: |SMD| {name.lower()} " + (label() + " suppressed" if s else f"{v:.3f}")
                for t, s, v in zip(frame["text"], secret, frame[column], strict=True)
            ],
            hoverinfo="text",
        )
    figure.add_vline(
        x=SMD_THRESHOLD,
        line={"color": OKABE_ITO["grey"], "dash": "dash"},
        annotation_text=f"|SMD| = {SMD_THRESHOLD:g}",
        annotation_position="top right",
    )
    base_layout(figure, height=max(320, 90 + 22 * len(frame)))
    figure.update_layout(margin={"l": 200, "r": 20, "t": 40, "b": 50})
    largest = (
        float(pd.concat([frame["before"], frame["after"]]).where(np.repeat(~secret, 2)).max())
        if (~secret).any()
        else SMD_THRESHOLD
    )
    largest = max(largest if not math.isnan(largest) else 0.0, SMD_THRESHOLD)
    figure.update_xaxes(
        title_text="absolute standardised mean difference (|SMD|, no unit)",
        range=[-0.03 * largest, 1.06 * largest],
    )
    figure.update_yaxes(type="category", categoryorder="array", categoryarray=ticks)
    return figure


def love_summary(balance: pd.DataFrame | None, hidden: set[str] = frozenset()) -> str:
    if balance is None or balance.empty:
        return "Balance diagnostics are not available for this selection."
    shown = balance[~balance["covariate"].isin(hidden)]
    if shown.empty:
        return f"Every balance value is suppressed ({label()} records)."
    before = int((shown["smd_before"].abs() >= SMD_THRESHOLD).sum())
    after = int((shown["smd_after"].abs() >= SMD_THRESHOLD).sum())
    worst = shown.loc[shown["smd_before"].abs().idxmax()]
    return (
        f"{before} of {len(shown)} covariate terms have |SMD| ≥ {SMD_THRESHOLD:g} before "
        f"weighting (largest: {_covariate_text(worst['covariate'])}, "
        f"{abs(worst['smd_before']):.2f}) and {after} after IPTW (largest "
        f"{shown['smd_after'].abs().max():.3f})."
    )


# --------------------------------------------------------------------------------------------
# Propensity overlap
# --------------------------------------------------------------------------------------------


def overlap_figure(histogram: pd.DataFrame | None) -> go.Figure:
    """Mirrored histogram of propensity scores: KP above the axis, VP below.

    Bins with 1–10 patients have no bar; a small "×" on the axis marks them and its hover
    says "<11".
    """
    if histogram is None or histogram.empty or histogram["count"].sum() == 0:
        return empty_figure("No propensity scores: the propensity model was not fitted.")
    figure = go.Figure()
    for name, sign in ((KP, 1), (VP, -1)):
        part = histogram[histogram["procedure"] == name]
        total = int(part["count"].sum())
        small = is_small(part["count"])
        drawn = ~small & (part["count"] > 0).to_numpy()
        centre = (part["bin_start"] + part["bin_end"]) / 2
        ranges = np.array(
            [f"{a:.3f}–{b:.3f}" for a, b in zip(part["bin_start"], part["bin_end"], strict=True)]
        )
        short = "KP" if name == KP else "VP"
        figure.add_bar(
            x=centre[drawn],
            y=(sign * part["count"])[drawn],
            width=BIN_WIDTH * 0.95,
            marker_color=PROCEDURE_COLOURS[name],
            name=f"{'Kyphoplasty' if name == KP else 'Vertebroplasty'} ({short})",
            hovertext=[
                f"{short}, score {r}: {c:,} patients ({100 * c / total:.1f}% of {short})"
                for r, c in zip(ranges[drawn], part["count"][drawn], strict=True)
            ],
            hoverinfo="text",
        )
        if small.any():
            figure.add_scatter(
                x=centre[small],
                y=[0] * int(small.sum()),
                mode="markers",
                showlegend=False,
                marker={
                    "symbol": "x-thin-open",
                    "size": 8,
                    "color": PROCEDURE_COLOURS[name],
                    "line": {"width": 2, "color": PROCEDURE_COLOURS[name]},
                },
                hovertext=[
                    f"{short}, score {r}: {label()} patients (suppressed)" for r in ranges[small]
                ],
                hoverinfo="text",
                name=f"{short} bins with {label()} patients",
            )
    figure.add_hline(y=0, line={"color": OKABE_ITO["black"], "width": 1})
    base_layout(figure, height=360, barmode="overlay")
    figure.update_xaxes(
        title_text="propensity score: estimated probability of kyphoplasty", range=[0, 1], dtick=0.1
    )
    figure.update_yaxes(title_text="patients (KP above, VP below)", tickformat=",d")
    peak = max(int(histogram["count"].max()), 1)
    step = _nice_step(peak / 3)
    ticks = np.arange(
        -step * math.ceil(peak / step), step * math.ceil(peak / step) + step / 2, step
    )
    figure.update_yaxes(
        range=[-1.08 * peak, 1.08 * peak],
        tickvals=ticks,
        ticktext=[f"{abs(int(v)):,}" for v in ticks],
    )
    return figure


def _nice_step(raw: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least ``raw`` (whole numbers only)."""
    power = 10 ** math.floor(math.log10(max(raw, 1.0)))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw and float(factor * power).is_integer():
            return float(factor * power)
    return float(10 * power)


def overlap_summary(result: BaselineResult) -> str:
    if result.histogram is None:
        return "Propensity scores are not available for this selection."
    parts = []
    for name, short in ((KP, "KP"), (VP, "VP")):
        part = result.histogram[
            (result.histogram["procedure"] == name) & (result.histogram["count"] > 0)
        ]
        if len(part):
            parts.append(
                f"{short} scores from {part['bin_start'].min():.2f} to {part['bin_end'].max():.2f}"
            )
    text = "Propensity scores by procedure: " + "; ".join(parts)
    text += f"; c-statistic {result.c_statistic:.2f}."
    if result.positivity_warning:
        text += f" Positivity warning: {result.positivity_warning}."
    return text


def weight_summary_table(summary: pd.DataFrame | None) -> pd.DataFrame:
    """Weights per group (min, 1st percentile, median, 99th percentile, max, sum, effective
    sample size); a group of 1–10 records shows "<11" and no statistics."""
    if summary is None:
        return pd.DataFrame()
    names = {VP: "Vertebroplasty (VP)", KP: "Kyphoplasty (KP)", "all": "All"}
    rows = []
    for r in summary.itertuples():
        small = bool(is_small([r.n])[0])
        row = {"Group": names.get(r.group, r.group), "n": format_count(r.n)}
        for column, title in (
            ("min", "Min"),
            ("p1", "1st pct"),
            ("median", "Median"),
            ("p99", "99th pct"),
            ("max", "Max"),
        ):
            value = getattr(r, column, math.nan)
            row[title] = "" if small or _missing(value) else f"{value:.2f}"
        for column, title in (("sum", "Sum of weights"), ("ess", "Effective sample size")):
            value = getattr(r, column, math.nan)
            row[title] = "" if small or _missing(value) else f"{value:,.0f}"
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Minimum detectable differences
# --------------------------------------------------------------------------------------------


def mdd_table(mdd: pd.DataFrame) -> pd.DataFrame:
    """Smallest KP − VP differences detectable (80% power, two-sided 5% level), suppressed.

    Binary outcomes in percentage points above and below the VP risk; continuous outcomes
    in their unit. Hidden when either group has 1–10 patients or the VP events are 1–10.
    """
    rows = []
    for r in mdd.itertuples():
        binary = r.kind == "binary"
        events_vp = round(r.reference * r.n_vp) if binary and not _missing(r.reference) else None
        hidden = bool(
            is_small([r.n_vp, r.n_kp]).any() or (events_vp is not None and is_small([events_vp])[0])
        )
        row = {
            "Outcome": OUTCOME_LABELS.get(r.outcome, r.outcome),
            "n VP": format_count(r.n_vp),
            "n KP": format_count(r.n_kp),
        }
        if hidden:
            reference = increase = decrease = "suppressed"
        elif _missing(r.mdd_increase):
            reference = (
                "–"
                if _missing(r.reference)
                else (f"{100 * r.reference:.1f}%" if binary else plain(r.reference, 2))
            )
            increase = decrease = "–"
        elif binary:
            reference = f"VP risk {100 * r.reference:.1f}%"
            increase = f"+{100 * r.mdd_increase:.1f} pp"
            decrease = f"{MINUS}{100 * r.mdd_decrease:.1f} pp"
        else:
            places = 0 if r.kind == "cost" else 2
            unit = {"points": "points", "minutes": "min"}.get(r.unit, r.unit)
            reference = f"pooled SD {plain(r.reference, places, r.kind == 'cost')} {unit}"
            increase = f"+{plain(r.mdd_increase, places, r.kind == 'cost')} {unit}"
            decrease = f"{MINUS}{plain(r.mdd_decrease, places, r.kind == 'cost')} {unit}"
        row.update(
            {
                "Reference": reference,
                "Smallest detectable increase": increase,
                "Smallest detectable decrease": decrease,
                "Note": redact_counts(r.note),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def mdd_summary(mdd: pd.DataFrame) -> str:
    shown = mdd_table(mdd)
    usable = shown[~shown["Smallest detectable increase"].isin(["suppressed", "–"])]
    if usable.empty:
        return "No minimum detectable difference can be computed for this selection."
    parts = [f"{r['Outcome']} {r['Smallest detectable increase']}" for _, r in usable.iterrows()]
    return (
        "With the current numbers of patients, 80% power and a two-sided 5% level, the "
        "smallest detectable KP − VP differences are: " + "; ".join(parts) + "."
    )


# --------------------------------------------------------------------------------------------
# Plain-language notes
# --------------------------------------------------------------------------------------------

METHOD_NOTES: tuple[tuple[str, str], ...] = (
    (
        "Unadjusted effect",
        "The raw difference between KP and VP patients in these records (risk difference, "
        "difference in means, Cox hazard ratio with KP alone; Wald intervals from the "
        "facility-clustered variance, or Newcombe and Welch intervals when clustering is off; "
        "for new fracture by 12 months the difference of the two cumulative incidences at 12 "
        "months, Aalen–Johansen with death competing, with a delta-method interval that is not "
        "clustered). It mixes the effect of the procedure with every way KP and VP patients differ.",
    ),
    (
        "Adjusted effect (model-based)",
        "Compares KP and VP at the same mix of recorded patient characteristics (age, sex, "
        "etiology, levels treated, country, and fracture age and prior fractures when recorded). "
        "Binary outcomes: g-computation — every patient's risk predicted as if treated with KP "
        "and with VP, then averaged; new fracture by 12 months: cumulative incidences weighted "
        "by the inverse probability of the procedure (IPTW), since a model of the status at 12 "
        "months would drop the patients followed for less; "
        "pain: ANCOVA on baseline pain; duration: linear regression; "
        "cost: ratio of mean costs from a gamma model; new fracture: Cox model. It is only as "
        "good as the model and the recorded characteristics.",
    ),
    (
        "Adjusted effect (IPTW)",
        "A second adjusted estimate for cement leakage: each patient is weighted by the inverse "
        "of the probability of the procedure they received (the propensity score), so the "
        "weighted groups look alike on the recorded characteristics. The balance plot checks "
        "this; agreement of the two adjusted estimates is reassuring, not proof.",
    ),
    (
        "Intervals clustered by facility",
        "Patients of one facility share operators, equipment, case mix and follow-up routines, "
        "so their outcomes are not independent. By default every interval and p-value allows "
        "for this (cluster-robust variance by facility: sandwich for the regression and IPTW "
        "models, Lin–Wei for the Cox model, a bootstrap of whole facilities for the difference "
        "in mean costs; t distribution with one degree of freedom fewer than the number of "
        "facilities). The estimates are the same as without clustering; the intervals are "
        "usually wider. Turn it off only to reproduce model-based results that assume "
        "independent patients.",
    ),
    (
        "Table 1 and SMD",
        "Baseline characteristics by procedure. The standardised mean difference (SMD) measures "
        "an imbalance independently of sample size; |SMD| below 0.1 is usually taken as "
        "balanced. With large numbers even trivial differences get small p-values, so judge "
        "imbalance by the SMD, not the p-value.",
    ),
    (
        "Minimum detectable difference",
        "The smallest true difference these numbers of patients would detect 4 times out of 5 "
        "(80% power) at a two-sided 5% level. A non-significant result for a difference smaller "
        "than this is not evidence that the procedures are equivalent.",
    ),
)

LIMIT_NOTES: tuple[tuple[str, str], ...] = (
    (
        "Observational data",
        "These are routine-care records, not a randomised trial: the comparisons show "
        "associations and can suggest, not prove, that a procedure causes better or worse "
        "outcomes.",
    ),
    (
        "Confounding by indication",
        "Operators choose KP more often for malignant fractures, more levels and some countries "
        "and facilities (see Table 1). Unadjusted differences partly reflect who was treated, "
        "not how.",
    ),
    (
        "Only measured confounders",
        "Adjustment uses the recorded characteristics only. Frailty, bone density, fracture "
        "morphology, cement type, operator experience and imaging are not recorded and can "
        "still bias adjusted estimates (residual confounding).",
    ),
    (
        "Positivity (overlap)",
        "Adjustment needs patients with similar characteristics in both groups. Where "
        "propensity scores are close to 0 or 1, one procedure is almost never used, weights "
        "become extreme and estimates rest on few patients; a warning is shown then.",
    ),
    (
        "Missing follow-up",
        "Follow-up scores and late events exist only for patients still followed. If those who "
        "did well (or badly) were lost more often, rates and differences are biased.",
    ),
    (
        "Multiple testing",
        "Eight outcomes are tested at once, so some small p-values arise by chance. The "
        "Benjamini–Hochberg p (BH) controls the false discovery rate across the outcomes; use "
        "it when scanning the table for 'significant' differences.",
    ),
    (
        "Clinical vs statistical significance",
        "With thousands of patients a tiny difference can be statistically significant yet "
        "irrelevant to patients (e.g. 0.1 point of pain). Judge the size and the interval of "
        "each effect against what matters clinically.",
    ),
)


def notes_text() -> str:
    """The plain-language notes as one text block (for the report)."""
    return " ".join(f"{title}: {text}" for title, text in METHOD_NOTES + LIMIT_NOTES)
