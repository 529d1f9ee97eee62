"""Pure figure and table builders of the Costs page."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.costs import (
    CostOptions,
    cost_per_responder,
    cost_summary,
    exchange_rates,
    incremental_cost_per_responder,
    normalise_costs,
    ppp_factors,
)
from dashboard.figures import costs as fig


def costed(facilities: dict[str, tuple[str, int]], seed: int = 0) -> pd.DataFrame:
    """Records per facility: (country, number of procedures), half VP half KP, USD/EUR costs."""
    rng = np.random.default_rng(seed)
    rows = []
    for facility, (country, n) in facilities.items():
        for i in range(n):
            procedure = "kyphoplasty" if i % 2 else "vertebroplasty"
            rows.append({"facility_id": facility, "country": country, "region": "R1",
                         "procedure": procedure,
                         "cost": float(rng.integers(2000, 4000) + (4000 if i % 2 else 0)),
                         "currency": "EUR" if country == "DE" else "USD",
                         "procedure_date": pd.Timestamp("2022-06-01")})
    return pd.DataFrame(rows)


BY = fig.GROUPINGS["facility"]


@pytest.fixture
def summary() -> pd.DataFrame:
    # FAC-TINY has 6 records: 3 VP and 3 KP costed, all suppressed.
    frame = costed({"FAC-A": ("US", 60), "FAC-B": ("DE", 44), "FAC-TINY": ("US", 6)})
    return cost_summary(frame, by=BY, n_resamples=200)


def test_summary_display_suppresses_small_facilities(summary):
    table = fig.summary_display(summary, BY, "USD")
    tiny = table[table["facility"] == "FAC-TINY"]
    assert len(tiny) == 2
    assert (tiny["costed"] == "<11").all()
    assert tiny["median_iqr"].isna().all() and tiny["mean_ci"].isna().all()
    big = table[(table["facility"] == "FAC-A") & (table["procedure"] == "KP")].iloc[0]
    row = summary[(summary["facility_id"] == "FAC-A") & (summary["procedure"] == "kyphoplasty")].iloc[0]
    assert big["costed"] == "30"
    assert big["median_iqr"] == f"{row['median']:,.0f} [{row.q1:,.0f}–{row.q3:,.0f}]"
    assert big["mean_ci"] == f"{row['mean']:,.0f} ({row.mean_low:,.0f}–{row.mean_high:,.0f})"


def test_cost_figure_omits_suppressed_values_and_says_so(summary):
    figure = fig.cost_figure(summary, BY, "USD")
    tiny = summary[summary["facility_id"] == "FAC-TINY"]
    plotted = [x for trace in figure.data if trace.mode == "markers" for x in trace.x]
    for column in ("median", "mean", "q1", "q3", "mean_low", "mean_high"):
        for value in tiny[column]:
            assert not any(math.isclose(value, x) for x in plotted)
    hidden = [trace for trace in figure.data if trace.mode == "text"]
    assert hidden and all("<11" in trace.hovertemplate for trace in hidden)
    assert all("FAC-TINY" in y for trace in hidden for y in trace.y)
    drawn = {y for trace in figure.data if trace.mode == "markers" for y in trace.y}
    assert not any("FAC-TINY" in y for y in drawn)
    assert "FAC-TINY" not in " ".join(str(t.customdata) for t in figure.data
                                      if t.customdata is not None)
    text = fig.cost_figure_summary(summary, BY, "USD")
    assert "2 group(s) with fewer than 11" in text


def test_cost_figure_shows_largest_groups_only():
    frame = costed({f"FAC-{i:02d}": ("US", 20 + i) for i in range(35)})
    summary = cost_summary(frame, by=BY, n_resamples=100)
    figure = fig.cost_figure(summary, BY, "USD")
    labels = set(figure.layout.yaxis.categoryarray)
    assert len(labels) == 2 * fig.MAX_FIGURE_GROUPS
    assert "US · FAC-34 · KP" in labels and "US · FAC-00 · VP" not in labels
    assert "30 largest of 35" in figure.layout.annotations[-1].text
    assert "30 largest of 35" in fig.cost_figure_summary(summary, BY, "USD")


def test_cost_figure_empty():
    empty = cost_summary(costed({"FAC-A": ("US", 4)}).iloc[:0], by=("procedure",))
    figure = fig.cost_figure(empty, ("procedure",), "USD")
    assert not figure.data and "No converted costs" in figure.layout.annotations[0].text


def test_responder_display_suppresses_small_counts():
    # FAC-A is large enough that neither responders nor non-responders are small (the
    # complement rule would otherwise hide its row too).
    frame = costed({"FAC-A": ("US", 90), "FAC-TINY": ("US", 6)})
    status = pd.Series([i % 3 != 0 for i in range(len(frame))], index=frame.index)
    table = cost_per_responder(frame, by=BY, responders=status)
    shown = fig.responder_display(table, BY, "USD")
    tiny = shown[shown["facility"] == "FAC-TINY"]
    assert (tiny["n"] == "<11").all() and tiny["cost_per_responder"].isna().all()
    big = shown[(shown["facility"] == "FAC-A") & (shown["procedure"] == "VP")].iloc[0]
    row = table[(table["facility_id"] == "FAC-A") & (table["procedure"] == "vertebroplasty")].iloc[0]
    assert big["cost_per_responder"] == f"{row.cost_per_responder:,.0f}"
    # A blank value says why (issue 14 item 3): suppression here, nothing for a shown row.
    assert tiny["note"].str.startswith("suppressed").all() and big["note"] == ""
    none = fig.responder_display(cost_per_responder(frame, by=BY, responders=status & False),
                                 BY, "USD")
    assert (none.loc[none["n"] != "<11", "note"] == "no responders: the ratio is undefined").all()


def test_icer_table_and_quadrants():
    frame = costed({"FAC-A": ("US", 200)})
    status = pd.Series([i % 4 != 0 for i in range(len(frame))], index=frame.index)
    result = incremental_cost_per_responder(frame, responders=status, n_resamples=300)
    table = fig.icer_table(result)
    assert table.loc[0, "value"] == f"{result.delta_cost:+,.0f} USD"
    assert table.loc[3, "value"] == f"KP {result.n_kp:,}, VP {result.n_vp:,}"
    if math.isnan(result.icer_low):
        assert "not estimable" in table.loc[2, "ci_95"]
    figure = fig.quadrant_figure(result)
    assert sum(figure.data[0].x) == pytest.approx(100, abs=0.01)
    assert not fig.quadrant_figure(None).data


def test_conversion_counts_show_small_counts_as_label():
    frame = costed({"FAC-A": ("US", 40)})
    frame.loc[:4, "cost"] = None  # 5 records without a cost
    frame.loc[5:, "currency"] = frame.loc[5:, "currency"].where(frame.index[5:] > 30, "XYZ")
    counts = fig.conversion_counts(normalise_costs(frame, CostOptions(price_year="nominal")))
    shown = dict(zip(counts["records"], counts["count"], strict=True))
    assert shown["Records in the selection"] == "≈40"  # a selection total: rounded
    assert shown["Without a recorded cost"] == "<11"
    assert shown["With a cost that could not be converted"] == "26"
    assert shown["  of which: XYZ not in the exchange-rate table"] == "26"


def test_rate_table_and_description_name_source_years_and_rule():
    exchange = exchange_rates()
    options = CostOptions(reporting_currency="GBP")
    table = fig.rate_table(options, exchange, None, ["EUR", "USD"], ["DE", "US"])
    assert set(table["currency"]) == {"EUR", "GBP", "USD"}
    years = sorted(exchange["year"].unique())
    assert f"units per US$ {years[-1]}" in table.columns
    text = " ".join(fig.rate_description(options, exchange, None))
    assert "Federal Reserve" in text and f"{years[0]}–{years[-1]}" in text
    assert "nearest year" in text and "prices of the price year" in text
    assert "price year." in text  # rates of the price year, not of each procedure year
    nominal = " ".join(fig.rate_description(CostOptions(price_year="nominal"), exchange, None))
    assert "no inflation adjustment" in nominal and "procedure year." in nominal

    ppp = ppp_factors()
    options = CostOptions(reporting_currency="EUR", method="ppp", reporting_country="FR")
    table = fig.rate_table(options, exchange, ppp, ["EUR", "INR"], ["DE", "IN"])
    assert set(table["country"]) == {"DE", "FR", "IN"}
    text = " ".join(fig.rate_description(options, exchange, ppp))
    assert "World Bank" in text and "FR" in text and "nearest year" in text


def test_icer_table_never_prints_an_unstable_or_negative_point_icer():
    """Issue 12: the old table printed e.g. "-346,999 USD (unstable)" where the page itself
    called the ICER undefined or unstable."""
    from analysis.costs import IncrementalCost

    def result(icer, low, high):
        return IncrementalCost(
            delta_cost=4351.0, delta_cost_low=3994.0, delta_cost_high=4696.0,
            delta_response=-0.0125, delta_response_low=-0.041, delta_response_high=0.015,
            icer=icer, icer_low=low, icer_high=high, n_kp=2000, n_vp=1800,
            interpretation="", method="", prob_dominant=0.0, prob_dominated=0.82,
            prob_more_costly_more_effective=0.18, prob_less_costly_less_effective=0.0,
            currency="USD")

    unstable = fig.icer_table(result(-346998.66, math.nan, math.nan))
    assert "USD" not in unstable.loc[2, "value"] and "346" not in unstable.loc[2, "value"]
    assert "unstable" in unstable.loc[2, "value"]
    negative = fig.icer_table(result(-2000.0, -5000.0, -1000.0))
    assert "USD" not in negative.loc[2, "value"] and "2,000" not in negative.loc[2, "value"]
    assert fig.icer_table(result(2000.0, 1000.0, 5000.0)).loc[2, "value"] == "+2,000 USD"


def test_net_benefit_table_and_ceac_figure():
    import pandas as pd

    from analysis.costs import net_benefit_regression

    n = 40
    records = pd.DataFrame({
        "procedure": ["vertebroplasty"] * n + ["kyphoplasty"] * n,
        "cost": np.r_[np.tile([900.0, 1100.0], n // 2), np.tile([1900.0, 2100.0], n // 2)],
        "currency": "USD", "procedure_date": pd.Timestamp("2024-03-01")})
    flat = np.tile([True, False], n)  # no difference in responders
    undefined = net_benefit_regression(records, responders=flat, covariates=(), cluster=None)
    table = fig.net_benefit_table(undefined)
    assert table.loc[2, "value"] == "not given (see the verdict)" and table.loc[2, "ci_95"] == ""
    assert table.loc[0, "value"] == "+1,000 USD"
    figure = fig.ceac_figure(undefined)
    assert list(figure.data[0].x) == list(undefined.wtp)
    assert max(figure.data[0].y) <= 100 and min(figure.data[0].y) >= 0
    assert "Probability that KP is cost-effective" in fig.ceac_summary(undefined)
    effective = np.r_[np.tile([True, False, False, False], n // 4),
                      np.tile([True, True, True, False], n // 4)]
    defined = net_benefit_regression(records, responders=effective, covariates=(),
                                     cluster=None)
    assert fig.net_benefit_table(defined).loc[2, "value"] == "+2,000 USD"
    assert "Fieller" in fig.net_benefit_table(defined).loc[2, "ci_95"]


def test_ranked_cost_per_responder_display_says_why_a_row_is_blank():
    """Issue 14 item 3: ranked rows first, lowest first; a blank value always has a reason
    (suppression, no responders, unbounded interval); few non-responders hide the responders."""
    from analysis.costs import ranked_cost_per_responder

    rows = []
    for region, n, responders, cost in (("A", 60, 40, 9000.0), ("B", 80, 60, 4000.0),
                                        ("C", 30, 0, 5000.0), ("D", 40, 33, 6000.0),
                                        ("E", 50, 2, 5000.0), ("F", 200, 4, 5000.0)):
        rows.append(pd.DataFrame({"region": region, "cost": cost + np.arange(n) * 10.0,
                                  "responder": [True] * responders + [False] * (n - responders)}))
    records = pd.concat(rows, ignore_index=True).assign(
        currency="USD", procedure_date=pd.Timestamp("2023-05-01"))
    result = ranked_cost_per_responder(records, by="region", responders=records["responder"],
                                       options=CostOptions(price_year="nominal"))
    shown = fig.ranking_display(result, "USD")
    assert shown["region"].tolist()[:2] == ["B", "A"] and shown["rank"].tolist()[:2] == ["1", "2"]
    notes = dict(zip(shown["region"], shown["note"], strict=True))
    assert notes["C"] == "no responders: the ratio is undefined"
    assert notes["D"].startswith("suppressed") and notes["E"].startswith("suppressed")
    assert notes["F"].startswith("suppressed")  # 4 responders: a small cell
    d = shown.set_index("region").loc["D"]
    assert d["n"] == "40" and d["responders"] == "<11" and d["cost_per_responder"] is None
    blank = shown["cost_per_responder"].isna()
    assert (shown.loc[blank, "note"] != "").all() and (shown.loc[~blank, "note"] == "").all()
    assert (shown.loc[blank, "rank"] == "").all()
