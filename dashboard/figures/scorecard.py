"""Figures and display tables of the facility scorecard (pure functions of
:class:`analysis.scorecard.ScorecardResult`).

Peers are shown under their ids only to users who may see every facility; otherwise (and in
an anonymised report) as "Peer 1…N" (:func:`peer_labels`). Counts from 1 to the suppression
threshold are never shown: the facility's row shows them as the label and hides the values
computed from them; a peer with a small count or complement is left out of the dot plots
(it still counts in the peer distribution, an aggregate).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.benchmarks import literature_benchmarks
from analysis.quality import horizon_outcome
from analysis.scorecard import ScorecardResult
from dashboard.figures.common import OKABE_ITO, base_layout, empty_figure, percent
from dashboard.suppression import format_count, is_small, label, suppress_table

#: Outcome names on the scorecard.
SCORECARD_LABELS: dict[str, str] = {
    "cement_leakage": "Cement leakage",
    "pulmonary_embolism": "Cement embolism",
    horizon_outcome("adjacent_fracture"): "New fracture by 12 months",
    "non_response": "Non-response at 1 month",
}
#: Literature rows (analysis.benchmarks, as on the Complications page) per scorecard outcome.
BENCHMARK_OUTCOMES: dict[str, str] = {
    "cement_leakage": "cement_leakage",
    "pulmonary_embolism": "pulmonary_embolism",
    horizon_outcome("adjacent_fracture"): "adjacent_fracture_12m",
}
BENCHMARK_NOTE = ("Literature figures are context, not targets: study populations, definitions "
                  "(per patient or per level, imaging, follow-up) and designs differ from a "
                  "registry's, and they are crude proportions, not risk-adjusted.")
FACILITY_COLOUR = OKABE_ITO["vermillion"]
SHRUNKEN_COLOUR = OKABE_ITO["blue"]
PEER_COLOUR = OKABE_ITO["grey"]


def scorecard_label(outcome: str) -> str:
    return SCORECARD_LABELS.get(outcome, outcome.replace("_", " "))


def peer_labels(units: pd.Series | list[str], facility: str, anonymise: bool) -> dict[str, str]:
    """Display name of every unit: the facility's own id; peers by id, or "Peer k".

    The anonymous numbering follows a hash of (facility, peer id), so it is the same in every
    view of one facility's scorecard but does not follow the ids' alphabetical order.

    Examples
    --------
    >>> names = peer_labels(["A", "B", "C"], "A", anonymise=True)
    >>> names["A"], sorted(names.values())
    ('A', ['A', 'Peer 1', 'Peer 2'])
    """
    peers = sorted({str(u) for u in units} - {facility})
    if not anonymise:
        return {facility: facility, **{p: p for p in peers}}
    order = sorted(peers, key=lambda p: hashlib.sha256(f"{facility}|{p}".encode()).hexdigest())
    return {facility: facility, **{p: f"Peer {i}" for i, p in enumerate(order, start=1)}}


def _hidden(table: pd.DataFrame) -> np.ndarray:
    """Rows with a small count: records, events or non-events from 1 to the threshold."""
    return (is_small(table["n"]) | is_small(table["observed"])
            | is_small(table["n"] - table["observed"]))


def _ratio(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.2f} ({low:.2f}–{high:.2f})"


def outcomes_table(card: ScorecardResult) -> pd.DataFrame:
    """The scorecard's display table (one row per outcome), small counts suppressed."""
    frame = card.to_frame()
    shown = suppress_table(frame, ["n", "observed"], ["adjusted_rate", "oe", "shrunken_oe",
                                                     "rank"])
    rows = []
    for (_, raw), (_, row) in zip(frame.iterrows(), shown.iterrows(), strict=True):
        hidden = bool(row["suppressed"])
        rows.append({
            "Outcome": scorecard_label(raw["outcome"]),
            "Procedures": row["n"],
            "Events": row["observed"],
            "Expected": "–" if hidden else f"{raw['expected']:.1f}",
            "Risk-adjusted rate": "–" if hidden else percent(raw["adjusted_rate"]),
            "O/E (95% CI)": "–" if hidden else _ratio(raw["oe"], raw["oe_low"], raw["oe_high"]),
            "Shrunken O/E (95% CI)": "–" if hidden else _ratio(
                raw["shrunken_oe"], raw["shrunken_low"], raw["shrunken_high"]),
            "Peers' O/E median (IQR)": (f"{raw['peer_oe_median']:.2f} "
                                        f"({raw['peer_oe_q1']:.2f}–{raw['peer_oe_q3']:.2f})"),
            "Rank (95% interval)": "–" if hidden else (
                f"{raw['rank']} of {raw['units_ranked']} "
                f"({raw['rank_low']}–{raw['rank_high']})"),
            "Peer-set rate": percent(raw["pooled_rate"]),
            "Adjusted": "case mix" if raw["adjusted"] else "crude",
        })
    return pd.DataFrame(rows)


