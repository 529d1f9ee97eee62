"""Costs (for administrators): costs in one price year and one reporting currency (market
exchange rates or PPP), median/IQR and mean with CI by group, cost per responder, the adjusted
incremental cost and net benefit of KP versus VP (net-benefit regression, acceptability curve),
and the price-index and rate tables in use."""

from __future__ import annotations

from typing import NamedTuple

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analysis.costs import (
    CostConversion,
    CostOptions,
    CostPerResponderRanking,
    NetBenefit,
    convert_costs,
    cost_per_responder,
    cost_summary,
    exchange_rates,
    net_benefit_regression,
    ppp_factors,
    price_index,
    ranked_cost_per_responder,
)
from analysis.errors import InsufficientDataError
from analysis.filters import RecordFilter
from analysis.outcomes import ResponderDefinition
from dashboard.components import (
    chart_card,
    data_grid,
    empty_state,
    page_header,
    safe_callback,
    stat_card,
)
from dashboard.compute_cache import cached_output
from dashboard.data_access import filtered_records
from dashboard.drilldown import CLICK_HINT
from dashboard.figures.costs import (
    CURRENCIES,
    GROUPING_LABELS,
    GROUPINGS,
    RANKING_UNITS,
    WIDE_COLUMNS,
    ceac_figure,
    ceac_summary,
    coded_groupings,
    conversion_counts,
    cost_figure,
    cost_figure_summary,
    net_benefit_table,
    price_index_description,
    price_index_table,
    ranking_display,
    ranking_figure,
    ranking_labels,
    rate_description,
    rate_table,
    responder_display,
    responder_labels,
    summary_display,
    summary_labels,
)
from dashboard.report import ReportSection, register_report
from dashboard.state import PageSetting, register_settings, settings_from_query
from dashboard.suppression import display_text, is_small, label

dash.register_page(__name__, path="/costs", name="Costs", title="Costs", order=4)

#: The record columns this page reads: only these are copied for a selection, which at a
#: million records is most of a filter change's time (found by tracing every callback).
RECORD_COLUMNS = (
    "facility_id", "country", "region", "procedure_date", "procedure", "pain_baseline",
    "pain_month1", "cost", "currency", "age", "sex", "etiology", "levels_treated",
)

DEFAULT_PPP_COUNTRY = "DE"
#: Many groups (regions, facilities) would each need a bootstrap: above 1,000 costs a group's
#: mean CI is the t-interval, below it a percentile bootstrap with 1,000 resamples. Grouping by
#: procedure keeps the analysis defaults (BCa, 2,000 resamples, t-interval above 5,000).
GROUP_CI = {"clt_min_n": 1000, "ci_method": "percentile", "n_resamples": 1000}
RESPONDER = ResponderDefinition()


def price_years() -> list[int]:
    """Years of the price-index table in use (the price-year control's choices)."""
    return sorted({int(year) for year in price_index()["year"]})


def cost_options(currency: str | None, method: str | None, ppp_country: str | None,
                 price_year: int | str | None = "latest") -> CostOptions:
    currency = currency if currency in CURRENCIES else "USD"
    method = method if method in ("exchange", "ppp") else "exchange"
    country = (ppp_country or DEFAULT_PPP_COUNTRY) if method == "ppp" and currency == "EUR" else None
    if price_year != "nominal":
        try:
            price_year = int(price_year) if int(price_year) in price_years() else "latest"
        except (TypeError, ValueError):
            price_year = "latest"
    return CostOptions(reporting_currency=currency, method=method, reporting_country=country,
                       price_year=price_year)


def euro_countries() -> list[str]:
    """Countries whose PPP factor is in EUR (the Euro price-level control's choices)."""
    ppp = ppp_factors()
    return sorted(ppp.loc[ppp["currency"] == "EUR", "country"].unique())


