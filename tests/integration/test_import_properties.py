"""Property: whatever rows a file holds, every row read is accounted for exactly once, and a
row is accepted exactly when all its values are valid."""

from __future__ import annotations

import csv

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data import import_file, load_records, store

HEADINGS = ["record_id", "facility_id", "country", "procedure", "procedure_date", "age", "sex",
            "etiology", "levels_treated", "pain_baseline", "cement_leakage", "pulmonary_embolism",
            "adjacent_fracture", "cost", "currency"]
GOOD = {"record_id": "R", "facility_id": "F1", "country": "US", "procedure": "KP",
        "procedure_date": "2024-02-01", "age": "70", "sex": "F", "etiology": "osteoporotic",
        "levels_treated": "1", "pain_baseline": "8", "cement_leakage": "N",
        "pulmonary_embolism": "N", "adjacent_fracture": "N", "cost": "", "currency": ""}
# Per field: values that must be accepted, values that must be rejected.
VALUES = {
    "country": (["US", "gb", "Germany"], ["ZZ", "U S"]),
    "procedure": (["VP", "bkp", "22514"], ["laser", "22599"]),
    "procedure_date": (["2024-01-31", "31.01.2024"], ["2024-13-01", "yesterday", "1950-01-01"]),
    "age": (["18", "89", "95"], ["17", "abc", "70.5", "150"]),
    "sex": (["M", "female"], ["Q"]),
    "etiology": (["malignant", "Trauma"], ["flu"]),
    "levels_treated": (["1", "3"], ["0", "-1", "two"]),
    "pain_baseline": (["0", "10", "7.5"], ["11", "-0.5", "high"]),
    "cement_leakage": (["Y", "0", "true"], ["maybe", ""]),
    "facility_id": (["FAC-9"], ["", "a@b.org"]),
    "cost": (["", "1200"], ["-5"]),
}

row_strategy = st.fixed_dictionaries({
    field: st.tuples(st.booleans(), st.integers(0, 10)) for field in VALUES
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row_strategy, min_size=1, max_size=25),
       duplicate_every=st.integers(2, 6), garbage=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                       max_size=3))
def test_accounting_identity(tmp_path_factory, rows, duplicate_every, garbage):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("prop")
    database = f"sqlite:///{folder / 'store.db'}"
    path = folder / "export.csv"
    expected_valid = set()
    written = []
    for number, choices in enumerate(rows):
        record = dict(GOOD, record_id=f"R-{number}")
        valid = True
        for field, (use_good, pick) in choices.items():
            good_values, bad_values = VALUES[field]
            pool = good_values if use_good else bad_values
            record[field] = pool[pick % len(pool)]
            valid &= use_good
        if record["cost"]:
            record["currency"] = "USD"
        written.append(record)
        if valid:
            expected_valid.add(record["record_id"])
        if number % duplicate_every == 0:
            written.append(dict(record))  # an exact repeat: a duplicate, or rejected again
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADINGS)
        for record in written:
            writer.writerow([record[h] for h in HEADINGS])
        for text in garbage:
            writer.writerow([text])  # ragged garbage rows
    result = import_file(path, database)
    # A line holding only white space is a blank line, not a record; any other line is a row.
    assert result.rows_read == len(written) + sum(1 for text in garbage if text.strip())
    assert result.rows_read == result.accepted + result.rejected + result.duplicates + result.conflicts
    assert set(load_records(database).record_id) == expected_valid
    assert result.accepted == len(expected_valid)
    store.dispose_engines()
