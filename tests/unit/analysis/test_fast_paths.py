"""Fast paths of issue 6 against the straightforward pandas computation they replace.

Each test builds small synthetic cohorts with fixed seeds (missing values, empty selections,
a single procedure, values outside the known categories) and checks that the vectorised code
gives exactly what a plain pandas ``groupby``/``isin`` gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.descriptive import trend_by_period
from analysis.filters import (
    AGE_BANDS,
    LEVEL_GROUPS,
    MEMBERSHIP_COLUMNS,
    FilterIndex,
    RecordFilter,
    apply_filter,
    filter_mask,
)
from analysis.proportions import proportion_ci

PROCEDURES = ["vertebroplasty", "kyphoplasty"]


def cohort(seed: int, n: int = 400, procedures=PROCEDURES) -> pd.DataFrame:
    """Synthetic records with the filter and outcome columns, about 10 % missing each."""
    rng = np.random.default_rng(seed)

    def gaps(values, dtype):
        series = pd.Series(values).astype(dtype)
        series[rng.random(n) < 0.1] = pd.NA if dtype != "datetime64[ns]" else pd.NaT
        return series

    dates = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D")
    frame = pd.DataFrame({
        "procedure_date": gaps(dates, "datetime64[ns]"),
        "procedure": gaps(pd.Categorical(rng.choice(procedures, n), categories=PROCEDURES),
                          "category"),
        "country": gaps(pd.Categorical(rng.choice(["US", "GB", "DE"], n),
                                       categories=["US", "GB", "DE", "FR"]), "category"),
        "region": gaps(rng.choice(["north", "south", "ünïcode"], n), "string"),
        "facility_id": gaps(rng.choice([f"F{i}" for i in range(7)], n), "string"),
        "operator_id": gaps(rng.choice([f"O{i}" for i in range(12)], n), "string"),
        "etiology": gaps(rng.choice(["osteoporotic", "malignant", "traumatic"], n), "category"),
        "sex": gaps(rng.choice(["F", "M"], n), "category"),
        "age": gaps(rng.integers(40, 91, n), "Int64"),
        "levels_treated": gaps(rng.integers(1, 5, n), "Int64"),
        "cement_leakage": gaps(rng.random(n) < 0.2, "boolean"),
        "pulmonary_embolism": gaps(rng.random(n) < 0.05, "boolean"),
    })
    return frame


# ------------------------------------------------------------------------------- filter mask

def reference_mask(records: pd.DataFrame, selection: RecordFilter) -> np.ndarray:
    """The original, straightforward mask (isin over object values, comparisons on floats)."""
    keep = np.ones(len(records), dtype=bool)
    if selection.date_from:
        keep &= (records["procedure_date"] >= pd.Timestamp(selection.date_from)).to_numpy(bool)
    if selection.date_to:
        keep &= (records["procedure_date"] <= pd.Timestamp(selection.date_to)).to_numpy(bool)
    for name, column in MEMBERSHIP_COLUMNS.items():
        allowed = getattr(selection, name)
        if allowed:
            keep &= records[column].astype(object).isin(allowed).to_numpy(dtype=bool)
    for name, bands, column in (("age_bands", AGE_BANDS, "age"),
                                ("levels", LEVEL_GROUPS, "levels_treated")):
        chosen = getattr(selection, name)
        if chosen:
            values = records[column].astype("float64").to_numpy()
            inside = np.zeros(len(records), dtype=bool)
            for key in chosen:
                low, high = bands[key]
                inside |= (values >= low) & (values <= high)
            keep &= inside
    return keep


SELECTIONS = [
    RecordFilter(),
    RecordFilter(date_from="2022-03-01"),
    RecordFilter(date_to="2022-03-01"),
    RecordFilter(date_from="2021-06-01", date_to="2021-06-30", sexes=("F",)),
    RecordFilter(countries=("US", "FR")),  # FR: a category with no records
    RecordFilter(countries=("XX",)),  # unknown: selects nothing
    RecordFilter(regions=("ünïcode",), facilities=("F1", "F3", "nope")),
    RecordFilter(operators=("O0", "O11"), procedures=("kyphoplasty",)),
    RecordFilter(etiologies=("malignant",), age_bands=("85+", "18-64")),
    RecordFilter(levels=("3+",), age_bands=("75-84",)),
    RecordFilter(date_from="2030-01-01"),  # empty selection
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: s.describe())
def test_filter_index_matches_reference_mask(seed, selection):
    records = cohort(seed)
    expected = reference_mask(records, selection)
    assert np.array_equal(filter_mask(records, selection), expected)
    index = FilterIndex(records)
    assert np.array_equal(index.mask(selection), expected)
    assert np.array_equal(index.mask(selection), expected)  # cached codes: same answer again
    chosen = apply_filter(records, selection, index)
    assert chosen.index.tolist() == records.index[expected].tolist()


def test_filter_index_on_plain_object_columns():
    """Object (not categorical) columns and a non-default index."""
    records = cohort(4).astype({"country": object, "sex": object})
    records.index = np.arange(len(records)) * 3 + 7
    selection = RecordFilter(countries=("GB",), sexes=("M",), levels=("1", "2"))
    assert np.array_equal(FilterIndex(records).mask(selection), reference_mask(records, selection))


def test_apply_filter_returns_the_frame_when_everything_is_kept():
    records = cohort(6)
    assert apply_filter(records, RecordFilter()) is records
    everything = RecordFilter(countries=("US", "GB", "DE"))
    kept = apply_filter(records.dropna(subset=["country"]), everything)
    assert len(kept) == records["country"].notna().sum()


# ----------------------------------------------------------------------------- trend by period

def reference_trend(records, outcomes, freq="Q", level=0.95) -> pd.DataFrame:
    """The original groupby implementation of :func:`trend_by_period`."""
    columns = ["period", "period_start", "procedure", "procedures", "outcome", "n", "events",
               "rate", "low", "high"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    period = records["procedure_date"].dt.to_period(freq)
    frames = []
    grouped = records.assign(_period=period).groupby(["_period", "procedure"], observed=True)
    volume = grouped.size().rename("procedures")
    for outcome in outcomes:
        values = records[outcome].astype("boolean")
        summary = pd.DataFrame({
            "n": values.notna().groupby([period, records["procedure"]], observed=True).sum(),
            "events": values.fillna(False).astype(int).groupby(
                [period, records["procedure"]], observed=True).sum(),
        })
        summary.index.names = ["_period", "procedure"]
        summary = summary.join(volume).reset_index()
        low, high = proportion_ci(summary["events"].to_numpy(), summary["n"].to_numpy(),
                                  level=level)
        summary["rate"] = summary["events"] / summary["n"].where(summary["n"] > 0)
        summary["low"], summary["high"] = low, high
        summary["outcome"] = outcome
        frames.append(summary)
    table = pd.concat(frames, ignore_index=True)
    table["period_start"] = table["_period"].dt.start_time
    table["period"] = table["_period"].astype(str)
    table["procedure"] = table["procedure"].astype(str)
    return table[columns].sort_values(["outcome", "period_start", "procedure"]).reset_index(
        drop=True)


@pytest.mark.parametrize("freq", ["Q", "Y", "M"])
@pytest.mark.parametrize("seed", [11, 12])
def test_trend_by_period_matches_groupby(seed, freq):
    records = cohort(seed)
    outcomes = ("cement_leakage", "pulmonary_embolism")
    got = trend_by_period(records, outcomes, freq=freq)
    expected = reference_trend(records, outcomes, freq=freq)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["procedures"].dtype.kind == "i" and got["n"].dtype.kind == "i"


def test_trend_by_period_single_procedure_all_missing_outcome_and_empty():
    records = cohort(13, procedures=["kyphoplasty"])
    records["pulmonary_embolism"] = pd.array([pd.NA] * len(records), dtype="boolean")
    got = trend_by_period(records, ("pulmonary_embolism",))
    pd.testing.assert_frame_equal(got, reference_trend(records, ("pulmonary_embolism",)),
                                  check_dtype=False)
    assert set(got["procedure"]) == {"kyphoplasty"}
    assert got["rate"].isna().all() and (got["n"] == 0).all()
    empty = trend_by_period(records.iloc[:0], ("cement_leakage",))
    assert empty.empty and list(empty.columns) == list(got.columns)


# --------------------------------------------------------------------------- median and groups

def reference_median_ci(values, level=0.95):
    """The original: sort everything, read three order statistics."""
    from scipy import stats

    data = np.sort(pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(float))
    n = len(data)
    if n == 0:
        return (float("nan"),) * 3
    r = int(stats.binom.ppf((1 - level) / 2, n, 0.5))
    if stats.binom.cdf(r, n, 0.5) <= (1 - level) / 2:
        r += 1
    r = max(r, 1)
    return float(np.median(data)), float(data[r - 1]), float(data[n - r])


@pytest.mark.parametrize("n", [0, 1, 2, 5, 6, 7, 50, 51, 1000, 1001])
def test_median_ci_partition_equals_sort(n):
    from analysis.descriptive import median_ci

    rng = np.random.default_rng(n)
    values = np.round(rng.gamma(2.0, 10.0, n), 1)  # rounded: ties
    values[rng.random(n) < 0.1] = np.nan
    for given in (values, pd.Series(values, dtype="Float64"), list(values)):
        got = median_ci(given)
        assert np.allclose(got, reference_median_ci(values), equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("groups", [1, 2, 5, 40])
def test_group_quantiles_and_totals_equal_pandas(groups):
    from analysis.outcomes import _groups, _moments, _quantiles

    rng = np.random.default_rng(groups)
    n = 3000
    frame = pd.DataFrame({"g": pd.Categorical(rng.integers(0, groups, n)),
                          "x": np.where(rng.random(n) < 0.15, np.nan, rng.normal(50, 12, n))})
    grouping = _groups(frame, ("g",))
    values = frame["x"].to_numpy()
    quantiles = _quantiles(grouping, values)
    count, mean, sd = _moments(grouping, values)
    expected = frame.groupby("g", observed=True)["x"]
    keys = grouping.keys["g"].to_numpy()
    for name, method in (("q1", lambda s: s.quantile(0.25)), ("median", "median"),
                         ("q3", lambda s: s.quantile(0.75)), ("min", "min"), ("max", "max")):
        reference = expected.agg(method).reindex(keys).to_numpy()
        assert np.allclose(quantiles[name], reference, equal_nan=True, rtol=0, atol=1e-12), name
    assert np.array_equal(count, expected.count().reindex(keys).to_numpy())
    assert np.allclose(mean, expected.mean().reindex(keys).to_numpy(), rtol=1e-12)
    assert np.allclose(sd, expected.std().reindex(keys).to_numpy(), rtol=1e-10, equal_nan=True)


# ------------------------------------------------------------------------------------ costs

def test_converted_costs_equal_normalise_costs():
    from analysis.costs import CostOptions, converted_costs, normalise_costs

    rng = np.random.default_rng(21)
    n = 500
    records = pd.DataFrame({
        "cost": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(3, 1500, n)),
        "currency": pd.Categorical(rng.choice(["USD", "EUR", "GBP", "XYZ", None], n)),
        "procedure_date": pd.to_datetime("2015-01-01")
        + pd.to_timedelta(rng.integers(0, 12 * 365, n), unit="D"),
        "country": rng.choice(["US", "DE", "GB"], n),
    })
    records.loc[rng.random(n) < 0.05, "procedure_date"] = pd.NaT
    for options in (CostOptions(reporting_currency="USD"), CostOptions(reporting_currency="EUR"),
                    CostOptions(reporting_currency="EUR", year=2020)):
        got = converted_costs(records, options)
        expected = normalise_costs(records, options)["cost_reporting"].to_numpy()
        assert np.array_equal(got, expected, equal_nan=True)
    # Dates as text take the general path and give the same years.
    as_text = records.assign(procedure_date=records["procedure_date"].dt.strftime("%Y-%m-%d"))
    assert np.array_equal(converted_costs(as_text), converted_costs(records), equal_nan=True)


# ----------------------------------------------------------------------- fracture at-risk table

def test_fracture_at_risk_table_equals_direct_counts():
    from analysis.comparison import AT_RISK_DAYS, fracture_survival, fracture_time_event
    from data import demo_records

    records = demo_records(1500, seed=8)
    table = fracture_survival(records, models=False).at_risk_table
    events = fracture_time_event(records)
    time, event = events["time"].to_numpy(), events["event"].to_numpy()
    for procedure in PROCEDURES:
        chosen = (records["procedure"] == procedure).to_numpy() & ~np.isnan(time)
        rows = table[table["procedure"] == procedure].set_index("time")
        for day in AT_RISK_DAYS:
            assert rows.loc[day, "at_risk"] == int((time[chosen] >= day).sum())
            assert rows.loc[day, "cumulative_events"] == int(
                ((time[chosen] <= day) & (event[chosen] == 1)).sum())


# ------------------------------------------------------------------- reference risk model

def test_apply_risk_model_on_all_records_is_the_fit_itself():
    from analysis.quality import apply_risk_model, risk_model
    from data import demo_records

    records = demo_records(3000, seed=4)
    fit = risk_model(records, "cement_leakage")
    same = apply_risk_model(fit, records)
    # A logistic MLE with an intercept already reproduces the observed rate: no shift.
    assert np.allclose(same.expected.to_numpy(), fit.expected.to_numpy(), equal_nan=True,
                       atol=1e-9)
    assert same.n == fit.n and same.events == fit.events


@pytest.mark.parametrize("seed", [4, 5])
def test_apply_risk_model_recalibrates_a_selection(seed):
    from scipy import special

    from analysis.quality import apply_risk_model, outcome_values, risk_model
    from data import demo_records

    records = demo_records(3000, seed=seed)
    fit = risk_model(records, "cement_leakage")
    part = records[records["country"] == records["country"].iloc[0]]
    applied = apply_risk_model(fit, part)
    y = outcome_values(part, "cement_leakage")
    known = y.notna().to_numpy()
    assert applied.expected.index.equals(part.index)
    assert np.isnan(applied.expected.to_numpy()[~known]).all()
    assert applied.expected.sum() == pytest.approx(y.sum(), rel=1e-9)
    # The same shift for every record: the log-odds differ from the reference by a constant.
    shift = applied.linear_predictor[known] - fit.linear_predictor[part.index][known]
    assert np.ptp(shift.to_numpy()) < 1e-9
    raw = apply_risk_model(fit, part, recalibrate=False)
    assert np.allclose(raw.expected[known], special.expit(fit.linear_predictor[part.index][known]))
    empty = apply_risk_model(fit, part.iloc[:0])
    assert empty.n == 0 and empty.expected.empty
    with pytest.raises(ValueError, match="not fitted on"):
        apply_risk_model(fit, part.set_axis(part.index + 10**6))


# -------------------------------------------------------------------------------- table one

@pytest.mark.parametrize("seed", [31, 32])
def test_table_one_categorical_rows_equal_crosstab(seed):
    from analysis.adjustment import smd_categorical, standardised_difference
    from analysis.table_one import index_region, table_one

    rng = np.random.default_rng(seed)
    n = 800
    records = pd.DataFrame({
        "procedure": rng.choice(PROCEDURES + [None], n, p=[0.45, 0.45, 0.1]),
        # text with numbers and text, missing values and a level seen in one arm only
        "setting": rng.choice(["inpatient", "outpatient", "10", None], n),
        "sex": pd.Categorical(rng.choice(["F", "M", None], n), categories=["F", "M", "X"]),
        "index_level": rng.choice(["T8", "t12 ", "L1", "L4", "S1", "C7", None], n),
    })
    records.loc[(records["procedure"] == "kyphoplasty") & (records["setting"] == "10"),
                "setting"] = "inpatient"
    table = table_one(records, variables={"setting": "categorical", "sex": "categorical",
                                          "index_region": "categorical"})
    arms = records[records["procedure"].isin(PROCEDURES)].copy()
    arms["index_region"] = index_region(arms["index_level"])
    treated = (arms["procedure"] == "kyphoplasty").to_numpy(float)
    for variable in ("setting", "sex", "index_region"):
        labels = arms[variable].astype(object).where(arms[variable].notna(), None)
        labels = labels.map(lambda v: None if v is None else str(v))
        crosstab = pd.crosstab(labels, arms["procedure"])
        rows = table[(table["variable"] == variable) & (table["level"] != "")]
        assert set(rows["level"]) == set(crosstab.index)
        for _, row in rows.iterrows():
            vp, kp = crosstab.loc[row["level"]].reindex(PROCEDURES, fill_value=0)
            assert row["vertebroplasty"].split(" ")[0] == str(vp)
            assert row["kyphoplasty"].split(" ")[0] == str(kp)
            indicator = np.where(labels.notna(), (labels == row["level"]).astype(float), np.nan)
            assert row["smd"] == pytest.approx(
                standardised_difference(indicator, treated, binary=True), nan_ok=True)
        head = table[(table["variable"] == variable) & (table["level"] == "")].iloc[0]
        expected = smd_categorical(labels.to_numpy(dtype=object), treated)
        assert head["smd"] == pytest.approx(expected, rel=1e-12, nan_ok=True)
        assert head["missing_vp"] == int((labels.isna() & (treated == 0)).sum())


# ------------------------------------------------------------- logistic IRLS (large fits)

@pytest.mark.parametrize("seed", [41, 42])
def test_logistic_irls_equals_statsmodels(seed):
    import statsmodels.api as sm

    from analysis.quality import _logistic_irls

    rng = np.random.default_rng(seed)
    n = 5000
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.random(n) < 0.3,
                         rng.integers(1, 5, n)]).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 0.4 * x[:, 1] + 0.8 * x[:, 2]
                                           - 0.2 * x[:, 3])))).astype(float)
    reference = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    params, bse, converged = _logistic_irls(x, y)
    assert converged
    assert np.allclose(params, reference.params, rtol=1e-7, atol=1e-9)
    assert np.allclose(bse, reference.bse, rtol=1e-6)


def test_risk_model_large_path_equals_statsmodels_path(monkeypatch):
    from analysis import quality
    from data import demo_records

    records = demo_records(4000, seed=12)
    small = quality.risk_model(records, "cement_leakage")
    monkeypatch.setattr(quality, "LARGE_FIT_ROWS", 1)
    large = quality.risk_model(records, "cement_leakage")
    assert large.formula == small.formula and large.n == small.n
    assert np.allclose(large.expected, small.expected, rtol=1e-7, equal_nan=True)
    for column in ("odds_ratio", "low", "high", "p_value"):
        assert np.allclose(large.coefficients[column], small.coefficients[column], rtol=1e-6,
                           atol=1e-12), column
    assert large.c_statistic == pytest.approx(small.c_statistic, abs=1e-9)
    pd.testing.assert_frame_equal(large.calibration, small.calibration, check_exact=False,
                                  rtol=1e-7)
