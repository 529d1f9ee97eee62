"""Column sizing of :func:`dashboard.components.data_grid` (what the layout tests rely on)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.components import data_grid


def column_defs(frame: pd.DataFrame) -> dict[str, dict]:
    grid = data_grid(frame, "demo", "demo").children[-1]
    return {column["field"]: column for column in grid.columnDefs}


def test_numbers_and_intervals_stay_on_one_line_sized_to_their_longest_value():
    frame = pd.DataFrame({
        "n": [12, 1_234_567],
        "ci_95": ["1.2% (0.8–3.4)", "10.5% (9.75–120.75)"],
        "cost": ["+2,159 USD", "<11"],
        "note": ["suppressed (1–10 patients)", None],
        "estimate": ["Adjusted Δ responder rate (KP − VP)", "Patients analysed"],
    })
    columns = column_defs(frame)
    for name in ("n", "ci_95", "cost"):
        assert columns[name]["cellClass"] == "va-nowrap" and not columns[name]["wrapText"]
    for name in ("note", "estimate"):
        assert columns[name]["cellClass"] == "va-wrap" and columns[name]["autoHeight"]
    # 8.6 px a character + 40 px padding for the longest value ("10.5% (9.75–120.75)", 19).
    assert columns["ci_95"]["minWidth"] == round(8.6 * 19) + 40
    # Text columns: the longest word, capped ("responder" is 9 characters; + 30 px).
    assert columns["estimate"]["minWidth"] == max(72, round(8.6 * len("estimate")) + 40,
                                                  round(8.6 * 9) + 30)


def test_placeholders_without_digits_do_not_decide_and_missing_values_are_skipped():
    frame = pd.DataFrame({"value": ["—", "suppressed", np.nan, "4.5 (3.1–6.0)", "7.0"],
                          "labels": ["FR Occitanie", "US Midwest", None, "—", "DE"]})
    columns = column_defs(frame)
    assert columns["value"]["cellClass"] == "va-nowrap"
    assert columns["labels"]["cellClass"] == "va-wrap"
