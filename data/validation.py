"""Validation of typed procedure records: small named checks built from the data dictionary.

Each rule is one :class:`Check`: a name, the field it reports against, and a vectorised function
that returns ``True`` for the rows that pass. The importer runs the checks directly (fast, and
every failure is kept with its row), and :func:`record_schema` wraps the same checks as a
pandera schema for analysts who want ``schema.validate(df)``.

Examples
--------
>>> from data import demo_records
>>> from data.validation import validate_records
>>> validate_records(demo_records(200)).empty
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from data.dictionary import (
    CROSS_FIELD_RULES,
    FIELDS,
    FIELDS_BY_NAME,
    FIRST_PROCEDURE_DATE,
    PAIN_VISITS,
    Field,
)

PassMask = Callable[[pd.DataFrame], pd.Series]


@dataclasses.dataclass(frozen=True)
class Check:
    """One named validation rule.

    Attributes
    ----------
    name : str
        Rule name reported in rejection reasons (``range``, ``required``, a cross-field rule…).
    field : str
        The field a failure is reported against.
    description : str
        The requirement, in words.
    passes : callable
        ``passes(records) -> boolean Series``; ``True`` where the row satisfies the rule.
    """

    name: str
    field: str
    description: str
    passes: PassMask


def _col(records: pd.DataFrame, name: str) -> pd.Series:
    """A column, or an all-missing one when the frame lacks it (optional fields)."""
    if name in records:
        return records[name]
    return pd.Series(pd.NA, index=records.index, dtype=FIELDS_BY_NAME[name].pandas_dtype)


def _true(series: pd.Series) -> pd.Series:
    """Boolean mask of values that are True (missing counts as not true)."""
    return series.fillna(False).astype(bool)


def _field_checks(field: Field) -> list[Check]:
    checks: list[Check] = []
    name = field.name
    if field.required:
        checks.append(Check("required", name, f"{name} is required",
                            lambda r, n=name: _col(r, n).notna()))
    if field.allowed:
        allowed = frozenset(field.allowed)
        checks.append(Check(
            "allowed_values", name, f"{name} must be one of {field.values_text}",
            lambda r, n=name, a=allowed: _col(r, n).isna() | _col(r, n).astype(object).isin(a),
        ))
    if field.kind == "id":
        # Plotly renders <a href>, <b>, <span style> in hover texts and axis labels: an id
        # carrying markup would become a link in every chart (dashboard figures escape ids
        # too). Ids are codes, so markup in one is never legitimate; labels (region) may hold
        # any text and are escaped where they are drawn.
        checks.append(Check(
            "markup", name, f"{name} must not contain the markup characters < or >",
            lambda r, n=name: ~_col(r, n).astype("string").str.contains("[<>]", regex=True)
            .fillna(False).astype(bool),
        ))
    if field.minimum is not None or field.maximum is not None:
        def in_range(r: pd.DataFrame, f: Field = field) -> pd.Series:
            values = _col(r, f.name).astype("Float64")
            ok = pd.Series(True, index=r.index)
            if f.minimum is not None:
                ok &= (values > f.minimum) if f.exclusive_minimum else (values >= f.minimum)
            if f.maximum is not None:
                ok &= values <= f.maximum
            return ok.fillna(True).astype(bool)

        checks.append(Check("range", name, f"{name} must be {field.values_text}", in_range))
    return checks


def _visit_window_ok(records: pd.DataFrame, field_name: str, window_start: int) -> pd.Series:
    followup = _col(records, "followup_days")
    reached = (followup >= window_start).fillna(True)  # unknown follow-up: cannot contradict
    return (_col(records, field_name).isna() | reached).astype(bool)


def _cross_field_checks() -> list[Check]:
    fracture = lambda r: _true(_col(r, "adjacent_fracture"))  # noqa: E731
    days = lambda r: _col(r, "adjacent_fracture_days")  # noqa: E731
    followup = lambda r: _col(r, "followup_days")  # noqa: E731
    death = lambda r: _col(r, "death_days")  # noqa: E731

    def not_before(later: pd.Series, earlier: pd.Series) -> pd.Series:
        return (later >= earlier).fillna(True).astype(bool)

    def cpt_matches(r: pd.DataFrame) -> pd.Series:
        cpt = _col(r, "cpt_code")
        procedure = _col(r, "procedure").astype(object)
        expected = np.where((cpt <= 22512).fillna(False).to_numpy(dtype=bool), "vertebroplasty",
                            "kyphoplasty")
        return (cpt.isna() | procedure.isna() | (procedure == expected)).astype(bool)

    def date_in_range(r: pd.DataFrame) -> pd.Series:
        date = _col(r, "procedure_date")
        today = pd.Timestamp.today().normalize()
        return (date.isna() | ((date >= FIRST_PROCEDURE_DATE) & (date <= today))).astype(bool)

    rules: dict[str, list[tuple[str, PassMask]]] = {
        "fracture_days_required": [
            ("adjacent_fracture_days", lambda r: ~fracture(r) | days(r).notna())],
        "fracture_days_without_fracture": [
            ("adjacent_fracture_days", lambda r: fracture(r) | days(r).isna())],
        "fracture_after_followup": [
            ("adjacent_fracture_days", lambda r: not_before(followup(r), days(r)))],
        "death_before_event": [
            ("death_days", lambda r: not_before(death(r), days(r)) & not_before(death(r), followup(r)))],
        "death_days_without_death": [
            ("death_days", lambda r: death(r).isna() | _true(_col(r, "died")))],
        "pain_beyond_followup": [
            (f"pain_{suffix}", lambda r, s=suffix, w=window: _visit_window_ok(r, f"pain_{s}", w))
            for suffix, (_label, _day, window) in PAIN_VISITS.items()],
        "odi_beyond_followup": [
            ("odi_month1", lambda r: _visit_window_ok(r, "odi_month1", PAIN_VISITS["month1"][2])),
            ("odi_month12", lambda r: _visit_window_ok(r, "odi_month12", PAIN_VISITS["month12"][2]))],
        "symptomatic_leakage_without_leakage": [
            ("leakage_symptomatic",
             lambda r: ~_true(_col(r, "leakage_symptomatic")) | _true(_col(r, "cement_leakage")))],
        "symptomatic_embolism_without_embolism": [
            ("embolism_symptomatic",
             lambda r: ~_true(_col(r, "embolism_symptomatic")) | _true(_col(r, "pulmonary_embolism")))],
        "malignancy_type_without_malignancy": [
            ("malignancy_type",
             lambda r: _col(r, "malignancy_type").isna() | (_col(r, "etiology").astype(object) == "malignant"))],
        "cpt_procedure_mismatch": [("cpt_code", cpt_matches)],
        "currency_required": [
            ("currency", lambda r: _col(r, "cost").isna() | _col(r, "currency").notna())],
        "outpatient_stay": [
            ("length_of_stay_days",
             lambda r: ~(_col(r, "setting").astype(object) == "outpatient").fillna(False).astype(bool)
             | (_col(r, "length_of_stay_days") <= 1).fillna(True).astype(bool))],
        "date_range": [("procedure_date", date_in_range)],
    }
    described = {rule.name: rule.description for rule in CROSS_FIELD_RULES}
    missing = set(described) ^ set(rules)
    if missing:  # the dictionary and the implementation must list the same rules
        raise RuntimeError(f"cross-field rules out of sync: {sorted(missing)}")
    return [
        Check(name, field, described[name],
              lambda r, fn=fn: pd.Series(fn(r), index=r.index).fillna(True).astype(bool))
        for name, entries in rules.items()
        for field, fn in entries
    ]


CHECKS: tuple[Check, ...] = tuple(
    [check for field in FIELDS for check in _field_checks(field)] + _cross_field_checks()
)


def find_violations(records: pd.DataFrame, checks: tuple[Check, ...] = CHECKS) -> pd.DataFrame:
    """Every failed check of every record.

    Parameters
    ----------
    records : pandas.DataFrame
        Typed records with dictionary column names (missing optional columns are allowed).
    checks : tuple of Check
        The checks to run; all of them by default.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (the record's index label), ``field``, ``rule``, ``value``,
        ``message``; one row per failure, empty when everything passes.
    """
    parts = []
    for check in checks:
        if check.field not in records and check.name != "required":
            continue
        failing = ~check.passes(records).to_numpy(dtype=bool)
        if not failing.any():
            continue
        index = records.index[failing]
        values = (
            records.loc[index, check.field].astype(object).to_numpy()
            if check.field in records
            else np.full(len(index), None)
        )
        parts.append(pd.DataFrame({
            "index": index, "field": check.field, "rule": check.name,
            "value": values, "message": check.description,
        }))
    if not parts:
        return pd.DataFrame(columns=["index", "field", "rule", "value", "message"])
    return pd.concat(parts, ignore_index=True)


def validate_records(records: pd.DataFrame) -> pd.DataFrame:
    """Check typed records against the data dictionary; return the failures.

    Parameters
    ----------
    records : pandas.DataFrame
        Records with dictionary column names and dtypes (as from :func:`data.load_records`).

    Returns
    -------
    pandas.DataFrame
        One row per failure (``index, field, rule, value, message``); empty when valid.
        Required columns that are absent are reported once with ``index`` = ``None``.

    Examples
    --------
    >>> import pandas as pd
    >>> from data.validation import validate_records
    >>> bad = pd.DataFrame({"age": pd.array([17], dtype="Int64")})
    >>> sorted(validate_records(bad).query("field == 'age'").rule)
    ['range']
    """
    absent = [name for name in FIELDS_BY_NAME if FIELDS_BY_NAME[name].required and name not in records]
    failures = find_violations(records)
    if absent:
        missing = pd.DataFrame({"index": None, "field": absent, "rule": "missing_column",
                                "value": None, "message": "required column is absent"})
        failures = pd.concat([missing, failures[~failures.field.isin(absent)]], ignore_index=True)
    return failures


def record_schema():  # -> pandera.pandas.DataFrameSchema (imported lazily: pandera is slow to import)
    """The data dictionary as a pandera ``DataFrameSchema`` (dtypes plus every named check).

    Examples
    --------
    >>> from data import demo_records
    >>> from data.validation import record_schema
    >>> _ = record_schema().validate(demo_records(100))
    """
    import pandera.pandas as pa

    columns = {
        field.name: pa.Column(field.pandas_dtype, nullable=not field.required, required=field.required,
                              description=field.description, title=field.name)
        for field in FIELDS
    }
    checks = [
        pa.Check(lambda r, c=check: c.passes(r), name=f"{check.name}:{check.field}",
                 error=f"{check.name}:{check.field}: {check.description}")
        for check in CHECKS
        if check.name != "required"
    ]
    return pa.DataFrameSchema(columns, checks=checks, strict=False, coerce=False,
                              name="vertebral_augmentation_record")
