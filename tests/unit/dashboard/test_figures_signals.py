"""Display table, newness and alert text of the Signals page (suppression applied)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from analysis.signals import SIGNAL_COLUMNS
from dashboard.figures import signals as fs


def _signals() -> pd.DataFrame:
    rows = [
        # A large unit, funnel alarm; a small unit (7 events) with a CUSUM signal; a unit with
        # few non-events (n − events = 4).
        ("funnel|cement_leakage|facility_id|FAC-009|high", "alarm", 0, "high",
         "cement_leakage", "facility_id", "FAC-009", 185, 103, 47.0, 2.19, 1.79, 2.66, 5.0,
         0.002, pd.NaT, 1, pd.Timestamp("2025-12-22")),
        ("cusum|pulmonary_embolism|operator_id|OP-1|high", "cusum", 1, "high",
         "pulmonary_embolism", "operator_id", "OP-1", 125, 7, 2.8, 2.48, 1.0, 5.1, np.nan,
         0.0249, pd.Timestamp("2025-03-13"), 1, pd.Timestamp("2025-12-31")),
        ("funnel|non_response|facility_id|FAC-2|high", "alert", 2, "high", "non_response",
         "facility_id", "FAC-2", 40, 36, 20.0, 1.8, 1.2, 2.5, 2.2, 0.05, pd.NaT, 1,
         pd.Timestamp("2025-11-01")),
    ]
    return pd.DataFrame(rows, columns=list(SIGNAL_COLUMNS))


def test_small_counts_are_never_shown_and_their_values_are_hidden():
    table = fs.signals_table(_signals())
    big, small, complement = (table.iloc[i] for i in range(3))
    assert (big["n"], big["observed"], big["oe"], big["oe_ci"]) == ("185", "103", 2.19,
                                                                    "1.79–2.66")
    assert small["observed"] == "<11" and small["n"] == "125"
    assert small["oe"] is None and small["oe_ci"] is None and small["expected"] is None
    assert small["signal_date"] is None  # a case date of a small unit
    # 40 cases with 36 events: the 4 non-events would follow, so the row is hidden too.
    assert complement["oe"] is None and complement["oe_ci"] is None
    assert complement["observed"] == "–" and complement["n"] == "40"
    assert big["false_alarm"] == "0.2%" and small["false_alarm"] == "2.5%"


def test_links_open_the_quality_view_of_the_signal():
    table = fs.signals_table(_signals())
    assert table["link"].tolist() == [
        "/quality?outcome=cement_leakage&unit=facility_id&cusum=FAC-009",
        "/quality?outcome=pulmonary_embolism&unit=operator_id&cusum=OP-1",
        "/quality?outcome=non_response&unit=facility_id&cusum=FAC-2"]


def test_new_means_never_reviewed_or_crossed_after_the_review():
    signals = _signals()
    reviews = pd.DataFrame({
        "status": ["explained", "closed"],
        "reviewed_at": [dt.datetime(2026, 1, 5), dt.datetime(2025, 1, 1)],
    }, index=pd.Index([signals.loc[0, "key"], signals.loc[1, "key"]], name="signal_key"))
    table = fs.signals_table(signals, reviews)
    # Reviewed funnel flag: not new. CUSUM crossed (2025-03) after its review (2025-01): new.
    assert table["new"].tolist() == ["", "New", "New"]
    assert table["status"].tolist() == ["explained", "closed", "open"]


def test_alert_lines_carry_no_small_count_nor_case_date():
    lines = fs.alert_lines(fs.signals_table(_signals()), "https://va.example.org/")
    text = "\n".join(lines)
    assert "observed <11" in text and "counts suppressed" in text
    assert "2025-03-13" not in text
    assert "https://va.example.org/quality?outcome=cement_leakage&unit=facility_id&cusum=FAC-009" \
        in text
