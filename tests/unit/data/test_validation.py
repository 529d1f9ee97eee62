"""Every validation rule, with a record that breaks it and one that keeps it."""

from __future__ import annotations

import pandas as pd
import pytest

from data.dictionary import CROSS_FIELD_RULES, FIELDS
from data.load import apply_dtypes
from data.validation import CHECKS, record_schema, validate_records

VALID = {
    "record_id": "R-1", "facility_id": "FAC-1", "country": "US", "procedure_date": "2024-03-01",
    "procedure": "kyphoplasty", "cpt_code": 22514, "age": 76, "sex": "F", "etiology": "osteoporotic",
    "levels_treated": 1, "pain_baseline": 8.0, "pain_month1": 3.0, "pain_month12": 2.0,
    "followup_days": 400, "cement_leakage": True, "leakage_symptomatic": False,
    "pulmonary_embolism": False, "adjacent_fracture": True, "adjacent_fracture_days": 120,
    "died": True, "death_days": 400, "setting": "outpatient", "length_of_stay_days": 1,
    "cost": 8100.0, "currency": "USD", "odi_month12": 20.0,
}


def frame(**changes) -> pd.DataFrame:
    record = {**VALID, **changes}
    return apply_dtypes(pd.DataFrame([record]).assign(
        procedure_date=lambda d: pd.to_datetime(d.procedure_date)))


def rules_broken(**changes) -> set[tuple[str, str]]:
    failures = validate_records(frame(**changes))
    return set(zip(failures.field, failures.rule, strict=True))


def test_the_valid_record_passes():
    assert validate_records(frame()).empty


@pytest.mark.parametrize(("changes", "expected"), [
    ({"age": 17}, ("age", "range")),
    ({"age": 91}, ("age", "range")),
    ({"levels_treated": 0}, ("levels_treated", "range")),
    ({"pain_baseline": 10.5}, ("pain_baseline", "range")),
    ({"pain_month1": -1.0}, ("pain_month1", "range")),
    ({"odi_month12": 101.0}, ("odi_month12", "range")),
    ({"cement_volume_ml": 0.0}, ("cement_volume_ml", "range")),  # strictly positive
    ({"duration_min": 0.0}, ("duration_min", "range")),
    ({"cost": -1.0}, ("cost", "range")),
    ({"cpt_code": 22509}, ("cpt_code", "range")),
    ({"record_id": None}, ("record_id", "required")),
    ({"facility_id": None}, ("facility_id", "required")),
    ({"sex": None}, ("sex", "required")),
    ({"cement_leakage": None}, ("cement_leakage", "required")),
    ({"adjacent_fracture_days": None}, ("adjacent_fracture_days", "fracture_days_required")),
    ({"adjacent_fracture": False}, ("adjacent_fracture_days", "fracture_days_without_fracture")),
    ({"adjacent_fracture_days": 500, "death_days": 600}, ("adjacent_fracture_days", "fracture_after_followup")),
    ({"death_days": 300}, ("death_days", "death_before_event")),
    ({"died": False}, ("death_days", "death_days_without_death")),
    ({"followup_days": 200, "death_days": 200, "adjacent_fracture_days": 100},
     ("pain_month12", "pain_beyond_followup")),
    ({"pain_month1": 3.0, "pain_month12": None, "odi_month12": None, "followup_days": 10,
      "death_days": 10, "adjacent_fracture_days": 5}, ("pain_month1", "pain_beyond_followup")),
    ({"followup_days": 200, "death_days": 200, "adjacent_fracture_days": 100, "pain_month12": None},
     ("odi_month12", "odi_beyond_followup")),
    ({"cement_leakage": False, "leakage_symptomatic": True},
     ("leakage_symptomatic", "symptomatic_leakage_without_leakage")),
    ({"embolism_symptomatic": True}, ("embolism_symptomatic", "symptomatic_embolism_without_embolism")),
    ({"malignancy_type": "myeloma"}, ("malignancy_type", "malignancy_type_without_malignancy")),
    ({"cpt_code": 22511}, ("cpt_code", "cpt_procedure_mismatch")),
    ({"currency": None}, ("currency", "currency_required")),
    ({"length_of_stay_days": 3.0}, ("length_of_stay_days", "outpatient_stay")),
    ({"procedure_date": "1980-01-01"}, ("procedure_date", "date_range")),
    ({"procedure_date": "2200-01-01"}, ("procedure_date", "date_range")),
])
def test_each_rule_catches_its_violation(changes, expected):
    assert expected in rules_broken(**changes)


def test_rules_do_not_fire_on_legitimate_edge_values():
    assert rules_broken(age=18) == set()
    assert rules_broken(age=90) == set()
    assert rules_broken(etiology="malignant", malignancy_type="myeloma") == set()
    assert rules_broken(cpt_code=22513) == set()
    assert rules_broken(cpt_code=None) == set()
    assert rules_broken(setting="inpatient", length_of_stay_days=12.0) == set()
    # Unknown follow-up cannot contradict a visit.
    assert rules_broken(followup_days=None, death_days=None, died=False,
                        adjacent_fracture_days=120) == set()


def test_every_cross_field_rule_has_a_check_and_a_test():
    checked = {check.name for check in CHECKS}
    assert {rule.name for rule in CROSS_FIELD_RULES} <= checked
    tested = {expected[1] for _changes, expected in
              test_each_rule_catches_its_violation.pytestmark[0].args[1]}
    assert {rule.name for rule in CROSS_FIELD_RULES} <= tested


def test_a_missing_required_column_is_reported():
    failures = validate_records(frame().drop(columns=["age"]))
    assert ("age", "missing_column") in set(zip(failures.field, failures.rule, strict=True))


def test_pandera_schema_uses_the_same_rules():
    import pandera.pandas as pa

    record_schema().validate(frame())
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        record_schema().validate(frame(age=17, currency=None), lazy=True)
    checks = {text.split(": ")[0] for text in caught.value.failure_cases["check"].astype(str)}
    assert {"range:age", "currency_required:currency"} <= checks


def test_field_count():
    assert len(FIELDS) == 52
