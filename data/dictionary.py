"""The data dictionary: one source of truth for every field of a procedure record.

Everything else is derived from :data:`FIELDS`: the pandera schema that validates records
(:func:`data.validation.record_schema`), the database columns (:mod:`data.store`), the column
aliases of the importer, the pandas dtypes of :func:`data.load_records`, and the Markdown table
in ``docs/data-dictionary.md`` (``python -m data dictionary``).

Examples
--------
>>> from data.dictionary import FIELDS_BY_NAME
>>> FIELDS_BY_NAME["procedure"].allowed
('vertebroplasty', 'kyphoplasty')
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

import pandas as pd

Kind = Literal["id", "text", "category", "date", "integer", "number", "boolean"]

# ISO 3166-1 alpha-2 (officially assigned codes, 2024). Source: ISO 3166 Maintenance Agency.
ISO_COUNTRIES: frozenset[str] = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO
    DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU
    GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW
    KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU
    MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
    PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA
    ZM ZW""".split()
)

# ISO 4217 currency codes accepted for costs (active codes in common use for health costs).
ISO_CURRENCIES: frozenset[str] = frozenset(
    """USD EUR GBP INR CAD AUD NZD CHF SEK NOK DKK PLN CZK HUF JPY CNY KRW SGD HKD BRL MXN ZAR
    TRY ILS AED SAR RUB ARS CLP COP THB MYR IDR PHP VND EGP NGN KES PKR BDT""".split()
)

