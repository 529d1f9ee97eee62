"""OLS / ANCOVA residual df and HC3 on the rows actually fitted (issue 12, item 7.1).

Reference: R ``lm()`` and ``sandwich::vcovHC(type = "HC3")`` on the same records, computed
once by tests/results/ols_rank_on_fitted_rows.R and committed as
tests/results/ols_rank_on_fitted_rows.json (CI has no R). The records are the 71 of operator
OP-3440 in the synthetic demo data (tests/results/ols_rank_on_fitted_rows_data.csv): their
only "traumatic" record has no month-1 pain score (so that design column is all zero on the
ANCOVA's rows) and is the only traumatic record with a duration (leverage 1 in the HC3 model).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis._kernels import _fit_ols
from analysis.comparison import compare_procedures

RESULTS = Path(__file__).resolve().parents[2] / "results"
COVARIATES = ("age", "sex", "etiology", "levels_treated", "country", "fracture_age_weeks",
              "prior_fractures")


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((RESULTS / "ols_rank_on_fitted_rows.json").read_text())


@pytest.fixture(scope="module")
def comparison() -> pd.DataFrame:
    records = pd.read_csv(RESULTS / "ols_rank_on_fitted_rows_data.csv")
    return compare_procedures(records, ["pain_month1", "duration_min"], adjust=True,
                              covariates=COVARIATES).set_index("outcome")


def test_ancova_df_is_n_minus_rank_on_the_fitted_rows(comparison, reference):
    """Was df 43 (56 records minus 13 design columns, one of them all zero on these rows)."""
    r = reference["ancova_pain_month1"]
    row = comparison.loc["pain_month1"]
    assert f"df = {r['df_residual']})" in row["adjusted_method"]
    assert "etiology[traumatic]" in row["adjusted_method"]  # named as not estimable
    np.testing.assert_allclose(row["adjusted"], r["kp"], rtol=1e-9)
    np.testing.assert_allclose([row["adjusted_low"], row["adjusted_high"]], r["ci95_confint"],
                               rtol=1e-9)


def test_hc3_with_a_leverage_one_record(comparison, reference):
    """The leverage-1 record's HC3 term (0/0) is 0: the KP effect and its HC3 interval equal
    R's on the fit without that record."""
    r = reference["ols_duration_hc3"]
    assert r["n_leverage_one"] == 1
    row = comparison.loc["duration_min"]
    assert re.search(rf"df = {r['df_residual_with_all_records']}\)", row["adjusted_method"])
    np.testing.assert_allclose(row["adjusted"], r["kp_with_all_records"], rtol=1e-9)
    np.testing.assert_allclose(row["adjusted"], r["kp"], rtol=1e-9)
    np.testing.assert_allclose([row["adjusted_low"], row["adjusted_high"]],
                               [r["ci95_low"], r["ci95_high"]], rtol=1e-8)


def test_fit_ols_rank_deficient_on_the_masked_rows():
    """A column all zero on the used rows and one collinear there: not estimated (NaN), not
    counted in the df; the rest as statsmodels' OLS on the reduced design."""
    rng = np.random.default_rng(3)
    n = 80
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n),
                         np.zeros(n), np.zeros(n)]).astype(float)
    mask = rng.random(n) < 0.6
    x[~mask, 3] = 1.0  # only on rows left out
    x[:, 4] = np.where(mask, 2.0 * x[:, 1], rng.normal(size=n))  # collinear on used rows
    y = x[:, :3] @ [1.0, 0.5, -2.0] + rng.normal(size=n)
    for cov_type in ("nonrobust", "HC3"):
        beta, cov, df = _fit_ols(x, y, cov_type, mask)
        ref = sm.OLS(y[mask], x[mask][:, :3]).fit(cov_type=cov_type)
        assert df == mask.sum() - 3 == ref.df_resid
        np.testing.assert_allclose(beta[:3], ref.params, rtol=1e-10)
        np.testing.assert_allclose(np.sqrt(np.diag(cov)[:3]), ref.bse, rtol=1e-9)
        assert np.isnan(beta[3:]).all() and np.isnan(cov[3:]).all() and np.isnan(cov[:, 3:]).all()
