"""Figures and tables of the Costs page (pure functions: tables in, figures/display tables out).

Small-cell rule: a group with 1–10 costed procedures shows its counts as "<11" and no median,
quartiles, mean or interval, in tables, figures, hover texts and exports.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.costs import CostConversion
from dashboard.figures.common import (
    OKABE_ITO,
    PROCEDURE_COLOURS,
    PROCEDURE_SHORT,
    PROCEDURES,
    axis_layout,
    base_layout,
    build_figure,
    empty_figure,
    legend_below_toolbar,
    plain_text,
    procedure_label,
    subplot_grid,
)
from dashboard.suppression import (
    format_count,
    is_small,
    label,
    partition_texts,
    rounded_count,
    suppress_table,
)

SHORT = PROCEDURE_SHORT
TABLE_NAMES = SHORT  # tables have many columns: VP / KP
CURRENCIES = ("USD", "EUR", "GBP", "INR")

#: Page grouping -> cost_summary ``by`` (always split by procedure, so KP and VP compare).
GROUPINGS: dict[str, tuple[str, ...]] = {
    "procedure": ("procedure",),
    "country": ("country", "procedure"),
    "region": ("country", "region", "procedure"),
    "facility": ("country", "facility_id", "procedure"),
}
GROUPING_LABELS = {"procedure": "Procedure", "country": "Country", "region": "Region",
                   "facility": "Facility"}
COLUMN_LABELS = {"country": "country", "region": "region", "facility_id": "facility"}
#: At most this many groups (largest first) are drawn; the table lists every group.
MAX_FIGURE_GROUPS = 30


def coded_groupings(records: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    """The records with their text grouping columns (region, facility) as categoricals.

    The cost table and the cost-per-responder table both group by them: coding a million
    texts once here, not once per table, saves ~70 ms per update. No column is copied; the
    groups, their order (sorted, missing last) and every number are the same.

    Examples
    --------
    >>> rows = pd.DataFrame({"region": pd.array(["b", "a", None], dtype="string")})
    >>> coded_groupings(rows, ("region",))["region"].cat.categories.tolist()
    ['a', 'b']
    """
    text = {c for c in by if isinstance(records[c].dtype, pd.StringDtype)}
    if not text:
        return records
    columns = {c: pd.Categorical(records[c]) if c in text else records[c].array
               for c in records.columns}
    return pd.DataFrame(columns, index=records.index, copy=False)


def money(value, currency: str = "") -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return None
    return f"{value:,.0f}" + (f" {currency}" if currency else "")


def _group_label(row: pd.Series, by: tuple[str, ...]) -> str:
    parts = [("not recorded" if pd.isna(row[c]) else str(row[c])) for c in by if c != "procedure"]
    return " · ".join(parts)


def summary_display(summary: pd.DataFrame, by: tuple[str, ...], currency: str) -> pd.DataFrame:
    """Display table of :func:`analysis.costs.cost_summary`; small groups suppressed."""
    keys = [c for c in by if c != "procedure"]
    table = pd.DataFrame({COLUMN_LABELS.get(c, c): summary[c].astype(object).where(
        summary[c].notna(), "not recorded").to_numpy() for c in keys})
    table["procedure"] = [TABLE_NAMES.get(str(p), str(p)) for p in summary["procedure"]]
    table["costed"] = summary["n"].astype(int).to_numpy()
    table["without_converted_cost"] = [format_count(int(v)) for v in summary["missing"]]
    table["median_iqr"] = [None if pd.isna(m) else f"{money(m)} [{money(a)}–{money(b)}]"
                           for m, a, b in zip(summary["median"], summary["q1"], summary["q3"],
                                              strict=True)]
    table["mean_ci"] = [None if pd.isna(m) else
                        (f"{money(m)} ({money(a)}–{money(b)})" if pd.notna(a) else money(m))
                        for m, a, b in zip(summary["mean"], summary["mean_low"],
                                           summary["mean_high"], strict=True)]
    shown = suppress_table(table, ["costed"], ["median_iqr", "mean_ci"])
    return shown.drop(columns="suppressed")


#: Minimum widths (px) of the wide text columns of the cost tables.
WIDE_COLUMNS = {"median_iqr": 170, "mean_ci": 170, "cost_per_responder": 110, "mean_cost": 100}


def summary_labels(currency: str) -> dict[str, str]:
    return {"costed": "costed procedures", "without_converted_cost": "without converted cost",
            "median_iqr": f"median [IQR] ({currency})", "mean_ci": f"mean (95% CI) ({currency})"}


def _figure_rows(summary: pd.DataFrame, by: tuple[str, ...]) -> tuple[pd.DataFrame, int]:
    """Rows to draw (at most MAX_FIGURE_GROUPS groups, largest first) and the number of groups."""
    rows = summary.copy()
    rows["group"] = [_group_label(row, by) for _, row in rows.iterrows()]
    sizes = rows.groupby("group", sort=False)["n"].sum().sort_values(ascending=False, kind="stable")
    kept = list(sizes.index[:MAX_FIGURE_GROUPS])
    rows = rows[rows["group"].isin(kept)]
    order = {g: i for i, g in enumerate(kept)}
    rows = rows.assign(_order=rows["group"].map(order)).sort_values(["_order"], kind="stable")
    return rows.drop(columns="_order"), len(sizes)


#: The global filter (query key) of each grouping column.
GROUP_FILTER_KEYS = {"country": "country", "region": "region", "facility_id": "facility",
                     "procedure": "procedure"}


def group_point_ids(rows: pd.DataFrame, by: tuple[str, ...]) -> list[str]:
    """Plotly point ids that make a click on a group's point set its filters (country,
    region or facility, and procedure; :mod:`dashboard.drilldown`).

    >>> group_point_ids(pd.DataFrame({"country": ["US"], "procedure": ["kyphoplasty"]}),
    ...                 ("country", "procedure"))
    ['country=US&procedure=kyphoplasty']
    """
    from dashboard.drilldown import point_id

    columns = [c for c in by if c in GROUP_FILTER_KEYS]
    return [point_id(**{GROUP_FILTER_KEYS[c]: str(v) for c, v in zip(columns, values,
                                                                      strict=True)})
            for values in rows[columns].itertuples(index=False, name=None)]


#: The two panels of :func:`cost_figure`: (column, centre, low, high, marker, size, word).
_COST_PANELS = (
    (1, "median", "q1", "q3", "diamond", 9, "median"),
    (2, "mean", "mean_low", "mean_high", "circle", 8, "mean"),
)


def cost_figure(summary: pd.DataFrame, by: tuple[str, ...], currency: str) -> go.Figure:
    """Median with IQR (left) and mean with 95% CI (right) per group and procedure.

    Suppressed groups (1–10 costed procedures) keep their row, with "<11" and no values.
    """
    if summary.empty or int(summary["n"].sum()) == 0:
        return empty_figure("No converted costs in the selection.")
    rows, n_groups = _figure_rows(summary, by)
    rows = rows[rows["n"] > 0]
    rows = rows.assign(y=[(f"{plain_text(g)} · {SHORT.get(str(p), p)}" if g else procedure_label(str(p)))
                          for g, p in zip(rows["group"], rows["procedure"], strict=True)])
    layout, axes = subplot_grid(1, 2, shared_yaxes=True, horizontal_spacing=0.04,
                                subplot_titles=["Median and interquartile range",
                                                "Mean and 95% confidence interval"])
    traces: list[dict] = []
    small = is_small(rows["n"])
    for procedure in PROCEDURES:
        mine = (rows["procedure"].astype(str) == procedure).to_numpy()
        part = rows[mine & ~small]
        colour = PROCEDURE_COLOURS[procedure]
        name = procedure_label(procedure)
        if len(part):
            counts = [f"{int(n):,}" for n in part["n"]]
            for col, centre, low, high, symbol, size, what in _COST_PANELS:
                traces.append({
                    "type": "scatter", **axes[(1, col)], "ids": group_point_ids(part, by),
                    "x": part[centre].to_numpy(), "y": part["y"].to_numpy(),
                    "mode": "markers", "name": name, "legendgroup": procedure,
                    # One legend entry per procedure: the left panel's.
                    **({} if col == 1 else {"showlegend": False}),
                    "marker": {"color": colour, "symbol": symbol, "size": size},
                    "error_x": {"type": "data", "symmetric": False,
                                "array": (part[high] - part[centre]).to_numpy(),
                                "arrayminus": (part[centre] - part[low]).to_numpy(),
                                "color": colour},
                    "customdata": np.column_stack([[money(v) for v in part[low]],
                                                   [money(v) for v in part[high]], counts]),
                    "hovertemplate": f"%{{y}}: {what} %{{x:,.0f}} {currency} ("
                                     f"{'IQR' if col == 1 else '95% CI'} %{{customdata[0]}}–"
                                     "%{customdata[1]}; n %{customdata[2]})<extra></extra>"})
        hidden = rows[mine & small]
        for col in (1, 2):
            if len(hidden):
                traces.append({
                    "type": "scatter", **axes[(1, col)], "x": [0] * len(hidden),
                    "y": hidden["y"].to_numpy(), "mode": "text",
                    "text": [f"  {label()}"] * len(hidden), "textposition": "middle right",
                    "showlegend": False, "textfont": {"color": "#555"},
                    "hovertemplate": "%{y}: " + label() + " costed procedures, values hidden"
                                     "<extra></extra>"})
    for col in (1, 2):
        axis_layout(layout, axes[(1, col)]["xaxis"]).update(
            title={"text": f"Cost per procedure ({currency})"}, rangemode="tozero",
            tickformat=",.0f")
        axis_layout(layout, axes[(1, col)]["yaxis"]).update(
            categoryorder="array", categoryarray=list(rows["y"]),
            range=[len(rows) - 0.5, -0.5],  # first group on top, no padding
            automargin=True)
    crowded = n_groups > MAX_FIGURE_GROUPS
    if crowded:
        layout["annotations"] = [*layout.get("annotations", []), {
            "text": f"The {MAX_FIGURE_GROUPS} largest of {n_groups} groups (most costed "
                    "procedures); the table lists all", "showarrow": False, "xref": "paper",
            "yref": "paper", "x": 0, "y": 1, "yshift": 40, "xanchor": "left",
            "yanchor": "bottom", "font": {"color": "#555"}}]
    height = max(300, 150 + 24 * len(rows))
    return build_figure(traces, layout, height,
                        after={"margin": {"l": 10, "t": 125 if crowded else 95},
                               "legend": legend_below_toolbar(height)})


def cost_figure_summary(summary: pd.DataFrame, by: tuple[str, ...], currency: str) -> str:
    """Text alternative of :func:`cost_figure`."""
    if summary.empty or int(summary["n"].sum()) == 0:
        return "No converted costs in the selection."
    shown = summary[~is_small(summary["n"]) & (summary["n"] > 0)]
    n_hidden = int((is_small(summary["n"])).sum())
    if by == ("procedure",):
        parts = [f"{procedure_label(str(r.procedure))}: median {money(r.median, currency)} "
                 f"(IQR {money(r.q1)}–{money(r.q3)}), mean {money(r.mean, currency)} "
                 f"(95% CI {money(r.mean_low)}–{money(r.mean_high)}), n {int(r.n):,}"
                 for r in shown.itertuples()]
        text = "; ".join(parts) if parts else "every group is suppressed"
    else:
        if shown.empty:
            text = "every group is suppressed"
        else:
            low = shown.loc[shown["median"].idxmin()]
            high = shown.loc[shown["median"].idxmax()]
            text = (f"{len(shown)} groups shown; lowest median {money(low['median'], currency)} "
                    f"({_group_label(low, by)}, {SHORT.get(str(low.procedure), '')}), highest "
                    f"{money(high['median'], currency)} ({_group_label(high, by)}, "
                    f"{SHORT.get(str(high.procedure), '')})")
    if n_hidden:
        text += (f"; {n_hidden} group(s) with fewer than {label()[1:]} costed procedures hidden "
                 f"({label()})")
    n_groups = len({_group_label(row, by) for _, row in summary.iterrows()})
    if n_groups > MAX_FIGURE_GROUPS:
        text += (f"; the figure draws the {MAX_FIGURE_GROUPS} largest of {n_groups} groups, "
                 "the table lists all")
    return text + "."


def responder_display(table: pd.DataFrame, by: tuple[str, ...], currency: str) -> pd.DataFrame:
    """Display table of :func:`analysis.costs.cost_per_responder`; small cells suppressed."""
    keys = [c for c in by if c != "procedure"]
    out = pd.DataFrame({COLUMN_LABELS.get(c, c): table[c].astype(object).where(
        table[c].notna(), "not recorded").to_numpy() for c in keys})
    out["procedure"] = [TABLE_NAMES.get(str(p), str(p)) for p in table["procedure"]]
    out["n"] = table["n"].astype(int).to_numpy()
    out["responders"] = table["responders"].astype(int).to_numpy()
    out["responder_rate"] = [None if pd.isna(v) else f"{100 * v:.1f}%"
                             for v in table["responder_rate"]]
    out["mean_cost"] = [money(v) for v in table["mean_cost"]]
    out["cost_per_responder"] = [money(v) for v in table["cost_per_responder"]]
    out["excluded"] = [format_count(int(v)) for v in table["excluded"]]
    shown = suppress_table(out, ["n", "responders"],
                           ["responder_rate", "mean_cost", "cost_per_responder"])
    # A blank cost per responder says why: suppression, or no responders (undefined).
    no_responders = (table["responders"].to_numpy() == 0) & (table["n"].to_numpy() > 0)
    shown["note"] = np.where(shown["suppressed"].to_numpy(),
                             BLANK_REASONS["suppressed"].format(label=label()),
                             np.where(no_responders, BLANK_REASONS["no responders"], ""))
    return shown.drop(columns="suppressed")


def responder_labels(currency: str) -> dict[str, str]:
    return {"n": "patients (cost and status known)", "responder_rate": "responder rate",
            "mean_cost": f"mean cost ({currency})",
            "cost_per_responder": f"cost per responder ({currency})",
            "excluded": "excluded (status or cost missing)", "note": "note"}


QUADRANTS = (  # IncrementalCost field, label, colour
    ("prob_dominant", "KP cheaper, more responders (dominant)", OKABE_ITO["bluish_green"]),
    ("prob_more_costly_more_effective", "KP costlier, more responders", OKABE_ITO["sky_blue"]),
    ("prob_less_costly_less_effective", "KP cheaper, fewer responders", OKABE_ITO["yellow"]),
    ("prob_dominated", "KP costlier, fewer responders (dominated)", OKABE_ITO["vermillion"]),
)


def quadrant_figure(result) -> go.Figure:
    """Probability of each cost-effectiveness-plane quadrant (bootstrap), KP versus VP."""
    if result is None:
        return empty_figure("Not available for this selection.", height=260)
    values = [100 * getattr(result, field) for field, _, _ in QUADRANTS]
    figure = go.Figure(go.Bar(
        x=values, y=[name for _, name, _ in QUADRANTS], orientation="h",
        marker_color=[colour for _, _, colour in QUADRANTS],
        marker_line={"color": "#333", "width": 1},
        text=[f"{v:.0f}%" for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1f}% of bootstrap replicates<extra></extra>"))
    figure.update_xaxes(title_text="Share of bootstrap replicates, %", range=[0, 110])
    figure.update_yaxes(autorange="reversed", automargin=True)
    base_layout(figure, height=260, showlegend=False)
    figure.update_layout(margin={"l": 10})
    return figure


def quadrant_summary(result) -> str:
    if result is None:
        return "Not available for this selection."
    return ", ".join(f"{name}: {100 * getattr(result, field):.0f}%"
                     for field, name, _ in QUADRANTS) + " of bootstrap replicates."


def icer_table(result) -> pd.DataFrame:
    """Δcost, Δresponse and the ICER with their 95% intervals."""
    currency = result.currency

    def interval(low, high, fmt) -> str:
        if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
            return "not estimable (Δresponse CI includes 0)"
        return f"{fmt(low)} to {fmt(high)}"

    def cash(v) -> str:
        if isinstance(v, float) and math.isinf(v):
            return "−∞" if v < 0 else "+∞"
        return f"{v:+,.0f} {currency}"

    def points(v) -> str:
        return f"{100 * v:+.1f} pp"

    return pd.DataFrame([
        {"estimate": "Δ mean cost per patient (KP − VP)", "value": cash(result.delta_cost),
         "ci_95": interval(result.delta_cost_low, result.delta_cost_high, cash)},
        {"estimate": "Δ responder rate (KP − VP)", "value": points(result.delta_response),
         "ci_95": interval(result.delta_response_low, result.delta_response_high, points)},
        {"estimate": "ICER: cost per additional responder",
         "value": _icer_value(result, cash),
         "ci_95": interval(result.icer_low, result.icer_high, cash)},
        {"estimate": "Patients analysed", "value": f"KP {result.n_kp:,}, VP {result.n_vp:,}",
         "ci_95": ""},
    ])


def _icer_value(result, cash) -> str:
    """The ICER point estimate, or why none is given: no number is printed where the ICER is
    undefined or unstable (Δresponse CI includes 0) or negative (dominance)."""
    if not math.isfinite(result.icer):
        return "undefined (no difference in responders)"
    if math.isnan(result.icer_low):
        return "not given: undefined or unstable (Δresponse CI includes 0)"
    if result.icer < 0:
        return "not given: negative ratio (one procedure dominates), not a cost per responder"
    return cash(result.icer)


def net_benefit_table(result) -> pd.DataFrame:
    """Adjusted Δcost, Δresponse and the ICER (or why it is not given), with 95% CIs."""
    currency = result.currency

    def cash(v) -> str:
        return f"{v:+,.0f} {currency}"

    def points(v) -> str:
        return f"{100 * v:+.1f} pp"

    icer_value = cash(result.icer) if result.icer_defined else "not given (see the verdict)"
    icer_ci = (f"{cash(result.icer_low)} to {cash(result.icer_high)} (Fieller)"
               if result.icer_defined and math.isfinite(result.icer_low) else "")
    return pd.DataFrame([
        {"estimate": "Adjusted Δ mean cost per patient (KP − VP)",
         "value": cash(result.delta_cost),
         "ci_95": f"{cash(result.delta_cost_low)} to {cash(result.delta_cost_high)}"},
        {"estimate": "Adjusted Δ responder rate (KP − VP)", "value": points(result.delta_effect),
         "ci_95": f"{points(result.delta_effect_low)} to {points(result.delta_effect_high)}"},
        {"estimate": "ICER: cost per additional responder", "value": icer_value,
         "ci_95": icer_ci},
        {"estimate": "Patients analysed", "value": f"KP {result.n_kp:,}, VP {result.n_vp:,}",
         "ci_95": ""},
    ])


def ceac_figure(result) -> go.Figure:
    """Cost-effectiveness acceptability curve: P(KP cost-effective) against willingness to
    pay per additional responder (Fenwick, Claxton & Sculpher 2001)."""
    if result is None:
        return empty_figure("Not available for this selection.", height=300)
    wtp = np.asarray(result.wtp)
    prob = 100 * np.asarray(result.prob_cost_effective)
    trace = {"type": "scatter", "x": wtp, "y": prob, "mode": "lines",
             "line": {"color": OKABE_ITO["blue"], "width": 2}, "name": "KP cost-effective",
             "hovertemplate": (f"WTP %{{x:,.0f}} {result.currency} per additional responder: "
                               "P(KP cost-effective) %{y:.0f}%<extra></extra>")}
    layout = {
        "shapes": [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y",
                    "y0": 50, "y1": 50, "line": {"color": "#888", "dash": "dot", "width": 1}}],
        "xaxis": {"title": {"text": f"Willingness to pay per additional responder "
                                    f"({result.currency})"}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": "Probability KP is cost-effective, %"}, "range": [0, 100]}}
    return build_figure([trace], layout, 300, showlegend=False)


def ceac_summary(result) -> str:
    if result is None:
        return "Not available for this selection."
    prob = result.prob_cost_effective
    wtp = result.wtp
    return (f"Probability that KP is cost-effective (adjusted incremental net benefit > 0): "
            f"{100 * prob[0]:.0f}% at a willingness to pay of 0, {100 * prob[len(prob) // 2]:.0f}% "
            f"at {wtp[len(wtp) // 2]:,.0f} and {100 * prob[-1]:.0f}% at {wtp[-1]:,.0f} "
            f"{result.currency} per additional responder.")


def price_index_description(conversion_price_year: int | None, index: pd.DataFrame | None,
                            countries: list[str]) -> list[str]:
    """Sentences on the price adjustment in use: price year, index source, file, caveats."""
    if conversion_price_year is None or index is None:
        return ["No price adjustment (nominal): every cost stays in the prices of its own "
                "procedure year and is converted at that year's rates, so years are not "
                "comparable."]
    rows = index[index["country"].isin(countries)] if countries else index
    years = sorted({int(y) for y in rows["year"]}) or sorted({int(y) for y in index["year"]})
    names = sorted({str(s).split(";")[0].strip() for s in rows["source"]})
    return [
        f"Price year {conversion_price_year}: each cost is first brought from its procedure "
        f"year to {conversion_price_year} prices with the price index of its country (in its "
        "own currency), then converted to the reporting currency at the "
        f"{conversion_price_year} rates (CCEMG–EPPI-Centre cost converter approach, Shemilt "
        "et al. 2010).",
        f"Price indices {years[0]}–{years[-1]}: {'; '.join(names)} (file "
        f"{Path(index.attrs.get('path', 'price_index.csv')).name}). Years beyond the table use "
        "the nearest year's index (listed in the conversion notes). The values were entered "
        "by hand, not downloaded: check them against the publishers before budgets or "
        "publication.",
    ]


def price_index_table(index: pd.DataFrame, countries: list[str]) -> pd.DataFrame:
    """The index per country (rows) and year (columns) for the selection's countries."""
    rows = index[index["country"].isin(countries)] if countries else index
    years = sorted({int(y) for y in rows["year"]})
    table: dict[tuple[str, str], dict[str, float]] = {}
    for country, currency, year, value in zip(rows["country"], rows["currency"], rows["year"],
                                              rows["index"], strict=True):
        table.setdefault((country, currency), {})[f"index {int(year)}"] = float(value)
    return pd.DataFrame([{"country": c, "currency": cur,
                          **{f"index {y}": values.get(f"index {y}") for y in years}}
                         for (c, cur), values in sorted(table.items())],
                        columns=["country", "currency", *[f"index {y}" for y in years]])


