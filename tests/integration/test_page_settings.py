"""Every page setting lives in the URL and in the report (issue 14, item 1).

The page controls declared with ``dashboard.state.register_settings`` round-trip through the
query string, restore the page's controls, survive a filter change, and reach the report.
"""

from __future__ import annotations

import html
import re

import pytest

from analysis.filters import RecordFilter
from dashboard.state import (
    PAGE_SETTINGS,
    QUERY_KEYS,
    filter_from_query,
    query_with_settings,
    setting_text,
    settings_from_query,
)
from tests.dash_tree import find_by_id, grid_rows, texts

#: Pages with controls that change what they show: each must declare them.
PAGES_WITH_CONTROLS = {
    "/quality": {"quality-outcome", "quality-unit", "quality-adjust", "quality-overdispersion",
                 "quality-procedure", "quality-cusum-unit", "quality-false-alarm"},
    "/costs": {"costs-currency", "costs-method", "costs-ppp-country", "costs-grouping",
               "costs-price-year"},
    "/pain": {"pain-timepoint", "pain-kind", "pain-threshold-relative",
              "pain-threshold-absolute", "pain-deaths"},
    "/complications": {"complications-measure", "complications-period"},
    "/comparison": {"comparison-table-one-p", "comparison-level", "comparison-cluster"},
    "/signals": {"signals-since"},
    "/scorecard": {"scorecard-facility", "scorecard-peers", "scorecard-peer-list",
                   "scorecard-outcome", "scorecard-anonymise"},
}


@pytest.fixture(scope="module")
def site(dashboard_app):
    return dashboard_app


def _alternatives(setting) -> list:
    if setting.multiple:
        return [("FAC-001", "FAC-002")]
    if setting.prop == "date":
        return ["2024-06-01"]
    allowed = setting.allowed()
    return [c for c in allowed if c != setting.default] if allowed else ["FAC-001"]


def test_every_page_control_is_declared(site):
    declared = {path: {s.control for s in settings} for path, settings in PAGE_SETTINGS.items()
                if not path.startswith("/doc")}
    assert declared == PAGES_WITH_CONTROLS
    for settings in PAGE_SETTINGS.values():
        assert not {s.key for s in settings} & set(QUERY_KEYS.values())


@pytest.mark.parametrize("path", sorted(PAGES_WITH_CONTROLS))
def test_every_setting_round_trips_through_the_query_string(site, path):
    settings = PAGE_SETTINGS[path]
    defaults = [s.default for s in settings]
    assert settings_from_query(path, "") == {s.key: s.default for s in settings}
    assert query_with_settings("?country=US", path, defaults) == "?country=US"
    for position, setting in enumerate(settings):
        for value in _alternatives(setting):
            values = [*defaults[:position], value, *defaults[position + 1:]]
            query = query_with_settings("?country=US&from=2023-01-01", path, values)
            assert f"{setting.key}={setting_text(value)}" in query
            parsed = settings_from_query(path, query)
            assert parsed[setting.key] == value
            assert filter_from_query(query) == RecordFilter(date_from="2023-01-01",
                                                            countries=("US",))
            # Unknown and bad values fall back to the default without failing.
            bad = settings_from_query(path, f"?{setting.key}=%00bad&zz=1")
            assert bad[setting.key] == setting.default


def _control_values(layout, settings) -> dict:
    found = {}
    for setting in settings:
        node = find_by_id(layout, setting.control)
        assert node is not None, setting.control
        value = getattr(node, setting.prop, None)
        found[setting.control] = tuple(value) if setting.multiple else value
    return found