#: The page's controls kept in the URL (``?cur=INR&group=country&year=2020``).
SETTINGS = register_settings(
    "/costs",
    PageSetting("costs-currency", "cur", "USD", CURRENCIES, label="Reporting currency"),
    PageSetting("costs-method", "conv", "exchange", ("exchange", "ppp"), label="Conversion",
                names={"exchange": "market exchange rates", "ppp": "PPP"}),
    PageSetting("costs-ppp-country", "ppp", DEFAULT_PPP_COUNTRY, euro_countries,
                label="Euro price level"),
    PageSetting("costs-grouping", "group", "procedure", tuple(GROUPING_LABELS),
                label="Group by", names=GROUPING_LABELS),
    # Default: the latest year of the index in use (what the control shows when not set).
    PageSetting("costs-price-year", "year", price_years()[-1],
                lambda: (*price_years(), "nominal"), label="Price year",
                names={"nominal": "nominal (no adjustment)"}),
)


def summary_kwargs(grouping: str) -> dict:
    return {} if grouping == "procedure" else dict(GROUP_CI)


class CostResults(NamedTuple):  # not a dataclass: Dash runs page modules outside sys.modules
    options: CostOptions
    grouping: str
    by: tuple[str, ...]
    counts: pd.DataFrame
    notes: tuple[str, ...]
    summary: pd.DataFrame
    responders: pd.DataFrame
    rates: pd.DataFrame
    rate_text: list[str]
    net_benefit: NetBenefit | None
    net_benefit_message: str
    price_year: int | None
    index_text: list[str]
    index_table: pd.DataFrame | None
    ranking: CostPerResponderRanking | None = None


def adjusted_net_benefit(records: pd.DataFrame, conversion: CostConversion, status: pd.Series,
                         by_procedure: pd.DataFrame) -> tuple[NetBenefit | None, str]:
    """The adjusted incremental cost and net benefit of KP versus VP, or why not shown."""
    arms = by_procedure[by_procedure["procedure"].astype(str).isin(("kyphoplasty",
                                                                     "vertebroplasty"))]
    if len(arms) < 2:
        return None, "Not available: the selection does not contain both procedures."
    if is_small(arms["n"]).any() or is_small(arms["responders"]).any():
        return None, (f"Not shown: a procedure has fewer than 11 patients or responders with a "
                      f"known cost ({label()}).")
    try:
        return net_benefit_regression(records, responders=status, conversion=conversion), ""
    except InsufficientDataError as error:
        if "cluster-robust" not in str(error):
            return None, f"Not estimable: {error}"
    try:  # one facility selected: model-based standard errors (the method says so)
        return net_benefit_regression(records, responders=status, conversion=conversion,
                                      cluster=None), ""
    except InsufficientDataError as error:
        return None, f"Not estimable: {error}"


def compute(records: pd.DataFrame, options: CostOptions, grouping: str) -> CostResults:
    grouping = grouping if grouping in GROUPINGS else "procedure"
    by = GROUPINGS[grouping]
    # Convert the costs and classify responders once; every table below reuses them.
    conversion = convert_costs(records, options)
    status = RESPONDER.is_responder(records)
    grouped = coded_groupings(records, by)
    summary = cost_summary(grouped, by=by, conversion=conversion, **summary_kwargs(grouping))
    responders = cost_per_responder(grouped, by=by, responders=status, conversion=conversion)
    # Patients and responders per procedure are sums over the groups (each record is in one).
    by_procedure = responders.groupby(responders["procedure"].astype(str), observed=True)[
        ["n", "responders"]].sum().reset_index()
    benefit, benefit_message = adjusted_net_benefit(records, conversion, status, by_procedure)
    exchange = exchange_rates(options.rates_path)
    ppp = ppp_factors(options.ppp_path) if options.method == "ppp" else None
    index = (price_index(options.price_index_path) if conversion.price_year is not None
             else None)
    currencies = sorted(str(c) for c in records["currency"].dropna().unique())
    countries = sorted(str(c) for c in records["country"].dropna().unique())
    return CostResults(
        options=options, grouping=grouping, by=by, counts=conversion_counts(records, conversion),
        notes=conversion.notes, summary=summary, responders=responders,
        rates=rate_table(options, exchange, ppp, currencies, countries),
        rate_text=rate_description(options, exchange, ppp),
        net_benefit=benefit, net_benefit_message=benefit_message,
        price_year=conversion.price_year,
        index_text=price_index_description(conversion.price_year, index, countries),
        index_table=price_index_table(index, countries) if index is not None else None,
        ranking=ranked_cost_per_responder(
            coded_groupings(records, RANKING_UNITS[grouping]), by=RANKING_UNITS[grouping],
            responders=status, conversion=conversion),
    )




