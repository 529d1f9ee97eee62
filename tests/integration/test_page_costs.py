"""Costs page: callbacks called as functions with filter states and page controls."""

from __future__ import annotations

from analysis.costs import (
    CostOptions,
    cost_per_responder,
    cost_summary,
    net_benefit_regression,
    normalise_costs,
)
from analysis.filters import RecordFilter, apply_filter
from analysis.outcomes import ResponderDefinition
from tests.dash_tree import find_by_id, grid_rows, texts


def render(app, selection: RecordFilter, currency="USD", method="exchange", country="DE",
           grouping="procedure", price_year="latest"):
    from dashboard.pages.costs import update_costs

    with app.server.app_context():
        return update_costs(selection.to_dict(), currency, method, country, grouping,
                            price_year)


def test_numbers_equal_analysis(dashboard_app):
    app, records = dashboard_app
    selection = RecordFilter(countries=("US", "DE"))
    page = render(app, selection, currency="EUR")
    chosen = apply_filter(records, selection)
    options = CostOptions(reporting_currency="EUR")

    normalised = normalise_costs(chosen, options)
    assert texts(find_by_id(page, "costs-count-costed")) == [
        f"{int(normalised.cost_reporting.notna().sum()):,}"]
    assert texts(find_by_id(page, "costs-count-nocost")) == [f"{int(chosen.cost.isna().sum()):,}"]
    assert texts(find_by_id(page, "costs-count-unconverted")) == ["0"]

    summary = cost_summary(chosen, by=("procedure",), options=options)
    kp = summary[summary.procedure.astype(str) == "kyphoplasty"].iloc[0]
    row = [r for r in grid_rows(page, "costs-summary") if r["procedure"] == "KP"][0]
    assert row["costed"] == f"{int(kp.n):,}"
    assert row["median_iqr"] == f"{kp['median']:,.0f} [{kp.q1:,.0f}–{kp.q3:,.0f}]"
    assert row["mean_ci"] == f"{kp['mean']:,.0f} ({kp.mean_low:,.0f}–{kp.mean_high:,.0f})"

    per = cost_per_responder(chosen, ResponderDefinition(), by=("procedure",), options=options)
    vp = per[per.procedure.astype(str) == "vertebroplasty"].iloc[0]
    row = [r for r in grid_rows(page, "costs-responders") if r["procedure"] == "VP"][0]
    assert row["cost_per_responder"] == f"{vp.cost_per_responder:,.0f}"

    fit = net_benefit_regression(chosen, ResponderDefinition(), options=options)
    assert texts(find_by_id(page, "costs-icer-text")) == [fit.verdict]
    icer_rows = grid_rows(page, "costs-icer")
    assert icer_rows[0]["value"] == f"{fit.delta_cost:+,.0f} EUR"
    rates = grid_rows(page, "costs-rates")
    assert {r["currency"] for r in rates} == {"EUR", "USD"}


def test_ppp_in_euro_uses_the_chosen_price_level(dashboard_app):
    app, records = dashboard_app
    selection = RecordFilter(countries=("GB", "FR"))
    page = render(app, selection, currency="EUR", method="ppp", country="FR",
                  grouping="country")
    chosen = apply_filter(records, selection)
    options = CostOptions(reporting_currency="EUR", method="ppp", reporting_country="FR")
    from dashboard.pages.costs import GROUP_CI

    summary = cost_summary(chosen, by=("country", "procedure"), options=options, **GROUP_CI)
    want = summary[(summary.country.astype(str) == "GB")
                   & (summary.procedure.astype(str) == "vertebroplasty")].iloc[0]
    row = [r for r in grid_rows(page, "costs-summary")
           if r["country"] == "GB" and r["procedure"] == "VP"][0]
    assert row["median_iqr"].startswith(f"{want['median']:,.0f} [")
    assert "Purchasing power parities" in " ".join(texts(page))
    assert {r["country"] for r in grid_rows(page, "costs-rates")} == {"FR", "GB"}


def test_tiny_facility_is_suppressed(dashboard_app):
    app, records = dashboard_app
    page = render(app, RecordFilter(), grouping="facility")
    tiny = [r for r in grid_rows(page, "costs-summary") if r["facility"] == "FAC-TINY"]
    assert tiny and all(r["costed"] == "<11" for r in tiny)
    assert all(r["median_iqr"] is None and r["mean_ci"] is None for r in tiny)
    responders = [r for r in grid_rows(page, "costs-responders") if r["facility"] == "FAC-TINY"]
    assert all(r["cost_per_responder"] is None for r in responders)
    figure = find_by_id(page, "costs-figure").figure
    markers = [t for t in figure["data"] if t["mode"] == "markers"]
    assert not any("FAC-TINY" in y for t in markers for y in t["y"])

    only = render(app, RecordFilter(facilities=("FAC-TINY",)))
    assert texts(find_by_id(only, "costs-count-records")) == ["<11"]
    assert texts(find_by_id(only, "costs-count-costed")) == ["<11"]
    assert "Not" in texts(find_by_id(only, "costs-icer-text"))[0]
    shown = " ".join(texts(only))
    chosen = apply_filter(records, RecordFilter(facilities=("FAC-TINY",)))
    assert f"{chosen.cost.astype(float).median():,.0f}" not in shown


def test_empty_selection_and_controls(dashboard_app):
    from dashboard.pages.costs import cost_options, toggle_ppp_country

    app, _ = dashboard_app
    assert "No records match the current filters." in texts(render(app, RecordFilter(countries=("ZW",))))
    assert toggle_ppp_country("EUR", "ppp") is False and toggle_ppp_country("USD", "ppp") is True
    assert cost_options("EUR", "ppp", None).reporting_country == "DE"
    assert cost_options("XXX", "bogus", None) == CostOptions()


def test_report_has_sections(dashboard_app):
    from dashboard.layout import download_report
    from dashboard.pages.costs import costs_report

    app, _ = dashboard_app
    with app.server.app_context():
        sections = costs_report(RecordFilter())
        sent = download_report(1, "/costs", RecordFilter(countries=("US",)).to_dict())
    assert [s.title for s in sections][:2] == ["Records and conversion",
                                               "Cost per procedure by procedure"]
    assert all(s.table is not None for s in sections if s.title != "Cost per responder")
    assert sent["filename"].startswith("costs-report-")
    assert "Federal Reserve" in sent["content"]


def test_price_year_control_and_adjusted_net_benefit(dashboard_app):
    app, records = dashboard_app
    selection = RecordFilter()
    chosen = apply_filter(records, selection)
    status = ResponderDefinition().is_responder(chosen)
    for year in (2022, "nominal"):
        page = render(app, selection, price_year=year)
        options = CostOptions(price_year=year)
        summary = cost_summary(chosen, options=options)
        row = [r for r in grid_rows(page, "costs-summary") if r["procedure"] == "KP"][0]
        kp = summary[summary["procedure"] == "kyphoplasty"].iloc[0]
        assert row["mean_ci"].startswith(f"{kp['mean']:,.0f} (")
        fit = net_benefit_regression(chosen, responders=status, options=options)
        assert texts(find_by_id(page, "costs-icer-text")) == [fit.verdict]
        nbr = grid_rows(page, "costs-icer")
        assert nbr[0]["value"] == f"{fit.delta_cost:+,.0f} USD"
        if not fit.icer_defined:
            assert nbr[2]["value"] == "not given (see the verdict)"
        assert find_by_id(page, "costs-ceac").figure is not None
    assert "2022 prices" in texts(find_by_id(render(app, selection, price_year=2022),
                                            "costs-index-text-0"))[0]