def conversion_counts(normalised: pd.DataFrame,
                      conversion: CostConversion | None = None) -> pd.DataFrame:
    """Records with a converted cost, without a cost, and with an unconvertible cost (by reason).

    ``normalised`` is the output of :func:`analysis.costs.normalise_costs`, or the records
    themselves when their ``conversion`` (:func:`analysis.costs.convert_costs`) is given,
    which saves building the normalised frame.
    """
    if conversion is None:
        converted = int(normalised["cost_reporting"].notna().sum())
        unconverted = normalised.attrs.get("unconverted", {})
    else:
        converted = int(np.count_nonzero(~np.isnan(conversion.values)))
        unconverted = conversion.unconverted
    no_cost = int(normalised["cost"].isna().sum())
    # The three kinds partition the selection: complementary suppression among them, and the
    # selection's total rounded like the match count (it can be differenced against them).
    parts = partition_texts({"converted": converted, "no_cost": no_cost,
                             "unconverted": int(sum(unconverted.values()))})
    rows = [("Records in the selection", rounded_count(len(normalised))),
            ("With a cost converted to the reporting currency", parts["converted"]),
            ("Without a recorded cost", parts["no_cost"]),
            ("With a cost that could not be converted", parts["unconverted"])]
    reasons = partition_texts({str(reason): count for reason, count in unconverted.items()})
    rows += [(f"  of which: {reason}", reasons[str(reason)]) for reason in unconverted]
    return pd.DataFrame({"records": [name for name, _ in rows],
                         "count": [text for _, text in rows]})


