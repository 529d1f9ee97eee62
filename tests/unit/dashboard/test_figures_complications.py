"""Pure figure and table builders of the Complications page (no Dash app, no browser)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.benchmarks import literature_benchmarks
from analysis.outcomes import COMPLICATION_OUTCOMES
from analysis.proportions import compare_proportions
from analysis.survival import cumulative_incidence, kaplan_meier
from dashboard.figures import complications as fig


def comparison(counts: dict[str, tuple[int, int, int, int]]) -> pd.DataFrame:
    """A comparison frame like the page's: counts (vp_events, vp_n, kp_events, kp_n)."""
    from analysis.proportions import proportion_ci

    rows = []
    for outcome, (ve, vn, ke, kn) in counts.items():
        row = {"outcome": outcome, "label": COMPLICATION_OUTCOMES[outcome], "vp_events": ve,
               "vp_n": vn, "kp_events": ke, "kp_n": kn}
        for prefix, (x, n) in (("vp", (ve, vn)), ("kp", (ke, kn))):
            low, high = proportion_ci(x, n)
            row.update({f"{prefix}_rate": x / n, f"{prefix}_low": low, f"{prefix}_high": high})
        result = compare_proportions(ke, kn, ve, vn)
        row.update(rd=result.risk_difference, rd_low=result.rd_low, rd_high=result.rd_high,
                   rr=result.risk_ratio, rr_low=result.rr_low, rr_high=result.rr_high,
                   p_value=result.p_value, test=result.test,
                   zero_cell_correction=result.zero_cell_correction)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(fig.COMPARISON_COLUMNS))


COUNTS = {
    "cement_leakage": (400, 1000, 180, 1000),
    "infection": (7, 1000, 20, 1000),  # VP events 7: suppressed
    "death_30d": (0, 900, 15, 950),  # a zero cell: corrected risk ratio
}


def figure_text(figure) -> str:
    """Everything a figure sends to the browser, as text."""
    return json.dumps(figure.to_plotly_json(), default=str)


def test_rates_table_suppresses_small_counts_and_their_rates():
    frame = comparison(COUNTS)
    table = fig.rates_table(frame)
    assert list(table.columns) == list(fig.RATE_COLUMNS)
    leak, infection, death = (table.iloc[i] for i in range(3))
    assert leak["VP rate (95% CI)"] == fig.rate_text(0.4, frame.vp_low[0], frame.vp_high[0])
    assert leak["VP events / n"] == "400 / 1,000"
    assert leak["Risk ratio KP/VP (95% CI)"].startswith("0.45 (")
    assert infection["VP events / n"] == "<11 / 1,000"
    assert infection["VP rate (95% CI)"] == "suppressed"
    # The KP rate rests on 20 events: shown; the comparison uses the VP arm: hidden.
    assert infection["KP rate (95% CI)"].startswith("2.0%")
    assert infection["Risk ratio KP/VP (95% CI)"] == "suppressed"
    assert infection["p (test)"] == "–"
    assert "0.7%" not in " ".join(infection.astype(str))
    assert death["Risk ratio KP/VP (95% CI)"].endswith("†")  # zero-cell correction flagged
    assert death["VP events / n"] == "0 / 900"  # zero reveals no one


def test_forest_hides_suppressed_outcomes_everywhere():
    frame = comparison(COUNTS)
    figure = fig.forest_figure(frame, "rr")
    points = [trace for trace in figure.data if trace.x is not None and any(
        v is not None for v in trace.x)]
    ys = [y for trace in points for y in trace.y]
    assert "Cement leakage" in ys
    assert not any(y.startswith("Procedure-related infection") for y in ys)
    assert "Procedure-related infection (<11: suppressed)" in figure.layout.yaxis.categoryarray
    text = figure_text(figure)
    rr = frame.loc[1, "rr"]
    assert f"{rr:.2f}" not in text  # the infection risk ratio is nowhere, hover included
    assert "7/1,000" not in text and "7/1000" not in text
    corrected = [t for t in points if t.marker.symbol == "diamond-open"]
    assert [y for t in corrected for y in t.y] == ["Death by 30 days (cumulative incidence)"]
    assert figure.layout.xaxis.type == "log"
    assert figure.layout.shapes[0].x0 == 1.0  # the line of no effect


