"""HTML report tables: plain cell text (no spreadsheet apostrophe), human headings, and
Excel's text format on the cells a spreadsheet could evaluate (issue 14, item 3)."""

from __future__ import annotations

import re

import pandas as pd

from analysis.filters import RecordFilter
from dashboard.headings import heading
from dashboard.report import ReportSection, html_table, render_report
from data.spreadsheet import neutralise_cell


def _cells(document: str) -> list[str]:
    """The text of every table cell (markup removed, entities kept)."""
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", document)]


def test_report_cells_show_signed_values_without_an_apostrophe():
    table = pd.DataFrame({"estimate": ["Δ cost", "ICER"], "value": ["+2,159 USD", "-66,290 USD"],
                          "ci_95": ["+1,573 USD to +2,450 USD", None]})
    document = render_report("Costs", [ReportSection("T", table=table)], RecordFilter(), "b1",
                             False, "")
    cells = _cells(document)
    assert "+2,159 USD" in cells and "-66,290 USD" in cells and "–" in cells
    assert not any(cell.startswith("'") for cell in cells)
    assert "ci_95" not in document and "<th>95% CI</th>" in document


def test_cells_a_spreadsheet_would_evaluate_are_excel_text_cells():
    values = ["=HYPERLINK(\"http://x\")", "+2,159 USD", "@SUM(A1)", "plain", "12", "<11"]
    table = html_table(pd.DataFrame({"v": values}))
    openings = re.findall(r"<td[^>]*>", table)
    assert len(openings) == len(values)
    for value, opening in zip(values, openings, strict=True):
        risky = neutralise_cell(value) != value
        assert ("mso-number-format" in opening) == risky, value
    assert "&lt;11" in table and "=HYPERLINK(&quot;http://x&quot;)" in table


def test_intervals_do_not_wrap_inside_the_number():
    table = html_table(pd.DataFrame({"ci": ["33.5–37.7%", "a long sentence of text"]}))
    assert "<span class='nw'>33.5–37.7%</span>" in table
    assert "<span class='nw'>a long" not in table


def test_headings_are_human():
    assert heading("ci_95") == "95% CI" and heading("p_value") == "p"
    assert heading("outpatient_share") == "Outpatient share"
    assert heading("procedure") == "Procedure" and heading("n") == "n"
    assert heading("n (with a value)") == "n (with a value)"
    assert heading("VP n") == "VP n"
