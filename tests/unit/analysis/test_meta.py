"""Tests of analysis.meta.pool_studies.

Sources of the expected values (never the function under test):

* ``meta_bcg``: tests/fixtures/stats-reference-cases.json (metafor tests on dat.bcg,
  cross-checked against Stata ``metan``).
* metafor's own test files, which quote Stata ``metan`` (github wviechtb/metafor,
  tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r and
  test_misc_metan_vs_rma.mh_with_dat.bcg.r): FE/DL for RR, OR, RD (estimate, CI, z, Q,
  I² %) and Mantel–Haenszel RR, OR, RD (log estimate, CI, z, Q around the MH estimate).
  The MH RD z uses the Sato/Greenland–Robins 1989 variance (metafor; Stata's 11.56 uses the
  1985 form).
* Hand calculations (Haldane 0.5 correction, weights) and invariants (identical studies give
  tau² = 0, I² = 0 and DL = FE).
* REML and Hartung–Knapp: metafor ``rma(method="REML")`` and ``rma(test="knha")`` on the same
  BCG trials (all 13 and the first 4), computed once by tests/results/meta_reml_knha.R into
  tests/results/meta_reml_knha.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from analysis.errors import InsufficientDataError
from analysis.meta import pool_studies
from tests.reference import close

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stats-reference-cases.json"


@pytest.fixture(scope="module")
def bcg():
    data = json.loads(FIXTURES.read_text())
    case = next(c for c in data["cases"] if c["name"] == "meta_bcg")
    inp = {k: np.array(v) for k, v in case["inputs"].items() if k != "note"}
    counts = (inp["tpos"], inp["tpos"] + inp["tneg"], inp["cpos"], inp["cpos"] + inp["cneg"])
    return counts, case["expected"], case["tol"]


@pytest.mark.parametrize("measure", ["RR", "OR"])
def test_bcg_reference_case(bcg, measure):
    counts, expected, tol = bcg
    exp = expected[measure.lower()]
    fe = pool_studies(*counts, measure=measure, method="FE")
    close(math.log(fe.estimate), exp["fe_log"], tol)
    close(math.log(fe.low), exp["fe_log_ci"][0], tol)
    close(math.log(fe.high), exp["fe_log_ci"][1], tol)
    dl = pool_studies(*counts, measure=measure, method="DL")
    close(math.log(dl.estimate), exp["dl_log"], tol)
    close(math.log(dl.low), exp["dl_log_ci"][0], tol)
    close(math.log(dl.high), exp["dl_log_ci"][1], tol)
    close(dl.estimate, exp["dl_exp"][0], tol)
    close(dl.low, exp["dl_exp"][1], tol)
    close(dl.high, exp["dl_exp"][2], tol)
    close(dl.tau2, exp["tau2_dl"], tol)
    close(dl.q, exp["Q"], tol)
    close(dl.i2, 100 * exp["I2_fraction"], 100 * tol)  # percent, not a fraction
    assert dl.k == 13 and dl.q_df == 12
    mh = pool_studies(*counts, measure=measure, method="MH")
    close(mh.estimate, exp[f"mh_{measure.lower()}"], tol)
    if measure == "RR":
        close(mh.low, exp["mh_rr_ci_greenland_robins"][0], tol)
        close(mh.high, exp["mh_rr_ci_greenland_robins"][1], tol)


# (measure, method): log-scale estimate, CI, z, Q, exp estimate & CI, I² (%) from metafor/metan
METAN = {
    ("RR", "FE"): dict(
        est=-0.4303, ci=(-0.5097, -0.3509), z=-10.6247, q=152.2330, exp=(0.6503, 0.6007, 0.7040)
    ),
    ("RR", "DL"): dict(
        est=-0.7141,
        ci=(-1.0644, -0.3638),
        z=-3.9952,
        tau2=0.3088,
        i2=92.1173,
        exp=(0.4896, 0.3449, 0.6950),
    ),
    ("OR", "FE"): dict(
        est=-0.4361, ci=(-0.5190, -0.3533), z=-10.3190, q=163.1649, exp=(0.6465, 0.5951, 0.7024)
    ),
    ("OR", "DL"): dict(
        est=-0.7474,
        ci=(-1.1242, -0.3706),
        z=-3.8873,
        tau2=0.3663,
        i2=92.6455,
        exp=(0.4736, 0.3249, 0.6903),
    ),
    ("RD", "FE"): dict(est=-0.0009, ci=(-0.0014, -0.0005), z=-4.0448, q=276.4737),
    ("RD", "DL"): dict(est=-0.0071, ci=(-0.0101, -0.0040), z=-4.5128, tau2=0.0000, i2=95.6596),
    ("RR", "MH"): dict(
        est=-0.4537, ci=(-0.5308, -0.3766), z=-11.5338, q=152.5676, exp=(0.6353, 0.5881, 0.6862)
    ),
    ("OR", "MH"): dict(
        est=-0.4734, ci=(-0.5538, -0.3930), z=-11.5444, q=163.9426, exp=(0.6229, 0.5748, 0.6750)
    ),
    ("RD", "MH"): dict(est=-0.0033, ci=(-0.0039, -0.0027), z=-11.4708, q=386.7759),
}


@pytest.mark.parametrize("key", sorted(METAN))
def test_bcg_against_metafor_and_stata_metan(bcg, key):
    counts, _, _ = bcg
    measure, method = key
    exp = METAN[key]
    r = pool_studies(*counts, measure=measure, method=method)
    log = math.log if measure != "RD" else (lambda v: v)
    tol = 1e-4  # published to 4 decimals
    close(log(r.estimate), exp["est"], tol)
    close(log(r.low), exp["ci"][0], tol)
    close(log(r.high), exp["ci"][1], tol)
    close(r.z, exp["z"], tol)
    if "q" in exp:
        close(r.q, exp["q"], tol)
    if "tau2" in exp:
        close(r.tau2, exp["tau2"], tol)
    if "i2" in exp:
        close(r.i2, exp["i2"], tol)
    if "exp" in exp:
        close(r.estimate, exp["exp"][0], tol)
        close(r.low, exp["exp"][1], tol)
        close(r.high, exp["exp"][2], tol)
    assert r.p_value == pytest.approx(
        2 * (1 - 0.5 * (1 + math.erf(abs(r.z) / math.sqrt(2)))), abs=1e-12
    )


def test_studies_table_and_weights(bcg):
    counts, _, _ = bcg
    r = pool_studies(*counts, measure="RR", method="MH", labels=[f"T{i}" for i in range(13)])
    s = r.studies
    assert list(s.columns) == [
        "label",
        "events1",
        "n1",
        "events2",
        "n2",
        "estimate",
        "low",
        "high",
        "weight",
        "zero_cell_correction",
        "included",
    ]
    assert s["weight"].sum() == pytest.approx(100.0)
    # MH weight for RR is c * n1 / N (Greenland & Robins 1985).
    a, n1, c, n2 = (np.asarray(v, float) for v in counts)
    w = c * n1 / (n1 + n2)
    np.testing.assert_allclose(s["weight"], 100 * w / w.sum())
    # First study, hand computed: RR = (4/123)/(11/139)
    assert s["estimate"].iloc[0] == pytest.approx((4 / 123) / (11 / 139))
    assert s["label"].iloc[0] == "T0"


def test_negative_dl_moment_estimate_is_truncated_at_zero():
    # Identical studies: Q = 0 < df, the untruncated DL tau² would be negative.
    ev1, n1, ev2, n2 = [10] * 4, [100] * 4, [20] * 4, [100] * 4
    dl = pool_studies(ev1, n1, ev2, n2, measure="RR", method="DL")
    fe = pool_studies(ev1, n1, ev2, n2, measure="RR", method="FE")
    assert dl.tau2 == 0.0
    assert dl.i2 == 0.0
    assert (dl.estimate, dl.low, dl.high) == (fe.estimate, fe.low, fe.high)
    assert dl.estimate == pytest.approx(0.5)


def test_zero_cells_corrected_and_double_zero_studies_excluded():
    ev1, n1, ev2, n2 = [0, 3, 0, 5], [20, 30, 25, 40], [4, 6, 0, 9], [20, 30, 25, 40]
    r = pool_studies(ev1, n1, ev2, n2, measure="RR", method="FE")
    s = r.studies
    assert s["zero_cell_correction"].tolist() == [True, False, True, False]
    assert s["included"].tolist() == [True, True, False, True]
    assert r.k == 3 and math.isnan(s["weight"].iloc[2])
    # Study 1 with 0.5 added to each cell: (0.5/21) / (4.5/21)
    assert s["estimate"].iloc[0] == pytest.approx(0.5 / 4.5)
    # ... and its variance 1/0.5 - 1/21 + 1/4.5 - 1/21 gives the CI.
    se = math.sqrt(1 / 0.5 - 1 / 21 + 1 / 4.5 - 1 / 21)
    assert s["high"].iloc[0] == pytest.approx(
        math.exp(math.log(0.5 / 4.5) + 1.959963984540054 * se)
    )
    # Uncorrected studies keep their plain estimates (no 0.5 added elsewhere).
    assert s["estimate"].iloc[1] == pytest.approx((3 / 30) / (6 / 30))
    rd = pool_studies(ev1, n1, ev2, n2, measure="RD", method="FE")
    assert rd.k == 4 and rd.studies["included"].all()


def test_mh_handles_zero_cells_without_correction():
    # MH RR from the raw counts: R = sum a n2/N, S = sum c n1/N.
    ev1, n1, ev2, n2 = [0, 3, 2], [20, 30, 25], [4, 6, 5], [20, 30, 25]
    r = pool_studies(ev1, n1, ev2, n2, measure="RR", method="MH")
    a, m1, c, m2 = (np.asarray(v, float) for v in (ev1, n1, ev2, n2))
    n = m1 + m2
    assert r.estimate == pytest.approx(np.sum(a * m2 / n) / np.sum(c * m1 / n))


def test_too_few_studies_raise():
    with pytest.raises(InsufficientDataError, match="2 are needed"):
        pool_studies([3], [30], [5], [30])
    with pytest.raises(InsufficientDataError, match="1 informative study"):
        pool_studies([3, 0], [30, 10], [5, 0], [30, 10], measure="OR")
    with pytest.raises(InsufficientDataError, match="no patients"):
        pool_studies([3, 1], [30, 0], [5, 1], [30, 10])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="measure"):
        pool_studies([1, 2], [10, 10], [1, 2], [10, 10], measure="HR")
    with pytest.raises(ValueError, match="method"):
        pool_studies([1, 2], [10, 10], [1, 2], [10, 10], method="PM")
    with pytest.raises(ValueError):
        pool_studies([11, 2], [10, 10], [1, 2], [10, 10])


@settings(max_examples=50, deadline=None)
@given(
    k=hs.integers(2, 8),
    data=hs.data(),
    measure=hs.sampled_from(["RR", "OR", "RD"]),
    method=hs.sampled_from(["DL", "FE", "MH"]),
)
def test_pooled_interval_contains_estimate_and_i2_is_a_percentage(k, data, measure, method):
    n1 = data.draw(hs.lists(hs.integers(5, 200), min_size=k, max_size=k))
    n2 = data.draw(hs.lists(hs.integers(5, 200), min_size=k, max_size=k))
    e1 = [data.draw(hs.integers(1, n - 1)) for n in n1]
    e2 = [data.draw(hs.integers(1, n - 1)) for n in n2]
    r = pool_studies(e1, n1, e2, n2, measure=measure, method=method)
    assert r.low <= r.estimate <= r.high
    assert 0.0 <= r.i2 <= 100.0
    assert r.tau2 >= 0.0
    assert r.studies["weight"].sum() == pytest.approx(100.0)


RESULTS = Path(__file__).resolve().parents[2] / "results" / "meta_reml_knha.json"
METAFOR = {key: value for key, value in json.loads(RESULTS.read_text()).items()
           if isinstance(value, dict)}


@pytest.mark.parametrize("key", sorted(METAFOR))
def test_reml_and_hartung_knapp_against_metafor(bcg, key):
    """REML tau² (metafor's default) and the Hartung–Knapp–Sidik–Jonkman interval were not
    available (method="REML" was refused, DL/FE/MH only)."""
    ref = METAFOR[key]
    counts, _, _ = bcg
    rows = slice(None) if ref["subset"] == "all13" else slice(0, 4)
    counts = tuple(np.asarray(c)[rows] for c in counts)
    knha = ref["test"] == "knha"
    r = pool_studies(*counts, measure=ref["measure"], method=ref["method"],
                     hartung_knapp=knha)
    log = math.log if ref["measure"] != "RD" else (lambda v: v)
    assert r.k == ref["k"] and r.method == ref["method"]
    np.testing.assert_allclose(
        [log(r.estimate), r.se, log(r.low), log(r.high), r.z, r.tau2],
        [ref["estimate"], ref["se"], ref["ci_lb"], ref["ci_ub"], ref["statistic"], ref["tau2"]],
        rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(r.p_value, ref["p_value"], rtol=1e-6)
    assert r.test == ("t" if knha else "z")
    assert r.df == (ref["df"] if knha else math.inf)


def test_hartung_knapp_only_for_random_effects(bcg):
    counts, _, _ = bcg
    for method in ("FE", "MH"):
        with pytest.raises(ValueError, match="Hartung"):
            pool_studies(*counts, method=method, hartung_knapp=True)
