"""Figures and tables of the Durations and resources page.

Box plots are drawn from server-side statistics only (quartiles from
:func:`analysis.outcomes.resource_summary`, Tukey whiskers computed here in pandas): no record
value is sent to the browser. Groups with 1–10 values are suppressed (no box, "<11" shown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.filters import LEVEL_GROUPS
from analysis.outcomes import RESOURCE_VARIABLES, resource_summary
from dashboard.figures.common import (
    OKABE_ITO,
    PROCEDURE_COLOURS,
    PROCEDURE_SHORT,
    PROCEDURES,
    base_layout,
    empty_figure,
    legend_below_toolbar,
    procedure_label,
)
from dashboard.suppression import format_count, is_small, label, suppress_table

SHORT = PROCEDURE_SHORT
TABLE_NAMES = SHORT  # compact tables: VP / KP (spelled out in the page header)
SHORT_MEASURES = {"duration_min": "Duration (min)", "cement_volume_ml": "Cement (mL)",
                  "length_of_stay_days": "Length of stay (days)"}
GROUP_TEXT = {"levels_group": "levels treated: {}", "anesthesia": "anaesthesia: {}"}
NOT_RECORDED = "not recorded"
LEVEL_ORDER = [*LEVEL_GROUPS, NOT_RECORDED]
ANESTHESIA_ORDER = ["local", "sedation", "general", NOT_RECORDED]
GROUP_LABELS = {"levels_group": "Levels treated", "anesthesia": "Anaesthesia"}
STAT_COLUMNS = ["n", "missing", "mean", "sd", "median", "q1", "q3", "min", "max",
                "lowerfence", "upperfence"]
WHISKER = 1.5  # Tukey: whiskers reach the furthest value within 1.5 IQR of the box


def variable_label(variable: str) -> str:
    name, unit = RESOURCE_VARIABLES.get(variable, (variable.replace("_", " "), ""))
    return f"{name} ({unit})" if unit else name


def _categorical(column: pd.Series, categories: list[str]) -> pd.Categorical:
    """``pd.Categorical(column, categories)`` (values outside the categories become missing),
    recoding a categorical column's codes instead of comparing a million labels."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        target = pd.Index(categories)
        recode = np.append(target.get_indexer(column.cat.categories), -1)
        return pd.Categorical.from_codes(recode[column.cat.codes.to_numpy()], categories=target)
    return pd.Categorical(column.astype(object), categories=categories)


