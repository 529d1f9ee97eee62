"""Small-cell suppression of displayed aggregates.

Any displayed count from 1 to ``threshold`` (10 by default) is shown as "<11" and the rates,
means and intervals computed from it are hidden, in tables, hover texts, figures and exports
alike, so that de-identified aggregates cannot single out a patient. Zero is shown (it reveals
no one). The threshold is configurable with ``VA_SUPPRESSION_THRESHOLD`` (a whole number ≥ 1).

Complements are protected too: when a total and its events are both shown, the non-events
(total − events) could be derived, so a row is also suppressed when that difference is small
(e.g. 95 responders of 100 followed would reveal 5 non-responders).

Secondary (complementary) suppression, so that no hidden count follows by subtraction:

* within a displayed partition (VP and KP of one selection, the units of a funnel plot), when
  one cell is hidden the next smallest is hidden too (:func:`partition_suppression`,
  :func:`partition_texts`; shown as "≥11");
* the match count ("N of M records match"), a total that a viewer can difference against any
  refinement of the selection (FAC-005 alone, FAC-005 + KP), is shown rounded to the nearest
  :data:`ROUNDING_BASE` (as NHS Digital rounds published counts) and as "<11" at or below the
  threshold (:func:`rounded_count`): total − subgroup then gives a range, never a count.

Counts travel as numbers until they become display text; text that an analysis wrote with
counts in it (an error message) is scrubbed by :func:`mask_small_counts`, whatever the
threshold.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 10
#: Totals that can be differenced against a shown subgroup are rounded to this base.
ROUNDING_BASE = 5


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


def secondary_label(limit: int | None = None) -> str:
    """The text shown for a count hidden by secondary suppression, e.g. ``"≥11"``."""
    return f"≥{(limit or threshold()) + 1}"


def range_text(limit: int | None = None) -> str:
    """The suppressed range in words, e.g. ``"1–10"`` (follows the configured threshold)."""
    return f"1–{limit or threshold()}"


def partition_texts(counts: Mapping[str, int], limit: int | None = None,
                    rounded: bool = False) -> dict[str, str]:
    """Display texts of the cells of one partition, with complementary suppression.

    A cell of 1..threshold shows :func:`label`; when exactly one cell is hidden, the smallest
    other non-zero cell shows :func:`secondary_label`, so the hidden one cannot be recovered
    from a shown total (:func:`partition_suppression`). ``rounded``: the cells shown are
    totals of the selection (e.g. its procedures per procedure), rounded like the match count
    (:func:`rounded_count`).

    >>> partition_texts({"kyphoplasty": 33, "vertebroplasty": 1}, limit=10)
    {'kyphoplasty': '≥11', 'vertebroplasty': '<11'}
    >>> partition_texts({"kyphoplasty": 33, "vertebroplasty": 0}, limit=10)
    {'kyphoplasty': '33', 'vertebroplasty': '0'}
    >>> partition_texts({"kyphoplasty": 33, "vertebroplasty": 12}, limit=10, rounded=True)
    {'kyphoplasty': '≈35', 'vertebroplasty': '≈11'}
    """
    hidden = partition_suppression(dict(counts), limit)
    texts = {}
    for key, value in counts.items():
        if key in hidden and not is_small([value], limit)[0]:
            texts[key] = secondary_label(limit)
        elif rounded:
            texts[key] = rounded_count(value, limit)
        else:
            texts[key] = format_count(value, limit)
    return texts


def rounded_count(count, limit: int | None = None, base: int = ROUNDING_BASE) -> str:
    """A total as displayed where it can be differenced against shown subgroups: 0 as "0",
    1..threshold as the label, else rounded to the nearest ``base`` (halves up) with "≈".

    >>> rounded_count(34, limit=10), rounded_count(7, limit=10), rounded_count(5002, limit=10)
    ('≈35', '<11', '≈5,000')
    """
    if count is None or (isinstance(count, float) and np.isnan(count)):
        return "–"
    count = int(count)
    if count == 0 or is_small([count], limit)[0]:
        return format_count(count, limit)
    rounded = max(base * ((count + base // 2) // base), (limit or threshold()) + 1)
    return f"≈{rounded:,}"


_COUNT_WORDS = (r"(?:events?|non-events?|records?|patients?|cases?|values?|procedures?|"
                r"fractures?|deaths?|responders?|non-responders?|observations?|costed|"
                r"modelled|followed|kyphoplast\w*|vertebroplast\w*)")
_COUNT_IN_TEXT = re.compile(
    r"(?<![\w.,])(?<!than )(?<!least )(\d{1,3}(?:,\d{3})+|\d+)(?![\d.])(\s+)"
    r"(?=" + _COUNT_WORDS + r"\b)")
_FRACTION_IN_TEXT = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)/(\d{1,3}(?:,\d{3})+|\d+)"
                               r"(?![\w.])")


def mask_small_counts(text: str, limit: int | None = None) -> str:
    """Replace every count from 1 to the threshold in a message by the label.

    Analysis errors name the counts that made a method impossible ("kyphoplasty group has 3
    values"); shown in the page they would bypass small-cell suppression. Any whole number
    before a count word, and both sides of ``a/b``, are checked against the configured
    threshold (not a fixed 1–10); thresholds in words ("fewer than 12 events", "at least 10
    values") are left alone.

    >>> mask_small_counts("3 events in 40 records; 2/40", limit=10)
    '<11 events in 40 records; <11/40'
    >>> mask_small_counts("15 events", limit=20)
    '<21 events'
    """
    if not isinstance(text, str) or not text:
        return text

    def one(number: str) -> str:
        return label(limit) if is_small([int(number.replace(",", ""))], limit)[0] else number

    text = _FRACTION_IN_TEXT.sub(lambda m: f"{one(m.group(1))}/{one(m.group(2))}", text)
    return _COUNT_IN_TEXT.sub(lambda m: one(m.group(1)) + m.group(2), text)


def display_text(text, limit: int | None = None) -> str:
    """A message as displayed: the counts of a :class:`analysis._results.CountedText` are
    formatted with :func:`format_count` (they travel as data); any other text is scrubbed by
    :func:`mask_small_counts` as a safety net.

    >>> from analysis._results import CountedText
    >>> display_text(CountedText.of("{label} has {count} record(s)", label="KP", count=3))
    'KP has <11 record(s)'
    """
    from analysis._results import CountedText

    if isinstance(text, CountedText):
        return text.formatted(lambda count: format_count(count, limit))
    return mask_small_counts(text, limit)


def display_error(error: Exception, limit: int | None = None) -> str:
    """An analysis error's message as displayed (see :func:`display_text`)."""
    reason, method = getattr(error, "reason", None), getattr(error, "method", None)
    if method and reason is not None:
        return f"{method} skipped: {display_text(reason, limit)}"
    return mask_small_counts(str(error), limit)