@pytest.mark.parametrize("path", sorted(PAGES_WITH_CONTROLS))
def test_the_layout_restores_every_setting_from_the_url(site, path):
    import dash

    app, _ = site
    page = next(p for p in dash.page_registry.values() if p["path"] == path)
    settings = PAGE_SETTINGS[path]
    chosen = [(_alternatives(s) or [s.default])[-1] for s in settings]
    query = query_with_settings("", path, chosen)
    params = dict(pair.split("=") for pair in query.lstrip("?").split("&"))
    with app.server.test_request_context(path + query):
        layout = page["layout"](**params)
    values = _control_values(layout, settings)
    for setting, value in zip(settings, chosen, strict=True):
        assert values[setting.control] == value, setting.control


def test_a_filter_change_keeps_the_page_settings(site):
    import dash._callback_context as cc
    from dash._utils import AttributeDict

    from dashboard.layout import sync_filters

    app, _ = site
    address = "?country=IN&cur=INR&group=country"
    with app.server.test_request_context():
        token = cc.context_value.set(AttributeDict(triggered_inputs=[
            {"prop_id": "filter-country.value", "value": ["US"]}]))
        try:
            # ``url`` still holds the address before the page wrote its settings.
            search, state, *_ = sync_filters("?country=IN", None, None, None, ["US"],
                                             *[None] * 8, address)
        finally:
            cc.context_value.reset(token)
    assert RecordFilter.from_dict(state) == RecordFilter(countries=("US",))
    assert search == "?country=US&cur=INR&group=country"
    assert settings_from_query("/costs", search)["cur"] == "INR"


def test_nav_links_carry_the_filters_but_not_another_page_settings(site):
    from dashboard.layout import keep_filters_in_links

    links = keep_filters_in_links("?country=US&outcome=pulmonary_embolism",
                                  [{"path": "/costs"}, {"path": "/quality"}])
    assert links == ["/costs?country=US", "/quality?country=US"]


def test_settings_writer_writes_only_its_page_and_skips_defaults(site):
    from dash.exceptions import PreventUpdate

    from dashboard.layout import settings_writer

    write = settings_writer("/complications")
    assert write("rd", "Q", "?country=US", "/complications") == "?country=US&measure=rd&period=Q"
    assert write("rr", "Y", "?country=US&measure=rd", "/complications") == "?country=US"
    with pytest.raises(PreventUpdate):  # a control of another page never writes the address
        write("rd", "Q", "?country=US", "/quality")


def _report(app, path, state, search):
    from dashboard.layout import download_report

    with app.server.test_request_context():
        return download_report(1, path, state, search)["content"]