def resource_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The few columns the page needs: procedure, levels group, anaesthesia and the resource
    variables as floats (a narrow copy, so 1,000,000 records stay cheap)."""
    levels = records["levels_treated"].to_numpy(dtype="float64", na_value=np.nan)
    group = np.full(len(records), LEVEL_ORDER.index(NOT_RECORDED), dtype=np.int8)
    for code, (low, high) in enumerate(LEVEL_GROUPS.values()):
        group[(levels >= low) & (levels <= high)] = code
    anesthesia = _categorical(records["anesthesia"], ANESTHESIA_ORDER)
    anesthesia = anesthesia.fillna(NOT_RECORDED)  # unknown values count as not recorded
    frame = pd.DataFrame({
        "procedure": _categorical(records["procedure"], list(PROCEDURES)),
        "levels_group": pd.Categorical.from_codes(group, categories=LEVEL_ORDER),
        "anesthesia": anesthesia,
    }, index=records.index)
    for variable in RESOURCE_VARIABLES:
        frame[variable] = records[variable].to_numpy(dtype="float64", na_value=np.nan)
    return frame


def procedure_durations(frame: pd.DataFrame,
                        procedures: tuple[str, ...] = PROCEDURES) -> dict[str, np.ndarray]:
    """The recorded durations of each procedure, in record order: what
    ``frame.loc[frame.procedure == p, "duration_min"].dropna()`` gives, without pandas
    selections (a categorical procedure column compares codes).

    Examples
    --------
    >>> frame = pd.DataFrame({"procedure": ["kyphoplasty", "vertebroplasty", "kyphoplasty"],
    ...                       "duration_min": [40.0, 30.0, None]})
    >>> {p: v.tolist() for p, v in procedure_durations(frame).items()}
    {'vertebroplasty': [30.0], 'kyphoplasty': [40.0]}
    """
    durations = frame["duration_min"].to_numpy(dtype="float64", na_value=np.nan)
    recorded = ~np.isnan(durations)
    return {p: durations[rows_matching(frame["procedure"], p) & recorded] for p in procedures}


def box_statistics(frame: pd.DataFrame, by: tuple[str, ...], variable: str,
                   stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per group: the statistics of :func:`resource_summary` plus Tukey whisker ends.

    ``lowerfence`` / ``upperfence`` are the smallest / largest values within 1.5 IQR of the
    quartiles (Tukey 1977), computed on the server so the figure needs no raw values.
    ``stats``: rows of an earlier ``resource_summary(frame, by)`` call, to avoid computing
    them again (with ``fences=WHISKER`` they already hold the whisker ends).
    """
    if stats is None:
        stats = resource_summary(frame, by=by, variables=[variable], fences=WHISKER)
    stats = stats[(stats["variable"] == variable) & (stats["n"] > 0)].reset_index(drop=True)
    if "lowerfence" in stats.columns:
        return stats
    if stats.empty:
        return stats.assign(lowerfence=pd.Series(dtype=float), upperfence=pd.Series(dtype=float))
    iqr = stats["q3"] - stats["q1"]
    lows = (stats["q1"] - WHISKER * iqr).to_numpy()
    highs = (stats["q3"] + WHISKER * iqr).to_numpy()
    values = frame[variable].to_numpy(dtype="float64", na_value=np.nan)
    lower, upper = np.full(len(stats), np.nan), np.full(len(stats), np.nan)
    # One row mask per group of the summary (a handful: procedure x levels or anaesthesia),
    # then the whisker ends within it: no groupby over every record.
    for i in range(len(stats)):
        rows = np.ones(len(frame), dtype=bool)
        for column in by:
            rows &= rows_matching(frame[column], stats[column].iloc[i])
        group = values[rows]
        inside = group[group >= lows[i]]
        lower[i] = inside.min() if inside.size else np.nan
        inside = group[group <= highs[i]]
        upper[i] = inside.max() if inside.size else np.nan
    return stats.assign(lowerfence=lower, upperfence=upper)


def rows_matching(column: pd.Series, key) -> np.ndarray:
    """Rows of ``column`` equal to ``key`` (a missing key matches the missing rows); a
    categorical column compares its codes, which is much faster than comparing labels.

    Examples
    --------
    >>> rows_matching(pd.Series(["a", None, "b"], dtype="category"), "a").tolist()
    [True, False, False]
    """
    if pd.isna(key):
        return column.isna().to_numpy()
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories
        if key not in categories:
            return np.zeros(len(column), dtype=bool)
        return column.cat.codes.to_numpy() == categories.get_loc(key)
    return (column == key).fillna(False).to_numpy(dtype=bool)


def _visible(stats: pd.DataFrame) -> np.ndarray:
    return ~is_small(stats["n"]) & (stats["n"].to_numpy() > 0)


def _add_boxes(figure: go.Figure, stats: pd.DataFrame, x_column: str | None,
               row: int | None = None, col: int | None = None,
               show_legend: bool = True,
               short_names: bool = False) -> list[tuple[str, str]]:
    """One box trace per procedure; returns (procedure, group) of each suppressed group."""
    hidden = []
    for procedure in PROCEDURES:
        part = stats[stats["procedure"].astype(str) == procedure]
        if part.empty:
            continue
        keep = _visible(part)
        for _, small in part[~keep].iterrows():
            hidden.append((SHORT[procedure], str(small[x_column]) if x_column else ""))
        shown = part[keep]
        if shown.empty:
            continue
        x = shown[x_column].astype(str).tolist() if x_column else [SHORT[procedure]] * len(shown)
        figure.add_trace(go.Box(
            x=x, q1=shown["q1"].tolist(), median=shown["median"].tolist(),
            q3=shown["q3"].tolist(), lowerfence=shown["lowerfence"].tolist(),
            upperfence=shown["upperfence"].tolist(), mean=shown["mean"].tolist(),
            boxmean=True, boxpoints=False,
            name=SHORT[procedure] if short_names else procedure_label(procedure),
            legendgroup=procedure, showlegend=show_legend,
            marker_color=PROCEDURE_COLOURS[procedure], line_width=1.5,
            hoverinfo="x+y+name",
        ), **({"row": row, "col": col} if row else {}))
    return hidden


