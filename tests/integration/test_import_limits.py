"""Uploads and command-line imports that cannot exhaust a worker (issue 13, item 5).

The hostile workbooks are built here with ``zipfile``: a few kilobytes each, with cells in
columns A and XFD (16,384 columns), a false declared dimension, or a sheet that inflates far
beyond its compressed size. Every case is bounded: the rows are few, and the limits refuse
them before anything large is built.
"""

from __future__ import annotations

import base64
import json
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from data import audit, demo_records, import_file, store
from data.__main__ import main
from data.importer import ImportRefused
from data.isolation import import_file_isolated
from data.limits import ImportLimits

_PARTS = {
    "[Content_Types].xml":
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
        'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
        '"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/'
        'worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels":
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
        '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/'
        'workbook.xml"/></Relationships>',
    "xl/workbook.xml":
        '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels":
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
        '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/'
        'sheet1.xml"/></Relationships>',
}


def _cell(reference: str, text: str) -> str:
    return f'<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>'


def workbook(path: Path, rows: list[list[tuple[str, str]]], dimension: str | None = None,
             padding: int = 0) -> Path:
    """A minimal .xlsx whose first sheet has ``rows`` of (column letter, text) cells, an
    optional declared ``dimension`` and ``padding`` bytes of white space (compresses ~1000:1)."""
    body = "".join(f'<row r="{r}">' + "".join(_cell(f"{col}{r}", text) for col, text in cells)
                   + "</row>" for r, cells in enumerate(rows, start=1))
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
             f'openxmlformats.org/spreadsheetml/2006/main">{declared}<sheetData>{body}'
             f'</sheetData>{" " * padding}</worksheet>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in {**_PARTS, "xl/worksheets/sheet1.xml": sheet}.items():
            archive.writestr(name, text)
    return path


def wide_workbook(path: Path, rows: int = 20) -> Path:
    """The reported attack: a small file with cells in columns A and XFD on every row."""
    return workbook(path, [[("A", "a"), ("XFD", "b")] for _ in range(rows)])


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_cells_in_columns_a_and_xfd_are_refused_quickly(tmp_path, url):
    path = wide_workbook(tmp_path / "wide.xlsx")
    assert path.stat().st_size < 20_000
    started = time.perf_counter()
    with pytest.raises(ImportRefused) as refused:
        import_file(path, url, progress=False)
    assert time.perf_counter() - started < 10
    assert "16,384 columns" in str(refused.value)
    assert "limit of 1,000 (VA_IMPORT_MAX_COLUMNS)" in str(refused.value)
    assert store.record_count(url) == 0


def test_a_declared_dimension_over_the_limit_is_refused_before_reading(tmp_path, url):
    rows = [[("A", "record_id"), ("B", "x")], [("A", "R1"), ("B", "1")]]
    path = workbook(tmp_path / "declared.xlsx", rows, dimension="A1:XFD1048576")
    with pytest.raises(ImportRefused) as refused:
        import_file(path, url, progress=False)
    assert "declared dimension" in str(refused.value)
    assert "VA_IMPORT_MAX_COLUMNS" in str(refused.value)


def test_a_false_small_dimension_does_not_hide_wide_rows(tmp_path, url):
    path = workbook(tmp_path / "liar.xlsx", [[("A", "a"), ("XFD", "b")]] * 5, dimension="A1:B2")
    with pytest.raises(ImportRefused, match="row 1 of the sheet has 16,384 columns"):
        import_file(path, url, progress=False)


def test_the_uncompressed_size_is_checked_before_reading(tmp_path, url, monkeypatch):
    monkeypatch.setenv("VA_IMPORT_MAX_UNCOMPRESSED_MB", "2")
    path = workbook(tmp_path / "inflating.xlsx", [[("A", "record_id")]], padding=3 * 2**20)
    assert path.stat().st_size < 50_000  # 3 MB of sheet in a few kilobytes
    with pytest.raises(ImportRefused) as refused:
        import_file(path, url, progress=False)
    assert "uncompressed" in str(refused.value)
    assert "limit of 2 MB (VA_IMPORT_MAX_UNCOMPRESSED_MB)" in str(refused.value)


def test_rows_and_heading_width_limits_apply_to_csv_too(tmp_path, url, monkeypatch):
    frame = demo_records(40, seed=8)
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setenv("VA_IMPORT_MAX_ROWS", "30")
    with pytest.raises(ImportRefused, match="more than 30 rows.*VA_IMPORT_MAX_ROWS"):
        import_file(path, url, progress=False)
    assert store.record_count(url) == 0  # refused midway: the batch was rolled back
    monkeypatch.setenv("VA_IMPORT_MAX_ROWS", "40")
    monkeypatch.setenv("VA_IMPORT_MAX_COLUMNS", "10")
    with pytest.raises(ImportRefused, match="heading row has 52 columns.*VA_IMPORT_MAX_COLUMNS"):
        import_file(path, url, progress=False)
    assert import_file(path, url, progress=False, limits=ImportLimits.unlimited()).accepted == 40


