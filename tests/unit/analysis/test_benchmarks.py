"""Tests of analysis.benchmarks and the shipped literature_benchmarks.csv.

The expected figures below were transcribed by hand from the project's clinical-evidence
reference (clinical-evidence.md), entries tagged [S] only, with the section each comes from:

* JOSR18 (§2 table; §1.4, §1.7): leakage RR 0.62 (0.47–0.80) KP vs VP; VAS WMD 0.04
  (−0.28 to 0.36); ODI WMD KP−VP −1.30 (−3.34 to 0.74); 16 studies.
* ZHAN (§2 table; §1.4): leakage VP 54.7%, KP 18.4%; 22 studies, 2,872 patients.
* XING (§2 table; §1.8): long-term kyphosis MD −2.64° (−4.66 to −0.61); 10 studies, 783
  patients.
* PAPA, Papanastassiou 2012 (§2 table; §1.6, §1.7, §1.8): pain change BKP −5.07, VP −4.55;
  subsequent fractures VP 11%, BKP 11%; kyphosis reduction BKP 4.8° vs VP 1.7°; 27 studies.
* BEALL 2018 (§2 table; §1.6, §1.7): VAS change BKP −4.05, VP −3.88; BKP subsequent fracture
  32.7% (8.8–56.6%); 25 studies.
* Orthop Surg 2012 review (§2 table; §1.5): PCE incidence 2.1% to 26% (range).
* Luetmer AJNR 2011 (§1.5): PCE 23/244 (9.4%, 95% CI 6–13%) of VP patients with chest CT.
* Venmans AJNR 2008 (§1.5): PCE 11/532 PVs (2.1%, 95% CI 1.1–3.7%).
* KAVIAR (§1.3, §1.6): duration 31.8 min VP vs 40.0 min KP; ≥1 new VCF at 12 months KP
  50/140 (35.7%), VP 57/131 (43.5%).
* AJNR-COST (§1.3): outpatient VP 36%, KP 46% (Premier 2007–08).

Percentages are typed as printed and divided by 100 here (the table stores proportions).
"""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd
import pytest

from analysis.benchmarks import (
    BENCHMARK_COLUMNS,
    MEASURES,
    PROCEDURES,
    benchmark_for,
    literature_benchmarks,
)

NA = math.nan

# (source_key, outcome, procedure, measure, estimate, low, high, n_studies, n_patients)
TRANSCRIBED = [
    ("JOSR18", "cement_leakage", "kp_vs_vp", "risk_ratio", 0.62, 0.47, 0.80, 16, None),
    ("JOSR18", "pain_vas", "kp_vs_vp", "mean_difference", 0.04, -0.28, 0.36, 16, None),
    ("JOSR18", "odi", "kp_vs_vp", "mean_difference", -1.30, -3.34, 0.74, 16, None),
    ("ZHAN", "cement_leakage", "vertebroplasty", "proportion", 54.7 / 100, NA, NA, 22, 2872),
    ("ZHAN", "cement_leakage", "kyphoplasty", "proportion", 18.4 / 100, NA, NA, 22, 2872),
    ("XING", "kyphotic_angle", "kp_vs_vp", "mean_difference", -2.64, -4.66, -0.61, 10, 783),
    ("PAPA", "pain_change", "kyphoplasty", "mean_change", -5.07, NA, NA, 27, None),
    ("PAPA", "pain_change", "vertebroplasty", "mean_change", -4.55, NA, NA, 27, None),
    ("PAPA", "subsequent_fracture", "vertebroplasty", "proportion", 11 / 100, NA, NA, 27, None),
    ("PAPA", "subsequent_fracture", "kyphoplasty", "proportion", 11 / 100, NA, NA, 27, None),
    ("PAPA", "kyphosis_reduction", "kyphoplasty", "mean_change", 4.8, NA, NA, 27, None),
    ("PAPA", "kyphosis_reduction", "vertebroplasty", "mean_change", 1.7, NA, NA, 27, None),
    ("BEALL", "pain_change", "kyphoplasty", "mean_change", -4.05, NA, NA, 25, None),
    ("BEALL", "pain_change", "vertebroplasty", "mean_change", -3.88, NA, NA, 25, None),
    ("BEALL", "subsequent_fracture", "kyphoplasty", "proportion", 32.7 / 100, 8.8 / 100,
     56.6 / 100, 25, None),
    ("ORTHOPSURG12", "pulmonary_embolism", "vp_or_kp", "range", NA, 2.1 / 100, 26 / 100, None,
     None),
    ("LUETMER", "pulmonary_embolism", "vertebroplasty", "proportion", 9.4 / 100, 6 / 100,
     13 / 100, None, 244),
    ("VENMANS", "pulmonary_embolism", "vertebroplasty", "proportion", 2.1 / 100, 1.1 / 100,
     3.7 / 100, None, None),
    ("KAVIAR", "duration_min", "vertebroplasty", "mean", 31.8, NA, NA, 1, None),
    ("KAVIAR", "duration_min", "kyphoplasty", "mean", 40.0, NA, NA, 1, None),
    ("KAVIAR", "adjacent_fracture_12m", "kyphoplasty", "proportion", 35.7 / 100, NA, NA, 1, 140),
    ("KAVIAR", "adjacent_fracture_12m", "vertebroplasty", "proportion", 43.5 / 100, NA, NA, 1,
     131),
    ("AJNR-COST", "outpatient_share", "vertebroplasty", "proportion", 36 / 100, NA, NA, None,
     None),
    ("AJNR-COST", "outpatient_share", "kyphoplasty", "proportion", 46 / 100, NA, NA, None, None),
]

