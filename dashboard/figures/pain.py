"""Figures and tables of the Pain relief page (pure functions: aggregates in, figures out).

Every builder takes the aggregate tables of :mod:`analysis.outcomes` (or the server-side
histogram of :func:`change_histogram`) and applies small-cell suppression itself: a count from
1 to the threshold is shown as "<11" and the values computed from it are left out of the
figure data, the hover text and the tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.errors import InsufficientDataError
from analysis.outcomes import ResponderDefinition
from analysis.proportions import ProportionComparison, compare_proportions
from dashboard.figures.common import (
    OKABE_ITO,
    PROCEDURE_COLOURS,
    PROCEDURE_SHORT,
    PROCEDURES,
    build_figure,
    empty_figure,
    interval_text,
    procedure_label,
)
from dashboard.suppression import format_count, is_small, label, suppress_table, threshold
from data.dictionary import PAIN_VISITS

SHORT = PROCEDURE_SHORT
VISIT_LABELS = {"baseline": "Baseline", **{key: value[0] for key, value in PAIN_VISITS.items()}}
TIME_POINTS = {key: value[0] for key, value in PAIN_VISITS.items()}  # day1 … month12
KINDS = {"relative": "Relative (% of baseline)", "absolute": "Absolute (points, 0–10 scale)"}
# Threshold choices with the source that uses them (see METHODS_TEXT).
THRESHOLDS = {
    "relative": {30.0: "≥30% (Cochrane; IMMPACT moderate)", 50.0: "≥50% (IMMPACT substantial)"},
    "absolute": {1.5: "≥1.5 points (VERTOS IV)", 2.0: "≥2 points (Farrar 2001)",
                 2.5: "≥2.5 points (Cochrane)", 3.0: "≥3 points (VERTOS II)"},
}
DEFAULT_THRESHOLDS = {"relative": 30.0, "absolute": 2.0}
DEFAULT_TIME_POINT = "month1"
#: How a death before the visit (without a score) counts: the responder analysis's options.
DEATHS = {"missing": "Missing (complete case)",
          "non_response": "Non-responder (composite: alive and responding)"}
DEATHS_TEXT = (
    "A patient who died before the visit has no score. Complete case (default): such a patient is "
    "missing follow-up, left out of the rate. Composite: death before the visit counts as "
    "non-response, so the rate is the share of patients alive and relieved at the visit; read the "
    "two together, since a complete-case rate can look better only because the sickest patients "
    "died."
)

METHODS_TEXT = (
    "A responder is a patient whose pain score (0–10 VAS/NRS) fell from baseline by at least the "
    "chosen threshold at the chosen visit. Thresholds in use: 30% or 2.5 points (Cochrane review "
    "CD006349, Buchbinder et al.: \"improvement in pain of 2.5 units or 30% or more from "
    "baseline\"); at least 3 points (VERTOS II, Klazen et al., Lancet 2010;376:1085-92); at least "
    "1.5 points (VERTOS IV, Firanescu et al., BMJ 2018;361:k1551); 30% and 50% as moderate and "
    "substantial improvement (IMMPACT, Dworkin et al., J Pain 2008;9:105-21); about 2 points or "
    "30% (Farrar et al., Pain 2001;94:149-58). Patients without a score at the visit (lost, not "
    "yet due or not recorded) are counted as missing follow-up, never as non-responders: the rate "
    "is responders / patients with a score (complete-case analysis, unbiased only if the missing "
    "scores are missing at random). Rates have 95% Wilson intervals (Clopper–Pearson at 0 or n "
    "responders); the KP − VP difference has Newcombe's hybrid score interval."
)


def definition_from_controls(time_point: str | None, kind: str | None,
                             relative: float | None = None,
                             absolute: float | None = None,
                             deaths: str | None = None) -> ResponderDefinition:
    """The responder definition chosen on the page; unknown or empty values fall back to the
    defaults (≥30% at month 1, or ≥2 points for an absolute definition; deaths before the
    visit missing)."""
    time_point = time_point if time_point in TIME_POINTS else DEFAULT_TIME_POINT
    kind = kind if kind in THRESHOLDS else "relative"
    chosen = relative if kind == "relative" else absolute
    try:
        value = float(chosen)
    except (TypeError, ValueError):
        value = DEFAULT_THRESHOLDS[kind]
    if value not in THRESHOLDS[kind]:
        value = DEFAULT_THRESHOLDS[kind]
    deaths = deaths if deaths in DEATHS else "missing"
    return ResponderDefinition(time_point, kind, value, deaths)


def _rows(table: pd.DataFrame) -> dict[str, pd.Series]:
    """The row of each procedure present in a one-row-per-procedure table."""
    if table.empty:
        return {}
    names = table["procedure"].astype(str)
    return {p: table[names == p].iloc[0] for p in PROCEDURES if (names == p).any()}


def _small(*counts) -> bool:
    return bool(is_small(list(counts)).any())


def _masked(values: pd.Series, hidden: np.ndarray) -> list:
    """Values as a plain list with None (no point, no hover value) where hidden or missing."""
    return [None if h or pd.isna(v) else float(v)
            for v, h in zip(values, hidden, strict=True)]


def _all_suppressed_note(traces: list[dict], what: str,
                         zero_is_blank: bool = False) -> list[dict]:
    """The annotation saying so when every value of `traces` is suppressed (rather than a
    blank chart), as a list of zero or one annotation dicts."""
    for trace in traces:
        if trace["type"] == "scatter" and "lines" not in (trace.get("mode") or ""):
            continue  # the markers of suppressed bins
        if any(v is not None and not (zero_is_blank and v == 0) for v in trace.get("y", ())):
            return []
    return [{"text": f"{what} not shown: fewer than {threshold() + 1} patients in every group",
             "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
             "font": {"size": 13, "color": "#555555"}}]


def _pct(value, digits: int = 1) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * value:.{digits}f}%"


# --------------------------------------------------------------------------------------------
# Responders
# --------------------------------------------------------------------------------------------


def rate_text(row: pd.Series | None) -> tuple[str, str]:
    """(value, detail) of one procedure's responder rate, suppressed when small."""
    if row is None:
        return "–", "no records"
    missing = f"{format_count(row.n_missing)} missing follow-up"
    if _small(row.responders, row.n_followed, row.n_followed - row.responders):
        # The complement too: "20 of 29 followed" would give 9 non-responders.
        return label(), f"suppressed (n followed {format_count(row.n_followed)}; {missing})"
    if pd.isna(row.rate):
        return "–", f"no patient with a score at this visit ({missing})"
    return (f"{100 * row.rate:.1f}%",
            f"95% CI {interval_text(row.low, row.high)}; {int(row.responders):,} of "
            f"{int(row.n_followed):,} followed; {missing}")


