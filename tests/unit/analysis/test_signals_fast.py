"""The Signals page's fast path (issue 15 item 1 follow-up): the CUSUM limit is searched only
for charts that may signal, limits are cached, and the frame is the one the unit-by-unit
charts give.

* The frame of :func:`current_signals` equals the former computation, which charted every
  tested unit with :func:`cusum` and its plain Markov-chain limit (no skip, no guard), on a
  fixed seeded cohort with every outcome and both unit types; a wrong skip (a signalling
  chart taken for one that cannot signal) would drop a row.
* The lower bound of the false-alarm probability that justifies the skip is checked against
  exact probabilities of lattice CUSUMs (a separate step-by-step chain on the integers) and
  against long simulations of risk-adjusted case mixes; a bound that rounded weights to the
  nearest lattice point instead of down would exceed the exact value and fail.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import analysis.quality as q
import analysis.signals as signals_module
from analysis.signals import SignalOptions, current_signals
from data.demo import demo_records

LOG2 = math.log(2.0)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    records = demo_records(1000, seed=7)
    return records[[c for c in signals_module.READ_COLUMNS if c in records.columns]]


def _reference_frame(records, monkeypatch) -> pd.DataFrame:
    """The former path: every tested unit charted by cusum() with its plain Markov limit."""
    with monkeypatch.context() as patch:
        patch.setattr(signals_module, "_chart_limits", lambda *args, **kwargs: None)
        patch.setattr(q, "_below_false_alarm_limit", lambda *args, **kwargs: False)
        patch.setattr(q, "_LIMIT_CACHE", q.collections.OrderedDict())
        return current_signals(records, SignalOptions()).unfiltered


def test_fast_frame_equals_charting_every_unit(cohort, monkeypatch):
    reference = _reference_frame(cohort, monkeypatch)
    searched = []
    original = q._false_alarm_threshold

    def counting(*args, **kwargs):
        searched.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(q, "_LIMIT_CACHE", q.collections.OrderedDict())
    monkeypatch.setattr(q, "_false_alarm_threshold", counting)
    fast = current_signals(cohort, SignalOptions())
    pd.testing.assert_frame_equal(fast.unfiltered, reference)
    cusum_rows = reference[reference["kind"] == "cusum"]
    assert len(cusum_rows) >= 5  # signals in both directions: a wrong skip would show
    assert set(cusum_rows["direction"]) == {"high", "low"}
    assert set(cusum_rows["unit"]) == {"facility_id", "operator_id"}
    # The search ran for few charts: two per charted unit before (every unit, both charts).
    charts = 2 * int(fast.monitored["tested"].sum())
    assert len(searched) < 0.35 * charts, (len(searched), charts)


def test_since_date_and_exclusions_agree_with_the_reference(cohort, monkeypatch):
    options = SignalOptions(outcomes=("cement_leakage", "adjacent_fracture"),
                            exclude=lambda frame, unit, outcome: ("FAC-009",))
    with monkeypatch.context() as patch:
        patch.setattr(signals_module, "_chart_limits", lambda *args, **kwargs: None)
        patch.setattr(q, "_below_false_alarm_limit", lambda *args, **kwargs: False)
        reference = current_signals(cohort, options).since_date(pd.Timestamp("2024-01-01").date())
    fast = current_signals(cohort, options).since_date(pd.Timestamp("2024-01-01").date())
    pd.testing.assert_frame_equal(fast.to_frame(), reference.to_frame())


# ------------------------------------------------------------------------ the lower bound
def exact_lattice_signal_probability(up: int, down: int, prob_up: float, states: int,
                                     n: int) -> float:
    """P(signal within n) from 0 of the integer CUSUM +up w.p. prob_up, else -down (floored
    at 0), signal at >= states: n plain steps of the state distribution."""
    dist = np.zeros(states)
    dist[0] = 1.0
    for _ in range(n):
        new = np.zeros(states)
        for i, mass in enumerate(dist):
            if i + up < states:
                new[i + up] += mass * prob_up
            new[max(0, i - down)] += mass * (1.0 - prob_up)
        dist = new
    return 1.0 - dist.sum()


@pytest.mark.parametrize("up,states,prob_up,n", [(9, 40, 0.07, 200), (19, 60, 0.04, 500),
                                                  (7, 48, 0.11, 1000)])
def test_lower_bound_equals_the_exact_lattice_probability_when_aligned(up, states, prob_up, n):
    # Weights -1 and +up lattice units of c = 2^-4 (exact in binary, so h/states = c exactly):
    # the rounding changes nothing and the bound is the exact probability.
    c = 2.0 ** -4
    atoms = np.array([-1.0, float(up)]) * c
    prob = np.array([1.0 - prob_up, prob_up])
    exact = exact_lattice_signal_probability(up, 1, prob_up, states, n)
    bound = q._signal_probability_lower_bound(atoms, prob, states * c, n, states=states)
    assert bound == pytest.approx(exact, rel=1e-9)
    assert 0.01 < exact < 0.99


@pytest.mark.parametrize("states", [37, 100, 151])
def test_lower_bound_stays_below_the_exact_probability(states):
    m, multiple, n = 10, 4, 300
    c = LOG2 / m
    p0 = 2.0 ** (1.0 / m) - 1.0
    atoms, prob = q._weight_atoms(np.full(30, p0), 2.0)
    for h_steps in (multiple * m - 0.5, multiple * m - 0.1, multiple * m):
        h = h_steps * c
        # X reaches h exactly when the integer chart reaches ceil(h/c).
        exact = exact_lattice_signal_probability(m - 1, 1, p0, math.ceil(h_steps - 1e-12), n)
        bound = q._signal_probability_lower_bound(atoms, prob, h, n, states=states)
        assert bound <= exact + 1e-12, (states, h_steps, bound, exact)
        # ... and is not trivial: the rounding costs at most a few lattice steps of drift.
        assert bound > 0.3 * exact


def simulated_signal_probability(p, ratio, h, n, runs, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros(runs)
    hit = np.zeros(runs, dtype=bool)
    for _ in range(n):
        risk = p[rng.integers(0, p.size, runs)]
        y = rng.random(runs) < risk
        x = np.maximum(0.0, x + y * math.log(ratio) - np.log1p(-risk + ratio * risk))
        hit |= x >= h
    return hit.mean()


@pytest.mark.parametrize("direction", ["upper", "lower"])
@pytest.mark.parametrize("mix", ["leakage", "rare"])
def test_lower_bound_against_simulation(direction, mix):
    rng = np.random.default_rng(3)
    p = rng.beta(3, 7, 300) if mix == "leakage" else rng.beta(1, 60, 300)
    ratio = 2.0 if direction == "upper" else 0.5
    atoms, prob = q._weight_atoms(p, ratio)
    n, runs = 200, 20_000
    for h in (1.5, 3.0):
        sim = simulated_signal_probability(p, ratio, h, n, runs, seed=9)
        bound = q._signal_probability_lower_bound(atoms, prob, h, n)
        se = math.sqrt(max(sim * (1 - sim), 1e-4) / runs)
        assert bound <= sim + 3.5 * se, (h, bound, sim)
        if mix == "leakage":  # informative, not merely true (rare events: loose but true)
            assert bound > 0.2 * sim


def test_proven_levels_lie_below_the_markov_limit(cohort):
    """The guard in cusum() rarely matters: a chart level proven below the exact limit is
    below the Markov-chain limit, or within its documented accuracy (a few thousandths of h;
    at small n the 400-point lattice can prove the Markov limit itself a hair low)."""
    model = q.apply_risk_model(q.risk_model(cohort, "cement_leakage"), cohort)
    y, p = q._expected_risks(cohort, "cement_leakage", True, model)
    checked = 0
    for unit_id in sorted(cohort["facility_id"].dropna().unique())[:15]:
        sub = q._unit_series(cohort, "facility_id", unit_id, "cement_leakage", y, p)
        risks = sub["p"].to_numpy()
        for ratio in (2.0, 0.5):
            atoms, prob = q._weight_atoms(risks, ratio)
            h = q._false_alarm_limit(atoms, prob, len(sub), 0.025)[0]
            for level in np.linspace(0.5, 1.5, 11) * h:
                if q._below_false_alarm_limit(atoms, prob, len(sub), 0.025, level):
                    assert level <= h * 1.005, (unit_id, ratio, len(sub), h, level)
                    checked += 1
    assert checked > 50


def test_cusum_keeps_its_limit_above_a_proven_level(monkeypatch):
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({
        "facility_id": ["A"] * n,
        "procedure_date": pd.date_range("2023-01-01", periods=n),
        "record_id": [f"R{i:04d}" for i in range(n)],
        "cement_leakage": rng.random(n) < 0.2,
    })
    plain = q.cusum(frame, "facility_id", "A", "cement_leakage", adjust=False)
    top = q._chart_top(plain.chart["weight_upper"].to_numpy())
    # A (wrong) limit search that returns a limit the chart reaches although the chart's top
    # is proven to lie below the exact limit: cusum() raises it above the top.
    assert q._below_false_alarm_limit(*q._weight_atoms(plain.chart["expected"].to_numpy(), 2.0),
                                      n, 0.025, top)
    monkeypatch.setattr(q, "_false_alarm_limit",
                        lambda atoms, prob, n, alpha: (top / 2.0, 0.5, 10.0))
    guarded = q.cusum(frame, "facility_id", "A", "cement_leakage", adjust=False)
    assert guarded.threshold_upper > top
    assert not (guarded.signals["direction"] == "upper").any()
    assert guarded.false_alarm_upper == pytest.approx(
        q.cusum_false_alarm(plain.chart["expected"], guarded.threshold_upper, n), rel=1e-9)


def test_limit_cache_returns_the_search_once(monkeypatch):
    p = np.random.default_rng(2).beta(2, 8, 120)
    atoms, prob = q._weight_atoms(p, 2.0)
    calls = []
    original = q._false_alarm_threshold
    monkeypatch.setattr(q, "_LIMIT_CACHE", q.collections.OrderedDict())
    monkeypatch.setattr(q, "_false_alarm_threshold",
                        lambda *args: calls.append(args) or original(*args))
    first = q._false_alarm_limit(atoms, prob, 120, 0.025)
    second = q._false_alarm_limit(atoms.copy(), prob.copy(), 120, 0.025)
    assert first == second == original(atoms, prob, 120, 0.025) and len(calls) == 1
    q._false_alarm_limit(atoms, prob, 121, 0.025)  # another n is another limit
    q._false_alarm_limit(atoms, prob, 120, 0.02)
    assert len(calls) == 3


def test_fine_lattice_check_equals_the_bound_it_stops_early_on():
    p = np.random.default_rng(6).beta(2, 9, 90)
    atoms, prob = q._weight_atoms(p, 2.0)
    for h, n in ((2.0, 60), (3.5, 90), (5.0, 300)):
        bound = q._signal_probability_lower_bound(atoms, prob, h, n, states=400)
        assert 0.0 < bound < 1.0
        assert q._lattice_exceeds(atoms, prob, h, n, 400, bound * 0.999)
        assert not q._lattice_exceeds(atoms, prob, h, n, 400, bound * 1.001)
