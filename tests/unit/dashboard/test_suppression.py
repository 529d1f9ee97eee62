"""Small-cell suppression rules (dashboard/suppression.py)."""

from __future__ import annotations

import pandas as pd

from dashboard.suppression import format_count, is_small, is_small_or_complement, suppress_table


def test_counts_one_to_ten_are_hidden_zero_and_eleven_shown():
    assert list(is_small([0, 1, 10, 11, None])) == [False, True, True, False, False]
    assert [format_count(v) for v in (0, 5, 11, 1234)] == ["0", "<11", "11", "1,234"]


def test_threshold_is_configurable(monkeypatch):
    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "4")
    assert format_count(5) == "5" and format_count(4) == "<5"


def test_table_rows_with_small_counts_lose_their_rates():
    table = pd.DataFrame({"group": ["a", "b", "c"], "n": [200, 8, 100], "events": [50, 2, 95],
                          "rate": [0.25, 0.25, 0.95]})
    shown = suppress_table(table, ["n", "events"], ["rate"])
    assert shown.n.tolist() == ["200", "<11", "100"]
    assert shown.events.tolist() == ["50", "<11", "95"]
    # Row c: 95 of 100 would reveal 5 non-events, so it is suppressed as a complement.
    assert shown.rate.tolist()[0] == 0.25 and shown.rate.isna().tolist()[1:] == [True, True]
    assert shown.suppressed.tolist() == [False, True, True]


def test_complement_rule():
    assert list(is_small_or_complement([100, 100, 100, 5], [50, 95, 0, 0])) == [False, True, False, True]


def test_error_messages_do_not_reveal_small_counts():
    from dashboard.components import mask_small_counts

    text = "Cox model skipped: 3 events in kyphoplasty and 42 events in vertebroplasty; 10 records"
    assert mask_small_counts(text) == (
        "Cox model skipped: <11 events in kyphoplasty and 42 events in vertebroplasty; <11 records")


def test_a_single_hidden_level_gets_a_partner():
    from dashboard.suppression import partition_suppression

    assert partition_suppression({"F": 11, "M": 1, "X": 0}) == {"F", "M"}  # M = 12 − 11 otherwise
    assert partition_suppression({"F": 500, "M": 300, "X": 4}) == {"X", "M"}
    assert partition_suppression({"a": 3, "b": 5, "c": 900}) == {"a", "b"}  # already two hidden
    assert partition_suppression({"a": 40, "b": 60}) == set()
    assert partition_suppression({"a": 0, "b": 60}) == set()  # zero reveals no one


# -- issue 13: counts travel as data; secondary suppression --------------------------------

def test_messages_are_masked_at_any_threshold(monkeypatch):
    """components.mask_small_counts matched only 1–10: a threshold of 20 let "15 events" out."""
    from dashboard.components import mask_small_counts

    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "20")
    text = mask_small_counts("Welch t-test skipped: kyphoplasty group has 15 values; "
                             "12/1,500 events; 25 records; fewer than 12 events needed")
    assert text == ("Welch t-test skipped: kyphoplasty group has <21 values; <21/1,500 events; "
                    "25 records; fewer than 12 events needed")


def test_partition_texts_hide_the_complement_of_a_small_cell():
    from dashboard.suppression import partition_texts

    # FAC-005 of the demo: VP 1, KP 33, and the match count would give VP = total − KP.
    assert partition_texts({"kyphoplasty": 33, "vertebroplasty": 1}) == {
        "kyphoplasty": "≥11", "vertebroplasty": "<11"}
    assert partition_texts({"a": 40, "b": 3, "c": 12, "d": 0}) == {
        "a": "40", "b": "<11", "c": "≥11", "d": "0"}
    # Two hidden cells protect each other; nothing else need go.
    assert partition_texts({"a": 40, "b": 3, "c": 4}) == {"a": "40", "b": "<11", "c": "<11"}


def test_totals_are_rounded_to_five_and_never_show_a_small_count(monkeypatch):
    from dashboard.suppression import rounded_count

    assert [rounded_count(v) for v in (0, 1, 10, 11, 12, 13, 34, 37, 38, 5000)] == [
        "0", "<11", "<11", "≈11", "≈11", "≈15", "≈35", "≈35", "≈40", "≈5,000"]
    # Total − subgroup then leaves a range of five values, never one count: 32..37 all show
    # ≈30 or ≈35 while a subgroup of 33 is exact.
    assert {rounded_count(v) for v in range(33, 38)} == {"≈35"}
    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "20")
    assert rounded_count(18) == "<21" and rounded_count(22) == "≈21"


def test_counts_in_analysis_errors_travel_as_data(monkeypatch):
    """An error's counts are formatted by the display, at the configured threshold, without
    parsing its prose (the words and the thresholds "2 are needed" stay as written)."""
    from analysis.errors import InsufficientDataError
    from analysis.power import _check_groups
    from dashboard.suppression import display_error

    monkeypatch.setenv("VA_SUPPRESSION_THRESHOLD", "20")
    try:
        _check_groups(1, 40, "Sample size")
    except InsufficientDataError as error:
        assert str(error) == "Sample size skipped: group 1 has 1 patient(s); 2 are needed"
        assert error.reason.counts == {"n": 1}
        assert display_error(error) == "Sample size skipped: group 1 has <21 patient(s); 2 are needed"
    else:
        raise AssertionError("no error")
    plain = InsufficientDataError("Welch t-test", "kyphoplasty group has 15 values")
    assert display_error(plain) == "Welch t-test skipped: kyphoplasty group has <21 values"
