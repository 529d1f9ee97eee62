"""Tests of the synthetic demo dataset (:mod:`data.demo`).

The rule checks below are written independently of the generator (they read only the public
frame and the data dictionary). Calibration tolerances cite the published figure they are
centred on (source keys of the project's clinical-evidence reference, see
``data/reference/demo_calibration.md``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from data.demo import ELEVATED_LEAKAGE_FACILITIES, demo_records
from data.dictionary import CROSS_FIELD_RULES, FIELD_NAMES, FIELDS, PAIN_VISITS

RULE_SAMPLE = 20_000
CALIBRATION_SAMPLE = 100_000


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return demo_records(RULE_SAMPLE, seed=11)


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    return demo_records(CALIBRATION_SAMPLE, seed=20240601)


def _true(series: pd.Series) -> np.ndarray:
    return series.fillna(False).to_numpy(dtype=bool)


def _num(series: pd.Series) -> np.ndarray:
    return series.astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _km_incidence(time: np.ndarray, event: np.ndarray, horizon: float) -> float:
    """1 − Kaplan–Meier survival at ``horizon`` (events at a time precede censorings)."""
    times, events = np.unique(time[event & (time <= horizon)], return_counts=True)
    at_risk = time.size - np.searchsorted(np.sort(time), times, side="left")
    return float(1 - np.prod(1 - events / at_risk))


# ------------------------------------------------------------------------- reproducibility
def test_same_seed_gives_identical_frame():
    pd.testing.assert_frame_equal(demo_records(3000, seed=5), demo_records(3000, seed=5))


def test_different_seeds_differ():
    a, b = demo_records(3000, seed=5), demo_records(3000, seed=6)
    assert not a.equals(b)
    assert not a.procedure_date.equals(b.procedure_date)
    assert not a.pain_baseline.equals(b.pain_baseline)


def test_default_size_and_empty_frame():
    assert len(demo_records()) == 5000
    empty = demo_records(0)
    assert empty.empty and tuple(empty.columns) == FIELD_NAMES


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"n": 2.5}, {"n": 10, "start": "1983-12-31"},
                                    {"n": 10, "start": "2024-01-02", "end": "2024-01-01"}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        demo_records(**kwargs)


# ------------------------------------------------------------------------ columns and dtypes
def test_columns_and_dtypes_follow_the_dictionary(sample):
    assert tuple(sample.columns) == FIELD_NAMES
    for field in FIELDS:
        dtype = sample[field.name].dtype
        assert str(dtype) == field.pandas_dtype or dtype == field.pandas_dtype, field.name
        if field.kind == "category":
            assert tuple(dtype.categories) == field.allowed, field.name
    dates = sample.procedure_date
    assert (dates == dates.dt.normalize()).all()


# ------------------------------------------------------------------------------ field rules
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_field_rules_hold(sample, field):
    column = sample[field.name]
    if field.required:
        assert column.notna().all(), f"{field.name} has missing values"
    if field.allowed:
        assert set(column.dropna().astype(str)) <= set(field.allowed)
    if field.minimum is not None or field.maximum is not None:
        values = _num(column)
        values = values[~np.isnan(values)]
        if field.minimum is not None:
            assert (values > field.minimum).all() if field.exclusive_minimum else (
                values >= field.minimum).all(), field.name
        if field.maximum is not None:
            assert (values <= field.maximum).all(), field.name
    if field.kind == "id":
        assert column.dropna().str.len().gt(0).all()


def test_ages_are_top_coded_integers(sample):
    age = sample.age.to_numpy(dtype=int)
    assert age.min() >= 50 and age.max() == 90  # truncation 50–98, top-coded above 89
    assert (age == 90).mean() < 0.15


def _cross_field_violations(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean violation mask per cross-field rule of the dictionary (independent checks)."""
    fracture = _true(df.adjacent_fracture)
    fracture_days = _num(df.adjacent_fracture_days)
    followup = _num(df.followup_days)
    death_days = _num(df.death_days)
    with np.errstate(invalid="ignore"):
        pain_late = np.zeros(len(df), dtype=bool)
        for suffix, (_label, _day, window) in PAIN_VISITS.items():
            pain_late |= df[f"pain_{suffix}"].notna().to_numpy() & (followup < window)
        odi_late = ((df.odi_month1.notna().to_numpy() & (followup < PAIN_VISITS["month1"][2]))
                    | (df.odi_month12.notna().to_numpy()
                       & (followup < PAIN_VISITS["month12"][2])))
        cpt = _num(df.cpt_code)
        procedure = df.procedure.astype(str).to_numpy()
        cpt_bad = ((cpt >= 22510) & (cpt <= 22512) & (procedure != "vertebroplasty")) | (
            (cpt >= 22513) & (cpt <= 22515) & (procedure != "kyphoplasty"))
        outpatient = (df.setting == "outpatient").fillna(False).to_numpy(dtype=bool)
        today = pd.Timestamp.today().normalize()
        return {
            "fracture_days_required": fracture & np.isnan(fracture_days),
            "fracture_days_without_fracture": ~fracture & ~np.isnan(fracture_days),
            "fracture_after_followup": fracture_days > followup,
            "death_before_event": (death_days < fracture_days) | (death_days < followup),
            "death_days_without_death": ~np.isnan(death_days) & ~_true(df.died),
            "pain_beyond_followup": pain_late,
            "odi_beyond_followup": odi_late,
            "symptomatic_leakage_without_leakage": _true(df.leakage_symptomatic)
            & ~_true(df.cement_leakage),
            "symptomatic_embolism_without_embolism": _true(df.embolism_symptomatic)
            & ~_true(df.pulmonary_embolism),
            "malignancy_type_without_malignancy": df.malignancy_type.notna().to_numpy()
            & (df.etiology.astype(str).to_numpy() != "malignant"),
            "cpt_procedure_mismatch": cpt_bad,
            "currency_required": df.cost.notna().to_numpy() & df.currency.isna().to_numpy(),
            "outpatient_stay": outpatient & (_num(df.length_of_stay_days) > 1),
            "date_range": ((df.procedure_date < pd.Timestamp("1984-01-01"))
                           | (df.procedure_date > today)).to_numpy(),
        }


