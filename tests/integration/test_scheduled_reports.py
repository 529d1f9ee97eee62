"""Scheduled reports: ``python -m dashboard.report`` writes HTML and PDF files (the quality pack
for two facilities printed by headless Chromium: pages, images, text, no cut charts)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import report_cli
from data import import_dataframe, store
from data.demo import demo_records
from tests.conftest import require_or_skip

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium") or "/usr/bin/chromium"
FACILITY_ID = re.compile(r"FAC-\d{3}")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('reports') / 'store.db'}"
    import_dataframe(demo_records(3000, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


# ------------------------------------------------------------------------------- pure parts
def test_url_with_replaces_the_settings_given():
    assert report_cli.url_with("/scorecard?facility=FAC-001&peers=country",
                               facility="FAC-009") == (
        "/scorecard", "?peers=country&facility=FAC-009")
    assert report_cli.url_with("/quality") == ("/quality", "")


def test_combine_keeps_every_part_and_one_plotly():
    first = "<html><head><title>A</title><script>plotly</script></head><body><h1>A</h1></body></html>"
    second = "<html><head><title>B</title><script>plotly</script></head><body><h1>B</h1></body></html>"
    combined = report_cli.combine([first, second], "Pack")
    assert combined.count("<script>plotly</script>") == 1
    assert combined.count("class='pack-part'") == 2
    assert "<title>Pack</title>" in combined and "<h1>B</h1>" in combined


def test_print_style_keeps_charts_and_rows_whole():
    styled = report_cli.with_print_style("<html><head></head><body></body></html>")
    assert "tr,td,th{break-inside:avoid" in styled
    assert "img.report-chart" in styled and "break-before:page" in styled


def test_pack_includes_signals_once_a_signals_report_exists(monkeypatch):
    from dashboard import report

    monkeypatch.delitem(report.REPORT_BUILDERS, "/signals", raising=False)
    assert not any(p.startswith("/signals") for p in report_cli.pack_pages())
    monkeypatch.setitem(report.REPORT_BUILDERS, "/signals", ("Signals", lambda s: []))
    assert report_cli.pack_pages()[1] == report_cli.SIGNALS_PACK_PAGE


def test_unknown_page_is_a_clear_error(database):
    from dashboard.report import report_for_url

    with pytest.raises(ValueError, match="no report for page '/nowhere'"):
        report_for_url("/nowhere", "", database)


def test_one_url_to_html_through_python_m(database, tmp_path):
    """The command line as cron runs it: the page, its filters in the header, data version."""
    out = tmp_path / "one"
    completed = subprocess.run(
        [sys.executable, "-m", "dashboard.report", "--url", "/scorecard?facility=FAC-019&peers=country",
         "--out", str(out), "--database", database],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    document = (out / "scorecard.html").read_text(encoding="utf-8")
    assert "Filters: facility: FAC-019" in document
    assert "data version" in document and "Small-cell suppression" in document
    assert "compared with" in document and "same country (US)" in document
    assert not (out / "index.html").exists()  # one report: no index


# ------------------------------------------------------------------------------- the pack
def test_quality_pack_for_two_facilities_to_pdf(database, tmp_path):
    available = os.path.exists(CHROMIUM) and shutil.which("chromedriver") is not None
    require_or_skip(available, "Chromium and ChromeDriver (apt-get install chromium chromium-driver)")
    from pypdf import PdfReader

    out = tmp_path / "pack"
    status = report_cli.main(["--pack", "quality", "--facilities", "FAC-009,FAC-019",
                              "--anonymise", "--out", str(out), "--pdf", "--database", database])
    assert status == 0
    index = (out / "index.html").read_text(encoding="utf-8")
    for facility in ("FAC-009", "FAC-019"):
        name = f"quality-pack-{facility}"
        assert f"href='{name}.html'" in index and f"href='{name}.pdf'" in index
        document = (out / f"{name}.html").read_text(encoding="utf-8")
        charts = document.count('class="plotly-graph-div"')
        assert charts >= 5  # scorecard (O/E, trends, ranks) and the Quality page's charts
        reader = PdfReader(out / f"{name}.pdf")
        assert 4 <= len(reader.pages) <= 30
        # Every chart is in the PDF as one image: a chart cut across a page break would
        # appear as two images (or be missing if it had not been drawn).
        images = sum(len(page.images) for page in reader.pages)
        assert images == charts
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert f"Scorecard of {facility}" in text and "Quality monitoring" in text
        assert f"Filters: facility: {facility}" in text
        assert "data version" in text and "Small-cell suppression" in text
        assert re.search(r"created 20\d\d-\d\d-\d\d \d\d:\d\d UTC", text)
        assert "Peer 1" in text or "peer facilities" in text
        # Sent to the facility: no other facility is named anywhere in the pack.
        assert set(FACILITY_ID.findall(text)) == {facility}


def test_the_command_line_names_an_unknown_page_and_exits_2(database, tmp_path, capsys):
    status = report_cli.main(["--database", database, "--url", "/nowhere?country=US",
                              "--out", str(tmp_path / "out")])
    assert status == 2
    assert "error: no report for page '/nowhere'" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.html"))
