"""Facility scorecard: peer groups, rank intervals, shrinkage (against R's lme4) and trends.

Reference values of the random-intercept model: tests/results/random_intercept.R (lme4
``glmer``, Laplace and 25-point adaptive Gauss–Hermite) on
tests/results/random_intercept_cohort.csv, computed once and committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from analysis.errors import InsufficientDataError
from analysis.quality import caterpillar, outcome_values, p_chart
from analysis.scorecard import (
    expected_ranks,
    facility_profile,
    peer_group,
    quarterly_p_chart,
    random_intercept_logit,
    rank_intervals,
    scorecard,
    volume_bands,
)
from data import demo_records

RESULTS = Path(__file__).resolve().parents[2] / "results"
#: Both fits maximise the same Laplace log-likelihood; what differs is the optimiser and where
#: it stops (lme4's bobyqa reported max|gradient| ≈ 2e-6 on this cohort). 1e-4 is far above
#: that and ~15 times below the Laplace–AGQ difference of σ (1.6e-3), so a fit that used a
#: different approximation, or stopped early, fails.
LAPLACE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def lme4() -> dict:
    return json.loads((RESULTS / "random_intercept.json").read_text())


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(RESULTS / "random_intercept_cohort.csv")


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return demo_records(3000, seed=21)


# ------------------------------------------------------------------------------- peer groups
PROFILE = pd.DataFrame({
    "facility_id": ["A", "B", "C", "D", "E", "F"],
    "country": ["US", "US", "US", "GB", "GB", "US"],
    "region": ["West", "West", "South", "West", "London", "West"],
    "n": [10, 300, 20, 15, 400, 25],
    "volume_band": ["low", "high", "low", "low", "high", "mid"],
})


def test_volume_bands_are_tertiles_of_volume():
    volumes = pd.Series({"A": 10, "B": 300, "C": 20, "D": 15, "E": 400, "F": 25})
    bands = volume_bands(volumes)
    assert bands.tolist() == ["band 1 of 3 (10–15)", "band 3 of 3 (300–400)",
                              "band 2 of 3 (20–25)", "band 1 of 3 (10–15)",
                              "band 3 of 3 (300–400)", "band 2 of 3 (20–25)"]
    assert volume_bands(volumes, 2).nunique() == 2


@pytest.mark.parametrize(("kind", "members"), [
    ("all", ("B", "C", "D", "E", "F")),
    ("country", ("B", "C", "F")),
    ("region", ("B", "F")),        # same country and region: D is West of GB, not a peer
    ("volume", ("C", "D")),
])
def test_peer_group_kinds(kind, members):
    group = peer_group(PROFILE, "A", kind)
    assert group.members == members
    assert "A" not in group.members
    assert group.to_frame()["role"].tolist() == ["facility"] + ["peer"] * len(members)


def test_peer_group_list_drops_the_facility_and_unknown_ids():
    group = peer_group(PROFILE, "A", "list", ["E", "A", "ZZZ", "C"])
    assert group.members == ("C", "E")


def test_peer_group_without_peers_or_facility_is_a_clear_error():
    with pytest.raises(InsufficientDataError, match="no peer"):
        peer_group(PROFILE, "E", "region")
    with pytest.raises(InsufficientDataError, match="has no records"):
        peer_group(PROFILE, "Q", "all")
    with pytest.raises(ValueError, match="kind must be"):
        peer_group(PROFILE, "A", "continent")


def test_facility_profile_counts_and_bands(demo):
    profile = facility_profile(demo)
    counts = demo["facility_id"].value_counts()
    assert profile.set_index("facility_id")["n"].to_dict() == counts.to_dict()
    assert profile["volume_band"].nunique() == 3
    # Bands follow volume: every facility of band 1 has fewer procedures than any of band 3.
    low = profile[profile["volume_band"].str.startswith("band 1")]["n"]
    high = profile[profile["volume_band"].str.startswith("band 3")]["n"]
    assert low.max() <= high.min()


# ------------------------------------------------------------------------------------- ranks
def test_expected_rank_matches_the_pairwise_formula_by_hand():
    observed, expected = np.array([5, 12]), np.array([10.0, 8.0])
    m = np.log((observed + 0.5) / expected)
    s2 = 1.0 / (observed + 0.5)
    p_second_below_first = st.norm.cdf((m[0] - m[1]) / np.sqrt(s2.sum()))
    assert expected_ranks(observed, expected) == pytest.approx(
        [1 + p_second_below_first, 2 - p_second_below_first], abs=1e-12)


def test_simulated_mean_rank_agrees_with_the_closed_form():
    rng = np.random.default_rng(4)
    expected = rng.uniform(2, 60, 25)
    observed = rng.poisson(expected * rng.lognormal(0, 0.3, 25))
    table = rank_intervals(observed, expected, draws=20000)
    # Mean of 20,000 ranks; the rank SD is at most ~7 here, so its MC error is < 0.05.
    assert np.max(np.abs(table["mean_rank"] - table["expected_rank"])) < 0.15
    assert (table["rank_low"] <= table["rank_high"]).all()
    inside = (table["rank_low"] <= table["rank"]) & (table["rank"] <= table["rank_high"])
    assert inside.mean() >= 0.9


def test_rank_interval_of_two_close_units_spans_both_ranks():
    table = rank_intervals([10, 11], [10.0, 10.0])
    assert table["rank"].tolist() == [1, 2]
    assert table[["rank_low", "rank_high"]].to_numpy().tolist() == [[1, 2], [1, 2]]


def test_rank_intervals_are_reproducible_and_checked():
    first = rank_intervals([3, 8, 20], [5.0, 6.0, 9.0])
    assert first.equals(rank_intervals([3, 8, 20], [5.0, 6.0, 9.0]))
    with pytest.raises(ValueError, match="positive"):
        rank_intervals([1, 2], [0.0, 1.0])


# ------------------------------------------------------------------------ shrinkage vs lme4
@pytest.mark.parametrize(("key", "with_offset"), [("laplace_offset", True),
                                                   ("laplace_no_offset", False)])
def test_random_intercept_fit_matches_lme4_laplace(lme4, cohort, key, with_offset):
    reference = lme4[key]
    fit = random_intercept_logit(cohort["y"], cohort["facility"],
                                 cohort["offset"] if with_offset else None)
    assert fit.converged
    assert fit.intercept == pytest.approx(reference["intercept"], abs=LAPLACE_TOLERANCE)
    assert fit.sigma == pytest.approx(reference["sigma"], abs=LAPLACE_TOLERANCE)
    assert fit.log_likelihood == pytest.approx(reference["loglik"], abs=1e-3)
    effects = fit.to_frame()
    assert effects["unit"].tolist() == reference["facility"]
    np.testing.assert_allclose(effects["mode"], reference["mode"], atol=LAPLACE_TOLERANCE)
    np.testing.assert_allclose(effects["mode_sd"], reference["mode_sd"], atol=LAPLACE_TOLERANCE)


def test_laplace_and_agq_differ_by_more_than_the_tolerance(lme4):
    """The fixtures can tell the approximations apart, so the Laplace test is not vacuous."""
    assert abs(lme4["agq25_offset"]["sigma"] - lme4["laplace_offset"]["sigma"]) \
        > 10 * LAPLACE_TOLERANCE


def test_shrinkage_pulls_small_facilities_towards_the_mean(cohort):
    fit = random_intercept_logit(cohort["y"], cohort["facility"], cohort["offset"])
    effects = fit.to_frame()
    # Conditional SD shrinks towards σ for the smallest units and falls with volume.
    small, large = effects.nsmallest(3, "n"), effects.nlargest(3, "n")
    assert (small["mode_sd"] > large["mode_sd"].max()).all()
    assert (small["mode_sd"] < fit.sigma).all()
    assert ((effects["ratio_low"] <= effects["ratio"])
            & (effects["ratio"] <= effects["ratio_high"])).all()


def test_random_intercept_input_errors():
    with pytest.raises(ValueError, match="0/1"):
        random_intercept_logit([0, 2], ["a", "b"])
    with pytest.raises(InsufficientDataError, match="no events"):
        random_intercept_logit([0, 0, 0], ["a", "b", "b"])


# ---------------------------------------------------------------------------------- scorecard
def test_scorecard_reuses_the_quality_oe(demo):
    peers = peer_group(facility_profile(demo), "FAC-009", "all")
    card = scorecard(demo, "FAC-009", peers, outcomes=["cement_leakage"])
    row = card.to_frame().iloc[0]
    reference = caterpillar(demo, "facility_id", "cement_leakage", adjust=True)
    own = reference[reference["unit"] == "FAC-009"].iloc[0]
    assert row["observed"] == own["observed"]
    assert row["expected"] == pytest.approx(own["expected"], rel=1e-9)
    assert (row["oe_low"], row["oe_high"]) == pytest.approx((own["low"], own["high"]))
    # The planted high-leakage facilities (FAC-009, FAC-019) take the two last ranks.
    assert row["units_ranked"] == 40
    leakage = card.units.set_index("unit")["rank"]
    assert sorted([leakage["FAC-009"], leakage["FAC-019"]]) == [39, 40]
    assert row["rank_low"] > 20  # confidently in the worse half
    assert row["oe_low"] > 1.0 and row["shrunken_low"] > 1.0
    peer_oe = card.units.query("role == 'peer'")["oe"]
    assert row["peer_oe_median"] == pytest.approx(peer_oe.median())
    assert row["peer_units"] == 39
    assert row["adjusted_rate"] == pytest.approx(row["oe"] * row["pooled_rate"])


def test_scorecard_ranks_only_the_peer_group(demo):
    profile = facility_profile(demo)
    peers = peer_group(profile, "FAC-009", "country")
    card = scorecard(demo, "FAC-009", peers, outcomes=["cement_leakage", "non_response"])
    assert set(card.units["unit"]) == {"FAC-009", *peers.members}
    assert (card.to_frame()["units_ranked"] == len(peers.members) + 1).all()


def test_quarterly_chart_counts_the_quarters(demo):
    own = demo[demo["facility_id"] == "FAC-011"]
    chart = quarterly_p_chart(own, "cement_leakage")
    y = outcome_values(own, "cement_leakage")
    quarters = pd.to_datetime(own["procedure_date"]).dt.to_period("Q")
    counts = y.groupby(quarters).agg(["sum", "count"])
    counts = counts[counts["count"] > 0]
    expected = p_chart(counts["sum"], counts["count"], method="laney")
    assert chart["quarter"].tolist() == [str(q) for q in counts.index]
    np.testing.assert_allclose(chart["high"], expected["high"])
    assert chart["sigma_z"].iloc[0] != 1.0  # Laney's adjustment, not the plain p-chart


def test_one_peer_set_fit_serves_every_facility_of_the_set(demo):
    from analysis.scorecard import fit_peer_set

    profile = facility_profile(demo)
    outcomes = ["cement_leakage"]
    fitted = fit_peer_set(demo, profile["facility_id"], outcomes)
    for facility in ("FAC-009", "FAC-032"):
        peers = peer_group(profile, facility, "all")
        shared = scorecard(demo, facility, peers, outcomes=outcomes, fitted=fitted)
        fresh = scorecard(demo, facility, peers, outcomes=outcomes)
        pd.testing.assert_frame_equal(shared.to_frame(), fresh.to_frame())
    narrower = peer_group(profile, "FAC-009", "country")
    with pytest.raises(ValueError, match="another set"):
        scorecard(demo, "FAC-009", narrower, outcomes=outcomes, fitted=fitted)
