"""Turn exported text values into typed dictionary values.

Hospitals export the same facts in many spellings ("BKP", "Balloon kyphoplasty", "22514";
"Y", "yes", "1"; "03/04/2024", "2024-04-03"). Each function here takes a column of raw strings
and returns the typed column plus the positions whose text could not be read, so the importer
can reject exactly those rows with the reason.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from data.dictionary import FIELDS_BY_NAME, Field

# Arrow-backed strings: their string operations run vectorised in C++ (several times faster than
# Python-object strings on a million-row import).
TEXT_DTYPE = "string[pyarrow]"

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "missing", ".", "-", "--", "?"})

TRUE_TOKENS = frozenset({"y", "yes", "true", "t", "1", "1.0", "ja", "oui", "si", "positive"})
FALSE_TOKENS = frozenset({"n", "no", "false", "f", "0", "0.0", "nein", "non", "negative"})

VP_CPT = {"22510", "22511", "22512", "22520", "22521", "22522"}  # 2252x: pre-2015 codes [S, RAC]
KP_CPT = {"22513", "22514", "22515", "22523", "22524", "22525"}

# Spellings seen in exports, by field (keys are lower case, spaces/underscores/dashes collapsed).
SYNONYMS: dict[str, dict[str, str]] = {
    "procedure": {
        **{key: "vertebroplasty" for key in (
            "vp", "pvp", "vertebroplasty", "percutaneous vertebroplasty", "vertebroplastie",
            "vertebroplastik", *VP_CPT, "81.65", "8165")},
        **{key: "kyphoplasty" for key in (
            "kp", "bkp", "pkp", "kyphoplasty", "balloon kyphoplasty", "percutaneous kyphoplasty",
            "ballon kyphoplasty", "kyphoplastie", "kyphoplastik", "vertebral augmentation",
            *KP_CPT, "81.66", "8166")},
    },
    "sex": {"f": "F", "female": "F", "woman": "F", "w": "F", "m": "M", "male": "M", "man": "M",
            "x": "X", "u": "X", "other": "X", "unknown": "X", "o": "X", "diverse": "X", "d": "X"},
    "etiology": {
        "osteoporotic": "osteoporotic", "osteoporosis": "osteoporotic", "op": "osteoporotic",
        "osteoporotic fracture": "osteoporotic", "insufficiency": "osteoporotic",
        "malignant": "malignant", "malignancy": "malignant", "tumour": "malignant",
        "tumor": "malignant", "neoplastic": "malignant", "cancer": "malignant",
        "pathologic malignant": "malignant", "metastatic": "malignant", "myeloma": "malignant",
        "traumatic": "traumatic", "trauma": "traumatic", "other": "other", "unknown": "other",
    },
    "malignancy_type": {
        "myeloma": "myeloma", "multiple myeloma": "myeloma", "mm": "myeloma",
        "metastasis": "metastasis", "metastases": "metastasis", "metastatic": "metastasis",
        "other": "other", "lymphoma": "other",
    },
    "approach": {"unipedicular": "unipedicular", "uni": "unipedicular", "unilateral": "unipedicular",
                 "uni pedicular": "unipedicular", "bipedicular": "bipedicular", "bi": "bipedicular",
                 "bilateral": "bipedicular", "bi pedicular": "bipedicular"},
    "anesthesia": {"local": "local", "la": "local", "local anaesthesia": "local",
                   "local anesthesia": "local", "sedation": "sedation", "conscious sedation": "sedation",
                   "mac": "sedation", "general": "general", "ga": "general",
                   "general anaesthesia": "general", "general anesthesia": "general"},
    "guidance": {"fluoroscopy": "fluoroscopy", "fluoro": "fluoroscopy", "fluoroscopic": "fluoroscopy",
                 "x ray": "fluoroscopy", "xray": "fluoroscopy", "c arm": "fluoroscopy",
                 "ct": "ct", "ct guided": "ct", "ct fluoroscopy": "ct", "cbct": "ct"},
    "setting": {"outpatient": "outpatient", "op": "outpatient", "day case": "outpatient",
                "daycase": "outpatient", "ambulatory": "outpatient", "23 hour": "outpatient",
                "inpatient": "inpatient", "ip": "inpatient", "admitted": "inpatient"},
    "country": {"uk": "GB", "england": "GB", "united kingdom": "GB", "usa": "US",
                "united states": "US", "germany": "DE", "france": "FR", "india": "IN"},
}

# Plain pattern strings (not compiled) so that Arrow's RE2 engine can run them.
_COLLAPSE = r"[\s_\-]+"
_THOUSANDS = r"^-?\d{1,3}(,\d{3})+(\.\d+)?$"
_CURRENCY_SYMBOLS = r"^[\s$£€₹]+|\s*(?i:usd|gbp|eur|inr|rs\.?)$"
_SPINE_LEVEL = re.compile(r"^(?:th|t)\s*0*(\d{1,2})$|^(l)\s*0*(\d)$|^(s)\s*0*(1)$", re.IGNORECASE)

DATE_FORMATS = ("%Y/%m/%d", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y", "%Y%m%d", "%d-%m-%Y")


@dataclasses.dataclass
class ReadOptions:
    """How ambiguous text is read for one file (decided once, then kept for every chunk)."""

    decimal_comma: bool = False
    day_first: bool | None = None  # None: decide from the first values that prove it


def blank_to_na(raw: pd.Series) -> pd.Series:
    """Strip text and turn the usual missing-value tokens into ``<NA>``."""
    text = raw.astype(TEXT_DTYPE).str.strip()
    return text.mask(text.str.lower().isin(MISSING_TOKENS))


def _key(text: pd.Series) -> pd.Series:
    return text.str.lower().str.replace(_COLLAPSE, " ", regex=True).str.strip()


def to_category(field: Field, text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Map spellings to the field's allowed values; unknown spellings fail."""
    synonyms = SYNONYMS.get(field.name, {})
    if field.name == "index_level":
        parsed = text.str.extract(_SPINE_LEVEL)
        number = parsed[0].fillna(parsed[2]).fillna(parsed[4])
        letter = pd.Series(np.where(parsed[0].notna(), "T", np.where(parsed[1].notna(), "L", "S")),
                           index=text.index)
        values = (letter + number.astype("string").str.lstrip("0")).where(number.notna())
    elif field.name in ("country", "currency"):
        upper = text.str.upper().astype(object)
        by_synonym = (_key(text).map(synonyms).astype(object) if synonyms
                      else pd.Series(None, index=text.index, dtype=object))
        values = by_synonym.where(by_synonym.notna(), upper)
    else:
        keys = _key(text)
        allowed_lower = {value.lower(): value for value in field.allowed}
        by_synonym = keys.map(synonyms).astype(object)
        values = by_synonym.where(by_synonym.notna(), keys.map(allowed_lower).astype(object))
    values = values.astype(object).where(values.isin(field.allowed), None)
    failed = text.notna() & pd.isna(values)
    return pd.Series(values, index=text.index, dtype=object), failed


