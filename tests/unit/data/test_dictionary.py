"""The data dictionary: complete, consistent, and in sync with docs/data-dictionary.md."""

from __future__ import annotations

import re

import pandas as pd

from data.dictionary import (
    CROSS_FIELD_RULES,
    FIELDS,
    FIELDS_BY_NAME,
    alias_map,
    dictionary,
    dictionary_markdown,
    normalise_heading,
)
from tests.conftest import ROOT

# The field names fixed by the foundation issue (the contract analysts and the dashboard use).
CONTRACT_FIELDS = """record_id patient_id facility_id operator_id country region procedure_date
procedure cpt_code age sex etiology malignancy_type levels_treated index_level fracture_age_weeks
prior_fractures approach anesthesia guidance cement_volume_ml duration_min setting
length_of_stay_days pain_baseline pain_day1 pain_week1 pain_month1 pain_month3 pain_month6
pain_month12 odi_baseline odi_month1 odi_month12 opioid_baseline opioid_month1 cement_leakage
leakage_symptomatic pulmonary_embolism embolism_symptomatic adjacent_fracture
adjacent_fracture_days followup_days died death_days infection new_neurologic_deficit
kyphotic_angle_pre kyphotic_angle_post height_restoration_pct cost currency""".split()

REQUIRED = {"record_id", "facility_id", "country", "procedure_date", "procedure", "age", "sex",
            "etiology", "levels_treated", "pain_baseline", "cement_leakage", "pulmonary_embolism",
            "adjacent_fracture"}


def test_fields_are_exactly_the_contract():
    assert [f.name for f in FIELDS] == CONTRACT_FIELDS


def test_required_flags_match_the_contract():
    assert {f.name for f in FIELDS if f.required} == REQUIRED


def test_every_field_is_described():
    for field in FIELDS:
        assert len(field.description) > 10, field.name
        if field.kind in ("integer", "number"):
            assert field.minimum is not None or field.maximum is not None, field.name
        if field.kind == "category":
            assert field.allowed, field.name


def test_coded_values_from_the_contract():
    assert FIELDS_BY_NAME["procedure"].allowed == ("vertebroplasty", "kyphoplasty")
    assert FIELDS_BY_NAME["sex"].allowed == ("F", "M", "X")
    assert FIELDS_BY_NAME["etiology"].allowed == ("osteoporotic", "malignant", "traumatic", "other")
    assert FIELDS_BY_NAME["index_level"].allowed[0] == "T1"
    assert FIELDS_BY_NAME["index_level"].allowed[-1] == "S1"
    assert len(FIELDS_BY_NAME["index_level"].allowed) == 18
    assert (FIELDS_BY_NAME["age"].minimum, FIELDS_BY_NAME["age"].maximum) == (18, 90)
    assert (FIELDS_BY_NAME["cpt_code"].minimum, FIELDS_BY_NAME["cpt_code"].maximum) == (22510, 22515)
    assert {"US", "GB", "DE", "FR", "IN"} <= set(FIELDS_BY_NAME["country"].allowed)
    assert {"USD", "GBP", "EUR", "INR"} <= set(FIELDS_BY_NAME["currency"].allowed)


def test_aliases_are_unambiguous_and_cover_the_issue_examples():
    mapping = alias_map()  # raises if two fields claim one heading
    assert mapping[normalise_heading("Procedure Type")] == "procedure"
    assert mapping[normalise_heading("proc")] == "procedure"
    assert mapping[normalise_heading("MRN-free ID")] == "record_id"
    for field in FIELDS:
        assert mapping[normalise_heading(field.name)] == field.name


def test_dictionary_frame_has_one_row_per_field():
    table = dictionary()
    assert list(table.field) == CONTRACT_FIELDS
    assert set(table.columns) >= {"field", "type", "unit", "values", "required", "description"}
    assert table.loc[table.field == "currency", "required"].item() == "when cost is given"


def test_markdown_lists_every_field_and_rule():
    text = dictionary_markdown()
    for field in FIELDS:
        assert f"| `{field.name}` |" in text
    for rule in CROSS_FIELD_RULES:
        assert f"| `{rule.name}` |" in text
    # A well-formed Markdown table: every row has the header's number of cells.
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    header_cells = 7
    field_rows = [r for r in rows if r.split("|")[1].strip().strip("`") in FIELDS_BY_NAME]
    assert all(len(re.split(r"(?<!\\)\|", row)) - 2 == header_cells for row in field_rows)


def test_docs_file_is_generated_from_the_dictionary():
    docs = (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
    assert docs == dictionary_markdown(), "run: python -m data dictionary --output docs/data-dictionary.md"


def test_pandas_dtypes():
    assert FIELDS_BY_NAME["age"].pandas_dtype == "Int64"
    assert FIELDS_BY_NAME["procedure_date"].pandas_dtype == "datetime64[ns]"
    assert FIELDS_BY_NAME["cement_leakage"].pandas_dtype == "boolean"
    assert isinstance(pd.api.types.pandas_dtype(FIELDS_BY_NAME["pain_baseline"].pandas_dtype),
                      pd.Float64Dtype)