def test_every_cross_field_rule_is_checked(sample):
    assert set(_cross_field_violations(sample)) == {rule.name for rule in CROSS_FIELD_RULES}


@pytest.mark.parametrize("rule", [rule.name for rule in CROSS_FIELD_RULES])
def test_cross_field_rules_hold(sample, rule):
    violations = _cross_field_violations(sample)[rule]
    assert not violations.any(), f"{rule}: {int(violations.sum())} violations"


def test_further_consistency(sample):
    fracture = _true(sample.adjacent_fracture)
    assert (sample.adjacent_fracture_days[fracture] >= 0).all()
    # The generator also fills the symptomatic flags whenever the event is known to be absent.
    assert sample.cement_leakage.notna().all() and sample.pulmonary_embolism.notna().all()
    assert (sample.death_days.notna() == _true(sample.died)).all()
    # CPT first-level code agrees with the index level's region (T → 22510/22513, L → 22511/22514)
    coded = sample[sample.cpt_code.notna() & sample.index_level.notna()]
    lumbar = coded.index_level.astype(str).str.match(r"^[LS]").to_numpy()
    vp = (coded.procedure == "vertebroplasty").to_numpy()
    expected = np.where(vp, np.where(lumbar, 22511, 22510), np.where(lumbar, 22514, 22513))
    assert (coded.cpt_code.to_numpy(dtype=int) == expected).all()
    assert not coded.cpt_code.isin([22512, 22515]).any()  # add-on codes are never primary


def test_validation_module_accepts_the_demo(sample):
    from data.validation import validate_records

    failures = validate_records(sample)
    assert failures.empty, failures.groupby(["field", "rule"]).size().to_dict()