def _count_cards(results: CostResults) -> dbc.Row:
    counts = dict(zip(results.counts["records"], results.counts["count"], strict=True))
    cards = [
        ("Records in the selection", "Records in the selection", "costs-count-records"),
        ("Costed (converted)", "With a cost converted to the reporting currency",
         "costs-count-costed"),
        ("Without a recorded cost", "Without a recorded cost", "costs-count-nocost"),
        ("Cost not convertible", "With a cost that could not be converted",
         "costs-count-unconverted"),
    ]
    details = {
        "costs-count-records": "after the global filters",
        "costs-count-costed": f"in {results.options.reporting_currency}"
                              + (" at PPP" if results.options.method == "ppp" else
                                 " at market exchange rates"),
        "costs-count-nocost": "left out of every cost figure",
        "costs-count-unconverted": "e.g. a currency missing from the rate table",
    }
    return dbc.Row([dbc.Col(stat_card(title, counts[key], details[card_id], card_id),
                            xs=12, sm=6, xl=3, className="mb-2")
                    for title, key, card_id in cards], className="g-2 mb-1")


def _net_benefit_section(results: CostResults) -> html.Div:
    result = results.net_benefit
    title = html.H2("Incremental cost per additional responder, KP versus VP (adjusted)",
                    className="h6")
    if result is None:
        return html.Div([title, html.P(results.net_benefit_message, id="costs-icer-text")],
                        className="mb-3")
    year = f"{result.price_year} prices" if result.price_year else "nominal prices"
    return html.Div([
        title,
        html.P("Estimand: the difference in mean cost per patient and in the responder rate, "
               "KP − VP, at equal age, sex, etiology, levels treated and country, among "
               f"patients with a known cost and responder status ({year}, "
               f"{result.currency}). Pooled means (the tables above) are not compared: they "
               "mix countries with different prices and KP shares (most US cases are KP).",
               className="small text-muted mb-1"),
        dbc.Alert(result.verdict, id="costs-icer-text", color="light", className="border"),
        data_grid(net_benefit_table(result), "costs-icer", "costs-net-benefit"),
        chart_card("Cost-effectiveness acceptability curve (adjusted)", ceac_figure(result),
                   ceac_summary(result), graph_id="costs-ceac"),
        html.P(f"Responder: {RESPONDER.label}. Method: {result.method}.",
               className="small text-muted"),
    ], className="mb-3")


def body(results: CostResults) -> html.Div:
    currency = results.options.reporting_currency
    grouping = GROUPING_LABELS[results.grouping].lower()
    notes = [html.Li(display_text(note)) for note in results.notes]
    return html.Div([
        _count_cards(results),
        html.Details([html.Summary("Conversion notes"), html.Ul(notes, className="small")],
                     className="mb-2") if notes else html.Div(),
        chart_card(f"Cost per procedure by {grouping} ({currency})",
                   cost_figure(results.summary, results.by, currency),
                   cost_figure_summary(results.summary, results.by, currency),
                   graph_id="costs-figure",
                   extra=[html.P(CLICK_HINT, className="small text-muted mb-0")]),
        html.H2(f"Cost table by {grouping}", className="h6"),
        html.P("Median [IQR] and mean with 95% CI of the cost per procedure. Groups with 1–10 "
               f"costed procedures show {label()} and no values. "
               + ("CIs: BCa bootstrap (2,000 resamples), t-interval above 5,000 costs."
                  if results.grouping == "procedure" else
                  "CIs: percentile bootstrap (1,000 resamples) up to 1,000 costs, t-interval "
                  "above (kept fast for many groups)."), className="small text-muted mb-1"),
        data_grid(summary_display(results.summary, results.by, currency), "costs-summary",
                  f"costs-by-{results.grouping}-{currency}",
                  column_labels=summary_labels(currency), min_widths=WIDE_COLUMNS),
        html.H2(f"Cost per responder by {grouping}", className="h6"),
        html.P(f"Total cost ÷ number of responders ({RESPONDER.label}), among patients with a "
               "known cost and responder status.", className="small text-muted mb-1"),
        data_grid(responder_display(results.responders, results.by, currency),
                  "costs-responders", f"costs-per-responder-{currency}",
                  column_labels=responder_labels(currency), min_widths=WIDE_COLUMNS),
        _ranking_section(results),
        _net_benefit_section(results),
        html.H2("Price year and price indices in use", className="h6"),
        *[html.P(text, className="small", id=f"costs-index-text-{i}")
          for i, text in enumerate(results.index_text)],
        data_grid(results.index_table, "costs-index", "costs-price-index")
        if results.index_table is not None else html.Div(),
        html.H2("Rates in use", className="h6"),
        *[html.P(text, className="small") for text in results.rate_text],
        data_grid(results.rates, "costs-rates", "costs-rate-table"),
        html.P(["The adjusted cost ratio KP/VP (gamma GLM with log link, at equal case mix) is "
                "shown on the ", dcc.Link("VP vs KP page", href="/comparison"),
                ", in the table of effects (row “Cost”), not here: it takes several seconds on "
                "large selections."], className="small text-muted", id="costs-ratio-where"),
    ])


