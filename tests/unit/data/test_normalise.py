"""Value normalisation: the spellings hospitals export become dictionary values."""

from __future__ import annotations

import pandas as pd
import pytest

from data.normalise import ReadOptions, normalise_column


def norm(field, values, **options):
    typed, failed = normalise_column(field, pd.Series(values, dtype="string"), ReadOptions(**options))
    return typed.tolist(), failed.tolist()


@pytest.mark.parametrize("text", ["VP", "pvp", "Vertebroplasty", "percutaneous vertebroplasty",
                                  "22510", "22511", "22512", " vp "])
def test_vertebroplasty_spellings(text):
    assert norm("procedure", [text]) == (["vertebroplasty"], [False])


@pytest.mark.parametrize("text", ["KP", "BKP", "balloon kyphoplasty", "Balloon-Kyphoplasty",
                                  "kyphoplasty", "22513", "22514", "22515"])
def test_kyphoplasty_spellings(text):
    assert norm("procedure", [text]) == (["kyphoplasty"], [False])


def test_unknown_procedure_fails():
    assert norm("procedure", ["laser"]) == ([None], [True])


@pytest.mark.parametrize(("text", "expected"), [
    ("Y", True), ("yes", True), ("1", True), ("TRUE", True), ("t", True),
    ("N", False), ("no", False), ("0", False), ("false", False), ("F", False),
])
def test_booleans(text, expected):
    assert norm("cement_leakage", [text]) == ([expected], [False])


def test_bad_boolean_and_missing_tokens():
    typed, failed = norm("cement_leakage", ["maybe", "", "NA", "n/a", None])
    assert typed[0] is pd.NA and failed == [True, False, False, False, False]
    assert all(value is pd.NA for value in typed[1:])


@pytest.mark.parametrize("text", ["2024-04-03", "2024/04/03", "03.04.2024", "03-Apr-2024",
                                  "3 Apr 2024", "20240403", "2024-04-03 00:00:00",
                                  "2024-04-03T10:15:00"])
def test_date_formats(text):
    typed, failed = norm("procedure_date", [text])
    assert typed == [pd.Timestamp("2024-04-03")] and failed == [False]


def test_slashed_dates_month_first_unless_proved_day_first():
    assert norm("procedure_date", ["04/03/2024"])[0] == [pd.Timestamp("2024-04-03")]
    typed, _ = norm("procedure_date", ["13/04/2024", "03/04/2024"])
    assert typed == [pd.Timestamp("2024-04-13"), pd.Timestamp("2024-04-03")]


def test_impossible_date_fails():
    assert norm("procedure_date", ["31.02.2024"])[1] == [True]


def test_numbers_with_thousands_separators_and_currency_symbols():
    typed, failed = norm("cost", ["8,100", "$9,837", "13187.50", "£4200", "abc"])
    assert typed[:4] == [8100.0, 9837.0, 13187.5, 4200.0]
    assert failed == [False, False, False, False, True]


def test_decimal_comma_files():
    typed, failed = norm("cost", ["4.200,50", "41,5"], decimal_comma=True)
    assert typed == [4200.5, 41.5] and failed == [False, False]


def test_integers_reject_fractions():
    typed, failed = norm("age", ["75", "75.0", "75.5", "old"])
    assert typed[:2] == [75, 75] and failed == [False, False, True, True]


@pytest.mark.parametrize(("field", "text", "expected"), [
    ("sex", "female", "F"), ("sex", "Male", "M"), ("sex", "unknown", "X"),
    ("etiology", "Osteoporosis", "osteoporotic"), ("etiology", "tumour", "malignant"),
    ("etiology", "Trauma", "traumatic"), ("malignancy_type", "multiple myeloma", "myeloma"),
    ("malignancy_type", "metastases", "metastasis"), ("approach", "bilateral", "bipedicular"),
    ("approach", "Uni-pedicular", "unipedicular"), ("anesthesia", "GA", "general"),
    ("anesthesia", "local anaesthesia", "local"), ("guidance", "CT-guided", "ct"),
    ("guidance", "fluoro", "fluoroscopy"), ("setting", "day case", "outpatient"),
    ("country", "uk", "GB"), ("country", "de", "DE"), ("currency", "eur", "EUR"),
    ("index_level", "t12", "T12"), ("index_level", "Th 8", "T8"), ("index_level", "L01", "L1"),
    ("index_level", "S1", "S1"),
])
def test_category_spellings(field, text, expected):
    assert norm(field, [text]) == ([expected], [False])


@pytest.mark.parametrize(("field", "text"), [("sex", "Q"), ("country", "XX"), ("currency", "ABC"),
                                             ("index_level", "C5"), ("index_level", "T13")])
def test_unknown_category_values_fail(field, text):
    assert norm(field, [text]) == ([None], [True])
