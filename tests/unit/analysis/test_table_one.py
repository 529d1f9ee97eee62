"""Tests of analysis.table_one.

Sources of the expected values (never the function under test):

* Counts, percentages, means, SDs, medians and quartiles computed by hand in the tests.
* ``welch_t_sleep`` and ``fisher_exact`` (tea tasting) from
  tests/fixtures/stats-reference-cases.json (R ``t.test`` and ``fisher.test`` examples).
* ``iptw_toy``'s ``smd_age_example`` (Austin 2009 SMD) from the same file.
* SMD, weighted variance (Austin & Stuart 2015) and Yang & Dalton (2012) formulas written
  out in the tests.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.table_one import DEFAULT_TABLE_ONE_VARIABLES, index_region, table_one
from tests.reference import close

KP, VP = "kyphoplasty", "vertebroplasty"


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame({
        "procedure": [VP, VP, VP, VP, KP, KP, KP, KP, KP, "other"],
        "sex": pd.Categorical(["F", "F", "M", None, "F", "M", "M", "M", "F", "F"],
                              categories=["F", "M", "X"]),
        "age": [70.0, 80.0, 75.0, 65.0, 72.0, 78.0, None, 81.0, 69.0, 50.0],
        "prior_fractures": [0, 1, 2, 3, 1, 1, 4, None, 2, 9],
    })


def rows(t1: pd.DataFrame, variable: str) -> pd.DataFrame:
    return t1[t1["variable"] == variable].set_index("level")


def test_counts_percentages_and_missing_by_hand(small):
    t1 = table_one(small, variables=["sex", "age", "prior_fractures"])
    head = rows(t1, "n").iloc[0]
    assert (head[VP], head[KP]) == ("4", "5")  # "other" is not VP or KP
    sex = rows(t1, "sex")
    assert list(sex.index) == ["", "F", "M"]  # unobserved X not listed
    assert (sex.loc["", "missing_vp"], sex.loc["", "missing_kp"]) == (1, 0)
    assert sex.loc["F", VP] == "2 (66.7)" and sex.loc["M", VP] == "1 (33.3)"
    assert sex.loc["F", KP] == "2 (40.0)" and sex.loc["M", KP] == "3 (60.0)"
    age = rows(t1, "age").iloc[0]
    # VP: 70, 80, 75, 65 → mean 72.5, SD 6.455; KP: 72, 78, 81, 69 → 75.0, 5.477.
    assert age[VP] == "72.5 (6.5)" and age[KP] == "75.0 (5.5)"
    assert (age["missing_vp"], age["missing_kp"]) == (0, 1)
    pf = rows(t1, "prior_fractures").iloc[0]
    # median [IQR], Hazen quartiles (values at (i - 0.5) / n, interpolated):
    # VP 0, 1, 2, 3 → 1.5 [0.5, 2.5]; KP 1, 1, 2, 4 → 1.5 [1.0, 3.0].
    assert pf[VP] == "1.5 [0.5, 2.5]" and pf[KP] == "1.5 [1.0, 3.0]"


def test_continuous_smd_and_welch_p(cases):
    sleep = cases["welch_t_sleep"]
    g1, g2 = sleep["inputs"]["group1"], sleep["inputs"]["group2"]
    d = pd.DataFrame({"procedure": [KP] * len(g1) + [VP] * len(g2), "extra": g1 + g2})
    t1 = table_one(d, variables=["extra"], p_values=True)
    row = rows(t1, "extra").iloc[0]
    close(row["p_value"], sleep["expected"]["p"], sleep["tol"])
    assert row["test"] == "Welch t"
    toy = cases["iptw_toy"]
    treated, control = [72, 78, 81, 69, 85, 77], [70, 66, 74, 68, 71, 73, 65]
    d = pd.DataFrame({"procedure": [KP] * 6 + [VP] * 7, "age": treated + control})
    close(rows(table_one(d, variables=["age"]), "age").iloc[0]["smd"],
          toy["expected"]["smd_age_example"], toy["tol"])


def test_fisher_and_chi_square(cases):
    tea = cases["fisher_exact"]
    (a, b), (c, e) = tea["inputs"]["tea"]
    # Rows of the 2x2 are the levels (yes/no), columns the procedures.
    d = pd.DataFrame({"procedure": [VP] * (a + c) + [KP] * (b + e),
                      "flag": ["yes"] * a + ["no"] * c + ["yes"] * b + ["no"] * e})
    var_row = rows(table_one(d, variables=["flag"], p_values=True), "flag").loc[""]
    close(var_row["p_value"], tea["expected"]["tea_p_two_sided"], tea["tol"])
    assert var_row["test"] == "Fisher exact"
    # Large counts: Pearson chi-square without continuity correction, by hand.
    d = pd.DataFrame({"procedure": [VP] * 100 + [KP] * 100,
                      "flag": ["yes"] * 30 + ["no"] * 70 + ["yes"] * 45 + ["no"] * 55})
    expected_counts = np.array([[37.5, 37.5], [62.5, 62.5]])
    observed = np.array([[30, 45], [70, 55]])
    chi2 = ((observed - expected_counts) ** 2 / expected_counts).sum()
    var_row = rows(table_one(d, variables=["flag"], p_values=True), "flag").loc[""]
    close(var_row["p_value"], math.erfc(math.sqrt(chi2 / 2)), 1e-12)  # chi-square, 1 df
    assert var_row["test"] == "chi-square"


def test_smd_leads_and_p_values_are_off_by_default(small):
    """STROBE (item 14a) and tableone: balance is shown by the SMD; baseline tests only on
    request (they used to be computed and shown by default)."""
    t1 = table_one(small, variables=["sex", "age"])
    assert list(t1.columns) == ["variable", "level", VP, KP, "smd", "missing_vp", "missing_kp"]
    weighted = table_one(small, weights=np.ones(len(small)), variables=["sex", "age"])
    assert list(weighted.columns)[:8] == ["variable", "level", VP, KP, "smd",
                                          f"{VP}_weighted", f"{KP}_weighted", "smd_weighted"]
    assert "p_value" not in weighted
    with_p = table_one(small, variables=["sex", "age"], p_values=True)
    assert list(with_p.columns)[-2:] == ["p_value", "test"]
    pd.testing.assert_frame_equal(with_p.drop(columns=["p_value", "test"]), t1)
    assert with_p["p_value"].notna().sum() == 2


def test_categorical_smd_per_level_and_yang_dalton(small):
    t1 = table_one(small, variables=["sex"])
    sex = rows(t1, "sex")
    p1, p0 = 2 / 5, 2 / 3  # share F among KP and among VP (non-missing)
    smd_f = (p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    close(sex.loc["F", "smd"], smd_f, 1e-12)
    close(sex.loc["M", "smd"], -smd_f, 1e-12)
    # Two levels: the Yang–Dalton SMD is the absolute binary SMD.
    close(sex.loc["", "smd"], abs(smd_f), 1e-12)


def test_weighted_columns(small):
    w = pd.Series([1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 1.0, 2.0, 1.0, 1.0], index=small.index)
    t1 = table_one(small, weights=w, variables=["sex", "age"], p_values=True)
    assert {"vertebroplasty_weighted", "kyphoplasty_weighted", "smd_weighted"} <= set(t1)
    assert t1["p_value"].isna().all()  # no tests in the weighted pseudo-population
    sex = rows(t1, "sex")
    # VP non-missing sex: F (w 1, 2), M (w 1) → F 3.0 of 4.0.
    assert sex.loc["F", "vertebroplasty_weighted"] == "3.0 (75.0)"
    # KP: F (0.5, 1.0), M (1.0, 1.0, 2.0) → F 1.5 of 5.5.
    assert sex.loc["F", "kyphoplasty_weighted"] == "1.5 (27.3)"
    p1, p0 = 1.5 / 5.5, 0.75
    close(sex.loc["F", "smd_weighted"],
          (p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2), 1e-12)
    age = rows(t1, "age").iloc[0]
    x, ws = np.array([72.0, 78.0, 81.0, 69.0]), np.array([0.5, 1.0, 2.0, 1.0])
    mean = (ws * x).sum() / ws.sum()
    var = ws.sum() / (ws.sum() ** 2 - (ws**2).sum()) * (ws * (x - mean) ** 2).sum()
    assert age["kyphoplasty_weighted"] == f"{mean:.1f} ({math.sqrt(var):.1f})"
    head = rows(t1, "n").iloc[0]
    assert head["vertebroplasty_weighted"] == "5.0" and head["kyphoplasty_weighted"] == "5.5"


def test_unit_weights_reproduce_unweighted(small):
    plain = table_one(small, variables=["sex", "age", "prior_fractures"])
    weighted = table_one(small, weights=np.ones(len(small)),
                         variables=["sex", "age", "prior_fractures"])
    np.testing.assert_allclose(weighted["smd_weighted"], plain["smd"], atol=1e-12)
    for variable in ("age", "prior_fractures"):  # mean (SD) and median [IQR]
        w_row, p_row = rows(weighted, variable).iloc[0], rows(plain, variable).iloc[0]
        assert w_row["vertebroplasty_weighted"] == p_row[VP]
    assert rows(weighted, "sex").loc["F", "vertebroplasty_weighted"] == "2.0 (66.7)"


def test_index_region_and_defaults():
    levels = pd.Series(["T1", "T10", "T11", "T12", "L1", "L2", "L3", "L5", "S1", None])
    assert index_region(levels).tolist() == (["thoracic"] * 2 + ["thoracolumbar"] * 4
                                             + ["lumbar"] * 3 + [np.nan])
    demo = pytest.importorskip("data.demo")
    records = demo.demo_records(400, seed=3)
    t1 = table_one(records)
    assert list(dict.fromkeys(t1["variable"]))[1:] == list(DEFAULT_TABLE_ONE_VARIABLES)
    assert set(rows(t1, "index_region").index) == {"", "thoracic", "thoracolumbar", "lumbar"}
    assert t1["smd"].iloc[1:].notna().all()


def test_bad_inputs(small):
    with pytest.raises(ValueError, match="no column"):
        table_one(small, variables=["absent"])
    with pytest.raises(ValueError, match="style"):
        table_one(small, variables={"age": "mode"})
    with pytest.raises(ValueError, match="one value per record"):
        table_one(small, weights=[1.0, 2.0])