SPINE_LEVELS: tuple[str, ...] = tuple(
    [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"]
)

# Follow-up visits: field suffix -> (label, nominal day, earliest day of the visit window).
# A visit's score is only plausible once follow-up has reached the start of its window.
PAIN_VISITS: dict[str, tuple[str, int, int]] = {
    "day1": ("Day 1", 1, 0),
    "week1": ("Week 1", 7, 4),
    "month1": ("Month 1", 30, 15),
    "month3": ("Month 3", 90, 61),
    "month6": ("Month 6", 180, 136),
    "month12": ("Month 12", 365, 271),
}

FIRST_PROCEDURE_DATE = pd.Timestamp("1984-01-01")  # first published vertebroplasty (Galibert 1987, done 1984)


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a procedure record.

    Attributes
    ----------
    name : str
        Column name (the contract used by analysts and the dashboard).
    kind : {"id", "text", "category", "date", "integer", "number", "boolean"}
        Logical type. ``id`` is a pseudonymous identifier string.
    description : str
        What the field means.
    required : bool
        Whether every record must have a value.
    unit : str
        Unit of measurement, empty when not applicable.
    allowed : tuple of str
        Allowed values for ``category`` fields.
    minimum, maximum : float or None
        Inclusive bounds for numeric fields.
    exclusive_minimum : bool
        When true the lower bound is strict (``> minimum``).
    aliases : tuple of str
        Other column headings recognised on import (matched ignoring case, spaces and
        punctuation).
    required_when : str
        Human-readable condition under which an optional field becomes required.
    """

    name: str
    kind: Kind
    description: str
    required: bool = False
    unit: str = ""
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    aliases: tuple[str, ...] = ()
    required_when: str = ""

    @property
    def pandas_dtype(self) -> str:
        """The pandas dtype used by :func:`data.load_records` for this field."""
        return {
            "id": "string",
            "text": "string",
            "category": "category",
            "date": "datetime64[ns]",
            "integer": "Int64",
            "number": "Float64",
            "boolean": "boolean",
        }[self.kind]

    @property
    def values_text(self) -> str:
        """Allowed values or range, as written in the Markdown dictionary."""
        if self.allowed:
            if len(self.allowed) > 8:
                return f"{self.allowed[0]} … {self.allowed[-1]} ({len(self.allowed)} values)"
            return ", ".join(f"`{value}`" for value in self.allowed)
        if self.minimum is None and self.maximum is None:
            return {
                "id": "pseudonymous string",
                "text": "free text label",
                "date": "ISO date (YYYY-MM-DD)",
                "boolean": "true / false",
            }.get(self.kind, "")
        low = "" if self.minimum is None else f"{'>' if self.exclusive_minimum else '≥'} {self.minimum:g}"
        high = "" if self.maximum is None else f"≤ {self.maximum:g}"
        return " and ".join(part for part in (low, high) if part)


def _pain(suffix: str) -> Field:
    label, nominal_day, window_start = PAIN_VISITS[suffix]
    return Field(
        f"pain_{suffix}",
        "number",
        f"Pain (VAS/NRS) at the {label.lower()} visit (nominal day {nominal_day}; window "
        f"from day {window_start})",
        unit="points (0–10)",
        minimum=0,
        maximum=10,
        aliases=(f"vas_{suffix}", f"nrs_{suffix}", f"pain {label}", f"vas {label}"),
    )


FIELDS: tuple[Field, ...] = (
    Field("record_id", "id", "Pseudonymous identifier of the procedure, unique per procedure",
          required=True,
          aliases=("id", "record", "procedure_id", "case_id", "case", "record id", "MRN-free ID",
                   "study_id", "encounter_id")),
    Field("patient_id", "id", "Pseudonymous patient identifier linking repeat procedures",
          aliases=("patient", "pseudonymous patient id", "subject_id", "subject", "pt_id")),
    Field("facility_id", "id", "Pseudonymous identifier of the facility (hospital or site)",
          required=True,
          aliases=("facility", "site", "site_id", "hospital", "hospital_id", "institution",
                   "centre", "center")),
    Field("operator_id", "id", "Pseudonymous identifier of the operator who performed the procedure",
          aliases=("operator", "surgeon", "surgeon_id", "physician_id", "proceduralist",
                   "interventionalist")),
    Field("country", "category", "Country of the facility, ISO 3166-1 alpha-2 code",
          required=True, allowed=tuple(sorted(ISO_COUNTRIES)),
          aliases=("country_code", "nation", "iso_country")),
    Field("region", "text", "Sub-national region label (e.g. US census region, NHS region)",
          aliases=("state_region", "census_region", "area")),
    Field("procedure_date", "date",
          "Date of the procedure; may be date-shifted by the exporter (not before 1984, not in the "
          "future)", required=True,
          aliases=("date", "date_of_procedure", "procedure date", "surgery_date", "op_date",
                   "service_date")),
    Field("procedure", "category",
          "Procedure performed (VP, PVP → vertebroplasty; KP, BKP, balloon kyphoplasty → "
          "kyphoplasty)", required=True, allowed=("vertebroplasty", "kyphoplasty"),
          aliases=("procedure type", "proc", "procedure_type", "intervention", "treatment",
                   "augmentation")),
    Field("cpt_code", "integer",
          "CPT code: 22510–22512 vertebroplasty, 22513–22515 kyphoplasty (must agree with "
          "procedure)", minimum=22510, maximum=22515, aliases=("cpt", "cpt code", "hcpcs")),
    Field("age", "integer",
          "Age at procedure; ages above 89 are top-coded to 90 on import (HIPAA Safe Harbor)",
          required=True, unit="years", minimum=18, maximum=90,
          aliases=("age_years", "age at procedure", "patient_age")),
    Field("sex", "category", "Sex: F female, M male, X other or unknown", required=True,
          allowed=("F", "M", "X"), aliases=("gender", "patient_sex")),
    Field("etiology", "category", "Cause of the compression fracture", required=True,
          allowed=("osteoporotic", "malignant", "traumatic", "other"),
          aliases=("aetiology", "cause", "fracture_etiology", "fracture cause", "indication")),
    Field("malignancy_type", "category", "Type of malignancy when etiology is malignant",
          allowed=("myeloma", "metastasis", "other"),
          aliases=("tumour_type", "tumor_type", "cancer_type", "malignancy")),
    Field("levels_treated", "integer", "Number of vertebral levels treated in the procedure",
          required=True, unit="levels", minimum=1, maximum=15,
          aliases=("levels", "number_of_levels", "n_levels", "vertebrae_treated", "num_levels")),
    Field("index_level", "category", "Most proximal (index) vertebral level treated",
          allowed=SPINE_LEVELS, aliases=("level", "vertebral_level", "treated_level")),
    Field("fracture_age_weeks", "number", "Time from fracture (or symptom onset) to procedure",
          unit="weeks", minimum=0, maximum=520,
          aliases=("fracture_age", "symptom_duration_weeks", "weeks_since_fracture")),
    Field("prior_fractures", "integer", "Number of prevalent vertebral fractures at baseline",
          unit="fractures", minimum=0, maximum=20,
          aliases=("prevalent_fractures", "prior_vcf", "previous_fractures")),
    Field("approach", "category", "Pedicular approach", allowed=("unipedicular", "bipedicular"),
          aliases=("access", "pedicle_approach")),
    Field("anesthesia", "category", "Anaesthesia", allowed=("local", "sedation", "general"),
          aliases=("anaesthesia", "anesthetic", "anaesthetic")),
    Field("guidance", "category", "Imaging guidance", allowed=("fluoroscopy", "ct"),
          aliases=("imaging", "imaging_guidance")),
    Field("cement_volume_ml", "number", "Total cement volume injected", unit="mL", minimum=0,
          exclusive_minimum=True, maximum=60,
          aliases=("cement_volume", "pmma_volume", "cement ml", "volume_ml")),
    Field("duration_min", "number", "Procedure duration, skin to skin", unit="minutes",
          minimum=0, exclusive_minimum=True, maximum=600,
          aliases=("duration", "procedure_duration", "operative_time", "op_time_min",
                   "duration_minutes")),
    Field("setting", "category", "Care setting (outpatient includes 23-hour stays)",
          allowed=("outpatient", "inpatient"), aliases=("care_setting", "admission_type")),
    Field("length_of_stay_days", "number", "Length of hospital stay (outpatient ≤ 1 day)",
          unit="days", minimum=0, maximum=365, aliases=("los", "length_of_stay", "los_days")),
    Field("pain_baseline", "number", "Pain (VAS/NRS) before the procedure", required=True,
          unit="points (0–10)", minimum=0, maximum=10,
          aliases=("vas_baseline", "nrs_baseline", "baseline_pain", "pain_pre", "vas_pre")),
    *(_pain(suffix) for suffix in PAIN_VISITS),
    Field("odi_baseline", "number", "Oswestry Disability Index before the procedure",
          unit="percent (0–100)", minimum=0, maximum=100, aliases=("odi_pre", "baseline_odi")),
    Field("odi_month1", "number", "Oswestry Disability Index at 1 month",
          unit="percent (0–100)", minimum=0, maximum=100, aliases=("odi_1m",)),
    Field("odi_month12", "number", "Oswestry Disability Index at 12 months",
          unit="percent (0–100)", minimum=0, maximum=100, aliases=("odi_12m",)),
    Field("opioid_baseline", "boolean", "Taking opioids before the procedure",
          aliases=("opioids_baseline", "opioid_pre")),
    Field("opioid_month1", "boolean", "Taking opioids at 1 month", aliases=("opioids_month1",)),
    Field("cement_leakage", "boolean", "Any cement leakage on post-procedure imaging",
          required=True, aliases=("leakage", "leak", "cement_leak", "extravasation", "cement extravasation")),
    Field("leakage_symptomatic", "boolean", "Cement leakage causing symptoms (only with leakage)",
          aliases=("symptomatic_leakage",)),
    Field("pulmonary_embolism", "boolean", "Pulmonary cement embolism (any, incl. incidental)",
          required=True, aliases=("pce", "cement_embolism", "pulmonary cement embolism", "pe")),
    Field("embolism_symptomatic", "boolean", "Symptomatic pulmonary cement embolism (only with "
          "embolism)", aliases=("symptomatic_pce", "symptomatic_embolism")),
    Field("adjacent_fracture", "boolean",
          "New fracture of an adjacent or other vertebra during follow-up", required=True,
          aliases=("new_fracture", "new_vcf", "subsequent_fracture", "adjacent_vcf")),
    Field("adjacent_fracture_days", "integer",
          "Days from procedure to diagnosis of the new fracture (≤ followup_days)", unit="days",
          minimum=0, maximum=7300, required_when="adjacent_fracture is true",
          aliases=("new_fracture_days", "days_to_new_fracture", "time_to_fracture_days")),
    Field("followup_days", "integer", "Days from procedure to last contact", unit="days",
          minimum=0, maximum=7300, aliases=("follow_up_days", "followup", "fu_days",
                                             "last_contact_days")),
    Field("died", "boolean", "Death recorded during follow-up", aliases=("death", "deceased")),
    Field("death_days", "integer", "Days from procedure to death (≥ every other event day)",
          unit="days", minimum=0, maximum=7300, aliases=("days_to_death",)),
    Field("infection", "boolean", "Procedure-related infection", aliases=("surgical_site_infection",)),
    Field("new_neurologic_deficit", "boolean", "New neurological deficit after the procedure",
          aliases=("neurologic_deficit", "neuro_deficit", "new_neuro_deficit")),
    Field("kyphotic_angle_pre", "number", "Kyphotic (wedge) angle before the procedure",
          unit="degrees", minimum=-30, maximum=90, aliases=("kyphosis_pre",)),
    Field("kyphotic_angle_post", "number", "Kyphotic (wedge) angle after the procedure",
          unit="degrees", minimum=-30, maximum=90, aliases=("kyphosis_post",)),
    Field("height_restoration_pct", "number", "Anterior vertebral body height restoration",
          unit="percent", minimum=-100, maximum=200, aliases=("height_restoration",)),
    Field("cost", "number", "Total procedure cost in the record's currency", unit="currency",
          minimum=0, aliases=("total_cost", "procedure_cost", "cost_total")),
    Field("currency", "category", "ISO 4217 currency of cost", allowed=tuple(sorted(ISO_CURRENCIES)),
          required_when="cost is given", aliases=("cost_currency", "currency_code")),
)

FIELDS_BY_NAME: dict[str, Field] = {field.name: field for field in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(FIELDS_BY_NAME)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)


@dataclasses.dataclass(frozen=True)
class CrossFieldRule:
    """A rule that relates several fields of one record."""

    name: str
    fields: tuple[str, ...]
    description: str


CROSS_FIELD_RULES: tuple[CrossFieldRule, ...] = (
    CrossFieldRule("fracture_days_required", ("adjacent_fracture", "adjacent_fracture_days"),
                   "adjacent_fracture_days is required when adjacent_fracture is true"),
    CrossFieldRule("fracture_days_without_fracture", ("adjacent_fracture", "adjacent_fracture_days"),
                   "adjacent_fracture_days must be empty when adjacent_fracture is false"),
    CrossFieldRule("fracture_after_followup", ("adjacent_fracture_days", "followup_days"),
                   "adjacent_fracture_days ≤ followup_days"),
    CrossFieldRule("death_before_event", ("death_days", "adjacent_fracture_days", "followup_days"),
                   "death_days ≥ adjacent_fracture_days and ≥ followup_days"),
    CrossFieldRule("death_days_without_death", ("died", "death_days"),
                   "death_days is only given when died is true"),
    CrossFieldRule("pain_beyond_followup", tuple(f"pain_{s}" for s in PAIN_VISITS) + ("followup_days",),
                   "a follow-up pain score is only given when followup_days reached its visit "
                   "window (day 1: 0, week 1: 4, month 1: 15, month 3: 61, month 6: 136, "
                   "month 12: 271)"),
    CrossFieldRule("odi_beyond_followup", ("odi_month1", "odi_month12", "followup_days"),
                   "odi_month1 needs followup_days ≥ 15 and odi_month12 ≥ 271"),
    CrossFieldRule("symptomatic_leakage_without_leakage", ("cement_leakage", "leakage_symptomatic"),
                   "leakage_symptomatic is true only when cement_leakage is true"),
    CrossFieldRule("symptomatic_embolism_without_embolism",
                   ("pulmonary_embolism", "embolism_symptomatic"),
                   "embolism_symptomatic is true only when pulmonary_embolism is true"),
    CrossFieldRule("malignancy_type_without_malignancy", ("etiology", "malignancy_type"),
                   "malignancy_type is only given when etiology is malignant"),
    CrossFieldRule("cpt_procedure_mismatch", ("cpt_code", "procedure"),
                   "cpt_code 22510–22512 goes with vertebroplasty, 22513–22515 with kyphoplasty"),
    CrossFieldRule("currency_required", ("cost", "currency"),
                   "currency is required when cost is given"),
    CrossFieldRule("outpatient_stay", ("setting", "length_of_stay_days"),
                   "outpatient procedures have length_of_stay_days ≤ 1"),
    CrossFieldRule("date_range", ("procedure_date",),
                   "procedure_date is not before 1984-01-01 and not in the future"),
)


def dictionary() -> pd.DataFrame:
    """Describe every field of a procedure record.

    Returns
    -------
    pandas.DataFrame
        One row per field with columns ``field, type, dtype, unit, values, required,
        description, aliases``.

    Examples
    --------
    >>> from data import dictionary
    >>> table = dictionary()
    >>> table.loc[table.field == "age", "values"].item()
    '≥ 18 and ≤ 90'
    """
    return pd.DataFrame(
        [
            {
                "field": f.name,
                "type": f.kind,
                "dtype": f.pandas_dtype,
                "unit": f.unit,
                "values": f.values_text,
                "required": "yes" if f.required else (f"when {f.required_when}" if f.required_when else "no"),
                "description": f.description,
                "aliases": ", ".join(f.aliases),
            }
            for f in FIELDS
        ]
    )


def dictionary_markdown() -> str:
    """The data dictionary as Markdown: the field table, then the cross-field rules.

    This is the text of ``docs/data-dictionary.md`` and of ``python -m data dictionary``.
    """
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = [
        "# Data dictionary",
        "",
        "Generated by `python -m data dictionary` from `data/dictionary.py`; do not edit by hand.",
        "Column headings are matched ignoring case, spaces and punctuation, so `Procedure Type`,",
        "`procedure-type` and `PROCEDURE_TYPE` are the same heading.",
        "",
        "## Fields",
        "",
        "| field | type | unit | allowed values / range | required | description | import aliases |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in dictionary().itertuples(index=False):
        lines.append(
            f"| `{row.field}` | {row.type} | {cell(row.unit)} | {cell(row.values)} | "
            f"{row.required} | {cell(row.description)} | {cell(row.aliases)} |"
        )
    lines += ["", "## Cross-field rules", "", "| rule | fields | requirement |", "|---|---|---|"]
    for rule in CROSS_FIELD_RULES:
        lines.append(f"| `{rule.name}` | {', '.join(rule.fields)} | {cell(rule.description)} |")
    lines += [
        "",
        "## Value normalisation on import",
        "",
        "- `procedure`: VP, PVP, vertebroplasty, percutaneous vertebroplasty and CPT 22510–22512 →",
        "  `vertebroplasty`; KP, BKP, kyphoplasty, balloon kyphoplasty, vertebral augmentation and",
        "  CPT 22513–22515 → `kyphoplasty`. A missing procedure is taken from `cpt_code`.",
        "- booleans: Y/N, yes/no, 1/0, true/false, t/f (any case).",
        "- dates: ISO `YYYY-MM-DD`, `YYYY/MM/DD`, `DD.MM.YYYY`, `DD-Mon-YYYY`, and `MM/DD/YYYY`",
        "  (or `DD/MM/YYYY` when a file's dates can only be read day-first).",
        "- `sex`: female/woman → F, male/man → M, other/unknown/U → X.",
        "- `age`: ages above 89 become 90 and are counted as top-coded.",
        "- category values match ignoring case and surrounding spaces (e.g. `Osteoporotic`, ",
        "  `CT`, `Bi-pedicular`).",
        "",
        "## Identifiers that are refused",
        "",
        "A file with a column that is a direct identifier (patient name, MRN, SSN / national ID,",
        "date of birth, street address, ZIP / postcode, phone, fax, email, and their usual",
        "spellings) is refused whole. A value in an identifier or label column that looks like an",
        "email address, a US SSN or a phone number rejects its row (the value is never stored).",
        "",
    ]
    return "\n".join(lines)


_NORMALISE = re.compile(r"[^0-9a-z]+")


def normalise_heading(heading: str) -> str:
    """Heading key used for matching: lower case, letters and digits only.

    >>> normalise_heading(" Procedure-Type ")
    'proceduretype'
    """
    return _NORMALISE.sub("", str(heading).lower())


def alias_map() -> dict[str, str]:
    """Normalised heading → field name, for every field name and alias."""
    mapping: dict[str, str] = {}
    for field in FIELDS:
        for heading in (field.name, *field.aliases):
            key = normalise_heading(heading)
            if key in mapping and mapping[key] != field.name:
                raise RuntimeError(f"alias {heading!r} is claimed by {mapping[key]} and {field.name}")
            mapping[key] = field.name
    return mapping
