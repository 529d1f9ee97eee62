"""Tests of analysis.costs: rate tables, conversion, summaries, cost per responder, ICER, GLM.

Sources of the expected values (never the functions under test):

* Conversion arithmetic: hand-computed from small rate tables that each test writes itself,
  so the tests do not depend on the shipped numbers.
* Shipped tables: structure and plausibility bands only (INR per USD 60-100, GBP per USD
  0.6-0.95, ...), never their exact values.
* ``glm_closed_forms`` in tests/fixtures/stats-reference-cases.json (gamma GLM with one
  binary covariate: exp(b) = ratio of means, φ = Pearson X²/(n−2), SE = √(φ(1/n0+1/n1))),
  and the same closed forms recomputed here from the data with the t distribution.
* ICER: a constructed data set where KP costs exactly 1000 more and has 20 percentage points
  more responders (Δcost = 1000, Δresponse = 0.2, ICER = 5000 by construction).
* Bootstrap intervals are checked only for coverage-type properties and reproducibility,
  never to 4 decimals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from analysis import costs
from analysis.costs import (
    CostOptions,
    RateTableError,
    adjusted_cost_ratio,
    cost_per_responder,
    cost_summary,
    exchange_rates,
    incremental_cost_per_responder,
    normalise_costs,
    ppp_factors,
)
from analysis.errors import InsufficientDataError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stats-reference-cases.json"
VP, KP = "vertebroplasty", "kyphoplasty"

RATES = """year,currency,units_per_usd,source
2022,EUR,0.9,test table
2022,GBP,0.8,test table
2022,INR,80,test table
2023,EUR,0.95,test table
2023,GBP,0.75,test table
2023,INR,82,test table
"""

PPP = """year,country,currency,ppp_per_usd,source
2023,US,USD,1,test
2023,GB,GBP,0.7,test
2023,DE,EUR,0.75,test
2023,FR,EUR,0.72,test
2023,IN,INR,22,test
"""


@pytest.fixture
def rates_file(tmp_path: Path) -> Path:
    path = tmp_path / "rates.csv"
    path.write_text(RATES)
    return path


@pytest.fixture
def ppp_file(tmp_path: Path) -> Path:
    path = tmp_path / "ppp.csv"
    path.write_text(PPP)
    return path


def frame(rows: list[tuple], columns=("cost", "currency", "procedure_date")) -> pd.DataFrame:
    data = pd.DataFrame(rows, columns=list(columns))
    if "procedure_date" in data:
        data["procedure_date"] = pd.to_datetime(data["procedure_date"])
    return data


def usd(costs_by_procedure: dict[str, list[float]], date: str = "2024-06-01") -> pd.DataFrame:
    rows = [(proc, cost, "USD", date) for proc, values in costs_by_procedure.items()
            for cost in values]
    return frame(rows, ("procedure", "cost", "currency", "procedure_date"))


# ------------------------------------------------------------------------------ conversion


def test_exchange_conversion_by_hand(rates_file: Path) -> None:
    records = frame([
        (100.0, "EUR", "2022-03-01"),   # 100 / 0.9
        (100.0, "GBP", "2023-07-01"),   # 100 / 0.75
        (8000.0, "INR", "2022-12-31"),  # 8000 / 80
        (50.0, "USD", "2023-01-01"),    # unchanged
        (None, "EUR", "2023-01-01"),    # no cost
        (100.0, "XYZ", "2023-01-01"),   # unknown currency
        (100.0, "EUR", "2025-05-01"),   # nearest year: 2023 -> 100 / 0.95
        (100.0, None, "2023-01-01"),    # cost without currency
    ])
    original = records.copy()
    out = normalise_costs(records, CostOptions(price_year="nominal", rates_path=rates_file))
    expected = [100 / 0.9, 100 / 0.75, 100.0, 50.0, math.nan, math.nan, 100 / 0.95, math.nan]
    np.testing.assert_allclose(out["cost_reporting"].to_numpy(), expected, rtol=1e-12)
    pd.testing.assert_frame_equal(records, original)  # input untouched
    assert out.attrs["n_unconverted"] == 2
    assert out.attrs["unconverted"] == {"cost without currency": 1,
                                        "XYZ not in the exchange-rate table": 1}
    notes = out["conversion_note"].astype(str).tolist()
    assert notes[4] == "no cost"
    assert notes[6] == "EUR→USD exchange rate 2023 (nearest year to 2025)"
    assert any("2025 → 2023 for EUR" in note for note in out.attrs["notes"])
    assert any("could not be converted" in note for note in out.attrs["notes"])


def test_exchange_to_other_reporting_currency_and_fixed_year(rates_file: Path) -> None:
    records = frame([(100.0, "EUR", "2022-03-01"), (100.0, "USD", "2023-03-01"),
                     (100.0, "GBP", "2022-03-01")])
    out = normalise_costs(records, CostOptions(price_year="nominal", reporting_currency="GBP", rates_path=rates_file))
    np.testing.assert_allclose(out["cost_reporting"], [100 / 0.9 * 0.8, 100 * 0.75, 100.0],
                               rtol=1e-12)
    fixed = normalise_costs(records, CostOptions(price_year="nominal", reporting_currency="GBP", year=2023,
                                                 rates_path=rates_file))
    np.testing.assert_allclose(fixed["cost_reporting"], [100 / 0.95 * 0.75, 75.0, 100.0],
                               rtol=1e-12)


def test_nearest_year_tie_takes_the_earlier_year(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    path.write_text("year,currency,units_per_usd,source\n2022,EUR,0.5,t\n2024,EUR,0.8,t\n")
    out = normalise_costs(frame([(10.0, "EUR", "2023-06-01")]), CostOptions(price_year="nominal", rates_path=path))
    assert out["cost_reporting"].iloc[0] == pytest.approx(20.0)
    assert "nearest year to 2023" in str(out["conversion_note"].iloc[0])


def test_environment_variable_selects_the_table(rates_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("VA_EXCHANGE_RATES", str(rates_file))
    assert exchange_rates().attrs["path"] == str(rates_file.resolve())
    out = normalise_costs(frame([(90.0, "EUR", "2022-01-01")]), CostOptions(price_year="nominal"))
    assert out["cost_reporting"].iloc[0] == pytest.approx(100.0)


def test_ppp_conversion_by_hand(rates_file: Path, ppp_file: Path) -> None:
    records = frame([
        (700.0, "GBP", "GB", "2023-02-01"),   # 700 / 0.7 = 1000 int$
        (7500.0, "EUR", "DE", "2023-02-01"),  # 7500 / 0.75 = 10000
        (720.0, "EUR", "FR", "2023-02-01"),   # 720 / 0.72 = 1000 (French factor)
        (2200.0, "INR", "IN", "2021-02-01"),  # nearest PPP year 2023: 100
        (100.0, "USD", "GB", "2023-02-01"),   # USD at a GB facility: 100 * 0.75 GBP / 0.7
        (100.0, "USD", "BR", "2023-02-01"),   # no PPP factor for BR
    ], ("cost", "currency", "country", "procedure_date"))
    options = CostOptions(price_year="nominal", method="ppp", rates_path=rates_file, ppp_path=ppp_file)
    out = normalise_costs(records, options)
    np.testing.assert_allclose(
        out["cost_reporting"], [1000.0, 10000.0, 1000.0, 100.0, 75 / 0.7, math.nan],
        rtol=1e-12)
    assert out.attrs["n_unconverted"] == 1
    # International dollars expressed in euros at German prices.
    in_eur = normalise_costs(records, CostOptions(price_year="nominal", method="ppp", reporting_currency="EUR",
                                                  reporting_country="DE",
                                                  rates_path=rates_file, ppp_path=ppp_file))
    np.testing.assert_allclose(in_eur["cost_reporting"].iloc[:3], [750.0, 7500.0, 750.0],
                               rtol=1e-12)


def test_ppp_shared_currency_needs_a_reporting_country(rates_file: Path, ppp_file: Path) -> None:
    records = frame([(100.0, "EUR", "DE", "2023-01-01")],
                    ("cost", "currency", "country", "procedure_date"))
    options = CostOptions(price_year="nominal", method="ppp", reporting_currency="EUR", rates_path=rates_file,
                          ppp_path=ppp_file)
    with pytest.raises(ValueError, match="reporting_country"):
        normalise_costs(records, options)


def test_options_are_validated() -> None:
    assert CostOptions(reporting_currency=" gbp ").reporting_currency == "GBP"
    with pytest.raises(ValueError):
        CostOptions(method="ppp-ish")
    with pytest.raises(ValueError):
        CostOptions(reporting_currency="dollars")
    with pytest.raises(ValueError):
        CostOptions(year="2023")


# ------------------------------------------------------------------------------ bad tables


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("year,currency,source\n2023,EUR,x\n", 1, "missing column(s) units_per_usd"),
        ("year,currency,units_per_usd,source\n2023,EUR,0.9,x\n2023,GBP,-0.8,x\n", 3,
         "positive"),
        ("year,currency,units_per_usd,source\n2023,EUR,abc,x\n", 2, "not a number"),
        ("year,currency,units_per_usd,source\n2023,EURO,0.9,x\n", 2, "ISO 4217"),
        ("year,currency,units_per_usd,source\n23,EUR,0.9,x\n", 2, "four-digit year"),
        ("year,currency,units_per_usd,source\n2023,EUR,0.9,\n", 2, "source is empty"),
        ("year,currency,units_per_usd,source\n2023,USD,1.1,x\n", 2, "USD must be 1"),
        ("year,currency,units_per_usd,source\n2023,EUR,0.9,x\n\n2023,EUR,0.91,x\n", 4,
         "first on line 2"),
        ("year,currency,units_per_usd,source\n2023,EUR,0.9,a, b\n", 2, "fields"),
    ],
)
def test_bad_rate_file_names_file_line_and_problem(tmp_path: Path, text: str, line: int,
                                                   fragment: str) -> None:
    path = tmp_path / "bad_rates.csv"
    path.write_text(text)
    with pytest.raises(RateTableError) as info:
        exchange_rates(path)
    assert info.value.line == line
    assert str(path) in str(info.value)
    assert f"line {line}" in str(info.value)
    assert fragment in str(info.value)


def test_bad_ppp_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad_ppp.csv"
    path.write_text("year,country,currency,ppp_per_usd,source\n2023,US,USD,1,x\n"
                    "2023,GBR,GBP,0.7,x\n")
    with pytest.raises(RateTableError, match=r"line 3: country 'GBR'"):
        ppp_factors(path)
    path.write_text("year,country,currency,ppp_per_usd,source\n2023,DE,EUR,0,x\n")
    with pytest.raises(RateTableError, match="line 2: ppp_per_usd must be a positive"):
        ppp_factors(path)
    with pytest.raises(RateTableError, match="file not found"):
        exchange_rates(tmp_path / "absent.csv")
    with pytest.raises(RateTableError, match="bad_ppp.csv"):
        normalise_costs(frame([(1.0, "EUR", "2023-01-01")]),
                        CostOptions(price_year="nominal", rates_path=path))


# ------------------------------------------------------------------------- shipped tables


def test_shipped_exchange_rates_structure_coverage_and_bands() -> None:
    table = exchange_rates(costs.DEFAULT_EXCHANGE_RATES)
    assert list(table.columns) == ["year", "currency", "units_per_usd", "source"]
    assert (table["units_per_usd"] > 0).all()
    assert table["source"].str.len().gt(0).all()
    assert not table.duplicated(["year", "currency"]).any()
    rate = table.set_index(["year", "currency"])["units_per_usd"]
    years_with_rates = set(table["year"])
    demo_years = range(2021, 2026)
    covered = [y for y in demo_years if y in years_with_rates]
    assert covered, "no demo year has exchange rates"
    for year in covered:
        for currency in ("USD", "EUR", "GBP", "INR"):
            assert (year, currency) in rate.index, (year, currency)
        assert rate[year, "USD"] == 1.0
        assert 60 < rate[year, "INR"] < 100
        assert 0.6 < rate[year, "GBP"] < 0.95
        assert 0.75 < rate[year, "EUR"] < 1.05
    # Demo years missing from the table resolve to a nearby year, with a note.
    demo = frame([(100.0, "EUR", f"{y}-06-01") for y in demo_years])
    out = normalise_costs(demo, CostOptions(price_year="nominal"))
    assert out["cost_reporting"].notna().all()
    for year in set(demo_years) - years_with_rates:
        assert any(f"nearest year to {year}" in str(n) for n in out["conversion_note"])


def test_shipped_ppp_structure_and_bands() -> None:
    table = ppp_factors(costs.DEFAULT_PPP_FACTORS)
    assert list(table.columns) == ["year", "country", "currency", "ppp_per_usd", "source"]
    assert (table["ppp_per_usd"] > 0).all()
    assert not table.duplicated(["year", "country"]).any()
    for year, rows in table.groupby("year"):
        factor = rows.set_index("country")["ppp_per_usd"]
        for country in ("US", "GB", "DE", "FR", "IN"):
            assert country in factor.index, (year, country)
        assert factor["US"] == 1.0
        assert 0.5 < factor["GB"] < 0.9
        assert 0.55 < factor["DE"] < 0.9 and 0.55 < factor["FR"] < 0.9
        assert 12 < factor["IN"] < 35


# ---------------------------------------------------------------------------- summaries


def test_cost_summary_counts_quantiles_and_bootstrap() -> None:
    rng = np.random.default_rng(7)
    vp = rng.lognormal(8.2, 0.5, 300)
    kp = rng.lognormal(8.8, 0.5, 300)
    records = usd({VP: list(vp), KP: list(kp)})
    records.loc[[0, 1, 400], "cost"] = np.nan
    table = cost_summary(records, n_resamples=1000, seed=3)
    row = table.set_index("procedure").loc[VP]
    observed = vp[2:]
    assert row["n"] == 298 and row["missing"] == 2
    assert row["mean"] == pytest.approx(observed.mean(), rel=1e-12)
    assert row["median"] == pytest.approx(np.median(observed), rel=1e-12)
    assert row["q1"] == pytest.approx(np.percentile(observed, 25), rel=1e-12)
    assert row["q3"] == pytest.approx(np.percentile(observed, 75), rel=1e-12)
    for _, r in table.iterrows():
        assert r["mean_low"] < r["mean"] < r["mean_high"]
        assert r["method"].startswith("bootstrap BCa")
        assert r["currency"] == "USD"
    again = cost_summary(records, n_resamples=1000, seed=3)
    pd.testing.assert_frame_equal(table, again)  # reproducible with the seed


def test_bootstrap_interval_narrows_with_n() -> None:
    rng = np.random.default_rng(11)
    small = usd({VP: list(rng.lognormal(8, 0.6, 200))})
    large = usd({VP: list(rng.lognormal(8, 0.6, 3000))})
    width = {}
    for name, records in (("small", small), ("large", large)):
        row = cost_summary(records, n_resamples=1000).iloc[0]
        assert row["mean_low"] < row["mean"] < row["mean_high"]
        width[name] = row["mean_high"] - row["mean_low"]
    assert width["large"] < width["small"] / 2  # ~ 1/sqrt(15) expected


def test_large_groups_use_the_t_interval() -> None:
    values = np.random.default_rng(5).gamma(2.0, 2000.0, 6000)
    table = cost_summary(usd({KP: list(values)}))
    row = table.iloc[0]
    half = st.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    assert "t-interval" in row["method"]
    assert row["mean_low"] == pytest.approx(values.mean() - half, rel=1e-10)
    assert row["mean_high"] == pytest.approx(values.mean() + half, rel=1e-10)


def test_summary_edge_groups_and_overall_row() -> None:
    records = usd({VP: [1000.0], KP: [2000.0, 2000.0, 2000.0]})
    table = cost_summary(records).set_index("procedure")
    assert math.isnan(table.loc[VP, "mean_low"]) and table.loc[VP, "n"] == 1
    assert table.loc[KP, "mean_low"] == table.loc[KP, "mean_high"] == 2000.0
    overall = cost_summary(records, by=())
    assert len(overall) == 1 and overall["n"].iloc[0] == 4
    assert overall["mean"].iloc[0] == pytest.approx(1750.0)
    with pytest.raises(ValueError, match="no column"):
        cost_summary(records, by=("region",))


# ---------------------------------------------------------------------- cost per responder


def test_cost_per_responder_by_hand() -> None:
    records = usd({VP: [1000.0, 2000.0, 3000.0, 4000.0], KP: [5000.0, 6000.0, 7000.0]})
    records.loc[5, "cost"] = np.nan  # second KP record has no cost
    status = pd.Series([True, False, True, None, True, True, False], index=records.index,
                       dtype="boolean")
    table = cost_per_responder(records, responders=status).set_index("procedure")
    vp, kp = table.loc[VP], table.loc[KP]
    # VP: known status and cost for 1000 (R), 2000 (N), 3000 (R).
    assert (vp["n"], vp["responders"], vp["excluded"]) == (3, 2, 1)
    assert vp["total_cost"] == 6000.0 and vp["mean_cost"] == 2000.0
    assert vp["responder_rate"] == pytest.approx(2 / 3)
    assert vp["cost_per_responder"] == pytest.approx(3000.0)  # 2000 / (2/3)
    # KP: 5000 (R), 7000 (N).
    assert (kp["n"], kp["responders"], kp["excluded"]) == (2, 1, 1)
    assert kp["cost_per_responder"] == pytest.approx(12000.0)  # 6000 / (1/2)


def test_cost_per_responder_with_a_definition_object_and_no_responders() -> None:
    records = usd({VP: [1000.0, 3000.0]})

    class Nobody:
        def is_responder(self, data: pd.DataFrame) -> pd.Series:
            return pd.Series(False, index=data.index, dtype="boolean")

    row = cost_per_responder(records, responder=Nobody()).iloc[0]
    assert row["responders"] == 0 and math.isnan(row["cost_per_responder"])
    with pytest.raises(ValueError, match="not both"):
        cost_per_responder(records, responder=Nobody(), responders=[True, True])
    with pytest.raises(ValueError, match="2 records"):
        cost_per_responder(records, responders=[True])


# ----------------------------------------------------------------------------------- ICER


def icer_data(n: int = 100, vp_responders: int = 50, kp_responders: int = 70,
              extra_cost: float = 1000.0) -> tuple[pd.DataFrame, list[bool]]:
    base = [3000.0 + 25.0 * i for i in range(n)]
    records = usd({VP: base, KP: [c + extra_cost for c in base]})
    status = ([True] * vp_responders + [False] * (n - vp_responders)
              + [True] * kp_responders + [False] * (n - kp_responders))
    return records, status


def test_icer_constructed_point_estimates_are_exact() -> None:
    records, status = icer_data()
    result = incremental_cost_per_responder(records, responders=status, n_resamples=1000)
    assert result.delta_cost == pytest.approx(1000.0, abs=1e-9)
    assert result.delta_response == pytest.approx(0.2, abs=1e-12)
    assert result.icer == pytest.approx(5000.0, rel=1e-12)
    assert (result.n_kp, result.n_vp) == (100, 100)
    assert result.delta_cost_low < 1000.0 < result.delta_cost_high
    assert 0.0 < result.delta_response_low < 0.2 < result.delta_response_high
    assert result.icer_low < 5000.0 < result.icer_high
    assert result.prob_more_costly_more_effective > 0.95
    assert "Each additional responder" in result.interpretation
    assert "Briggs" in result.method
    again = incremental_cost_per_responder(records, responders=status, n_resamples=1000)
    assert again == result  # reproducible with the seed
    frame_ = result.to_frame()
    assert frame_.loc[0, "icer"] == pytest.approx(5000.0)


def test_icer_undefined_when_response_difference_includes_zero() -> None:
    records, status = icer_data(vp_responders=50, kp_responders=52)
    result = incremental_cost_per_responder(records, responders=status, n_resamples=1000)
    assert result.delta_response_low < 0.0 < result.delta_response_high
    assert math.isnan(result.icer_low) and math.isnan(result.icer_high)
    assert "undefined or unstable" in result.interpretation
    total = (result.prob_dominant + result.prob_dominated
             + result.prob_more_costly_more_effective + result.prob_less_costly_less_effective)
    assert 0.9 < total <= 1.0
    assert result.prob_more_costly_more_effective > result.prob_dominant


def test_icer_dominant_and_normal_approximation(monkeypatch) -> None:
    records, status = icer_data(extra_cost=-800.0, kp_responders=80)
    result = incremental_cost_per_responder(records, responders=status, n_resamples=1000)
    assert result.delta_cost == pytest.approx(-800.0)
    assert result.prob_dominant > 0.95
    assert "dominant" in result.interpretation
    monkeypatch.setattr(costs, "ICER_RESAMPLE_MAX_N", 10)
    approx = incremental_cost_per_responder(records, responders=status, n_resamples=1000)
    assert "normal approximation" in approx.method
    assert approx.icer == result.icer
    assert approx.delta_cost_low < -800.0 < approx.delta_cost_high


def test_icer_needs_two_patients_per_arm() -> None:
    records = usd({VP: [1000.0, 2000.0, 3000.0], KP: [5000.0]})
    with pytest.raises(InsufficientDataError, match="kyphoplasty has 1"):
        incremental_cost_per_responder(records, responders=[True, False, True, True])


# ---------------------------------------------------------------------------- gamma GLM


@pytest.fixture(scope="module")
def glm_case() -> dict:
    cases = json.loads(FIXTURES.read_text())["cases"]
    return next(case for case in cases if case["name"] == "glm_closed_forms")


def test_gamma_ratio_matches_closed_forms(glm_case: dict) -> None:
    vp = np.array(glm_case["inputs"]["cost_vp"], dtype=float)
    kp = np.array(glm_case["inputs"]["cost_kp"], dtype=float)
    expected, tol = glm_case["expected"], glm_case["tol"]
    result = adjusted_cost_ratio(usd({VP: list(vp), KP: list(kp)}), covariates=())
    assert abs(result.ratio - expected["gamma_ratio"]) <= tol
    assert abs(result.scale - expected["gamma_scale"]) <= tol
    assert abs(result.se_log - expected["gamma_se"]) <= tol
    # The same closed forms from the data, with t on n - 2 df (R's glm for Gamma).
    n = vp.size + kp.size
    fitted = np.concatenate([np.full(vp.size, vp.mean()), np.full(kp.size, kp.mean())])
    y = np.concatenate([vp, kp])
    phi = np.sum(((y - fitted) / fitted) ** 2) / (n - 2)
    se = math.sqrt(phi * (1 / vp.size + 1 / kp.size))
    b = math.log(kp.mean() / vp.mean())
    t = st.t.ppf(0.975, n - 2)
    assert result.ratio == pytest.approx(kp.mean() / vp.mean(), rel=1e-8)
    assert result.se_log == pytest.approx(se, rel=1e-6)
    assert result.low == pytest.approx(math.exp(b - t * se), rel=1e-6)
    assert result.high == pytest.approx(math.exp(b + t * se), rel=1e-6)
    assert result.p_value == pytest.approx(2 * st.t.sf(abs(b / se), n - 2), rel=1e-6)
    # t-based limits are wider than the z-based ones listed in the case.
    z_low, z_high = expected["gamma_ratio_ci_z"]
    assert result.low < z_low and result.high > z_high
    assert (result.n, result.n_kp, result.n_vp) == (11, 6, 5)
    assert "unadjusted" in result.method


def test_adjusted_ratio_with_covariates_on_demo_data() -> None:
    from data.demo import demo_records

    records = demo_records(3000, seed=4)
    result = adjusted_cost_ratio(records)
    assert result.ratio > 1.0  # KP is costlier than VP in the demo calibration
    assert result.low < result.ratio < result.high
    assert "adjusted for age, sex, etiology, levels_treated, country" in result.method
    assert result.n + result.excluded == int(records["procedure"].notna().sum())
    one_country = records[records["country"] == "US"]
    single = adjusted_cost_ratio(one_country, covariates=("age", "country"))
    assert "dropped (one value only): country" in single.method
    clustered = adjusted_cost_ratio(records, covariates=("age",), cluster="facility_id")
    assert "cluster-robust" in clustered.method


def test_adjusted_ratio_agrees_with_a_plain_statsmodels_formula_fit() -> None:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    from data.demo import demo_records

    records = demo_records(2000, seed=9)
    data = records[records["currency"] == "USD"].dropna(
        subset=["cost", "age", "sex", "levels_treated"])
    data = data[data["cost"] > 0]  # USD only: no conversion, so the oracle sees raw costs
    model_data = pd.DataFrame({
        "cost": data["cost"].astype(float),
        "kp": (data["procedure"] == KP).astype(float),
        "age": data["age"].astype(float),
        "sex": data["sex"].astype(str),
        "levels": data["levels_treated"].astype(float),
    })
    oracle = smf.glm("cost ~ kp + age + C(sex) + levels", model_data,
                     family=sm.families.Gamma(link=sm.families.links.Log())).fit(use_t=True)
    result = adjusted_cost_ratio(data, covariates=("age", "sex", "levels_treated"),
                                 options=CostOptions(price_year="nominal"))
    assert result.n == len(model_data)
    assert result.ratio == pytest.approx(math.exp(oracle.params["kp"]), rel=1e-6)
    assert result.se_log == pytest.approx(oracle.bse["kp"], rel=1e-5)
    assert result.p_value == pytest.approx(oracle.pvalues["kp"], rel=1e-4, abs=1e-12)


def test_adjusted_ratio_needs_both_arms() -> None:
    with pytest.raises(InsufficientDataError, match="kyphoplasty has 0"):
        adjusted_cost_ratio(usd({VP: [1000.0, 2000.0, 3000.0]}), covariates=())


def test_default_responder_definition_is_used_when_none_given():
    """Without ``responders=``, the default ResponderDefinition (≥30% at month 1) is applied."""
    from analysis.outcomes import ResponderDefinition
    from data.demo import demo_records

    records = demo_records(600, seed=3)
    implicit = cost_per_responder(records)
    explicit = cost_per_responder(records, responders=ResponderDefinition().is_responder(records))
    pd.testing.assert_frame_equal(implicit, explicit)
    assert implicit["responders"].sum() > 0
