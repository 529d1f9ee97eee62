"""Issue 12 items 2-4: exposure-correct monitoring of new fracture, one distribution per
funnel, CUSUM limits from the false-alarm probability, procedure adjustment as an option.

References are independent of the code under test: R's glm (poisson, survSplit, offset)
computed once by ``tests/results/quality_fracture_rate.R`` and committed as JSON beside it,
hand-written rules, scipy.stats distributions, and simulations of the charts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from analysis import quality as q

RESULTS = Path(__file__).resolve().parents[2] / "results"


# ---------------------------------------------------------------------------------------------
# Time at risk and the 365-day indicator (hand-written rules)
# ---------------------------------------------------------------------------------------------
def test_person_time_ends_at_fracture_death_or_last_contact():
    rec = pd.DataFrame({
        "adjacent_fracture": pd.array([True, False, False, False, None, True], dtype="boolean"),
        "adjacent_fracture_days": pd.array([30, None, None, None, None, None], dtype="Int64"),
        "followup_days": pd.array([400, 200, 100, None, 50, 80], dtype="Int64"),
        "death_days": pd.array([None, 150, 700, None, None, None], dtype="Int64"),
    })
    days = q.person_time(rec).to_numpy()
    # fracture at 30 -> 30.5; death within follow-up at 150 -> 150.5; a death after the last
    # contact (700 > 100) does not extend the time at risk -> 100.5; missing follow-up,
    # missing outcome and a fracture without its day -> excluded.
    assert days[:3].tolist() == [30.5, 150.5, 100.5]
    assert np.isnan(days[3:]).all()
    with pytest.raises(ValueError, match="time-to-event"):
        q.person_time(rec, "cement_leakage")


def test_horizon_indicator_selects_on_follow_up_not_on_the_outcome():
    rec = pd.DataFrame({
        "adjacent_fracture": pd.array([True, True, False, False, False, False, True],
                                      dtype="boolean"),
        "adjacent_fracture_days": pd.array([200, 400, None, None, None, None, 100],
                                           dtype="Int64"),
        "followup_days": pd.array([250, 500, 365, 300, 100, 100, 120], dtype="Int64"),
        "death_days": pd.array([None, None, None, None, 100, 200, None], dtype="Int64"),
    })
    name = q.horizon_outcome("adjacent_fracture")
    assert name == "adjacent_fracture_365d"
    values = q.outcome_values(rec, name).to_numpy()
    # fracture by day 365 -> 1 (even with follow-up < 365); fracture after 365 -> 0; event-free
    # with 365 days -> 0; event-free with 300 days -> unknown; death in follow-up at 100
    # without fracture -> 0 (competing event); death after the last contact -> unknown.
    expected = [1.0, 0.0, 0.0, np.nan, 0.0, np.nan, 1.0]
    np.testing.assert_array_equal(values, expected)


# ---------------------------------------------------------------------------------------------
# The Poisson case-mix model against R
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def r_reference():
    data = pd.read_csv(RESULTS / "quality_fracture_rate.csv")
    ref = json.loads((RESULTS / "quality_fracture_rate.json").read_text())
    assert ref["record_id"] == data["record_id"].tolist()
    days = (data["person_time"] - 0.5).round().astype(int)
    records = pd.DataFrame({
        "record_id": data["record_id"],
        "facility_id": pd.Categorical(data["facility_id"]),
        "age": data["age"],
        "sex": pd.Categorical(data["sex"], categories=["F", "M", "X"]),
        "prior_fractures": data["prior_fractures"],
        "adjacent_fracture": pd.array(data["fracture"] == 1, dtype="boolean"),
        "adjacent_fracture_days": pd.array(np.where(data["fracture"] == 1, days, None),
                                           dtype="Int64"),
        "followup_days": pd.array(days, dtype="Int64"),
    })
    return records, ref


def test_rate_model_matches_r_glm_poisson_with_offset(r_reference):
    records, ref = r_reference
    assert q.person_time(records).to_numpy() == pytest.approx(
        pd.read_csv(RESULTS / "quality_fracture_rate.csv")["person_time"].to_numpy())
    fit = q.risk_model(records, "adjacent_fracture", covariates=["age", "sex", "prior_fractures"])
    assert fit.family == "poisson"
    coef = fit.coefficients.set_index("term")
    names = {"age": "age", "sexM": "sex[T.M]", "sexX": "sex[T.X]",
             "prior_fractures": "prior_fractures"}
    for term, beta, se in zip(ref["terms"], ref["log_rate_ratio"], ref["se"], strict=True):
        row = coef.loc[names[term]]
        assert math.log(row["rate_ratio"]) == pytest.approx(beta, rel=1e-6, abs=1e-9), term
        ours = (math.log(row["high"]) - math.log(row["low"])) / (2 * st.norm.ppf(0.975))
        assert ours == pytest.approx(se, rel=1e-5), term
    assert fit.expected.to_numpy() == pytest.approx(np.asarray(ref["expected"]), rel=1e-7)
    assert fit.expected.sum() == pytest.approx(fit.events, rel=1e-9)


def test_crude_and_adjusted_funnel_expected_events_match_r(r_reference):
    records, ref = r_reference
    by_unit = pd.DataFrame({"unit": records["facility_id"].astype(str),
                            "crude": ref["expected_crude"], "adjusted": ref["expected"]})
    want = by_unit.groupby("unit").sum()
    crude = q.funnel_data(records, "facility_id", "adjacent_fracture").units.set_index("unit")
    model = q.risk_model(records, "adjacent_fracture", covariates=["age", "sex", "prior_fractures"])
    adj = q.funnel_data(records, "facility_id", "adjacent_fracture", adjust=True,
                        model=model).units.set_index("unit")
    assert crude["expected"].to_numpy() == pytest.approx(want.loc[crude.index, "crude"], rel=1e-7)
    assert adj["expected"].to_numpy() == pytest.approx(want.loc[adj.index, "adjusted"], rel=1e-7)
    cat = q.caterpillar(records, "facility_id", "adjacent_fracture", adjust=False)
    assert cat.set_index("unit")["expected"].loc[crude.index].to_numpy() == pytest.approx(
        crude["expected"].to_numpy(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Follow-up length is not flagged (synthetic, constant hazard, no unit effect)
# ---------------------------------------------------------------------------------------------
def fracture_records(seed: int, n_units: int = 30, per_unit: int = 300) -> pd.DataFrame:
    """Units differ only in how long they follow their patients (median 60 to 1,500 days);
    new fractures arise at 0.2 per person-year everywhere."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), per_unit)
    span = np.geomspace(60, 1500, n_units)[unit]
    followup = np.floor(rng.uniform(0.0, 2.0, unit.size) * span)
    t_fracture = rng.exponential(365.25 / 0.2, unit.size)
    fracture = np.floor(t_fracture) <= followup
    return pd.DataFrame({
        "record_id": [f"R{i:06d}" for i in range(unit.size)],
        "facility_id": pd.Categorical([f"F{u:02d}" for u in unit]),
        "procedure_date": pd.Timestamp("2022-01-01")
        + pd.to_timedelta(rng.integers(0, 700, unit.size), unit="D"),
        "age": rng.integers(60, 90, unit.size).astype(float),
        "sex": pd.Categorical(rng.choice(["F", "M"], unit.size)),
        "adjacent_fracture": pd.array(fracture, dtype="boolean"),
        "adjacent_fracture_days": pd.array(np.where(fracture, np.floor(t_fracture), None),
                                           dtype="Int64"),
        "followup_days": pd.array(followup.astype(int), dtype="Int64"),
        "death_days": pd.array([None] * unit.size, dtype="Int64"),
    })


