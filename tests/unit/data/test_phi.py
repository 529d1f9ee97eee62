"""The PHI screens: identifier headings refuse a file; identifier values reject a row."""

from __future__ import annotations

import pandas as pd
import pytest

from data.phi import identifier_columns, identifier_values, is_identifier_heading


@pytest.mark.parametrize("heading", [
    "name", "Patient Name", "patient_name", "First Name", "LastName", "surname", "MRN",
    "Medical Record Number", "mrn_number", "Hospital Number", "NHS Number", "SSN",
    "Social Security No", "DOB", "PatientDOB", "Date of Birth", "birth_date", "Birthdate",
    "Address", "Street Address", "address_line_1", "ZIP", "Zip Code", "zipcode", "Postcode",
    "Postal Code", "city", "Phone", "Telephone", "tel", "Mobile", "Fax", "Email", "E-mail",
    "email_address", "IP Address", "URL", "Insurance Number", "Medicare Number", "Surgeon Name",
])
def test_identifier_headings_are_recognised(heading):
    assert is_identifier_heading(heading)


@pytest.mark.parametrize("heading", [
    "record_id", "patient_id", "Facility Name", "hospital name", "procedure", "age", "sex",
    "region", "country", "pain_month1", "cement_leakage", "Comments", "levels", "procedure_date",
    "followup_days", "cement volume", "census_region", "notes", "state",
])
def test_ordinary_headings_pass(heading):
    assert not is_identifier_heading(heading)


def test_known_aliases_are_exempt():
    # "MRN-free ID" is a documented alias of record_id, although it contains "MRN".
    assert is_identifier_heading("MRN-free ID")
    assert identifier_columns(["MRN-free ID", "DOB"], known={"MRN-free ID"}) == ["DOB"]


@pytest.mark.parametrize("dtype", ["string", "string[pyarrow]"])
def test_identifier_values(dtype):
    values = pd.Series(["R-0001", "jane.doe@example.org", "123-45-6789", "(555) 123-4567",
                        "+44 20 7946 0958", "FAC-01", None, "2024-01-15", "OP-1234567"],
                       dtype=dtype)
    kinds = identifier_values(values)
    assert kinds.tolist()[:5] == [pd.NA, "email address", "SSN", "phone number", "phone number"]
    assert kinds[5:].isna().all()  # pseudonyms, missing values and dates pass
