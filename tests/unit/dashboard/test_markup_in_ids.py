"""Identifier-like markup (``<a href=…>``) in a facility id (issue 13, item 6): refused at
import, and shown as plain characters (never a link) in figure texts of ids already stored."""

from __future__ import annotations

import json

import pandas as pd

from analysis.costs import cost_summary
from analysis.quality import caterpillar, funnel_data
from dashboard.figures import costs as fig_costs
from dashboard.figures import quality as fq
from data import demo_records, import_file
from data.validation import validate_records

LINK = '<a href="https://evil.example/login">FAC-001</a>'


def _figure_text(figure) -> str:
    return json.dumps(figure.to_plotly_json(), default=str)


def test_import_rejects_markup_in_ids_naming_row_column_and_rule(tmp_path):
    frame = demo_records(30, seed=4)
    frame.loc[4, "facility_id"] = LINK
    frame.loc[7, "operator_id"] = "OP<b>1</b>"
    frame.loc[9, "region"] = "<span style='font-size:80px'>North</span>"  # a label, not an id
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    result = import_file(path, f"sqlite:///{tmp_path / 'store.db'}", progress=False)
    assert result.rejected == 2 and result.accepted == 28
    assert result.reasons == {"facility_id: markup": 1, "operator_id: markup": 1}
    reason = next(r for r in result.sample_reasons if r.field == "facility_id")
    assert (reason.row, reason.rule, reason.value) == (6, "markup", LINK)  # row 1 is the heading
    assert "must not contain the markup characters" in reason.message


def test_plain_ids_and_other_punctuation_pass():
    frame = demo_records(20, seed=4)
    frame.loc[0, "facility_id"] = "St Mary's & St John (north) #2"
    assert validate_records(frame).empty


def test_quality_figures_show_markup_in_ids_as_text(tmp_path):
    records = demo_records(2500, seed=2)
    big = LINK.replace("FAC-001", "FAC-011")  # the largest facility: never suppressed
    records["facility_id"] = records["facility_id"].replace("FAC-011", big)
    assert (records["facility_id"] == big).sum() > 200
    funnel = funnel_data(records, "facility_id", "cement_leakage", adjust=False)
    table = caterpillar(records, "facility_id", "cement_leakage", adjust=False)
    for figure in (fq.funnel_figure(funnel), fq.caterpillar_figure(table, "facility_id",
                                                                    "cement_leakage")):
        text = _figure_text(figure)
        assert "FAC-011" in text  # the unit is there …
        assert "<a " not in text and "</a>" not in text  # … but never as a link
        assert "&lt;a href" in text


def test_cost_figure_shows_markup_in_ids_as_text():
    rows = []
    for facility in (LINK, "FAC-B"):
        for i in range(40):
            rows.append({"facility_id": facility, "country": "US", "region": "R1",
                         "procedure": "kyphoplasty" if i % 2 else "vertebroplasty",
                         "cost": 3000.0 + 10 * i, "currency": "USD",
                         "procedure_date": pd.Timestamp("2022-06-01")})
    summary = cost_summary(pd.DataFrame(rows), by=fig_costs.GROUPINGS["facility"], n_resamples=50)
    text = _figure_text(fig_costs.cost_figure(summary, fig_costs.GROUPINGS["facility"], "USD"))
    assert "FAC-001" in text and "<a " not in text and "&lt;a href" in text