def compare_kp_vp(rates: pd.DataFrame) -> tuple[ProportionComparison | None, str]:
    """KP − VP responder difference, or None and the reason it is not shown."""
    rows = _rows(rates)
    if len(rows) < 2:
        return None, "needs both procedures in the selection"
    kp, vp = rows["kyphoplasty"], rows["vertebroplasty"]
    if _small(kp.responders, kp.n_followed, vp.responders, vp.n_followed):
        return None, f"suppressed: a group has {label()} patients or responders"
    try:
        return compare_proportions(int(kp.responders), int(kp.n_followed),
                                   int(vp.responders), int(vp.n_followed)), ""
    except InsufficientDataError as error:
        return None, f"not estimable ({error.reason})"


def difference_text(comparison: ProportionComparison | None, reason: str) -> tuple[str, str]:
    """(value, detail) of the KP − VP risk difference in percentage points."""
    if comparison is None:
        return "–", reason
    test = "χ² test" if comparison.test == "pearson_chi2" else "Fisher exact test"
    p = comparison.p_value
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    return (f"{100 * comparison.risk_difference:+.1f} pp",
            f"percentage points; 95% CI {100 * comparison.rd_low:+.1f} to "
            f"{100 * comparison.rd_high:+.1f} (Newcombe); {p_text} ({test})")


def responder_table(rates: pd.DataFrame) -> pd.DataFrame:
    """Display table of responder rates: counts as text, small cells suppressed."""
    columns = ["procedure", "n_followed", "n_missing", "responders", "rate_pct", "ci_95",
               "definition"]
    if rates.empty:
        return pd.DataFrame(columns=columns)
    order = {name: position for position, name in enumerate(PROCEDURES)}
    table = rates[rates["procedure"].astype(str).isin(PROCEDURES)].copy()
    table = table.iloc[np.argsort([order[str(p)] for p in table["procedure"]], kind="stable")]
    table["procedure"] = table["procedure"].astype(str).map(procedure_label)
    table["rate_pct"] = (100 * table["rate"]).round(1)
    table["ci_95"] = [interval_text(lo, hi) for lo, hi in zip(table["low"], table["high"],
                                                             strict=True)]
    missing = [format_count(v) for v in table["n_missing"]]
    shown = suppress_table(table, ["n_followed", "responders"], ["rate_pct", "ci_95"])
    shown["n_missing"] = missing
    if "n_died_before_visit" in table:  # the composite definition: deaths are non-responders
        shown["n_died_before_visit"] = [format_count(v) for v in table["n_died_before_visit"]]
        columns.insert(3, "n_died_before_visit")
    return shown[columns].reset_index(drop=True)


def responder_table_wide(rates: pd.DataFrame) -> pd.DataFrame:
    """The responder table turned round (one column per procedure) for narrow cards."""
    long = responder_table(rates)
    measures = {"n_followed": "Followed", "n_missing": "Missing follow-up",
                "responders": "Responders", "rate_pct": "Rate (%)", "ci_95": "95% CI"}
    if "n_died_before_visit" in long:
        measures = {"n_followed": "Followed or died before the visit",
                    "n_died_before_visit": "Died before the visit (non-responders)",
                    **{k: v for k, v in measures.items() if k != "n_followed"}}
    table = pd.DataFrame({"measure": list(measures.values())})
    rate_at = list(measures).index("rate_pct")
    for row in long.itertuples(index=False):
        values = [getattr(row, column) for column in measures]
        values[rate_at] = (None if values[rate_at] is None or pd.isna(values[rate_at])
                           else f"{values[rate_at]:.1f}")
        table[row.procedure] = values
    return table


