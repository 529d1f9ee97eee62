"""Data page callbacks called as functions with filter states (no browser)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter
from dashboard.app_factory import create_app
from data import import_dataframe, import_file, load_records, store
from tests.conftest import FIXTURES
from tests.dash_tree import find_by_id, grid_rows, texts
from tests.integration.conftest import demo_with_tiny_facility


@pytest.fixture(scope="module")
def app_and_records(tmp_path_factory):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('data_page') / 'store.db'}"
    import_dataframe(demo_with_tiny_facility(1500), "demo", database, synthetic=True)
    # Real exports with rejected rows, a duplicate and a conflict.
    for name in ("us_export.csv", "messy_aliases.csv"):
        import_file(FIXTURES / "exports" / name, database)
    app = create_app(database)
    yield app, load_records(database)
    store.dispose_engines()


def grid_frame(page, name: str) -> pd.DataFrame:
    return pd.DataFrame(grid_rows(page, name))


def test_completeness_equals_the_filtered_records(app_and_records):
    from dashboard.pages.data import update_completeness

    app, records = app_and_records
    selection = RecordFilter(countries=("US",), procedures=("kyphoplasty",))
    with app.server.app_context():
        page = update_completeness(selection.to_dict())
    chosen = apply_filter(records, selection)
    assert texts(find_by_id(page, "data-completeness-n-kyphoplasty")) == [f"{len(chosen):,}"]
    assert texts(find_by_id(page, "data-completeness-n-vertebroplasty")) == ["0"]
    rows = grid_frame(page, "data-completeness-grid").set_index("field")
    assert len(rows) == 52
    for field in ("operator_id", "cost", "pain_month3", "cement_volume_ml", "cpt_code"):
        with_value = int(chosen[field].notna().sum())
        assert rows.at[field, "KP with value"] == f"{with_value:,}"
        assert rows.at[field, "KP %"] == round(100 * with_value / len(chosen), 1)
        assert rows.at[field, "All %"] == round(100 * with_value / len(chosen), 1)
    assert texts(find_by_id(page, "data-required-check")) == ["all 100% complete"]
    figure = find_by_id(page, "data-completeness-chart").figure
    kp = next(trace for trace in figure.data if trace.name == "Kyphoplasty (KP)")
    cost = list(kp.y).index("cost")
    assert kp.x[cost] == pytest.approx(100 * chosen["cost"].notna().mean())


def test_tiny_facility_is_suppressed(app_and_records):
    from dashboard.pages.data import update_completeness

    app, records = app_and_records
    tiny = RecordFilter(facilities=("FAC-TINY",))
    assert len(apply_filter(records, tiny)) == 6
    with app.server.app_context():
        page = update_completeness(tiny.to_dict())
    assert texts(find_by_id(page, "data-completeness-n-vertebroplasty")) == ["<11"]
    rows = grid_frame(page, "data-completeness-grid")
    assert set(rows["VP with value"]) <= {"<11", "0"} and set(rows["All with value"]) <= {"<11", "0"}
    assert rows[["VP %", "KP %", "All %"]].isna().all().all()
    figure = find_by_id(page, "data-completeness-chart").figure
    assert all(value is None for trace in figure.data if trace.type == "bar"
               for value in trace.x)
    shown = " ".join(texts(page))
    assert "6 records" not in shown and "of 6" not in shown


def test_empty_selection_is_a_message(app_and_records):
    from dashboard.pages.data import update_completeness

    app, _ = app_and_records
    with app.server.app_context():
        page = update_completeness(RecordFilter(countries=("ZW",)).to_dict())
    assert "No records match the current filters." in texts(page)


def test_imports_show_every_batch_and_reason(app_and_records):
    from dashboard import data_access
    from dashboard.pages.data import update_imports

    app, _ = app_and_records
    with app.server.app_context():
        page = update_imports(None)
        batches = data_access.batches()
        reasons = data_access.rejection_reasons()
    rows = grid_frame(page, "data-batches")
    assert rows["batch_id"].tolist() == sorted(batches.batch_id, reverse=True)  # newest first
    messy = rows[rows.file_name == "messy_aliases.csv"].iloc[0]
    stored = batches[batches.file_name == "messy_aliases.csv"].iloc[0]
    for column in ("rows_read", "accepted", "rejected", "duplicates", "conflicts",
                   "top_coded_ages"):
        assert messy[column] == stored[column]
    assert messy["synthetic"] == "no" and rows.iloc[-1]["synthetic"] == "yes"
    assert texts(find_by_id(page, "data-stat-accepted")) == [f"{int(batches.accepted.sum()):,}"]
    quarantined = int(batches.rejected.sum() + batches.conflicts.sum())
    assert texts(find_by_id(page, "data-stat-quarantined")) == [f"{quarantined:,}"]
    shown = grid_frame(page, "data-rejections")
    assert len(shown) == len(reasons) and shown["rows"].sum() == reasons["rows"].sum()
    assert "record_id: conflict" in set(shown.reason)
    chart = find_by_id(page, "data-rejection-chart").figure
    assert sum(chart.data[0].x) <= reasons["rows"].sum()


def test_callback_errors_become_messages(app_and_records, monkeypatch):
    from dashboard.figures import data_quality
    from dashboard.pages import data as page_module

    app, _ = app_and_records

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(data_quality, "field_completeness", broken)
    with app.server.app_context():
        page = page_module.update_completeness(RecordFilter().to_dict())
    shown = " ".join(texts(page))
    assert "could not be computed" in shown and "boom" not in shown


def test_layout_has_dictionary_and_import_help(app_and_records):
    from dashboard.pages.data import layout

    app, _ = app_and_records
    with app.server.app_context():
        page = layout()
    shown = " ".join(texts(page))
    assert "python -m data import FILE [FILE ...]" in shown
    assert "python -m data rejected BATCH --csv OUT" in shown
    assert len(grid_frame(page, "data-dictionary")) == 52


def test_report_sections_and_suppression(app_and_records):
    from dashboard.layout import download_report
    from dashboard.pages.data import data_report

    app, _ = app_and_records
    with app.server.app_context():
        sections = data_report(RecordFilter(countries=("US",)))
        tiny = download_report(1, "/data", RecordFilter(facilities=("FAC-TINY",)).to_dict())
    titles = [section.title for section in sections]
    assert titles[:2] == ["Import batches", "Rejection reasons"]
    assert "Field completeness of the selected records" in titles
    assert sections[0].table is not None and sections[2].figure is not None
    assert tiny["filename"].startswith("data-report-")
    assert "<td>&lt;11</td>" in tiny["content"]