def _hidden_note(figure: go.Figure, hidden: list[tuple[str, str]], shift: int) -> None:
    """Say below the plot which groups are not drawn, e.g. "VP: 2, 3+; KP: 3+"."""
    if not hidden:
        return
    by_procedure: dict[str, list[str]] = {}
    for procedure, group in hidden:
        by_procedure.setdefault(procedure, []).append(group)
    parts = [f"{p}: {', '.join(groups)}" for p, groups in by_procedure.items()]
    figure.add_annotation(
        text=f"Not drawn ({label()} values): " + "; ".join(parts),
        showarrow=False, xref="paper", yref="paper", x=0, y=0, yshift=-shift, xanchor="left",
        yanchor="top", font={"size": 12, "color": "#555"})


def resource_box_figure(stats_by_variable: dict[str, pd.DataFrame]) -> go.Figure:
    """Duration, cement volume and length of stay by procedure: one box panel each."""
    variables = [v for v, s in stats_by_variable.items() if not s.empty]
    if not variables:
        return empty_figure("No durations, cement volumes or lengths of stay recorded.")
    figure = make_subplots(rows=1, cols=len(variables), horizontal_spacing=0.08,
                           subplot_titles=[RESOURCE_VARIABLES[v][0] for v in variables])
    hidden = []
    for index, variable in enumerate(variables, start=1):
        notes = _add_boxes(figure, stats_by_variable[variable], None, 1, index, index == 1)
        hidden += [(p, RESOURCE_VARIABLES[variable][0].lower()) for p, _ in notes]
        figure.update_yaxes(title_text=RESOURCE_VARIABLES[variable][1], rangemode="tozero",
                            row=1, col=index)
    base_layout(figure, height=420, boxmode="overlay")
    figure.update_layout(margin={"t": 95, "b": 70}, legend=legend_below_toolbar(420))
    _hidden_note(figure, hidden, shift=30)
    return figure


def grouped_box_figure(stats: pd.DataFrame, group: str, variable: str = "duration_min") -> go.Figure:
    """One variable by a grouping (levels treated, anaesthesia), VP and KP side by side."""
    if stats.empty:
        return empty_figure("No durations recorded for the selection.")
    figure = go.Figure()
    hidden = _add_boxes(figure, stats, group, short_names=True)  # short legend: half-width card
    order = LEVEL_ORDER if group == "levels_group" else ANESTHESIA_ORDER
    present = [g for g in order if g in set(stats[group].astype(str))]
    figure.update_xaxes(title_text=GROUP_LABELS.get(group, group), categoryorder="array",
                        categoryarray=present)
    figure.update_yaxes(title_text=variable_label(variable), rangemode="tozero")
    base_layout(figure, height=400, boxmode="group")
    figure.update_layout(margin={"t": 70, "b": 100 if hidden else 60},
                         legend=legend_below_toolbar(400))
    _hidden_note(figure, hidden, shift=62)
    return figure