def ranking_unit_name(results: CostResults) -> str:
    return "facility" if "facility_id" in results.by else (
        "country" if results.grouping == "country" else "region")


RANKING_NOTE = (
    "Lowest first. Procedures pooled within each unit. Rows without a value say why: "
    "suppressed (1–10 patients, responders or non-responders), no responders (the ratio is "
    "undefined), or too few responders for a finite interval. {method}")


def _ranking_section(results: CostResults) -> html.Div:
    """The units ranked by cost per responder, with 95% CIs (figure and table)."""
    if results.ranking is None:
        return html.Div()
    currency = results.options.reporting_currency
    unit = ranking_unit_name(results)
    display = ranking_display(results.ranking, currency)
    return html.Div([
        html.H2(f"Cost per responder by {unit}, ranked", className="h6"),
        html.P(RANKING_NOTE.format(method=results.ranking.method),
               className="small text-muted mb-1", id="costs-ranking-note"),
        chart_card(f"Cost per responder by {unit}, ranked ({currency})",
                   ranking_figure(display, currency),
                   f"{int((display['rank'] != '').sum())} of {len(display)} {unit} units "
                   "ranked; the table gives the reason for each unranked one.",
                   graph_id="costs-ranking-figure"),
        data_grid(display, "costs-ranking", f"costs-ranked-per-responder-{unit}-{currency}",
                  column_labels=ranking_labels(currency),
                  flex={"note": 2.0, "cost_per_responder_ci": 1.4}),
    ], id="costs-ranking")


def _radio(control_id: str, options, value) -> dbc.RadioItems:
    return dbc.RadioItems(id=control_id, options=options, value=value, inline=True,
                          className="mb-1")


def layout(**query) -> html.Div:
    chosen = settings_from_query("/costs", query)
    euro = euro_countries()
    years = price_years()
    year = chosen["year"]
    controls = dbc.Card(dbc.CardBody(dbc.Row([
        dbc.Col([dbc.Label("Reporting currency", html_for="costs-currency", className="small mb-0"),
                 _radio("costs-currency", [{"label": c, "value": c} for c in CURRENCIES],
                        chosen["cur"])],
                xs=12, sm=6, xl=4),
        dbc.Col([dbc.Label("Conversion", html_for="costs-method", className="small mb-0"),
                 _radio("costs-method", [{"label": "Market exchange rates", "value": "exchange"},
                                         {"label": "PPP", "value": "ppp"}],
                        chosen["conv"])],
                xs=12, sm=6, xl=4),
        dbc.Col([dbc.Label("Euro price level (PPP in EUR)", html_for="costs-ppp-country",
                           className="small mb-0"),
                 dcc.Dropdown(id="costs-ppp-country", options=[{"label": c, "value": c}
                                                               for c in euro],
                              value=chosen["ppp"], clearable=False,
                              disabled=not (chosen["cur"] == "EUR" and chosen["conv"] == "ppp"))],
                xs=12, sm=6, xl=4),
        dbc.Col([dbc.Label("Group by", html_for="costs-grouping", className="small mb-0"),
                 _radio("costs-grouping", [{"label": v, "value": k}
                                           for k, v in GROUPING_LABELS.items()],
                        chosen["group"])],
                xs=12, sm=6, xl=4),
        dbc.Col([dbc.Label("Price year", html_for="costs-price-year", className="small mb-0"),
                 dcc.Dropdown(id="costs-price-year",
                              options=[{"label": str(y), "value": y} for y in years]
                              + [{"label": "nominal (no price adjustment)",
                                  "value": "nominal"}],
                              value=year, clearable=False)],
                xs=12, sm=6, xl=4),
    ])), className="mb-3")
    return html.Div([
        page_header("Costs", "What procedures cost, in one reporting currency, and what an "
                    "additional responder costs with kyphoplasty (KP) rather than "
                    "vertebroplasty (VP)."),
        controls,
        dcc.Loading(html.Div(id="costs-body"), delay_show=400,
                    overlay_style={"visibility": "visible", "opacity": 0.5}),
    ])


