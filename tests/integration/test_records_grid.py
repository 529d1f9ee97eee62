"""The record grid's server-side filter, sort and paging functions (AG Grid request models)."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.app_factory import create_app
from data import store


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The records page module (it registers a Dash page, so an app must exist first)."""
    store.dispose_engines()
    create_app(f"sqlite:///{tmp_path_factory.mktemp('grid') / 'store.db'}")
    from dashboard.pages import records

    yield records
    store.dispose_engines()


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "region": pd.array(["North", "south", None, "North-East", "<b>x</b>"], dtype="string"),
        "age": pd.array([70, 85, None, 60, 77], dtype="Int64"),
        "procedure_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", None,
                                          "2024-01-15"]),
        "cement_leakage": pd.array([True, False, None, True, False], dtype="boolean"),
        "sex": pd.Categorical(["F", "M", "F", "X", "F"]),
        "patient_id": pd.array(["P1", "P2", "P3", "P4", "P5"], dtype="string"),
    })


def positions(grid, frame, request):
    return grid.ordered_positions(frame, request).tolist()


@pytest.mark.parametrize("model, expected", [
    ({"region": {"filterType": "text", "type": "contains", "filter": "NORTH"}}, [0, 3]),
    ({"region": {"filterType": "text", "type": "notContains", "filter": "north"}}, [1, 2, 4]),
    ({"region": {"filterType": "text", "type": "startsWith", "filter": "s"}}, [1]),
    ({"region": {"filterType": "text", "type": "equals", "filter": "<b>x</b>"}}, [4]),
    ({"region": {"filterType": "text", "type": "blank"}}, [2]),
    ({"age": {"filterType": "number", "type": "greaterThan", "filter": 70}}, [1, 4]),
    ({"age": {"filterType": "number", "type": "inRange", "filter": 60, "filterTo": 77}},
     [0, 3, 4]),
    ({"age": {"filterType": "number", "type": "notEqual", "filter": 70}}, [1, 2, 3, 4]),
    ({"age": {"filterType": "number", "operator": "OR", "conditions": [
        {"type": "lessThan", "filter": 65}, {"type": "greaterThanOrEqual", "filter": 85}]}},
     [1, 3]),
    ({"age": {"filterType": "number", "operator": "AND", "conditions": [
        {"type": "greaterThan", "filter": 65}, {"type": "lessThan", "filter": 80}]}}, [0, 4]),
    ({"procedure_date": {"filterType": "date", "type": "lessThan",
                         "dateFrom": "2024-01-15 00:00:00"}}, [0]),
    ({"procedure_date": {"filterType": "date", "type": "equals",
                         "dateFrom": "2024-02-01 00:00:00"}}, [1]),
    ({"cement_leakage": {"filterType": "text", "type": "equals", "filter": "true"}}, [0, 3]),
    ({"sex": {"filterType": "text", "type": "equals", "filter": "f"}}, [0, 2, 4]),
    # Hidden fields, unknown columns and malformed models are ignored, never an error.
    ({"patient_id": {"filterType": "text", "type": "equals", "filter": "P1"}}, [0, 1, 2, 3, 4]),
    ({"nope": {"filterType": "text", "type": "equals", "filter": "x"}}, [0, 1, 2, 3, 4]),
    ({"age": {"filterType": "number", "type": "weird", "filter": 1}}, [0, 1, 2, 3, 4]),
    ({"age": "garbage"}, [0, 1, 2, 3, 4]),
])
def test_column_filters(grid, frame, model, expected):
    assert positions(grid, frame, {"filterModel": model}) == expected


def test_sorting_is_stable_with_blanks_last_and_ignores_hidden_fields(grid, frame):
    assert positions(grid, frame, {"sortModel": [{"colId": "age", "sort": "asc"}]}) == [
        3, 0, 4, 1, 2]
    assert positions(grid, frame, {"sortModel": [{"colId": "age", "sort": "desc"}]}) == [
        1, 4, 0, 3, 2]
    assert positions(grid, frame, {"sortModel": [{"colId": "sex", "sort": "desc"},
                                                 {"colId": "age", "sort": "asc"}]}) == [
        3, 1, 0, 4, 2]
    assert positions(grid, frame, {"sortModel": [{"colId": "patient_id", "sort": "desc"}]}) == [
        0, 1, 2, 3, 4]


def test_blocks_are_at_most_100_rows_and_never_show_pseudonyms(grid):
    frame = pd.DataFrame({"age": pd.array(range(250), dtype="Int64"),
                          "record_id": [f"R{i}" for i in range(250)],
                          "procedure_date": pd.to_datetime(["2024-05-06"] * 250)})
    rows, total = grid.block(frame, {"startRow": 0, "endRow": 250})
    assert total == 250 and len(rows) == grid.BLOCK_SIZE == 100
    assert rows[0] == {"age": 0, "procedure_date": "2024-05-06"}
    rows, _total = grid.block(frame, {"startRow": 240, "endRow": 340})
    assert [row["age"] for row in rows] == list(range(240, 250))
    rows, _total = grid.block(frame, {"startRow": -5, "endRow": 3})
    assert [row["age"] for row in rows] == [0, 1, 2]


def test_cached_ordering_follows_the_request(grid, frame):
    ascending = {"sortModel": [{"colId": "age", "sort": "asc"}], "startRow": 0, "endRow": 100}
    descending = {**ascending, "sortModel": [{"colId": "age", "sort": "desc"}]}
    first = [row["age"] for row in grid.block(frame, ascending, "key")[0]]
    second = [row["age"] for row in grid.block(frame, descending, "key")[0]]
    assert first == [60, 70, 77, 85, None] and second == [85, 77, 70, 60, None]
