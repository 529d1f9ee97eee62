"""Tests of analysis.quality: funnel plots, O/E ratios, case-mix model, RA-CUSUM, p-charts.

Expected values come from the project's reference cases (tests/fixtures), from published tables,
or are computed independently here (brute force from scipy.stats, hand formulas, independent
simulations with other seeds) -- never from the functions under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import special

from analysis import quality as q
from analysis.errors import InsufficientDataError

# ---------------------------------------------------------------------------------------------
# Synthetic records (data-dictionary schema)
# ---------------------------------------------------------------------------------------------
#: True log-odds of cement leakage used by the generator (per unit / per level).
TRUE_LOGIT = {
    "intercept": -1.6,
    "age10": 0.25,  # per 10 years above 75
    "levels": 0.35,  # per extra level treated
    "prior": 0.30,  # per prior fracture
    "kyphoplasty": -0.70,
    "malignant": 0.80,
    "traumatic": -0.40,
    "male": 0.30,
}


def make_records(
    seed: int,
    n_units: int = 20,
    per_unit: int | list[int] = 200,
    leakage_theta: float | None = None,
    unit_log_or: dict[int, float] | None = None,
    malignant_share: list[float] | None = None,
    prior_missing: float = 0.0,
    month1_missing: float = 0.1,
) -> pd.DataFrame:
    """Seeded synthetic records with the project's column names and dtypes.

    ``leakage_theta`` set: leakage ~ Bernoulli(theta) independent of everything (no case mix);
    otherwise leakage follows TRUE_LOGIT plus ``unit_log_or[unit]``. ``malignant_share`` gives
    each facility its own share of malignant aetiology (case-mix differences).
    """
    rng = np.random.default_rng(seed)
    sizes = [per_unit] * n_units if isinstance(per_unit, int) else list(per_unit)
    unit_idx = np.repeat(np.arange(len(sizes)), sizes)
    n = unit_idx.size
    facility = np.array([f"F{i:02d}" for i in range(len(sizes))])[unit_idx]
    operator = np.char.add(facility, np.char.add("-O", rng.integers(1, 4, n).astype(str)))
    operator = np.where(rng.random(n) < 0.02, None, operator)
    dates = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    kp = rng.random(n) < 0.5
    age = np.clip(np.round(rng.normal(75, 9, n)), 50, 99).astype(int)
    sex = rng.choice(["F", "M", "X"], n, p=[0.69, 0.30, 0.01])
    share = np.full(n, 0.12) if malignant_share is None else np.asarray(malignant_share)[unit_idx]
    u = rng.random(n)
    etiology = np.where(
        u < share, "malignant", np.where(u < share + 0.10, "traumatic", "osteoporotic")
    )
    etiology = np.where(rng.random(n) < 0.03, "other", etiology)
    levels = np.clip(1 + rng.poisson(0.6, n), 1, 5)
    prior = np.clip(rng.poisson(0.7, n), 0, 4)
    if leakage_theta is not None:
        p_leak = np.full(n, leakage_theta)
    else:
        b = TRUE_LOGIT
        lin = (
            b["intercept"]
            + b["age10"] * (age - 75) / 10
            + b["levels"] * (levels - 1)
            + b["prior"] * prior
            + b["kyphoplasty"] * kp
            + b["malignant"] * (etiology == "malignant")
            + b["traumatic"] * (etiology == "traumatic")
            + b["male"] * (sex == "M")
        )
        if unit_log_or:
            lin = lin + np.array([unit_log_or.get(int(i), 0.0) for i in unit_idx])
        p_leak = special.expit(lin)
    leakage = rng.random(n) < p_leak
    adjacent = rng.random(n) < 0.10
    baseline = np.round(rng.uniform(5, 10, n), 1)
    month1 = np.round(np.clip(baseline * rng.uniform(0.1, 1.1, n), 0, 10), 1)
    month1_arr = pd.array(month1, dtype="Float64")
    month1_arr[rng.random(n) < month1_missing] = pd.NA
    prior_arr = pd.array(prior, dtype="Int64")
    fracture_days = pd.array(rng.integers(10, 365, n), dtype="Int64")
    fracture_days[~adjacent] = pd.NA
    if prior_missing:
        prior_arr[rng.random(n) < prior_missing] = pd.NA
    return pd.DataFrame(
        {
            "record_id": [f"R{i:06d}" for i in range(n)],
            "facility_id": pd.Categorical(facility),
            "operator_id": pd.Categorical(operator),
            "procedure_date": pd.to_datetime(dates),
            "procedure": pd.Categorical(
                np.where(kp, "kyphoplasty", "vertebroplasty"),
                categories=["vertebroplasty", "kyphoplasty"],
            ),
            "age": pd.array(age, dtype="Int64"),
            "sex": pd.Categorical(sex, categories=["F", "M", "X"]),
            "etiology": pd.Categorical(
                etiology, categories=["osteoporotic", "malignant", "traumatic", "other"]
            ),
            "levels_treated": pd.array(levels, dtype="Int64"),
            "prior_fractures": prior_arr,
            "cement_leakage": pd.array(leakage, dtype="boolean"),
            "pulmonary_embolism": pd.array(rng.random(n) < 0.01, dtype="boolean"),
            "adjacent_fracture": pd.array(adjacent, dtype="boolean"),
            "adjacent_fracture_days": fracture_days,
            "followup_days": pd.array(np.full(n, 365), dtype="Int64"),
            "pain_baseline": pd.array(baseline, dtype="Float64"),
            "pain_month1": month1_arr,
        }
    )


# ---------------------------------------------------------------------------------------------
# 1. Reference cases from the fixture
# ---------------------------------------------------------------------------------------------
def test_funnel_binomial_limits_reference_case(cases):
    case = cases["funnel_binomial_limits"]
    theta, ns, tol = case["inputs"]["theta"], case["inputs"]["n"], case["tol"]
    assert case["inputs"]["p_levels"] == [0.001, 0.025, 0.975, 0.999]
    for method in ("exact", "normal"):
        lim = q.funnel_limits(ns, theta, levels=(0.95, 0.998), method=method)
        for n in ns:
            r95 = lim[(lim["n"] == n) & (lim["level"] == 0.95)].iloc[0]
            r998 = lim[(lim["n"] == n) & (lim["level"] == 0.998)].iloc[0]
            got = [r998["low"], r95["low"], r95["high"], r998["high"]]
            want = case["expected"][method][str(n)]
            assert got == pytest.approx(want, abs=tol), (method, n)


def test_cusum_sequences_reference_case(cases):
    case = cases["cusum_sequences"]
    exp, tol = case["expected"], case["tol"]
    y, p = case["inputs"]["y"], case["inputs"]["p_pred"]
    chart = q.cusum_chart(y, p, odds_ratio=2.0)
    assert chart["weight_upper"].tolist() == pytest.approx(exp["W_up"], abs=tol)
    assert chart["upper"].tolist() == pytest.approx(exp["X_up"], abs=tol)
    assert chart["weight_lower"].tolist() == pytest.approx(exp["W_low"], abs=tol)
    assert chart["lower"].tolist() == pytest.approx(exp["Z_low"], abs=tol)
    assert chart["vlad"].tolist() == pytest.approx(exp["vlad"], abs=tol)
    assert not chart["signal_upper"].any() and not chart["signal_lower"].any()
    # Unadjusted Bernoulli CUSUM (Reynolds & Stoumbos): p_t = p0 = 0.10 for every case.
    assert q.alternative_risk(0.10, 2.0) == pytest.approx(exp["bernoulli_p1"], abs=tol)
    bern = q.cusum_chart(y, np.full(len(y), 0.10), odds_ratio=2.0)
    assert bern["upper"].tolist() == pytest.approx(exp["bernoulli_S"], abs=tol)


def test_p_chart_laney_reference_case(cases):
    case = cases["p_chart_laney"]
    exp, tol = case["expected"], case["tol"]
    d, n = case["inputs"]["defectives"], case["inputs"]["n"]
    pc = q.p_chart(d, n, method="p")
    lp = q.p_chart(d, n, method="laney")
    assert pc["center"].iloc[0] == pytest.approx(exp["pbar"], abs=tol)
    assert pc["z"].tolist() == pytest.approx(exp["z"], abs=tol)
    assert lp["sigma_z"].iloc[0] == pytest.approx(exp["sigma_z"], abs=tol)
    assert (pc["sigma_z"] == 1.0).all()
    assert pc["high"].tolist() == pytest.approx(exp["p_ucl"], abs=tol)
    assert pc["low"].tolist() == pytest.approx(exp["p_lcl"], abs=tol)
    assert lp["high"].tolist() == pytest.approx(exp["laney_ucl"], abs=tol)
    assert lp["low"].tolist() == pytest.approx(exp["laney_lcl"], abs=tol)


def test_p_chart_rejects_bad_input():
    with pytest.raises(ValueError):
        q.p_chart([5, 11], [10, 10])
    with pytest.raises(InsufficientDataError):
        q.p_chart([3], [10], method="laney")
    with pytest.raises(InsufficientDataError):
        q.p_chart([0, 0], [10, 10])


# ---------------------------------------------------------------------------------------------
# 2. O/E ratio: exact Poisson and Byar
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("observed", [0, 1, 2, 5, 9, 10, 17, 40, 250])
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_oe_exact_matches_chi_square_relation(observed, level):
    expected = 7.3
    res = q.oe_ratio(observed, expected, level=level, method="exact")
    a = 1 - level
    lo = 0.0 if observed == 0 else st.chi2.ppf(a / 2, 2 * observed) / 2
    hi = st.chi2.ppf(1 - a / 2, 2 * observed + 2) / 2
    assert res.method == "exact"
    assert res.ratio == pytest.approx(observed / expected, rel=1e-12)
    assert res.low == pytest.approx(lo / expected, rel=1e-10)
    assert res.high == pytest.approx(hi / expected, rel=1e-10)
    # Defining property of the exact limits: the tail probabilities equal a/2.
    if observed > 0:
        assert st.poisson.sf(observed - 1, res.low * expected) == pytest.approx(a / 2, rel=1e-6)
    assert st.poisson.cdf(observed, res.high * expected) == pytest.approx(a / 2, rel=1e-6)


def test_oe_exact_published_values():
    # Standard tabulated exact Poisson 95% limits for a count (e.g. Breslow & Day vol II).
    r0 = q.oe_ratio(0, 1.0, method="exact")
    assert (r0.low, round(r0.high, 3)) == (0.0, 3.689)
    r10 = q.oe_ratio(10, 1.0, method="exact")
    assert round(r10.low, 3) == 4.795 and round(r10.high, 2) == 18.39
    r1 = q.oe_ratio(1, 1.0, method="exact")
    assert round(r1.low, 4) == 0.0253 and round(r1.high, 3) == 5.572


@pytest.mark.parametrize("observed", [10, 11, 15, 20, 35, 60, 100, 400])
def test_byar_close_to_exact_from_ten_events(observed):
    exact = q.oe_ratio(observed, 12.5, method="exact")
    byar = q.oe_ratio(observed, 12.5, method="byar")
    assert byar.method == "byar"
    assert byar.low == pytest.approx(exact.low, rel=0.002)
    assert byar.high == pytest.approx(exact.high, rel=0.002)
    # Byar's closed form computed here.
    z = st.norm.ppf(0.975)
    o, o1 = observed, observed + 1
    lo = o * (1 - 1 / (9 * o) - z / (3 * math.sqrt(o))) ** 3 / 12.5
    hi = o1 * (1 - 1 / (9 * o1) + z / (3 * math.sqrt(o1))) ** 3 / 12.5
    assert (byar.low, byar.high) == pytest.approx((lo, hi), rel=1e-12)


def test_oe_auto_switches_at_ten_and_guards():
    assert q.oe_ratio(9, 5.0).method == "exact"
    assert q.oe_ratio(10, 5.0).method == "byar"
    with pytest.raises(ValueError, match="Byar"):
        q.oe_ratio(9, 5.0, method="byar")
    with pytest.raises(InsufficientDataError):
        q.oe_ratio(3, 0.0)
    with pytest.raises(ValueError):
        q.oe_ratio(-1, 2.0)


# ---------------------------------------------------------------------------------------------
# 3. Funnel limits by brute force
# ---------------------------------------------------------------------------------------------
def _brute_limit(cdf, p, scale):
    r = 0
    while cdf(r) < p:
        r += 1
    below = cdf(r - 1) if r > 0 else 0.0
    alpha = (cdf(r) - p) / (cdf(r) - below)
    return (r - alpha) / scale


@pytest.mark.parametrize("theta", [0.03, 0.25])
@pytest.mark.parametrize("n", [7, 33, 150, 1000])
def test_exact_binomial_limits_brute_force(n, theta):
    lim = q.funnel_limits([n], theta, levels=(0.95, 0.998), method="exact")
    for level in (0.95, 0.998):
        row = lim[lim["level"] == level].iloc[0]
        a = (1 - level) / 2
        lo = _brute_limit(lambda r: st.binom.cdf(r, n, theta), a, n)
        hi = _brute_limit(lambda r: st.binom.cdf(r, n, theta), 1 - a, n)
        assert row["low"] == pytest.approx(min(max(lo, 0.0), 1.0), abs=1e-10)
        assert row["high"] == pytest.approx(min(max(hi, 0.0), 1.0), abs=1e-10)


@pytest.mark.parametrize("expected", [0.5, 3.7, 10.0, 42.0])
def test_exact_poisson_oe_limits_brute_force(expected):
    lim = q.funnel_limits_oe([expected], levels=(0.95, 0.998))
    for level in (0.95, 0.998):
        row = lim[lim["level"] == level].iloc[0]
        a = (1 - level) / 2
        lo = _brute_limit(lambda r: st.poisson.cdf(r, expected), a, expected)
        hi = _brute_limit(lambda r: st.poisson.cdf(r, expected), 1 - a, expected)
        assert row["low"] == pytest.approx(max(lo, 0.0), abs=1e-10)
        assert row["high"] == pytest.approx(hi, abs=1e-10)


def test_funnel_limits_continuous_in_n():
    # Real n (smooth curves) must join the integer values continuously.
    at = q.funnel_limits([50.0], 0.1)[["low", "high"]].to_numpy()
    for eps in (1e-7, -1e-7):
        near = q.funnel_limits([50.0 + eps], 0.1)[["low", "high"]].to_numpy()
        assert near == pytest.approx(at, abs=1e-5)
    grid = q.funnel_limits(np.linspace(20, 500, 97), 0.1)
    assert np.isfinite(grid[["low", "high"]].to_numpy()).all()


@settings(max_examples=40, deadline=None)
@given(
    n=hs.floats(min_value=1.0, max_value=5000.0),
    theta=hs.floats(min_value=0.01, max_value=0.9),
)
def test_funnel_limits_nested(n, theta):
    lim = q.funnel_limits([n], theta, levels=(0.95, 0.998)).set_index("level")
    lo95, hi95 = lim.loc[0.95, ["low", "high"]]
    lo998, hi998 = lim.loc[0.998, ["low", "high"]]
    # Nested and inside [0, 1]. (The target itself need not lie inside the interpolated limits
    # when n*theta is tiny: at n=1, theta=0.015 the upper 95% limit is 0.)
    assert 0.0 <= lo998 <= lo95 <= hi95 <= hi998 <= 1.0
    if n * theta > 5:
        assert lo95 < theta < hi95


# ---------------------------------------------------------------------------------------------
# 4. Funnel data: false alarms, planted outlier, over-dispersion, adjustment
# ---------------------------------------------------------------------------------------------
def test_funnel_false_alarm_rate_and_planted_outlier():
    # 40 facilities x 200 cases, theta = 0.2, no facility effect, 100 replications = 4000
    # unit-tests. For n=200 and theta=0.2 the exact probability of falling outside the
    # interpolated 99.8% limits is 0.0005 + 0.0015 = 0.0020 (computed from scipy.stats.binom);
    # outside 95% it is 0.052. The count of alarms is ~Poisson(8): the window [1, 20] has a
    # probability of more than 99.9%, while a limit at the wrong level (95% -> ~200 flags) or
    # normal limits mis-centred by a sigma fail it.
    base = make_records(seed=11, n_units=40, per_unit=200, leakage_theta=0.2)
    rng = np.random.default_rng(2024)
    alarms = alerts = tested = 0
    for _ in range(100):
        base["cement_leakage"] = pd.array(rng.random(len(base)) < 0.2, dtype="boolean")
        units = q.funnel_data(base, "facility_id", "cement_leakage").units
        alarms += units["flag"].str.startswith("alarm").sum()
        alerts += units["flag"].str.startswith(("alert", "alarm")).sum()
        tested += len(units)
    assert tested == 4000
    assert 1 <= alarms <= 20, alarms
    # alerts+alarms ~ Binomial(4000, ~0.05) -> mean ~200 (195 over 6 trial seeds; the pooled
    # target makes it slightly below 0.052), sd 14; the window is about 4 sd on either side.
    assert 140 <= alerts <= 270, alerts

    # A planted facility (800 cases) with doubled leakage odds: 1/3 vs 0.2 is > 5 SE away.
    sizes = [200] * 39 + [800]
    rec = make_records(seed=12, n_units=40, per_unit=sizes, leakage_theta=0.2)
    planted = rec["facility_id"] == "F39"
    rec.loc[planted, "cement_leakage"] = pd.array(
        np.random.default_rng(5).random(planted.sum()) < 1 / 3, dtype="boolean"
    )
    units = q.funnel_data(rec, "facility_id", "cement_leakage").units.set_index("unit")
    assert units.loc["F39", "flag"] == "alarm_high"
    assert units.loc["F39", "p_adjusted"] < 0.01


def test_funnel_units_table_computed_independently():
    rec = make_records(seed=3, n_units=12, per_unit=[5] + [120] * 11, leakage_theta=0.25)
    res = q.funnel_data(rec, "facility_id", "cement_leakage", min_volume=10)
    units = res.units.set_index("unit")
    y = rec["cement_leakage"].astype(float)
    counts = y.groupby(rec["facility_id"], observed=True).agg(["size", "sum"])
    theta = y.sum() / len(y)
    assert res.target == pytest.approx(theta) and res.target_source == "pooled"
    assert units["n"].tolist() == counts["size"].tolist()
    assert units["events"].tolist() == counts["sum"].astype(int).tolist()
    z = (counts["sum"] / counts["size"] - theta) / np.sqrt(theta * (1 - theta) / counts["size"])
    assert units["z_raw"].to_numpy() == pytest.approx(z.to_numpy(), rel=1e-10)
    # Issue 12 item 3: z and p come from the same exact binomial as the limits: p is twice
    # the smaller tail P(X <= O), P(X > O) of Binomial(n, theta) and z its normal score.
    cdf = st.binom.cdf(counts["sum"], counts["size"], theta)
    sf = st.binom.sf(counts["sum"], counts["size"], theta)
    exact_p = np.minimum(1, 2 * np.minimum(cdf, sf))
    assert units["p_value"].to_numpy()[1:] == pytest.approx(exact_p[1:], rel=1e-9)
    exact_z = np.where(cdf <= 0.5, st.norm.ppf(cdf), st.norm.isf(sf))
    assert units["z"].to_numpy()[1:] == pytest.approx(exact_z[1:], rel=1e-9)
    assert units["expected"].to_numpy() == pytest.approx(counts["size"] * theta)
    assert units.loc["F00", "flag"] == "low_volume"
    assert np.isnan(units.loc["F00", "p_adjusted"])
    # Benjamini-Hochberg over the 11 tested units, written out here.
    p = exact_p[1:]
    order = np.argsort(p)
    m = p.size
    bh = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expected_bh = np.empty(m)
    expected_bh[order] = np.minimum(bh, 1)
    assert units["p_adjusted"].to_numpy()[1:] == pytest.approx(expected_bh, rel=1e-10)
    # Flags agree with the exact 95%/99.8% limits at each unit's n (brute force).
    for name, row in units.iterrows():
        if row["flag"] == "low_volume":
            continue
        n = int(row["n"])
        cdf = lambda r, n=n: st.binom.cdf(r, n, theta)  # noqa: E731
        hi95, hi998 = _brute_limit(cdf, 0.975, n), _brute_limit(cdf, 0.999, n)
        lo95, lo998 = _brute_limit(cdf, 0.025, n), _brute_limit(cdf, 0.001, n)
        rate = row["rate"]
        want = (
            "alarm_high"
            if rate > hi998
            else "alarm_low"
            if rate < lo998
            else "alert_high"
            if rate > hi95
            else "alert_low"
            if rate < lo95
            else "within"
        )
        assert row["flag"] == want, name
    # The limit grid spans the units and is nested.
    grid = res.limits
    assert set(grid["level"]) == {0.95, 0.998}
    assert grid["n"].max() >= units["n"].max()
    assert res.to_frame().equals(res.units)


def _winsorised_phi(z: np.ndarray) -> float:
    z = np.sort(np.asarray(z, float))
    k = int(np.floor(0.1 * z.size))
    if k:
        z[:k] = z[k]
        z[-k:] = z[-k - 1]
    return float(np.mean(z**2))


def test_estimate_overdispersion_hand_example():
    # I = 10: the single lowest z is replaced by the 2nd lowest, the highest by the 2nd highest.
    z = np.array([-3.0, -1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 0.5, 9.0])
    se = np.linspace(0.02, 0.06, 10)
    od = q.estimate_overdispersion(z, se)
    zw = np.array([-1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 0.5, 2.0])
    phi = np.mean(zw**2)
    assert od.phi == pytest.approx(phi)
    assert od.p_value == pytest.approx(st.chi2.sf(10 * phi, 9))
    w = 1 / se**2
    tau2 = max(0.0, (10 * phi - 9) / (w.sum() - (w**2).sum() / w.sum()))
    assert od.tau2 == pytest.approx(tau2)


def test_funnel_overdispersion_models():
    # Facility log-odds effects with SD 0.45: clearly over-dispersed for 30 x 300 cases.
    effects = np.random.default_rng(8).normal(0, 0.45, 30)
    rec = make_records(
        seed=9,
        n_units=30,
        per_unit=300,
        unit_log_or={i: float(e) for i, e in enumerate(effects)},
    )
    y = rec["cement_leakage"].astype(float)
    counts = y.groupby(rec["facility_id"], observed=True).agg(["size", "sum"])
    theta = y.mean()
    s = np.sqrt(theta * (1 - theta) / counts["size"].to_numpy())
    z = (counts["sum"].to_numpy() / counts["size"].to_numpy() - theta) / s
    phi = _winsorised_phi(z)
    w = 1 / s**2
    tau2 = max(0.0, (30 * phi - 29) / (w.sum() - (w**2).sum() / w.sum()))

    none = q.funnel_data(rec, outcome="cement_leakage")
    mult = q.funnel_data(rec, outcome="cement_leakage", overdispersion="multiplicative")
    add = q.funnel_data(rec, outcome="cement_leakage", overdispersion="additive")
    for res in (none, mult, add):
        assert res.phi == pytest.approx(phi)
        assert res.phi_p_value == pytest.approx(st.chi2.sf(30 * phi, 29))
        assert res.tau2 == pytest.approx(tau2)
    assert phi > 2 and none.phi_p_value < 1e-6
    assert not none.overdispersion_applied
    assert mult.overdispersion_applied and add.overdispersion_applied
    z998 = st.norm.ppf(0.999)
    assert mult.units["high_998"].to_numpy() == pytest.approx(
        np.minimum(theta + z998 * np.sqrt(phi) * s, 1)
    )
    assert add.units["high_998"].to_numpy() == pytest.approx(
        np.minimum(theta + z998 * np.sqrt(s**2 + tau2), 1)
    )
    assert mult.units["z"].to_numpy() == pytest.approx(z / np.sqrt(phi))
    n_flag = {
        name: res.units["flag"].str.startswith("alarm").sum()
        for name, res in (("none", none), ("mult", mult), ("add", add))
    }
    assert n_flag["mult"] < n_flag["none"] and n_flag["add"] < n_flag["none"]
    # The curve grid uses the same model: additive limits tend to theta +/- z*tau at large n.
    grid = add.limits[add.limits["level"] == 0.998]
    assert grid["high"].iloc[-1] == pytest.approx(
        theta + z998 * math.sqrt(theta * (1 - theta) / grid["n"].iloc[-1] + tau2)
    )

    # Without heterogeneity the test is not significant and nothing is applied.
    flat = make_records(seed=10, n_units=30, per_unit=300, leakage_theta=0.2)
    res = q.funnel_data(flat, outcome="cement_leakage", overdispersion="multiplicative")
    assert res.overdispersion_applied == (res.phi > 1 and res.phi_p_value < 0.05)
    assert res.phi < 2  # E[phi] ~ 1 without heterogeneity (winsorising pulls it below 1)
    if not res.overdispersion_applied:
        assert any("not applied" in note for note in res.notes)
        # ... and the limits stay the exact binomial ones (all units have n = 300).
        t0 = flat["cement_leakage"].astype(float).mean()
        hi = _brute_limit(lambda r: st.binom.cdf(r, 300, t0), 0.999, 300)
        assert res.units["high_998"].to_numpy() == pytest.approx(np.full(30, hi))


def test_funnel_adjusted_removes_case_mix_flags():
    # Facilities differ only by their share of malignant cases (OR 2.2 for leakage).
    shares = np.linspace(0.0, 0.8, 16)
    rec = make_records(seed=21, n_units=16, per_unit=600, malignant_share=list(shares))
    crude = q.funnel_data(rec, outcome="cement_leakage")
    adj = q.funnel_data(rec, outcome="cement_leakage", adjust=True)
    assert adj.adjusted and not crude.adjusted
    units = adj.units
    y = rec["cement_leakage"].astype(float)
    # Logistic MLE with an intercept: total expected = total observed.
    assert units["expected"].sum() == pytest.approx(y.sum(), rel=1e-6)
    assert units["oe"].to_numpy() == pytest.approx(units["events"] / units["expected"])
    assert units["plot_rate"].to_numpy() == pytest.approx(units["oe"] * y.mean())
    # Per-unit exact limits (brute force) of the one distribution of the adjusted funnel
    # (issue 12 item 3): Binomial(E/theta, theta) at the effective volume m = E/theta, whose
    # cdf at a real m is P(X <= r) = BetaCDF(1 - theta; m - r, r + 1).
    row = units.iloc[3]
    theta = y.mean()
    m = row["expected"] / theta
    hi = _brute_limit(lambda r: st.beta.cdf(1 - theta, m - r, r + 1) if r < m else 1.0,
                      0.999, m)
    assert row["plot_n"] == pytest.approx(m, rel=1e-12)
    assert row["high_998"] == pytest.approx(hi, rel=1e-9)
    # Crude z-scores rise with the malignant share (slope ~ 7.9 z per unit share, SE ~ 1);
    # adjusted ones do not (slope ~ 0, SE ~ 1).
    crude_slope = np.polyfit(shares, crude.units["z"].to_numpy(), 1)[0]
    adj_slope = np.polyfit(shares, units["z"].to_numpy(), 1)[0]
    assert crude_slope > 4, crude_slope
    assert abs(adj_slope) < 3.5, adj_slope


def test_funnel_external_target_and_missing_units():
    rec = make_records(seed=4, n_units=10, per_unit=150)
    rec.loc[rec.index[:20], "facility_id"] = np.nan
    res = q.funnel_data(rec, outcome="cement_leakage", target=0.15)
    assert res.target == 0.15 and res.target_source == "external"
    assert res.units["n"].sum() == len(rec) - 20
    assert res.units["expected"].to_numpy() == pytest.approx(res.units["n"] * 0.15)
    full = make_records(seed=5, n_units=10, per_unit=150)
    adj = q.funnel_data(full, outcome="cement_leakage", target=0.15, adjust=True)
    # Recalibrated model: mean expected risk equals the external target, and the O/E ratios
    # keep the ordering of the pooled-model ones (only the intercept moves).
    assert adj.units["expected"].sum() / adj.units["n"].sum() == pytest.approx(0.15, rel=1e-8)
    pooled = q.funnel_data(full, outcome="cement_leakage", adjust=True)
    assert pooled.target_source == "pooled"
    assert np.corrcoef(adj.units["oe"], pooled.units["oe"])[0, 1] > 0.99


def test_funnel_non_response_excludes_missing_month1():
    rec = make_records(seed=6, n_units=8, per_unit=100, month1_missing=0.25)
    res = q.funnel_data(rec, "operator_id", "non_response", min_volume=5)
    base = rec["pain_baseline"].to_numpy(float, na_value=np.nan)
    m1 = rec["pain_month1"].to_numpy(float, na_value=np.nan)
    ok = ~np.isnan(m1) & rec["operator_id"].notna().to_numpy()
    assert res.units["n"].sum() == ok.sum()
    # Non-responder: reduction below 30%; computed with exact decimal arithmetic (x10 integers).
    non_resp = np.round(m1[ok] * 10) * 10 > np.round(base[ok] * 10) * 7
    assert res.units["events"].sum() == non_resp.sum()
    assert q.outcome_values(rec, "non_response").isna().sum() == np.isnan(m1).sum()


def test_outcome_values_exact_thirty_percent_is_response():
    df = pd.DataFrame(
        {
            "pain_baseline": pd.array([3.0, 10.0, 7.0, 0.0, None], dtype="Float64"),
            "pain_month1": pd.array([2.1, 7.1, 4.9, 0.0, 2.0], dtype="Float64"),
        }
    )
    got = q.outcome_values(df, "non_response")
    # Baseline 0 cannot fall by 30%: a non-response, as in responder_rates (issue 12, 7.2).
    assert got.iloc[:4].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert got.iloc[4:].isna().all()
    with pytest.raises(ValueError):
        q.outcome_values(df, "death")


def test_funnel_needs_events():
    rec = make_records(seed=1, n_units=4, per_unit=30, leakage_theta=0.2)
    rec["cement_leakage"] = pd.array(np.zeros(len(rec), bool), dtype="boolean")
    with pytest.raises(InsufficientDataError):
        q.funnel_data(rec, outcome="cement_leakage")


# ---------------------------------------------------------------------------------------------
# 5. Risk model
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_records() -> pd.DataFrame:
    return make_records(seed=31, n_units=20, per_unit=500)


def test_risk_model_recovers_true_odds_ratios(big_records):
    fit = q.risk_model(big_records, "cement_leakage", adjust_procedure=True)
    coef = fit.coefficients.set_index("term")
    truth = {
        "age": TRUE_LOGIT["age10"] / 10,
        "levels_treated": TRUE_LOGIT["levels"],
        "prior_fractures": TRUE_LOGIT["prior"],
        "procedure[T.kyphoplasty]": TRUE_LOGIT["kyphoplasty"],
        "etiology[T.malignant]": TRUE_LOGIT["malignant"],
        "etiology[T.traumatic]": TRUE_LOGIT["traumatic"],
        "sex[T.M]": TRUE_LOGIT["male"],
        "etiology[T.other]": 0.0,
    }
    # n = 10000 gives standard errors of 0.05-0.2 on the log-odds scale (0.005 for age);
    # 4 SEs (from the model's own Wald CI width) keeps a spurious failure below ~1e-3.
    for term, beta in truth.items():
        row = coef.loc[term]
        se = (math.log(row["high"]) - math.log(row["low"])) / (2 * st.norm.ppf(0.975))
        assert abs(math.log(row["odds_ratio"]) - beta) < 4 * se, term
        assert se < 0.25, term
    # c-statistic: independent Mann-Whitney AUC of the fitted risks, and close to the AUC of the
    # true risks (this model discriminates moderately well).
    y = big_records["cement_leakage"].astype(float).to_numpy()
    p = fit.expected.to_numpy()
    u = st.mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert fit.c_statistic == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), rel=1e-10)
    assert 0.62 < fit.c_statistic < 0.80
    # Calibration deciles add up to the totals; each decile is close to calibrated.
    cal = fit.calibration
    assert len(cal) == 10 and cal["n"].sum() == len(big_records) == fit.n
    assert cal["observed"].sum() == y.sum() == fit.events
    assert cal["expected"].sum() == pytest.approx(y.sum(), rel=1e-6)
    assert (cal["expected"].diff().dropna() > 0).all()
    assert fit.formula.startswith("cement_leakage ~ age + C(sex")
    assert "prior_fractures" in fit.formula


def test_risk_model_missing_values_and_excluded_rows():
    rec = make_records(seed=32, n_units=10, per_unit=300, prior_missing=0.2)
    fit = q.risk_model(rec, "non_response")
    month1_missing = rec["pain_month1"].isna().to_numpy()
    assert fit.expected.index.equals(rec.index)
    assert fit.expected[month1_missing].isna().all()
    assert fit.expected[~month1_missing].between(0, 1).all()
    assert fit.n == (~month1_missing).sum()
    assert "prior_fractures_missing" in set(fit.coefficients["term"])
    assert any("median" in note for note in fit.notes)


def test_risk_model_single_level_and_separation():
    rec = make_records(seed=33, n_units=5, per_unit=200)
    rec["sex"] = pd.Categorical(["F"] * len(rec), categories=["F", "M", "X"])
    fit = q.risk_model(rec, "cement_leakage")
    assert "sex" not in fit.formula
    assert not fit.coefficients["term"].str.startswith("sex").any()
    assert any("sex dropped" in note for note in fit.notes)
    # A category level without any event is pooled with the reference level.
    rec2 = make_records(seed=34, n_units=5, per_unit=200)
    other = rec2["etiology"] == "other"
    rec2.loc[other, "cement_leakage"] = False
    fit2 = q.risk_model(rec2, "cement_leakage")
    assert "etiology[T.other]" not in set(fit2.coefficients["term"])
    # Complete separation on age.
    rec3 = make_records(seed=35, n_units=5, per_unit=200)
    rec3["cement_leakage"] = pd.array(rec3["age"].to_numpy(int) > 78, dtype="boolean")
    with pytest.raises(InsufficientDataError, match="separation"):
        q.risk_model(rec3, "cement_leakage", covariates=["age", "procedure"])
    # Too few events.
    rec4 = make_records(seed=36, n_units=5, per_unit=200)
    rec4["pulmonary_embolism"] = pd.array(np.arange(len(rec4)) < 4, dtype="boolean")
    with pytest.raises(InsufficientDataError, match="4 event"):
        q.risk_model(rec4, "pulmonary_embolism")


# ---------------------------------------------------------------------------------------------
# Caterpillar
# ---------------------------------------------------------------------------------------------
def test_caterpillar_matches_hand_computation():
    rec = make_records(seed=41, n_units=8, per_unit=[20, 40, 60, 80, 100, 120, 140, 160])
    cat = q.caterpillar(rec, "facility_id", "cement_leakage", adjust=False)
    y = rec["cement_leakage"].astype(float)
    theta = y.mean()
    g = y.groupby(rec["facility_id"], observed=True).agg(["size", "sum"])
    assert list(cat.columns) == ["unit", "n", "observed", "expected", "oe", "low", "high", "method"]
    assert cat["oe"].is_monotonic_increasing
    cat = cat.set_index("unit").loc[g.index]
    assert cat["observed"].tolist() == g["sum"].astype(int).tolist()
    assert cat["expected"].to_numpy() == pytest.approx(g["size"].to_numpy() * theta)
    for name, row in cat.iterrows():
        o, e = int(row["observed"]), row["expected"]
        assert row["method"] == ("byar" if o >= 10 else "exact"), name
        if o < 10:
            lo = 0.0 if o == 0 else st.chi2.ppf(0.025, 2 * o) / 2
            assert row["low"] == pytest.approx(lo / e)
            assert row["high"] == pytest.approx(st.chi2.ppf(0.975, 2 * o + 2) / 2 / e)
    adj = q.caterpillar(rec, "facility_id", "cement_leakage")
    assert adj["expected"].sum() == pytest.approx(y.sum(), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# 6. CUSUM
# ---------------------------------------------------------------------------------------------
def test_cusum_chart_signals_and_restarts():
    # Every case an event at p = 0.1: W = log 2 - log 1.1 per case; h = 1 is crossed every
    # second case and the chart restarts from 0.
    w = math.log(2) - math.log(1.1)
    chart = q.cusum_chart([1, 1, 1, 1, 1], [0.1] * 5, threshold_upper=1.0, threshold_lower=None)
    assert chart["upper"].tolist() == pytest.approx([w, 2 * w, w, 2 * w, w])
    assert chart["signal_upper"].tolist() == [False, True, False, True, False]
    # Lower chart, all non-events at p = 0.5: each step adds log(1 - 0.5 + 0.25) = log 0.75.
    step = math.log(0.75)
    chart = q.cusum_chart([0] * 4, [0.5] * 4, threshold_upper=None, threshold_lower=0.5)
    assert chart["lower"].tolist() == pytest.approx([step, 2 * step, step, 2 * step])
    assert chart["signal_lower"].tolist() == [False, True, False, True]
    with pytest.raises(ValueError):
        q.cusum_chart([0, 2], [0.1, 0.1])
    with pytest.raises(ValueError):
        q.cusum_chart([0, 1], [0.1, 0.1], odds_ratio=0.5)


def _first_passage_arl(p_pool, odds_ratio, h, seed, n_charts=4000, max_len=6000):
    """Independent simulation: step many charts in parallel until each first crosses h."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n_charts)
    rl = np.full(n_charts, np.nan)
    alive = np.ones(n_charts, bool)
    for t in range(1, max_len + 1):
        p = rng.choice(p_pool, n_charts)
        y = rng.random(n_charts) < p
        wt = y * math.log(odds_ratio) - np.log(1 - p + odds_ratio * p)
        x = np.maximum(0.0, x + wt)
        hit = alive & (x >= h)
        rl[hit] = t
        alive &= ~hit
        if not alive.any():
            break
    rl[alive] = max_len
    return float(np.mean(rl)), int(alive.sum())