def to_boolean(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    lower = text.str.lower()
    values = pd.Series(pd.NA, index=text.index, dtype="boolean")
    values[lower.isin(TRUE_TOKENS).fillna(False).astype(bool)] = True
    values[lower.isin(FALSE_TOKENS).fillna(False).astype(bool)] = False
    return values, text.notna() & values.isna()


def _clean_number_text(text: pd.Series, decimal_comma: bool) -> pd.Series:
    """Numbers from text with currency symbols, thousands separators or decimal commas."""
    cleaned = text.str.replace(_CURRENCY_SYMBOLS, "", regex=True).str.strip()
    if decimal_comma:
        cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        thousands = cleaned.str.fullmatch(_THOUSANDS).fillna(False).astype(bool)
        cleaned = cleaned.mask(thousands, cleaned.str.replace(",", "", regex=False))
    return pd.to_numeric(cleaned, errors="coerce").astype("float64")


def to_number(text: pd.Series, options: ReadOptions, integer: bool = False) -> tuple[pd.Series, pd.Series]:
    if options.decimal_comma:
        numbers = _clean_number_text(text, decimal_comma=True)
    else:
        # Fast path: most cells are plain numbers; only the rest go through the text clean-up.
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        rest = (text.notna() & numbers.isna()).to_numpy(dtype=bool)
        if rest.any():
            numbers[rest] = _clean_number_text(text[rest], decimal_comma=False).to_numpy()
    numbers = pd.Series(numbers, index=text.index).astype("Float64")
    numbers = numbers.mask(~np.isfinite(numbers.fillna(0)))
    failed = text.notna() & numbers.isna()
    if integer:
        fractional = (numbers.round() != numbers).fillna(False).astype(bool)
        failed |= fractional
        numbers = numbers.mask(fractional).round().astype("Int64")
    return numbers, failed


def to_date(text: pd.Series, options: ReadOptions) -> tuple[pd.Series, pd.Series]:
    dates = pd.to_datetime(text, format="ISO8601", errors="coerce")
    remaining = text.notna() & dates.isna()
    if remaining.any():
        slashed = text[remaining].str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}").fillna(False).astype(bool)
        if slashed.any():
            first = text[remaining][slashed].str.split("/").str[0].astype(int)
            if options.day_first is None:
                options.day_first = bool((first > 12).any())
            fmt = "%d/%m/%Y" if options.day_first else "%m/%d/%Y"
            index = slashed[slashed].index
            dates.loc[index] = pd.to_datetime(text[index], format=fmt, errors="coerce")
        for fmt in DATE_FORMATS:
            remaining = text.notna() & dates.isna()
            if not remaining.any():
                break
            dates.loc[remaining] = pd.to_datetime(text[remaining], format=fmt, errors="coerce")
    dates = pd.Series(dates, index=text.index).dt.tz_localize(None) if getattr(
        dates.dtype, "tz", None) else pd.Series(dates, index=text.index)
    dates = dates.dt.normalize().astype("datetime64[ns]")
    return dates, text.notna() & dates.isna()


TYPE_RULES = {
    "category": "allowed_values", "boolean": "boolean", "integer": "integer",
    "number": "number", "date": "date",
}


def normalise_column(name: str, raw: pd.Series, options: ReadOptions) -> tuple[pd.Series, pd.Series]:
    """Typed values of one field and a mask of the cells whose text could not be read."""
    field = FIELDS_BY_NAME[name]
    text = blank_to_na(raw)
    if field.kind in ("id", "text"):
        return text, pd.Series(False, index=raw.index)
    if field.kind == "category":
        return to_category(field, text)
    if field.kind == "boolean":
        return to_boolean(text)
    if field.kind in ("integer", "number"):
        return to_number(text, options, integer=field.kind == "integer")
    return to_date(text, options)
