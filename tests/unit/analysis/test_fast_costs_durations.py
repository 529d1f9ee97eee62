"""Fast paths of the Costs and Durations pages (issue 6) against the straightforward code.

Each test builds synthetic cohorts with fixed seeds (missing values, empty and one-value
groups, values outside the known categories, text and categorical columns) and checks that
the fast code gives what a plain pandas ``groupby`` / numpy computation gives: exactly for
counts, order statistics, conversions and means, up to floating-point rounding for the SD.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import costs, means, outcomes
from analysis._histogram import grid_codes, histogram_stats
from analysis.costs import (
    CostConversion,
    CostOptions,
    adjusted_cost_ratio,
    convert_costs,
    cost_per_responder,
    cost_summary,
    incremental_cost_per_responder,
    normalise_costs,
)
from analysis.means import compare_means
from analysis.outcomes import resource_summary, setting_mix
from dashboard.figures.costs import (
    GROUPINGS,
    coded_groupings,
    conversion_counts,
    cost_figure,
    responder_display,
    summary_display,
)
from dashboard.figures.durations import (
    ANESTHESIA_ORDER,
    LEVEL_ORDER,
    NOT_RECORDED,
    WHISKER,
    procedure_durations,
    resource_frame,
)

KP, VP = "kyphoplasty", "vertebroplasty"
PROCEDURES = [VP, KP]


def maybe_missing(rng: np.random.Generator, values: np.ndarray, share: float = 0.1) -> np.ndarray:
    values = np.asarray(values, dtype=float).copy()
    values[rng.random(values.size) < share] = np.nan
    return values


# ------------------------------------------------------------------------ resource summary


def reference_summary(frame: pd.DataFrame, by: list[str], variable: str) -> pd.DataFrame:
    """Per group with pandas/numpy: n, missing, mean, SD, quartiles, extremes, whisker ends."""
    rows = []
    grouped = frame.groupby(by, observed=True, dropna=False, sort=True) if by else \
        [((), frame)]
    for key, group in grouped:
        key = key if isinstance(key, tuple) else (key,)
        values = group[variable].to_numpy(dtype=float, na_value=np.nan)
        values = values[~np.isnan(values)]
        row = dict(zip(by, key, strict=True))
        row.update(n=values.size, missing=len(group) - values.size)
        if values.size:
            q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
            iqr = q3 - q1
            row.update(mean=values.sum() / values.size, sd=values.std(ddof=1) if values.size > 1
                       else np.nan, median=median, q1=q1, q3=q3, min=values.min(),
                       max=values.max(),
                       lowerfence=values[values >= q1 - WHISKER * iqr].min(),
                       upperfence=values[values <= q3 + WHISKER * iqr].max())
        rows.append(row)
    return pd.DataFrame(rows)


def resource_cohort(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "procedure": pd.Categorical(rng.choice(PROCEDURES + [None], n, p=[.5, .45, .05]),
                                    categories=PROCEDURES),
        "site": rng.choice(["a", "b", "c", None], n),
        "minutes": maybe_missing(rng, np.round(rng.gamma(4, 10, n))),        # grid step 1
        "millilitres": maybe_missing(rng, np.round(rng.gamma(3, 1.5, n), 1)),  # step 0.1
        "change": maybe_missing(rng, np.round(rng.normal(0, 3, n), 2)),       # step 0.01, < 0
        "continuous": maybe_missing(rng, rng.gamma(4, 10, n)),                # no grid
        "days": rng.poisson(1.5, n).astype(float),
    })
    frame.loc[frame["site"] == "c", "minutes"] = np.nan  # groups with no value at all
    frame.loc[frame.index[:1], "site"] = "lonely"  # a group of one record
    return frame


VARIABLES = ["minutes", "millilitres", "change", "continuous", "days"]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("by", [[], ["procedure"], ["procedure", "site"]])
def test_resource_summary_equals_groupby(seed, by):
    frame = resource_cohort(seed)
    table = resource_summary(frame, by=by, variables=VARIABLES, fences=WHISKER)
    assert list(table.columns) == [*by, "variable", "n", "missing", "mean", "sd", "median",
                                   "q1", "q3", "min", "max", "lowerfence", "upperfence"]
    for variable in VARIABLES:
        got = table[table["variable"] == variable].reset_index(drop=True)
        expected = reference_summary(frame, by, variable)
        assert len(got) == len(expected)
        for column in ("n", "missing", "median", "q1", "q3", "min", "max", "lowerfence",
                       "upperfence"):
            assert np.array_equal(got[column].to_numpy(dtype=float),
                                  expected[column].to_numpy(dtype=float), equal_nan=True), \
                (variable, column)
        # The mean is summed as before (same number); the SD comes from the histogram.
        assert np.allclose(got["mean"], expected["mean"], rtol=1e-13, atol=0, equal_nan=True)
        assert np.allclose(got["sd"], expected["sd"], rtol=1e-12, atol=0, equal_nan=True)


@pytest.mark.parametrize("seed", [4, 5])
def test_grid_path_equals_general_path(seed, monkeypatch):
    frame = resource_cohort(seed)
    groups = outcomes._groups(frame, ("procedure", "site"))
    took_grid = {v: outcomes._grid_block(groups, frame[v].to_numpy(), 1.5) is not None
                 for v in VARIABLES}
    assert took_grid == {"minutes": True, "millilitres": True, "change": True,
                         "continuous": False, "days": True}
    fast = resource_summary(frame, by=["procedure", "site"], variables=VARIABLES, fences=1.5)
    monkeypatch.setattr(outcomes, "_grid_block", lambda *args: None)
    general = resource_summary(frame, by=["procedure", "site"], variables=VARIABLES, fences=1.5)
    exact = [c for c in fast.columns if c != "sd"]
    pd.testing.assert_frame_equal(fast[exact], general[exact], check_exact=True)
    assert np.allclose(fast["sd"], general["sd"], rtol=1e-12, atol=0, equal_nan=True)
    # Without fences the columns are the documented ones.
    plain = resource_summary(frame, variables=["minutes"])
    assert "lowerfence" not in plain.columns


def test_grid_detection():
    def grid(values, n_groups):
        """The coding resource_summary uses (the limit of outcomes._grid_block)."""
        cells = min(outcomes._GRID_MAX_BINS, max(8 * values.size, 1 << 16))
        return grid_codes(values, outcomes._GRID_SCALES, cells // n_groups)

    assert grid(np.array([1.0, 2.0, 5.0]), 1).points.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    coded = grid(np.array([0.3, 1.2, 0.7]), 1)  # tenths: exact from code / 10
    assert coded.scale == 10
    assert np.array_equal(coded.points[coded.codes], [0.3, 1.2, 0.7])
    coded = grid(np.array([0.25, np.nan, 1.5]), 1)  # hundredths; a missing value
    assert coded.scale == 100 and coded.codes.tolist() == [0, coded.size, 125]
    assert grid(np.array([1.0, np.inf]), 1) is None
    assert grid(np.array([0.5, 1 / 3]), 1) is None  # not on a decimal grid
    assert grid(np.array([0.0, 1e9]), 1) is None  # far too wide a histogram
    assert grid(np.array([]), 1) is None


def test_grid_point_limit_is_inclusive():
    values = np.array([0.0, 9.0, np.nan])  # 10 points on the grid of step 1
    assert grid_codes(values, (1, 10), 10).size == 10
    assert grid_codes(values, (1, 10), 9) is None
    # Off the first grid, the next is tried only while it stays small enough.
    assert grid_codes(np.array([0.0, 0.5]), (1, 10), 6).scale == 10
    assert grid_codes(np.array([0.0, 0.5]), (1, 10), 5) is None


@pytest.mark.parametrize("seed", [6, 7])
def test_histogram_stats_with_totals_and_fences_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    points = np.arange(-20, 61) / 2.0
    counts = rng.integers(0, 3, (5, points.size)) * (rng.random((5, points.size)) < 0.3)
    counts[1] = 0  # an empty group
    counts[2] = 0
    counts[2, 40] = 2  # one value, twice
    values = [np.repeat(points, row) for row in counts]
    totals = np.array([v.sum() for v in values])
    for whisker in (1.5, 0.0, -5.0):
        stats = histogram_stats(counts, points, totals=totals, count_first=True, fences=whisker)
        for g, v in enumerate(values):
            assert stats["n"][g] == v.size
            if v.size == 0:
                assert all(np.isnan(stats[k][g]) for k in ("mean", "sd", "q1", "lowerfence"))
                continue
            q1, median, q3 = np.quantile(v, (0.25, 0.5, 0.75))
            assert (stats["q1"][g], stats["median"][g], stats["q3"][g]) == (q1, median, q3)
            assert stats["mean"][g] == totals[g] / v.size  # the caller's sum, as given
            assert np.isclose(stats["sd"][g], v.std(ddof=1), rtol=1e-12, atol=0)
            low, high = q1 - whisker * (q3 - q1), q3 + whisker * (q3 - q1)
            inside_low, inside_high = v[v >= low], v[v <= high]
            expected_low = inside_low.min() if inside_low.size else np.nan
            expected_high = inside_high.max() if inside_high.size else np.nan
            assert np.array_equal([stats["lowerfence"][g], stats["upperfence"][g]],
                                  [expected_low, expected_high], equal_nan=True), (whisker, g)


def test_resource_summary_empty_and_constant():
    empty = resource_summary(pd.DataFrame({"procedure": pd.Series([], dtype=object),
                                           "minutes": pd.Series([], dtype=float)}),
                             variables=["minutes"], fences=1.5)
    assert empty.empty
    constant = resource_summary(pd.DataFrame({"procedure": [KP] * 3, "minutes": [7.0] * 3}),
                                variables=["minutes"], fences=1.5).iloc[0]
    assert (constant.n, constant["median"], constant.lowerfence, constant.upperfence,
            constant.sd) == (3, 7.0, 7.0, 7.0, 0.0)


# ------------------------------------------------------------------------------ setting mix


@pytest.mark.parametrize("categorical", [True, False])
def test_setting_mix_equals_groupby(categorical):
    rng = np.random.default_rng(8)
    n = 2000
    setting = rng.choice(["outpatient", "inpatient", "day case", None], n, p=[.5, .3, .1, .1])
    frame = pd.DataFrame({
        "procedure": pd.Categorical(rng.choice(PROCEDURES + [None], n), categories=PROCEDURES),
        "setting": pd.Categorical(setting, categories=["outpatient", "inpatient", "day case",
                                                       "unused"])
        if categorical else setting,
    })
    got = setting_mix(frame)
    for _, row in got.iterrows():
        part = frame[frame["procedure"].isna()] if pd.isna(row.procedure) else \
            frame[frame["procedure"] == row.procedure]
        values = part["setting"].astype(object)
        assert row.n == values.notna().sum()
        assert row.outpatient == (values == "outpatient").sum()
        assert row.inpatient == (values == "inpatient").sum()
        assert row.missing == values.isna().sum()
        assert row.share_outpatient == row.outpatient / row.n
    other = setting_mix(frame.assign(setting=frame["setting"].astype(object)))
    pd.testing.assert_frame_equal(got, other)


# --------------------------------------------------------------------- durations page frame


def raw_durations(seed: int, categorical: bool, n: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    procedure = rng.choice(PROCEDURES + ["unknown", None], n, p=[.45, .45, .05, .05])
    anesthesia = rng.choice(["local", "sedation", "general", "spinal?", None], n)
    frame = pd.DataFrame({
        "procedure": procedure, "anesthesia": anesthesia,
        "levels_treated": pd.array(np.where(rng.random(n) < .1, None, rng.integers(1, 6, n)),
                                   dtype="Int64"),
        "duration_min": pd.array(maybe_missing(rng, np.round(rng.gamma(4, 10, n))),
                                 dtype="Float64"),
        "cement_volume_ml": maybe_missing(rng, np.round(rng.gamma(3, 1.5, n), 1)),
        "length_of_stay_days": rng.poisson(1.5, n).astype(float),
    })
    if categorical:
        frame["procedure"] = pd.Categorical(procedure, categories=[KP, "unknown", VP])
        frame["anesthesia"] = pd.Categorical(anesthesia, categories=["general", "local",
                                                                     "sedation", "spinal?"])
    return frame


def test_resource_frame_recodes_categoricals_like_labels():
    for seed in (1, 2):
        as_labels = resource_frame(raw_durations(seed, categorical=False))
        as_codes = resource_frame(raw_durations(seed, categorical=True))
        pd.testing.assert_frame_equal(as_codes, as_labels)
        raw = raw_durations(seed, categorical=False)
        expected = pd.Categorical(raw["procedure"].astype(object), categories=PROCEDURES)
        assert as_codes["procedure"].astype(object).equals(pd.Series(expected).astype(object))
        anesthesia = pd.Categorical(raw["anesthesia"], categories=ANESTHESIA_ORDER)
        assert as_codes["anesthesia"].tolist() == anesthesia.fillna(NOT_RECORDED).tolist()
        assert list(as_codes["levels_group"].cat.categories) == LEVEL_ORDER


def test_procedure_durations_equal_pandas_selection():
    for seed, categorical in ((3, True), (4, False)):
        raw = raw_durations(seed, categorical=categorical, n=3000)
        for frame in (raw, resource_frame(raw)):
            got = procedure_durations(frame, (KP, VP, "unknown", "absent"))
            for procedure, values in got.items():
                expected = frame.loc[frame["procedure"] == procedure, "duration_min"]
                assert np.array_equal(values, expected.dropna().to_numpy(dtype=float))


# ----------------------------------------------------------------- Hodges–Lehmann selection


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_difference_selector_on_tied_data_equals_sorted_matrix(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    x = np.round(rng.gamma(4, 10, 700))  # whole minutes
    y = np.round(rng.gamma(4, 0.9, 500), 1)  # tenths
    every = np.sort(np.subtract.outer(x, y).ravel())
    ranks = (1, 2, 1000, every.size // 2, every.size // 2 + 1, every.size - 7, every.size)
    general = means._difference_selector(x, y, rng, max_block=x.size * y.size)
    expected = [general(k) for k in ranks]
    assert expected == [every[k - 1] for k in ranks]

    def no_selection(*args, **kwargs):
        raise AssertionError("the tied path should not need randomised selection")

    monkeypatch.setattr(means, "_kth_difference", no_selection)
    select = means._difference_selector(x, y, rng, max_block=20_000)  # m*n above it: tied path
    assert [select(k) for k in ranks] == expected


def test_compare_means_same_with_and_without_tie_compression(monkeypatch):
    rng = np.random.default_rng(9)
    kp = np.round(rng.gamma(4, 10, 1500))
    vp = np.round(rng.gamma(4, 9, 1200))
    fast = compare_means(kp, vp)
    original = means._difference_selector

    def never_compress(x, y, rng, max_block=means._MAX_BLOCK):
        return lambda k: means._kth_difference(x, y, k, rng)

    monkeypatch.setattr(means, "_difference_selector", never_compress)
    assert compare_means(kp, vp) == fast
    monkeypatch.setattr(means, "_difference_selector", original)


# --------------------------------------------------------------------------- conversion


def reference_conversion(records: pd.DataFrame, options: CostOptions):
    """Row by row: each cost times the factor of its currency (country) and year."""
    rates = costs._Rates(options)
    labels = {label: i for i, label in enumerate(
        [costs._NO_COST, costs._NO_CURRENCY, costs._NO_DATE, costs._NO_COUNTRY])}
    values, codes = [], []
    for row in records.itertuples(index=False):
        cost, currency, date = row.cost, row.currency, row.procedure_date
        country = getattr(row, "country", None)
        value = math.nan
        if pd.isna(cost):
            note = costs._NO_COST
        elif pd.isna(currency):
            note = costs._NO_CURRENCY
        elif (options.year is None or rates.price_year is not None) and pd.isna(date):
            note = costs._NO_DATE
        elif options.method == "ppp" and pd.isna(country):
            note = costs._NO_COUNTRY
        else:
            deflator, deflate_note = 1.0, ""
            code = str(currency).strip().upper()
            place = "" if pd.isna(country) else str(country).strip().upper()
            if rates.price_year is not None:  # price adjustment first, at the record's year
                deflator, deflate_note, _ = rates.deflator(code, place, pd.Timestamp(date).year)
                year = options.year if options.year is not None else rates.price_year
            else:
                year = options.year if options.year is not None else pd.Timestamp(date).year
            if not math.isfinite(deflator):
                factor, note = math.nan, deflate_note
            elif options.method == "ppp":
                factor, note, _ = rates.purchasing_power(code, place, year)
            else:
                factor, note, _ = rates.exchange(code, year, rates.reporting)
            if deflate_note and math.isfinite(factor):
                note = f"{deflate_note}; {note}"
            value = cost * (deflator * factor)
        codes.append(labels.setdefault(note, len(labels)))
        values.append(value)
    return np.array(values), np.array(codes), tuple(labels)


def cost_cohort(seed: int, n: int = 800, categorical: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    currency = rng.choice(["USD", "EUR", "gbp ", "INR", "XYZ", None], n)
    country = rng.choice(["US", "DE", "GB", "FR", "IN", "ZZ", None], n)
    frame = pd.DataFrame({
        "procedure": pd.Categorical(rng.choice(PROCEDURES + [None], n, p=[.48, .48, .04]),
                                    categories=PROCEDURES),
        "cost": maybe_missing(rng, np.round(rng.gamma(3, 1500, n), 2)),
        "currency": pd.Categorical(currency) if categorical else currency,
        "country": pd.Categorical(country) if categorical else country,
        "region": pd.array(rng.choice(["north", "south", "ünïcode", None], n), dtype="string"),
        "procedure_date": pd.to_datetime("2012-06-01")
        + pd.to_timedelta(rng.integers(0, 16 * 365, n), unit="D"),
        "pain_baseline": pd.array(np.round(rng.uniform(5, 10, n), 1), dtype="Float64"),
        "pain_month1": pd.array(maybe_missing(rng, np.round(rng.uniform(0, 9, n), 1)),
                                dtype="Float64"),
        "age": rng.integers(50, 90, n).astype(float),
    })
    frame.loc[rng.random(n) < 0.05, "procedure_date"] = pd.NaT
    return frame


OPTIONS = [CostOptions(), CostOptions(reporting_currency="EUR"),
           CostOptions(reporting_currency="GBP", year=2019),
           CostOptions(method="ppp", reporting_currency="EUR", reporting_country="FR"),
           CostOptions(method="ppp"),
           CostOptions(price_year="nominal"),
           CostOptions(reporting_currency="GBP", year=2019, price_year="nominal"),
           CostOptions(method="ppp", price_year=2021)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("categorical", [True, False])
@pytest.mark.parametrize("options", OPTIONS)
def test_conversion_equals_row_by_row(seed, categorical, options):
    records = cost_cohort(seed, categorical=categorical)
    conversion = convert_costs(records, options)
    values, codes, labels = reference_conversion(records, options)
    assert np.array_equal(conversion.values, values, equal_nan=True)
    assert conversion.note_labels == labels  # notes in order of first appearance
    assert np.array_equal(conversion.note_codes, codes)
    failed = records["cost"].notna().to_numpy() & np.isnan(values)
    expected = pd.Series(codes[failed]).value_counts().sort_index()
    assert list(conversion.unconverted.items()) == [(labels[i], int(c))
                                                    for i, c in expected.items()]
    assert conversion.options == options and conversion.index is records.index


def test_calendar_years_equal_numpy_calendar():
    rng = np.random.default_rng(3)
    for unit in ("ns", "us", "s", "D"):
        stamps = (np.datetime64("1930-01-01", "s")
                  + rng.integers(0, 100 * 365 * 86400, 20_000).astype("timedelta64[s]"))
        starts = np.arange(1929 - 1970, 2032 - 1970).astype("datetime64[Y]")
        stamps = np.concatenate([stamps.astype(f"datetime64[{unit}]"),
                                 starts.astype(f"datetime64[{unit}]"),
                                 starts.astype(f"datetime64[{unit}]") - np.timedelta64(1, unit),
                                 np.array(["NaT"], dtype=f"datetime64[{unit}]")])
        valid = ~np.isnat(stamps)
        expected = np.where(valid, stamps.astype("datetime64[Y]").astype(np.int64) + 1970, 0)
        assert np.array_equal(costs._calendar_years(stamps, valid), expected), unit
    nothing = np.array(["NaT"] * 3, dtype="datetime64[ns]")
    assert costs._calendar_years(nothing, ~np.isnat(nothing)).tolist() == [0, 0, 0]


# ---------------------------------------------------------------- grouping and quartiles


@pytest.mark.parametrize("by", [("procedure",), ("country", "procedure"),
                                ("country", "region", "procedure"), ("region",)])
@pytest.mark.parametrize("seed", [1, 2])
def test_coded_groups_equal_pandas_groupby(by, seed):
    records = cost_cohort(seed)
    records["country"] = records["country"].cat.add_categories(["unused"])
    codes, keys = costs._groups(records, by)
    grouped = records.groupby(list(by), observed=True, dropna=False, sort=True)
    assert np.array_equal(codes, grouped.ngroup().to_numpy())
    pd.testing.assert_frame_equal(keys, grouped.size().index.to_frame(index=False))


def test_groups_fall_back_for_other_column_types():
    records = cost_cohort(1)
    assert costs._coded_groups(records, ("age",)) is None
    codes, keys = costs._groups(records, ("age",))
    assert len(keys) == records["age"].nunique()


def test_split_by_mask_equals_split_by_sort(monkeypatch):
    rng = np.random.default_rng(4)
    values, codes = rng.random(500), rng.integers(0, 5, 500)
    masked = costs._split(values, codes, 6)
    monkeypatch.setattr(costs, "_SPLIT_MASK_MAX_GROUPS", 0)
    for a, b in zip(masked, costs._split(values, codes, 6), strict=True):
        assert np.array_equal(a, b)


def test_quartiles_equal_numpy_quantile():
    rng = np.random.default_rng(6)
    for size in [1, 2, 3, 4, 5, 7, 10, 101, 1000, 4097]:
        for values in (rng.gamma(3, 1500, size), np.round(rng.normal(0, 5, size))):
            assert costs._quartiles(values) == tuple(np.quantile(values, [0.25, 0.5, 0.75]))


def test_equals_on_categories_and_labels():
    column = pd.Series(pd.Categorical([KP, None, VP, KP], categories=[VP, KP, "other"]))
    assert costs._equals(column, KP).tolist() == [True, False, False, True]
    assert costs._equals(column, "absent").tolist() == [False] * 4
    assert costs._equals(column.astype(object), VP).tolist() == [False, False, True, False]


# -------------------------------------------------------- conversion passed to the analyses


@pytest.mark.parametrize("options", OPTIONS[:2] + OPTIONS[3:4])
def test_analyses_with_a_conversion_equal_analyses_without(options):
    records = cost_cohort(7, n=600)
    conversion = convert_costs(records, options)
    kwargs = {"n_resamples": 300}
    pd.testing.assert_frame_equal(
        cost_summary(records, by=("country", "procedure"), options=options, **kwargs),
        cost_summary(records, by=("country", "procedure"), conversion=conversion, **kwargs))
    pd.testing.assert_frame_equal(
        cost_per_responder(records, by=("procedure",), options=options),
        cost_per_responder(records, by=("procedure",), conversion=conversion))
    assert incremental_cost_per_responder(records, options=options, n_resamples=300) == \
        incremental_cost_per_responder(records, options=options, conversion=conversion,
                                       n_resamples=300)
    normalised = normalise_costs(records, options)
    pd.testing.assert_frame_equal(normalised, normalise_costs(records, conversion=conversion))
    assert normalised.attrs == normalise_costs(records, conversion=conversion).attrs
    assert adjusted_cost_ratio(records, covariates=("age",), options=options) == \
        adjusted_cost_ratio(records, covariates=("age",), conversion=conversion)
    pd.testing.assert_frame_equal(conversion_counts(normalised),
                                  conversion_counts(records, conversion))


def test_a_conversion_of_other_records_or_options_is_refused():
    records = cost_cohort(8, n=200)
    conversion = convert_costs(records)
    with pytest.raises(ValueError, match="other records"):
        cost_summary(records.iloc[:100], conversion=conversion)
    with pytest.raises(ValueError, match="other records"):
        cost_summary(records.set_axis(records.index + 1000), conversion=conversion)
    with pytest.raises(ValueError, match="differ"):
        cost_per_responder(records, options=CostOptions(reporting_currency="EUR"),
                           conversion=conversion)
    with pytest.raises(TypeError, match="CostConversion"):
        normalise_costs(records, conversion=conversion.values)
    # The same options passed again are fine, and so is a copy of the frame.
    same = cost_summary(records.copy(), options=CostOptions(), conversion=conversion)
    assert isinstance(conversion, CostConversion) and len(same) == 3


@pytest.mark.parametrize("grouping", ["procedure", "country", "region"])
def test_coded_groupings_show_the_same_tables(grouping):
    records = cost_cohort(9, n=900)
    by = GROUPINGS[grouping]
    coded = coded_groupings(records, by)
    assert coded.index is records.index
    conversion = convert_costs(records)
    status = costs._responder_status(records, None, None)
    summaries = [cost_summary(frame, by=by, conversion=conversion, n_resamples=200)
                 for frame in (records, coded)]
    per_responder = [cost_per_responder(frame, by=by, responders=status, conversion=conversion)
                     for frame in (records, coded)]
    pd.testing.assert_frame_equal(summary_display(summaries[0], by, "USD"),
                                  summary_display(summaries[1], by, "USD"))
    pd.testing.assert_frame_equal(responder_display(per_responder[0], by, "USD"),
                                  responder_display(per_responder[1], by, "USD"))
    assert cost_figure(summaries[0], by, "USD") == cost_figure(summaries[1], by, "USD")
    numbers = [c for c in summaries[0].columns if c not in by]
    pd.testing.assert_frame_equal(summaries[0][numbers], summaries[1][numbers])