def test_identifiers_are_pseudonymous(sample):
    assert sample.record_id.is_unique
    assert sample.record_id.str.fullmatch(r"DEMO-\d{6,}").all()
    assert sample.patient_id.str.fullmatch(r"PT-\d{6,}").all()
    assert sample.facility_id.str.fullmatch(r"FAC-\d{3}").all()
    assert sample.operator_id.dropna().str.fullmatch(r"OP-\d{4}").all()
    looks_identifying = re.compile(r"@|\d{3}-\d{2}-\d{4}|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}|\d{9,}")
    for column in ("record_id", "patient_id", "facility_id", "operator_id", "region"):
        assert not sample[column].dropna().str.contains(looks_identifying).any(), column


def test_structure_of_facilities_and_operators(sample):
    per_country = sample.groupby("country", observed=True).facility_id.nunique()
    assert set(per_country.index) == {"US", "GB", "DE", "FR", "IN"}
    assert 35 <= sample.facility_id.nunique() <= 45
    operators = sample.dropna(subset=["operator_id"]).groupby("facility_id").operator_id.nunique()
    assert operators.between(2, 5).all()
    # each operator works at one facility
    assert (sample.dropna(subset=["operator_id"]).groupby("operator_id").facility_id.nunique()
            == 1).all()
    volume = sample.facility_id.value_counts(normalize=True)
    assert volume.max() > 4 * volume.median()  # skewed volumes
    assert set(ELEVATED_LEAKAGE_FACILITIES) <= set(volume.index)
    assert (volume[list(ELEVATED_LEAKAGE_FACILITIES)] > 0.015).all()  # enough volume to flag
    us_regions = set(sample.region[sample.country == "US"].dropna())
    assert us_regions <= {"Northeast", "Midwest", "South", "West"}


def test_repeat_procedures_share_patient_and_come_later(sample):
    counts = sample.patient_id.value_counts()
    # ~5% of patients have a second procedure (brief; an assumption of the demo)
    assert 0.035 <= (counts > 1).mean() <= 0.065
    repeats = sample[sample.patient_id.isin(counts.index[counts > 1])].sort_values(
        ["patient_id", "procedure_date"])
    grouped = repeats.groupby("patient_id")
    assert (grouped.record_id.nunique() == grouped.size()).all()
    assert (grouped.sex.nunique() == 1).all() and (grouped.etiology.nunique() == 1).all()
    first, second = grouped.nth(0).set_index("patient_id"), grouped.nth(1).set_index("patient_id")
    gap = (second.procedure_date - first.procedure_date).dt.days
    assert (gap > 0).all()
    assert ((second.age - first.age) >= 0).all()
    assert (first.followup_days >= gap).all()  # the patient was seen at the second procedure


# ------------------------------------------------------------------------------ calibration
def test_patient_mix_matches_targets(large):
    # Age mean 75 (SD 10): KAVIAR 75.6, EVANS 75.6 (10.0), FREE 73 [S]; ±1.5 covers the trials'
    # spread and the top-coding at 90 (lowers the coded mean by ~0.2 year).
    assert abs(large.age.mean() - 75) <= 1.5
    assert 8.0 <= large.age.std() <= 11.0
    # KP patients ~1–2 years older: NIS-Drazin KP 78.5 vs VP 76.7 [S].
    kp = large.procedure == "kyphoplasty"
    assert 0.5 <= large.age[kp].mean() - large.age[~kp].mean() <= 2.5
    # ~75% female: AJNR-COST "approximately 75%" [S]; ±3 points (sources range 71–77%).
    assert abs((large.sex == "F").mean() - 0.75) <= 0.03
    assert 0.002 <= (large.sex == "X").mean() <= 0.01
    # Etiology: 8% malignant NIS-HAFEZI [S], osteoporotic 88% (§1.1); ±3 points.
    assert abs((large.etiology == "osteoporotic").mean() - 0.88) <= 0.03
    assert abs((large.etiology == "malignant").mean() - 0.08) <= 0.02
    # Levels 1/2/≥3 = 75/18/7% (§1.2; FREE >1 level in 24–26% [S]).
    levels = large.levels_treated
    assert abs((levels == 1).mean() - 0.75) <= 0.03
    assert abs((levels == 2).mean() - 0.18) <= 0.03
    assert abs((levels >= 3).mean() - 0.07) <= 0.02
    # T11–L2 most common (§1.2).
    index = large.index_level.dropna().astype(str)
    assert index.value_counts().index[:4].isin(["T11", "T12", "L1", "L2"]).all()
    assert index.isin(["T11", "T12", "L1", "L2"]).mean() >= 0.55


