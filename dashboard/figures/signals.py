"""Tables and texts of the Signals page and of signal alerts (pure functions, no callbacks).

Small-cell suppression follows the Quality page's small-unit rule (one rule, stated in
:mod:`dashboard.figures.quality`): a signal on a unit whose cases, events or non-events number
1 to the threshold is listed (the unit, outcome, chart and direction), but its n and events
show as "<11" (or "–") and its expected events, O/E, CI and the date of its CUSUM crossing
(the date of a case) are hidden (:func:`dashboard.figures.quality.suppressed_units`). A signal
on a unit whose number of cases is itself hidden is not listed (:func:`withheld_signals`): no
unit with fewer than 10 cases is tested, so the signal would give its n away (exactly 10 at
the default threshold), as the Quality page withholds that unit's flag.
"""

from __future__ import annotations

import urllib.parse

import numpy as np
import pandas as pd

from dashboard.figures.quality import (
    excluded_units,
    outcome_label,
    suppressed_units,
    unit_counts,
    unit_name,
)
from dashboard.suppression import format_count, is_small

#: Quality page query keys of the view a signal links to (outcome, unit type, the unit).
QUALITY_KEYS = {"outcome": "outcome", "unit": "unit", "focus": "cusum"}
#: The Quality page's unit-type value in links.
UNIT_VALUES = {"facility_id": "facility_id", "operator_id": "operator_id"}
KIND_TEXT = {"alarm": "Funnel alarm (beyond 99.8%)", "alert": "Funnel alert (beyond 95%)",
             "cusum": "CUSUM signal"}
DIRECTION_TEXT = {"high": "more events than expected", "low": "fewer events than expected"}
COLUMNS = ["new", "signal", "outcome", "unit_type", "unit_id", "n", "observed", "expected",
           "oe", "oe_ci", "false_alarm", "signal_date", "status", "link", "key"]
LABELS = {"new": "New", "signal": "Signal", "outcome": "Outcome", "unit_type": "Unit type",
          "unit_id": "Unit", "n": "n", "observed": "Observed", "expected": "Expected",
          "oe": "O/E", "oe_ci": "O/E 95% CI", "false_alarm": "Chance of a false alarm",
          "signal_date": "Last crossing", "status": "Status", "link": "Quality page"}


def page_exclude(records: pd.DataFrame, unit: str, outcome: str) -> tuple[str, ...]:
    """The Quality page's hidden units left out of a comparison (its small-cell rule), for
    :class:`analysis.signals.SignalOptions` ``exclude``."""
    counts = unit_counts(records, unit, outcome)
    return excluded_units(counts["unit"], counts["n"], counts["events"])


def quality_link(outcome: str, unit: str, unit_id: str, base: str = "/quality") -> str:
    """The Quality page URL of exactly this view (outcome, unit type, the unit in focus).

    >>> quality_link("cement_leakage", "facility_id", "FAC-009")
    '/quality?outcome=cement_leakage&unit=facility_id&cusum=FAC-009'
    """
    query = urllib.parse.urlencode({QUALITY_KEYS["outcome"]: outcome,
                                    QUALITY_KEYS["unit"]: UNIT_VALUES.get(unit, unit),
                                    QUALITY_KEYS["focus"]: unit_id})
    return f"{base}?{query}"


def hidden_signals(signals: pd.DataFrame) -> np.ndarray:
    """Signals whose counts are suppressed (the unit's cases, events or non-events are small)."""
    if signals.empty:
        return np.zeros(0, dtype=bool)
    return suppressed_units(signals, count_columns=("n", "observed"))


def withheld_signals(signals: pd.DataFrame) -> np.ndarray:
    """Signals not listed: their unit's number of cases is 1..threshold (see the module notes;
    :func:`dashboard.figures.quality.withheld_flags` withholds the same units' flags)."""
    if signals.empty:
        return np.zeros(0, dtype=bool)
    return np.asarray(is_small(signals["n"]), dtype=bool)


def signal_text(kind: str, direction: str) -> str:
    """E.g. "Funnel alarm (beyond 99.8%): more events than expected"."""
    return f"{KIND_TEXT.get(kind, kind)}: {DIRECTION_TEXT.get(direction, direction)}"


