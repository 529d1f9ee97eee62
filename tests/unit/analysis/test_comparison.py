"""Tests of analysis.comparison: the outcome table, fracture survival, pain mixed model, MDD.

Sources of the expected values (never the functions under test):

* statsmodels written out in the tests: ``smf.ols`` (ANCOVA, HC3), ``multipletests``
  (Benjamini–Hochberg), ``power_proportions_2indep`` / ``TTestIndPower`` (power at the
  minimum detectable difference), and the OLS fit of the mixed-model formula (methods note
  §1.6: for balanced, complete data with a time-invariant group the random-intercept fixed
  effects equal OLS).
* lifelines ``CoxPHFitter`` as an independent Cox implementation (continuous times, no ties).
* Simulated data with known effects (ANCOVA treatment effect −1; Cox HR 0.7 with
  exponential times), and ``glm_closed_forms`` from tests/fixtures/stats-reference-cases.json
  for the gamma cost ratio.
* Hand counts for the number-at-risk table and the competing-risk event codes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.multitest import multipletests

from analysis import comparison
from analysis.adjustment import standardised_risks
from analysis.comparison import (
    COMPARISON_COLUMNS,
    compare_procedures,
    fracture_survival,
    fracture_time_event,
    minimum_detectable_differences,
    pain_mixed_model,
)
from analysis.costs import CostOptions
from tests.reference import close

KP, VP = "kyphoplasty", "vertebroplasty"
ADJUSTED = ["adjusted", "adjusted_low", "adjusted_high", "p_adjusted"]


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    module = pytest.importorskip("data.demo")
    return module.demo_records(1500, seed=21)


@pytest.fixture(scope="module")
def demo_table(demo) -> pd.DataFrame:
    return compare_procedures(demo, n_boot=60)


def synthetic(n: int = 3000, seed: int = 4) -> pd.DataFrame:
    """Records with a confounder (age) acting on treatment and on every outcome."""
    rng = np.random.default_rng(seed)
    age = rng.normal(75, 8, n)
    z = (age - 75) / 8
    kp = rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.8 * z)))
    base = np.clip(np.round(rng.normal(7.5, 1.2, n), 1), 0, 10)
    month1 = 1.0 + 0.5 * base - 1.0 * kp + 0.6 * z + rng.normal(0, 1.5, n)
    rate = 0.001 * np.exp(np.log(0.7) * kp + 0.5 * z)
    event_time = rng.exponential(1 / rate)
    censor = rng.uniform(30, 1500, n)
    fracture = event_time <= censor
    return pd.DataFrame({
        "record_id": [f"R{i}" for i in range(n)],
        "procedure": np.where(kp, KP, VP),
        "age": age,
        "sex": rng.choice(["F", "M"], n),
        "pain_baseline": base,
        "pain_month1": month1,
        "duration_min": 30 + 8 * kp + 2 * z + rng.normal(0, 6, n),
        "cement_leakage": pd.array(rng.random(n) < 0.2 + 0.1 * (z > 0), dtype="boolean"),
        "adjacent_fracture": pd.array(fracture, dtype="boolean"),
        "adjacent_fracture_days": np.where(fracture, event_time, np.nan),
        "followup_days": np.where(fracture, np.maximum(event_time, censor), censor),
    })


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def test_columns_and_measures(demo_table):
    assert list(demo_table.columns) == list(COMPARISON_COLUMNS)
    assert list(demo_table["outcome"]) == list(comparison.DEFAULT_OUTCOMES)
    kinds = dict(zip(demo_table["outcome"], demo_table["kind"], strict=True))
    assert kinds["cement_leakage"] == "binary" and kinds["duration_min"] == "continuous"
    assert kinds["cost"] == "cost" and kinds["time_to_fracture"] == "time_to_event"
    measures = dict(zip(demo_table["outcome"], demo_table["effect_measure"], strict=True))
    assert measures == {"pain_responder": "RD", "pain_month1": "MD", "cement_leakage": "RD",
                        "pulmonary_embolism": "RD", "adjacent_fracture_12m": "RD",
                        "duration_min": "MD", "cost": "ratio of means",
                        "time_to_fracture": "HR"}
    cost = demo_table.set_index("outcome").loc["cost"]
    assert cost["unadjusted_measure"] == "MD"
    assert demo_table["unadjusted"].notna().all()
    ok = demo_table["adjusted"].notna()
    row = demo_table[ok]
    assert (row["adjusted_low"] <= row["adjusted"]).all()
    assert (row["adjusted"] <= row["adjusted_high"]).all()
    leak = demo_table.set_index("outcome").loc["cement_leakage"]
    assert leak["iptw_low"] < leak["iptw"] < leak["iptw_high"]
    assert leak["adjusted"] < 0  # the demo data have less leakage with KP


def test_bh_column_matches_multipletests(demo_table):
    p = demo_table["p_adjusted"].where(demo_table["p_adjusted"].notna(),
                                       demo_table["p_unadjusted"]).to_numpy()
    present = ~np.isnan(p)
    expected = np.full(p.size, np.nan)
    expected[present] = multipletests(p[present], method="fdr_bh")[1]
    np.testing.assert_allclose(demo_table["p_bh"], expected, rtol=1e-12)


def test_adjust_false_leaves_adjusted_columns_empty(demo):
    table = compare_procedures(demo, adjust=False)
    assert table[ADJUSTED + ["iptw", "rr_adjusted"]].isna().all().all()
    assert (table["adjusted_method"] == "").all()
    assert table["unadjusted"].notna().all()
    # BH then uses the unadjusted p-values.
    p = table["p_unadjusted"].to_numpy()
    np.testing.assert_allclose(table["p_bh"], multipletests(p, method="fdr_bh")[1])


def test_leakage_matches_standardised_risks(demo, demo_table):
    # Unclustered intervals: the bootstrap of analysis.adjustment.standardised_risks.
    direct = standardised_risks(demo, "cement_leakage", n_boot=60, seed=0)
    clustered = demo_table.set_index("outcome").loc["cement_leakage"]
    close(clustered["adjusted"], direct.risk_difference, 1e-10)
    row = compare_procedures(demo, outcomes=["cement_leakage"], n_boot=60,
                             cluster=None).iloc[0]
    close(row["adjusted"], direct.risk_difference, 1e-10)
    close(row["adjusted_low"], direct.rd_low, 1e-10)
    close(row["rr_adjusted"], direct.risk_ratio, 1e-10)


def test_small_groups_give_notes_not_exceptions():
    d = synthetic(400)
    kp_rows = d.index[d["procedure"] == KP]
    few = d.drop(kp_rows[8:])  # 8 kyphoplasty records
    table = compare_procedures(few, outcomes=["cement_leakage", "pain_month1",
                                              "time_to_fracture"], covariates=["age"])
    assert table[ADJUSTED].isna().all().all()
    assert table["note"].str.contains("skipped").all()
    none = d[d["procedure"] == VP]
    table = compare_procedures(none, outcomes=["cement_leakage", "pain_month1",
                                               "duration_min", "time_to_fracture"],
                               covariates=["age"])
    assert table["unadjusted"].isna().all()
    assert table["note"].str.len().gt(0).all()
    assert (table["n_kp"] == 0).all()


def test_rare_events_note_wording():
    d = synthetic(2000)
    kp = (d["procedure"] == KP).to_numpy()
    leak = np.zeros(len(d), dtype=bool)
    leak[np.flatnonzero(kp)[:3]] = True
    leak[np.flatnonzero(~kp)[:40]] = True
    d["cement_leakage"] = pd.array(leak, dtype="boolean")
    row = compare_procedures(d, outcomes=["cement_leakage"], covariates=["age"]).iloc[0]
    assert "adjusted model skipped: 3 events in kyphoplasty, at least 10 needed" in row["note"]
    assert math.isnan(row["adjusted"]) and not math.isnan(row["unadjusted"])


def test_missing_columns_give_notes(demo):
    table = compare_procedures(demo.drop(columns=["pain_baseline", "cost"]), n_boot=20)
    rows = table.set_index("outcome")
    assert "pain_baseline" in rows.loc["pain_responder", "note"]
    assert math.isnan(rows.loc["pain_responder", "unadjusted"])
    assert "no pain_baseline column" in rows.loc["pain_month1", "note"]
    assert rows.loc["cost", "note"] == "no cost column"
    assert not math.isnan(rows.loc["cement_leakage", "adjusted"])


def test_unknown_outcome_raises():
    with pytest.raises(ValueError, match="unknown outcome"):
        compare_procedures(synthetic(100), outcomes=["no_such_outcome"])


# --------------------------------------------------------------------------------------------
# Continuous outcomes
# --------------------------------------------------------------------------------------------


def test_ancova_recovers_known_effect():
    d = synthetic(4000, seed=8)
    row = compare_procedures(d, outcomes=["pain_month1"], covariates=["age"]).iloc[0]
    d["kp"] = (d["procedure"] == KP).astype(float)
    ref = smf.ols("pain_month1 ~ kp + age + pain_baseline", d).fit()
    close(row["adjusted"], ref.params["kp"], 1e-8)
    low, high = ref.conf_int().loc["kp"]
    close(row["adjusted_low"], low, 1e-8)
    close(row["adjusted_high"], high, 1e-8)
    close(row["p_adjusted"], ref.pvalues["kp"], 1e-10)
    se = ref.bse["kp"]
    assert abs(row["adjusted"] - (-1.0)) < 3 * se  # the simulated effect
    unadjusted = d.loc[d.kp == 1, "pain_month1"].mean() - d.loc[d.kp == 0,
                                                                "pain_month1"].mean()
    close(row["unadjusted"], unadjusted, 1e-10)


def test_duration_adjusted_is_ols_hc3():
    d = synthetic(1500, seed=9)
    row = compare_procedures(d, outcomes=["duration_min"], covariates=["age", "sex"]).iloc[0]
    d["kp"] = (d["procedure"] == KP).astype(float)
    ref = smf.ols("duration_min ~ kp + age + C(sex)", d).fit(cov_type="HC3")
    close(row["adjusted"], ref.params["kp"], 1e-8)
    se = (row["adjusted_high"] - row["adjusted"]) / 1.96
    close(se, ref.bse["kp"], 2e-3 * ref.bse["kp"])  # t- vs z-quantile only
    assert "Hodges–Lehmann" in row["unadjusted_method"]


# --------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------


def cost_records(case: dict) -> pd.DataFrame:
    vp, kp = case["inputs"]["cost_vp"], case["inputs"]["cost_kp"]
    return pd.DataFrame({"procedure": [VP] * len(vp) + [KP] * len(kp),
                         "cost": vp + kp, "currency": "USD",
                         "procedure_date": pd.Timestamp("2023-03-01")})


@pytest.mark.parametrize("fast", [False, True])
def test_cost_ratio_closed_form(cases, monkeypatch, fast):
    case = cases["glm_closed_forms"]
    if fast:
        monkeypatch.setattr(comparison, "COST_RATIO_MAX_N", 0)
    monkeypatch.setattr(comparison, "MIN_RECORDS_ADJUSTED", 2)
    d = cost_records(case)
    # The reference is on the costs as given: no deflation to a price year.
    row = compare_procedures(d, outcomes=["cost"], covariates=(),
                             cost_options=CostOptions(price_year="nominal")).iloc[0]
    close(row["adjusted"], case["expected"]["gamma_ratio"], case["tol"])
    vp, kp = case["inputs"]["cost_vp"], case["inputs"]["cost_kp"]
    close(row["unadjusted"], np.mean(kp) - np.mean(vp), 1e-9)
    assert row["unadjusted_low"] < row["unadjusted"] < row["unadjusted_high"]
    assert ("numpy IRLS" in row["adjusted_method"]) is fast


def test_fast_cost_ratio_matches_adjusted_cost_ratio(demo, monkeypatch):
    slow = compare_procedures(demo, outcomes=["cost"]).iloc[0]
    monkeypatch.setattr(comparison, "COST_RATIO_MAX_N", 0)
    fast = compare_procedures(demo, outcomes=["cost"]).iloc[0]
    for column in ("adjusted", "adjusted_low", "adjusted_high"):
        close(fast[column], slow[column], 1e-7 * slow[column])
    close(fast["p_adjusted"], slow["p_adjusted"], 1e-6 * max(slow["p_adjusted"], 1e-300))


# --------------------------------------------------------------------------------------------
# Time to fracture
# --------------------------------------------------------------------------------------------


def test_cox_adjusted_hr_near_simulated_and_matches_lifelines():
    lifelines = pytest.importorskip("lifelines")
    d = synthetic(5000, seed=12)
    row = compare_procedures(d, outcomes=["time_to_fracture"], covariates=["age"]).iloc[0]
    te = fracture_time_event(d)
    frame = pd.DataFrame({"time": te["time"], "event": te["event"],
                          "kp": (d["procedure"] == KP).astype(float),
                          "age": (d["age"] - d["age"].mean()) / d["age"].std()})
    ref = lifelines.CoxPHFitter().fit(frame, "time", "event")
    close(math.log(row["adjusted"]), ref.params_["kp"], 1e-6)
    lo, hi = np.exp(ref.confidence_intervals_.loc["kp"])
    close(row["adjusted_low"], lo, 1e-5)
    close(row["adjusted_high"], hi, 1e-5)
    se = ref.standard_errors_["kp"]
    assert abs(math.log(row["adjusted"]) - math.log(0.7)) < 3 * se
    # Confounding by age: the crude HR is further from 0.7 than the adjusted one.
    assert abs(math.log(row["unadjusted"]) - math.log(0.7)) > abs(
        math.log(row["adjusted"]) - math.log(0.7))


def test_vectorised_cox_path_matches_cox_model(monkeypatch):
    d = synthetic(1500, seed=13)
    d["adjacent_fracture_days"] = np.ceil(d["adjacent_fracture_days"] / 30)  # ties
    d["followup_days"] = np.ceil(d["followup_days"] / 30)
    slow = compare_procedures(d, outcomes=["time_to_fracture"], covariates=["age", "sex"])
    monkeypatch.setattr(comparison, "COX_MODEL_MAX_N", 0)
    fast = compare_procedures(d, outcomes=["time_to_fracture"], covariates=["age", "sex"])
    for column in ("unadjusted", "unadjusted_low", "adjusted", "adjusted_high", "p_adjusted"):
        close(fast[column].iloc[0], slow[column].iloc[0], 1e-7)
    assert "vectorised Efron" in fast["adjusted_method"].iloc[0]


# --------------------------------------------------------------------------------------------
# fracture_survival and fracture_time_event
# --------------------------------------------------------------------------------------------


def test_fracture_time_event_codes():
    rows = pd.DataFrame({
        "adjacent_fracture": pd.array([True, False, False, None, True, False], dtype="boolean"),
        "adjacent_fracture_days": [100, None, None, None, 50, None],
        "followup_days": [400, 200, 300, 100, 60, 250],
        "died": pd.array([False, True, False, False, True, True], dtype="boolean"),
        "death_days": [None, 250, None, None, 80, 250],
    })
    te = fracture_time_event(rows)
    assert te["time"].tolist()[:3] == [100.0, 200.0, 300.0] and math.isnan(te["time"][3])
    assert te["event"].tolist()[:3] == [1.0, 0.0, 0.0]
    # Death after a fracture keeps the fracture (code 1) at its day. A death after the last
    # contact (row 1: last contact day 200, death day 250) is censored at the last contact,
    # since fractures are not ascertained after it (issue 12); a death at the last contact
    # (row 5) competes at its day.
    kept = [0, 1, 2, 4, 5]
    assert te["cr_code"].to_numpy()[kept].tolist() == [1.0, 0.0, 0.0, 1.0, 2.0]
    assert te["cr_time"].to_numpy()[kept].tolist() == [100.0, 200.0, 300.0, 50.0, 250.0]


def test_twelve_month_row_is_the_cumulative_incidence_of_the_time_to_fracture_row(demo):
    """Issue 12 item 1: the 12-month row used the share of classified records (biased
    upwards) and disagreed with its own time-to-fracture row."""
    # Model-based (cluster=None): the delta-method interval of two independent groups.
    table = compare_procedures(demo, outcomes=["adjacent_fracture_12m", "time_to_fracture"],
                               adjust=False, cluster=None).set_index("outcome")
    twelve, time = table.loc["adjacent_fracture_12m"], table.loc["time_to_fracture"]
    assert not twelve["clustered"]
    close(twelve["estimate_vp"], time["estimate_vp"], 1e-12)
    close(twelve["estimate_kp"], time["estimate_kp"], 1e-12)
    assert twelve["n_vp"] == time["n_vp"] and twelve["n_kp"] == time["n_kp"]
    assert "cumulative incidence" in twelve["definition"]
    assert "Aalen–Johansen" in twelve["definition"]
    # The difference and its SE from the two estimates (independent groups).
    se = (twelve["unadjusted_high"] - twelve["unadjusted_low"]) / (2 * 1.959963984540054)
    close(twelve["unadjusted"], twelve["estimate_kp"] - twelve["estimate_vp"], 1e-12)
    assert 0.005 < se < 0.03


def test_twelve_month_row_adjusted_is_iptw_cumulative_incidence(demo):
    table = compare_procedures(demo, outcomes=["adjacent_fracture_12m"], n_boot=40)
    row = table.iloc[0]
    assert row["adjusted_method"].startswith("IPTW-weighted cumulative incidence at 365 days")
    assert "g-computation not used" in row["note"]
    assert row["adjusted_low"] < row["adjusted"] < row["adjusted_high"]
    assert row["rr_adjusted_low"] < row["rr_adjusted"] < row["rr_adjusted_high"]
    # The demo has no true procedure effect beyond 20% vs 18%: the adjusted difference lies
    # within a few points of it.
    assert -0.08 < row["adjusted"] < 0.04


def test_fracture_survival_tables_by_hand():
    d = pd.DataFrame({
        "procedure": [VP] * 4 + [KP] * 4,
        "adjacent_fracture": pd.array([True, False, True, False, False, True, False, False],
                                      dtype="boolean"),
        "adjacent_fracture_days": [50, None, 200, None, None, 400, None, None],
        "followup_days": [300, 100, 500, 800, 90, 700, 365, 1000],
        "died": pd.array([False, True, False, False, False, False, True, False],
                         dtype="boolean"),
        "death_days": [None, 120, None, None, None, None, 365, None],
        "age": [70, 75, 80, 85, 72, 77, 82, 87],
    })
    fs = fracture_survival(d)
    table = fs.at_risk_table.set_index(["procedure", "time"])
    # VP times 50 (event), 100, 200 (event), 800; KP 90, 400 (event), 365, 1000.
    assert table.loc[(VP, 90), "at_risk"] == 3 and table.loc[(VP, 90), "cumulative_events"] == 1
    assert table.loc[(VP, 365), "at_risk"] == 1
    assert table.loc[(VP, 365), "cumulative_events"] == 2
    assert table.loc[(KP, 90), "at_risk"] == 4 and table.loc[(KP, 180), "at_risk"] == 3
    assert table.loc[(KP, 730), "cumulative_events"] == 1
    assert (fs.n_vp, fs.n_kp, fs.events_vp, fs.events_kp) == (4, 4, 2, 1)
    assert fs.competing_risk
    km_vp = fs.km[fs.km["procedure"] == VP]
    close(km_vp["survival"].iloc[0], 0.75, 1e-12)  # one of four at day 50
    assert fs.cox.empty and any("Cox model skipped" in n for n in fs.notes)
    cif = fs.cumulative_incidence
    assert set(cif["procedure"]) == {VP, KP}
    assert fs.logrank is not None and 0 <= fs.logrank.p_value <= 1


def test_fracture_survival_cox_on_demo(demo):
    fs = fracture_survival(demo)
    assert fs.cox["term"].iloc[0] == "procedure[kyphoplasty]"
    assert list(fs.at_risk_table["time"].unique()) == list(comparison.AT_RISK_DAYS)


# --------------------------------------------------------------------------------------------
# Pain mixed model
# --------------------------------------------------------------------------------------------


def balanced_pain(n_per_group: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 2 * n_per_group
    kp = np.repeat([1, 0], n_per_group)
    patient = rng.normal(0, 1.0, n)
    base = rng.normal(7.5, 1.0, n)
    age = rng.normal(75, 8, n)
    data = {"record_id": [f"R{i}" for i in range(n)], "patient_id": [f"P{i}" for i in range(n)],
            "procedure": np.where(kp == 1, KP, VP), "pain_baseline": base, "age": age}
    for j, visit in enumerate(["day1", "week1", "month1", "month3", "month6", "month12"]):
        data[f"pain_{visit}"] = (5 - 0.3 * j + 0.4 * base - 0.5 * kp - 0.1 * j * kp + patient
                                 + rng.normal(0, 0.8, n))
    return pd.DataFrame(data)


def test_mixed_model_equals_ols_for_balanced_complete_data():
    d = balanced_pain()
    m = pain_mixed_model(d, covariates=("age",))
    visits = ["day1", "week1", "month1", "month3", "month6", "month12"]
    long = pd.concat([pd.DataFrame({"pain": d[f"pain_{v}"], "visit": v,
                                    "kp": (d["procedure"] == KP).astype(float),
                                    "pain_baseline": d["pain_baseline"], "age": d["age"]})
                      for v in visits], ignore_index=True)
    long["visit"] = pd.Categorical(long["visit"], categories=visits)
    ols = smf.ols("pain ~ C(visit) * kp + pain_baseline + age", long).fit()
    for i, v in enumerate(visits):
        expected = ols.params["kp"] + (ols.params[f"C(visit)[T.{v}]:kp"] if i else 0.0)
        close(m.contrasts["difference"].iloc[i], expected, 1e-8)
    assert m.contrasts["visit"].tolist() == visits
    assert m.interaction_df == 5 and 0 <= m.interaction_p <= 1
    assert m.n_patients == 80 and m.n_observations == 480
    assert (m.contrasts["n_kp"] == 40).all()


def test_mixed_model_drops_sparse_visits_and_falls_back_to_record_id():
    d = balanced_pain()
    d.loc[d.index[5:], "pain_month12"] = np.nan  # 5 scores left, all kyphoplasty
    d["patient_id"] = None
    m = pain_mixed_model(d, covariates=("age",))
    assert m.visits_dropped == ("month12",)
    assert any("visit month12 dropped" in note for note in m.notes)
    assert "month12" not in set(m.contrasts["visit"])
    assert m.n_patients == 80  # record_id used as the patient


# --------------------------------------------------------------------------------------------
# Minimum detectable differences
# --------------------------------------------------------------------------------------------


def test_minimum_detectable_differences_have_target_power(demo):
    from statsmodels.stats.power import TTestIndPower
    from statsmodels.stats.proportion import power_proportions_2indep

    mdd = minimum_detectable_differences(demo, ["cement_leakage", "duration_min"]).set_index(
        "outcome")
    leak = mdd.loc["cement_leakage"]
    power = power_proportions_2indep(leak["mdd_increase"], leak["reference"], leak["n_kp"],
                                     ratio=leak["n_vp"] / leak["n_kp"]).power
    close(power, 0.8, 1e-6)
    power = power_proportions_2indep(leak["mdd_decrease"], 1 - leak["reference"],
                                     leak["n_kp"], ratio=leak["n_vp"] / leak["n_kp"]).power
    close(power, 0.8, 1e-6)
    dur = mdd.loc["duration_min"]
    power = TTestIndPower().power(dur["mdd_increase"] / dur["reference"], dur["n_kp"],
                                  alpha=0.05, ratio=dur["n_vp"] / dur["n_kp"])
    close(power, 0.8, 1e-6)
    assert dur["unit"] == "minutes"


def test_minimum_detectable_differences_notes():
    d = synthetic(200)
    d["cement_leakage"] = pd.array([False] * len(d), dtype="boolean")
    out = minimum_detectable_differences(d, ["cement_leakage", "time_to_fracture"])
    assert out["mdd_increase"].isna().all()
    assert out["note"].str.len().gt(0).all()


def test_fracture_survival_without_models_gives_the_same_curves():
    """models=False skips the log-rank test and the Cox model only."""
    from data.demo import demo_records

    records = demo_records(2000, seed=4)
    full = fracture_survival(records)
    curves = fracture_survival(records, models=False)
    pd.testing.assert_frame_equal(full.km, curves.km)
    pd.testing.assert_frame_equal(full.at_risk_table, curves.at_risk_table)
    pd.testing.assert_frame_equal(full.cumulative_incidence, curves.cumulative_incidence)
    assert full.logrank is not None and len(full.cox) > 0
    assert curves.logrank is None and curves.cox.empty