@pytest.mark.parametrize("method", ["markov", "simulation"])
@pytest.mark.parametrize("direction", ["upper", "lower"])
def test_simulated_threshold_gives_target_arl(direction, method):
    p_pool = np.random.default_rng(7).beta(2.0, 9.0, 300)  # a unit's case mix, mean ~0.18
    th = q.cusum_threshold(p_pool, 2.0, in_control_arl=500, direction=direction, seed=0,
                           method=method)
    assert th.direction == direction and th.target_arl == 500 and th.method == method
    ratio = 2.0 if direction == "upper" else 0.5
    arl, censored = _first_passage_arl(p_pool, ratio, th.h, seed=98765)
    assert censored < 5
    # Monte-Carlo error: ~1.6% here and ~2-3% in the module's estimate; discreteness of h is
    # negligible. A 15% window is > 4 combined SEs; a wrong h (e.g. +-0.5) moves the ARL by 40%+.
    assert arl == pytest.approx(500, rel=0.15), (th.h, arl)


def test_cusum_detects_planted_deterioration():
    # 30 in-control facilities (200 cases each) and 5 facilities with 400 cases whose odds of
    # leakage triple after their 200th case (in date order).
    sizes = [200] * 30 + [400] * 5
    rec = make_records(seed=51, n_units=35, per_unit=sizes)
    # Ties in procedure_date are broken by record_id in the chart; make dates unique so the
    # change point is exact.
    rec["procedure_date"] = pd.Timestamp("2022-01-01") + pd.to_timedelta(
        rec.groupby("facility_id", observed=True).cumcount() * 2, unit="D"
    )
    rng = np.random.default_rng(52)
    planted = [f"F{i:02d}" for i in range(30, 35)]
    for fac in planted:
        rows = rec.index[rec["facility_id"] == fac]  # already in date order
        after = rows[200:]
        # Re-draw the post-change outcomes with the odds multiplied by 3.
        sub = rec.loc[after]
        b = TRUE_LOGIT
        lin = (
            b["intercept"]
            + b["age10"] * (sub["age"].to_numpy(float) - 75) / 10
            + b["levels"] * (sub["levels_treated"].to_numpy(float) - 1)
            + b["prior"] * sub["prior_fractures"].to_numpy(float)
            + b["kyphoplasty"] * (sub["procedure"] == "kyphoplasty").to_numpy()
            + b["malignant"] * (sub["etiology"] == "malignant").to_numpy()
            + b["traumatic"] * (sub["etiology"] == "traumatic").to_numpy()
            + b["male"] * (sub["sex"] == "M").to_numpy()
            + math.log(3.0)
        )
        rec.loc[after, "cement_leakage"] = pd.array(
            rng.random(len(after)) < special.expit(lin), dtype="boolean"
        )
    pre_signals = 0
    delays = []
    for k, fac in enumerate(planted):
        res = q.cusum(rec, "facility_id", fac, "cement_leakage", in_control_arl=5000, seed=k)
        assert res.threshold_method == "markov" and res.n == 400
        chart = res.chart
        assert chart["procedure_date"].is_monotonic_increasing
        up = np.flatnonzero(chart["signal_upper"].to_numpy()) + 1
        pre_signals += int((up <= 200).sum())
        post = up[up > 200]
        # Drift after the change is ~+0.1 per case, so h ~ 5 is reached ~50 cases later
        # (26-101 cases over 15 trial units with other seeds).
        assert post.size >= 1 and post[0] <= 360, (fac, up)
        delays.append(post[0] - 200)
        sig = res.signals
        assert ((sig["direction"] == "upper") & (sig["position"] > 200)).any()
        # VLAD goes down after the change (more observed than expected events).
        vlad = chart["vlad"].to_numpy()
        assert vlad[-1] - vlad[199] < -20
    # With an in-control ARL of 5000, P(false signal in 200 cases) ~ 4% per unit.
    assert pre_signals <= 1
    assert np.mean(delays) < 100