@callback(Output("costs-ppp-country", "disabled"), Input("costs-currency", "value"),
          Input("costs-method", "value"))
def toggle_ppp_country(currency, method):
    return not (currency == "EUR" and method == "ppp")


@callback(Output("costs-body", "children"), Input("filter-state", "data"),
          Input("costs-currency", "value"), Input("costs-method", "value"),
          Input("costs-ppp-country", "value"), Input("costs-grouping", "value"),
          Input("costs-price-year", "value"))
@safe_callback()
@cached_output
def update_costs(state, currency, method, ppp_country, grouping, price_year="latest"):
    records = filtered_records(RecordFilter.from_dict(state), RECORD_COLUMNS)
    if records.empty:
        return empty_state()
    return body(compute(records, cost_options(currency, method, ppp_country, price_year),
                        grouping))


@register_report("/costs", "Costs")
def costs_report(selection: RecordFilter, settings: dict | None = None) -> list[ReportSection]:
    """The page's report with its settings (currency, conversion, price year, grouping)."""
    settings = settings or settings_from_query("/costs", None)
    records = filtered_records(selection, RECORD_COLUMNS)
    if records.empty:
        return [ReportSection("No records", "No records match the filters.")]
    results = compute(records, cost_options(settings["cur"], settings["conv"], settings["ppp"],
                                            settings["year"]), settings["group"])
    currency = results.options.reporting_currency
    grouping = GROUPING_LABELS[results.grouping].lower()
    conversion = ("at PPP" + (f" ({results.options.reporting_country} price level)"
                              if results.options.reporting_country else "")
                  if results.options.method == "ppp" else "at market exchange rates")
    prices = f"{results.price_year} prices" if results.price_year else "nominal prices"
    return [
        ReportSection("Records and conversion",
                      f"Costs in {currency} {conversion}, {prices}, grouped by {grouping}. "
                      + " ".join(display_text(note) for note in results.notes), table=results.counts),
        ReportSection(f"Cost per procedure by {grouping}",
                      cost_figure_summary(results.summary, results.by, currency),
                      figure=cost_figure(results.summary, results.by, currency),
                      table=summary_display(results.summary, results.by, currency).rename(
                          columns=summary_labels(currency))),
        ReportSection(f"Cost per responder by {grouping}", "",
                      table=responder_display(results.responders, results.by, currency).rename(
                          columns=responder_labels(currency))),
        ReportSection(f"Cost per responder by {ranking_unit_name(results)}, ranked",
                      RANKING_NOTE.format(method=results.ranking.method),
                      figure=ranking_figure(ranking_display(results.ranking, currency), currency),
                      table=ranking_display(results.ranking, currency).rename(
                          columns=ranking_labels(currency))),
        ReportSection("Incremental cost and net benefit, KP versus VP (adjusted)",
                      (results.net_benefit.verdict + " " + ceac_summary(results.net_benefit))
                      if results.net_benefit else results.net_benefit_message,
                      figure=ceac_figure(results.net_benefit) if results.net_benefit else None,
                      table=net_benefit_table(results.net_benefit) if results.net_benefit
                      else None),
        ReportSection("Price year and price indices", " ".join(results.index_text),
                      table=results.index_table),
        ReportSection("Rates in use", " ".join(results.rate_text), table=results.rates),
    ]