def rate_table(options, exchange: pd.DataFrame, ppp: pd.DataFrame | None,
               currencies: list[str], countries: list[str]) -> pd.DataFrame:
    """The rates the conversion uses for the selection's currencies (countries for PPP): one
    row per currency (country), one column per year."""
    if options.method == "ppp":
        wanted = set(countries) | {options.reporting_country or ""}
        rows = ppp[ppp["country"].isin(wanted) | ((ppp["currency"] == options.reporting_currency)
                                                  & (options.reporting_country is None))]
        table = rows.pivot_table(index=["country", "currency"], columns="year",
                                 values="ppp_per_usd", aggfunc="first")
        measure = "LCU per international $"
    else:
        wanted = set(currencies) | {options.reporting_currency, "USD"}
        rows = exchange[exchange["currency"].isin(wanted)]
        table = rows.pivot_table(index=["currency"], columns="year", values="units_per_usd",
                                 aggfunc="first")
        measure = "units per US$"
    table.columns = [f"{measure} {int(year)}" for year in table.columns]
    return table.reset_index()


def _source_names(table: pd.DataFrame) -> list[str]:
    names = {str(s).split(";")[0].strip() for s in table["source"]}
    return sorted(n for n in names if not n.lower().startswith("definition"))


def rate_description(options, exchange: pd.DataFrame, ppp: pd.DataFrame | None) -> list[str]:
    """Sentences: the table in use (source, years, file), the conversion rule and caveats."""
    nominal = getattr(options, "price_year", "nominal") == "nominal"
    prices = ("no inflation adjustment, so amounts stay in the prices of their own year" if
              nominal else "costs are first put in the prices of the price year (see "
              "above), then converted at that year's rates")
    xr_years = sorted({int(y) for y in exchange["year"]})
    xr_text = (f"Market exchange rates: annual averages, national currency units per US dollar, "
               f"{xr_years[0]}–{xr_years[-1]}, from {'; '.join(_source_names(exchange))} "
               f"(file {Path(exchange.attrs.get('path', 'exchange_rates.csv')).name}).")
    if options.method == "ppp":
        ppp_years = sorted({int(y) for y in ppp["year"]})
        span = (f"{ppp_years[0]}" if len(ppp_years) == 1 else f"{ppp_years[0]}–{ppp_years[-1]}")
        return [
            f"Purchasing power parities: GDP PPP conversion factors, local currency units per "
            f"international dollar, {span}, from {'; '.join(_source_names(ppp))} (file "
            f"{Path(ppp.attrs.get('path', 'ppp.csv')).name}).",
            f"Rule: cost ÷ PPP factor of the facility's country = international dollars; × the "
            f"factor of {options.reporting_country or 'the reporting country'} = "
            f"{options.reporting_currency} at that country's price level. A cost recorded in "
            "another currency than its country's is first exchanged at the market rate. "
            + xr_text,
            f"Caveats: years missing in the table use the nearest year (PPP {span} here); "
            f"{prices}; the factors were transcribed from a secondary copy "
            "— check them against the publisher before budgets or publication.",
        ]
    return [
        xr_text,
        f"Rule: cost ÷ rate of the record's currency × rate of {options.reporting_currency}, "
        + ("both for the procedure year." if nominal else "both for the price year."),
        f"Caveats: years missing in the table use the nearest year (e.g. "
        f"{xr_years[-1] + 1} and later use {xr_years[-1]}); {prices}; market rates ignore "
        "price-level differences "
        "between countries (choose PPP for that); the rates were transcribed by hand — check "
        "them against the publisher before budgets or publication.",
    ]