def setting_figure(mix: pd.DataFrame) -> go.Figure:
    """Outpatient share per procedure with 95% Wilson intervals; small cells suppressed."""
    if mix.empty or int(mix["n"].sum()) == 0:
        return empty_figure("No care setting recorded for the selection.")
    figure = go.Figure()
    for procedure in PROCEDURES:
        part = mix[mix["procedure"].astype(str) == procedure]
        if part.empty:
            continue
        row = part.iloc[0]
        small = bool(is_small([row.n])[0] or is_small([row.outpatient])[0]
                     or is_small([row.inpatient])[0])
        name = procedure_label(procedure)
        if small or row.n == 0:
            text = f"{label()} — suppressed" if small else "no setting recorded"
            figure.add_bar(x=[name], y=[None], name=name, width=0.5,
                           marker_color=PROCEDURE_COLOURS[procedure],
                           customdata=[[text]], hovertemplate="%{x}: %{customdata[0]}<extra></extra>")
            figure.add_annotation(x=name, y=0, text=text, showarrow=False, yanchor="bottom",
                                  font={"color": "#555"})
            continue
        share = 100 * row.share_outpatient
        figure.add_bar(
            x=[name], y=[share], name=name, marker_color=PROCEDURE_COLOURS[procedure],
            error_y={"type": "data", "symmetric": False, "array": [100 * row.high - share],
                     "arrayminus": [share - 100 * row.low], "color": OKABE_ITO["black"]},
            text=[f"{share:.1f}%"], textposition="inside", insidetextanchor="start",
            width=0.5,
            customdata=[[f"{int(row.outpatient):,}", f"{int(row.n):,}",
                         f"{100 * row.low:.1f}–{100 * row.high:.1f}%"]],
            hovertemplate="%{x}: %{y:.1f}% outpatient (%{customdata[0]} of %{customdata[1]}; "
                          "95% CI %{customdata[2]})<extra></extra>")
    figure.update_yaxes(title_text="Outpatient (incl. 23-hour stay), %", range=[0, 100])
    base_layout(figure, height=340, showlegend=False)
    return figure


# --------------------------------------------------------------------------------------------
# Tables and text alternatives
# --------------------------------------------------------------------------------------------


def _mean_sd(mean, sd, digits: int) -> str | None:
    if pd.isna(mean):
        return None
    return f"{mean:.{digits}f} ({sd:.{digits}f})" if pd.notna(sd) else f"{mean:.{digits}f}"


def _median_iqr(median, q1, q3, digits: int) -> str | None:
    if pd.isna(median):
        return None
    return f"{median:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}]"


DIGITS = {"duration_min": 0, "cement_volume_ml": 1, "length_of_stay_days": 1}


def summary_table(parts: list[tuple[str, str, pd.DataFrame]]) -> pd.DataFrame:
    """Display table: measure, group, procedure, n, missing, mean (SD), median [IQR].

    ``parts`` are ``(variable, group column or "", box statistics)``. Rows with 1–10 values
    show n as "<11" and no statistic. Minimum and maximum are not shown: each is one
    patient's value.
    """
    rows = []
    for variable, group, stats in parts:
        digits = DIGITS.get(variable, 1)
        for _, row in stats.iterrows():
            rows.append({
                "measure": SHORT_MEASURES.get(variable, variable),
                "group": (GROUP_TEXT[group].format(row[group]) if group else "all"),
                "procedure": TABLE_NAMES.get(str(row["procedure"]), str(row["procedure"])),
                "n": int(row["n"]),
                "missing": format_count(int(row["missing"])),
                "mean_sd": _mean_sd(row["mean"], row["sd"], digits),
                "median_iqr": _median_iqr(row["median"], row["q1"], row["q3"], digits),
            })
    columns = ["measure", "group", "procedure", "n", "missing", "mean_sd", "median_iqr"]
    table = pd.DataFrame(rows, columns=columns)
    shown = suppress_table(table, ["n"], ["mean_sd", "median_iqr"])
    return shown.drop(columns="suppressed")


#: Minimum widths (px) of the wide text columns of the summary table.
WIDE_COLUMNS = {"measure": 190, "group": 170, "median_iqr": 130, "mean_sd": 100}
SUMMARY_LABELS = {"mean_sd": "mean (SD)", "median_iqr": "median [IQR]", "n": "n (with a value)",
                  "missing": "missing"}