def test_procedure_calibration(large):
    vp, kp = large.procedure == "vertebroplasty", large.procedure == "kyphoplasty"
    # Duration VP 31.8 vs KP 40.0 min (KAVIAR [S]); ±2 min.
    assert abs(large.duration_min[vp].mean() - 32) <= 2
    assert abs(large.duration_min[kp].mean() - 40) <= 2
    # Cement per level VP 3.5, KP 4.5 mL (§1.3; Venmans 3.3 ± 1.16 [S]); ±0.4 mL.
    per_level = large.cement_volume_ml / large.levels_treated
    assert abs(per_level[vp].mean() - 3.5) <= 0.4 and abs(per_level[kp].mean() - 4.5) <= 0.4
    # Outpatient ~40% (AJNR-COST VP 36% / KP 46% in the US [S]); ±8 points for the country mix.
    setting = large.setting.dropna()
    assert abs((setting == "outpatient").mean() - 0.40) <= 0.08
    us = large[large.country == "US"].dropna(subset=["setting"])
    share = us.groupby("procedure", observed=True).setting.apply(lambda s: (s == "outpatient").mean())
    assert abs(share["vertebroplasty"] - 0.36) <= 0.03 and abs(share["kyphoplasty"] - 0.46) <= 0.03
    # Inpatient LOS median 3 (IQR 2–5) in the US (§1.3, an assumption).
    los = large.length_of_stay_days[(large.country == "US") & (large.setting == "inpatient")]
    assert los.median() == 3 and los.quantile(0.25) >= 1.5 and los.quantile(0.75) <= 6
    # KP share 76% in the US: NIS-LARATTA 19,420 KP vs 6,130 VP [D]; ±3 points.
    assert abs((large.procedure[large.country == "US"] == "kyphoplasty").mean() - 0.76) <= 0.03


def test_complication_calibration(large):
    vp, kp = large.procedure == "vertebroplasty", large.procedure == "kyphoplasty"
    leak = large.cement_leakage
    # Leakage per patient VP 35%, KP 18% (§1.4; ZHAN KP 18.4% [S]); ±2.5 points (SE ≈ 0.3).
    assert abs(leak[vp].mean() - 0.35) <= 0.025
    assert abs(leak[kp].mean() - 0.18) <= 0.025
    # Pulmonary cement embolism: Venmans 2.1%, JOSR 2021 1.9% [S]; VP > KP; 0.5–6%.
    pce_vp, pce_kp = large.pulmonary_embolism[vp].mean(), large.pulmonary_embolism[kp].mean()
    assert pce_vp > pce_kp and pce_kp >= 0.005 and pce_vp <= 0.06
    # Symptomatic PCE 0.1–0.5% of patients (§1.5; Luetmer 1/244 [S]).
    assert 0.001 <= large.embolism_symptomatic.mean() <= 0.005
    # Symptomatic leakage: below canal leakage 0.7% of patients, above surgery 0.13% [S]/[D].
    assert 0.0013 <= large.leakage_symptomatic.mean() <= 0.007


def test_new_fracture_incidence(large):
    # ≥1 new VCF by 12 months: VP 20%, KP 18% (§1.6; VERTOS II 15/91 [S]); Kaplan–Meier with
    # censoring at the last contact; ±4 points.
    for procedure, target in (("vertebroplasty", 0.20), ("kyphoplasty", 0.18)):
        rows = large[large.procedure == procedure]
        event = _true(rows.adjacent_fracture)
        time = np.where(event, _num(rows.adjacent_fracture_days), _num(rows.followup_days))
        assert abs(_km_incidence(time, event, 365) - target) <= 0.04, procedure
    # 50–60% of the new fractures of the first 2 years happen in year 1 (DIR 2024 56.6% [S]).
    event = _true(large.adjacent_fracture)
    time = np.where(event, _num(large.adjacent_fracture_days), _num(large.followup_days))
    share = _km_incidence(time, event, 365) / _km_incidence(time, event, 730)
    assert 0.50 <= share <= 0.65
    # More prevalent fractures → more new fractures (VERTOS-II-NVF OR 1.43 per fracture [S]).
    few = large[large.prior_fractures <= 1]
    many = large[large.prior_fractures >= 4]
    assert many.adjacent_fracture.mean() > 1.3 * few.adjacent_fracture.mean()