def responder_figure(rates: pd.DataFrame) -> go.Figure:
    """Responder rate per procedure (bars) with 95% Wilson intervals; suppressed bars omitted."""
    rows = _rows(rates)
    if not rows or all(row.n_followed == 0 for row in rows.values()):
        return empty_figure("No patient has a pain score at this visit.")
    traces = []
    for procedure, row in rows.items():
        hidden = _small(row.responders, row.n_followed) or pd.isna(row.rate)
        value = None if hidden else 100 * row.rate
        hover = (f"{label()} (suppressed)" if _small(row.responders, row.n_followed)
                 else "no scores" if pd.isna(row.rate)
                 else f"{100 * row.rate:.1f}% (95% CI {interval_text(row.low, row.high)}), "
                      f"{int(row.responders):,} of {int(row.n_followed):,}")
        traces.append({
            "type": "bar", "x": [procedure_label(procedure)], "y": [value],
            "name": procedure_label(procedure),
            "marker": {"color": PROCEDURE_COLOURS[procedure]},
            "error_y": {"type": "data", "symmetric": False,
                        "array": [None if hidden else 100 * (row.high - row.rate)],
                        "arrayminus": [None if hidden else 100 * (row.rate - row.low)]},
            "text": [label() if hidden and _small(row.responders, row.n_followed)
                     else "" if hidden else f"{100 * row.rate:.1f}%"],
            "textposition": "inside", "insidetextanchor": "start",
            "insidetextfont": {"color": "#FFFFFF" if procedure == "vertebroplasty"
                               else "#000000"},
            "customdata": [[hover, format_count(row.n_missing)]],
            "hovertemplate": "%{customdata[0]}<br>missing follow-up: %{customdata[1]}"
                             "<extra></extra>",
        })
    layout = {"yaxis": {"title": {"text": "Responders (% of patients followed)"},
                        "range": [0, 100]},
              "xaxis": {"title": {"text": ""}},
              "annotations": _all_suppressed_note(traces, "Rates")}
    return build_figure(traces, layout, 320, {"margin": {"t": 40}}, showlegend=False, bargap=0.45)


def responder_summary(rates: pd.DataFrame, comparison: ProportionComparison | None,
                      reason: str) -> str:
    """Text alternative of the responder figure."""
    rows = _rows(rates)
    if not rows:
        return "No records in the selection."
    definition = rates["definition"].iloc[0]
    parts = [f"{procedure_label(p)} {rate_text(row)[0]} (n followed "
             f"{format_count(row.n_followed)}, missing {format_count(row.n_missing)})"
             for p, row in rows.items()]
    value, detail = difference_text(comparison, reason)
    return (f"Responders ({definition}): " + "; ".join(parts)
            + f". KP − VP difference: {value} ({detail}).")


# --------------------------------------------------------------------------------------------
# Pain trajectory
# --------------------------------------------------------------------------------------------


def _visit_position(visit: str) -> int:
    return list(VISIT_LABELS).index(visit)


def trajectory_figure(trajectory: pd.DataFrame) -> go.Figure:
    """Mean pain at each visit with 95% t intervals, by procedure; the number of patients with
    a score at each visit is written under the visit name."""
    frame = trajectory[trajectory["procedure"].astype(str).isin(PROCEDURES)] \
        if not trajectory.empty else trajectory
    if frame.empty or int(frame["n"].sum()) == 0:
        return empty_figure("No pain scores in the selection.")
    present = [p for p in PROCEDURES if (frame["procedure"].astype(str) == p).any()]
    offsets = dict(zip(present, np.linspace(-0.08, 0.08, len(present)) if len(present) > 1
                       else [0.0], strict=True))
    traces = []
    for procedure in present:
        part = frame[frame["procedure"].astype(str) == procedure]
        hidden = is_small(part["n"]) | part["mean"].isna().to_numpy()
        x = [_visit_position(v) + offsets[procedure] for v in part["visit"]]
        mean = _masked(part["mean"], hidden)
        custom = [[VISIT_LABELS[v], label() if is_small([n])[0] else f"{int(n):,}",
                   "suppressed" if h else f"{m:.2f} (95% CI {lo:.2f}–{hi:.2f})"
                   if pd.notna(lo) else f"{m:.2f}"]
                  for v, n, h, m, lo, hi in zip(part["visit"], part["n"], hidden, part["mean"],
                                                part["low"], part["high"], strict=True)]
        traces.append({
            "type": "scatter", "x": x, "y": mean, "mode": "lines+markers",
            "name": procedure_label(procedure),
            "line": {"color": PROCEDURE_COLOURS[procedure],
                     "dash": "solid" if procedure == "vertebroplasty" else "dash"},
            "marker": {"symbol": "circle" if procedure == "vertebroplasty" else "diamond",
                       "size": 8},
            "error_y": {"type": "data", "symmetric": False,
                        "array": _masked((part["high"] - part["mean"]), hidden),
                        "arrayminus": _masked((part["mean"] - part["low"]), hidden),
                        "thickness": 1.2, "width": 4},
            "customdata": custom,
            "hovertemplate": "%{customdata[0]}: mean %{customdata[2]}, n %{customdata[1]}"
                             "<extra>" + procedure_label(procedure) + "</extra>",
        })
    ticks = []
    for visit in VISIT_LABELS:
        counts = []
        for procedure in present:
            row = frame[(frame["procedure"].astype(str) == procedure) & (frame["visit"] == visit)]
            n = int(row["n"].iloc[0]) if len(row) else 0
            counts.append(f"{SHORT[procedure]} {format_count(n)}")
        ticks.append(f"{VISIT_LABELS[visit]}<br><span style='font-size:11px'>"
                     f"{'<br>'.join(counts)}</span>")
    layout = {"xaxis": {"tickmode": "array", "tickvals": list(range(len(VISIT_LABELS))),
                        "ticktext": ticks, "title": {"text": "Visit (n with a score)"},
                        "range": [-0.4, len(VISIT_LABELS) - 0.6]},
              "yaxis": {"title": {"text": "Mean pain score (0–10)"}, "range": [0, 10]},
              "annotations": _all_suppressed_note(traces, "Means")}
    return build_figure(traces, layout, 400, {"margin": {"b": 110}})