def test_new_fracture_funnel_does_not_track_follow_up():
    # Today's code compared the proportion "ever recorded": O/E rose with follow-up
    # (Spearman ~1) and most short- and long-follow-up units were flagged.
    rec = fracture_records(seed=1)
    span = rec.groupby("facility_id", observed=True)["followup_days"].median()
    for adjust in (False, True):
        res = q.funnel_data(rec, "facility_id", "adjacent_fracture", adjust=adjust)
        assert res.measure == "rate" and res.distribution == "poisson"
        units = res.units.set_index("unit")
        rho = st.spearmanr(units["oe"], span.loc[units.index])[0]
        assert abs(rho) < 0.45, (adjust, rho)
        assert units["flag"].str.startswith("alarm").sum() <= 1
        assert units["person_years"].sum() == pytest.approx(
            q.person_time(rec).sum() / q.DAYS_PER_YEAR)


def test_new_fracture_flags_at_the_chance_level():
    # 20 replicates x 30 units = 600 unit-tests under the null: alerts or alarms
    # ~ Binomial(600, ~0.05) (mean ~30, sd ~5.3) and alarms ~ Poisson(~1.2).
    flagged = alarms = 0
    for seed in range(20):
        units = q.funnel_data(fracture_records(seed=100 + seed), "facility_id",
                              "adjacent_fracture").units
        flagged += int((units["flag"] != "within").sum())
        alarms += int(units["flag"].str.startswith("alarm").sum())
    assert 12 <= flagged <= 50, flagged
    assert alarms <= 6, alarms


