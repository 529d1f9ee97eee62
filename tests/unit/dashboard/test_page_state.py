"""Page settings in the query string (dashboard.state): parsing, defaults, writing back."""

from __future__ import annotations

import pytest

from analysis.filters import RecordFilter
from dashboard.state import (
    PAGE_SETTINGS,
    PageSetting,
    describe_settings,
    filter_from_query,
    query_with_settings,
    register_settings,
    settings_from_query,
)

PATH = "/unit-test-page"


@pytest.fixture
def page():
    settings = register_settings(
        PATH,
        PageSetting("t-cur", "cur", "USD", ("USD", "INR"), label="Currency"),
        PageSetting("t-level", "level", 0.95, (0.9, 0.95, 0.99), label="Level",
                    names={0.9: "90%", 0.95: "95%", 0.99: "99%"}),
        PageSetting("t-on", "on", True, (True, False)),
        PageSetting("t-unit", "unit", None, None, label="Unit"),
        PageSetting("t-year", "year", "latest", lambda: (2020, 2021, "latest")),
    )
    yield settings
    PAGE_SETTINGS.pop(PATH)


def test_values_round_trip_with_their_types(page):
    query = query_with_settings("?country=US", PATH, ["INR", 0.9, False, "FAC-009", 2020])
    assert query == "?country=US&cur=INR&level=0.9&on=off&unit=FAC-009&year=2020"
    assert settings_from_query(PATH, query) == {"cur": "INR", "level": 0.9, "on": False,
                                                "unit": "FAC-009", "year": 2020}
    assert filter_from_query(query) == RecordFilter(countries=("US",))
    # Dash hands a layout the query as keyword arguments: the same values come back.
    assert settings_from_query(PATH, {"cur": "INR", "level": "0.9"})["level"] == 0.9


def test_defaults_are_left_out_and_bad_values_fall_back(page):
    defaults = [s.default for s in page]
    assert query_with_settings("?country=US&cur=INR", PATH, defaults) == "?country=US"
    bad = settings_from_query(PATH, "?cur=XXX&level=0.5&on=maybe&unit=" + "x" * 65 + "&year=1999")
    assert bad == {s.key: s.default for s in page}
    assert settings_from_query(PATH, "?unit=%0Abad")["unit"] is None  # not printable
    assert settings_from_query("/no-such-page", "?cur=INR") == {}


def test_another_page_parameter_is_kept_and_reports_name_the_values(page):
    assert query_with_settings("?zz=1", PATH, ["INR", 0.95, True, None, "latest"]) == \
        "?cur=INR&zz=1"
    assert describe_settings(PATH, {"cur": "INR", "level": 0.99, "on": True, "unit": None,
                                    "year": "latest"}) == \
        "Currency: INR; Level: 99%; on: on; Unit: automatic; year: latest"


def test_keys_must_be_unique_and_not_filter_keys():
    with pytest.raises(ValueError, match="unique non-filter keys"):
        register_settings("/bad", PageSetting("a", "country", "x"))
    with pytest.raises(ValueError, match="unique non-filter keys"):
        register_settings("/bad", PageSetting("a", "k", "x"), PageSetting("b", "k", "y"))
    assert "/bad" not in PAGE_SETTINGS


def test_a_multi_choice_setting_round_trips_and_drops_bad_values():
    path = "/unit-test-multi"
    register_settings(path, PageSetting("t-peers", "peers", (), ("A", "B", "C"), multiple=True,
                                        label="Peers"),
                      PageSetting("t-anon", "anon", False, (False, True),
                                  aliases={"yes": True}))
    try:
        query = query_with_settings("?country=US", path, [["B", "A"], False])
        assert query == "?country=US&peers=B,A"
        assert settings_from_query(path, query)["peers"] == ("B", "A")
        assert settings_from_query(path, "?peers=A,Z,,A")["peers"] == ("A",)  # Z unknown
        assert query_with_settings(query, path, [[], False]) == "?country=US"
        assert settings_from_query(path, "?anon=yes")["anon"] is True  # an older link
        assert settings_from_query(path, "?anon=maybe")["anon"] is False
        assert describe_settings(path, {"peers": ("A", "C")}).startswith("Peers: A, C")
        assert describe_settings(path, {"peers": ()}).startswith("Peers: none")
    finally:
        PAGE_SETTINGS.pop(path)