def test_pain_and_function(large):
    # VAS/NRS 7.8 → 3.5 (1 month) → 2.7 (12 months): VERTOS II 7.8, EVANS 30 d 3.4/3.6,
    # 1 yr 3.0/2.3 [S]; ±0.3 points.
    assert abs(large.pain_baseline.mean() - 7.8) <= 0.3
    assert abs(large.pain_month1.mean() - 3.5) <= 0.3
    assert abs(large.pain_month12.mean() - 2.7) <= 0.3
    assert abs(large.pain_day1.mean() - 4.0) <= 0.3  # EVANS 3 days 4.1/3.7 [S]
    for column in [f"pain_{s}" for s in PAIN_VISITS]:
        assert large[column].dropna().between(0, 10).all()
    # KP vs VP pain differences are small (EVANS; JOSR18 VAS WMD 0.04 [S]).
    kp = large.procedure == "kyphoplasty"
    assert abs(large.pain_month1[kp].mean() - large.pain_month1[~kp].mean()) <= 0.5
    # Responders (≥30% reduction at month 1): realistic 65–75% (brief); ±3 points margin.
    rows = large.pain_month1.notna() & (large.pain_baseline > 0)
    responder = (large.pain_month1 <= 0.7 * large.pain_baseline)[rows]
    assert 0.62 <= responder.mean() <= 0.78
    # ODI 65 → 30 → 22 (§1.7 suggested values); ±3 points.
    for column, target in (("odi_baseline", 65), ("odi_month1", 30), ("odi_month12", 22)):
        assert abs(large[column].mean() - target) <= 3, column
    # Opioid use 60% → 30% (an assumption of the demo); ±5 points.
    assert abs(large.opioid_baseline.mean() - 0.60) <= 0.05
    assert abs(large.opioid_month1.mean() - 0.30) <= 0.05


def test_radiographic_correction(large):
    # Kyphosis correction KP 4.8° vs VP 1.7° (PAPA [S]); ±0.7°.
    correction = large.kyphotic_angle_pre - large.kyphotic_angle_post
    kp = large.procedure == "kyphoplasty"
    assert abs(correction[kp].mean() - 5) <= 0.7 and abs(correction[~kp].mean() - 2) <= 0.7
    # Height restoration KP +17.5% [S, PMC2996621] (15–18%); VP ≈ 5% (assumption).
    assert 14 <= large.height_restoration_pct[kp].mean() <= 19
    assert 3 <= large.height_restoration_pct[~kp].mean() <= 7


def test_mortality(large):
    # Deaths during follow-up per person-year: ~5–8%/year in osteoporotic patients (brief; an
    # assumption, below Medicare registry mortality, EDIDIN11); higher in malignancy.
    in_followup = _true(large.died) & (_num(large.death_days) <= _num(large.followup_days))
    years = _num(large.followup_days) / 365.25
    rate = {}
    for etiology in ("osteoporotic", "malignant"):
        rows = (large.etiology == etiology).to_numpy()
        rate[etiology] = in_followup[rows].sum() / years[rows].sum()
    assert 0.04 <= rate["osteoporotic"] <= 0.10
    assert rate["malignant"] > 2 * rate["osteoporotic"]