# ------------------------------------------------------------------ ranked cost per responder
#: Unit columns of the ranked view per "Group by" choice: procedures pooled within a unit.
RANKING_UNITS: dict[str, tuple[str, ...]] = {
    "procedure": ("country", "region"), "country": ("country",),
    "region": ("country", "region"), "facility": ("country", "facility_id")}

#: Why a row of the ranked view has no value (its ``note``).
BLANK_REASONS = {
    "suppressed": "suppressed: 1–10 patients, responders or non-responders ({label})",
    "no responders": "no responders: the ratio is undefined",
    "interval unbounded": "too few responders for a finite 95% CI (Fieller): not ranked",
}


def ranking_display(result, currency: str) -> pd.DataFrame:
    """The ranked cost per responder (:func:`analysis.costs.ranked_cost_per_responder`) as a
    display table: ranked units first (lowest cost per responder = rank 1), then the units
    left unranked with the reason in ``note``: suppressed (small cells), no responders, or too
    few responders for a finite interval. A blank value is never a number hidden without
    saying why.

    Examples
    --------
    >>> from analysis.costs import CostPerResponderRanking
    >>> table = pd.DataFrame({"region": ["N", "S", "W"], "n": [200, 8, 40],
    ...     "responders": [120, 4, 0], "responder_rate": [0.6, 0.5, 0.0],
    ...     "mean_cost": [6000.0, 5000.0, 4000.0], "cost_per_responder": [10000.0, 10000.0, None],
    ...     "low": [9000.0, 5000.0, None], "high": [11200.0, 30000.0, None],
    ...     "status": ["estimated", "estimated", "no responders"], "rank": [1.0, 2.0, None]})
    >>> shown = ranking_display(CostPerResponderRanking(table, ("region",), 0.95, "USD", ""), "USD")
    >>> shown[["rank", "region", "cost_per_responder", "note"]].values.tolist()[0]
    ['1', 'N', '10,000', '']
    >>> shown["note"].tolist()[1:]
    ['suppressed: 1–10 patients, responders or non-responders (<11)', 'no responders: the ratio is undefined']
    """
    table = result.table
    keys = [c for c in result.by if c in table.columns]
    n = table["n"].to_numpy(dtype=float)
    responders = table["responders"].to_numpy(dtype=float)
    small = is_small(n) | is_small(responders) | is_small(n - responders)
    status = np.where(small, "suppressed", table["status"].astype(str).to_numpy())
    ranked = status == "estimated"
    order = np.concatenate([np.flatnonzero(ranked), np.flatnonzero(~ranked)])
    out = pd.DataFrame({"rank": [str(i + 1) if i < ranked.sum() else "" for i in range(len(order))]})
    for column in keys:
        values = table[column].astype(object)
        out[COLUMN_LABELS.get(column, column)] = values.where(
            values.notna(), "(not recorded)").to_numpy()[order]
    out["n"] = [format_count(v) for v in n[order]]
    # Few non-responders: n and responders together would give them, so responders are hidden.
    out["responders"] = [label() if few else format_count(v) for v, few in
                         zip(responders[order], is_small(n - responders)[order], strict=True)]
    rows = table.iloc[order]
    visible = ~small[order]
    out["responder_rate"] = [f"{100 * r:.1f}%" if v and pd.notna(r) else None
                             for r, v in zip(rows["responder_rate"], visible, strict=True)]
    out["cost_per_responder"] = [money(c) if v else None
                                 for c, v in zip(rows["cost_per_responder"], visible,
                                                 strict=True)]
    out["cost_per_responder_ci"] = [
        f"{money(lo)}–{money(hi)}" if v and pd.notna(lo) and pd.notna(hi) else None
        for lo, hi, v in zip(rows["low"], rows["high"], visible, strict=True)]
    out["note"] = ["" if s == "estimated" else BLANK_REASONS[s].format(label=label())
                   for s in status[order]]
    return out


