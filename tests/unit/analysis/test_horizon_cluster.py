"""Facility-clustered intervals of the outcomes "by day N" (cumulative incidence at a horizon).

Sources of the expected values (never the functions under test):

* ``tests/results/horizon_cluster_jackknife.json``, written once by
  ``tests/results/horizon_cluster_jackknife.R`` (R 4.2.2, survival 3.5.3) from the fixed-seed
  cohort ``tests/results/clustered_cohort.csv`` (40 facilities): event times coded in R, the
  cumulative incidences from ``survfit`` re-run without each facility in turn, and the
  grouped jackknife SE, t(G − 1) interval and p-value of the KP − VP difference and log ratio.
* Literal re-runs of :func:`analysis.horizon.horizon_groups` on the records without each
  facility (the leave-one-out shortcut must give the same numbers).
* The bootstrap of duplicated records: copies of a patient in one facility are perfectly
  correlated, so the cluster bootstrap must give the SE of the patients themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.comparison import compare_procedures
from analysis.errors import InsufficientDataError
from analysis.horizon import (
    cluster_jackknife_cumulative_incidence,
    horizon_groups,
    horizon_time_event,
    iptw_cumulative_incidence,
    leave_one_cluster_out,
)

RESULTS = Path(__file__).resolve().parents[2] / "results"
REFERENCE = json.loads((RESULTS / "horizon_cluster_jackknife.json").read_text())


@pytest.fixture(scope="module")
def cohort(clustered_cohort) -> pd.DataFrame:
    return clustered_cohort


@pytest.mark.parametrize("outcome", ["adjacent_fracture_12m", "death_30d"])
def test_grouped_jackknife_matches_r(cohort, outcome):
    ref = REFERENCE[outcome]
    row = compare_procedures(cohort, outcomes=[outcome], adjust=False).iloc[0]
    assert row["clustered"] and row["n_clusters"] == ref["n_clusters"] == 40
    assert "not clustered" not in row["note"]
    assert row["estimate_kp"] == pytest.approx(ref["estimate_kp"], abs=1e-10)
    assert row["estimate_vp"] == pytest.approx(ref["estimate_vp"], abs=1e-10)
    assert row["unadjusted"] == pytest.approx(ref["difference"], abs=1e-10)
    assert row["unadjusted_low"] == pytest.approx(ref["low"], abs=1e-6)
    assert row["unadjusted_high"] == pytest.approx(ref["high"], abs=1e-6)
    assert row["p_unadjusted"] == pytest.approx(ref["p_value"], abs=1e-6)
    assert row["rr_unadjusted"] == pytest.approx(ref["ratio"], rel=1e-9)
    assert row["rr_unadjusted_low"] == pytest.approx(ref["ratio_low"], abs=1e-6)
    assert row["rr_unadjusted_high"] == pytest.approx(ref["ratio_high"], abs=1e-6)
    assert "grouped jackknife over 40 clusters" in row["unadjusted_method"]
    assert "t with 39 df" in row["unadjusted_method"]


@pytest.mark.parametrize("outcome", ["adjacent_fracture_12m", "death_30d"])
def test_jackknife_se_and_leave_one_out_estimates_match_r(cohort, outcome):
    ref = REFERENCE[outcome]
    time, code = horizon_time_event(cohort, outcome)
    codes = pd.factorize(cohort["facility_id"], sort=True)[0]
    jk = cluster_jackknife_cumulative_incidence(time, code, cohort["kp"].to_numpy(),
                                                ref["horizon"], codes, 40)
    assert jk.se == pytest.approx(ref["se"], abs=1e-6)
    assert jk.difference == pytest.approx(ref["difference"], abs=1e-10)
    # R's facilities are sorted, as the codes here.
    np.testing.assert_allclose(jk.leave_one_out[:, 0], ref["leave_one_out_kp"], atol=1e-10)
    np.testing.assert_allclose(jk.leave_one_out[:, 1], ref["leave_one_out_vp"], atol=1e-10)


@pytest.mark.parametrize("whole_days", [True, False])
def test_leave_one_out_shortcut_equals_rerunning_without_each_facility(cohort, whole_days):
    time, code = horizon_time_event(cohort, "adjacent_fracture_12m")
    if not whole_days:  # the sorted-grid path of the count table
        time = time + np.random.default_rng(3).uniform(0, 0.9, time.size)
    groups = cohort["kp"].to_numpy().astype(np.intp)
    groups[::97] = -1  # records outside both groups
    codes = pd.factorize(cohort["facility_id"])[0]
    full, without, analysed = leave_one_cluster_out(time, code, 365, groups, 2, codes, 40)
    everyone = horizon_groups(time, code, 365, groups, 2)
    np.testing.assert_allclose(full, everyone["estimate"], rtol=0, atol=1e-13)
    for c in range(40):
        keep = codes != c
        alone = horizon_groups(time[keep], code[keep], 365, groups[keep], 2)
        np.testing.assert_allclose(without[c], alone["estimate"], rtol=0, atol=1e-13)
        ok = ~np.isnan(time) & (groups >= 0) & ~keep
        assert analysed[c] == ok.sum()


def test_a_facility_holding_every_kp_record_falls_back_with_a_note(cohort):
    d = cohort.copy()
    d.loc[d.kp == 1, "facility_id"] = "FAC-KP"
    d.loc[d.kp == 1, "procedure"] = "kyphoplasty"
    time, code = horizon_time_event(d, "adjacent_fracture_12m")
    codes, _ = pd.factorize(d["facility_id"])
    with pytest.raises(InsufficientDataError, match="leaving out one cluster"):
        cluster_jackknife_cumulative_incidence(time, code, d["kp"].to_numpy(), 365, codes,
                                               int(codes.max()) + 1)
    row = compare_procedures(d, outcomes=["adjacent_fracture_12m"], n_boot=50,
                             covariates=["age", "sex"]).iloc[0]
    assert not row["clustered"] and row["n_clusters"] == 0
    assert "intervals not clustered" in row["note"]
    assert "independent groups, delta method" in row["unadjusted_method"]
    # One "clustered" label per row: the adjusted interval is not clustered either.
    assert "bootstrap replicates refitting" in row["adjusted_method"]
    assert "cluster bootstrap" not in row["adjusted_method"]


def test_adjusted_row_is_a_cluster_bootstrap_of_facilities(cohort):
    row = compare_procedures(cohort, outcomes=["adjacent_fracture_12m"], n_boot=50,
                             covariates=["age", "sex"]).iloc[0]
    assert row["clustered"] and row["n_clusters"] == 40
    assert "cluster bootstrap replicates resampling whole clusters (40 clusters" in (
        row["adjusted_method"])
    assert "t, 39 df" in row["adjusted_method"]
    assert row["adjusted_low"] < row["adjusted"] < row["adjusted_high"]


def test_model_based_without_cluster(cohort):
    row = compare_procedures(cohort, outcomes=["adjacent_fracture_12m"], adjust=False,
                             cluster=None).iloc[0]
    ref = REFERENCE["adjacent_fracture_12m"]
    assert not row["clustered"] and row["n_clusters"] == 0
    assert row["unadjusted"] == pytest.approx(ref["difference"], abs=1e-10)
    assert "independent groups, delta method" in row["unadjusted_method"]


def _duplicated_cohort(copies: int, n: int = 600, seed: int = 5):
    """`n` independent patients, each copied `copies` times into its own facility."""
    rng = np.random.default_rng(seed)
    age = rng.normal(0, 1, n)
    treated = (rng.random(n) < 1 / (1 + np.exp(-0.5 * age))).astype(float)
    event_time = rng.exponential(900 * np.exp(-0.3 * age), n)
    censor = rng.uniform(100, 700, n)
    time = np.floor(np.minimum(event_time, censor))
    code = (event_time <= censor).astype(float)
    x = np.column_stack([np.ones(n), age])
    rep = np.repeat(np.arange(n), copies)
    return time, code, treated, x, rep


@pytest.mark.parametrize("max_n", [100_000, 1_000], ids=["refit", "fixed-weights"])
def test_iptw_cluster_bootstrap_resamples_whole_facilities(max_n):
    time, code, treated, x, _ = _duplicated_cohort(1)
    patients = iptw_cumulative_incidence(time, code, treated, x, 365, n_boot=300, seed=1,
                                         max_n=100_000)
    *_, facility = _duplicated_cohort(4)
    t, c, tr, xx = time[facility], code[facility], treated[facility], x[facility]
    clustered = iptw_cumulative_incidence(t, c, tr, xx, 365, n_boot=300, seed=1,
                                          max_n=max_n, clusters=facility)
    naive = iptw_cumulative_incidence(t, c, tr, xx, 365, n_boot=300, seed=1, max_n=100_000)
    assert clustered.difference == pytest.approx(patients.difference, abs=1e-12)
    assert clustered.n_clusters == 600 and clustered.n_boot == 300
    # Four perfectly correlated copies: the patient bootstrap of the copies is too narrow by
    # about sqrt(4) = 2; the cluster bootstrap recovers the SE of the patients (Monte-Carlo
    # error of each SE about 4%).
    assert clustered.se == pytest.approx(patients.se, rel=0.15)
    assert naive.se < 0.65 * clustered.se
    assert "cluster bootstrap" in clustered.method and "600 clusters" in clustered.method
    assert ("refitting the propensity model" in clustered.method) == (max_n > 2400)
