"""Runs of ``python -m dashboard.report`` are audited (issue 15 gap): one chained
``report_run`` event per run, actor ``cli:<OS user>``, with the pages, filters and settings as
the server parsed them, the files written and the counts of what the reports hold; no PHI."""

from __future__ import annotations

import json

from dashboard import report_cli
from data import audit, import_dataframe, load_records
from data.demo import demo_records
from data.importer import default_actor


def _store(database: str) -> None:
    import_dataframe(demo_records(300, seed=3), "demo", database, synthetic=True)


def _runs(database: str):
    events = audit.read_events(database)
    return events[events["action"] == "report_run"]


def test_a_run_is_audited_with_its_pages_filters_settings_files_and_counts(database, tmp_path):
    from dashboard.app_factory import create_app
    from dashboard.report import url_report

    _store(database)
    out = tmp_path / "one"
    status = report_cli.main(["--url", "/costs?country=US&cur=EUR&group=country&zz=1",
                              "--out", str(out), "--database", database])
    assert status == 0
    runs = _runs(database)
    assert len(runs) == 1
    event = runs.iloc[0]
    assert event["actor"] == default_actor("cli") and event["actor"].startswith("cli:")
    detail = event["detail"]
    assert detail["mode"] == "url" and detail["status"] == "complete"
    assert detail["pages"] == ["/costs"]
    assert detail["filters"] == {"countries": ["US"]}
    # The settings as the server parsed them (defaults filled in, unknown keys dropped).
    assert detail["settings"]["/costs"]["cur"] == "EUR"
    assert detail["settings"]["/costs"]["group"] == "country"
    assert "zz" not in detail["settings"]["/costs"]
    assert detail["files"] == ["costs.html"] and detail["files_written"] == 1
    # Counts from the server side: the rows of the report's tables, counted independently.
    with create_app(database).server.app_context():
        again = url_report("/costs", "?country=US&cur=EUR&group=country", database)
    expected_rows = sum(len(s.table) for s in again.sections if s.table is not None)
    assert detail["table_rows"] == expected_rows > 0
    assert detail["reports"] == 1 and detail["sections"] == len(again.sections)
    # No record-level data: no record or patient id of the store is in the event.
    text = json.dumps(detail)
    records = load_records(database)
    assert not any(str(v) in text for v in records["record_id"].head(300))
    assert not any(str(v) in text for v in records["patient_id"].head(300))
    assert audit.verify_chain(database).intact


def test_a_run_per_facility_lists_the_facilities_and_every_file(database, tmp_path):
    _store(database)
    status = report_cli.main(["--url", "/?country=US", "--each-facility",
                              "--facilities", "FAC-001,FAC-002", "--out", str(tmp_path / "each"),
                              "--database", database])
    assert status == 0
    detail = _runs(database).iloc[0]["detail"]
    assert detail["mode"] == "each_facility"
    assert detail["facilities"] == ["FAC-001", "FAC-002"]
    assert detail["filters"] == {"countries": ["US"]}
    assert detail["files"] == ["overview-FAC-001.html", "overview-FAC-002.html", "index.html"]
    assert detail["reports"] == 2


def test_a_refused_page_writes_no_report_and_no_run_event(database, tmp_path):
    _store(database)
    status = report_cli.main(["--url", "/nowhere", "--out", str(tmp_path / "x"),
                              "--database", database])
    assert status == 2
    assert _runs(database).empty