# Fragments of the §5 citation each source must carry.
CITATIONS = {
    "JOSR18": "Balloon kyphoplasty versus percutaneous vertebroplasty for osteoporotic "
              "vertebral compression fracture: a meta-analysis and systematic review",
    "ZHAN": "World Neurosurg 2017;101:633",
    "XING": "Xing D et al. J Clin Neurosci 2013;20:795",
    "PAPA": "Papanastassiou ID et al. Eur Spine J 2012;21:1826",
    "BEALL": "Beall D et al. IJSS 2018;12(3):295",
    "ORTHOPSURG12": "Orthop Surg 2012",
    "LUETMER": "AJNR Am J Neuroradiol 2011;32:654",
    "VENMANS": "Venmans A et al. AJNR 2008;29:1983",
    "KAVIAR": "Dohm M et al.",
    "AJNR-COST": "AJNR 2011;32:1290",
}


def same(got: float, expected: float) -> bool:
    if math.isnan(expected):
        return pd.isna(got)
    return abs(got - expected) <= 1e-12


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return literature_benchmarks()


def test_csv_is_inside_the_package_and_parses(table):
    path = resources.files("analysis").joinpath("reference", "literature_benchmarks.csv")
    assert path.is_file()
    assert tuple(table.columns) == BENCHMARK_COLUMNS
    assert len(table) == len(TRANSCRIBED)
    for column in ("estimate", "low", "high"):
        assert table[column].dtype == "float64"
    assert str(table.n_studies.dtype) == "Int64" and str(table.n_patients.dtype) == "Int64"


def test_every_row_is_cited_and_tagged_seen(table):
    assert (table.evidence_tag == "S").all()
    for column in ("citation", "source_key", "reported", "population", "unit", "outcome"):
        assert (table[column].str.strip().str.len() > 0).all(), column
    assert table.procedure.isin(PROCEDURES).all()
    assert table.measure.isin(MEASURES).all()
    for key, fragment in CITATIONS.items():
        citations = set(table.loc[table.source_key == key, "citation"])
        assert len(citations) == 1, key
        assert fragment in citations.pop(), key
    assert set(table.source_key) == set(CITATIONS)


def test_numbers_equal_the_hand_transcribed_figures(table):
    keyed = {(r.source_key, r.outcome, r.procedure): r for r in table.itertuples(index=False)}
    assert len(keyed) == len(table)  # one row per source, outcome and procedure
    assert set(keyed) == {(t[0], t[1], t[2]) for t in TRANSCRIBED}
    for key, outcome, procedure, measure, estimate, low, high, n_studies, n_patients in (
        TRANSCRIBED
    ):
        got = keyed[(key, outcome, procedure)]
        assert got.measure == measure, (key, outcome, procedure)
        assert same(got.estimate, estimate), (key, outcome, procedure, got.estimate)
        assert same(got.low, low), (key, outcome, procedure, got.low)
        assert same(got.high, high), (key, outcome, procedure, got.high)
        assert (None if pd.isna(got.n_studies) else got.n_studies) == n_studies, key
        assert (None if pd.isna(got.n_patients) else got.n_patients) == n_patients, key


def test_intervals_contain_their_estimates(table):
    for r in table.itertuples(index=False):
        if not pd.isna(r.low) and not pd.isna(r.high):
            assert r.low <= r.high, r
        if not pd.isna(r.estimate) and not pd.isna(r.low):
            assert r.low <= r.estimate, r
        if not pd.isna(r.estimate) and not pd.isna(r.high):
            assert r.estimate <= r.high, r
        if r.measure in ("proportion", "range"):
            values = [v for v in (r.estimate, r.low, r.high) if not pd.isna(v)]
            assert all(0 <= v <= 1 for v in values), r
        if r.measure == "range":
            assert pd.isna(r.estimate) and not pd.isna(r.low) and not pd.isna(r.high)
        if r.measure == "risk_ratio":
            assert r.estimate > 0 and r.low > 0


def test_benchmark_for_filters():
    leakage = benchmark_for("cement_leakage")
    assert set(leakage.procedure) == {"kp_vs_vp", "vertebroplasty", "kyphoplasty"}
    assert list(leakage.index) == list(range(len(leakage)))
    kp = benchmark_for("cement_leakage", "kyphoplasty")
    assert len(kp) == 1 and kp.estimate.item() == pytest.approx(0.184)
    assert benchmark_for("pulmonary_embolism", "vertebroplasty").source_key.tolist() == [
        "LUETMER", "VENMANS"]
    empty = benchmark_for("no_such_outcome")
    assert empty.empty and tuple(empty.columns) == BENCHMARK_COLUMNS
    with pytest.raises(ValueError, match="procedure"):
        benchmark_for("cement_leakage", "VP")


def test_results_are_copies():
    first = literature_benchmarks()
    first.loc[0, "estimate"] = 99.0
    assert literature_benchmarks().loc[0, "estimate"] != 99.0
    part = benchmark_for("cement_leakage", "kp_vs_vp")
    part.loc[0, "estimate"] = 99.0
    assert benchmark_for("cement_leakage", "kp_vs_vp").estimate.item() == pytest.approx(0.62)