# ---------------------------------------------------------------------------------------------
# Item 3: one distribution for the flag, z, p-value and limits
# ---------------------------------------------------------------------------------------------
def leakage_records(seed: int, n_units: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(30, 400, n_units)
    unit = np.repeat(np.arange(n_units), sizes)
    effect = rng.normal(0.0, 0.35, n_units)[unit]  # some real spread, so flags happen
    leak = rng.random(unit.size) < 1 / (1 + np.exp(-(-0.85 + effect)))
    return pd.DataFrame({
        "record_id": [f"R{i:06d}" for i in range(unit.size)],
        "facility_id": pd.Categorical([f"F{u:02d}" for u in unit]),
        "age": rng.integers(60, 90, unit.size).astype(float),
        "cement_leakage": pd.array(leak, dtype="boolean"),
    })


@pytest.mark.parametrize("overdispersion", ["none", "multiplicative", "additive"])
def test_intercept_only_adjustment_reproduces_the_crude_funnel(overdispersion):
    rec = leakage_records(seed=3)
    crude = q.funnel_data(rec, outcome="cement_leakage", overdispersion=overdispersion)
    intercept_only = q.risk_model(rec, "cement_leakage", covariates=[])
    assert intercept_only.formula == "cement_leakage ~ 1"
    adj = q.funnel_data(rec, outcome="cement_leakage", adjust=True, model=intercept_only,
                        overdispersion=overdispersion)
    assert (crude.units["flag"] != "within").sum() >= 3  # the comparison has flags to lose
    assert adj.units["flag"].tolist() == crude.units["flag"].tolist()
    for column in ("z", "z_raw", "p_value", "p_adjusted", "plot_n", "plot_rate", "low_95",
                   "high_95", "low_998", "high_998"):
        np.testing.assert_allclose(adj.units[column], crude.units[column], rtol=1e-9,
                                   atol=1e-12, err_msg=column)
    np.testing.assert_allclose(adj.limits[["n", "low", "high"]],
                               crude.limits[["n", "low", "high"]], rtol=1e-9)
    assert adj.phi == pytest.approx(crude.phi, rel=1e-9)
    assert adj.overdispersion_applied == crude.overdispersion_applied


def test_intercept_only_rate_model_reproduces_the_crude_fracture_funnel():
    rec = fracture_records(seed=7)
    crude = q.funnel_data(rec, "facility_id", "adjacent_fracture")
    intercept_only = q.risk_model(rec, "adjacent_fracture", covariates=[])
    adj = q.funnel_data(rec, "facility_id", "adjacent_fracture", adjust=True,
                        model=intercept_only)
    assert adj.units["flag"].tolist() == crude.units["flag"].tolist()
    for column in ("expected", "z", "p_value", "plot_rate", "high_998"):
        np.testing.assert_allclose(adj.units[column], crude.units[column], rtol=1e-8,
                                   err_msg=column)


def test_flags_and_p_values_agree_and_follow_the_exact_distribution():
    rec = leakage_records(seed=5)
    model = q.risk_model(rec, "cement_leakage", covariates=["age"])
    res = q.funnel_data(rec, outcome="cement_leakage", adjust=True, model=model)
    units = res.units[res.units["flag"] != "low_volume"]
    theta = res.target
    m = units["expected"].to_numpy() / theta
    o = units["events"].to_numpy()
    # Binomial(m, theta) at a real m through the beta distribution (independent route).
    cdf = np.where(o < m, st.beta.cdf(1 - theta, np.maximum(m - o, 1e-300), o + 1), 1.0)
    sf = np.where(o < m, st.beta.sf(1 - theta, np.maximum(m - o, 1e-300), o + 1), 0.0)
    np.testing.assert_allclose(units["p_value"], np.minimum(1, 2 * np.minimum(cdf, sf)),
                               rtol=1e-8)
    flagged = units["flag"] != "within"
    alarm = units["flag"].str.startswith("alarm")
    assert flagged.any()
    assert (flagged == (units["p_value"] < 0.05)).all()
    assert (alarm == (units["p_value"] < 0.002)).all()
    assert (flagged == (np.abs(units["z"]) > st.norm.ppf(0.975))).all()
    # The plotted point lies outside its own limits exactly when it is flagged.
    outside = (units["plot_rate"] > units["high_95"]) | (units["plot_rate"] < units["low_95"])
    assert (outside == (units["flag"] != "within")).all()
    z_raw = (o - units["expected"]) / np.sqrt(units["expected"] * (1 - theta))
    np.testing.assert_allclose(units["z_raw"], z_raw, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# Item 4a: false-alarm probability of the CUSUM over the unit's series
# ---------------------------------------------------------------------------------------------
def simulate_any_signal(p: np.ndarray, n: int, h_up: float, h_low: float, runs: int,
                        seed: int, ratio: float = 2.0) -> tuple[float, float, float]:
    """Share of in-control series of n cases (risks resampled from p, y ~ Bernoulli) in
    which the upper, the lower, and either chart signals at least once."""
    rng = np.random.default_rng(seed)
    up = np.zeros(runs)
    low = np.zeros(runs)
    hit_up = np.zeros(runs, dtype=bool)
    hit_low = np.zeros(runs, dtype=bool)
    for _ in range(n):
        risk = p[rng.integers(0, p.size, runs)]
        y = rng.random(runs) < risk
        w_up = y * math.log(ratio) - np.log1p(-risk + ratio * risk)
        w_low = y * math.log(1 / ratio) - np.log1p(-risk + risk / ratio)
        up = np.maximum(0.0, up + w_up)
        low = np.maximum(0.0, low + w_low)
        hit_up |= up >= h_up
        hit_low |= low >= h_low
        up[up >= h_up] = 0.0
        low[low >= h_low] = 0.0
    return hit_up.mean(), hit_low.mean(), (hit_up | hit_low).mean()


@pytest.mark.parametrize("case", ["leakage", "fracture_12m", "constant"])
def test_false_alarm_probability_against_simulation(case):
    rng = np.random.default_rng({"leakage": 1, "fracture_12m": 2, "constant": 3}[case])
    p = {"leakage": rng.beta(3, 7, 400), "fracture_12m": rng.beta(2, 10, 400),
         "constant": np.full(400, 0.25)}[case]
    n, runs = 400, 20_000
    h_up, h_low = 4.0, 3.6
    sim_up, sim_low, _ = simulate_any_signal(p, n, h_up, h_low, runs, seed=11)
    for d, h, sim in (("upper", h_up, sim_up), ("lower", h_low, sim_low)):
        markov = q.cusum_false_alarm(p, h, n, 2.0, d)
        se = math.sqrt(sim * (1 - sim) / runs)
        assert abs(markov - sim) < 3.5 * se + 0.002, (d, markov, sim)


def test_default_limits_keep_the_whole_series_false_alarm_at_five_percent():
    # Issue: with the target ARL max(1000, 5n) the chance of a false signal over a series was
    # 15-30%. Now the two charts together stay at or below 5% (simulated).
    rng = np.random.default_rng(4)
    n = 300
    frame = pd.DataFrame({
        "facility_id": pd.Categorical(["A"] * n),
        "procedure_date": pd.date_range("2023-01-01", periods=n),
        "record_id": [f"R{i:04d}" for i in range(n)],
        "cement_leakage": pd.array(rng.random(n) < 0.3, dtype="boolean"),
    })
    res = q.cusum(frame, "facility_id", "A", "cement_leakage", adjust=False)
    p = res.chart["expected"].to_numpy()
    runs = 20_000
    sim_up, sim_low, either = simulate_any_signal(p, n, res.threshold_upper,
                                                  res.threshold_lower, runs, seed=5)
    assert either <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), either
    assert abs(res.false_alarm_upper - sim_up) < 3.5 * math.sqrt(sim_up / runs) + 0.002
    assert abs(res.false_alarm_lower - sim_low) < 3.5 * math.sqrt(sim_low / runs) + 0.002


def test_false_alarm_power_by_squaring_equals_step_by_step():
    # The n-step survival of the chain by repeated squaring against n plain steps.
    p = np.random.default_rng(8).beta(2, 8, 200)
    atoms, prob = q._weight_atoms(p, 2.0)
    matrix = q._transition_matrix(atoms, prob, 3.5, 60)
    row = np.zeros(60)
    row[0] = 1.0
    for _ in range(137):
        row = row @ matrix
    assert q._signal_probability(atoms, prob, 3.5, 137, 60, fine=None) == pytest.approx(
        1 - row.sum(), rel=1e-10)


def test_new_fracture_cusum_charts_the_365_day_indicator():
    rec = fracture_records(seed=3)
    rec["procedure_date"] = pd.Timestamp("2021-01-01") + pd.to_timedelta(
        np.arange(len(rec)) % 900, unit="D")
    res = q.cusum(rec, "facility_id", "F29", "adjacent_fracture", adjust=False)
    assert res.chart_outcome == "adjacent_fracture_365d"
    rows = rec[rec["facility_id"] == "F29"]
    known = q.outcome_values(rows, res.chart_outcome).dropna()
    assert res.n == len(known)
    assert res.chart["observed"].sum() == known.sum()
    assert res.chart["expected"].to_numpy() == pytest.approx(
        np.full(res.n, q.outcome_values(rec, res.chart_outcome).mean()))


# ---------------------------------------------------------------------------------------------
# Item 4c: procedure is an explicit option
# ---------------------------------------------------------------------------------------------
def test_procedure_is_not_adjusted_for_unless_asked():
    from tests.unit.analysis.test_quality import make_records

    rec = make_records(seed=31, n_units=10, per_unit=300)
    default = q.risk_model(rec, "cement_leakage")
    assert "procedure" not in default.formula
    assert "procedure" not in q.DEFAULT_COVARIATES
    with_procedure = q.risk_model(rec, "cement_leakage", adjust_procedure=True)
    assert "C(procedure" in with_procedure.formula
    assert "procedure[T.kyphoplasty]" in set(with_procedure.coefficients["term"])