def ranking_labels(currency: str) -> dict[str, str]:
    return {"rank": "Rank", "n": "Patients (cost and status known)", "responders": "Responders",
            "responder_rate": "Responder rate",
            "cost_per_responder": f"Cost per responder ({currency})",
            "cost_per_responder_ci": f"95% CI ({currency}, Fieller)", "note": "Note"}


def ranking_figure(display: pd.DataFrame, currency: str) -> go.Figure:
    """The ranked units as points with their 95% CIs, lowest cost per responder on top (only
    ranked rows: suppressed and unestimable units are in the table with the reason)."""
    ranked = display[display["rank"] != ""]
    if ranked.empty:
        return empty_figure("No unit has a cost per responder to rank.")
    unit_columns = [c for c in ranked.columns if c in COLUMN_LABELS.values()]
    names = [" · ".join(plain_text(v) for v in values)
             for values in ranked[unit_columns].itertuples(index=False, name=None)]
    value = ranked["cost_per_responder"].str.replace(",", "").astype(float)
    bounds = ranked["cost_per_responder_ci"].str.replace(",", "").str.split("–", expand=True)
    low, high = bounds[0].astype(float), bounds[1].astype(float)
    trace = {"type": "scatter", "x": value.to_numpy(), "y": names, "mode": "markers",
             "marker": {"color": OKABE_ITO["blue"], "size": 8},
             "error_x": {"type": "data", "symmetric": False, "array": (high - value).to_numpy(),
                         "arrayminus": (value - low).to_numpy(), "color": OKABE_ITO["blue"]},
             "customdata": np.column_stack([ranked["rank"], ranked["cost_per_responder_ci"]]),
             "hovertemplate": "#%{customdata[0]} %{y}: %{x:,.0f} " + currency
                              + " (95% CI %{customdata[1]})<extra></extra>",
             "name": "Cost per responder"}
    layout = {"yaxis": {"categoryorder": "array", "categoryarray": names,
                        "range": [len(names) - 0.5, -0.5], "automargin": True},
              "xaxis": {"title": {"text": f"Cost per responder ({currency}), 95% CI"},
                        "tickformat": ",.0f"}}
    return build_figure([trace], layout, max(260, 110 + 22 * len(names)),
                        {"showlegend": False, "margin": {"l": 10, "t": 30}})
