"""``dashboard.data_access.filtered_records``: the shared, column-narrowed selection (issue 6)
gives exactly the rows and values of ``analysis.filters.apply_filter``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter

SELECTIONS = [
    RecordFilter(countries=("US",)),
    RecordFilter(date_from="2023-01-01", procedures=("kyphoplasty",), age_bands=("75-84", "85+")),
    RecordFilter(facilities=("FAC-TINY",)),
    RecordFilter(countries=("ZZ",)),  # nothing
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: s.describe())
def test_filtered_records_equal_apply_filter(dashboard_app, selection):
    from dashboard import data_access

    app, records = dashboard_app
    expected = apply_filter(records, selection)
    with app.server.app_context():
        everything = data_access.filtered_records(selection)
        narrow = data_access.filtered_records(selection, ["cost", "procedure", "not-a-column"])
        again = data_access.filtered_records(selection, ["procedure"])
    # The grouping ids are categoricals of the whole frame's ids (coded once per data
    # version); their values are those of the records.
    for column in data_access.CATEGORICAL_IDS:
        assert isinstance(everything[column].dtype, pd.CategoricalDtype)
        assert list(everything[column].cat.categories) == sorted(records[column].dropna().unique())
    as_loaded = everything.astype({column: records[column].dtype
                                   for column in data_access.CATEGORICAL_IDS})
    pd.testing.assert_frame_equal(as_loaded, expected)
    # Only the asked columns, in the records' order; unknown names are ignored.
    assert list(narrow.columns) == ["procedure", "cost"]
    pd.testing.assert_frame_equal(narrow, expected[["procedure", "cost"]])
    # A second caller of the same selection reuses the copied column.
    if len(expected):
        assert np.shares_memory(np.asarray(again["procedure"].cat.codes),
                                np.asarray(narrow["procedure"].cat.codes))


def test_no_filter_serves_the_records_themselves(dashboard_app):
    from dashboard import data_access

    app, _records = dashboard_app
    with app.server.app_context():
        everything = data_access.all_records()
        assert data_access.filtered_records(RecordFilter()) is everything
        narrow = data_access.filtered_records(RecordFilter(), ["age"])
    assert narrow.index.equals(everything.index) and list(narrow.columns) == ["age"]


def test_a_new_selection_replaces_the_old_one(dashboard_app):
    from dashboard import data_access

    app, records = dashboard_app
    with app.server.app_context():
        first = data_access.filtered_records(RecordFilter(sexes=("F",)), ["sex"])
        second = data_access.filtered_records(RecordFilter(sexes=("M",)), ["sex"])
    assert set(first["sex"].astype(str)) == {"F"} and set(second["sex"].astype(str)) == {"M"}
    assert len(first) + len(second) == int(records["sex"].isin(["F", "M"]).sum())
    assert len(data_access._SELECTED) <= data_access.FILTERED_CACHE_SIZE


def test_a_date_window_is_served_as_views_of_the_records(dashboard_app):
    """Records are sorted by procedure date, so a date window alone is one run of rows: its
    columns are views of the records (no copy), with the rows of ``apply_filter``."""
    from dashboard import data_access

    app, records = dashboard_app
    dates = records["procedure_date"]
    selection = RecordFilter(date_from=str(dates.quantile(0.3).date()),
                             date_to=str(dates.quantile(0.8).date()))
    expected = apply_filter(records, selection)
    assert 0 < len(expected) < len(records)
    with app.server.app_context():
        stored = data_access.all_records()
        window = data_access.filtered_records(selection, ["procedure", "cost", "pain_baseline"])
    assert sorted(window.columns) == ["cost", "pain_baseline", "procedure"]
    pd.testing.assert_frame_equal(window, expected[list(window.columns)])
    assert np.shares_memory(np.asarray(window["procedure"].cat.codes),
                            np.asarray(stored["procedure"].cat.codes))
    assert np.shares_memory(window["cost"].array._data, stored["cost"].array._data)
