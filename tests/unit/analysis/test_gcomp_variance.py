"""The g-computation interval has no Monte-Carlo error by default (issue 12, item 7.4).

It used to be a 200-replicate bootstrap whose limits moved with the seed (embolism RD upper
limit from -0.0099 to -0.0074 across seeds 0-3 on 5,000 demo records). The default is now
the influence-function (sandwich) variance of the standardised risks. Reference: R glm() +
sandwich (estfun, bread), the estimator of stdReg::stdGlm, computed once by
tests/results/gcomp_influence.R into tests/results/gcomp_influence.json, with a 4,000-
replicate R bootstrap SE as a plausibility check.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from analysis.adjustment import standardised_risks
from analysis.comparison import compare_procedures

RESULTS = Path(__file__).resolve().parents[2] / "results"
COVARIATES = ["age", "sex", "etiology", "levels_treated"]
REFERENCE = json.loads((RESULTS / "gcomp_influence.json").read_text())


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    return pd.read_csv(RESULTS / "gcomp_influence_data.csv")


@pytest.mark.parametrize("outcome", ["pulmonary_embolism", "cement_leakage"])
def test_influence_function_interval_matches_r(records, outcome):
    ref = REFERENCE[outcome]
    r = standardised_risks(records, outcome, covariates=COVARIATES)
    got = [r.risk_kp, r.risk_vp, r.risk_difference, r.se_rd, r.rd_low, r.rd_high,
           r.risk_ratio, r.rr_low, r.rr_high]
    expected = [ref[k] for k in ("risk_kp", "risk_vp", "risk_difference", "se_rd", "rd_low",
                                 "rd_high", "risk_ratio", "rr_low", "rr_high")]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(r.p_value, ref["p_value"], rtol=1e-5)
    # Not the conditional delta method (model variance only), which is narrower.
    assert abs(r.se_rd / ref["bootstrap_se_rd"] - 1) < 0.05
    assert r.n_boot == 0 and r.mc_error == 0.0
    assert "no Monte-Carlo error" in r.method


def test_default_limits_do_not_move_with_the_seed(records):
    runs = [standardised_risks(records, "pulmonary_embolism", covariates=COVARIATES, seed=s)
            for s in (0, 1, 2)]
    assert len({(r.rd_low, r.rd_high, r.rr_low, r.rr_high) for r in runs}) == 1
    assert all(r.mc_error == 0.0 for r in runs)


def test_bootstrap_option_reports_its_monte_carlo_error(records):
    r = standardised_risks(records, "pulmonary_embolism", covariates=COVARIATES, n_boot=200,
                           seed=3)
    assert r.n_boot == 200
    # Normal approximation of the MC SE of a 2.5% / 97.5% percentile: se·sqrt(a(1-a)/B)/φ(z).
    expected = r.se_rd * math.sqrt(0.025 * 0.975 / 200) / st.norm.pdf(st.norm.isf(0.025))
    assert r.mc_error == pytest.approx(expected, rel=1e-12)
    assert 0.15 * r.se_rd < r.mc_error < 0.22 * r.se_rd
    assert f"Monte-Carlo SE of the CI limits ≈ {r.mc_error:.2g}" in r.method


def test_compare_procedures_adjusted_rd_is_seed_free(records):
    tables = [compare_procedures(records, ["pulmonary_embolism"], covariates=COVARIATES,
                                 seed=s).iloc[0] for s in (0, 5)]
    assert tables[0]["adjusted_high"] == tables[1]["adjusted_high"]
    np.testing.assert_allclose(tables[0]["adjusted_high"],
                               REFERENCE["pulmonary_embolism"]["rd_high"], rtol=1e-6)
    assert "no Monte-Carlo error" in tables[0]["adjusted_method"]
