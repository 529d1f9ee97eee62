"""Screen for protected health information (PHI) before anything is stored.

The product takes de-identified data only. Two screens, following the HIPAA Safe Harbor list of
direct identifiers (45 CFR 164.514(b)(2)):

* **columns**: a heading that names a direct identifier refuses the whole file; the message
  names the headings, never their values;
* **values**: an identifier-looking value (email address, US SSN, phone number) in a column that
  should hold pseudonyms or labels rejects its row, and the value itself is never stored.
"""

from __future__ import annotations

import re

import pandas as pd

# Token sequences (after splitting a heading into lower-case words) that name a direct identifier.
_IDENTIFIER_PHRASES: tuple[tuple[str, ...], ...] = (
    ("mrn",), ("medical", "record"), ("hospital", "number"), ("nhs", "number"), ("nhs", "no"),
    ("chart", "number"), ("ssn",), ("social", "security"), ("sin",), ("national", "id"),
    ("national", "insurance"), ("passport",), ("dob",), ("date", "of", "birth"),
    ("birth", "date"), ("birthdate",), ("birthday",), ("born",), ("address",), ("street",),
    ("addr",), ("zip",), ("zipcode",), ("postcode",), ("postal", "code"), ("post", "code"),
    ("city",), ("town",), ("county",), ("phone",), ("telephone",), ("tel",), ("mobile",),
    ("cell",), ("fax",), ("email",), ("e", "mail"), ("mail",), ("ip", "address"), ("url",),
    ("insurance", "number"), ("member", "id"), ("policy", "number"), ("medicare", "number"),
    ("medicaid", "number"), ("account", "number"), ("licence",), ("license",),
    ("first", "name"), ("last", "name"), ("surname",), ("given", "name"), ("family", "name"),
    ("full", "name"), ("forename",), ("initials",), ("photo",), ("photograph",),
)
# "name" on its own names a person unless the heading is about one of these things.
_NON_PERSON_NAMES = frozenset({"facility", "hospital", "site", "region", "country", "procedure",
                               "device", "cement", "file", "drug", "centre", "center", "unit"})

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# Patterns avoid look-arounds so that both Python's re and Arrow's RE2 engine can run them.
EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
SSN = r"(?:^|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?:[^0-9]|$)"
PHONE = (r"(?:^|[^0-9A-Za-z_])(?:\+[0-9][0-9\s().-]{8,}[0-9]|\(?[0-9]{3}\)?[\s.-][0-9]{3}[\s.-][0-9]{4})"
         r"(?:[^0-9A-Za-z_]|$)")
VALUE_PATTERNS: dict[str, str] = {"email address": EMAIL, "SSN": SSN, "phone number": PHONE}

# Fields holding pseudonyms or free labels, where an identifier could slip in.
SCREENED_FIELDS = ("record_id", "patient_id", "facility_id", "operator_id", "region")


def heading_words(heading: str) -> list[str]:
    """Split a heading into lower-case words (``"PatientDOB"`` → ``["patient", "dob"]``)."""
    return [word.lower() for word in _WORDS.findall(str(heading))]


def is_identifier_heading(heading: str) -> bool:
    """Whether a column heading names a direct identifier.

    >>> is_identifier_heading("Patient Name"), is_identifier_heading("Date-of-Birth")
    (True, True)
    >>> is_identifier_heading("facility name"), is_identifier_heading("pain_month1")
    (False, False)
    """
    words = heading_words(heading)
    for phrase in _IDENTIFIER_PHRASES:
        size = len(phrase)
        if any(tuple(words[i:i + size]) == phrase for i in range(len(words) - size + 1)):
            return True
    return ("name" in words or "names" in words) and not _NON_PERSON_NAMES.intersection(words)


def identifier_columns(headings: list[str], known: set[str]) -> list[str]:
    """Headings that name direct identifiers, excluding headings that are known field aliases."""
    return [heading for heading in headings if heading not in known and is_identifier_heading(heading)]


def identifier_values(text: pd.Series) -> pd.Series:
    """For each value, the kind of identifier it looks like (``<NA>`` when none)."""
    kinds = pd.Series(pd.NA, index=text.index, dtype="string")
    present = text.notna()
    for kind, pattern in VALUE_PATTERNS.items():
        hit = present & kinds.isna() & text.str.contains(pattern, regex=True).fillna(False).astype(bool)
        kinds[hit] = kind
    return kinds