def benchmark_rows(outcomes: list[str]) -> pd.DataFrame:
    """The literature figures for the scorecard's outcomes (those that have one)."""
    table = literature_benchmarks()
    wanted = {v: k for k, v in BENCHMARK_OUTCOMES.items() if k in outcomes}
    chosen = table[table["outcome"].isin(wanted)]
    # The citation right before the figure and the link after it: a published count reads
    # as the source's, never as one of these records.
    return pd.DataFrame({
        "Outcome": chosen["outcome"].map(lambda o: scorecard_label(wanted[o])),
        "Procedure": chosen["procedure"].str.replace("_", " "),
        "Citation": chosen["citation"],
        "Published": chosen["reported"],
        "Link": chosen["url"],
        "Population": chosen["population"],
    }).reset_index(drop=True)


def oe_figure(card: ScorecardResult, anonymise: bool) -> go.Figure:
    """Per outcome: each shown peer's O/E (grey dots), the peers' interquartile range (bar),
    the facility's O/E with its 95% CI (red diamond) and its shrunken O/E (blue), log scale."""
    frame = card.to_frame()
    if frame.empty:
        return empty_figure("No outcome to show.")
    names = peer_labels(card.units["unit"], card.facility, anonymise)
    figure = go.Figure()
    labels = [scorecard_label(o) for o in frame["outcome"]]
    for outcome, name in zip(frame["outcome"], labels, strict=True):
        units = card.units[card.units["outcome"] == outcome]
        peers = units[(units["role"] == "peer") & ~_hidden(units)]
        peers = peers[peers["oe"] > 0]
        figure.add_trace(go.Scatter(
            x=peers["oe"], y=[name] * len(peers), mode="markers", name="Peer",
            marker={"color": PEER_COLOUR, "size": 7, "opacity": 0.6},
            text=[names[u] for u in peers["unit"]], hovertemplate="%{text}: O/E %{x:.2f}",
            showlegend=outcome == frame["outcome"].iloc[0]))
    figure.add_trace(go.Bar(
        x=frame["peer_oe_q3"] - frame["peer_oe_q1"], base=frame["peer_oe_q1"], y=labels,
        orientation="h", name="Peers' interquartile range", width=0.35,
        marker={"color": "rgba(153,153,153,0.25)"}, hoverinfo="skip"))
    hidden = _hidden(frame)
    own = frame[~hidden & (frame["oe"] > 0)]
    own_labels = [scorecard_label(o) for o in own["outcome"]]
    figure.add_trace(go.Scatter(
        x=own["oe"], y=own_labels, mode="markers", name=f"{card.facility} O/E (95% CI)",
        marker={"color": FACILITY_COLOUR, "size": 12, "symbol": "diamond"},
        error_x={"type": "data", "symmetric": False, "array": own["oe_high"] - own["oe"],
                 "arrayminus": own["oe"] - own["oe_low"], "color": FACILITY_COLOUR}))
    figure.add_trace(go.Scatter(
        x=own["shrunken_oe"], y=own_labels, mode="markers", name="Shrunken O/E",
        marker={"color": SHRUNKEN_COLOUR, "size": 10, "symbol": "circle-open",
                "line": {"width": 2}}))
    figure.add_vline(x=1.0, line_dash="dot", line_color="black")
    base_layout(figure, height=140 + 70 * len(frame))
    ticks = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    figure.update_xaxes(type="log", title="Observed / expected (log scale; 1 = as expected)",
                        tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    figure.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=labels,
                        type="category")
    return figure


def oe_summary(card: ScorecardResult) -> str:
    frame = card.to_frame()
    hidden = _hidden(frame)
    parts = []
    for (_, row), small in zip(frame.iterrows(), hidden, strict=True):
        if small:
            parts.append(f"{scorecard_label(row['outcome'])}: counts of {label()} suppressed.")
            continue
        parts.append(f"{scorecard_label(row['outcome'])}: O/E {row['oe']:.2f} "
                     f"(95% CI {row['oe_low']:.2f}–{row['oe_high']:.2f}), shrunken "
                     f"{row['shrunken_oe']:.2f}; peers' median {row['peer_oe_median']:.2f}.")
    return " ".join(parts)


