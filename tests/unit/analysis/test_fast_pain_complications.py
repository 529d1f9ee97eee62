"""Fast paths of the Pain and Complications pages (issue 6) against straightforward code.

Each test builds synthetic cohorts with fixed seeds (missing values, a single procedure, a
missing or unknown procedure, scores on and off the 0.1 grid, empty frames) and checks the
vectorised code against a plain pandas ``groupby`` / numpy / statsmodels computation: counts,
quartiles, minima and maxima exactly, sums (means, SDs) to floating-point rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import scipy.stats as st
from plotly.subplots import make_subplots
from statsmodels.duration.survfunc import SurvfuncRight
from statsmodels.stats.contingency_tables import mcnemar

from analysis import outcomes as out
from analysis._histogram import blend, histogram_stats
from analysis.comparison import _fracture_arrays, fracture_survival, fracture_time_event
from analysis.descriptive import _months
from analysis.horizon import HORIZON_OUTCOMES, horizon_time_event
from analysis.outcomes import (
    COMPLICATION_OUTCOMES,
    ResponderDefinition,
    complication_rates,
    odi_change,
    opioid_use,
    pain_trajectory,
    responder_rates,
)
from analysis.survival import _tied_counts, cumulative_incidence, kaplan_meier
from dashboard.figures import pain as pain_figures
from dashboard.figures.common import axis_layout, base_layout, build_figure, subplot_grid
from data import demo_records

PROCEDURES = ["vertebroplasty", "kyphoplasty"]
VISITS = ["baseline", "day1", "week1", "month1", "month3", "month6", "month12"]
RTOL = 1e-12  # sums in another order: floating-point rounding only


def gaps(rng, values, share=0.15):
    """`values` as a float array with about `share` missing."""
    values = np.asarray(values, dtype=float).copy()
    values[rng.random(values.size) < share] = np.nan
    return values


def flags(rng, n, p, share=0.1):
    values = pd.array(rng.random(n) < p, dtype="boolean")
    values[rng.random(n) < share] = pd.NA
    return values


def cohort(seed: int, n: int = 600, procedures=PROCEDURES, grid: bool = True,
           categorical: bool = True) -> pd.DataFrame:
    """Pain, ODI and opioid columns (nullable dtypes, as loaded), about 15 % missing each.

    ``grid=False`` puts the scores off the 0.1 grid (the general path); a few procedures
    are missing and, when not categorical, one is an unknown value.
    """
    rng = np.random.default_rng(seed)
    procedure = pd.Series(rng.choice(procedures, n), dtype=object)
    procedure[rng.random(n) < 0.03] = None
    if not categorical:
        procedure[rng.random(n) < 0.02] = "other"
    frame = pd.DataFrame({
        "procedure": (pd.Categorical(procedure, categories=PROCEDURES) if categorical
                      else procedure),
        "sex": pd.Categorical(rng.choice(["F", "M"], n)),
    })
    for visit in VISITS:
        score = np.round(rng.uniform(0, 10, n), 1) if grid else rng.uniform(0, 10, n)
        frame[f"pain_{visit}"] = pd.array(gaps(rng, score), dtype="Float64")
    for visit in ("baseline", "month1", "month12"):
        odi = rng.integers(0, 51, n) * 2.0 if grid else rng.uniform(0, 100, n)
        frame[f"odi_{visit}"] = pd.array(gaps(rng, odi), dtype="Float64")
    frame["opioid_baseline"] = flags(rng, n, 0.6)
    frame["opioid_month1"] = flags(rng, n, 0.3)
    return frame


def grouped(records: pd.DataFrame, by: tuple[str, ...]):
    """(key, rows) as the outcome tables group: observed combinations, sorted (categories in
    their order), missing keys last; grouped on integer codes (pandas cannot group a
    categorical with missing values by it alone keeping them)."""
    if not by:
        return [((), records)]
    codes = []
    for column in by:
        values = records[column]
        code = (values.cat.codes.to_numpy() if isinstance(values.dtype, pd.CategoricalDtype)
                else pd.factorize(values, sort=True)[0]).astype(np.int64)
        codes.append(np.where(code < 0, np.iinfo(np.int64).max, code))
    parts = []
    for _, part in records.groupby(codes, sort=True):
        first = part.iloc[0]
        parts.append((tuple(first[c] for c in by), part))
    return parts


def close(got, expected):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float),
                               rtol=RTOL, atol=1e-12, equal_nan=True)


# ------------------------------------------------------------------------------ histograms


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_stats_equal_numpy_on_the_records(seed):
    rng = np.random.default_rng(seed)
    grid = (np.arange(41) - 7) / 10.0  # negative values too
    counts = rng.integers(0, 4, (6, grid.size))
    counts[1] = 0  # an empty group
    counts[2] = 0
    counts[2, 5] = 1  # one record
    counts[3] = 0
    counts[3, [3, 30]] = 1  # two records
    stats = histogram_stats(counts, grid)
    for g in range(len(counts)):
        values = np.repeat(grid, counts[g])
        assert stats["n"][g] == values.size
        if values.size == 0:
            assert all(np.isnan(stats[k][g]) for k in ("mean", "sd", "median", "min", "max"))
            continue
        q1, median, q3 = np.quantile(values, (0.25, 0.5, 0.75))
        # Order statistics and numpy's interpolation: exactly the same numbers.
        assert (stats["q1"][g], stats["median"][g], stats["q3"][g]) == (q1, median, q3)
        assert (stats["min"][g], stats["max"][g]) == (values.min(), values.max())
        close(stats["mean"][g], values.mean())
        close(stats["sd"][g], values.std(ddof=1) if values.size > 1 else np.nan)


def test_discrete_takes_only_exact_tenths():
    groups = out._groups(pd.DataFrame({"g": ["a"] * 4}), ("g",))
    coded = out._discrete(np.array([7.3, np.nan, 0.0, 10.0]), groups)
    assert coded is not None and coded.size == 101
    assert coded.codes.tolist() == [73, 101, 0, 100]
    assert np.array_equal(coded.points[[73, 0, 100]], [7.3, 0.0, 10.0])
    assert out._discrete(np.array([7.35, 1.0, np.nan, np.nan]), groups) is None  # off the grid
    assert out._discrete(np.array([0.1 * 3, 1.0, 2.0, 3.0]), groups) is None  # 0.30000000000000004
    assert out._discrete(np.array([np.nan] * 4), groups) is None
    assert out._discrete(np.array([0.0, 1e6, 1.0, 2.0]), groups) is None  # too many bins
    assert out._discrete(np.array([0.0, np.inf, 1.0, 2.0]), groups) is None


def test_blend_is_where():
    rng = np.random.default_rng(4)
    values = rng.integers(-5, 50, 1000).astype(np.int32)
    keep = rng.random(1000) < 0.7
    assert np.array_equal(blend(values, keep, 99), np.where(keep, values, 99))


# ------------------------------------------------------------------------- pain trajectory


def reference_trajectory(records, by, level=0.95):
    rows = []
    for key, part in grouped(records, by):
        key = key if isinstance(key, tuple) else (key,)
        for visit in VISITS:
            values = part[f"pain_{visit}"].to_numpy(dtype=float, na_value=np.nan)
            values = values[~np.isnan(values)]
            n = values.size
            mean = values.mean() if n else np.nan
            sd = values.std(ddof=1) if n > 1 else np.nan
            half = st.t.ppf(0.5 + level / 2, max(n - 1, 1)) * sd / np.sqrt(n) if n > 1 else np.nan
            q1, median, q3 = np.quantile(values, (0.25, 0.5, 0.75)) if n else (np.nan,) * 3
            rows.append((*key, visit, n, mean, sd, mean - half, mean + half, median, q1, q3))
    return pd.DataFrame(rows, columns=[*by, "visit", "n", "mean", "sd", "low", "high", "median",
                                       "q1", "q3"])


@pytest.mark.parametrize("grid", [True, False])
@pytest.mark.parametrize("by", [("procedure",), ("procedure", "sex"), ()])
@pytest.mark.parametrize("seed", [5, 6])
def test_pain_trajectory_matches_groupby(seed, by, grid):
    records = cohort(seed, grid=grid)
    got = pain_trajectory(records, by=by)
    expected = reference_trajectory(records, by)
    assert len(got) == len(expected)
    for column in by:
        assert got[column].astype(object).where(got[column].notna(), None).tolist() == \
            expected[column].astype(object).where(expected[column].notna(), None).tolist()
    assert got["visit"].tolist() == expected["visit"].tolist()
    assert got["n"].tolist() == expected["n"].tolist()
    for column in ("median", "q1", "q3"):  # order statistics: exact
        assert np.array_equal(got[column].to_numpy(float), expected[column].to_numpy(float),
                              equal_nan=True)
    for column in ("mean", "sd", "low", "high"):
        close(got[column], expected[column])


def test_pain_trajectory_single_procedure_empty_visit_and_empty_frame():
    records = cohort(7, procedures=["kyphoplasty"])
    records["pain_month12"] = pd.array([pd.NA] * len(records), dtype="Float64")
    got = pain_trajectory(records)
    expected = reference_trajectory(records, ("procedure",))
    assert got["n"].tolist() == expected["n"].tolist()
    assert (got.loc[got["visit"] == "month12", "n"] == 0).all()
    close(got["mean"], expected["mean"])
    assert pain_trajectory(records.iloc[:0]).empty


# -------------------------------------------------------------------------------- ODI change


@pytest.mark.parametrize("grid", [True, False])
@pytest.mark.parametrize("seed", [8, 9])
def test_odi_change_matches_groupby(seed, grid):
    records = cohort(seed, grid=grid)
    got = odi_change(records, by=("procedure", "sex"))
    rows = []
    for key, part in grouped(records, ("procedure", "sex")):
        baseline = part["odi_baseline"].to_numpy(dtype=float, na_value=np.nan)
        for visit in ("month1", "month12"):
            followup = part[f"odi_{visit}"].to_numpy(dtype=float, na_value=np.nan)
            paired = ~np.isnan(baseline) & ~np.isnan(followup)
            change = followup[paired] - baseline[paired]
            rows.append((*key, visit, paired.sum(), baseline[paired].mean(),
                         followup[paired].mean(), change.mean(), change.std(ddof=1)))
    expected = pd.DataFrame(rows, columns=["procedure", "sex", "time_point", "n",
                                           "mean_baseline", "mean_followup", "mean_change",
                                           "sd_change"])
    assert got["time_point"].tolist() == expected["time_point"].tolist()
    assert got["n"].tolist() == expected["n"].tolist()
    for column in ("mean_baseline", "mean_followup", "mean_change", "sd_change"):
        close(got[column], expected[column])


def test_paired_change_bins_hold_the_differences():
    rng = np.random.default_rng(10)
    groups = out._groups(pd.DataFrame({"g": np.zeros(300)}), ("g",))
    baseline = gaps(rng, rng.integers(20, 90, 300) * 1.0)
    followup = gaps(rng, np.round(rng.uniform(0, 60, 300), 1))
    paired = ~np.isnan(baseline) & ~np.isnan(followup)
    change = out._paired_change(out._discrete(baseline, groups), out._discrete(followup, groups),
                                paired)
    values = change.points[change.codes[paired]]
    close(values, followup[paired] - baseline[paired])
    assert (change.codes[~paired] == change.size).all()


# ------------------------------------------------------------------------- opioids, responders


@pytest.mark.parametrize("categorical", [True, False])
@pytest.mark.parametrize("seed", [11, 12])
def test_opioid_use_matches_crosstab_and_statsmodels(seed, categorical):
    records = cohort(seed, categorical=categorical)
    got = opioid_use(records)
    rows = []
    for _, part in grouped(records, ("procedure",)):
        before, after = part["opioid_baseline"], part["opioid_month1"]
        paired = (before.notna() & after.notna()).to_numpy()
        b = before.to_numpy(dtype=bool, na_value=False)[paired]
        a = after.to_numpy(dtype=bool, na_value=False)[paired]
        stopped, started = int((b & ~a).sum()), int((~b & a).sum())
        p = mcnemar([[0, stopped], [started, 0]], exact=True).pvalue if paired.any() else np.nan
        rows.append((paired.sum(), b.sum(), a.sum(), stopped, started, p))
    expected = pd.DataFrame(rows, columns=["n_paired", "on_before", "on_after", "stopped",
                                           "started", "p_mcnemar"])
    for column in ("n_paired", "on_before", "on_after", "stopped", "started"):
        assert got[column].tolist() == expected[column].tolist()
    close(got["p_mcnemar"], expected["p_mcnemar"])


@pytest.mark.parametrize("definition", [ResponderDefinition(),
                                        ResponderDefinition("month12", "absolute", 2.5),
                                        ResponderDefinition("day1", "relative", 50.0)])
@pytest.mark.parametrize("seed", [13, 14])
def test_responder_rates_match_is_responder(seed, definition):
    records = cohort(seed)
    got = responder_rates(records, definition, by=("procedure",))
    responder = definition.is_responder(records)
    rows = []
    for _, part in grouped(records, ("procedure",)):
        status = responder.loc[part.index]
        eligible = part["pain_baseline"].notna()
        rows.append((eligible.sum(), status.notna().sum(), status.fillna(False).sum()))
    expected = pd.DataFrame(rows, columns=["n_eligible", "n_followed", "responders"])
    for column in expected:
        assert got[column].tolist() == expected[column].tolist()
    assert (got["n_missing"] == got["n_eligible"] - got["n_followed"]).all()
    groups = out._groups(records, ("procedure",))
    old = out._long(groups.keys, [out._responder_block(records, groups, definition, 0.95)])
    for column in ("n_eligible", "n_followed", "n_missing", "responders", "rate", "low", "high",
                   "method"):
        assert got[column].tolist() == old[column].tolist() or column in ("rate", "low", "high")
    for column in ("rate", "low", "high"):
        assert np.array_equal(got[column].to_numpy(float), old[column].to_numpy(float),
                              equal_nan=True)


# ------------------------------------------------------------------------ complication rates


# ("facility_id",): enough groups that the joint status table is too large (one bincount
# per outcome instead).
@pytest.mark.parametrize("by", [("procedure",), ("procedure", "sex"), (), ("facility_id",)])
@pytest.mark.parametrize("seed", [15, 16])
def test_complication_rates_equal_the_per_outcome_counts(seed, by):
    records = demo_records(1500, seed=seed)
    records.loc[records.sample(frac=0.03, random_state=seed).index, "procedure"] = None
    got = complication_rates(records, by=by)
    groups = out._groups(records, by)
    old = out._long(groups.keys, out._complication_blocks(records, groups,
                                                          tuple(COMPLICATION_OUTCOMES), 0.95))
    pd.testing.assert_frame_equal(got, old)
    # And the counts straight from the per-record status with pandas; the cumulative
    # incidences "by day N" from analysis.survival.cumulative_incidence group by group.
    for outcome in COMPLICATION_OUTCOMES:
        if outcome in HORIZON_OUTCOMES:
            time, code = horizon_time_event(records, outcome)
            horizon = HORIZON_OUTCOMES[outcome].horizon_days
            rows = got[got["outcome"] == outcome]
            for (_, part), (_, estimate) in zip(grouped(records, by), rows.iterrows(),
                                                strict=True):
                at = records.index.get_indexer(part.index)
                curve = cumulative_incidence(time[at], code[at])
                before = curve[curve["time"] <= horizon]
                value = before["cumulative_incidence"].iloc[-1] if len(before) else 0.0
                assert estimate["rate"] == pytest.approx(value, abs=1e-12)
                assert estimate["n"] == int((~np.isnan(time[at])).sum())
            continue
        event, non_event, censored = out._complication_status(records, outcome)
        status = pd.DataFrame({"event": event, "known": event | non_event,
                               "censored": censored}, index=records.index)
        sums = pd.DataFrame([status.loc[part.index].sum() for _, part in grouped(records, by)])
        rows = got[got["outcome"] == outcome]
        assert rows["events"].tolist() == sums["event"].tolist()
        assert rows["n"].tolist() == sums["known"].tolist()
        assert rows["n_censored"].tolist() == sums["censored"].tolist()


def test_complication_rates_of_some_outcomes():
    records = demo_records(700, seed=29)
    chosen = ("death_30d", "cement_leakage")
    got = complication_rates(records, outcomes=chosen)
    full = complication_rates(records)
    expected = full[full["outcome"].isin(chosen)]
    expected = pd.concat([expected[expected["outcome"] == o] for o in chosen])
    key = ["procedure", "outcome"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True))


def test_complication_rates_of_an_empty_frame():
    records = demo_records(50, seed=1).iloc[:0]
    assert complication_rates(records).empty


# ------------------------------------------------------------------- survival: tied counts


@pytest.mark.parametrize("seed", [17, 18])
def test_kaplan_meier_day_counts_equal_the_sorted_path(seed):
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 900, 3000).astype(float)
    event = (rng.random(3000) < 0.2).astype(float)
    fast = kaplan_meier(days, event)
    # A quarter day more keeps every order and tie but takes np.unique's sort.
    slow = kaplan_meier(days + 0.25, event)
    pd.testing.assert_frame_equal(fast.drop(columns="time"), slow.drop(columns="time"))
    assert np.array_equal(fast["time"] + 0.25, slow["time"])
    # And statsmodels' product-limit estimate.
    reference = SurvfuncRight(days, event)
    at = np.searchsorted(reference.surv_times, fast["time"], side="right") - 1
    expected = np.where(at >= 0, reference.surv_prob[np.maximum(at, 0)], 1.0)
    close(fast["survival"], expected)


def test_tied_counts_on_days_and_other_times():
    times, total, (weights,) = _tied_counts(np.array([3.0, 0.0, 3.0, 7.0]),
                                            np.array([1.0, 0.0, 0.0, 1.0]))
    assert times.tolist() == [0.0, 3.0, 7.0] and total.tolist() == [1.0, 2.0, 1.0]
    assert weights.tolist() == [0.0, 1.0, 1.0]
    times, total, _ = _tied_counts(np.array([2.5, 2.5, 1e9]))
    assert times.tolist() == [2.5, 1e9] and total.tolist() == [2.0, 1.0]


@pytest.mark.parametrize("seed", [19, 20])
def test_cumulative_incidence_day_counts_and_at_risk(seed):
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 700, 2500).astype(float)
    code = rng.choice([0, 1, 2], 2500, p=[0.7, 0.2, 0.1]).astype(float)
    fast = cumulative_incidence(days, code, at_risk=True)
    slow = cumulative_incidence(days + 0.5, code)
    pd.testing.assert_frame_equal(fast.drop(columns=["time", "at_risk"]),
                                  slow.drop(columns="time"))
    expected = [(days >= t).sum() for t in fast["time"]]
    assert fast["at_risk"].tolist() == expected
    assert list(cumulative_incidence(days, code).columns) == ["time", "cumulative_incidence",
                                                              "low", "high"]


# --------------------------------------------------------------------- fracture survival


def test_fracture_arrays_equal_fracture_time_event():
    records = demo_records(2000, seed=21)
    records.loc[records.index[:40], "adjacent_fracture"] = pd.NA
    records.loc[records.index[40:80], "death_days"] = pd.NA
    frame = fracture_time_event(records)
    arrays = _fracture_arrays(records)
    for column in ("time", "event", "cr_time", "cr_code"):
        assert np.array_equal(arrays[column], frame[column].to_numpy(), equal_nan=True)
    without_deaths = records.drop(columns=["died", "death_days"])
    arrays = _fracture_arrays(without_deaths)
    frame = fracture_time_event(without_deaths)
    assert np.array_equal(arrays["cr_code"], frame["cr_code"].to_numpy(), equal_nan=True)


def reference_fracture_tables(records):
    """KM, CIF and the number-at-risk table per procedure, the straightforward way."""
    events = fracture_time_event(records)
    time, event = events["time"].to_numpy(), events["event"].to_numpy()
    kms, cifs, risks = [], [], []
    for procedure in PROCEDURES:
        chosen = (records["procedure"].astype(object) == procedure).to_numpy() & ~np.isnan(time)
        if not chosen.any():
            continue
        km = kaplan_meier(time[chosen] + 0.25, event[chosen])  # sorted path
        km["time"] -= 0.25
        kms.append(km.assign(procedure=procedure))
        cif = cumulative_incidence(events["cr_time"].to_numpy()[chosen] + 0.25,
                                   events["cr_code"].to_numpy()[chosen])
        cif["time"] -= 0.25
        cif["at_risk"] = [(events["cr_time"].to_numpy()[chosen] >= t).sum() for t in cif["time"]]
        cifs.append(cif.assign(procedure=procedure))
        for day in (0, 90, 180, 365, 730):
            risks.append((procedure, day, (time[chosen] >= day).sum(),
                          ((time[chosen] <= day) & (event[chosen] == 1)).sum()))
    return kms, cifs, risks


@pytest.mark.parametrize("seed", [22, 23])
def test_fracture_survival_curves_equal_the_straightforward_tables(seed):
    records = demo_records(3000, seed=seed)
    records.loc[records.sample(frac=0.05, random_state=seed).index, "procedure"] = None
    result = fracture_survival(records, models=False)
    kms, cifs, risks = reference_fracture_tables(records)
    for km in kms:
        got = result.km[result.km["procedure"] == km["procedure"].iloc[0]]
        pd.testing.assert_frame_equal(got.reset_index(drop=True)[list(km.columns[:-1])],
                                      km.drop(columns="procedure").reset_index(drop=True))
    for cif in cifs:
        got = result.cumulative_incidence[
            result.cumulative_incidence["procedure"] == cif["procedure"].iloc[0]]
        for column in ("time", "cumulative_incidence", "low", "high", "at_risk"):
            assert np.array_equal(got[column].to_numpy(float), cif[column].to_numpy(float))
    table = [tuple(row) for row in result.at_risk_table.itertuples(index=False)]
    assert table == [(p, d, int(a), int(e)) for p, d, a, e in risks]
    events = fracture_time_event(records)
    kp = (records["procedure"].astype(object) == "kyphoplasty").to_numpy() & \
        events["time"].notna().to_numpy()
    assert (result.n_kp, result.events_kp) == (int(kp.sum()),
                                               int(events["event"].to_numpy()[kp].sum()))


def test_fracture_survival_single_procedure_and_fractional_days():
    records = demo_records(800, seed=24)
    records = records[records["procedure"] == "kyphoplasty"].copy()
    records["followup_days"] = records["followup_days"].astype("Float64") + 0.5  # sorted path
    result = fracture_survival(records, models=False)
    assert result.n_vp == 0 and (result.at_risk_table.query("procedure == 'vertebroplasty'")
                                 [["at_risk", "cumulative_events"]] == 0).all().all()
    assert any("no vertebroplasty" in note for note in result.notes)
    kms, _, risks = reference_fracture_tables(records)
    got = result.km.reset_index(drop=True)
    assert np.array_equal(got["survival"], kms[0]["survival"].to_numpy())
    kp_rows = [tuple(r) for r in result.at_risk_table.itertuples(index=False)
               if r.procedure == "kyphoplasty"]
    assert kp_rows == [(p, d, int(a), int(e)) for p, d, a, e in risks]


# ------------------------------------------------------------------------ trend: months


def test_months_equal_numpy_calendar_with_nat_and_old_dates():
    rng = np.random.default_rng(25)
    days = rng.integers(-800, 20000, 5000)
    values = (np.datetime64("1970-01-01", "ns") + days.astype("timedelta64[D]")).astype(
        "datetime64[ns]")
    values[rng.random(5000) < 0.1] = np.datetime64("NaT")
    valid = ~np.isnat(values)
    expected = values.astype("datetime64[M]").astype(np.int64)
    assert np.array_equal(_months(values, valid)[valid], expected[valid])
    assert _months(values[:0], valid[:0]).size == 0


# ------------------------------------------------------------------- pain change histogram


def reference_histogram_counts(records, definition):
    """Per procedure: counts of the reduction per bin from the patients with both scores."""
    relative = definition.kind == "relative"
    edges = pain_figures._RELATIVE_EDGES if relative else pain_figures._ABSOLUTE_EDGES
    baseline = records["pain_baseline"].to_numpy(dtype=float, na_value=np.nan)
    followup = records[definition.column].to_numpy(dtype=float, na_value=np.nan)
    counts = {}
    for procedure in PROCEDURES:
        mine = (records["procedure"].astype(object) == procedure).to_numpy()
        if not mine.any():
            continue
        b, f = baseline[mine], followup[mine]
        ok = ~np.isnan(b) & ~np.isnan(f) & ((b > 0) if relative else True)
        reduction = b[ok] - f[ok]
        if relative:
            reduction = 100 * reduction / b[ok]
        index = np.floor((np.round(reduction, 6) - edges[0]) / (edges[1] - edges[0]))
        index = np.clip(index.astype(int), 0, len(edges) - 2)
        counts[procedure] = np.bincount(index, minlength=len(edges) - 1).tolist()
    return counts


@pytest.mark.parametrize("categorical", [True, False])
@pytest.mark.parametrize("definition", [ResponderDefinition(),
                                        ResponderDefinition("month3", "absolute", 2.0)])
def test_change_histogram_counts(definition, categorical):
    records = cohort(26, categorical=categorical)
    got = pain_figures.change_histogram(records, definition)
    expected = reference_histogram_counts(records, definition)
    assert set(got["procedure"]) == set(expected)
    for procedure, counts in expected.items():
        part = got[got["procedure"] == procedure]
        assert part["count"].tolist() == counts
        assert (part["n"] == sum(counts)).all()
    only_kp = cohort(27, procedures=["kyphoplasty"], categorical=categorical)
    assert set(pain_figures.change_histogram(only_kp, definition)["procedure"]) == {"kyphoplasty"}


# ------------------------------------------------------------- figures built in one go


def incremental(traces, layout, height, after=None, **base):
    """The figure as built before: traces added, layout updated, base_layout, update."""
    figure = go.Figure()
    for trace in traces:
        figure.add_trace(trace)
    figure.update_layout(layout)
    base_layout(figure, height=height, **base)
    if after:
        figure.update_layout(after)
    return figure


def test_figure_helper_equals_the_incremental_figure():
    traces = [{"type": "bar", "x": ["a", "b"], "y": [1.5, None], "name": "VP",
               "marker": {"color": "#000000", "pattern": {"shape": "/"}},
               "customdata": [["x", "1"], ["y", "2"]]},
              {"type": "scatter", "x": np.arange(3.0), "y": [0, 1, 2], "mode": "lines"}]
    layout = {"xaxis": {"title": {"text": "visit"}, "range": [0, 3]},
              "annotations": [{"text": "note", "x": 0.5, "y": 0.5, "xref": "paper",
                               "yref": "paper", "showarrow": False}],
              "shapes": [{"type": "line", "x0": 1, "x1": 1, "xref": "x", "y0": 0, "y1": 1,
                          "yref": "y domain"}]}
    after = {"legend": {"y": 1.08}, "margin": {"t": 80, "l": 75}}
    got = build_figure(traces, layout, 400, after, barmode="group", bargap=0.15)
    assert got.to_plotly_json() == incremental(traces, layout, 400, after, barmode="group",
                                               bargap=0.15).to_plotly_json()
    plain = build_figure(traces, {"annotations": []}, 300)
    assert "annotations" not in plain.to_plotly_json()["layout"]
    assert plain.to_plotly_json() == incremental(traces, {}, 300).to_plotly_json()


def test_threshold_line_equals_add_vline():
    definition = ResponderDefinition("month1", "absolute", 2.5)
    histogram = pain_figures.change_histogram(cohort(28), definition)
    drawn = pain_figures.histogram_figure(histogram, definition).layout.shapes
    figure = go.Figure(go.Bar(x=[0, 5], y=[0, 1]))
    figure.add_vline(x=2.5, line={"color": "#000000", "dash": "dot", "width": 1.5})
    assert [shape.to_plotly_json() for shape in drawn] == [figure.layout.shapes[0].to_plotly_json()]


@pytest.mark.parametrize("options", [
    {"rows": 1, "cols": 2, "shared_yaxes": True, "horizontal_spacing": 0.05,
     "subplot_titles": ["left", "right"]},
    {"rows": 4, "cols": 1, "shared_xaxes": True, "vertical_spacing": 0.05,
     "row_heights": [0.39, 0.11, 0.39, 0.11], "subplot_titles": ["a", "", "b", ""]},
])
def test_grid_equals_make_subplots(options):
    rows, cols = options["rows"], options["cols"]
    rest = {k: v for k, v in options.items() if k not in ("rows", "cols")}
    expected = make_subplots(rows=rows, cols=cols, **rest)
    layout, axes = subplot_grid(rows, cols, **rest)
    traces = []
    for row in range(1, rows + 1):
        for col in range(1, cols + 1):
            expected.add_scatter(x=[row], y=[col], row=row, col=col)
            expected.update_yaxes(title_text=f"{row},{col}", row=row, col=col)
            expected.add_annotation(text="cell", xref="x domain", yref="y domain", x=0.5,
                                    y=0.5, row=row, col=col)
            traces.append({"type": "scatter", "x": [row], "y": [col], **axes[(row, col)]})
            axis_layout(layout, axes[(row, col)]["yaxis"])["title"] = {
                "text": f"{row},{col}"}
            layout["annotations"].append({"text": "cell", "xref": axes[(row, col)]["xaxis"]
                                          + " domain", "yref": axes[(row, col)]["yaxis"]
                                          + " domain", "x": 0.5, "y": 0.5})
    got = go.Figure(data=traces, layout=layout)
    assert got.to_plotly_json() == expected.to_plotly_json()
    # Each call gets its own copy.
    layout["xaxis"]["type"] = "date"
    assert "type" not in subplot_grid(rows, cols, **rest)[0]["xaxis"]