def test_the_streamed_xlsx_reader_imports_like_the_csv_reader(tmp_path):
    frame = demo_records(300, seed=9)
    frame.to_csv(tmp_path / "export.csv", index=False)
    frame.to_excel(tmp_path / "export.xlsx", index=False)
    from_csv = import_file(tmp_path / "export.csv", f"sqlite:///{tmp_path / 'a.db'}",
                           progress=False)
    from_xlsx = import_file(tmp_path / "export.xlsx", f"sqlite:///{tmp_path / 'b.db'}",
                            progress=False)
    assert (from_xlsx.accepted, from_xlsx.rejected) == (from_csv.accepted, from_csv.rejected)
    assert from_xlsx.reasons == from_csv.reasons
    from data import load_records

    a = load_records(f"sqlite:///{tmp_path / 'a.db'}")
    b = load_records(f"sqlite:///{tmp_path / 'b.db'}")
    pd.testing.assert_frame_equal(a, b)


def test_the_child_process_is_stopped_at_the_time_limit(tmp_path, url):
    path = tmp_path / "export.csv"
    demo_records(20_000, seed=1).to_csv(path, index=False)  # about 10 s to import here
    started = time.perf_counter()
    with pytest.raises(ImportRefused) as refused:
        import_file_isolated(path, url, limits=ImportLimits(seconds=1.5),
                             time_setting="VA_UPLOAD_SECONDS")
    assert time.perf_counter() - started < 8
    assert str(refused.value).startswith(str(path))
    assert "longer than the limit of 1.5 s (VA_UPLOAD_SECONDS)" in str(refused.value)
    assert store.record_count(url) == 0
    events = audit.read_events(url, limit=5)
    assert events.iloc[0]["action"] == "import" and events.iloc[0]["detail"]["status"] == "refused"


def test_the_child_process_is_stopped_at_the_memory_limit(tmp_path, url):
    path = tmp_path / "export.csv"
    demo_records(200, seed=1).to_csv(path, index=False)
    with pytest.raises(ImportRefused) as refused:
        import_file_isolated(path, url, limits=ImportLimits(memory_mb=150),
                             file_name="export.csv")
    assert str(refused.value) == ("export.csv: the import needed more memory than the limit of "
                                  "150 MB (VA_IMPORT_MEMORY_MB) and was stopped. Nothing was "
                                  "stored.")
    assert store.record_count(url) == 0


def test_the_child_process_returns_the_same_accounting(tmp_path, url):
    path = tmp_path / "export.csv"
    frame = demo_records(120, seed=2)
    frame.loc[3, "age"] = 12  # one rejected row
    frame.to_csv(path, index=False)
    result = import_file_isolated(path, url, file_name="export.csv")
    assert (result.rows_read, result.accepted, result.rejected) == (120, 119, 1)
    assert result.sample_reasons[0].field == "age" and result.sample_reasons[0].row == 5
    assert store.record_count(url) == 119


def test_upload_of_the_wide_workbook_names_the_file_and_the_limit(tmp_path, url):
    """Through the Data page's upload callback (local mode: the local admin)."""
    from dashboard.app_factory import create_app
    from tests.auth_support import callback_payload

    app = create_app(url)
    client = app.server.test_client()
    client.get("/")
    output = "..data-upload-result.children...data-refresh.n_clicks.."
    payload = wide_workbook(tmp_path / "wide.xlsx").read_bytes()
    contents = "data:application/octet-stream;base64," + base64.b64encode(payload).decode()
    body = callback_payload(app, output, {("data-upload", "contents"): contents,
                                          ("data-upload", "filename"): "hostile.xlsx"},
                            ["data-upload.contents"])
    started = time.perf_counter()
    response = client.post("/_dash-update-component", json=body)
    assert time.perf_counter() - started < 30
    text = json.dumps(response.get_json()["response"]["data-upload-result"])
    assert "hostile.xlsx was not imported" in text
    assert "16,384 columns" in text and "VA_IMPORT_MAX_COLUMNS" in text
    assert store.record_count(url) == 0


def test_the_command_line_applies_the_limits_and_can_lift_them(tmp_path, url, monkeypatch,
                                                                 capsys):
    frame = demo_records(40, seed=8)
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setenv("VA_IMPORT_MAX_ROWS", "30")
    assert main(["--database", url, "import", str(path)]) == 2
    assert "VA_IMPORT_MAX_ROWS" in capsys.readouterr().err
    assert main(["--database", url, "import", str(path), "--no-limits"]) == 0
    assert store.record_count(url) == 40
    wide = wide_workbook(tmp_path / "wide.xlsx")
    assert main(["--database", url, "import", str(wide), "--memory-limit", "150"]) == 2
    assert "150 MB (VA_IMPORT_MEMORY_MB)" in capsys.readouterr().err
