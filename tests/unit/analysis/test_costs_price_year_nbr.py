"""Issue 12 item 6: costs in one price year, and an adjusted incremental cost.

References are independent of the project: the deflation is checked by hand arithmetic on a
small table; the net-benefit regression against R's ``lm`` and ``sandwich::vcovCL`` computed
once by ``tests/results/net_benefit.R`` (fixture ``tests/results/net_benefit.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.costs import (
    CostOptions,
    RateTableError,
    convert_costs,
    net_benefit_regression,
    normalise_costs,
    price_index,
)
from analysis.errors import InsufficientDataError

RESULTS = Path(__file__).resolve().parents[2] / "results"

RATES = """year,currency,units_per_usd,source
2022,USD,1,def
2022,EUR,0.9,test
2022,GBP,0.8,test
2023,USD,1,def
2023,EUR,0.95,test
2023,GBP,0.75,test
"""
PPP = """year,country,currency,ppp_per_usd,source
2022,US,USD,1,t
2022,DE,EUR,0.8,t
2023,US,USD,1,t
2023,DE,EUR,0.75,t
"""
INDEX = """year,country,currency,index,source
2021,US,USD,100,t
2022,US,USD,110,t
2023,US,USD,121,t
2021,DE,EUR,50,t
2022,DE,EUR,52,t
2023,DE,EUR,55,t
2021,FR,EUR,200,t
2022,FR,EUR,204,t
2023,FR,EUR,210,t
2022,GB,GBP,90,t
2023,GB,GBP,99,t
"""


@pytest.fixture()
def tables(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, text in (("rates", RATES), ("ppp", PPP), ("index", INDEX)):
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text)
    return paths


def rows(data: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(data, columns=["cost", "currency", "country", "procedure_date"])
    frame["procedure_date"] = pd.to_datetime(frame["procedure_date"])
    return frame


def test_deflation_before_exchange_by_hand(tables) -> None:
    records = rows([
        (100.0, "USD", "US", "2021-05-01"),  # 100 × 121/100 = 121 USD (2023 prices)
        (100.0, "EUR", "DE", "2021-05-01"),  # 100 × 55/50 = 110 EUR → / 0.95 USD
        (100.0, "EUR", "FR", "2022-05-01"),  # 100 × 210/204 EUR (French index) → / 0.95
        (100.0, "GBP", "GB", "2021-05-01"),  # no 2021 GB index: 2022 used → 100 × 99/90 / 0.75
        (100.0, "USD", "DE", "2022-05-01"),  # USD at a German facility: US index 121/110
        (100.0, "EUR", None, "2022-05-01"),  # EUR without country: DE or FR? not convertible
        (100.0, "USD", "US", "2023-05-01"),  # already 2023 prices
    ])
    options = CostOptions(rates_path=tables["rates"], price_index_path=tables["index"])
    conversion = convert_costs(records, options)
    expected = [121.0, 110 / 0.95, 100 * 210 / 204 / 0.95, 100 * 99 / 90 / 0.75,
                100 * 121 / 110, math.nan, 100.0]
    np.testing.assert_allclose(conversion.values, expected, rtol=1e-12)
    assert conversion.price_year == 2023  # "latest": the last year of the index table
    notes = " ".join(conversion.notes)
    assert "GB 2021 → index of 2022 (1 record(s))" in notes
    assert "Costs are in 2023 prices" in notes
    assert conversion.n_unconverted == 1


def test_deflation_at_a_chosen_price_year_uses_that_years_rates(tables) -> None:
    records = rows([(100.0, "EUR", "DE", "2023-05-01"), (100.0, "USD", "US", "2021-05-01")])
    options = CostOptions(rates_path=tables["rates"], price_index_path=tables["index"],
                          price_year=2022)
    values = convert_costs(records, options).values
    # 2023 EUR → 2022 prices (52/55), then the 2022 rate (0.9); 2021 USD × 110/100.
    np.testing.assert_allclose(values, [100 * 52 / 55 / 0.9, 110.0], rtol=1e-12)


def test_deflation_before_ppp_by_hand(tables) -> None:
    records = rows([(100.0, "EUR", "DE", "2021-05-01")])
    options = CostOptions(method="ppp", rates_path=tables["rates"], ppp_path=tables["ppp"],
                          price_index_path=tables["index"])
    # 2021 EUR → 2023 EUR (× 55/50) → international $ at the 2023 PPP (/ 0.75).
    assert convert_costs(records, options).values[0] == pytest.approx(110 / 0.75, rel=1e-12)


def test_nominal_keeps_the_old_rule(tables) -> None:
    records = rows([(100.0, "EUR", "DE", "2022-05-01")])
    options = CostOptions(rates_path=tables["rates"], price_index_path=tables["index"],
                          price_year="nominal")
    conversion = convert_costs(records, options)
    assert conversion.values[0] == pytest.approx(100 / 0.9)
    assert conversion.price_year is None


def test_default_options_deflate_the_demo_costs() -> None:
    # The same nominal cost recorded in 2021 and in 2024 must not count the same after
    # conversion (old code: both 1000 USD).
    records = rows([(1000.0, "USD", "US", "2021-06-01"), (1000.0, "USD", "US", "2024-06-01")])
    values = normalise_costs(records)["cost_reporting"].to_numpy()
    table = price_index().query("country == 'US'").set_index("year")["index"]
    assert values[1] == pytest.approx(1000.0)
    assert values[0] == pytest.approx(1000.0 * table[2024] / table[2021], rel=1e-12)
    assert values[0] > 1080  # US CPI rose > 8% from 2021 to 2024


def test_price_year_option_and_environment_variable(tables, monkeypatch) -> None:
    assert CostOptions().price_year == "latest"
    assert CostOptions(price_year=" Nominal ").price_year == "nominal"
    with pytest.raises(ValueError, match="price_year"):
        CostOptions(price_year="last year")
    monkeypatch.setenv("VA_PRICE_INDEX", str(tables["index"]))
    assert price_index().attrs["path"] == str(tables["index"].resolve())
    assert int(price_index()["year"].max()) == 2023


def test_price_index_table_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("year,country,currency,index,source\n2022,DE,EUR,100,t\n"
                    "2023,DE,GBP,101,t\n")
    with pytest.raises(RateTableError, match="one currency per country"):
        price_index(path)
    path.write_text("year,country,currency,index,source\n2022,DE,EUR,-1,t\n")
    with pytest.raises(RateTableError, match="positive"):
        price_index(path)


def test_shipped_price_index_covers_the_demo_countries() -> None:
    table = price_index()
    for country in ("US", "GB", "DE", "FR", "IN"):
        years = set(table.loc[table.country == country, "year"])
        assert {2021, 2022, 2023, 2024} <= years, country
    assert table["source"].str.len().min() > 20


# ------------------------------------------------------------------ net-benefit regression


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, dict]:
    data = pd.read_csv(RESULTS / "net_benefit_data.csv")
    expected = json.loads((RESULTS / "net_benefit.json").read_text())
    records = pd.DataFrame({
        "procedure": np.where(data["kp"] == 1, "kyphoplasty", "vertebroplasty"),
        "cost": data["cost"], "currency": "USD",
        "procedure_date": pd.Timestamp("2024-06-01"),
        "age": data["age"], "sex": data["sex"], "etiology": data["etiology"],
        "levels_treated": data["levels_treated"],
        "country": pd.Categorical(data["country"]), "facility_id": data["facility_id"],
    })
    return records.assign(responder=data["responder"].astype(bool)), expected


@pytest.mark.parametrize("path", ["moments", "design"])
@pytest.mark.parametrize("cluster", [None, "facility_id"])
def test_net_benefit_matches_r_lm_at_every_wtp(reference, cluster, path, monkeypatch) -> None:
    import analysis.costs as costs

    if path == "design":  # the fallback that builds the n × p design matrix
        monkeypatch.setattr(costs, "_MOMENT_MAX_CELLS", 0)
    records, expected = reference
    wtp = [row["wtp"] for row in expected["net_benefit"]]
    fit = net_benefit_regression(records, responders=records["responder"], cluster=cluster,
                                 wtp=wtp, options=CostOptions(price_year="nominal"))
    assert fit.n == expected["n"]
    assert fit.delta_cost == pytest.approx(expected["delta_cost"], rel=1e-9)
    assert fit.delta_effect == pytest.approx(expected["delta_effect"], rel=1e-9)
    key = "se_cluster" if cluster else "se_model"
    grid = fit.net_benefit(wtp)
    for i, row in enumerate(expected["net_benefit"]):
        assert fit.inb[i] == pytest.approx(row["inb"], rel=1e-9)
        assert grid["se"][i] == pytest.approx(row[key], rel=1e-8)
    if cluster:
        assert fit.se_effect == pytest.approx(expected["se_effect_cluster"], rel=1e-8)
        assert fit.df == expected["n_clusters"] - 1
    else:
        assert fit.se_cost == pytest.approx(expected["se_cost_model"], rel=1e-9)
        assert fit.df == expected["net_benefit"][0]["df_resid"]


def test_ceac_is_the_one_sided_probability_of_a_positive_inb(reference) -> None:
    import scipy.stats as st

    records, expected = reference
    row = expected["net_benefit"][2]
    fit = net_benefit_regression(records, responders=records["responder"], cluster=None,
                                 wtp=[row["wtp"]], options=CostOptions(price_year="nominal"))
    z = row["inb"] / row["se_model"]
    assert fit.prob_cost_effective[0] == pytest.approx(st.t.cdf(z, row["df_resid"]), rel=1e-8)
    # Δeffect CI includes 0 here (R: -0.032, SE 0.033): no point ICER, and it says why.
    assert not fit.icer_defined and math.isnan(fit.icer)
    assert "includes 0" in fit.verdict


def test_icer_and_fieller_interval_by_hand() -> None:
    # Two arms, no covariates: Δc = 1000, Δe = 0.5 with a clear effect → ICER 2000.
    n = 40
    records = pd.DataFrame({
        "procedure": ["vertebroplasty"] * n + ["kyphoplasty"] * n,
        "cost": np.r_[np.tile([900.0, 1100.0], n // 2), np.tile([1900.0, 2100.0], n // 2)],
        "currency": "USD", "procedure_date": pd.Timestamp("2024-03-01")})
    status = np.r_[np.tile([True, False, False, False], n // 4),
                   np.tile([True, True, True, False], n // 4)]
    fit = net_benefit_regression(records, responders=status, covariates=(), cluster=None)
    assert fit.delta_cost == pytest.approx(1000.0)
    assert fit.delta_effect == pytest.approx(0.5)
    assert fit.icer_defined and fit.icer == pytest.approx(2000.0)
    # Fieller by hand: roots of (λΔe − Δc)² = t²(λ²Ve − 2λC + Vc).
    import scipy.stats as st
    resid_c = np.r_[np.tile([-100.0, 100.0], n)]
    resid_e = np.r_[np.tile([0.75, -0.25, -0.25, -0.25], n // 4),
                    np.tile([0.25, 0.25, 0.25, -0.75], n // 4)]
    df = 2 * n - 2
    scale = 1 / n + 1 / n
    vc = resid_c @ resid_c / df * scale
    ve = resid_e @ resid_e / df * scale
    cv = resid_c @ resid_e / df * scale
    t = st.t.ppf(0.975, df)
    a, b, c = 0.25 - t * t * ve, -2 * (0.5 * 1000 - t * t * cv), 1000.0 ** 2 - t * t * vc
    roots = sorted(np.roots([a, b, c]).real)
    assert (fit.icer_low, fit.icer_high) == pytest.approx(tuple(roots), rel=1e-9)
    assert "Fieller" in fit.verdict


def test_no_icer_when_dominated_even_with_a_clear_effect() -> None:
    n = 40
    records = pd.DataFrame({
        "procedure": ["vertebroplasty"] * n + ["kyphoplasty"] * n,
        "cost": np.r_[np.tile([900.0, 1100.0], n // 2), np.tile([1900.0, 2100.0], n // 2)],
        "currency": "USD", "procedure_date": pd.Timestamp("2024-03-01")})
    status = np.r_[np.tile([True, True, True, False], n // 4),
                   np.tile([True, False, False, False], n // 4)]
    fit = net_benefit_regression(records, responders=status, covariates=(), cluster=None)
    assert fit.delta_effect == pytest.approx(-0.5) and fit.delta_cost == pytest.approx(1000)
    assert not fit.icer_defined and math.isnan(fit.icer)
    assert "dominated" in fit.verdict


def test_adjusted_cost_difference_lies_within_the_country_differences() -> None:
    """The demo confounds procedure with country (77% of US cases are KP): the pooled
    KP − VP cost difference exceeds every within-country difference; the adjusted one, used
    for the incremental cost, must not."""
    from analysis.outcomes import ResponderDefinition
    from data.demo import demo_records

    records = demo_records()
    status = ResponderDefinition().is_responder(records)
    conversion = convert_costs(records)
    fit = net_benefit_regression(records, responders=status, conversion=conversion)
    analysed = status.notna().to_numpy() & ~np.isnan(conversion.values)
    data = records.assign(c=conversion.values)[analysed]
    means = data.groupby(["country", "procedure"], observed=True)["c"].mean().unstack()
    within = means["kyphoplasty"] - means["vertebroplasty"]
    pooled = data.groupby("procedure", observed=True)["c"].mean()
    pooled_diff = pooled["kyphoplasty"] - pooled["vertebroplasty"]
    assert pooled_diff > within.max()  # the defect the page showed
    assert within.min() <= fit.delta_cost <= within.max()
    assert fit.n_clusters == records["facility_id"].nunique()


def test_net_benefit_needs_both_arms() -> None:
    records = pd.DataFrame({"procedure": ["kyphoplasty"] * 5, "cost": 1000.0,
                            "currency": "USD", "procedure_date": pd.Timestamp("2024-01-01")})
    with pytest.raises(InsufficientDataError):
        net_benefit_regression(records, responders=[True] * 5, covariates=(), cluster=None)
    with pytest.raises(ValueError, match="facility_id"):
        net_benefit_regression(records, responders=[True] * 5, covariates=())


@pytest.mark.parametrize("categorical", [False, True])
def test_rows_without_a_cluster_are_left_out(reference, categorical) -> None:
    records, _ = reference
    records = records.copy()
    records.loc[records.index[:7], "facility_id"] = None
    if categorical:
        records["facility_id"] = records["facility_id"].astype("category")
    options = CostOptions(price_year="nominal")
    fit = net_benefit_regression(records, responders=records["responder"], options=options)
    subset = records.iloc[7:]
    same = net_benefit_regression(subset, responders=subset["responder"], options=options)
    assert fit.n == same.n == len(records) - 7 and fit.excluded == 7
    assert fit.se_cost == pytest.approx(same.se_cost, rel=1e-12)
    assert fit.n_clusters == same.n_clusters