def test_cusum_orders_by_date_and_uses_pooled_risk():
    rec = make_records(seed=61, n_units=6, per_unit=150)
    rec = rec.sample(frac=1.0, random_state=3)  # shuffled rows
    res = q.cusum(rec, "facility_id", "F02", "cement_leakage", threshold=(4.0, 3.5), adjust=False)
    assert res.threshold_method == "given"
    assert (res.threshold_upper, res.threshold_lower) == (4.0, 3.5)
    sub = rec[rec["facility_id"] == "F02"].sort_values(["procedure_date", "record_id"])
    assert res.chart["record_id"].tolist() == sub["record_id"].tolist()
    assert res.chart["observed"].tolist() == sub["cement_leakage"].astype(int).tolist()
    theta = rec["cement_leakage"].astype(float).mean()
    assert res.chart["expected"].to_numpy() == pytest.approx(np.full(len(sub), theta))
    fit = q.risk_model(rec, "cement_leakage")
    adj = q.cusum(rec, "facility_id", "F02", "cement_leakage", threshold=4.0)
    assert adj.chart["expected"].to_numpy() == pytest.approx(
        fit.expected.loc[adj.chart["record_index"]].to_numpy()
    )
    with pytest.raises(InsufficientDataError):
        q.cusum(rec, "facility_id", "nope", "cement_leakage", threshold=4.0)


