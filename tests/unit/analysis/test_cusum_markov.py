"""The Markov-chain CUSUM limits and the Quality page's fast paths (issue 6).

* The Markov-chain ARL (Brook & Evans 1972) is checked against (a) long, independent
  simulations of the run length for several risk-adjusted case mixes (risks 0.01-0.3, R_A = 2
  and 0.5), (b) the exact ARL of unadjusted Bernoulli CUSUMs whose weights are integer
  multiples of one step (a separate small linear solve on the integer states), and (c) a
  plain dense construction of the same chain (the Toeplitz + Woodbury solve is an
  implementation detail that must not change the number).
* The vectorised grouping, O/E limits, CUSUM recursion and signal table are compared with the
  straightforward pandas / Python-loop computations they replace, on fixed-seed cohorts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from analysis import quality as q
from analysis.errors import InsufficientDataError

LOG2 = math.log(2.0)


# ------------------------------------------------------------------------------ references
def dense_markov_arl(p: np.ndarray, ratio: float, h: float, m: int) -> float:
    """The documented chain built node by node: nodes x_i = i·h/(m-1); a move to v = x_i + w
    is a signal when v >= h, goes to node 0 when v <= 0, else is split between the two nodes
    around v in proportion to the distance (mean kept). ARL = first entry of (I - R)^-1 1."""
    w0 = -np.log1p(-p + ratio * p)
    atoms = np.concatenate([w0, w0 + math.log(ratio)])
    prob = np.concatenate([(1.0 - p) / p.size, p / p.size])
    step = h / (m - 1)
    r = np.zeros((m, m))
    for i in range(m):
        v = i * step + atoms
        stay = v < h
        pos = np.maximum(v[stay], 0.0) / step
        low = np.minimum(np.floor(pos).astype(int), m - 2)
        frac = pos - low
        np.add.at(r[i], low, prob[stay] * (1.0 - frac))
        np.add.at(r[i], low + 1, prob[stay] * frac)
    return float(np.linalg.solve(np.eye(m) - r, np.ones(m))[0])


def simulated_run_lengths(p: np.ndarray, ratio: float, h: float, runs: int,
                          seed: int) -> np.ndarray:
    """Independent run lengths of X = max(0, X + W), stopped at X >= h (no censoring)."""
    rng = np.random.default_rng(seed)
    w0 = -np.log1p(-p + ratio * p)
    w1 = w0 + math.log(ratio)
    x = np.zeros(runs)
    length = np.zeros(runs, dtype=np.int64)
    alive = np.arange(runs)
    t = 0
    while alive.size:
        t += 1
        case = rng.integers(0, p.size, alive.size)
        event = rng.random(alive.size) < p[case]
        x[alive] = np.maximum(0.0, x[alive] + np.where(event, w1[case], w0[case]))
        hit = x[alive] >= h
        length[alive[hit]] = t
        alive = alive[~hit]
    return length


def exact_lattice_arl(up: int, down: int, prob_up: float, states: int) -> float:
    """Exact ARL from 0 of an integer CUSUM: +up w.p. prob_up, else -down (floored at 0),
    signal at >= states. A separate small linear solve on the states 0..states-1."""
    r = np.zeros((states, states))
    for i in range(states):
        if i + up < states:
            r[i, i + up] += prob_up
        r[i, max(0, i - down)] += 1.0 - prob_up
    return float(np.linalg.solve(np.eye(states) - r, np.ones(states))[0])


def case_mix(name: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if name == "uniform":
        return rng.uniform(0.01, 0.30, 400)
    if name == "skewed":  # most cases low risk, a tail up to 0.3
        return np.clip(rng.beta(1.2, 12.0, 600), 0.01, 0.30)
    if name == "two-groups":
        return np.repeat([0.02, 0.25], [300, 100])
    raise ValueError(name)


MIXES = ["uniform", "skewed", "two-groups"]


# ------------------------------------------------------------------ (c) the solve itself
@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("ratio", [2.0, 0.5])
@pytest.mark.parametrize("h,m", [(2.5, 40), (4.0, 150), (9.5, 300)])
def test_toeplitz_woodbury_solve_equals_dense_chain(mix, ratio, h, m):
    p = case_mix(mix)
    atoms, prob = q._weight_atoms(p, ratio)
    fast = q._markov_arl(atoms, prob, h, m)
    assert fast == pytest.approx(dense_markov_arl(p, ratio, h, m), rel=1e-8)
    direction = "upper" if ratio > 1 else "lower"
    assert q.cusum_arl(p, h, 2.0, direction, n_states=m) == pytest.approx(fast, rel=1e-12)


# ------------------------------------------------------------------ (a) long simulations
@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("direction", ["upper", "lower"])
def test_markov_arl_at_chosen_h_is_within_simulation_ci(mix, direction):
    p = case_mix(mix)
    th = q.cusum_threshold(p, 2.0, in_control_arl=400, direction=direction)
    assert th.method == "markov" and th.n_states == q.MARKOV_STATES
    ratio = 2.0 if direction == "upper" else 0.5
    lengths = simulated_run_lengths(p, ratio, th.h, runs=20_000, seed=2024)
    mean = lengths.mean()
    half = st.norm.ppf(0.995) * lengths.std(ddof=1) / math.sqrt(lengths.size)
    # 99% CI of ~±1.8%; the Markov approximation is within ~0.2% of the exact ARL here, and a
    # limit off by 0.05 would move the ARL by ~6%.
    assert mean - half <= th.arl <= mean + half, (th.h, th.arl, mean, half)


# ------------------------------------------------------------- (b) exact Bernoulli CUSUM
@pytest.mark.parametrize("m", [10, 20, 40])
@pytest.mark.parametrize("multiple", [3, 4, 6])
@pytest.mark.parametrize("direction", ["upper", "lower"])
def test_unadjusted_bernoulli_cusum_matches_exact_lattice_arl(m, multiple, direction):
    # Choose p0 so that both weights are integer multiples of c = log(2)/m:
    # upper (R_A = 2): 1 - p0 + 2 p0 = 2^(1/m), so W = -c (no event) or (m - 1)c (event);
    # lower (R_A = 1/2): 1 - p0/2 = 2^(-1/m), so W = +c (no event) or -(m - 1)c (event).
    # The chart then lives on the integers (in units of c) and its ARL is an exact solve.
    c = LOG2 / m
    states = multiple * m
    if direction == "upper":
        p0 = 2.0 ** (1.0 / m) - 1.0
        exact = [exact_lattice_arl(m - 1, 1, p0, states + d) for d in (-1, 0, 1)]
    else:
        p0 = 2.0 * (1.0 - 2.0 ** (-1.0 / m))
        exact = [exact_lattice_arl(1, m - 1, 1.0 - p0, states + d) for d in (-1, 0, 1)]
    # Any h in ((states-1)c, states·c] has the exact ARL exact[1]: a step function of h.
    middle = q.cusum_arl(np.full(25, p0), (states - 0.5) * c, 2.0, direction)
    assert middle == pytest.approx(exact[1], rel=0.005)
    # Towards the steps the (continuous) approximation moves towards the neighbouring values,
    # never beyond them.
    for frac in (0.05, 0.25, 0.75, 0.95):
        value = q.cusum_arl([p0], (states - 1 + frac) * c, 2.0, direction)
        assert exact[0] <= value <= exact[2], (frac, value, exact)


def test_markov_arl_converges_with_the_grid():
    # The documented accuracy of MARKOV_STATES against a 4x finer grid: about 0.1% up to
    # h = 6 (ARL ~ 10^4), under 0.6% at h = 9 (ARL ~ 10^5 - 10^6, i.e. < 0.005 on h).
    for mix in MIXES:
        p = case_mix(mix)
        for h, tolerance in ((3.0, 0.001), (6.0, 0.003), (9.0, 0.006)):
            for direction in ("upper", "lower"):
                fine = q.cusum_arl(p, h, 2.0, direction, n_states=4000)
                default = q.cusum_arl(p, h, 2.0, direction)
                assert default == pytest.approx(fine, rel=tolerance), (mix, h, direction)


# ------------------------------------------------------------------------ the threshold
@pytest.mark.parametrize("target", [500.0, 5_000.0, 200_000.0])
def test_threshold_is_the_smallest_grid_limit_reaching_the_target(target):
    p = case_mix("skewed")
    for direction in ("upper", "lower"):
        th = q.cusum_threshold(p, 2.0, in_control_arl=target, direction=direction)
        assert th.arl == pytest.approx(q.cusum_arl(p, th.h, 2.0, direction), rel=1e-12)
        assert th.arl >= target
        assert q.cusum_arl(p, th.h - 0.001, 2.0, direction) < target
        assert th.h == round(th.h, 3) and th.target_arl == target
        assert (th.n_sim, th.horizon) == (0, 0)


def test_simulation_method_is_kept_and_agrees():
    p = case_mix("uniform")
    markov = q.cusum_threshold(p, 2.0, in_control_arl=1000)
    sim = q.cusum_threshold(p, 2.0, in_control_arl=1000, method="simulation", seed=3)
    assert sim.method == "simulation" and sim.n_sim > 0 and sim.n_states == 0
    # Monte-Carlo error of the simulated ARL ~3% -> ~0.03 on h.
    assert abs(sim.h - markov.h) < 0.12, (sim.h, markov.h)


def test_threshold_and_arl_errors():
    with pytest.raises(ValueError, match="method"):
        q.cusum_threshold([0.1], method="exact")
    with pytest.raises(InsufficientDataError):
        q.cusum_threshold([0.0, 0.0])
    with pytest.raises(ValueError, match="n_states"):
        q.cusum_arl([0.1], 3.0, n_states=5)
    with pytest.raises(ValueError, match="positive"):
        q.cusum_arl([0.1], 0.0)
    assert q.cusum_arl([0.0], 3.0) == math.inf  # no case can move the chart up


def test_cusum_reports_the_markov_limits():
    rng = np.random.default_rng(5)
    n = 900
    frame = pd.DataFrame({
        "facility_id": rng.choice(["A", "B", "C"], n),
        "procedure_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 400, n),
                                                                      unit="D"),
        "record_id": [f"R{i:05d}" for i in range(n)],
        "cement_leakage": rng.random(n) < 0.2,
    })
    n_a = int((frame["facility_id"] == "A").sum())
    res = q.cusum(frame, "facility_id", "A", "cement_leakage", adjust=False,
                  in_control_arl=max(1000.0, 5.0 * n_a))
    assert res.threshold_method == "markov"
    assert res.in_control_arl == max(1000.0, 5.0 * res.n)
    p = res.chart["expected"].to_numpy()
    assert res.arl_upper == pytest.approx(q.cusum_arl(p, res.threshold_upper, 2.0, "upper"))
    assert res.arl_lower == pytest.approx(q.cusum_arl(p, res.threshold_lower, 2.0, "lower"))
    sim = q.cusum(frame, "facility_id", "A", "cement_leakage", adjust=False,
                  arl_method="simulation", in_control_arl=1000.0)
    assert sim.threshold_method == "simulated"
    with pytest.raises(ValueError, match="arl_method"):
        q.cusum(frame, "facility_id", "A", "cement_leakage", arl_method="guess")


# ------------------------------------------------------------------------- fast paths
def _old_as_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values.astype("object"), errors="coerce").to_numpy(dtype=float)


@pytest.mark.parametrize("values", [
    pd.Series([True, False, None], dtype="boolean"),
    pd.Series([1, None, 3], dtype="Int64"),
    pd.Series([1.5, None, 2.0], dtype="Float64"),
    pd.Series([1.5, np.nan, np.inf]),
    pd.Series([True, False]),
    pd.Series([1, 2], dtype="int32"),
    pd.Series(["1", "x", None], dtype="object"),
    pd.Series(pd.Categorical([1, 2, None])),
])
def test_as_float_equals_the_object_round_trip(values):
    # quality reads outcomes and covariates with analysis._kernels._floats
    np.testing.assert_array_equal(q._floats(values), _old_as_float(values))


def cohort(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    units = np.array([f"F{i:02d}" for i in range(23)] + ["Zed", "ärzte"], dtype=object)
    facility = rng.choice(units, n, p=np.r_[np.full(23, 0.04), 0.04, 0.04])
    facility[rng.random(n) < 0.05] = None
    leak = pd.array(rng.random(n) < 0.15, dtype="boolean")
    leak[rng.random(n) < 0.08] = pd.NA
    return pd.DataFrame({
        "facility_id": pd.array(facility, dtype="string"),
        "record_id": pd.array([f"R{i:06d}" for i in range(n)], dtype="string"),
        "procedure_date": pd.Timestamp("2022-01-01")
        + pd.to_timedelta(np.sort(rng.integers(0, 500, n)), unit="D"),
        "age": rng.integers(50, 95, n),
        "sex": pd.Categorical(rng.choice(["F", "M"], n), categories=["F", "M"]),
        "cement_leakage": leak,
    })


def _groupby_table(records: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    y = _old_as_float(records["cement_leakage"])
    keep = ~np.isnan(y) & records["facility_id"].notna().to_numpy()
    frame = pd.DataFrame({"unit": records["facility_id"].to_numpy(dtype=object)[keep],
                          "y": y[keep], "p": p[keep]})
    return (frame.groupby("unit", sort=True)
            .agg(n=("y", "size"), events=("y", "sum"), expected=("p", "sum"))
            .reset_index())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("categorical", [False, True])
def test_funnel_and_caterpillar_groups_equal_pandas_groupby(seed, categorical):
    records = cohort(seed)
    if categorical:  # the dashboard's per-selection frame: units as categoricals
        records = records.assign(facility_id=pd.Categorical(records["facility_id"]))
    model = q.risk_model(records, "cement_leakage", covariates=["age", "sex"])
    p = model.expected.to_numpy()
    expected = _groupby_table(records, p)
    funnel = q.funnel_data(records, outcome="cement_leakage", adjust=True, model=model)
    units = funnel.units
    assert units["unit"].tolist() == expected["unit"].tolist()
    assert units["n"].tolist() == expected["n"].tolist()
    assert units["events"].tolist() == expected["events"].astype(int).tolist()
    np.testing.assert_allclose(units["expected"], expected["expected"], rtol=1e-12)
    # The caterpillar against the per-unit oe_ratio loop it replaced.
    cat = q.caterpillar(records, outcome="cement_leakage", adjust=True, model=model)
    rows = []
    for row in expected.itertuples():
        r = q.oe_ratio(int(row.events), float(row.expected))
        rows.append((row.unit, int(row.n), r.observed, r.expected, r.ratio, r.low, r.high,
                     r.method))
    old = pd.DataFrame(rows, columns=["unit", "n", "observed", "expected", "oe", "low", "high",
                                      "method"])
    old = old.sort_values(["oe", "unit"], kind="mergesort").reset_index(drop=True)
    assert cat["unit"].tolist() == old["unit"].tolist()
    assert cat[["n", "observed"]].to_numpy().tolist() == old[["n", "observed"]].to_numpy().tolist()
    assert cat["method"].tolist() == old["method"].tolist()
    for column in ("expected", "oe", "low", "high"):
        np.testing.assert_allclose(cat[column], old[column], rtol=1e-12)


def test_oe_limits_equal_oe_ratio_for_every_count():
    observed = np.arange(0, 60)
    expected = np.linspace(0.5, 70.0, observed.size)
    for level in (0.95, 0.998):
        ratio, low, high, method = q._oe_limits(observed, expected, level)
        for i, (o, e) in enumerate(zip(observed, expected, strict=True)):
            r = q.oe_ratio(int(o), float(e), level=level)
            assert (ratio[i], method[i]) == (r.ratio, r.method)
            assert low[i] == pytest.approx(r.low, rel=1e-13, abs=1e-15)
            assert high[i] == pytest.approx(r.high, rel=1e-13)


def _loop_chart(w_up, w_low, h_up, h_low):
    upper, lower = np.empty(w_up.size), np.empty(w_up.size)
    sig_up, sig_low = np.zeros(w_up.size, bool), np.zeros(w_up.size, bool)
    x = z = 0.0
    for t in range(w_up.size):
        x = max(0.0, x + w_up[t])
        z = min(0.0, z - w_low[t])
        upper[t], lower[t] = x, z
        if x >= h_up:
            sig_up[t], x = True, 0.0
        if z <= -h_low:
            sig_low[t], z = True, 0.0
    return upper, lower, sig_up, sig_low


@pytest.mark.parametrize("seed,n,shift", [(1, 50, 1.0), (2, 7000, 1.0), (3, 7000, 2.5),
                                          (4, 5000, 0.4)])
def test_vectorised_cusum_chart_equals_the_loop(seed, n, shift):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.4, n)
    # Out-of-control odds (shift) give many signals, so blocks restart often.
    y = (rng.random(n) < q.alternative_risk(p, shift)).astype(float)
    chart = q.cusum_chart(y, p, 2.0, 3.0, 2.5)
    up, low, sig_up, sig_low = _loop_chart(chart["weight_upper"].to_numpy(),
                                           chart["weight_lower"].to_numpy(), 3.0, 2.5)
    np.testing.assert_allclose(chart["upper"], up, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(chart["lower"], low, rtol=1e-12, atol=1e-12)
    assert chart["signal_upper"].tolist() == sig_up.tolist()
    assert chart["signal_lower"].tolist() == sig_low.tolist()
    assert not np.signbit(chart["lower"].to_numpy()[chart["lower"].to_numpy() == 0]).any()
    if shift != 1.0:
        assert sig_up.sum() + sig_low.sum() > 5


def test_cusum_on_ordered_and_shuffled_records_and_signal_table():
    records = cohort(7, n=4000)
    records.loc[records.index[::7], "procedure_date"] = records["procedure_date"].iloc[0]
    model = q.risk_model(records, "cement_leakage", covariates=["age", "sex"])
    ordered = q.cusum(records, "facility_id", "F03", "cement_leakage", threshold=(1.5, 1.2),
                      model=model)
    shuffled_records = records.sample(frac=1.0, random_state=4)
    shuffled = q.cusum(shuffled_records, "facility_id", "F03", "cement_leakage",
                       threshold=(1.5, 1.2), model=q.risk_model(
                           shuffled_records, "cement_leakage", covariates=["age", "sex"]))
    assert ordered.chart["record_id"].tolist() == shuffled.chart["record_id"].tolist()
    sub = records[records["facility_id"] == "F03"].dropna(subset=["cement_leakage"])
    sub = sub.sort_values(["procedure_date", "record_id"], kind="mergesort")
    assert ordered.chart["record_id"].tolist() == sub["record_id"].tolist()
    np.testing.assert_allclose(ordered.chart["upper"], shuffled.chart["upper"], rtol=1e-9)
    # The signal table as the former row-by-row construction built it.
    chart = ordered.chart
    rows = []
    for direction in ("upper", "lower"):
        for i in np.flatnonzero(chart[f"signal_{direction}"].to_numpy()):
            rows.append({"position": int(i) + 1, "record_index": chart.at[i, "record_index"],
                         "record_id": chart.at[i, "record_id"],
                         "procedure_date": chart.at[i, "procedure_date"],
                         "direction": direction, "value": float(chart.at[i, direction])})
    assert len(rows) > 3
    old = pd.DataFrame(rows).sort_values(["position", "direction"], kind="mergesort")
    pd.testing.assert_frame_equal(ordered.signals, old.reset_index(drop=True))
    assert q._in_order(sub["procedure_date"].to_numpy(), sub["record_id"].to_numpy())
    swapped = sub["record_id"].to_numpy().copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    tie = sub["procedure_date"].iloc[0] == sub["procedure_date"].iloc[1]
    assert q._in_order(sub["procedure_date"].to_numpy(), swapped) is not tie