def trajectory_counts(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Patients with a score at each visit: one row per procedure, one column per visit."""
    rows = []
    for procedure in PROCEDURES:
        part = trajectory[trajectory["procedure"].astype(str) == procedure] \
            if not trajectory.empty else trajectory
        if part.empty:
            continue
        counts = dict(zip(part["visit"], part["n"], strict=True))
        rows.append({"procedure": procedure_label(procedure),
                     **{VISIT_LABELS[v]: format_count(counts.get(v, 0)) for v in VISIT_LABELS}})
    return pd.DataFrame(rows, columns=["procedure", *VISIT_LABELS.values()])


def trajectory_table(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Display table of the trajectory, one row per visit: for each procedure the number of
    patients with a score, the mean with its 95% CI, and the median (IQR); visits with 1–10
    patients show "<11" and no statistics."""
    if trajectory.empty:
        return pd.DataFrame(columns=["visit"])
    table = pd.DataFrame({"visit": list(VISIT_LABELS.values())})
    for procedure in PROCEDURES:
        part = trajectory[trajectory["procedure"].astype(str) == procedure]
        if part.empty:
            continue
        part = part.set_index("visit").reindex(list(VISIT_LABELS)).reset_index()
        part["n"] = part["n"].fillna(0)
        part["mean"] = part["mean"].round(2)
        part["ci"] = [interval_text(lo, hi, scale=1, digits=2, unit="")
                      for lo, hi in zip(part["low"], part["high"], strict=True)]
        part["median_iqr"] = [
            "" if pd.isna(m) else f"{m:.1f} ({interval_text(a, b, scale=1, digits=1, unit='')})"
            for m, a, b in zip(part["median"], part["q1"], part["q3"], strict=True)]
        shown = suppress_table(part, ["n"], ["mean", "ci", "median_iqr"])
        short = SHORT[procedure]
        table[f"{short} n"] = shown["n"].to_numpy()
        table[f"{short} mean"] = shown["mean"].to_numpy()
        table[f"{short} 95% CI"] = shown["ci"].to_numpy()
        table[f"{short} median (IQR)"] = shown["median_iqr"].to_numpy()
    return table


def trajectory_summary(trajectory: pd.DataFrame) -> str:
    frame = trajectory[trajectory["procedure"].astype(str).isin(PROCEDURES)] \
        if not trajectory.empty else trajectory
    if frame.empty or int(frame["n"].sum()) == 0:
        return "No pain scores in the selection."
    parts = []
    for procedure in PROCEDURES:
        part = frame[frame["procedure"].astype(str) == procedure].set_index("visit")
        if part.empty:
            continue
        ends = []
        for visit in ("baseline", "month1", "month12"):
            n = part.at[visit, "n"]
            mean = part.at[visit, "mean"]
            shown = label() if is_small([n])[0] else "–" if pd.isna(mean) else f"{mean:.1f}"
            ends.append(f"{VISIT_LABELS[visit].lower()} {shown} (n {format_count(n)})")
        parts.append(f"{procedure_label(procedure)}: mean pain " + ", ".join(ends))
    return ("; ".join(parts) + ". Means with 95% t intervals of the patients with a score at "
            "each visit; fewer patients are followed at later visits.")


# --------------------------------------------------------------------------------------------
# Distribution of pain change (server-side histogram)
# --------------------------------------------------------------------------------------------

_ABSOLUTE_EDGES = np.arange(-10.0, 11.0, 1.0)  # reduction in points, [a, a+1); 10 in the last bin
_RELATIVE_EDGES = np.arange(-100.0, 110.0, 10.0)  # reduction in % of baseline; < -100 → first bin


def _procedure_numbers(procedure: pd.Series) -> np.ndarray:
    """Position of each record's procedure in :data:`PROCEDURES`, ``len(PROCEDURES)`` for any
    other or a missing one (categoricals through their codes: no million-string compare)."""
    other = len(PROCEDURES)
    if isinstance(procedure.dtype, pd.CategoricalDtype):
        lookup = np.array([PROCEDURES.index(c) if c in PROCEDURES else other
                           for c in procedure.cat.categories] + [other], dtype=np.intp)
        return lookup[procedure.cat.codes.to_numpy()]  # code -1 (missing) takes the last
    numbers = np.full(len(procedure), other, dtype=np.intp)
    for position, name in enumerate(PROCEDURES):
        numbers[(procedure == name).to_numpy(dtype=bool, na_value=False)] = position
    return numbers


def change_histogram(records: pd.DataFrame, definition: ResponderDefinition) -> pd.DataFrame:
    """Counts of patients per bin of pain reduction from baseline at the definition's visit.

    The reduction is ``baseline − follow-up`` in points (absolute definitions; 1-point bins
    ``[a, a+1)``, 10 in the last bin) or in percent of the baseline score (relative
    definitions; 10% bins, increases of pain beyond 100% in the first bin, baseline 0 left
    out because a percentage of 0 is undefined). Patients need both scores.

    Returns one row per (procedure, bin) for every bin, including empty ones: ``procedure,
    bin, bin_low, bin_high, label, count, n, percent`` where ``n`` is the procedure's number
    of patients in the histogram and ``percent = 100 · count / n``.
    """
    columns = ["procedure", "bin", "bin_low", "bin_high", "label", "count", "n", "percent"]
    relative = definition.kind == "relative"
    edges = _RELATIVE_EDGES if relative else _ABSOLUTE_EDGES
    bins = len(edges) - 1
    if records.empty:
        return pd.DataFrame(columns=columns)
    baseline = records["pain_baseline"].to_numpy(dtype=float, na_value=np.nan)
    followup = records[definition.column].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        reduction = baseline - followup
        if relative:
            reduction = np.where(baseline > 0, 100.0 * reduction / baseline, np.nan)
    ok = ~np.isnan(reduction)
    # Scores have one decimal: round away binary noise (7.3 - 5.3 = 1.9999999999999996).
    values = np.round(np.where(ok, reduction, edges[0]), 6)
    index = np.clip(np.floor((values - edges[0]) / (edges[1] - edges[0])).astype(np.int64),
                    0, bins - 1)
    # One bincount for both procedures: (procedure, bin) numbered procedure-major, with a
    # last row for other procedures and a last column for patients without both scores.
    member = _procedure_numbers(records["procedure"])
    table = np.bincount(member * (bins + 1) + np.where(ok, index, bins),
                        minlength=(len(PROCEDURES) + 1) * (bins + 1))
    table = table.reshape(len(PROCEDURES) + 1, bins + 1)
    unit = "%" if relative else ""

    def signed(value: float) -> str:
        return f"{value:+g}{unit}" if value else f"0{unit}"

    labels = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        if relative and low == edges[0]:
            labels.append(f"< {signed(high)}")
        elif high == edges[-1]:
            labels.append(f"{signed(low)} to {signed(high)}")
        else:
            labels.append(f"{signed(low)} to <{signed(high)}")
    frames = []
    for position, name in enumerate(PROCEDURES):
        if not table[position].any():
            continue  # no record of this procedure
        counts = table[position, :bins]
        n = int(counts.sum())
        frames.append(pd.DataFrame({
            "procedure": name, "bin": np.arange(bins), "bin_low": edges[:-1],
            "bin_high": edges[1:], "label": labels, "count": counts, "n": n,
            "percent": 100.0 * counts / n if n else np.nan,
        }))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _axis_title(definition: ResponderDefinition) -> str:
    visit = TIME_POINTS[definition.time_point].lower()
    if definition.kind == "relative":
        return f"Pain reduction from baseline to {visit} (% of baseline; right = less pain)"
    return f"Pain reduction from baseline to {visit} (points; right = less pain)"


HIDDEN = "hidden"  # a bin hidden only so that a suppressed neighbour cannot be worked out


def hidden_bins(histogram: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(primary, secondary) suppression of histogram bins, aligned with the rows.

    Primary: bins of 1–10 patients. Secondary (complementary) suppression: each procedure's
    total ``n`` is shown elsewhere on the page (patients followed), so a single suppressed bin
    could be recovered as ``n`` minus the shown bins, and several could be if their total is
    small. While a procedure has suppressed bins that are fewer than two or total at most the
    threshold, the shown non-empty bin nearest to them (the smaller on a tie) is hidden as
    well: small bins sit in the tails, so the hidden neighbour does too, and the middle of the
    distribution, near the responder threshold, stays visible.
    """
    counts = histogram["count"].to_numpy(dtype=np.int64)
    primary = is_small(counts)
    secondary = np.zeros(len(counts), dtype=bool)
    names = histogram["procedure"].astype(str).to_numpy()
    for procedure in PROCEDURES:
        rows = np.flatnonzero(names == procedure)
        hidden = primary[rows].copy()
        mine = counts[rows]
        while hidden.any() and (hidden.sum() < 2 or mine[hidden].sum() <= threshold()):
            candidates = np.flatnonzero(~hidden & (mine > 0))
            if candidates.size == 0:
                break
            distance = np.abs(candidates[:, None] - np.flatnonzero(hidden)[None, :]).min(axis=1)
            pick = candidates[np.lexsort((mine[candidates], distance))[0]]
            hidden[pick] = True
            secondary[rows[pick]] = True
    return primary, secondary


def histogram_figure(histogram: pd.DataFrame, definition: ResponderDefinition) -> go.Figure:
    """Share of patients per bin of pain reduction, by procedure, with the responder threshold.

    Suppressed bins (1–10 patients, and the bins hidden to protect them) have no bar; a cross
    at 0 marks them and its hover says "<11" (or "hidden").
    """
    if histogram.empty or int(histogram.drop_duplicates("procedure")["n"].sum()) == 0:
        return empty_figure("No patient has both a baseline and a follow-up score at this visit.")
    traces = []
    width = float(histogram["bin_high"].iloc[0] - histogram["bin_low"].iloc[0])
    primary, secondary = hidden_bins(histogram)
    names = histogram["procedure"].astype(str).to_numpy()
    for procedure in PROCEDURES:
        mine = names == procedure
        part = histogram[mine]
        if part.empty:
            continue
        small, extra = primary[mine], secondary[mine]
        hidden = small | extra
        centre = (part["bin_low"] + width / 2).to_numpy()
        shown_count = [label() if s else HIDDEN if e else f"{int(c):,}"
                       for s, e, c in zip(small, extra, part["count"], strict=True)]
        traces.append({
            "type": "bar", "x": centre, "y": _masked(part["percent"], hidden),
            "name": procedure_label(procedure), "legendgroup": procedure,
            "marker": {"color": PROCEDURE_COLOURS[procedure],
                       "pattern": {"shape": "" if procedure == "vertebroplasty" else "/"}},
            "customdata": [[lab, c, "" if h else f"{p:.1f}%"]
                           for lab, c, h, p in zip(part["label"], shown_count, hidden,
                                                   part["percent"].fillna(0), strict=True)],
            "hovertemplate": "%{customdata[0]}: %{customdata[1]} patients (%{customdata[2]})"
                             "<extra>" + procedure_label(procedure) + "</extra>",
        })
        if hidden.any():
            traces.append({
                "type": "scatter", "x": centre[hidden], "y": [0] * int(hidden.sum()),
                "mode": "markers",
                "marker": {"symbol": "x-thin-open", "size": 9,
                           "color": PROCEDURE_COLOURS[procedure],
                           "line": {"width": 2, "color": PROCEDURE_COLOURS[procedure]}},
                "name": f"{SHORT[procedure]}: suppressed bin ({label()} patients)",
                "legendgroup": procedure,
                "customdata": [[lab, c] for lab, c, h in zip(part["label"], shown_count, hidden,
                                                             strict=True) if h],
                "hovertemplate": "%{customdata[0]}: %{customdata[1]} patients (suppressed)"
                                 "<extra>" + procedure_label(procedure) + "</extra>",
            })
    cut = definition.threshold
    edges = _RELATIVE_EDGES if definition.kind == "relative" else _ABSOLUTE_EDGES
    ticks = edges[::2] if definition.kind == "relative" else edges
    ticktext = [f"{t:+g}" if t else "0" for t in ticks]
    layout = {
        # The responder threshold: a vertical line over the whole plot height.
        "shapes": [{"type": "line", "x0": cut, "x1": cut, "xref": "x", "y0": 0, "y1": 1,
                    "yref": "y domain",
                    "line": {"color": OKABE_ITO["black"], "dash": "dot", "width": 1.5}}],
        "annotations": [{"x": cut, "y": 1, "yref": "paper", "yanchor": "bottom",
                         "showarrow": False, "xanchor": "left",
                         "text": f" responder threshold ({definition.label})",
                         "font": {"size": 11}},
                        *_all_suppressed_note(traces, "Bins", zero_is_blank=True)],
        "xaxis": {"title": {"text": _axis_title(definition)}, "tickmode": "array",
                  "tickvals": ticks, "ticktext": ticktext, "range": [edges[0], edges[-1]]},
        "yaxis": {"title": {"text": "Patients (% of those with both scores)"},
                  "rangemode": "tozero"},
    }
    # The threshold's label sits above the plot, below the legend.
    return build_figure(traces, layout, 400, {"margin": {"t": 92}},
                   barmode="group", bargap=0.15)


def histogram_table(histogram: pd.DataFrame, by_bin: bool = False) -> pd.DataFrame:
    """Display table of the histogram: one column per bin (like the chart's x axis), rows of
    patients and percent per procedure; suppressed bins show "<11" (or "hidden") and no
    percent. Bins as columns keep the page's grid short (at most four rows); ``by_bin=True``
    gives one row per bin instead (for the report)."""
    if histogram.empty:
        return pd.DataFrame(columns=["procedure", "measure"])
    primary, secondary = hidden_bins(histogram)
    names = histogram["procedure"].astype(str).to_numpy()
    rows = []
    for procedure in PROCEDURES:
        mine = names == procedure
        part = histogram[mine]
        if part.empty:
            continue
        small, extra = primary[mine], secondary[mine]
        counts = [label() if s else HIDDEN if e else f"{int(c):,}"
                  for s, e, c in zip(small, extra, part["count"], strict=True)]
        percents = [None if s or e else round(float(p), 1)
                    for s, e, p in zip(small, extra, part["percent"], strict=True)]
        labels = list(part["label"])
        rows.append({"procedure": SHORT[procedure], "measure": "patients",
                     **dict(zip(labels, counts, strict=True))})
        rows.append({"procedure": SHORT[procedure], "measure": "% of patients",
                     **dict(zip(labels, percents, strict=True))})
    table = pd.DataFrame(rows)
    if by_bin:
        table = table.set_index(["procedure", "measure"]).T
        table.columns = [f"{p} {m}" for p, m in table.columns]
        table = table.rename_axis("reduction").reset_index()
    return table


def histogram_summary(histogram: pd.DataFrame, definition: ResponderDefinition) -> str:
    if histogram.empty or int(histogram.drop_duplicates("procedure")["n"].sum()) == 0:
        return "No patient has both a baseline and a follow-up score at this visit."
    parts = []
    for procedure in PROCEDURES:
        part = histogram[histogram["procedure"] == procedure]
        if part.empty:
            continue
        n = int(part["n"].iloc[0])
        primary, secondary = hidden_bins(part)
        shown = part[~(primary | secondary)]
        if is_small([n])[0] or shown.empty or n == 0:
            parts.append(f"{procedure_label(procedure)}: n {format_count(n)}")
            continue
        mode = shown.loc[shown["count"].idxmax()]
        parts.append(f"{procedure_label(procedure)}: n {n:,}, most common reduction "
                     f"{mode['label']} ({mode['percent']:.1f}%)")
    unit = "percent of baseline" if definition.kind == "relative" else "points"
    return (f"Distribution of pain reduction at {TIME_POINTS[definition.time_point].lower()} in "
            f"{unit}. " + "; ".join(parts) + f". Bins with 1–{threshold()} patients (and, where "
            "needed, a neighbouring bin that would reveal them) are suppressed; the dotted line "
            "marks the responder threshold.")


# --------------------------------------------------------------------------------------------
# ODI and opioids
# --------------------------------------------------------------------------------------------

ODI_LABELS = {"month1": "Month 1", "month12": "Month 12"}


def odi_table(odi: pd.DataFrame) -> pd.DataFrame:
    columns = ["procedure", "time_point", "n", "mean_baseline", "mean_followup", "mean_change",
               "ci_95"]
    if odi.empty:
        return pd.DataFrame(columns=columns)
    table = odi[odi["procedure"].astype(str).isin(PROCEDURES)].copy()
    table["procedure"] = table["procedure"].astype(str).map(procedure_label)
    table["time_point"] = table["time_point"].map(ODI_LABELS)
    for column in ("mean_baseline", "mean_followup", "mean_change"):
        table[column] = table[column].round(1)
    table["ci_95"] = [interval_text(lo, hi, scale=1, digits=1, unit="")
                      for lo, hi in zip(table["low"], table["high"], strict=True)]
    shown = suppress_table(table, ["n"], ["mean_baseline", "mean_followup", "mean_change",
                                          "ci_95"])
    return shown[columns].reset_index(drop=True)


def odi_figure(odi: pd.DataFrame) -> go.Figure:
    """Mean ODI change (follow-up − baseline, paired) with 95% CI, by visit and procedure."""
    frame = odi[odi["procedure"].astype(str).isin(PROCEDURES)] if not odi.empty else odi
    if frame.empty or int(frame["n"].sum()) == 0:
        return empty_figure("No patient has a baseline and a follow-up ODI.")
    traces = []
    for procedure in PROCEDURES:
        part = frame[frame["procedure"].astype(str) == procedure]
        if part.empty:
            continue
        hidden = is_small(part["n"]) | part["mean_change"].isna().to_numpy()
        traces.append({
            "type": "bar", "x": part["time_point"].map(ODI_LABELS),
            "y": _masked(part["mean_change"], hidden), "name": procedure_label(procedure),
            "marker": {"color": PROCEDURE_COLOURS[procedure],
                       "pattern": {"shape": "" if procedure == "vertebroplasty" else "/"}},
            "error_y": {"type": "data", "symmetric": False,
                        "array": _masked((part["high"] - part["mean_change"]), hidden),
                        "arrayminus": _masked((part["mean_change"] - part["low"]), hidden)},
            "customdata": [[label() if is_small([n])[0] else f"{int(n):,}",
                            "suppressed" if h else "–" if pd.isna(m)
                            else f"{m:+.1f} (95% CI {interval_text(lo, hi, 1, 1, '')})"]
                           for n, h, m, lo, hi in zip(part["n"], hidden, part["mean_change"],
                                                      part["low"], part["high"], strict=True)],
            "hovertemplate": "%{x}: mean change %{customdata[1]}, n %{customdata[0]}"
                             "<extra>" + procedure_label(procedure) + "</extra>",
        })
    layout = {"yaxis": {"title": {"text": "Mean ODI change (points)"}},
              "xaxis": {"title": {"text": "Visit, paired with baseline<br>(below 0 = less "
                                          "disability)"}},
              "annotations": _all_suppressed_note(traces, "Means")}
    return build_figure(traces, layout, 340, {"margin": {"t": 64, "l": 75}}, barmode="group")


def odi_summary(odi: pd.DataFrame) -> str:
    frame = odi[odi["procedure"].astype(str).isin(PROCEDURES)] if not odi.empty else odi
    if frame.empty or int(frame["n"].sum()) == 0:
        return "No patient has a baseline and a follow-up ODI."
    parts = []
    for row in frame.itertuples():
        value = (label() if is_small([row.n])[0] else "–" if pd.isna(row.mean_change)
                 else f"{row.mean_change:+.1f}")
        parts.append(f"{procedure_label(str(row.procedure))} at "
                     f"{ODI_LABELS[row.time_point].lower()}: {value} (n {format_count(row.n)})")
    return ("Mean change of the Oswestry Disability Index from baseline (paired; negative = less "
            "disability): " + "; ".join(parts) + ".")


def opioid_table(opioids: pd.DataFrame) -> pd.DataFrame:
    """Display table of opioid use before and at 1 month in the same patients."""
    columns = ["procedure", "n_paired", "on_before", "pct_before", "ci_before", "on_after",
               "pct_after", "ci_after", "stopped", "started", "p_mcnemar"]
    if opioids.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for procedure, row in _rows(opioids).items():
        row_small = _small(row.n_paired)
        before_small = row_small or _small(row.on_before)
        after_small = row_small or _small(row.on_after)
        discordant_small = row_small or _small(row.stopped, row.started)
        rows.append({
            "procedure": procedure_label(procedure),
            "n_paired": format_count(row.n_paired),
            "on_before": label() if row_small else format_count(row.on_before),
            "pct_before": None if before_small else _round(100 * row.rate_before),
            "ci_before": None if before_small else interval_text(row.low_before, row.high_before),
            "on_after": label() if row_small else format_count(row.on_after),
            "pct_after": None if after_small else _round(100 * row.rate_after),
            "ci_after": None if after_small else interval_text(row.low_after, row.high_after),
            "stopped": label() if row_small else format_count(row.stopped),
            "started": label() if row_small else format_count(row.started),
            "p_mcnemar": None if discordant_small or pd.isna(row.p_mcnemar)
            else _p_text(row.p_mcnemar),
        })
    return pd.DataFrame(rows, columns=columns)


def _round(value, digits: int = 1):
    return None if pd.isna(value) else round(float(value), digits)


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def opioid_figure(opioids: pd.DataFrame) -> go.Figure:
    """Share of patients on opioids before and at 1 month (same patients), by procedure."""
    rows = _rows(opioids)
    if not rows or all(row.n_paired == 0 for row in rows.values()):
        return empty_figure("No patient has opioid use recorded before and at 1 month.")
    traces = []
    moments = ("Before procedure", "Month 1")
    for procedure, row in rows.items():
        values, plus, minus, custom = [], [], [], []
        for suffix in ("before", "after"):
            count, rate = getattr(row, f"on_{suffix}"), getattr(row, f"rate_{suffix}")
            low, high = getattr(row, f"low_{suffix}"), getattr(row, f"high_{suffix}")
            hidden = _small(row.n_paired, count) or pd.isna(rate)
            values.append(None if hidden else 100 * rate)
            plus.append(None if hidden else 100 * (high - rate))
            minus.append(None if hidden else 100 * (rate - low))
            custom.append([
                label() if _small(row.n_paired) else format_count(count),
                format_count(row.n_paired),
                "suppressed" if hidden
                else f"{100 * rate:.1f}% (95% CI {interval_text(low, high)})",
            ])
        traces.append({
            "type": "bar", "x": list(moments), "y": values, "name": procedure_label(procedure),
            "marker": {"color": PROCEDURE_COLOURS[procedure],
                       "pattern": {"shape": "" if procedure == "vertebroplasty" else "/"}},
            "error_y": {"type": "data", "symmetric": False, "array": plus,
                        "arrayminus": minus},
            "customdata": custom,
            "hovertemplate": "%{x}: %{customdata[2]}, %{customdata[0]} of %{customdata[1]}"
                             "<extra>" + procedure_label(procedure) + "</extra>",
        })
    layout = {"yaxis": {"title": {"text": "Patients on opioids (%)"}, "range": [0, 100]},
              "xaxis": {"title": {"text": "Same patients, before and at 1 month"}},
              "annotations": _all_suppressed_note(traces, "Rates")}
    return build_figure(traces, layout, 340, {"margin": {"t": 64, "l": 75}}, barmode="group")


def opioid_summary(opioids: pd.DataFrame) -> str:
    rows = _rows(opioids)
    if not rows or all(row.n_paired == 0 for row in rows.values()):
        return "No patient has opioid use recorded before and at 1 month."
    parts = []
    for procedure, row in rows.items():
        if _small(row.n_paired):
            parts.append(f"{procedure_label(procedure)}: n {label()}, suppressed")
            continue
        before = label() if _small(row.on_before) else _pct(row.rate_before)
        after = label() if _small(row.on_after) else _pct(row.rate_after)
        parts.append(f"{procedure_label(procedure)}: {before} before and {after} at month 1 "
                     f"(n {int(row.n_paired):,} with both recorded)")
    return "Opioid use in the same patients: " + "; ".join(parts) + "."
