"""Tests of analysis.survival: Kaplan–Meier, log-rank, Cox (Efron), cumulative incidence.

Sources of the expected values (never the functions under test):

* ``km_gehan_6mp``: tests/fixtures/stats-reference-cases.json (Freireich/Gehan 6-MP arm,
  R ``survfit``: survival, Greenwood SE, log(-log) limits; median 23).
* Gehan data, both arms (MASS::gehan): R ``survdiff(Surv(time, cens) ~ treat)`` prints
  Chisq = 16.8 on 1 df, p = 4.17e-05; R ``coxph(Surv(time, cens) ~ treat)`` (Efron ties)
  gives coef 1.572, exp(coef) 4.817, se(coef) 0.412, p = 0.00014 for control vs 6-MP.
* Therneau & Grambsch (2000), Modeling Survival Data, Appendix E.1.2 ("data set 1",
  Efron): closed forms in r = exp(beta) for the information and the score residuals, and
  beta-hat = log(2 sqrt(23/3) cos(acos((45/23) sqrt(3/23)) / 3)) = 1.676857; as used in
  R survival's tests/book2.R.
* lifelines 0.30.3 (CoxPHFitter, AalenJohansenFitter) as an independent implementation,
  on data without tied times (where its tie handling does not matter).
* Hand calculations written in the tests (Aalen–Johansen on five patients) and
  invariants (CIF of all causes + overall KM = 1; KM without censoring = 1 - ECDF).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from analysis.errors import InsufficientDataError
from analysis.survival import (
    _efron_score_residuals,
    cox_model,
    cumulative_incidence,
    kaplan_meier,
    logrank_test,
)

# Gehan (1965) 6-MP trial: remission times (weeks); control arm has no censoring.
GEHAN_6MP_T = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
GEHAN_6MP_E = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
GEHAN_CTRL_T = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


@pytest.fixture(scope="module")
def gehan() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": GEHAN_6MP_T + GEHAN_CTRL_T,
            "cens": GEHAN_6MP_E + [1] * 21,
            "treat": pd.Categorical(["6-MP"] * 21 + ["control"] * 21, ["6-MP", "control"]),
        }
    )


def close(got, expected, tol):
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(expected, float), atol=tol)


# --- Kaplan–Meier --------------------------------------------------------------------------


def test_kaplan_meier_gehan_reference_case(cases):
    case = cases["km_gehan_6mp"]
    exp, tol = case["expected"], case["tol"]
    km = kaplan_meier(case["inputs"]["time"], case["inputs"]["status"])
    ev = km[km["events"] > 0]
    close(ev["time"], exp["times"], 0)
    close(ev["at_risk"], exp["n_risk"], 0)
    close(ev["survival"], exp["surv"], tol)
    close(ev["se"], exp["se_greenwood"], tol)
    close(ev["low"], exp["ci_loglog_lower"], tol)
    close(ev["high"], exp["ci_loglog_upper"], tol)
    median = km.loc[km["survival"] <= 0.5, "time"].iloc[0]
    assert median == exp["median"]


def test_kaplan_meier_lists_censoring_times_and_counts():
    km = kaplan_meier(GEHAN_6MP_T, GEHAN_6MP_E)
    assert km["time"].tolist() == sorted(set(GEHAN_6MP_T))
    assert km["events"].sum() == sum(GEHAN_6MP_E)
    assert km["censored"].sum() == 21 - sum(GEHAN_6MP_E)
    row = km.set_index("time").loc[32]
    assert (row["at_risk"], row["events"], row["censored"]) == (4, 0, 2)


def test_kaplan_meier_drops_missing_rows():
    km = kaplan_meier([5, np.nan, 3, 8, 2], [1, 1, np.nan, 0, 1])
    assert km["time"].tolist() == [2.0, 5.0, 8.0]
    assert km["survival"].tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])


def test_kaplan_meier_last_event_takes_survival_to_zero():
    km = kaplan_meier([1, 2, 3], [1, 1, 1])
    assert km["survival"].iloc[-1] == 0.0
    assert math.isnan(km["se"].iloc[-1])
    assert km["low"].iloc[-1] == 0.0 and km["high"].iloc[-1] == 0.0


def test_kaplan_meier_empty_raises():
    with pytest.raises(InsufficientDataError, match="no patients"):
        kaplan_meier([], [])
    with pytest.raises(InsufficientDataError):
        kaplan_meier([np.nan], [1])


def test_kaplan_meier_rejects_bad_input():
    with pytest.raises(ValueError):
        kaplan_meier([1, -2], [1, 0])
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [1, 2])


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.integers(1, 30), min_size=1, max_size=60))
def test_kaplan_meier_without_censoring_is_one_minus_ecdf(times):
    km = kaplan_meier(times, [1] * len(times))
    t = np.asarray(times)
    expected = [np.mean(t > u) for u in km["time"]]
    np.testing.assert_allclose(km["survival"], expected, atol=1e-12)
    assert np.all(km["low"] <= km["survival"] + 1e-12)
    assert np.all(km["survival"] <= km["high"] + 1e-12)


# --- log-rank ------------------------------------------------------------------------------


def test_logrank_gehan_matches_r_survdiff(gehan):
    r = logrank_test(gehan["time"], gehan["cens"], gehan["treat"])
    assert r.df == 1
    assert abs(r.chi2 - 16.8) <= 0.05
    assert abs(r.p_value - 4.17e-05) <= 0.005e-05


def test_logrank_stratified_by_copy_equals_unstratified_statistic_doubled(gehan):
    # Two identical strata double observed-minus-expected and its variance: chi2 doubles.
    twice = pd.concat([gehan, gehan], ignore_index=True)
    strata = np.repeat([0, 1], len(gehan))
    single = logrank_test(gehan["time"], gehan["cens"], gehan["treat"])
    stratified = logrank_test(twice["time"], twice["cens"], twice["treat"], strata=strata)
    assert stratified.chi2 == pytest.approx(2 * single.chi2, rel=1e-10)


def test_logrank_needs_two_groups_and_events():
    with pytest.raises(InsufficientDataError, match="group"):
        logrank_test([1, 2, 3], [1, 0, 1], ["KP", "KP", "KP"])
    with pytest.raises(InsufficientDataError, match="no events"):
        logrank_test([1, 2, 3, 4], [0, 0, 0, 0], ["KP", "VP", "KP", "VP"])


# --- Cox -----------------------------------------------------------------------------------


def test_cox_gehan_efron_matches_r_coxph(gehan):
    tab = cox_model(gehan, "time", "cens", ["treat"])
    assert list(tab.columns) == ["term", "hazard_ratio", "low", "high", "p_value", "coef", "se"]
    row = tab.iloc[0]
    assert row["term"] == "treat[control]"
    assert abs(row["coef"] - 1.572) <= 0.0005
    assert abs(row["hazard_ratio"] - 4.817) <= 0.0005
    assert abs(row["se"] - 0.412) <= 0.0005
    assert abs(row["p_value"] - 0.00014) <= 0.000005
    z = 1.959963984540054
    assert row["low"] == pytest.approx(math.exp(row["coef"] - z * row["se"]), rel=1e-9)


# Therneau & Grambsch Appendix E, data set 1 (sorted; the row with missing status removed).
TG_TIME = np.array([1, 1, 6, 6, 8, 9], dtype=float)
TG_STATUS = np.array([1, 0, 1, 1, 0, 1], dtype=float)
TG_X = np.array([1, 1, 1, 0, 0, 0], dtype=float)
TG_BETA_HAT = math.log(
    math.cos(math.acos((45 / 23) * math.sqrt(3 / 23)) / 3) * 2 * math.sqrt(23 / 3)
)


def tg_information(beta: float) -> float:
    r = math.exp(beta)

    def t(v: float) -> float:
        return v - v * v

    return t(r / (r + 1)) + t(r / (r + 5)) + t(r / (r + 3))


def tg_score_residuals(beta: float) -> np.ndarray:
    r = math.exp(beta)
    a, b, d = r + 1, r + 3, r + 5
    tail = 2 * r * (177 + r * (282 + r * (182 + r * (50 + 5 * r)))) / (3 * (a * b * d) ** 2)
    return np.array(
        [
            (2 * r + 3) / (3 * a**2),
            -r / (3 * a**2),
            (675 + r * (1305 + r * (756 + r * (-4 + r * (-79 - 13 * r))))) / (3 * (a * b * d) ** 2),
            r * (1 / (3 * a**2) - a / (2 * b**2) - b / (2 * d**2)),
            tail,
            tail,
        ]
    )


@pytest.mark.parametrize("beta", [0.0, TG_BETA_HAT, -0.7])
def test_efron_score_residuals_match_therneau_grambsch(beta):
    got = _efron_score_residuals(TG_TIME, TG_STATUS, TG_X[:, None], np.array([beta]), None)
    np.testing.assert_allclose(got[:, 0], tg_score_residuals(beta), atol=1e-12)


def test_cox_efron_fit_and_robust_se_match_therneau_grambsch():
    d = pd.DataFrame({"t": TG_TIME, "s": TG_STATUS, "x": TG_X, "id": np.arange(6)})
    naive = cox_model(d, "t", "s", ["x"]).iloc[0]
    assert naive["coef"] == pytest.approx(TG_BETA_HAT, abs=1e-6)
    assert naive["se"] == pytest.approx(1 / math.sqrt(tg_information(TG_BETA_HAT)), rel=1e-5)
    robust = cox_model(d, "t", "s", ["x"], cluster="id").iloc[0]
    resid = tg_score_residuals(TG_BETA_HAT)
    expected_se = math.sqrt(np.sum(resid**2)) / tg_information(TG_BETA_HAT)
    assert robust["se"] == pytest.approx(expected_se, rel=1e-5)
    assert robust["coef"] == naive["coef"]


def _untied_data(seed: int, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "t": rng.exponential(10, n),
            "e": rng.integers(0, 2, n),
            "age": rng.normal(75, 8, n),
            "kp": rng.integers(0, 2, n),
            "pid": np.arange(n) // 2,
            "inst": rng.integers(0, 4, n),
        }
    )


@pytest.mark.parametrize("strata", [None, "inst"])
def test_cox_cluster_robust_se_matches_lifelines_without_ties(strata):
    from lifelines import CoxPHFitter

    d = _untied_data(7)
    ours = cox_model(d, "t", "e", ["kp", "age"], strata=strata, cluster="pid")
    cols = ["t", "e", "kp", "age", "pid"] + ([strata] if strata else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CoxPHFitter().fit(
            d[cols], "t", "e", cluster_col="pid", strata=[strata] if strata else None
        )
    np.testing.assert_allclose(ours["coef"], ref.params_[["kp", "age"]], atol=1e-6)
    np.testing.assert_allclose(ours["se"], ref.standard_errors_[["kp", "age"]], rtol=1e-5)


def test_cox_robust_residuals_sum_to_zero_at_efron_estimate_with_ties():
    rng = np.random.default_rng(3)
    n = 200
    t = rng.integers(1, 15, n).astype(float)  # heavy ties
    e = rng.integers(0, 2, n).astype(float)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    d = pd.DataFrame({"t": t, "e": e, "a": x[:, 0], "b": x[:, 1]})
    coef = cox_model(d, "t", "e", ["a", "b"])["coef"].to_numpy()
    resid = _efron_score_residuals(t, e, x, coef, None)
    np.testing.assert_allclose(resid.sum(axis=0), 0.0, atol=1e-6)


def test_cox_categorical_coding_and_reference_level():
    d = _untied_data(2)
    d["proc"] = np.where(d["kp"] == 1, "KP", "VP")
    d["region"] = pd.Categorical(
        np.random.default_rng(1).choice(["north", "south", "west"], len(d)),
        categories=["west", "north", "south", "east"],  # "east" unused: dropped
    )
    tab = cox_model(d, "t", "e", ["proc", "region", "age"])
    # object column: sorted levels, "KP" first, so the term is VP vs KP
    assert tab["term"].tolist() == ["proc[VP]", "region[north]", "region[south]", "age"]
    flipped = cox_model(
        d.assign(proc=pd.Categorical(d["proc"], ["VP", "KP"])), "t", "e", ["proc", "region", "age"]
    )
    assert flipped["term"].iloc[0] == "proc[KP]"
    assert flipped["coef"].iloc[0] == pytest.approx(-tab["coef"].iloc[0], abs=1e-8)


def test_cox_matches_lifelines_efron_with_strata_and_ties(gehan):
    from lifelines import CoxPHFitter

    d = gehan.assign(
        ctrl=(gehan["treat"] == "control").astype(float), s=np.tile([0, 1], len(gehan) // 2)
    )
    ours = cox_model(d, "time", "cens", ["ctrl"], strata="s").iloc[0]
    ref = CoxPHFitter().fit(d[["time", "cens", "ctrl", "s"]], "time", "cens", strata=["s"])
    assert ours["coef"] == pytest.approx(ref.params_["ctrl"], abs=1e-6)
    assert ours["se"] == pytest.approx(ref.standard_errors_["ctrl"], rel=1e-5)


def test_cox_drops_incomplete_rows_and_checks_events():
    d = _untied_data(4, n=60)
    d.loc[:4, "age"] = np.nan
    full = cox_model(d.dropna(), "t", "e", ["age"])
    assert cox_model(d, "t", "e", ["age"]).equals(full)
    with pytest.raises(InsufficientDataError, match="no events"):
        cox_model(d.assign(e=0), "t", "e", ["age"])
    with pytest.raises(InsufficientDataError, match="constant"):
        cox_model(d.assign(c=1.0), "t", "e", ["c"])
    with pytest.raises(KeyError):
        cox_model(d, "t", "e", ["missing"])


# --- cumulative incidence ------------------------------------------------------------------


def test_cumulative_incidence_hand_computed_with_ties():
    # n=5. t=2: cause 1, F=1/5, S=4/5. t=3 (4 at risk): one cause 1 and one cause 2,
    # F += S * 1/4 = 0.2, S = 4/5 * 2/4 = 0.4. t=5 censored. t=8 (1 at risk): F += 0.4.
    cif = cumulative_incidence([2, 3, 3, 5, 8], [1, 2, 1, 0, 1])
    assert cif["time"].tolist() == [2.0, 3.0, 5.0, 8.0]
    assert cif["cumulative_incidence"].tolist() == pytest.approx([0.2, 0.4, 0.4, 0.8])
    deaths = cumulative_incidence([2, 3, 3, 5, 8], [1, 2, 1, 0, 1], event_of_interest=2)
    assert deaths["cumulative_incidence"].tolist() == pytest.approx([0.0, 0.2, 0.2, 0.2])


def test_cumulative_incidence_matches_lifelines_without_ties():
    from lifelines import AalenJohansenFitter

    rng = np.random.default_rng(9)
    t = rng.exponential(10, 150)
    code = rng.choice([0, 1, 2], 150, p=[0.3, 0.4, 0.3])
    ours = cumulative_incidence(t, code, event_of_interest=1)
    ref = AalenJohansenFitter().fit(t, code, event_of_interest=1)
    ref_cif = ref.cumulative_density_.iloc[1:, 0].to_numpy()  # lifelines adds time 0
    ref_ci = ref.confidence_interval_.iloc[1:].to_numpy()
    np.testing.assert_allclose(ours["time"], ref.cumulative_density_.index[1:])
    np.testing.assert_allclose(ours["cumulative_incidence"], ref_cif, atol=1e-12)
    positive = ours["cumulative_incidence"].to_numpy() > 0
    # lifelines gives NaN where the last patient at risk fails (0 * inf); there the term
    # is 0 by definition, and our interval stays finite.
    last = np.isnan(ref_ci).any(axis=1) & positive
    assert last.sum() == 1 and last[-1]
    assert np.isfinite(ours[["low", "high"]].to_numpy()[-1]).all()
    use = positive & ~last
    # lifelines labels its two CI columns the wrong way round: compare as min / max.
    np.testing.assert_allclose(ours["low"][use], ref_ci[use].min(axis=1), atol=1e-10)
    np.testing.assert_allclose(ours["high"][use], ref_ci[use].max(axis=1), atol=1e-10)
    assert np.all(ours.loc[~positive, ["low", "high"]].to_numpy() == 0.0)


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(hs.integers(1, 20), hs.sampled_from([0, 1, 2])), min_size=1, max_size=50))
def test_cause_specific_incidences_and_overall_survival_add_to_one(rows):
    t = [r[0] for r in rows]
    code = [r[1] for r in rows]
    f1 = cumulative_incidence(t, code, 1)
    f2 = cumulative_incidence(t, code, 2)
    km = kaplan_meier(t, [int(c > 0) for c in code])
    total = f1["cumulative_incidence"] + f2["cumulative_incidence"] + km["survival"]
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert np.all(f1["low"] <= f1["cumulative_incidence"] + 1e-12)
    assert np.all(f1["cumulative_incidence"] <= f1["high"] + 1e-12)


def test_cumulative_incidence_input_checks():
    with pytest.raises(InsufficientDataError):
        cumulative_incidence([], [])
    with pytest.raises(ValueError):
        cumulative_incidence([1, 2], [1, 1], event_of_interest=0)
    with pytest.raises(ValueError):
        cumulative_incidence([1, 2], [1, -1])