def is_new(signals: pd.DataFrame, reviews: pd.DataFrame) -> np.ndarray:
    """New since the last review: never reviewed, or a CUSUM crossing after its last review.

    ``reviews`` is the newest review of each key (index ``signal_key``, ``reviewed_at``).
    """
    if signals.empty:
        return np.zeros(0, dtype=bool)
    last = reviews.get("reviewed_at", pd.Series(dtype=object))
    reviewed = pd.to_datetime(signals["key"].map(last))
    crossed = pd.to_datetime(signals["signal_date"])
    return (reviewed.isna() | (crossed.notna() & (crossed > reviewed))).to_numpy()


def signals_table(signals: pd.DataFrame, reviews: pd.DataFrame | None = None) -> pd.DataFrame:
    """The display table (columns :data:`COLUMNS`, in the signals' order) with suppression.

    ``reviews``: the newest review of each key (:func:`data.signal_reviews.current_reviews`).
    """
    reviews = reviews if reviews is not None else pd.DataFrame(columns=["status", "reviewed_at"])
    if len(signals):
        signals = signals[~withheld_signals(signals)].reset_index(drop=True)
    if signals.empty:
        return pd.DataFrame(columns=COLUMNS)
    hidden = hidden_signals(signals)
    status = signals["key"].map(reviews.get("status", {})).fillna("open")

    def number(values, digits, small):
        return pd.Series([None if h or not np.isfinite(v) else round(float(v), digits)
                          for v, h in zip(values, small, strict=True)], dtype=object)

    # Few non-events (n − events of 1..threshold) with n and events both large: together they
    # give the small complement, so the events are withheld too (as the Quality table does).
    complement = (is_small(signals["n"] - signals["observed"])
                  & ~is_small(signals["observed"]))
    observed = [("–" if c else format_count(v)) for v, c in zip(signals["observed"], complement,
                                                                strict=True)]

    ci = [None if h or not np.isfinite(lo) else f"{lo:.2f}–{hi:.2f}"
          for lo, hi, h in zip(signals["oe_low"], signals["oe_high"], hidden, strict=True)]
    dates = pd.to_datetime(signals["signal_date"])
    return pd.DataFrame({
        "new": pd.Series(np.where(is_new(signals, reviews), "New", ""), dtype=object),
        "signal": [signal_text(k, d) for k, d in zip(signals["kind"], signals["direction"],
                                                     strict=True)],
        "outcome": [outcome_label(o) for o in signals["outcome"]],
        "unit_type": [unit_name(u).capitalize() for u in signals["unit"]],
        "unit_id": signals["unit_id"].astype(str).to_numpy(),
        "n": [format_count(v) for v in signals["n"]],
        "observed": observed,
        "expected": number(signals["expected"], 1, hidden),
        "oe": number(signals["oe"], 2, hidden),
        "oe_ci": pd.Series(ci, dtype=object),
        "false_alarm": [f"{100 * p:.1f}%" if np.isfinite(p) else None
                        for p in signals["false_alarm"]],
        "signal_date": pd.Series([None if h or pd.isna(d) else d.date().isoformat()
                                  for d, h in zip(dates, hidden, strict=True)], dtype=object),
        "status": status.to_numpy(),
        "link": [quality_link(o, u, i) for o, u, i in zip(
            signals["outcome"], signals["unit"], signals["unit_id"], strict=True)],
        "key": signals["key"].to_numpy(),
    }, columns=COLUMNS)


def summary_text(table: pd.DataFrame, since, last_review) -> str:
    """One sentence: how many signals, how many new since the last review."""
    count, new = len(table), int((table["new"] == "New").sum()) if len(table) else 0
    when = f"since {since:%d %b %Y}" if since is not None else "over the whole series"
    reviewed = (f"the last review was on {last_review:%d %b %Y %H:%M} UTC" if last_review
                is not None and not pd.isna(last_review) else "no signal has been reviewed yet")
    return (f"{count} signal{'s' if count != 1 else ''} (funnel flags now; CUSUM crossings "
            f"{when}); {new} new since their last review — {reviewed}.")


def alert_lines(table: pd.DataFrame, base_url: str) -> list[str]:
    """Plain-text lines of an alert: the signal, the unit, O/E (hidden when suppressed), the
    link — never record-level data (the CUSUM date is a case date: left out)."""
    lines = []
    for row in table.itertuples():
        ratio = f"O/E {row.oe:.2f} ({row.oe_ci})" if row.oe is not None else "counts suppressed"
        lines.append(f"{row.signal} — {row.outcome}, {row.unit_type.lower()} {row.unit_id}: "
                     f"n {row.n}, observed {row.observed}, {ratio}; "
                     f"{base_url.rstrip('/')}{row.link}")
    return lines