def test_cusum_target_arl_when_asked():
    rec = make_records(seed=71, n_units=4, per_unit=[300, 100, 100, 100])
    res = q.cusum(rec, "facility_id", "F00", "cement_leakage", seed=1, in_control_arl=1500)
    assert res.in_control_arl == 1500 and res.threshold_method == "markov"
    assert res.arl_upper == pytest.approx(1500, rel=0.1)
    assert res.arl_lower == pytest.approx(1500, rel=0.1)
    assert 1.0 < res.threshold_upper < 8.0 and 1.0 < res.threshold_lower < 8.0
    # The series' false-alarm probability is reported whatever way h was chosen.
    assert 0.0 < res.false_alarm_upper < 1.0 and 0.0 < res.false_alarm_lower < 1.0


def test_cusum_default_limits_from_the_false_alarm_probability():
    """Issue 12 item 4: by default each chart's h is the smallest (0.001 grid) with an
    in-control probability of a false signal over the unit's n cases of at most 2.5%."""
    rec = make_records(seed=71, n_units=4, per_unit=[300, 100, 100, 100])
    res = q.cusum(rec, "facility_id", "F00", "cement_leakage", seed=1)
    assert res.threshold_method == "false_alarm" and res.false_alarm == 0.05
    p = res.chart["expected"].to_numpy()
    for d, h, chance in (("upper", res.threshold_upper, res.false_alarm_upper),
                         ("lower", res.threshold_lower, res.false_alarm_lower)):
        assert chance == pytest.approx(q.cusum_false_alarm(p, h, res.n, 2.0, d), rel=1e-9)
        assert chance <= 0.025
        assert q.cusum_false_alarm(p, h - 0.001, res.n, 2.0, d) > 0.025
    with pytest.raises(ValueError, match="false_alarm"):
        q.cusum(rec, "facility_id", "F00", "cement_leakage", false_alarm=1.5)


def test_one_fitted_model_serves_every_view():
    """Passing a fit reuses it (same numbers as refitting); a fit of other records is refused."""
    records = make_records(seed=21)
    fit = q.risk_model(records, "cement_leakage")
    refitted = q.funnel_data(records, "facility_id", "cement_leakage", adjust=True)
    reused = q.funnel_data(records, "facility_id", "cement_leakage", adjust=True, model=fit)
    pd.testing.assert_frame_equal(refitted.units, reused.units)
    pd.testing.assert_frame_equal(
        q.caterpillar(records, "facility_id", "cement_leakage"),
        q.caterpillar(records, "facility_id", "cement_leakage", model=fit))
    unit = str(records["facility_id"].iloc[0])
    pd.testing.assert_frame_equal(
        q.cusum(records, "facility_id", unit, "cement_leakage", threshold=4.5).chart,
        q.cusum(records, "facility_id", unit, "cement_leakage", threshold=4.5, model=fit).chart)
    with pytest.raises(ValueError, match="fitted on other records"):
        q.funnel_data(records.iloc[10:], "facility_id", "cement_leakage", adjust=True, model=fit)
