"""Tests of analysis.adjustment: propensity scores, IPTW, g-computation, SMDs, model fitters.

Sources of the expected values (never the functions under test):

* ``iptw_toy`` and ``glm_closed_forms``: tests/fixtures/stats-reference-cases.json (closed
  forms: direct standardisation, Woolf 1955, McCullagh & Nelder 1989; SMD per Austin 2009).
* SMDs, weighted variances (Austin & Stuart 2015) and the Yang & Dalton (2012) multi-level
  SMD computed by hand in the tests from their formulas.
* The IPTW sandwich standard error computed by hand: for ``y ~ kp`` with weights w the HC0
  variance of the difference is Σ_1 w²e² / (Σ_1 w)² + Σ_0 w²e² / (Σ_0 w)².
* statsmodels (GLM Binomial / Gamma, OLS) as an independent implementation of the fitters,
  and the methods note's g-computation recipe written out with ``smf.logit``.
* A simulated cohort with known confounding: treatment depends on a confounder that also
  raises the outcome; the true conditional and marginal risk difference is 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from analysis._kernels import _fit_cox_efron, _fit_gamma_log, _fit_logistic, _fit_ols
from analysis.adjustment import (
    PropensityResult,
    covariate_design,
    gcomputation,
    iptw_effect,
    propensity_weights,
    smd_categorical,
    standardised_difference,
    standardised_risks,
)
from analysis.errors import InsufficientDataError
from tests.reference import close

KP, VP = "kyphoplasty", "vertebroplasty"


def toy_records(case: dict) -> pd.DataFrame:
    """One row per patient from the iptw_toy cells (x, t, events, n)."""
    rows = []
    for x, t, events, n in case["inputs"]["cells_x_t_events_n"]:
        rows += [(x, t, int(i < events)) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["x", "t", "y"])
    frame["procedure"] = np.where(frame["t"] == 1, KP, VP)
    return frame


def confounded_cohort(n: int = 6000, seed: int = 11) -> pd.DataFrame:
    """Treatment and outcome both depend on `severity`; no effect of treatment at all."""
    rng = np.random.default_rng(seed)
    severity = rng.normal(size=n)
    group = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    shift = pd.Series(group).map({"a": 0.0, "b": 0.4, "c": -0.4}).to_numpy()
    kp = rng.random(n) < 1 / (1 + np.exp(-(0.2 + 1.0 * severity + shift)))
    risk = 1 / (1 + np.exp(-(-1.0 + 0.9 * severity + 0.5 * shift)))
    y = rng.random(n) < risk
    return pd.DataFrame({
        "procedure": np.where(kp, KP, VP),
        "severity": severity,
        "group": group,
        "y": pd.array(y, dtype="boolean"),
    })


# --------------------------------------------------------------------------------------------
# Reference case iptw_toy
# --------------------------------------------------------------------------------------------


def test_iptw_toy_ate(cases):
    case = cases["iptw_toy"]
    exp, tol = case["expected"], case["tol"]
    d = toy_records(case)
    ps = propensity_weights(d, covariates=["x"], stabilised=False)
    # Saturated model: the scores are the observed treated shares 0.3 and 0.7.
    scores = ps.scores.groupby(d["x"]).agg(["min", "max"])
    np.testing.assert_allclose(scores.to_numpy(), [[0.3, 0.3], [0.7, 0.7]], atol=1e-9)
    r = iptw_effect(d, "y", ps)
    close(r.estimate_kp, exp["ate_risk1"], tol)
    close(r.estimate_vp, exp["ate_risk0"], tol)
    close(r.difference, exp["ate_rd"], tol)
    close(r.risk_ratio, exp["ate_rr"], tol)
    close(r.se, exp["ipw_rd_robust_se"], tol)
    assert r.kind == "binary"


def test_iptw_toy_att_weights(cases):
    case = cases["iptw_toy"]
    exp, tol = case["expected"], case["tol"]
    d = toy_records(case)
    ps = propensity_weights(d, covariates=["x"], estimand="ATT", stabilised=False)
    r = iptw_effect(d, "y", ps.weights)
    close(r.estimate_kp, exp["att_risk1"], tol)
    close(r.estimate_vp, exp["att_risk0"], tol)


def test_iptw_toy_smd(cases):
    case = cases["iptw_toy"]
    exp, tol = case["expected"], case["tol"]
    d = toy_records(case)
    close(standardised_difference(d["x"], d["t"]), exp["smd_x_before"], tol)
    ps = propensity_weights(d, covariates=["x"], stabilised=False)
    close(standardised_difference(d["x"], d["t"], ps.weights), exp["smd_x_after_ate"], tol)
    row = ps.balance.set_index("covariate").loc["x"]
    close(row["smd_before"], exp["smd_x_before"], tol)
    close(row["smd_after"], exp["smd_x_after_ate"], tol)
    treated = [72, 78, 81, 69, 85, 77]
    control = [70, 66, 74, 68, 71, 73, 65]
    got = standardised_difference(treated + control, [1] * 6 + [0] * 7)
    close(got, exp["smd_age_example"], tol)


def test_iptw_toy_gcomputation_matches_methods_note_recipe(cases):
    """Main-effects logistic model: compare with the recipe of methods note §1.4."""
    d = toy_records(cases["iptw_toy"])
    m = smf.logit("y ~ t + x", d).fit(disp=0)
    p1 = m.predict(d.assign(t=1)).mean()
    p0 = m.predict(d.assign(t=0)).mean()
    r = standardised_risks(d, "y", covariates=["x"], n_boot=0)
    close(r.risk_kp, p1, 1e-8)
    close(r.risk_vp, p0, 1e-8)
    close(r.risk_ratio, p1 / p0, 1e-8)
    # The data have a constant RD of 0.1 in both strata of x: close to it, not equal
    # (the main-effects logistic model is not saturated).
    close(r.risk_difference, 0.1, 0.01)


# --------------------------------------------------------------------------------------------
# Reference case glm_closed_forms
# --------------------------------------------------------------------------------------------


def test_glm_closed_forms_logistic(cases):
    case = cases["glm_closed_forms"]
    exp, tol = case["expected"], case["tol"]
    cells = np.array(case["inputs"]["logit_cells_kypho_leak_n"], dtype=float)
    x = np.column_stack([np.ones(len(cells)), cells[:, 0]])
    fit = _fit_logistic(x, cells[:, 1], weights=cells[:, 2], covariance=True)
    b, se = fit.params[1], math.sqrt(fit.cov[1, 1])
    close(math.exp(b), exp["logit_or"], tol)
    close(se, exp["logit_se"], tol)
    z = 1.959963984540054
    close(math.exp(b - z * se), exp["logit_or_ci"][0], tol)
    close(math.exp(b + z * se), exp["logit_or_ci"][1], tol)


def test_glm_closed_forms_gamma(cases):
    case = cases["glm_closed_forms"]
    exp, tol = case["expected"], case["tol"]
    vp, kp = case["inputs"]["cost_vp"], case["inputs"]["cost_kp"]
    y = np.array(vp + kp, dtype=float)
    x = np.column_stack([np.ones(y.size), [0.0] * len(vp) + [1.0] * len(kp)])
    beta, cov, scale, df, converged = _fit_gamma_log(x, y)
    assert converged and df == y.size - 2
    se = math.sqrt(cov[1, 1])
    close(math.exp(beta[1]), exp["gamma_ratio"], tol)
    close(scale, exp["gamma_scale"], tol)
    close(se, exp["gamma_se"], tol)
    z = 1.959963984540054
    close(math.exp(beta[1] - z * se), exp["gamma_ratio_ci_z"][0], tol)
    close(math.exp(beta[1] + z * se), exp["gamma_ratio_ci_z"][1], tol)


# --------------------------------------------------------------------------------------------
# Standardised differences
# --------------------------------------------------------------------------------------------


def test_smd_continuous_and_binary_by_hand():
    x = [1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 5.0]
    t = [1, 1, 1, 1, 0, 0, 0]
    # Group 1: mean 2.5, var 1.6667; group 0: mean 3, var 3.
    expected = (2.5 - 3.0) / math.sqrt((5 / 3 + 3.0) / 2)
    close(standardised_difference(x, t), expected, 1e-12)
    b = [1, 1, 0, 0, 1, 0, 0]
    # p1 = 0.5, p0 = 1/3.
    p1, p0 = 0.5, 1 / 3
    expected = (p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    close(standardised_difference(b, t), expected, 1e-12)


def test_weighted_smd_austin_stuart_by_hand():
    x = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0])
    t = np.array([1, 1, 1, 0, 0, 0])
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.5, 2.0])

    def wstats(xs, ws):
        mean = (ws * xs).sum() / ws.sum()
        var = ws.sum() / (ws.sum() ** 2 - (ws**2).sum()) * (ws * (xs - mean) ** 2).sum()
        return mean, var

    m1, v1 = wstats(x[:3], w[:3])
    m0, v0 = wstats(x[3:], w[3:])
    close(standardised_difference(x, t, w), (m1 - m0) / math.sqrt((v1 + v0) / 2), 1e-12)
    # With unit weights the weighted SMD is the unweighted one.
    close(standardised_difference(x, t, np.ones(6)), standardised_difference(x, t), 1e-12)


def test_yang_dalton_two_levels_equals_binary_smd():
    levels = ["a", "b", "b", "a", "a", "b", "b", "b", "a"]
    t = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    binary = [1.0 if v == "b" else 0.0 for v in levels]
    close(smd_categorical(levels, t), abs(standardised_difference(binary, t)), 1e-12)
    w = [1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0, 0.5, 2.0]
    close(smd_categorical(levels, t, w), abs(standardised_difference(binary, t, w)), 1e-12)


def test_yang_dalton_three_levels_by_hand():
    levels = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["a"] * 2 + ["b"] * 4 + ["c"] * 4
    t = [1] * 10 + [0] * 10
    p1 = np.array([0.3, 0.2])  # levels b, c among treated
    p0 = np.array([0.4, 0.4])
    s = np.array([
        [(p1[0] * (1 - p1[0]) + p0[0] * (1 - p0[0])) / 2, -(p1[0] * p1[1] + p0[0] * p0[1]) / 2],
        [-(p1[0] * p1[1] + p0[0] * p0[1]) / 2, (p1[1] * (1 - p1[1]) + p0[1] * (1 - p0[1])) / 2],
    ])
    d = p1 - p0
    det = s[0, 0] * s[1, 1] - s[0, 1] ** 2
    inv = np.array([[s[1, 1], -s[0, 1]], [-s[0, 1], s[0, 0]]]) / det
    expected = math.sqrt(d @ inv @ d)
    close(smd_categorical(levels, t), expected, 1e-12)
    # The reference level does not matter.
    relabel = {"a": "z", "b": "b", "c": "c"}
    close(smd_categorical([relabel[v] for v in levels], t), expected, 1e-12)


# --------------------------------------------------------------------------------------------
# Confounded cohort: unadjusted biased, IPTW and g-computation near the truth (0)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return confounded_cohort()


def test_known_confounding_is_removed(cohort):
    y = cohort["y"].astype(float).to_numpy()
    kp = (cohort["procedure"] == KP).to_numpy()
    crude = y[kp].mean() - y[~kp].mean()
    se_crude = math.sqrt(y[kp].var() / kp.sum() + y[~kp].var() / (~kp).sum())
    assert crude > 6 * se_crude  # clearly biased away from the true 0

    ps = propensity_weights(cohort, covariates=["severity", "group"])
    assert bool(ps.balance["balanced_after"].all())
    assert (ps.balance["smd_after"].abs() < 0.1).all()
    assert ps.balance.set_index("covariate").loc["severity", "smd_before"] > 0.3
    ip = iptw_effect(cohort, "y", ps)
    assert abs(ip.difference) < 3 * ip.se
    assert ip.low < 0 < ip.high

    gc = standardised_risks(cohort, "y", covariates=["severity", "group"], n_boot=100, seed=1)
    assert abs(gc.risk_difference) < 3 * gc.se_rd
    assert gc.rd_low < 0 < gc.rd_high
    assert gc.rr_low < 1 < gc.rr_high
    assert gc.n_boot == 100 and gc.n_boot_failed == 0


def test_overlap_weights_balance_exactly(cohort):
    ps = propensity_weights(cohort, covariates=["severity", "group"], estimand="overlap")
    # Overlap weights with a logistic PS balance the model's covariate means exactly
    # (Li, Morgan & Zaslavsky 2018), so every weighted difference in means is 0.
    np.testing.assert_allclose(ps.balance["smd_after"], 0.0, atol=1e-6)
    assert ps.estimand == "overlap" and not ps.stabilised


def test_stabilised_weights_and_summary(cohort):
    ps = propensity_weights(cohort, covariates=["severity", "group"])
    t = (cohort["procedure"] == KP).to_numpy()
    e = ps.scores.to_numpy()
    w = ps.weights.to_numpy()
    expected = np.where(t, t.mean() / e, (1 - t.mean()) / (1 - e))
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    summary = ps.weight_summary.set_index("group")
    kish = w[t].sum() ** 2 / (w[t] ** 2).sum()
    close(summary.loc[KP, "ess"], kish, 1e-9)
    close(summary.loc[KP, "max"], w[t].max(), 1e-12)
    assert 0.5 < ps.c_statistic < 1
    assert ps.formula.startswith("kp ~ severity + C(group)")
    assert ps.n_used == len(cohort) and ps.n_dropped_missing == 0


def test_gcomputation_bootstrap_agrees_with_influence_function(cohort):
    boot = standardised_risks(cohort, "y", covariates=["severity", "group"], n_boot=150)
    delta = standardised_risks(cohort, "y", covariates=["severity", "group"], n_boot=0)
    close(boot.risk_difference, delta.risk_difference, 1e-12)
    assert 0.75 < boot.se_rd / delta.se_rd < 1.33
    assert "influence-function" in delta.method and "bootstrap" in boot.method


def test_m_out_of_n_bootstrap_scales_to_full_sample(cohort, monkeypatch):
    full = standardised_risks(cohort, "y", covariates=["severity", "group"], n_boot=150)
    monkeypatch.setattr(gcomputation, "BOOTSTRAP_MAX_N", 1500)
    sub = standardised_risks(cohort, "y", covariates=["severity", "group"], n_boot=150)
    assert "m-out-of-n" in sub.method and "m = 1,500" in sub.method
    close(sub.risk_difference, full.risk_difference, 1e-12)  # the estimate uses everyone
    assert 0.7 < sub.se_rd / full.se_rd < 1.4
    assert sub.rd_low < sub.risk_difference < sub.rd_high


# --------------------------------------------------------------------------------------------
# IPTW effect
# --------------------------------------------------------------------------------------------


def test_iptw_continuous_sandwich_by_hand():
    rng = np.random.default_rng(3)
    n = 400
    d = pd.DataFrame({"procedure": np.where(rng.random(n) < 0.4, KP, VP),
                      "y": rng.normal(10, 3, n)})
    w = rng.uniform(0.5, 3.0, n)
    r = iptw_effect(d, "y", w)
    t = (d["procedure"] == KP).to_numpy()
    y = d["y"].to_numpy()
    m1, m0 = np.average(y[t], weights=w[t]), np.average(y[~t], weights=w[~t])
    var = ((w[t] ** 2 * (y[t] - m1) ** 2).sum() / w[t].sum() ** 2
           + (w[~t] ** 2 * (y[~t] - m0) ** 2).sum() / w[~t].sum() ** 2)
    close(r.difference, m1 - m0, 1e-9)
    close(r.se, math.sqrt(var), 1e-9)
    assert r.kind == "continuous" and math.isnan(r.risk_ratio)


def test_iptw_boundary_risk_and_trimmed_weights():
    d = pd.DataFrame({"procedure": [KP] * 5 + [VP] * 5,
                      "y": [0, 0, 0, 0, 0, 1, 0, 1, 0, 0]})
    w = np.array([1.0, 2.0, 1.0, 1.0, 0.0, 1.0, 1.0, 2.0, 1.0, np.nan])
    r = iptw_effect(d, "y", w)
    assert r.n_kp == 4 and r.n_vp == 4  # weight 0 (trimmed) and NaN left out
    close(r.estimate_kp, 0.0, 1e-12)
    close(r.estimate_vp, 3 / 5, 1e-12)
    assert "Gaussian" in r.method


def test_iptw_needs_two_per_group():
    d = pd.DataFrame({"procedure": [KP, VP, VP], "y": [1, 0, 1]})
    with pytest.raises(InsufficientDataError):
        iptw_effect(d, "y", np.ones(3))


# --------------------------------------------------------------------------------------------
# Propensity model details
# --------------------------------------------------------------------------------------------


def test_missing_values_imputed_and_dropped():
    rng = np.random.default_rng(5)
    n = 300
    age = rng.normal(75, 8, n)
    age[:30] = np.nan
    sex = pd.Series(rng.choice(["F", "M"], n), dtype="object")
    sex[30:40] = None
    d = pd.DataFrame({"procedure": rng.choice([KP, VP], n), "age": age, "sex": sex,
                      "country": "US"})
    ps = propensity_weights(d, covariates=["age", "sex", "country"])
    assert ps.n_dropped_missing == 10
    assert ps.imputed == {"age": 30}
    assert "country (one value only)" in ps.dropped_covariates
    assert "age_missing" in ps.formula
    assert ps.weights.isna().sum() == 10


def test_positivity_warning_and_trimming():
    rng = np.random.default_rng(9)
    n = 2000
    x = rng.normal(size=n)
    kp = rng.random(n) < 1 / (1 + np.exp(-4.0 * x))
    d = pd.DataFrame({"procedure": np.where(kp, KP, VP), "x": x})
    ps = propensity_weights(d, covariates=["x"])
    assert ps.positivity_warning is not None and "0.025" in ps.positivity_warning
    trimmed = propensity_weights(d, covariates=["x"], trim=0.05)
    e = trimmed.scores
    lo, hi = e[kp].quantile(0.05), e[~kp].quantile(0.95)
    outside = (e < lo) | (e > hi)
    assert trimmed.n_trimmed == int(outside.sum()) > 0
    assert (trimmed.weights[outside] == 0).all() and (trimmed.weights[~outside] > 0).all()
    assert trimmed.weights.max() < ps.weights.max()


def test_propensity_needs_both_groups():
    d = pd.DataFrame({"procedure": [KP] * 5, "age": [70, 71, 72, 73, 74]})
    with pytest.raises(InsufficientDataError):
        propensity_weights(d, covariates=["age"])
    assert isinstance(propensity_weights(pd.DataFrame({
        "procedure": [KP, VP] * 5, "age": range(10)}), covariates=["age"]), PropensityResult)


def test_covariate_design_collinear_and_constant_columns():
    d = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "b": [2.0, 4.0, 6.0, 8.0, 10.0,
                                                                   12.0],
                      "c": ["x", "y", "x", "y", "x", "y"], "k": [1.0] * 6})
    design = covariate_design(d, ["a", "b", "c", "k", "absent"], intercept=True)
    assert design.names == ("Intercept", "a", "c[y]")
    assert "b (collinear with other columns)" in design.dropped
    assert "k (one value only)" in design.dropped
    assert "absent (not in the data)" in design.dropped


# --------------------------------------------------------------------------------------------
# Fitters against statsmodels / analysis.survival
# --------------------------------------------------------------------------------------------


def test_fitters_match_statsmodels():
    rng = np.random.default_rng(1)
    n = 1500
    x = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(size=n),
                         rng.integers(0, 3, n) == 1]).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ [-0.5, 0.7, 0.3, -0.4])))).astype(float)
    fit = _fit_logistic(x, y, covariance=True)
    ref = sm.GLM(y, x, family=sm.families.Binomial()).fit(tol=1e-12)
    np.testing.assert_allclose(fit.params, ref.params, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), ref.bse, atol=1e-8)
    yc = x @ [1.0, 2.0, 3.0, 4.0] + rng.normal(size=n) * (1 + x[:, 1])
    for cov_type in ("nonrobust", "HC3"):
        beta, cov, df = _fit_ols(x, yc, cov_type)
        ref = sm.OLS(yc, x).fit(cov_type=cov_type)
        np.testing.assert_allclose(beta, ref.params, atol=1e-10)
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref.bse, rtol=1e-9)
        assert df == n - 4
    mask = rng.random(n) < 0.7
    beta, cov, _ = _fit_ols(x, yc, "HC3", mask)
    ref = sm.OLS(yc[mask], x[mask]).fit(cov_type="HC3")
    np.testing.assert_allclose(beta, ref.params, atol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref.bse, rtol=1e-9)
    cost = np.exp(x @ [8.0, 0.3, 0.1, -0.2]) * rng.gamma(2.0, 0.5, n)
    beta, cov, scale, _, _ = _fit_gamma_log(x, cost)
    ref = sm.GLM(cost, x, family=sm.families.Gamma(link=sm.families.links.Log())).fit(
        tol=1e-12)
    np.testing.assert_allclose(beta, ref.params, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref.bse, rtol=1e-6)
    close(scale, ref.scale, 1e-8)


def test_vectorised_cox_matches_cox_model_with_ties():
    from analysis.survival import cox_model

    rng = np.random.default_rng(2)
    n = 1200
    kp = rng.integers(0, 2, n).astype(float)
    age = rng.normal(size=n)
    grp = (rng.random(n) < 0.3).astype(float)
    time = np.ceil(rng.exponential(20 * np.exp(-(0.5 * kp + 0.3 * age - 0.2 * grp))))
    event = (rng.random(n) < 0.7).astype(float)
    x = np.column_stack([kp, age, grp])
    fit = _fit_cox_efron(time, event, x)
    table = cox_model(pd.DataFrame({"t": time, "e": event, "kp": kp, "age": age, "grp": grp}),
                      "t", "e", ["kp", "age", "grp"])
    np.testing.assert_allclose(fit.params, table["coef"], atol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), table["se"], rtol=1e-7)
    assert fit.converged


def test_vectorised_cox_blocks_and_view_match_cox_model(monkeypatch):
    """Several sparse row blocks, records censored before the first event (dropped) and a
    strided view of a wider design (as compare_procedures passes it) give cox_model's fit."""
    import analysis._kernels as kernels
    from analysis.survival import cox_model

    monkeypatch.setattr(kernels, "_GROUP_BLOCK", 97)
    rng = np.random.default_rng(11)
    n = 900
    wide = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(size=n),
                            (rng.random(n) < 0.4), rng.normal(size=n)]).astype(float)
    x = wide[:, 1:4]  # not C-contiguous
    assert not x.flags["C_CONTIGUOUS"]
    time = np.ceil(rng.exponential(30 * np.exp(-(0.4 * x[:, 0] + 0.3 * x[:, 1]))))
    event = (rng.random(n) < 0.6).astype(float)
    time[:40], event[:40] = 0.5, 0.0  # censored before any event: carry no information
    fit = _fit_cox_efron(time, event, x)
    frame = pd.DataFrame({"t": time, "e": event, "kp": x[:, 0], "age": x[:, 1], "grp": x[:, 2]})
    table = cox_model(frame, "t", "e", ["kp", "age", "grp"])
    np.testing.assert_allclose(fit.params, table["coef"], atol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), table["se"], rtol=1e-7)