def test_forest_risk_difference_in_points_with_zero_line():
    frame = comparison(COUNTS)
    figure = fig.forest_figure(frame, "rd")
    leak = next(t for t in figure.data if t.y is not None and "Cement leakage" in t.y)
    assert leak.x[list(leak.y).index("Cement leakage")] == pytest.approx(-22.0)
    assert figure.layout.shapes[0].x0 == 0.0
    assert "RD" in fig.forest_summary(frame, "rd") and "suppressed" not in fig.forest_summary(
        frame, "rd").split(":")[0]


def test_empty_inputs_give_empty_state_figures():
    empty = pd.DataFrame(columns=list(fig.COMPARISON_COLUMNS))
    for figure in (fig.forest_figure(empty), fig.benchmark_figure(empty, literature_benchmarks()),
                   fig.trend_figure(pd.DataFrame(columns=["period", "outcome"]))):
        assert not figure.data
        assert figure.layout.annotations[0].text == "No records match the filters."
    assert fig.rates_table(empty).empty


def trend_rows() -> pd.DataFrame:
    rows = []
    for year, (vp_events, kp_events) in zip((2022, 2023), ((30, 5), (0, 25)), strict=True):
        for procedure, events in (("vertebroplasty", vp_events), ("kyphoplasty", kp_events)):
            for outcome in fig.TREND_OUTCOMES:
                rows.append({"period": str(year), "period_start": pd.Timestamp(f"{year}-01-01"),
                             "procedure": procedure, "procedures": 200, "outcome": outcome,
                             "n": 200, "events": events, "rate": events / 200,
                             "low": events / 200 * 0.8, "high": events / 200 * 1.2 + 0.01})
    return pd.DataFrame(rows)


def test_trend_marks_suppressed_periods_without_their_rate():
    trend = trend_rows()
    figure = fig.trend_figure(trend, "Y")
    kp_2022 = 100 * 5 / 200
    rate_traces = [t for t in figure.data if t.mode == "lines+markers"]
    for trace in rate_traces:
        assert kp_2022 not in [v for v in trace.y if v is not None]
    strips = [t for t in figure.data if t.mode == "text"]
    kp_strips = [t for t in strips if list(t.y) == ["KP"]]
    assert kp_strips and all(list(t.text) == ["<11"] for t in kp_strips)
    hover = [row for t in rate_traces for row in t.customdata]
    assert ["<11", "<11", "200"] in [list(h) for h in hover]
    table = fig.trend_table(trend)
    hidden = table[(table.Period == "2022") & (table.Procedure == "KP")]
    assert set(hidden.Events) == {"<11"} and set(hidden.Rate) == {"–"}
    assert "2 of 8 period rates are suppressed" in fig.trend_summary(trend, "Y")


def curves_from(time, event, code, procedure="kyphoplasty") -> fig.FractureCurves:
    km = kaplan_meier(time, event).assign(procedure=procedure)
    cif = cumulative_incidence(time, code)
    ordered = np.sort(time)
    cif = cif.assign(procedure=procedure,
                     at_risk=len(ordered) - np.searchsorted(ordered, cif.time, "left"))
    at_risk = pd.DataFrame([{"procedure": procedure, "time": d,
                             "at_risk": int((np.asarray(time) >= d).sum()),
                             "cumulative_events": int(((np.asarray(time) <= d)
                                                       & (np.asarray(event) == 1)).sum())}
                            for d in (0, 90, 180, 365, 730)])
    return fig.FractureCurves(km=km, cif=cif, at_risk=at_risk, competing=True,
                              counts={procedure: (len(time), int(np.sum(event)))})