def test_us_costs(large):
    # AJNR-COST [S] means: inpatient VP $9,837, KP $13,187; outpatient VP $3,319, KP $8,100.
    # Costs are right-skewed (log-normal, CV 0.45): the median is ~0.9 × the mean; the ranges
    # allow ±20% around that.
    us = large[large.country == "US"]
    expected_median = {("vertebroplasty", "inpatient"): 9_837, ("kyphoplasty", "inpatient"): 13_187,
                       ("vertebroplasty", "outpatient"): 3_319,
                       ("kyphoplasty", "outpatient"): 8_100}
    for (procedure, setting), mean in expected_median.items():
        cost = us.cost[(us.procedure == procedure) & (us.setting == setting)].dropna()
        assert 0.9 * mean * 0.8 <= cost.median() <= 0.9 * mean * 1.2, (procedure, setting)
        assert cost.mean() > cost.median()  # right skew
    assert (us.currency.dropna() == "USD").all()
    currency = large.dropna(subset=["cost"]).groupby("country", observed=True).currency.first()
    assert currency.to_dict() == {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "IN": "INR"}
    assert 0.03 <= large.cost.isna().mean() <= 0.08  # a few percent missing


def test_countries(large):
    share = large.country.value_counts(normalize=True)
    assert abs(share["US"] - 0.55) <= 0.03
    assert set(share[share > 0].index) == {"US", "GB", "DE", "FR", "IN"}


# ----------------------------------------------------------------- realism: confounding etc.
def test_confounding_by_indication(large):
    kp = large.procedure == "kyphoplasty"
    by_etiology = kp.groupby(large.etiology, observed=True).mean()
    assert by_etiology["malignant"] > by_etiology["osteoporotic"] + 0.05
    by_levels = kp.groupby(large.levels_treated).mean()
    assert by_levels[3] > by_levels[1]
    assert large.kyphotic_angle_pre[kp].mean() > large.kyphotic_angle_pre[~kp].mean()
    by_country = kp.groupby(large.country, observed=True).mean()
    assert by_country["US"] > by_country.drop("US").max()
    by_facility = kp.groupby(large.facility_id).mean()
    assert by_facility.max() - by_facility.min() > 0.4  # strong facility variation


def test_elevated_leakage_facilities_stand_out(large):
    elevated = large.facility_id.isin(ELEVATED_LEAKAGE_FACILITIES)
    ratio = large.cement_leakage[elevated].mean() / large.cement_leakage[~elevated].mean()
    assert ratio >= 1.8  # odds ×3 at ~25% gives ~2× the rate
    for facility in ELEVATED_LEAKAGE_FACILITIES:  # each one, within procedure
        for procedure in ("vertebroplasty", "kyphoplasty"):
            mine = large[(large.facility_id == facility) & (large.procedure == procedure)]
            rest = large[(large.facility_id != facility) & (large.procedure == procedure)]
            assert mine.cement_leakage.mean() > 1.5 * rest.cement_leakage.mean()


def test_followup_missingness_grows(large):
    present = {s: large[f"pain_{s}"].notna().mean() for s in PAIN_VISITS}
    assert present["month12"] < present["month6"] < present["month3"] < present["month1"]
    assert present["month1"] > 0.6  # most patients reach one month
    followup = large.followup_days
    assert (followup >= 15).mean() > (followup >= 136).mean() > (followup >= 271).mean()
    # realistic missingness of optional fields
    missing = large.isna().mean()
    assert 0.15 <= missing["fracture_age_weeks"] <= 0.25
    assert 0.10 <= missing["prior_fractures"] <= 0.20
    assert 0.25 <= missing["kyphotic_angle_pre"] <= 0.35
    assert 0.01 <= missing["operator_id"] <= 0.06


def test_calendar_trends(large):
    year = large.procedure_date.dt.year
    assert year.min() == 2021 and year.max() == 2025
    kp_share = (large.procedure == "kyphoplasty").groupby(year).mean()
    leakage = large.cement_leakage.groupby(year).mean()
    assert kp_share[2025] > kp_share[2021] and leakage[2025] < leakage[2021]
    per_quarter = large.procedure_date.dt.to_period("Q").value_counts()
    assert per_quarter.max() / per_quarter.min() > 1.1  # volume varies by quarter
    assert (large.procedure_date.dt.dayofweek >= 5).mean() < 0.05  # mostly weekdays
