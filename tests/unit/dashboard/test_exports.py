"""Formula-injection neutralisation and re-suppression of CSV exports (pure functions)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.exports import (
    _file_name,
    grid_frame,
    is_count_column,
    neutralise_cell,
    resuppress,
    safe_csv,
    safe_frame,
)


@pytest.mark.parametrize("cell, expected", [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\tcmd"), ("\rcmd", "'\rcmd"), ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("-", "'-"), ("ok", "ok"), ("a=b", "a=b"), ("", ""), ("–", "–"),
    ("-2.5", "-2.5"), ("+3", "+3"), ("-1e3", "-1e3"), (-2, -2), (1.5, 1.5), (None, None),
    (True, True),
])
def test_neutralise_cell(cell, expected):
    assert neutralise_cell(cell) == expected


@pytest.mark.parametrize("cell", [
    " =1+1", "  =HYPERLINK(\"http://x\")", "\n=1+1", "\r\n=1+1", " \t@SUM(A1)", "\u00a0=1+1",
    "\x0b=1", "\x00+1+1", " -1+1", "\n", "\nplain",
])
def test_leading_white_space_or_control_characters_do_not_hide_a_formula(cell):
    """Issue 13, item 6: a space or line feed before ``=`` was exported as it was; spreadsheets
    skip it and evaluate the rest."""
    assert neutralise_cell(cell) == "'" + cell
    assert safe_frame(pd.DataFrame({"v": [cell]})).v.tolist() == ["'" + cell]


@pytest.mark.parametrize("cell", [" ok", "a =1", "Leeds = north", " 12"])
def test_text_with_a_formula_character_later_is_unchanged(cell):
    assert neutralise_cell(cell) == cell


def test_safe_csv_keeps_numbers_and_quotes_formulas():
    frame = pd.DataFrame({"site": ["=cmd|' /C calc'!A0", "@x", "Leeds"], "n": [12, -3, 40],
                          "rate": [0.5, -0.25, None], "=head": ["-", "+", "ok"]})
    text = safe_csv(frame)
    back = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert list(back.columns) == ["site", "n", "rate", "'=head"]
    assert back.site.tolist() == ["'=cmd|' /C calc'!A0", "'@x", "Leeds"]
    assert back.n.tolist() == [12, -3, 40]  # numbers stay numbers (no apostrophe)
    assert back["'=head"].tolist() == ["'-", "'+", "ok"]
    assert frame.site.tolist()[0] == "=cmd|' /C calc'!A0"  # the input is not modified


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), st.integers(), st.floats(allow_nan=False),
                          st.none()), min_size=1, max_size=20))
def test_vectorised_frame_equals_the_cell_rule(cells):
    """safe_frame (vectorised) does exactly what neutralise_cell does, cell by cell, and no
    text cell of its output starts with a formula character unless it is a plain number."""
    column = pd.Series(cells, dtype=object).to_numpy()  # a repeated index, as grids may have
    frame = pd.DataFrame({"value": column}, index=[0] * len(cells))
    assert safe_frame(frame)["value"].tolist() == [neutralise_cell(c) for c in cells]


def test_categorical_and_string_columns_are_neutralised():
    frame = pd.DataFrame({"c": pd.Categorical(["=x", "y"]), "s": pd.array(["+z", None],
                                                                            dtype="string")})
    safe = safe_frame(frame)
    assert safe.c.tolist() == ["'=x", "y"] and safe.s.tolist()[0] == "'+z"


@pytest.mark.parametrize("name, expected", [
    ("n", True), ("events", True), ("KP n", True), ("n_followed", True), ("at risk", True),
    ("Procedures", True), ("rate", False), ("p_adjusted", False), ("facility", False),
    ("% with value", False),
])
def test_count_columns(name, expected):
    assert is_count_column(name) is expected


def test_resuppress_hides_small_counts_only_in_count_columns(monkeypatch):
    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "10")
    frame = pd.DataFrame({"n": [3, 40, "<11", 0, "1,234", "7"], "rate": [3, 4, 5, 6, 7, 8]})
    out = resuppress(frame)
    assert out.n.tolist() == ["<11", 40, "<11", 0, "1,234", "<11"]
    assert out.rate.tolist() == [3, 4, 5, 6, 7, 8]
    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "50")
    assert resuppress(frame).n.tolist()[1] == "<51"


def test_grid_frame_follows_the_column_definitions():
    rows = [{"a": 1, "b": "=x", "hidden": "secret"}, {"a": 2}]
    frame = grid_frame(rows, [{"field": "b", "headerName": "B label"}, {"field": "a"}])
    assert list(frame.columns) == ["B label", "a"]
    assert frame.to_dict("list") == {"B label": ["=x", None], "a": [1, 2]}


@pytest.mark.parametrize("requested, expected", [
    ("overview-key-figures.csv", "overview-key-figures.csv"), (None, "grid.csv"),
    ("../../etc/passwd", "etc-passwd.csv"), ("a b\r\nc", "a-b-c.csv"),
])
def test_file_names_are_plain(requested, expected):
    assert _file_name(requested, "grid") == expected