def test_curves_are_thinned_and_cut_where_few_remain_at_risk():
    rng = np.random.default_rng(1)
    n = 20_000
    time = rng.integers(0, 1500, n).astype(float)
    code = rng.choice([0, 1, 2], size=n, p=[0.6, 0.3, 0.1])
    event = (code == 1).astype(float)
    curves = curves_from(time, event, code)
    for kind in ("km", "aj"):
        points = fig.curve_frame(curves, kind, "kyphoplasty")
        assert len(points) <= fig.MAX_CURVE_POINTS
        assert points["at_risk"].min() > 10
        assert points.iloc[0][["time", "estimate"]].tolist() == [0.0, 0.0]
    km = curves.km
    last_ok = km[km.at_risk > 10].iloc[-1]
    points = fig.curve_frame(curves, "km", "kyphoplasty")
    assert points.iloc[-1]["time"] == last_ok.time  # drawn to the last adequately-followed day
    assert points.iloc[-1]["estimate"] == pytest.approx(1 - last_ok.survival)
    figure = fig.incidence_figure(curves)
    assert max(len(t.x) for t in figure.data) <= fig.MAX_CURVE_POINTS


def test_small_curves_and_at_risk_counts_are_suppressed():
    time = np.array([10.0, 50, 100, 200, 400, 500])
    event = np.array([1.0, 0, 1, 0, 0, 0])
    curves = curves_from(time, event, event.astype(int), procedure="vertebroplasty")
    figure = fig.incidence_figure(curves)
    assert not [t for t in figure.data if t.name]  # no curve drawn
    assert "curve suppressed" in figure_text(figure)
    table = fig.at_risk_table(curves.at_risk)
    assert set(table.loc[table.Count == "At risk", "Day 0"]) == {"<11"}
    assert set(table.loc[table.Count == "New fractures so far", "Day 180"]) == {"<11"}
    summary = fig.incidence_summary(curves)
    assert "VP not shown" in summary and "%" not in summary


def test_benchmarks_labelled_with_citations_and_local_rates_suppressed():
    benchmarks = literature_benchmarks()
    frame = comparison({"cement_leakage": (400, 1000, 180, 1000),
                        "pulmonary_embolism": (5, 1000, 30, 1000),
                        "adjacent_fracture_12m": (100, 400, 90, 400)})
    figure = fig.benchmark_figure(frame, benchmarks)
    labels = [y for t in figure.data if t.y is not None for y in t.y if isinstance(y, str)]
    assert "VP · World Neurosurg 2017" in labels and "KP · Beall et al. 2018" in labels
    assert "VP · Papanastassiou et al. 2012" in labels
    assert "This selection · VP (<11: suppressed)" in labels
    text = figure_text(figure)
    assert "0.50%" not in text and "5 of 1,000" not in text
    assert "54.7%" in text  # the published figure as printed, in the hover
    range_row = [t for t in figure.data if t.mode == "lines+markers"]
    assert [list(t.x) for t in range_row] == [[pytest.approx(2.1), pytest.approx(26.0)]]
    table = fig.benchmark_table(benchmarks)
    assert {"ZHAN", "PAPA", "BEALL"} <= set(
        benchmarks.loc[benchmarks.citation.isin(table.Citation), "source_key"])
    assert "definitions" in fig.BENCHMARK_CAVEAT


@pytest.mark.parametrize(("citation", "short"), [
    ('"Risk factors for cement leakage." World Neurosurg 2017;101:633–642.',
     "World Neurosurg 2017"),
    ("Papanastassiou ID et al. Eur Spine J 2012;21:1826–43.", "Papanastassiou et al. 2012"),
    ('Luetmer MT, Kallmes DF. "Asymptomatic." AJNR 2011;32:654–7.', "Luetmer et al. 2011"),
])
def test_short_citation(citation, short):
    assert fig.short_citation(citation) == short
