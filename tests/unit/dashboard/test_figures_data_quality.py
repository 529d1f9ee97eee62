"""Pure builders of the Data page: batches, rejection reasons, field completeness, dictionary."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from dashboard.figures import data_quality as dq
from data.demo import demo_records
from data.dictionary import FIELDS, REQUIRED_FIELDS


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    return demo_records(600, seed=2)


def _batches() -> pd.DataFrame:
    start = dt.datetime(2025, 3, 1, 9, 30)
    return pd.DataFrame({
        "batch_id": [1, 2], "file_name": ["demo-600", "site_a.csv"], "sha256": ["x", "y"],
        "started_at": [start, start + dt.timedelta(days=1)],
        "finished_at": [start + dt.timedelta(seconds=5), start + dt.timedelta(days=1, seconds=2)],
        "status": ["complete", "complete"], "synthetic": [True, False], "rows_read": [600, 40],
        "accepted": [600, 31], "rejected": [0, 6], "duplicates": [0, 2], "conflicts": [0, 1],
        "replaced": [0, 0], "top_coded_ages": [3, 1], "ignored_columns": ["", "Comments"],
    })


def _reasons() -> pd.DataFrame:
    return pd.DataFrame({"batch_id": [2, 2, 2, 1], "outcome": ["rejected", "rejected", "conflict",
                                                               "rejected"],
                         "reason": ["age: range", "sex: allowed_values", "record_id: conflict",
                                    "age: range"],
                         "rows": [4, 2, 1, 3]})


# ------------------------------------------------------------------------------ batches


def test_batch_table_newest_first_with_every_count():
    table = dq.batch_table(_batches())
    assert table["batch_id"].tolist() == [2, 1]
    assert list(table.columns) == list(dq.BATCH_COLUMNS)
    first = table.iloc[0]
    assert (first.rows_read, first.accepted, first.rejected, first.duplicates, first.conflicts,
            first.top_coded_ages) == (40, 31, 6, 2, 1, 1)
    assert first.synthetic == "no" and table.iloc[1].synthetic == "yes"
    assert first.started == "2025-03-02 09:30:00"
    assert dq.batch_table(_batches().iloc[0:0]).empty


def test_batch_totals():
    totals = dq.batch_totals(_batches())
    assert totals["batches"] == 2 and totals["rows_read"] == 640 and totals["accepted"] == 631
    assert totals["last_import"] == "2025-03-02 09:30 UTC"


def test_rejection_table_and_top_reasons():
    table = dq.rejection_table(_reasons(), _batches())
    assert table["batch_id"].tolist() == [2, 2, 2, 1]  # newest batch first
    assert table.loc[0, "file_name"] == "site_a.csv" and table.loc[0, "rows"] == 4
    top = dq.top_reasons(_reasons())
    assert top.iloc[0].to_dict() == {"reason": "age: range", "rows": 7, "batches": 2}
    figure = dq.rejection_figure(top)
    assert list(figure.data[0].y)[-1] == "age: range"  # most frequent at the top
    assert "age: range" in dq.rejection_summary(top, _reasons())


def test_no_rejections_gives_an_empty_state_figure():
    empty = dq.top_reasons(_reasons().iloc[0:0])
    figure = dq.rejection_figure(empty)
    assert len(figure.data) == 0 and "No rows" in figure.layout.annotations[0].text
    assert "No imported row" in dq.rejection_summary(empty, _reasons().iloc[0:0])


# ------------------------------------------------------------------------------ completeness


def test_completeness_counts_every_dictionary_field(records):
    completeness = dq.field_completeness(records)
    assert len(completeness) == 3 * len(FIELDS)
    for procedure in ("vertebroplasty", "kyphoplasty"):
        part = records[records.procedure == procedure]
        rows = completeness[completeness.procedure == procedure].set_index("field")
        for field in ("operator_id", "cement_volume_ml", "pain_month12", "cost"):
            assert rows.at[field, "n"] == len(part)
            assert rows.at[field, "with_value"] == int(part[field].notna().sum())
            assert rows.at[field, "pct"] == pytest.approx(100 * part[field].notna().mean())
    overall = completeness[completeness.procedure == "all"]
    required = overall[overall.field.isin(REQUIRED_FIELDS)]
    assert (required.pct == 100).all() and dq.incomplete_required(completeness) == []


def test_completeness_table_shows_percentages_of_large_cells(records):
    table = dq.completeness_table(dq.field_completeness(records)).set_index("field")
    vp = records[records.procedure == "vertebroplasty"]
    assert table.at["operator_id", "VP with value"] == f"{int(vp.operator_id.notna().sum()):,}"
    assert table.at["operator_id", "VP %"] == round(100 * vp.operator_id.notna().mean(), 1)
    assert table.at["malignancy_type", "applies to"] == "only when etiology is malignant"


def test_tiny_selection_is_suppressed_in_table_and_figure(records):
    tiny = records[records.procedure == "vertebroplasty"].head(6)
    completeness = dq.field_completeness(tiny)
    table = dq.completeness_table(completeness)
    assert set(table["VP with value"]) <= {"<11", "0"}
    assert table["VP %"].isna().all() and table["All %"].isna().all()
    assert set(table["KP with value"]) == {"0"}  # zero reveals no one
    assert dq.completeness_counts(completeness)["vertebroplasty"] == "<11"
    figure = dq.completeness_figure(completeness)
    assert figure.data, "the VP panel is drawn (with no values)"
    for trace in figure.data:
        assert all(value is None for value in trace.x)  # no bar length reveals a count
        assert trace.customdata is None  # no hover text at all
    assert "fewer than 11 records" in figure.layout.annotations[-1].text
    assert "<11 records" in figure.layout.annotations[0].text  # the panel title
    assert "<11" in dq.completeness_summary(completeness)


def test_a_rare_value_is_suppressed_in_a_large_selection():
    frame = demo_records(400, seed=8)
    frame["death_days"] = pd.array([np.nan] * len(frame), dtype="Int64")
    frame.loc[frame.index[:5], "death_days"] = 40  # 5 records with a value: a small cell
    completeness = dq.field_completeness(frame)
    table = dq.completeness_table(completeness).set_index("field")
    assert table.at["death_days", "All with value"] == "<11"
    assert pd.isna(table.at["death_days", "All %"])
    figure = dq.completeness_figure(completeness)
    for trace in (t for t in figure.data if t.type == "bar"):
        index = list(trace.y).index("death_days")
        procedure = "vertebroplasty" if trace.name.startswith("Vert") else "kyphoplasty"
        with_value = int(frame.loc[frame.procedure == procedure, "death_days"].notna().sum())
        if with_value:  # 1-5 records: no bar, "<11" in the hover and on the row
            assert trace.x[index] is None and trace.customdata[index].startswith("<11")
            labels = [t for t in figure.data if t.type == "scatter" and t.xaxis == trace.xaxis]
            assert "death_days" in labels[0].y and set(labels[0].text) == {"<11"}
            assert not re.search(rf"\({with_value} of", trace.customdata[index])
        else:  # zero is shown
            assert trace.x[index] == 0


def test_completeness_figure_only_optional_fields_least_complete_first(records):
    completeness = dq.field_completeness(records)
    figure = dq.completeness_figure(completeness)
    fields = list(figure.data[0].y)
    assert set(fields).isdisjoint(REQUIRED_FIELDS)
    assert len(fields) == len(FIELDS) - len(REQUIRED_FIELDS)
    overall = completeness[completeness.procedure == "all"].set_index("field")["pct"]
    assert list(overall[fields]) == sorted(overall[fields])
    assert figure.layout.xaxis.title.text == "Records with a value (%)"
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert [trace.name for trace in bars] == ["Vertebroplasty (VP)", "Kyphoplasty (KP)"]
    assert bars[0].xaxis != bars[1].xaxis  # one panel per procedure (no colour-only encoding)


def test_empty_selection_gives_an_empty_state(records):
    completeness = dq.field_completeness(records.iloc[0:0])
    figure = dq.completeness_figure(completeness)
    assert len(figure.data) == 0 and "No records" in figure.layout.annotations[0].text
    assert dq.completeness_summary(completeness) == "No records match the filters."


# ------------------------------------------------------------------------------ dictionary


def test_dictionary_and_rules_tables():
    table = dq.dictionary_table()
    assert len(table) == len(FIELDS) == 52
    assert table.loc[table.field == "age", "values"].item() == "≥ 18 and ≤ 90"
    rules = dq.rules_table()
    assert "pain_beyond_followup" in set(rules.rule)
    json.dumps(rules.to_dict("records"))  # plain values for the grid


def test_a_small_number_of_missing_values_cannot_be_derived():
    """100 records, 95 with a value: showing 95 and n would reveal 5 records without it."""
    from dashboard.figures.data_quality import completeness_table

    rows = []
    for procedure in ("vertebroplasty", "kyphoplasty", "all"):
        rows.append({"field": "cost", "kind": "number", "required": False, "procedure": procedure,
                     "n": 100, "with_value": 95, "pct": 95.0})
    table = completeness_table(pd.DataFrame(rows))
    assert table.loc[0, "VP with value"] == "≥11" and pd.isna(table.loc[0, "VP %"])