def _plain(document: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", document))


def test_quality_report_shows_the_outcome_unit_and_cusum_unit_of_the_url(site):
    from dashboard.figures.quality import funnel_summary, outcome_label
    from dashboard.pages import quality

    app, _ = site
    search = "?outcome=pulmonary_embolism&adjust=crude&od=none"
    chosen = settings_from_query("/quality", search)
    with app.server.app_context():
        page = quality.update_quality({}, chosen["outcome"], chosen["unit"], chosen["adjust"],
                                      chosen["od"], chosen["proc"], None)
        options = [o["value"] for o in page[4] if not o["disabled"]]
        default_unit = page[5]
        other_unit = next(u for u in options if u != default_unit)
        result, _ = quality._funnel(*quality._store_key(), RecordFilter(), chosen["unit"],
                                    chosen["outcome"], False, "none")
        leakage, _ = quality._funnel(*quality._store_key(), RecordFilter(), "facility_id",
                                     "cement_leakage", True, "additive")
    # The screen's funnel summary is the one the report prints for the same settings.
    assert funnel_summary(result) in " ".join(texts(page[1]))
    document = _plain(_report(app, "/quality", {}, search + f"&cusum={other_unit}"))
    assert funnel_summary(result) in document
    assert funnel_summary(leakage) not in document
    assert "Outcome: Cement embolism; Compare: Facilities; Risk adjustment: Off (crude)" in document
    assert f"Risk-adjusted CUSUM and VLAD: {other_unit}" in document
    assert outcome_label("pulmonary_embolism")


def test_costs_report_is_in_the_chosen_currency_and_grouping(site):
    from dashboard.pages.costs import update_costs

    app, _ = site
    search = "?cur=INR&group=country&year=nominal"
    with app.server.app_context():
        page = update_costs({}, "INR", "exchange", "DE", "country", "nominal")
    screen = grid_rows(page, "costs-summary")
    document = _plain(_report(app, "/costs", {}, search))
    assert "Costs in INR at market exchange rates, nominal prices, grouped by country" in document
    assert "Cost per procedure by country" in document
    assert "Reporting currency: INR" in document
    for row in screen:  # every median [IQR] on screen is in the report
        assert row["median_iqr"] in document
    default = _plain(_report(app, "/costs", {}, ""))
    assert screen[0]["median_iqr"] not in default


def test_pain_complications_and_comparison_reports_follow_the_url(site):
    app, _ = site
    pain = _plain(_report(app, "/pain", {}, "?visit=month3&kind=absolute&abs=3"))
    assert "Responders: ≥3-point pain reduction at month 3" in pain
    assert "Follow-up visit: Month 3" in pain
    complications = _plain(_report(app, "/complications", {}, "?measure=rd&period=Q"))
    assert "Risk differences, KP compared with VP" in complications
    assert "per quarter" in complications
    comparison = _plain(_report(app, "/comparison", {}, "?level=0.9&cluster=off"))
    assert "Confidence level: 90%; Intervals clustered by facility: no" in comparison
    assert "90%" in comparison


def test_report_for_url_builds_the_page_report_from_an_address(site, tmp_path):
    from dashboard.report import report_for_url

    app, _ = site
    database = app.server.config["VA_DATABASE"]
    document = _plain(report_for_url("/costs", "?country=US&cur=EUR&group=country", database))
    assert "Costs in EUR at market exchange rates" in document
    assert "Filters: country: US" in document
    assert "Cost per procedure by country" in document
    with pytest.raises(ValueError, match="no report for page"):
        report_for_url("/nowhere", "", database)


# ------------------------------------------------------------------ scorecard (issue 15 gap)
def test_scorecard_controls_write_the_address_without_the_filter_key(site):
    from dashboard.layout import settings_writer

    write = settings_writer("/scorecard")
    query = write("FAC-019", "country", [], "adjacent_fracture_365d", False, "?country=US",
                  "/scorecard")
    assert query == "?country=US&outcome=adjacent_fracture_365d&peers=country&sc_facility=FAC-019"
    # The profiled facility is not the global facility filter.
    assert filter_from_query(query) == RecordFilter(countries=("US",))
    listed = write("FAC-019", "list", ["FAC-001", "FAC-002"], "cement_leakage", False, "",
                   "/scorecard")
    assert settings_from_query("/scorecard", listed)["peer_list"] == ("FAC-001", "FAC-002")


def test_old_scorecard_links_still_open_the_facility_of_the_filter(site):
    from dashboard.pages.scorecard import ScorecardSettings

    old = ScorecardSettings.from_query("?facility=FAC-019&peers=country&anonymise=yes")
    assert (old.facility, old.peers, old.anonymise) == ("FAC-019", "country", True)
    new = ScorecardSettings.from_query({"facility": "FAC-019", "sc_facility": "FAC-007"})
    assert new.facility == "FAC-007"


def test_scorecard_report_button_renders_the_dropdowns_of_the_address(site):
    """The Report button hands the scorecard its settings from the address, as other pages."""
    from dashboard.figures.scorecard import scorecard_label

    app, _ = site
    search = "?sc_facility=FAC-019&peers=country&outcome=pulmonary_embolism"
    document = _plain(_report(app, "/scorecard", {}, search))
    assert "Scorecard of FAC-019" in document
    assert "same country (US)" in document
    assert f"Rank among the peer set: {scorecard_label('pulmonary_embolism')}" in document
    assert "Facility profiled: FAC-019; Peer group: Same country" in document
    assert f"Rank among the peer set: {scorecard_label('cement_leakage')}" not in document
