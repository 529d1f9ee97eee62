"""Small-cell suppression of displayed aggregates.

Any displayed count from 1 to ``threshold`` (10 by default) is shown as "<11" and the rates,
means and intervals computed from it are hidden, in tables, hover texts, figures and exports
alike, so that de-identified aggregates cannot single out a patient. Zero is shown (it reveals
no one). The threshold is configurable with ``VA_SUPPRESSION_THRESHOLD`` (a whole number ≥ 1).

Complements are protected too: when a total and its events are both shown, the non-events
(total − events) could be derived, so a row is also suppressed when that difference is small
(e.g. 95 responders of 100 followed would reveal 5 non-responders).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 10


def threshold() -> int:
    """The configured suppression threshold."""
    text = os.environ.get("VA_SUPPRESSION_THRESHOLD", "")
    try:
        value = int(text) if text else DEFAULT_THRESHOLD
    except ValueError:
        value = DEFAULT_THRESHOLD
    return max(1, value)


def is_small_or_complement(total, part, limit: int | None = None) -> np.ndarray:
    """Suppress when the part (events) or its complement (total − part) is small."""
    totals = pd.to_numeric(pd.Series(total), errors="coerce").to_numpy(dtype="float64")
    parts = pd.to_numeric(pd.Series(part), errors="coerce").to_numpy(dtype="float64")
    return is_small(parts, limit) | is_small(totals - parts, limit) | is_small(totals, limit)


def partition_suppression(counts: dict[str, int | None], limit: int | None = None) -> set[str]:
    """Which cells of a partition (the levels of one variable in one group) to hide.

    Primary: counts of 1..threshold. Secondary: when exactly one cell is hidden, the smallest
    other non-zero cell is hidden too, or the hidden one could be recovered as total minus the
    cells shown (e.g. "F 11 of 12" reveals M = 1).

    >>> sorted(partition_suppression({"F": 11, "M": 1, "X": 0}))
    ['F', 'M']
    """
    known = {key: value for key, value in counts.items() if value is not None}
    hidden = {key for key, value in known.items() if is_small([value], limit)[0]}
    if len(hidden) == 1:
        others = sorted((value, key) for key, value in known.items()
                        if key not in hidden and value > 0)
        if others:
            hidden.add(others[0][1])
    return hidden


def label(limit: int | None = None) -> str:
    """The text shown instead of a small count, e.g. ``"<11"``."""
    return f"<{(limit or threshold()) + 1}"


def is_small(counts, limit: int | None = None) -> np.ndarray:
    """Which counts must be suppressed (1 ≤ count ≤ threshold)."""
    limit = limit or threshold()
    try:  # numbers (the usual case) without building a Series: this runs once per figure trace
        values = np.asarray(counts, dtype="float64")
    except (TypeError, ValueError):
        values = pd.to_numeric(pd.Series(counts), errors="coerce").to_numpy(dtype="float64")
    return (values >= 1) & (values <= limit)


def format_count(count, limit: int | None = None) -> str:
    """A count as displayed: thousands separators, or the suppression label."""
    if count is None or (isinstance(count, float) and np.isnan(count)):
        return "–"
    if is_small([count], limit)[0]:
        return label(limit)
    return f"{int(count):,}"


COMPLEMENT_PAIRS: tuple[tuple[str, str], ...] = (
    ("n", "events"), ("n_followed", "responders"), ("n", "responders"))


def suppress_table(table: pd.DataFrame, count_columns: Sequence[str],
                   dependent_columns: Sequence[str] = (), limit: int | None = None,
                   complement_pairs: Sequence[tuple[str, str]] = COMPLEMENT_PAIRS) -> pd.DataFrame:
    """A display copy of ``table``: small counts replaced by the label, dependent values blanked.

    Parameters
    ----------
    table : pandas.DataFrame
        Aggregates, one row per group.
    count_columns : sequence of str
        Columns holding person counts (n, events, responders …). A row is suppressed when any of
        them is small.
    dependent_columns : sequence of str
        Columns computed from those counts (rates, CIs, means): set to missing in suppressed rows.
    limit : int, optional
        Threshold; default :func:`threshold`.
    complement_pairs : sequence of (total, part)
        Column pairs whose difference is also checked (default: ``n``/``events``,
        ``n_followed``/``responders``, ``n``/``responders``).

    Returns
    -------
    pandas.DataFrame
        Count columns become text (``"1,234"`` or ``"<11"``); a boolean ``suppressed`` column is
        added.
    """
    shown = table.copy()
    small_any = np.zeros(len(shown), dtype=bool)
    for column in count_columns:
        small_any |= is_small(shown[column], limit)
    for total, part in complement_pairs:
        if total in table and part in table:
            difference = pd.to_numeric(table[total], errors="coerce") - pd.to_numeric(
                table[part], errors="coerce")
            small_any |= is_small(difference, limit)
    for column in count_columns:
        shown[column] = [format_count(value, limit) for value in table[column]]
    for column in dependent_columns:
        shown[column] = shown[column].astype(object).where(~small_any, None)
    shown["suppressed"] = small_any
    return shown
