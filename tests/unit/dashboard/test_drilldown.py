"""Cross-filtering (issue 14, item 6): chart point ids, the click's new query string, the
drill bar, and a restricted user's clicks."""

from __future__ import annotations

import urllib.parse

import pandas as pd
import pytest

from dashboard import drilldown
from dashboard.figures.costs import group_point_ids
from dashboard.figures.quality import unit_point_ids
from dashboard.state import filter_from_query


def test_point_ids_round_trip_through_a_click():
    ids = unit_point_ids(["FAC-009", "FAC <&> 2"], "facility_id")
    for unit, point in zip(["FAC-009", "FAC <&> 2"], ids, strict=True):
        assert drilldown.clicked_filters({"points": [{"id": point}]}) == {"facility": unit}
    assert unit_point_ids(["OP-1"], "operator_id") == ["operator=OP-1"]
    rows = pd.DataFrame({"country": ["US"], "region": ["North"], "procedure": ["kyphoplasty"]})
    point = group_point_ids(rows, ("country", "region", "procedure"))[0]
    assert drilldown.clicked_filters({"points": [{"id": point}]}) == {
        "country": "US", "region": "North", "procedure": "kyphoplasty"}


def test_a_click_narrows_the_current_selection_and_keeps_page_settings():
    query = drilldown.drilled_query("?country=US&age=75-84&outcome=embolism",
                                    {"facility": "FAC-009"})
    selection = filter_from_query(query)
    assert selection.countries == ("US",) and selection.age_bands == ("75-84",)
    assert selection.facilities == ("FAC-009",)
    assert urllib.parse.parse_qs(query.lstrip("?"))["outcome"] == ["embolism"]
    # A second click replaces the facility (one point, one facility).
    again = drilldown.drilled_query(query, {"facility": "FAC-010"})
    assert filter_from_query(again).facilities == ("FAC-010",)


@pytest.mark.parametrize("click_data", [
    None, {}, {"points": []}, {"points": [{"x": 3}]}, {"points": [{"id": "from=2020-01-01"}]},
    {"points": [{"id": "password=x"}]}, {"points": ["text"]},
])
def test_clicks_without_a_filter_id_change_nothing(click_data):
    assert drilldown.drilled_query("?country=US", drilldown.clicked_filters(click_data)) is None


def test_a_restricted_user_cannot_widen_the_view_by_clicking():
    mine = frozenset({"FAC-001", "FAC-002"})
    assert drilldown.drilled_query("", {"facility": "FAC-009"}, mine) is None
    assert filter_from_query(drilldown.drilled_query("", {"facility": "FAC-002"}, mine)
                             ).facilities == ("FAC-002",)


def test_a_forged_value_the_filters_refuse_changes_nothing():
    assert drilldown.drilled_query("", {"age": "not-a-band"}) is None


def test_drill_bar_offers_the_way_back_and_the_records():
    from dash import dcc

    def links(parts):
        return {part.children: part.href for part in parts if isinstance(part, dcc.Link)}

    parts = drilldown.drill_bar("/quality", "?country=US&facility=FAC-009&outcome=x", True)
    found = links(parts)
    assert found["Clear facility filter"] == "/quality?country=US&outcome=x"
    assert found["Open the records behind this selection"] == "/records?country=US&facility=FAC-009"
    assert "Open the records behind this selection" not in links(
        drilldown.drill_bar("/quality", "?facility=FAC-009", False))
    assert drilldown.drill_bar("/quality", "?country=US", True) == []