def setting_table(mix: pd.DataFrame) -> pd.DataFrame:
    """Display table of the setting mix; small counts "<11" and their share hidden."""
    table = pd.DataFrame({
        "procedure": [TABLE_NAMES.get(str(p), str(p)) for p in mix["procedure"]],
        "n": mix["n"].astype(int), "outpatient": mix["outpatient"].astype(int),
        "inpatient": mix["inpatient"].astype(int),
        "missing": [format_count(int(v)) for v in mix["missing"]],
        "outpatient_share": [None if pd.isna(v) else f"{100 * v:.1f}%" for v in mix["share_outpatient"]],
        "ci_95": [None if pd.isna(lo) else f"{100 * lo:.1f}–{100 * hi:.1f}%"
                  for lo, hi in zip(mix["low"], mix["high"], strict=True)],
        "method": mix["method"].astype(str),
    })
    shown = suppress_table(table, ["n", "outpatient", "inpatient"],
                           ["outpatient_share", "ci_95", "method"])
    return shown.drop(columns="suppressed")


def difference_rows(comparison, note: str = "") -> pd.DataFrame:
    """The KP − VP duration difference as a small display table."""
    if comparison is None:
        return pd.DataFrame(columns=["estimate", "value", "ci_95", "p_value"])
    hl_how = ("exact" if comparison.hl_method == "exact" else "normal approximation")
    return pd.DataFrame([
        {"estimate": "Mean difference KP − VP (Welch)",
         "value": f"{comparison.mean_difference:+.1f} min",
         "ci_95": f"{comparison.md_low:+.1f} to {comparison.md_high:+.1f}"
         if np.isfinite(comparison.md_low) else "–",
         "p_value": _p(comparison.p_welch)},
        {"estimate": f"Hodges–Lehmann shift KP − VP ({hl_how})",
         "value": f"{comparison.hodges_lehmann:+.1f} min",
         "ci_95": f"{comparison.hl_low:+.1f} to {comparison.hl_high:+.1f}",
         "p_value": _p(comparison.p_mannwhitney) + " (Mann–Whitney)"},
    ])


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def resource_summary_text(stats_by_variable: dict[str, pd.DataFrame]) -> str:
    """Text alternative of the resource box plots: medians per procedure."""
    parts = []
    for variable, stats in stats_by_variable.items():
        name, unit = RESOURCE_VARIABLES[variable]
        medians = []
        for procedure in PROCEDURES:
            part = stats[stats["procedure"].astype(str) == procedure]
            if part.empty:
                continue
            row = part.iloc[0]
            if is_small([row.n])[0]:
                medians.append(f"{SHORT[procedure]} {label()} values")
            else:
                medians.append(f"{SHORT[procedure]} median {row['median']:.{DIGITS[variable]}f} "
                               f"{unit} (n {int(row.n):,})")
        if medians:
            parts.append(f"{name}: " + ", ".join(medians))
    if not parts:
        return "No resource-use values recorded for the selection."
    return "; ".join(parts) + ". Boxes show quartiles, whiskers the furthest values within " \
        "1.5 IQR, dashed lines the means."


def grouped_summary_text(stats: pd.DataFrame, group: str) -> str:
    """Text alternative of a grouped box plot: median duration per group and procedure."""
    if stats.empty:
        return "No durations recorded for the selection."
    items = []
    for _, row in stats.iterrows():
        who = f"{row[group]} {SHORT.get(str(row['procedure']), row['procedure'])}"
        items.append(f"{who} {label()}" if is_small([row.n])[0]
                     else f"{who} {row['median']:.0f} min")
    return (f"Median procedure duration by {GROUP_LABELS[group].lower()}: " + ", ".join(items)
            + ".")


def setting_summary_text(mix: pd.DataFrame) -> str:
    if mix.empty or int(mix["n"].sum()) == 0:
        return "No care setting recorded for the selection."
    items = []
    for _, row in mix.iterrows():
        who = procedure_label(str(row["procedure"]))
        if is_small([row.n])[0] or is_small([row.outpatient])[0] or is_small([row.inpatient])[0]:
            items.append(f"{who}: suppressed (fewer than 11)")
        elif row.n:
            items.append(f"{who}: {100 * row.share_outpatient:.1f}% outpatient (95% CI "
                         f"{100 * row.low:.1f}–{100 * row.high:.1f}%, n {int(row.n):,})")
    return "; ".join(items) + ". Outpatient includes 23-hour stays; Wilson intervals."
