"""Seeded, literature-calibrated synthetic demo records (vertebroplasty vs kyphoplasty).

:func:`demo_records` returns a typed frame with exactly the columns, order and dtypes of the data
dictionary (:data:`data.dictionary.FIELDS`). Every record satisfies every field rule and every
cross-field rule of the dictionary. The records are synthetic: no row describes a real patient,
facility or operator.

What it models
--------------
* **Structure.** 40 pseudonymous facilities (``FAC-001`` … ``FAC-040``) in five countries (US,
  GB, DE, FR, IN) with skewed volumes, 2–5 operators each (``OP-nnnn``), a sub-national region per
  facility (US census regions, NHS regions, Länder, French regions, Indian states). The facility
  and operator register is fixed (built from its own constant seed), so ``FAC-017`` is the same
  hospital for every ``seed``; the records themselves come from ``seed``.
* **Patients.** Etiology, then age and sex given etiology, prevalent fractures, fracture age,
  number and position of the treated levels, pre-procedure kyphotic angle.
* **Confounding by indication.** Kyphoplasty (KP) is chosen more often for malignant fractures,
  more levels, larger kyphotic angles and older patients, and the choice varies strongly between
  countries (KP dominant in the US) and facilities (facility random effect).
* **Procedure.** Approach, anaesthesia, guidance, cement volume, duration (facility and operator
  random effects), care setting and length of stay, CPT code from procedure and index level
  (US records only: CPT is a US code).
* **Complications.** Cement leakage (logistic model: procedure, levels, cement volume per level,
  malignancy, CT guidance, calendar time, facility and operator random effects, and an odds ratio
  of 3 at :data:`ELEVATED_LEAKAGE_FACILITIES`), symptomatic leakage, pulmonary cement embolism,
  symptomatic embolism, infection, new neurological deficit.
* **Outcomes over time.** A visit schedule (day 1, week 1, months 1, 3, 6, 12, then yearly) with
  drop-out that grows with time, administrative censoring at the data cut-off (``end``) and death.
  ``followup_days`` is the last contact. Pain (0–10), ODI (0–100) and opioid use are recorded
  only at attended visits. New (adjacent) vertebral fractures follow a Weibull time-to-event
  model and are recorded only when they happen before the last contact; a new fracture raises
  pain at later visits. Deaths are recorded when they occur during follow-up or, where a
  country links to death registers, after it.
* **Repeat procedures.** About 5% of patients have a second procedure, for a new fracture next
  to the first treated segment, at the same facility: same ``patient_id``, new ``record_id``.
* **Calendar.** Procedure dates from ``start`` to ``end`` on weekdays mostly, with a winter peak,
  random quarter-to-quarter volume variation and gentle growth; the KP share rises and the
  leakage rate falls a little over time.
* **Costs** in local currency (USD, GBP, EUR, INR), right-skewed (log-normal), by country,
  procedure and setting, rising with levels and length of stay.
* **Missing data** at realistic rates, varying by facility (data quality).

Calibration table
-----------------
All parameters are in :data:`CALIBRATION` (:class:`DemoCalibration`), each with its source key.
Keys and tags are those of the project's clinical-evidence reference (§1 "Parameters for the
synthetic generator"; full citations of the keys used are in ``data/reference/demo_calibration.md``,
with target vs achieved values): [S] seen verbatim in the source, [D] derived from [S] numbers.
"Assumption" marks a value chosen for a realistic demo without a verified source (UNVERIFIED in
the evidence file); such values are targets of the demo only, never evidence.

===================================  ==========================  ==================================
Parameter                            Value                       Source
===================================  ==========================  ==================================
Age (years)                          ≈ N(75, 10), 50–98, top-    KAVIAR 75.6, EVANS 75.6 (10.0) [S];
                                     coded at 90                 by-etiology means: assumption
KP vs VP age                         KP ≈ 1.5 y older            NIS-Drazin KP 78.5 vs VP 76.7 [S]
Female                               75%                         AJNR-COST "approximately 75%" [S]
Sex X                                0.5%                        assumption
Etiology                             88 / 8 / 2.5 / 1.5%         NIS-HAFEZI 8% malignant [S];
                                     (osteo/malig/trauma/other)  trauma/other split: assumption
Malignancy type                      myeloma 40%, metastasis     UNVERIFIED split (CAFE cancers
                                     50%, other 10%              [S]): assumption
Prevalent fractures                  NB mean 2.0 (SD ≈ 1.7)      VERTOS II 2.4 (1.9) / 2.1 (1.5)
                                                                 [S, COCH-T]
Fracture age                         log-normal median 5 wk      VERTOS II 29 d [S]; practice
                                                                 6–12 wk (§1.1): assumption
Levels 1 / 2 / 3+                    75 / 18 / 7%                §1.2; FREE >1 level 24–26% [S]
Index level                          T11–L2 ≈ 62%                §1.2 split (assumption)
KP share, US                         76%                         NIS-LARATTA 19,420 KP / 6,130 VP
                                                                 (2014) [D]
KP share GB / DE / FR / IN           35 / 55 / 30 / 25%          assumption
Duration (min)                       VP N(32, 8), KP N(40, 9)    KAVIAR 31.8 vs 40.0 [S]
Cement per level (mL)                VP 3.5 (1.2), KP 4.5 (1.5)  §1.3; Venmans 3.3 ± 1.16 [S]
Outpatient (US)                      VP 36%, KP 46%              AJNR-COST [S]
Inpatient LOS                        median 3 (IQR 2–5) US       §1.3 (UNVERIFIED): assumption
Leakage per patient                  VP 35%, KP 18%              §1.4; ZHAN 54.7 vs 18.4% [S];
                                                                 JOSR18 RR 0.62 [S]
Leakage OR per mL per level          exp(0.41)                   ZHAN WMD 0.59 mL / 1.2² [D]
Leakage OR, elevated facilities      3 (FAC-009 GB, FAC-019 US)  demo design (quality monitoring)
Symptomatic leakage                  1.5% of leaks (≈0.4% of     canal leakage 0.7%, decompression
                                     patients)                   0.13% of patients [S]/[D]
Pulmonary cement embolism            VP 3%, KP 1.5%              Venmans 2.1% [S]; JOSR 2021 1.9%
                                                                 [S]; VP > KP direction
PCE OR, ≥ 3 levels                   2.41                        JOSR 2021 [S]
Symptomatic PCE                      8% of PCE (×2.5 if > 7 mL)  §1.5 0.1–0.5% of patients; JOSR
                                                                 2019 by volume [S]
New fracture by 12 months            VP 20%, KP 18%              §1.6; VERTOS II 15/91 [S]
Timing of new fractures              Weibull shape 0.97 (≈57%    DIR 2024 56.6% in year 1 [S]
                                     of 2-year events in year 1)
HR per prevalent fracture            1.43 (capped at 5)          VERTOS-II-NVF OR 1.43 [S]
Pain, 0–10 (baseline, d1, wk1/m1,    7.8 → 4.0 → 3.5 → 3.0 →     VERTOS II 7.8 [S]; EVANS 3 d,
m3/m6, m12)                          2.7                         30 d, 1 yr [S]
ODI baseline → m1 → m12              65 → 30 → 22                §1.7 suggested; China RCT 71 [S]
Opioid use baseline → month 1        60% → 30%                   assumption (UNVERIFIED)
Kyphotic angle correction            KP 5° (3), VP 2° (2)        PAPA 4.8° vs 1.7° [S]
Height restoration                   KP 16.5%, VP 5%             PMC2996621 KP 17.5% [S]; VP
                                                                 assumption
Mortality                            ≈ 7%/y osteoporotic, ≈ 23%/ brief 5–8%/y (assumption); KP vs
                                     y malignant; KP HR 0.77     VP HR 0.77 EDIDIN11 [S]
US cost inpatient                    VP $9,837, KP $13,187 mean  AJNR-COST [S]
US cost outpatient                   VP $3,319, KP $8,100 mean   AJNR-COST [S]
GB / DE / FR costs                   see CALIBRATION.cost_mean   assumption (SVEDBOM gives no
                                                                 procedure cost in the excerpt)
IN cost                              VP ₹247,500 inpatient       maxinhealth Rs 2,30,000–2,65,000
                                                                 [S, low reliability]
Repeat procedures                    5% of patients              assumption (brief)
===================================  ==========================  ==================================

Stated assumptions
------------------
* Every value marked "assumption" above, in particular: country mix (US 55%), non-US KP shares
  and care settings, LOS by country, all non-US costs, malignancy split, opioid rates, ODI
  collection (half the facilities), follow-up drop-out schedule, mortality level, infection rate.
* Published ORs are used as log-odds effects on the logit scale and, for new fractures, as
  hazard ratios (an approximation at a ~20% incidence).
* US costs are the 2007–08 AJNR-COST means (not inflation-adjusted), spread with +3%/year over the
  calendar period around the period midpoint.
* Marginal targets (KP share per country, leakage, embolism, 12-month new fracture, pain and ODI
  means, opioid rates, outpatient shares) are met by solving the intercept on the generated
  covariates (in-sample calibration), so they hold whatever the mix of covariates; covariate
  effects then act around those marginal values.
* The data cut-off is ``end`` (or today when ``end`` is later): no follow-up extends past it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr, ndtri

from data.dictionary import (
    FIELDS,
    FIELDS_BY_NAME,
    FIRST_PROCEDURE_DATE,
    PAIN_VISITS,
    SPINE_LEVELS,
)

__all__ = [
    "CALIBRATION",
    "COUNTRIES",
    "ELEVATED_LEAKAGE_FACILITIES",
    "ELEVATED_LEAKAGE_ODDS_RATIO",
    "DemoCalibration",
    "demo_records",
]

#: Countries of the demo facilities and their currencies.
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN")
CURRENCY_BY_COUNTRY: Mapping[str, str] = MappingProxyType(
    {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "IN": "INR"}
)

#: Facilities whose cement-leakage odds are multiplied by :data:`ELEVATED_LEAKAGE_ODDS_RATIO`
#: (a British and a US facility, both mid-to-high volume with a mixed VP/KP case mix). Quality-monitoring tests can check that they get flagged.
ELEVATED_LEAKAGE_FACILITIES: tuple[str, ...] = ("FAC-009", "FAC-019")
ELEVATED_LEAKAGE_ODDS_RATIO: float = 3.0

_FACILITY_SEED = 1_987  # fixed: the facility/operator register is the same for every seed

_ETIOLOGIES = ("osteoporotic", "malignant", "traumatic", "other")
_VP, _KP = 0, 1
_PROCEDURES = ("vertebroplasty", "kyphoplasty")
_LEVEL_POS = {name: i for i, name in enumerate(SPINE_LEVELS)}
_L5 = _LEVEL_POS["L5"]
_T10 = _LEVEL_POS["T10"]
_T12 = _LEVEL_POS["T12"]
_S1 = _LEVEL_POS["S1"]
_VISITS = tuple(PAIN_VISITS)  # day1, week1, month1, month3, month6, month12
_MAX_DAYS = int(FIELDS_BY_NAME["followup_days"].maximum)  # 7300: longest follow-up/event day


def _ro(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _const(mapping: Mapping) -> Callable[[], Mapping]:
    """default_factory for a read-only mapping field of the frozen calibration."""
    return lambda: _ro(mapping)


_field = dataclasses.field


@dataclasses.dataclass(frozen=True)
class DemoCalibration:
    """Every calibration constant of the demo generator, with its source key.

    Source keys and § numbers refer to the project's clinical-evidence reference (full citations
    in ``data/reference/demo_calibration.md``). Only [S] (seen in the source) and [D] (derived from [S]) figures are used as
    targets; everything else is marked as an assumption.
    """

    # ---------------------------------------------------------------- structure (assumptions)
    country_share: Mapping[str, float] = _field(default_factory=_const(
        {"US": 0.55, "GB": 0.13, "DE": 0.14, "FR": 0.10, "IN": 0.08}))  # assumption (brief)
    facilities_per_country: Mapping[str, int] = _field(default_factory=_const(
        {"US": 20, "GB": 6, "DE": 6, "FR": 4, "IN": 4}))  # assumption: 40 facilities
    facility_volume_sigma: float = 0.9  # assumption: log-normal spread of facility volumes
    operators_per_facility: tuple[int, int] = (2, 5)  # assumption (brief)
    us_region_share: Mapping[str, float] = _field(default_factory=_const(
        {"Northeast": 0.17, "Midwest": 0.21, "South": 0.38, "West": 0.24}))  # assumption (≈ census)
    repeat_patient_share: float = 0.05  # assumption (brief): patients with a second procedure
    repeat_delay_days: tuple[float, float, float] = (5.0, 2.0, 12.0)  # assumption: 5 + Gamma(2, 12)
    repeat_same_procedure: float = 0.6  # assumption: second procedure copies the first

    # ------------------------------------------------------------------ calendar (assumptions)
    weekday_weight: tuple[float, ...] = (1, 1, 1, 1, 1, 0.06, 0.03)  # assumption: Mon..Sun
    seasonal_amplitude: float = 0.12  # assumption: winter peak of osteoporotic fractures
    quarter_volume_sd: float = 0.10  # assumption: log-normal quarter-to-quarter variation
    annual_volume_growth: float = 0.04  # assumption

    # ---------------------------------------------------------------------- patients (§1.1)
    etiology_share: Mapping[str, float] = _field(default_factory=_const({
        "osteoporotic": 0.88,  # §1.1 suggested value
        "malignant": 0.08,  # NIS-HAFEZI [S]: 8% with a history of malignancy
        "traumatic": 0.025,  # assumption (no source for the trauma share)
        "other": 0.015,  # assumption
    }))
    malignancy_type_share: Mapping[str, float] = _field(default_factory=_const(
        {"myeloma": 0.40, "metastasis": 0.50, "other": 0.10}))  # UNVERIFIED split: assumption
    # Marginal ≈ 75 (SD ≈ 10): KAVIAR 75.6, EVANS 75.6 (10.0), FREE 73 [S]; split by etiology and
    # the +0.5 (ages are completed years, i.e. floored) are assumptions.
    age_mean: Mapping[str, float] = _field(default_factory=_const(
        {"osteoporotic": 76.5, "malignant": 68.5, "traumatic": 62.5, "other": 70.5}))
    age_sd: Mapping[str, float] = _field(default_factory=_const(
        {"osteoporotic": 10.0, "malignant": 10.5, "traumatic": 12.5, "other": 11.5}))
    age_truncation: tuple[float, float] = (50.0, 99.0)  # §1.1: 50–98 (German BKP range 35–98 [S])
    age_top_code: int = 90  # dictionary: ages > 89 recorded as 90 (HIPAA Safe Harbor)
    female_share: float = 0.75  # AJNR-COST [S] "approximately 75% were women"
    female_share_other: Mapping[str, float] = _field(default_factory=_const(
        {"malignant": 0.55, "traumatic": 0.50, "other": 0.60}))  # assumption
    sex_x_share: float = 0.005  # assumption (brief)
    # VERTOS II 2.4 (1.9) / 2.1 (1.5) [S, COCH-T]; non-osteoporotic means: assumption
    prior_fractures_mean: Mapping[str, float] = _field(default_factory=_const(
        {"osteoporotic": 2.0, "malignant": 1.0, "traumatic": 0.3, "other": 1.0}))
    prior_fractures_nb_size: float = 4.0  # NB size: SD ≈ 1.7 at mean 2 (VERTOS II SDs 1.5–1.9 [S])
    # VERTOS II symptom duration 29.3 d [S]; usual practice 6–12 weeks (§1.1): assumption
    fracture_age_median_weeks: float = 5.0
    fracture_age_sigma: float = 0.8
    # §1.2 suggested 75/18/7 (FREE: >1 level in 24–26% [S]); split by etiology: assumption.
    levels_share: Mapping[str, tuple[float, ...]] = _field(default_factory=_const({
        "osteoporotic": (0.765, 0.175, 0.06, 0.0),
        "malignant": (0.58, 0.22, 0.16, 0.04),
        "traumatic": (0.80, 0.15, 0.05, 0.0),
        "other": (0.80, 0.15, 0.05, 0.0),
    }))
    # §1.2 suggested split: T11 10%, T12 20%, L1 22%, L2 12%, T5–T10 20%, L3–L5 16% (exact shares
    # UNVERIFIED: assumption; T11–L2 dominance consistent with EVANS [S]). Malignant: wider.
    index_level_share: Mapping[str, Mapping[str, float]] = _field(default_factory=_const({
        "osteoporotic": _ro({"T4": 0.005, "T5": 0.02, "T6": 0.025, "T7": 0.035, "T8": 0.04,
                             "T9": 0.035, "T10": 0.04, "T11": 0.10, "T12": 0.20, "L1": 0.22,
                             "L2": 0.12, "L3": 0.07, "L4": 0.06, "L5": 0.03}),
        "malignant": _ro({"T1": 0.01, "T2": 0.015, "T3": 0.02, "T4": 0.03, "T5": 0.04,
                          "T6": 0.05, "T7": 0.06, "T8": 0.07, "T9": 0.07, "T10": 0.07,
                          "T11": 0.08, "T12": 0.11, "L1": 0.12, "L2": 0.08, "L3": 0.07,
                          "L4": 0.06, "L5": 0.035, "S1": 0.01}),
    }))
    # Kyphotic (wedge) angle before the procedure: no source in §1 (assumption).
    kyphosis_pre_mean: Mapping[str, float] = _field(default_factory=_const(
        {"osteoporotic": 14.0, "malignant": 12.0, "traumatic": 16.0, "other": 13.0}))
    kyphosis_pre_sd: float = 7.0  # assumption
    kyphosis_per_extra_level: float = 3.0  # assumption

    # ---------------------------------------------------------- procedure choice (confounding)
    kp_share: Mapping[str, float] = _field(default_factory=_const({
        "US": 0.76,  # NIS-LARATTA [D]: 19,420 KP / (19,420 + 6,130) in 2014
        "GB": 0.35, "DE": 0.55, "FR": 0.30, "IN": 0.25,  # assumption
    }))
    kp_facility_sd: float = 1.0  # assumption: "varies strongly by facility"
    kp_log_or_malignant: float = float(np.log(2.5))  # assumption (KP favoured in cancer, CAFE)
    kp_log_or_per_extra_level: float = float(np.log(1.4))  # assumption
    kp_log_or_per_kyphosis_degree: float = 0.04  # assumption
    kp_log_or_per_age_year: float = 0.03  # NIS-Drazin [S]: KP 78.5 vs VP 76.7 y (KP ≈ 1.8 y older)
    kp_log_or_per_year: float = 0.10  # assumption: KP share rising (VP fell faster, NIS-LARATTA)

    # ---------------------------------------------------------------- technique (§1.3)
    bipedicular_share: tuple[float, float] = (0.40, 0.75)  # assumption (VP, KP)
    bipedicular_facility_sd: float = 0.8  # assumption
    # anaesthesia local / sedation / general by (procedure, setting): assumption
    anesthesia_share: Mapping[tuple[int, int], tuple[float, float, float]] = _field(
        default_factory=_const({
            (_VP, 1): (0.40, 0.50, 0.10), (_KP, 1): (0.05, 0.60, 0.35),  # outpatient
            (_VP, 0): (0.20, 0.55, 0.25), (_KP, 0): (0.03, 0.37, 0.60),  # inpatient
        }))
    ct_facilities: int = 3  # assumption: CT-guided centres
    ct_share_ct_facility: float = 0.60  # assumption
    ct_share_other: float = 0.03  # assumption
    duration_mean: tuple[float, float] = (32.0, 40.0)  # KAVIAR [S]: 31.8 vs 40.0 min
    duration_sd: tuple[float, float] = (8.0, 9.0)  # §1.3 suggested (Wang 2018 SDs 3.3/4.2 [S])
    duration_per_extra_level: float = 10.0  # assumption
    duration_bipedicular: float = 6.0  # assumption (HV-PVP uni 41.2 vs bi 55.7 min [S], attenuated)
    duration_ct: float = 8.0  # assumption
    duration_facility_sd: float = 4.0  # assumption
    duration_operator_sd: float = 3.0  # assumption
    duration_min: float = 10.0  # assumption: floor
    cement_per_level_mean: tuple[float, float] = (3.5, 4.5)  # §1.3; Venmans 3.3 ± 1.16 mL [S]
    cement_per_level_sd: tuple[float, float] = (1.2, 1.5)  # §1.3 suggested
    cement_bipedicular_ratio: float = 1.3  # PVP uni 3.1 vs bi 5.0 mL [S] (ratio 1.6, attenuated)
    cement_facility_sigma: float = 0.10  # assumption

    # ---------------------------------------------------------------- setting and LOS (§1.3)
    outpatient_share: Mapping[tuple[str, int], float] = _field(default_factory=_const({
        ("US", _VP): 0.36, ("US", _KP): 0.46,  # AJNR-COST [S]: VP 36%, KP 46% outpatient
        ("GB", _VP): 0.55, ("GB", _KP): 0.50,  # assumption
        ("DE", _VP): 0.10, ("DE", _KP): 0.10,  # assumption
        ("FR", _VP): 0.30, ("FR", _KP): 0.25,  # assumption
        ("IN", _VP): 0.30, ("IN", _KP): 0.25,  # assumption
    }))
    outpatient_facility_sd: float = 0.8  # assumption
    outpatient_log_or_malignant: float = -0.7  # assumption
    outpatient_log_or_per_extra_level: float = -0.4  # assumption
    outpatient_log_or_per_age_year: float = -0.02  # assumption
    outpatient_overnight_share: float = 0.35  # assumption: 23-hour stays recorded as 1 day
    los_median_days: float = 3.1  # §1.3 median 3 (IQR 2–5), UNVERIFIED: assumption
    los_sigma: float = 0.62  # assumption: gives IQR ≈ 2–5 after rounding
    los_country_ratio: Mapping[str, float] = _field(default_factory=_const(
        {"US": 1.0, "GB": 1.2, "DE": 2.0, "FR": 1.5, "IN": 1.0}))  # assumption
    los_ratio_malignant: float = 1.4  # assumption
    los_ratio_per_extra_level: float = 0.15  # assumption

    # -------------------------------------------------------------- complications (§1.4–1.5)
    leakage: tuple[float, float] = (0.35, 0.18)  # §1.4 (ZHAN VP 54.7 / KP 18.4% [S]; RCT VP 34–52%)
    leakage_log_or_per_extra_level: float = float(np.log(1.6))  # assumption
    leakage_log_or_per_ml: float = 0.41  # ZHAN [D]: WMD 0.59 mL / SD² (1.2²) per mL per level
    leakage_log_or_malignant: float = float(np.log(1.65))  # assumption (cortical disruption OR 5.56 [S])
    leakage_log_or_ct: float = float(np.log(0.75))  # assumption
    leakage_log_or_per_year: float = -0.06  # assumption (high-viscosity cement RR 0.38 [S])
    leakage_facility_sd: float = 0.15  # assumption: modest between-facility variation
    leakage_operator_sd: float = 0.15  # assumption
    random_effect_clip_sd: float = 2.0  # assumption: leakage random effects cut at ±2 SD
    symptomatic_leakage_given_leakage: float = 0.015  # canal 0.7%, surgery 0.13% of pts [S]/[D]
    deficit_given_symptomatic_leakage: float = 0.30  # assumption
    deficit_other: float = 0.0005  # assumption
    embolism: tuple[float, float] = (0.03, 0.015)  # §1.5: Venmans 2.1%, JOSR 2021 1.9% [S]; VP > KP
    embolism_log_or_3plus_levels: float = float(np.log(2.41))  # JOSR 2021 [S]: ≥ 3 levels OR 2.41
    embolism_log_or_thoracic: float = float(np.log(1.5))  # assumption (thoracic > TL, p=.001 [S])
    embolism_log_or_leakage: float = float(np.log(2.5))  # assumption
    embolism_log_or_per_ml: float = 0.22  # Venmans [D]: 3.6 vs 3.3 mL, SD 1.16
    symptomatic_embolism_given_embolism: float = 0.08  # Luetmer 1/23 [D]; §1.5 0.1–0.5% of pts
    symptomatic_embolism_ratio_over_7ml: float = 2.5  # JOSR 2019 [S]: 0.11% (3.5–7) vs 0.9% (>7)
    infection: float = 0.003  # assumption (no source in §1)
    infection_ratio_malignant: float = 2.0  # assumption

    # ------------------------------------------------------------- radiographic (§1.8)
    kyphosis_correction_mean: tuple[float, float] = (2.0, 5.0)  # PAPA [S]: VP 1.7°, KP 4.8°
    kyphosis_correction_sd: tuple[float, float] = (2.0, 3.0)  # §1.8 suggested
    height_restoration_mean: tuple[float, float] = (5.0, 16.5)  # KP 17.5% [S, PMC2996621]; VP assum.
    height_restoration_sd: tuple[float, float] = (6.0, 9.0)  # assumption

    # --------------------------------------------------------------- new fractures (§1.6)
    new_fracture_12m: tuple[float, float] = (0.20, 0.18)  # §1.6 suggested (VERTOS II 15/91 [S])
    new_fracture_weibull_shape: float = 0.97  # DIR 2024 [S]: 56.6% of new fractures in year 1
    new_fracture_log_hr_per_prior: float = float(np.log(1.43))  # VERTOS-II-NVF [S] OR 1.43
    new_fracture_prior_cap: int = 5  # assumption: the effect is capped at 5 prevalent fractures
    new_fracture_log_hr_per_age_year: float = float(np.log(2.48) / 30)  # PMC6911304 OR 2.48 [S]
    new_fracture_log_hr_malignant: float = float(np.log(1.5))  # assumption
    pain_after_new_fracture: float = 1.0  # assumption: NRS points added at later visits

    # ------------------------------------------------------------------ mortality (§1.9)
    death_rate_per_year: float = 0.04  # assumption (brief 5–8%/y): osteoporotic woman, 75, VP
    death_log_hr_per_age_year: float = float(np.log(1.07))  # assumption (Gompertz-like)
    death_log_hr_male: float = float(np.log(1.5))  # assumption
    death_log_hr_malignant: float = float(np.log(5.0))  # assumption
    death_log_hr_kp: float = float(np.log(0.77))  # EDIDIN11 [S]: KP vs VP HR 0.77 (registry)
    early_death_30d: tuple[float, float] = (0.003, 0.02)  # assumption (non-malignant, malignant);
    # NIS in-hospital mortality ≤ 1.2% by region [S, NIS-HAFEZI]
    death_linkage: Mapping[str, float] = _field(default_factory=_const(
        {"US": 0.4, "GB": 0.9, "DE": 0.7, "FR": 0.8, "IN": 0.1}))  # assumption

    # ---------------------------------------------------------------- follow-up (assumption)
    # P(last attended visit): none, day 1, week 1, month 1, 3, 6, 12, year 2, year 3, all.
    dropout_last_visit: tuple[float, ...] = (
        0.02, 0.04, 0.06, 0.12, 0.08, 0.13, 0.15, 0.12, 0.10, 0.18)
    retention_facility_sd: float = 0.5  # assumption
    retention_country: Mapping[str, float] = _field(default_factory=_const(
        {"US": 0.0, "GB": 0.2, "DE": 0.1, "FR": 0.0, "IN": -0.6}))  # assumption

    # ---------------------------------------------------------------- pain and function (§1.7)
    # baseline 7.8 (1.6): VERTOS II 7.8 (1.5) [S]; day 1–3 4.0 (2.8): EVANS 3 d 4.1/3.7 [S];
    # 1 wk/1 mo 3.5 (2.7): EVANS 30 d 3.4/3.6 [S]; 3–6 mo 3.0 (2.6) §1.7; 12 mo 2.7 (2.7):
    # EVANS 1 yr KP 3.0, VP 2.3 [S]. No direct KP/VP effect (JOSR18 VAS WMD 0.04 [S]).
    pain_mean: Mapping[str, float] = _field(default_factory=_const({
        "baseline": 7.8, "day1": 4.0, "week1": 3.5, "month1": 3.5, "month3": 3.0,
        "month6": 3.0, "month12": 2.7}))
    pain_sd: Mapping[str, float] = _field(default_factory=_const({
        "baseline": 1.6, "day1": 2.8, "week1": 2.7, "month1": 2.7, "month3": 2.6,
        "month6": 2.6, "month12": 2.7}))
    pain_baseline_slope: float = 0.35  # assumption: follow-up pain tracks baseline pain
    pain_patient_sd: float = 2.1  # assumption: patient-level response heterogeneity
    pain_non_responder_share: float = 0.15  # assumption: pain stays near baseline
    pain_malignant_shift: float = 0.5  # assumption
    pain_integer_facility_share: float = 0.6  # assumption: NRS integers vs VAS one decimal
    # ODI %: §1.7 suggested 65 (15) → 30 (12) → 22 (10); China RCT baseline 71.2 [S, COCH-T]
    odi_mean: Mapping[str, float] = _field(default_factory=_const(
        {"baseline": 65.0, "month1": 30.0, "month12": 22.0}))
    odi_sd: Mapping[str, float] = _field(default_factory=_const(
        {"baseline": 15.0, "month1": 12.0, "month12": 10.0}))
    odi_pain_correlation: float = 0.55  # assumption
    odi_facility_share: float = 0.5  # assumption: facilities that collect ODI
    opioid: Mapping[str, float] = _field(default_factory=_const(
        {"baseline": 0.60, "month1": 0.30}))  # assumption (UNVERIFIED)
    opioid_log_or_per_pain_point: float = 0.35  # assumption
    opioid_log_or_malignant: float = 0.8  # assumption
    opioid_log_or_baseline_use: float = 1.8  # assumption

    # ---------------------------------------------------------------------- costs (§1.10)
    # mean cost by (country, procedure, outpatient) in local currency.
    cost_mean: Mapping[tuple[str, int, bool], float] = _field(default_factory=_const({
        ("US", _VP, False): 9_837.0, ("US", _KP, False): 13_187.0,  # AJNR-COST [S] inpatient
        ("US", _VP, True): 3_319.0, ("US", _KP, True): 8_100.0,  # AJNR-COST [S] outpatient
        ("GB", _VP, False): 4_600.0, ("GB", _KP, False): 6_500.0,  # assumption (GBP)
        ("GB", _VP, True): 2_400.0, ("GB", _KP, True): 4_300.0,  # assumption (GBP)
        ("DE", _VP, False): 4_800.0, ("DE", _KP, False): 6_900.0,  # assumption (EUR)
        ("DE", _VP, True): 2_200.0, ("DE", _KP, True): 3_800.0,  # assumption (EUR)
        ("FR", _VP, False): 4_200.0, ("FR", _KP, False): 6_000.0,  # assumption (EUR)
        ("FR", _VP, True): 1_900.0, ("FR", _KP, True): 3_500.0,  # assumption (EUR)
        # maxinhealth VP Rs 2,30,000–2,65,000 [S, low reliability] (midpoint, inpatient);
        # KP ×1.35 and outpatient ×0.85: assumption
        ("IN", _VP, False): 247_500.0, ("IN", _KP, False): 334_000.0,
        ("IN", _VP, True): 210_000.0, ("IN", _KP, True): 284_000.0,
    }))
    cost_cv: float = 0.45  # assumption: right skew (log-normal)
    cost_per_extra_level: float = 0.25  # assumption (MPFS add-on/first level 0.42 VP, 0.51 KP [D])
    cost_los_elasticity: float = 0.35  # assumption (inpatients)
    cost_facility_sigma: float = 0.20  # assumption
    cost_inflation_per_year: float = 0.03  # assumption

    # ---------------------------------------------------------------- missing data (assumption)
    missing: Mapping[str, float] = _field(default_factory=_const({
        "operator_id": 0.03, "region": 0.02, "malignancy_type": 0.10, "cpt_code": 0.03,
        "index_level": 0.03, "fracture_age_weeks": 0.20, "prior_fractures": 0.15,
        "approach": 0.10, "anesthesia": 0.08, "guidance": 0.06, "cement_volume_ml": 0.08,
        "duration_min": 0.05, "setting": 0.02, "length_of_stay_days": 0.04, "pain_visit": 0.04,
        "odi": 0.15, "opioid_baseline": 0.10, "opioid_month1": 0.10,
        "leakage_symptomatic": 0.05, "embolism_symptomatic": 0.05, "infection": 0.03,
        "new_neurologic_deficit": 0.03, "kyphotic_angle": 0.30, "kyphotic_angle_post": 0.05,
        "height_restoration_pct": 0.35, "cost": 0.05, "currency_without_cost": 0.5,
    }))
    missing_facility_sigma: float = 0.45  # assumption: data quality varies by facility


#: The calibration used by :func:`demo_records`.
CALIBRATION = DemoCalibration()


# ------------------------------------------------------------------------ facility register
_REGIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "US": ("Northeast", "Midwest", "South", "West"),
    "GB": ("London", "South East", "South West", "East of England", "Midlands",
           "North East and Yorkshire", "North West", "Scotland", "Wales"),
    "DE": ("Bayern", "Baden-Württemberg", "Nordrhein-Westfalen", "Niedersachsen", "Hessen",
           "Berlin", "Sachsen", "Hamburg"),
    "FR": ("Île-de-France", "Auvergne-Rhône-Alpes", "Occitanie", "Nouvelle-Aquitaine",
           "Provence-Alpes-Côte d'Azur", "Hauts-de-France", "Grand Est", "Bretagne"),
    "IN": ("Maharashtra", "Delhi", "Karnataka", "Tamil Nadu", "Telangana", "Kerala",
           "West Bengal", "Gujarat"),
})


@dataclasses.dataclass(frozen=True)
class _Register:
    """The fixed facility and operator register (index i is facility ``FAC-{i+1:03d}``)."""

    ids: np.ndarray
    country: np.ndarray
    region: np.ndarray
    weight: np.ndarray
    kp_re: np.ndarray
    outpatient_re: np.ndarray
    leak_re: np.ndarray
    duration_re: np.ndarray
    bipedicular_re: np.ndarray
    cement_mult: np.ndarray
    ct_share: np.ndarray
    integer_pain: np.ndarray
    collects_odi: np.ndarray
    quality: np.ndarray
    dropout_cdf: np.ndarray
    cost_mult: np.ndarray
    op_ids: np.ndarray
    op_start: np.ndarray
    op_count: np.ndarray
    op_cdf: np.ndarray
    op_leak_re: np.ndarray
    op_duration_re: np.ndarray


@functools.lru_cache(maxsize=1)
def _register() -> _Register:
    c = CALIBRATION
    rng = np.random.default_rng(_FACILITY_SEED)
    country = np.concatenate([np.full(c.facilities_per_country[code], k)
                              for k, code in enumerate(COUNTRIES)])
    n_fac = country.size
    order = rng.permutation(n_fac)  # facility ids do not reveal the country
    country = country[order]
    raw = rng.lognormal(0.0, c.facility_volume_sigma, n_fac)
    weight = np.empty(n_fac)
    region = np.empty(n_fac, dtype=object)
    for k, code in enumerate(COUNTRIES):
        in_country = country == k
        weight[in_country] = raw[in_country] / raw[in_country].sum() * c.country_share[code]
        names = _REGIONS[code]
        p = (np.array([c.us_region_share[r] for r in names]) if code == "US"
             else np.full(len(names), 1.0 / len(names)))
        region[in_country] = rng.choice(np.array(names, dtype=object), size=in_country.sum(), p=p)
    weight /= weight.sum()
    ids = np.array([f"FAC-{i + 1:03d}" for i in range(n_fac)], dtype=object)
    elevated = np.isin(ids, ELEVATED_LEAKAGE_FACILITIES)
    clip = c.random_effect_clip_sd
    leak_re = c.leakage_facility_sd * np.clip(rng.standard_normal(n_fac), -clip, clip)
    leak_re = np.where(elevated, np.log(ELEVATED_LEAKAGE_ODDS_RATIO), leak_re)
    ct_share = np.full(n_fac, c.ct_share_other)
    ct_share[rng.choice(n_fac, size=c.ct_facilities, replace=False)] = c.ct_share_ct_facility
    quality = rng.lognormal(0.0, c.missing_facility_sigma, n_fac)
    quality /= np.average(quality, weights=weight)
    retention = rng.normal(0.0, c.retention_facility_sd, n_fac) + np.array(
        [c.retention_country[COUNTRIES[k]] for k in country])
    base = np.asarray(c.dropout_last_visit)
    slope = (np.arange(base.size) - (base.size - 1) / 2) / ((base.size - 1) / 2)
    tilted = base[None, :] * np.exp(retention[:, None] * slope[None, :])
    dropout_cdf = np.cumsum(tilted / tilted.sum(axis=1, keepdims=True), axis=1)
    # Operators: 2–5 per facility, more in busier facilities.
    lo, hi = c.operators_per_facility
    rank = np.argsort(np.argsort(weight)) / max(n_fac - 1, 1)
    op_count = np.clip(lo + np.floor(rank * (hi - lo + 1)).astype(int), lo, hi)
    op_start = np.concatenate([[0], np.cumsum(op_count)[:-1]])
    numbers = rng.choice(np.arange(100, 10_000), size=op_count.sum(), replace=False)
    op_ids = np.array([f"OP-{k:04d}" for k in numbers], dtype=object)
    op_cdf = np.ones((n_fac, hi))
    for i in range(n_fac):
        share = rng.dirichlet(np.full(op_count[i], 2.0))
        op_cdf[i, : op_count[i]] = np.cumsum(share)
        op_cdf[i, op_count[i] - 1:] = 1.0
    return _Register(
        ids=ids, country=country, region=region, weight=weight,
        kp_re=rng.normal(0.0, c.kp_facility_sd, n_fac),
        outpatient_re=rng.normal(0.0, c.outpatient_facility_sd, n_fac),
        leak_re=leak_re,
        duration_re=rng.normal(0.0, c.duration_facility_sd, n_fac),
        bipedicular_re=rng.normal(0.0, c.bipedicular_facility_sd, n_fac),
        cement_mult=rng.lognormal(0.0, c.cement_facility_sigma, n_fac),
        ct_share=ct_share,
        integer_pain=rng.random(n_fac) < c.pain_integer_facility_share,
        collects_odi=rng.random(n_fac) < c.odi_facility_share,
        quality=quality, dropout_cdf=dropout_cdf,
        cost_mult=rng.lognormal(0.0, c.cost_facility_sigma, n_fac),
        op_ids=op_ids, op_start=op_start, op_count=op_count, op_cdf=op_cdf,
        op_leak_re=c.leakage_operator_sd * np.clip(rng.standard_normal(op_count.sum()), -clip, clip),
        op_duration_re=rng.normal(0.0, c.duration_operator_sd, op_count.sum()),
    )


# ------------------------------------------------------------------- in-sample calibration
def _bisect(gap: Callable[[float], float], lo: float, hi: float, iterations: int = 48) -> float:
    """Root of an increasing function on [lo, hi] (clamped to the bracket)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if gap(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class _Calibrator:
    """Solves intercepts so that marginal rates and means hit their targets.

    Values are solved on the first batch of records that has members of a group (at most
    ``_SUBSAMPLE`` of them, which are a random sample since records are exchangeable) and then
    reused for later batches (the repeat procedures), so all records share one model.
    """

    _SUBSAMPLE = 200_000

    def __init__(self) -> None:
        self.cache: dict[tuple, float] = {}

    def _solve(self, key: tuple, mask: np.ndarray, solver: Callable[[np.ndarray], float],
               default: float) -> float:
        if key not in self.cache:
            rows = np.flatnonzero(mask)[: self._SUBSAMPLE]
            if rows.size == 0:
                return default
            self.cache[key] = solver(rows)
        return self.cache[key]

    def logit(self, key: str, lin: np.ndarray, target: float, mask: np.ndarray) -> float:
        """Intercept ``a`` with mean(expit(a + lin[mask])) = target."""
        def solve(rows: np.ndarray) -> float:
            x = lin[rows]
            return _bisect(lambda a: float(expit(a + x).mean()) - target, -40.0, 40.0)
        return self._solve((key, "logit", target), mask, solve, float(logit(target)))

    def shift(self, key: str, x: np.ndarray, target: float, lo: float, hi: float,
              mask: np.ndarray, movable: np.ndarray | None = None) -> float:
        """Shift ``d`` with mean(clip(x + d·movable, lo, hi)) = target over ``mask``."""
        def solve(rows: np.ndarray) -> float:
            v = x[rows]
            m = np.ones(rows.size) if movable is None else movable[rows].astype(float)
            return _bisect(lambda d: float(np.clip(v + d * m, lo, hi).mean()) - target,
                           -5.0 * (hi - lo), 5.0 * (hi - lo))
        return self._solve((key, "shift", target), mask, solve, 0.0)

    def cumulative_hazard(self, key: str, lin: np.ndarray, base: float, target: float,
                          mask: np.ndarray) -> float:
        """log-scale ``s`` with mean(1 - exp(-exp(s + lin) · base)) = target."""
        def solve(rows: np.ndarray) -> float:
            x = lin[rows]
            return _bisect(lambda s: float((-np.expm1(-np.exp(s + x) * base)).mean()) - target,
                           -60.0, 20.0)
        return self._solve((key, "hazard", target), mask, solve, 0.0)

    def mean(self, key: tuple, values: np.ndarray, mask: np.ndarray) -> float:
        return self._solve(("mean", *key), mask, lambda rows: float(values[rows].mean()), 1.0)


# ------------------------------------------------------------------------------ helpers
def _draw_by_group(rng: np.random.Generator, group: np.ndarray,
                   table: np.ndarray) -> np.ndarray:
    """One categorical draw per record from the probability row of its group."""
    u = rng.random(group.size)
    out = np.zeros(group.size, dtype=np.int64)
    cdf = np.cumsum(table, axis=1)
    cdf /= cdf[:, -1:]
    for g in range(table.shape[0]):
        rows = group == g
        if rows.any():
            out[rows] = np.minimum(np.searchsorted(cdf[g], u[rows], side="right"),
                                   table.shape[1] - 1)
    return out


def _truncated_normal(rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray,
                      lo: float, hi: float) -> np.ndarray:
    a, b = ndtr((lo - mean) / sd), ndtr((hi - mean) / sd)
    u = a + rng.random(mean.size) * (b - a)
    return np.clip(mean + sd * ndtri(u), lo, hi - 1e-9)


def _per_etiology(mapping: Mapping[str, float]) -> np.ndarray:
    return np.array([mapping[e] for e in _ETIOLOGIES], dtype=float)


def _level_table() -> np.ndarray:
    c = CALIBRATION
    rows = []
    for etiology in _ETIOLOGIES:
        shares = c.index_level_share.get(etiology, c.index_level_share["osteoporotic"])
        rows.append([shares.get(level, 0.0) for level in SPINE_LEVELS])
    return np.array(rows)


@dataclasses.dataclass(frozen=True)
class _Context:
    start_day: int
    cutoff_day: int
    mid_day: float
    n_visits: int


# ----------------------------------------------------------------------- patients and dates
def _draw_dates(rng: np.random.Generator, n: int, ctx: _Context) -> np.ndarray:
    c = CALIBRATION
    days = np.arange(ctx.start_day, ctx.cutoff_day + 1)
    dates = days.astype("datetime64[D]")
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    doy = (dates - dates.astype("datetime64[Y]")).astype(int)
    quarter = (dates.astype("datetime64[M]").astype(int)) // 3
    quarter_noise = rng.lognormal(0.0, c.quarter_volume_sd, quarter.max() - quarter.min() + 1)
    years = (days - ctx.mid_day) / 365.25
    weight = (np.asarray(c.weekday_weight)[weekday]
              * (1 + c.seasonal_amplitude * np.cos(2 * np.pi * (doy - 20) / 365.25))
              * quarter_noise[quarter - quarter.min()]
              * (1 + c.annual_volume_growth) ** years)
    return rng.choice(days, size=n, p=weight / weight.sum())


def _draw_patients(rng: np.random.Generator, n: int, reg: _Register,
                   ctx: _Context) -> dict[str, np.ndarray]:
    """Facility, date and patient characteristics of ``n`` first procedures."""
    c = CALIBRATION
    fac = rng.choice(reg.ids.size, size=n, p=reg.weight)
    day = _draw_dates(rng, n, ctx)
    etio = rng.choice(4, size=n, p=_per_etiology(c.etiology_share))
    malig_type = np.where(etio == 1, rng.choice(3, size=n, p=[
        c.malignancy_type_share[k] for k in ("myeloma", "metastasis", "other")]), -1)
    age_x = _truncated_normal(rng, _per_etiology(c.age_mean)[etio], _per_etiology(c.age_sd)[etio],
                              *c.age_truncation)
    # Female share of osteoporotic patients so that the marginal is c.female_share.
    others = sum(c.etiology_share[e] * c.female_share_other[e] for e in _ETIOLOGIES[1:])
    female_osteo = (c.female_share - others) / c.etiology_share["osteoporotic"]
    p_female = np.array([female_osteo] + [c.female_share_other[e] for e in _ETIOLOGIES[1:]])
    u = rng.random(n)
    sex = np.where(u < c.sex_x_share, 2,
                   np.where(u < c.sex_x_share + (1 - c.sex_x_share) * p_female[etio], 0, 1))
    mean_prior = _per_etiology(c.prior_fractures_mean)[etio]
    size = c.prior_fractures_nb_size
    prior = np.minimum(rng.negative_binomial(size, size / (size + mean_prior)), 20)
    fracture_age = rng.lognormal(np.log(c.fracture_age_median_weeks), c.fracture_age_sigma, n)
    link = rng.random(n) < np.array([c.death_linkage[code] for code in COUNTRIES])[reg.country[fac]]
    return {
        "fac": fac, "day": day, "etio": etio, "malig_type": malig_type, "age_x": age_x,
        "sex": sex, "prior": prior.astype(float), "fracture_age": np.minimum(fracture_age, 520.0),
        "link": link,
    }


# ---------------------------------------------------------------------- one batch of records
def _simulate(rng: np.random.Generator, cov: dict[str, np.ndarray], reg: _Register,
              cal: _Calibrator, ctx: _Context) -> dict[str, np.ndarray]:
    """Procedure, complications, follow-up and outcomes for given patients (vectorised)."""
    c = CALIBRATION
    n = cov["fac"].size
    f = cov["fac"]
    country = reg.country[f]
    etio = cov["etio"]
    malig = (etio == 1).astype(float)
    age_x = cov["age_x"]
    years = (cov["day"] - ctx.mid_day) / 365.25
    out: dict[str, np.ndarray] = {}

    # Levels and the index (most proximal) level; the treated segment must fit above S1.
    levels_table = np.array([c.levels_share[e] for e in _ETIOLOGIES])
    levels = 1 + _draw_by_group(rng, etio, levels_table)
    pos = cov["index_pos"] if "index_pos" in cov else _draw_by_group(rng, etio, _level_table())
    pos = np.where(levels > 1, np.minimum(pos, _L5 - (levels - 1)), pos)
    extra = levels - 1.0
    kyph_pre = np.clip(_per_etiology(c.kyphosis_pre_mean)[etio]
                       + c.kyphosis_per_extra_level * extra
                       + c.kyphosis_pre_sd * rng.standard_normal(n), -10.0, 60.0)

    # Procedure choice: confounding by indication, country, facility and calendar time.
    lin = (reg.kp_re[f] + c.kp_log_or_malignant * malig + c.kp_log_or_per_extra_level * extra
           + c.kp_log_or_per_kyphosis_degree * (kyph_pre - 14.0)
           + c.kp_log_or_per_age_year * (age_x - 75.0) + c.kp_log_or_per_year * years)
    intercept = np.zeros(n)
    for k, code in enumerate(COUNTRIES):
        rows = country == k
        intercept[rows] = cal.logit(f"kp_{code}", lin, c.kp_share[code], rows)
    kp = rng.random(n) < expit(intercept + lin)
    if "proc_forced" in cov:
        kp = np.where(cov["proc_forced"] >= 0, cov["proc_forced"] == _KP, kp)
    proc = kp.astype(np.int64)

    # Operator within facility.
    u = rng.random(n)
    j = (u[:, None] > reg.op_cdf[f]).sum(axis=1)
    op = reg.op_start[f] + np.minimum(j, reg.op_count[f] - 1)

    # Care setting and length of stay.
    lin = (reg.outpatient_re[f] + c.outpatient_log_or_malignant * malig
           + c.outpatient_log_or_per_extra_level * extra
           + c.outpatient_log_or_per_age_year * (age_x - 75.0))
    intercept = np.zeros(n)
    for k, code in enumerate(COUNTRIES):
        for p in (_VP, _KP):
            rows = (country == k) & (proc == p)
            intercept[rows] = cal.logit(f"out_{code}_{p}", lin, c.outpatient_share[(code, p)],
                                        rows)
    outpatient = rng.random(n) < expit(intercept + lin)
    los_ratio = (np.array([c.los_country_ratio[code] for code in COUNTRIES])[country]
                 * np.where(malig > 0, c.los_ratio_malignant, 1.0)
                 * (1 + c.los_ratio_per_extra_level * extra))
    los_in = np.maximum(1.0, np.round(rng.lognormal(np.log(c.los_median_days * los_ratio),
                                                    c.los_sigma)))
    los = np.where(outpatient, (rng.random(n) < c.outpatient_overnight_share).astype(float),
                   np.minimum(los_in, 90.0))

    # Technique.
    p_bi = expit(logit(np.asarray(c.bipedicular_share))[proc] + reg.bipedicular_re[f])
    bipedicular = rng.random(n) < p_bi
    anesthesia = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for p in (_VP, _KP):
        for o in (0, 1):
            rows = (proc == p) & (outpatient == o)
            cdf = np.cumsum(c.anesthesia_share[(p, o)])
            anesthesia[rows] = np.minimum(np.searchsorted(cdf, u[rows], side="right"), 2)
    ct = rng.random(n) < reg.ct_share[f]

    # Cement volume: sum of per-level Gamma volumes, scaled by approach and facility (mean kept).
    mean_pl = np.asarray(c.cement_per_level_mean)[proc]
    sd_pl = np.asarray(c.cement_per_level_sd)[proc]
    shape, scale = (mean_pl / sd_pl) ** 2, sd_pl**2 / mean_pl
    factor = reg.cement_mult[f] * np.where(bipedicular, c.cement_bipedicular_ratio, 1.0)
    for p in (_VP, _KP):
        rows = proc == p
        factor[rows] /= cal.mean(("cement", p), factor, rows)
    cement = np.clip(rng.gamma(shape * levels, scale) * factor, 0.5, 60.0)
    per_level = cement / levels

    # Duration: effects centred within procedure; residual SD keeps the total SD on target.
    effects = (c.duration_per_extra_level * extra + c.duration_bipedicular * bipedicular
               + c.duration_ct * ct + reg.duration_re[f] + reg.op_duration_re[op])
    duration = np.empty(n)
    for p in (_VP, _KP):
        rows = proc == p
        centre = cal.mean(("duration", p), effects, rows)
        spread = cal.mean(("duration_var", p), (effects - centre) ** 2, rows)
        resid_sd = np.sqrt(max(c.duration_sd[p] ** 2 - spread, 9.0))
        duration[rows] = (c.duration_mean[p] + effects[rows] - centre
                          + resid_sd * rng.standard_normal(rows.sum()))
    duration = np.clip(np.round(duration), c.duration_min, 600.0)

    # Cement leakage.
    lin = (reg.leak_re[f] + reg.op_leak_re[op] + c.leakage_log_or_per_extra_level * extra
           + c.leakage_log_or_per_ml * (per_level - mean_pl) + c.leakage_log_or_malignant * malig
           + c.leakage_log_or_ct * ct + c.leakage_log_or_per_year * years)
    intercept = np.zeros(n)
    for p in (_VP, _KP):
        rows = proc == p
        intercept[rows] = cal.logit(f"leak_{p}", lin, c.leakage[p], rows)
    leak = rng.random(n) < expit(intercept + lin)
    leak_sympt = leak & (rng.random(n) < c.symptomatic_leakage_given_leakage)
    deficit = rng.random(n) < np.where(leak_sympt, c.deficit_given_symptomatic_leakage,
                                       c.deficit_other)

    # Pulmonary cement embolism.
    lin = (c.embolism_log_or_3plus_levels * (levels >= 3) + c.embolism_log_or_thoracic
           * (pos <= _T10) + c.embolism_log_or_leakage * leak
           + c.embolism_log_or_per_ml * (per_level - mean_pl))
    intercept = np.zeros(n)
    for p in (_VP, _KP):
        rows = proc == p
        intercept[rows] = cal.logit(f"pce_{p}", lin, c.embolism[p], rows)
    pce = rng.random(n) < expit(intercept + lin)
    p_sympt = c.symptomatic_embolism_given_embolism * np.where(
        cement > 7.0, c.symptomatic_embolism_ratio_over_7ml, 1.0)
    pce_sympt = pce & (rng.random(n) < p_sympt)
    infection = rng.random(n) < c.infection * np.where(malig > 0, c.infection_ratio_malignant, 1)

    # Radiographic correction.
    correction = (np.asarray(c.kyphosis_correction_mean)[proc]
                  + np.asarray(c.kyphosis_correction_sd)[proc] * rng.standard_normal(n))
    kyph_post = np.clip(kyph_pre - correction, -30.0, 90.0)
    height = np.clip(np.asarray(c.height_restoration_mean)[proc]
                     + np.asarray(c.height_restoration_sd)[proc] * rng.standard_normal(n),
                     -100.0, 200.0)

    # Death (latent time in days, patient-level for repeat procedures).
    if "t_death" in cov:
        t_death = cov["t_death"]
    else:
        male = (cov["sex"] == 1).astype(float)
        rate = (c.death_rate_per_year / 365.25) * np.exp(
            c.death_log_hr_per_age_year * (age_x - 75.0) + c.death_log_hr_male * male
            + c.death_log_hr_malignant * malig + c.death_log_hr_kp * kp)
        t_death = rng.exponential(1.0, n) / rate
        early = rng.random(n) < np.asarray(c.early_death_30d)[(etio == 1).astype(np.int64)]
        t_death = np.where(early, np.minimum(t_death, rng.uniform(0.0, 30.0, n)), t_death)

    # New (adjacent) fracture: Weibull, calibrated to the 12-month incidence per procedure.
    k_shape = c.new_fracture_weibull_shape
    lin = (c.new_fracture_log_hr_per_prior * np.minimum(cov["prior"], c.new_fracture_prior_cap)
           + c.new_fracture_log_hr_per_age_year * (age_x - 75.0)
           + c.new_fracture_log_hr_malignant * malig)
    log_scale = np.zeros(n)
    for p in (_VP, _KP):
        rows = proc == p
        log_scale[rows] = cal.cumulative_hazard(f"fracture_{p}", lin, 365.0**k_shape,
                                                c.new_fracture_12m[p], rows)
    t_fracture = (rng.exponential(1.0, n) / np.exp(log_scale + lin)) ** (1.0 / k_shape)

    # Follow-up: visit schedule, drop-out, administrative censoring, death.
    visit_day = np.empty((n, ctx.n_visits), dtype=np.int64)
    visit_day[:, 0] = rng.integers(1, 3, n)
    visit_day[:, 1] = rng.integers(5, 11, n)
    for col, (mean, sd, lo, hi) in enumerate(
            [(32, 6, 21, 50), (92, 10, 70, 120), (183, 14, 150, 230), (368, 20, 320, 430)],
            start=2):
        visit_day[:, col] = np.clip(np.round(rng.normal(mean, sd, n)), lo, hi)
    for col in range(6, ctx.n_visits):
        visit_day[:, col] = 365 * (col - 4) + np.clip(np.round(rng.normal(0, 25, n)), -60, 60)
    category = (rng.random(n)[:, None] > reg.dropout_cdf[f]).sum(axis=1)
    last_planned = np.where(category >= len(c.dropout_last_visit) - 1, ctx.n_visits - 1,
                            np.minimum(category - 1, ctx.n_visits - 1))
    available = np.minimum(ctx.cutoff_day - cov["day"], _MAX_DAYS)
    cols = np.arange(ctx.n_visits)[None, :]
    attended = ((cols <= last_planned[:, None]) & (visit_day <= available[:, None])
                & (visit_day < t_death[:, None]))
    n_attended = attended.sum(axis=1)
    last_contact = np.where(n_attended > 0,
                            visit_day[np.arange(n), np.maximum(n_attended - 1, 0)], 0)
    missed = np.where(last_planned + 1 < ctx.n_visits,
                      visit_day[np.arange(n), np.minimum(last_planned + 1, ctx.n_visits - 1)],
                      np.inf)
    died_in_followup = t_death <= np.minimum(missed, available)
    died = died_in_followup | (cov["link"] & (t_death <= available))
    death_days = np.where(died, np.floor(t_death), np.nan)
    followup = np.where(died_in_followup, np.floor(t_death), last_contact).astype(float)
    fracture = (t_fracture < t_death) & (np.floor(t_fracture) <= followup)
    fracture_days = np.where(fracture, np.floor(t_fracture), np.nan)

    # Pain (0–10): baseline, then visits with patient-level response and non-responders.
    pain_base_raw = (c.pain_mean["baseline"] + 0.3 * malig
                     + c.pain_sd["baseline"] * rng.standard_normal(n))
    shift = cal.shift("pain_baseline", pain_base_raw, c.pain_mean["baseline"], 0, 10,
                      np.ones(n, bool))
    pain_base = np.clip(pain_base_raw + shift, 0.0, 10.0)
    non_responder = rng.random(n) < c.pain_non_responder_share
    patient_effect = c.pain_patient_sd * rng.standard_normal(n)
    visit_pain = np.full((n, len(_VISITS)), np.nan)
    for v, name in enumerate(_VISITS):
        resid_var = (c.pain_sd[name] ** 2 - c.pain_patient_sd**2
                     - (c.pain_baseline_slope * c.pain_sd["baseline"]) ** 2)
        responder = (c.pain_mean[name] + c.pain_baseline_slope * (pain_base - 7.8)
                     + patient_effect + np.sqrt(max(resid_var, 0.5)) * rng.standard_normal(n))
        raw = np.where(non_responder, pain_base - rng.uniform(0.0, 2.0, n), responder)
        raw += c.pain_malignant_shift * malig
        raw += c.pain_after_new_fracture * (t_fracture < visit_day[:, v])
        shift = cal.shift(f"pain_{name}", raw, c.pain_mean[name], 0, 10, np.ones(n, bool),
                          movable=~non_responder)
        value = np.clip(raw + shift * ~non_responder, 0.0, 10.0)
        visit_pain[:, v] = np.where(attended[:, v], value, np.nan)

    # ODI (0–100, even numbers: 2 × the 0–50 raw score), correlated with pain at the visit.
    rho = c.odi_pain_correlation
    odi = {}
    for name, pain in (("baseline", pain_base), ("month1", visit_pain[:, 2]),
                       ("month12", visit_pain[:, 5])):
        pain_z = (np.nan_to_num(pain, nan=c.pain_mean[name]) - c.pain_mean[name]) / c.pain_sd[name]
        raw = c.odi_mean[name] + c.odi_sd[name] * (
            rho * pain_z + np.sqrt(1 - rho**2) * rng.standard_normal(n))
        shift = cal.shift(f"odi_{name}", raw, c.odi_mean[name], 0, 100, np.ones(n, bool))
        odi[name] = 2 * np.round(np.clip(raw + shift, 0.0, 100.0) / 2)
    collects = reg.collects_odi[f]
    odi_baseline = np.where(collects, odi["baseline"], np.nan)
    odi_month1 = np.where(collects & attended[:, 2], odi["month1"], np.nan)
    odi_month12 = np.where(collects & attended[:, 5], odi["month12"], np.nan)

    # Opioid use.
    lin = (c.opioid_log_or_per_pain_point * (pain_base - 7.8) + c.opioid_log_or_malignant * malig)
    a = cal.logit("opioid_baseline", lin, c.opioid["baseline"], np.ones(n, bool))
    opioid_base = rng.random(n) < expit(a + lin)
    pain_m1 = np.nan_to_num(visit_pain[:, 2], nan=c.pain_mean["month1"])
    lin = (c.opioid_log_or_baseline_use * opioid_base
           + c.opioid_log_or_per_pain_point * (pain_m1 - c.pain_mean["month1"])
           + c.opioid_log_or_malignant * malig)
    a = cal.logit("opioid_month1", lin, c.opioid["month1"], attended[:, 2])
    opioid_m1 = np.where(attended[:, 2], rng.random(n) < expit(a + lin), np.nan)

    # Cost: mean by (country, procedure, setting); levels, LOS, facility and year act around it.
    factor = (reg.cost_mult[f] * (1 + c.cost_per_extra_level * extra)
              * np.where(outpatient, 1.0, (los / 3.0) ** c.cost_los_elasticity)
              * (1 + c.cost_inflation_per_year) ** years)
    mean_cost = np.empty(n)
    for k, code in enumerate(COUNTRIES):
        for p in (_VP, _KP):
            for o in (False, True):
                rows = (country == k) & (proc == p) & (outpatient == o)
                if rows.any():
                    norm = cal.mean(("cost", code, p, o), factor, rows)
                    mean_cost[rows] = c.cost_mean[(code, p, o)] * factor[rows] / norm
    sigma = np.sqrt(np.log1p(c.cost_cv**2))
    cost = np.round(mean_cost * rng.lognormal(-sigma**2 / 2, sigma, n), 2)

    # CPT (US only): first-level code by procedure and region of the index level.
    lumbar = pos > _T12
    cpt = np.where(proc == _VP, np.where(lumbar, 22511, 22510), np.where(lumbar, 22514, 22513))
    cpt = np.where((country == 0) & ~((proc == _KP) & (pos == _S1)), cpt, np.nan)

    out.update({
        "fac": f, "op": op, "day": cov["day"], "age_x": age_x, "sex": cov["sex"], "etio": etio,
        "malig_type": cov["malig_type"], "prior": cov["prior"], "link": cov["link"],
        "fracture_age": cov["fracture_age"], "levels": levels, "pos": pos, "proc": proc,
        "cpt": cpt, "bipedicular": bipedicular, "anesthesia": anesthesia, "ct": ct,
        "cement": np.round(cement, 1), "duration": duration, "outpatient": outpatient,
        "los": los, "pain_baseline": pain_base, "visit_pain": visit_pain,
        "odi_baseline": odi_baseline, "odi_month1": odi_month1, "odi_month12": odi_month12,
        "opioid_baseline": opioid_base.astype(float), "opioid_month1": opioid_m1,
        "leak": leak, "leak_sympt": leak_sympt, "pce": pce, "pce_sympt": pce_sympt,
        "fracture": fracture, "fracture_days": fracture_days, "followup": followup,
        "died": died, "death_days": death_days, "infection": infection, "deficit": deficit,
        "kyph_pre": np.round(kyph_pre, 1), "kyph_post": np.round(kyph_post, 1),
        "height": np.round(height, 1), "cost": cost, "t_death": t_death,
    })
    return out


def _repeat_covariates(rng: np.random.Generator, first: dict[str, np.ndarray], wanted: int,
                       ctx: _Context) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Parents (first procedures followed by a new fracture) and their second procedures."""
    c = CALIBRATION
    offset, shape, scale = c.repeat_delay_days
    candidates = np.flatnonzero(first["fracture"])
    delay = np.round(offset + rng.gamma(shape, scale, candidates.size))
    gap = first["fracture_days"][candidates] + delay
    fits = ((gap <= ctx.cutoff_day - first["day"][candidates])
            & (gap + 1 < first["t_death"][candidates]))
    candidates, delay, gap = candidates[fits], delay[fits], gap[fits]
    chosen = np.sort(rng.choice(candidates.size, size=min(wanted, candidates.size),
                                replace=False))
    parents, delay, gap = candidates[chosen], delay[chosen], gap[chosen].astype(np.int64)
    m = parents.size
    # The new fracture is next to the treated segment (above or below it).
    above = first["pos"][parents] - 1
    below = first["pos"][parents] + first["levels"][parents]
    pos = np.where((rng.random(m) < 0.5) & (above >= 0), above, below)
    pos = np.clip(np.where(pos > _L5, above, pos), 0, _L5)
    forced = np.where(rng.random(m) < c.repeat_same_procedure, first["proc"][parents], -1)
    cov = {
        "fac": first["fac"][parents], "day": first["day"][parents] + gap,
        "etio": first["etio"][parents], "malig_type": first["malig_type"][parents],
        "age_x": first["age_x"][parents] + gap / 365.25, "sex": first["sex"][parents],
        "prior": np.minimum(first["prior"][parents] + first["levels"][parents], 20.0),
        "fracture_age": np.round((delay + rng.exponential(7.0, m)) / 7.0, 1),
        "link": first["link"][parents], "index_pos": pos, "proc_forced": forced,
        "t_death": first["t_death"][parents] - gap,
    }
    return parents, gap, cov


# ------------------------------------------------------------------------------ missing data
def _apply_missingness(rng: np.random.Generator, rec: dict[str, np.ndarray],
                       reg: _Register) -> dict[str, np.ndarray]:
    c = CALIBRATION
    n = rec["fac"].size
    quality = reg.quality[rec["fac"]]

    def drop(name: str, rate_key: str | None = None) -> np.ndarray:
        rate = c.missing[rate_key or name]
        return rng.random(n) < np.minimum(rate * quality, 0.9)

    miss = {name: drop(name) for name in (
        "operator_id", "region", "malignancy_type", "cpt_code", "index_level",
        "fracture_age_weeks", "prior_fractures", "approach", "anesthesia", "guidance",
        "cement_volume_ml", "duration_min", "setting", "length_of_stay_days",
        "opioid_baseline", "opioid_month1", "leakage_symptomatic", "embolism_symptomatic",
        "infection", "new_neurologic_deficit", "height_restoration_pct", "cost")}
    kyph = drop("kyphotic_angle")
    miss["kyphotic_angle_pre"] = kyph
    miss["kyphotic_angle_post"] = kyph | drop("kyphotic_angle_post")
    miss["pain_visits"] = rng.random((n, len(_VISITS))) < np.minimum(
        c.missing["pain_visit"] * quality, 0.9)[:, None]
    for name in ("odi_baseline", "odi_month1", "odi_month12"):
        miss[name] = drop(name, "odi")
    miss["currency"] = miss["cost"] & (rng.random(n) < c.missing["currency_without_cost"])
    return miss


# ------------------------------------------------------------------------- frame building
def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    if numbers.size == 0:
        return np.empty(0, dtype=object)
    text = np.strings.zfill(numbers.astype(np.int64).astype(str), width)
    return np.strings.add(prefix, text).astype(object)


def _build_frame(rec: dict[str, np.ndarray], miss: dict[str, np.ndarray], reg: _Register,
                 n_patients: int, order: np.ndarray) -> pd.DataFrame:
    """The typed frame, in record order; arrays are converted (and released) one at a time."""
    c = CALIBRATION
    n = order.size
    for store in (rec, miss):
        for key in list(store):
            store[key] = store[key][order]
    f = rec.pop("fac")
    country = reg.country[f]
    columns: dict[str, object] = {}

    def put(name: str, kind: str, data: np.ndarray, missing: np.ndarray | None = None) -> None:
        """Convert one column; ``missing`` marks values blanked by the missing-data model."""
        if missing is not None:
            if kind in ("id", "text"):
                data = data.copy()
                data[missing] = None
            elif kind == "category":
                data = np.where(missing, -1, data)
            else:
                data = np.where(missing, np.nan, data)
        columns[name] = _typed(kind, data, FIELDS_BY_NAME[name].allowed)

    put("record_id", "id", _ids("DEMO-", np.arange(1, n + 1), max(6, len(str(n)))))
    put("patient_id", "id", _ids("PT-", rec.pop("patient"), max(6, len(str(n_patients)))))
    put("facility_id", "id", reg.ids[f])
    put("operator_id", "id", reg.op_ids[rec.pop("op")], miss["operator_id"])
    iso_country = FIELDS_BY_NAME["country"].allowed
    put("country", "category", np.array([iso_country.index(k) for k in COUNTRIES])[country])
    put("region", "text", reg.region[f], miss["region"])
    put("procedure_date", "date", rec.pop("day"))
    put("procedure", "category", rec.pop("proc"))
    put("cpt_code", "integer", rec.pop("cpt"), miss["cpt_code"])
    put("age", "integer", np.minimum(np.floor(rec.pop("age_x")), c.age_top_code))
    put("sex", "category", rec.pop("sex"))
    put("etiology", "category", rec.pop("etio"))
    malig_type = rec.pop("malig_type")
    put("malignancy_type", "category", malig_type, (malig_type < 0) | miss["malignancy_type"])
    put("levels_treated", "integer", rec.pop("levels").astype(float))
    put("index_level", "category", rec.pop("pos"), miss["index_level"])
    put("fracture_age_weeks", "number", np.round(rec.pop("fracture_age"), 1),
        miss["fracture_age_weeks"])
    put("prior_fractures", "integer", rec.pop("prior"), miss["prior_fractures"])
    put("approach", "category", rec.pop("bipedicular").astype(np.int64), miss["approach"])
    put("anesthesia", "category", rec.pop("anesthesia"), miss["anesthesia"])
    put("guidance", "category", rec.pop("ct").astype(np.int64), miss["guidance"])
    put("cement_volume_ml", "number", rec.pop("cement"), miss["cement_volume_ml"])
    put("duration_min", "number", rec.pop("duration"), miss["duration_min"])
    put("setting", "category", (~rec.pop("outpatient")).astype(np.int64), miss["setting"])
    put("length_of_stay_days", "number", rec.pop("los"), miss["length_of_stay_days"])
    # Facilities record pain either as an integer NRS or as a VAS with one decimal.
    integer_scale = reg.integer_pain[f]
    baseline = rec.pop("pain_baseline")
    put("pain_baseline", "number",
        np.where(integer_scale, np.round(baseline), np.round(baseline, 1)))
    pain = rec.pop("visit_pain")
    for v, name in enumerate(_VISITS):
        values = np.where(integer_scale, np.round(pain[:, v]), np.round(pain[:, v], 1))
        put(f"pain_{name}", "number", values, miss["pain_visits"][:, v])
    del pain
    for name in ("odi_baseline", "odi_month1", "odi_month12", "opioid_baseline",
                 "opioid_month1"):
        put(name, "number" if name.startswith("odi") else "boolean", rec.pop(name), miss[name])
    # Symptomatic flags are recorded as false when there was no leakage / embolism.
    put("cement_leakage", "boolean", rec.pop("leak"))
    put("leakage_symptomatic", "boolean", rec.pop("leak_sympt"), miss["leakage_symptomatic"])
    put("pulmonary_embolism", "boolean", rec.pop("pce"))
    put("embolism_symptomatic", "boolean", rec.pop("pce_sympt"), miss["embolism_symptomatic"])
    put("adjacent_fracture", "boolean", rec.pop("fracture"))
    put("adjacent_fracture_days", "integer", rec.pop("fracture_days"))
    put("followup_days", "integer", rec.pop("followup"))
    put("died", "boolean", rec.pop("died"))
    put("death_days", "integer", rec.pop("death_days"))
    put("infection", "boolean", rec.pop("infection"), miss["infection"])
    put("new_neurologic_deficit", "boolean", rec.pop("deficit"), miss["new_neurologic_deficit"])
    put("kyphotic_angle_pre", "number", rec.pop("kyph_pre"), miss["kyphotic_angle_pre"])
    put("kyphotic_angle_post", "number", rec.pop("kyph_post"), miss["kyphotic_angle_post"])
    put("height_restoration_pct", "number", rec.pop("height"), miss["height_restoration_pct"])
    put("cost", "number", rec.pop("cost"), miss["cost"])
    currencies = FIELDS_BY_NAME["currency"].allowed
    put("currency", "category",
        np.array([currencies.index(CURRENCY_BY_COUNTRY[k]) for k in COUNTRIES])[country],
        miss["currency"])
    return pd.DataFrame({field.name: columns[field.name] for field in FIELDS}, copy=False)


def _typed(kind: str, data: np.ndarray, allowed: tuple[str, ...]) -> object:
    """A column of the dictionary's pandas dtype from a numpy array (NaN / -1 = missing)."""
    if kind in ("id", "text"):
        return pd.array(data, dtype="string")
    if kind == "category":
        return pd.Categorical.from_codes(np.asarray(data, dtype=np.int64), categories=allowed)
    if kind == "date":
        return (np.asarray(data, dtype=np.int64).astype("datetime64[D]")
                .astype("datetime64[ns]"))
    values = np.asarray(data, dtype=float)
    mask = np.isnan(values)
    filled = np.where(mask, 0.0, values)
    if kind == "integer":
        return pd.arrays.IntegerArray(filled.astype(np.int64), mask)
    if kind == "number":
        return pd.arrays.FloatingArray(filled, mask)
    return pd.arrays.BooleanArray(filled.astype(bool), mask)



# --------------------------------------------------------------------------------- public API
def demo_records(
    n: int = 5000,
    seed: int = 20240601,
    *,
    start: str = "2021-01-01",
    end: str = "2025-12-31",
) -> pd.DataFrame:
    """Generate synthetic, literature-calibrated vertebroplasty/kyphoplasty procedure records.

    Parameters
    ----------
    n : int
        Number of procedure records (about 5% of patients have two; see module docstring).
    seed : int
        Seed of the :class:`numpy.random.Generator`; the same seed gives an identical frame.
    start, end : str
        First and last possible procedure date (ISO dates). ``end`` is also the data cut-off:
        no follow-up extends past it. An ``end`` later than today is clipped to today (and the
        output then depends on the day it is generated).

    Returns
    -------
    pandas.DataFrame
        One row per procedure, the columns of :data:`data.dictionary.FIELDS` in dictionary
        order with their pandas dtypes (categoricals carry each field's full ``allowed`` list),
        sorted by procedure date; ``record_id`` runs ``DEMO-000001``, ``DEMO-000002``, …

    Raises
    ------
    ValueError
        If ``n`` is negative, the dates cannot be parsed, ``start`` is before 1984-01-01 or
        after ``end``.

    Notes
    -----
    All calibration constants are in :data:`CALIBRATION` with their sources. Facilities
    :data:`ELEVATED_LEAKAGE_FACILITIES` have cement-leakage odds multiplied by
    :data:`ELEVATED_LEAKAGE_ODDS_RATIO`. The frame depends on ``n`` as a whole: the first
    1,000 records of ``demo_records(2000)`` are not ``demo_records(1000)``.

    Examples
    --------
    >>> from data.demo import demo_records
    >>> from data.dictionary import FIELD_NAMES
    >>> df = demo_records(1000, seed=1)
    >>> df.shape[0], tuple(df.columns) == FIELD_NAMES
    (1000, True)
    >>> df.record_id.iloc[0]
    'DEMO-000001'
    >>> demo_records(1000, seed=1).equals(df)
    True
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    start_ts = pd.Timestamp(start).normalize()
    end_ts = min(pd.Timestamp(end).normalize(), pd.Timestamp.today().normalize())
    if start_ts < FIRST_PROCEDURE_DATE:
        raise ValueError(f"start must not be before {FIRST_PROCEDURE_DATE.date()}")
    if start_ts > end_ts:
        raise ValueError("start must not be after end (or today)")
    epoch = pd.Timestamp("1970-01-01")
    start_day, cutoff_day = (start_ts - epoch).days, (end_ts - epoch).days
    span_years = (cutoff_day - start_day) / 365.25
    ctx = _Context(start_day=start_day, cutoff_day=cutoff_day,
                   mid_day=(start_day + cutoff_day) / 2,
                   n_visits=6 + min(max(1, int(np.ceil(span_years))), _MAX_DAYS // 365 - 2))
    reg = _register()
    rng = np.random.default_rng(seed)
    cal = _Calibrator()
    c = CALIBRATION
    n = int(n)

    wanted = int(round(n * c.repeat_patient_share / (1 + c.repeat_patient_share)))
    first = _simulate(rng, _draw_patients(rng, n - wanted, reg, ctx), reg, cal, ctx)
    first["patient"] = rng.permutation(n - wanted) + 1
    parents, gap, cov = _repeat_covariates(rng, first, wanted, ctx)
    second = _simulate(rng, cov, reg, cal, ctx)
    second["patient"] = first["patient"][parents]
    # The patient was seen at the second procedure, so the first one's follow-up reaches it.
    first["followup"][parents] = np.maximum(first["followup"][parents], gap)
    batches = [first, second]
    shortfall = wanted - parents.size  # too few candidates (small n): add first procedures
    if shortfall > 0:
        extra = _simulate(rng, _draw_patients(rng, shortfall, reg, ctx), reg, cal, ctx)
        extra["patient"] = n - wanted + np.arange(1, shortfall + 1)
        batches.append(extra)
    rec = {key: np.concatenate([batch.pop(key) for batch in batches]) for key in list(first)}
    del first, second, batches
    n_patients = n - wanted + max(shortfall, 0)
    miss = _apply_missingness(rng, rec, reg)
    order = np.lexsort((rng.random(n), rec["day"]))
    return _build_frame(rec, miss, reg, n_patients, order)