def rank_figure(card: ScorecardResult, outcome: str, anonymise: bool) -> go.Figure:
    """Every shown unit's rank (1 = lowest O/E) with its 95% rank interval; the facility red."""
    units = card.units[card.units["outcome"] == outcome]
    if units.empty:
        return empty_figure("No ranks for this outcome.")
    names = peer_labels(card.units["unit"], card.facility, anonymise)
    shown = units[~_hidden(units) | (units["role"] == "facility")].sort_values("rank")
    own_hidden = bool(_hidden(units[units["role"] == "facility"]).any())
    if own_hidden:
        shown = shown[shown["role"] != "facility"]
    colours = [FACILITY_COLOUR if r == "facility" else PEER_COLOUR for r in shown["role"]]
    figure = go.Figure(go.Scatter(
        x=shown["rank"], y=[names[u] for u in shown["unit"]], mode="markers",
        marker={"color": colours, "size": 9},
        error_x={"type": "data", "symmetric": False, "array": shown["rank_high"] - shown["rank"],
                 "arrayminus": shown["rank"] - shown["rank_low"], "color": "#777"},
        hovertemplate="%{y}: rank %{x}<extra></extra>", showlegend=False))
    base_layout(figure, height=max(260, 18 * len(shown) + 90))
    figure.update_xaxes(title=f"Rank of O/E among {int(units['units_ranked'].iloc[0])} "
                              "facilities (1 = lowest) with 95% rank interval")
    figure.update_yaxes(autorange="reversed", type="category")
    return figure


def _total_hidden(chart: pd.DataFrame) -> bool:
    """The facility's total events (or non-events) are small: the centre line would show them."""
    events, total = float(chart["count"].sum()), float(chart["total"].sum())
    return bool(is_small([events, total - events, total]).any())


def trend_figure(chart: pd.DataFrame | None, facility: str, outcome: str) -> go.Figure:
    """The facility's quarterly Laney p′ chart; quarters with a small count are not drawn, and
    no chart at all when the facility's total events are small (the centre would show them)."""
    if chart is None or chart.empty:
        return empty_figure("No quarterly data for this outcome.")
    if _total_hidden(chart):
        return empty_figure(f"Not shown: the facility's events are {label()}.")
    small = is_small(chart["count"]) | is_small(chart["total"] - chart["count"]) \
        | is_small(chart["total"])
    shown = chart[~small]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=chart["quarter"], y=chart["high"], name="Upper limit (Laney p′)",
                                mode="lines", line={"color": "#888", "dash": "dash",
                                                    "shape": "hvh"}))
    figure.add_trace(go.Scatter(x=chart["quarter"], y=chart["low"], name="Lower limit",
                                mode="lines", line={"color": "#888", "dash": "dash",
                                                    "shape": "hvh"}))
    figure.add_trace(go.Scatter(x=chart["quarter"], y=chart["center"], name="Centre",
                                mode="lines", line={"color": "black"}))
    figure.add_trace(go.Scatter(
        x=shown["quarter"], y=shown["p"], name=f"{facility} (periods with small counts hidden)",
        mode="markers+lines", marker={"color": np.where(shown["signal"], FACILITY_COLOUR,
                                                        OKABE_ITO["blue"]), "size": 9},
        line={"color": OKABE_ITO["blue"]}))
    base_layout(figure, height=340)
    figure.update_yaxes(title=f"{scorecard_label(outcome)} (proportion)", tickformat=".0%",
                        rangemode="tozero")
    by_year = "Q" not in str(chart["quarter"].iloc[0])
    figure.update_xaxes(title="Year of the procedure" if by_year else "Quarter of the procedure",
                        type="category")
    return figure


def trend_summary(chart: pd.DataFrame | None, outcome: str) -> str:
    if chart is None or chart.empty:
        return "No quarterly chart."
    if _total_hidden(chart):
        return (f"{scorecard_label(outcome)}: no chart, the facility's events are {label()} "
                "(small-count suppression).")
    small = is_small(chart["count"]) | is_small(chart["total"] - chart["count"]) \
        | is_small(chart["total"])
    signals = int(chart.loc[~small, "signal"].sum())
    period = "year" if "Q" not in str(chart["quarter"].iloc[0]) else "quarter"
    return (f"{scorecard_label(outcome)} by {period}: {len(chart)} {period}s, "
            f"{int(small.sum())} hidden for counts of {label()}; centre "
            f"{percent(float(chart['center'].iloc[0]))}, Laney σz "
            f"{float(chart['sigma_z'].iloc[0]):.2f}; {signals} {period}(s) outside the limits.")


def facility_counts_text(card: ScorecardResult) -> str:
    """The facility's procedures per outcome as shown (suppressed)."""
    frame = card.to_frame()
    return "; ".join(f"{scorecard_label(o)}: {format_count(n)}"
                     for o, n in zip(frame["outcome"], frame["n"], strict=True))
