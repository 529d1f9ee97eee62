"""Pure analysis bundles, figures and tables of the "VP vs KP statistics" page (no Dash app)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.adjustment import propensity_weights
from analysis.comparison import (
    COMPARISON_COLUMNS,
    compare_procedures,
    minimum_detectable_differences,
)
from analysis.table_one import table_one
from dashboard.figures import comparison as fig
from data.demo import demo_records


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return demo_records(1500, seed=3)


@pytest.fixture(scope="module")
def effects(demo) -> pd.DataFrame:
    return fig.comparison_analysis(demo)


@pytest.fixture(scope="module")
def baseline(demo) -> fig.BaselineResult:
    return fig.baseline_analysis(demo)


def figure_text(figure) -> str:
    """Everything a reader (or the PNG/HTML export) can see: data, hover texts, labels."""
    return json.dumps(figure.to_plotly_json(), default=str)


def row_of(table: pd.DataFrame, outcome: str) -> pd.Series:
    return table[table["outcome"] == outcome].iloc[0]


# --- analysis bundles ------------------------------------------------------------------------


def test_comparison_analysis_is_compare_procedures_plus_event_counts(demo, effects):
    expected = compare_procedures(demo, adjust=True)
    pd.testing.assert_frame_equal(effects.drop(columns=["events_vp", "events_kp"]), expected)
    leakage = row_of(effects, "cement_leakage")
    vp = demo[demo.procedure == "vertebroplasty"]
    assert leakage.events_vp == int(vp.cement_leakage.sum())
    assert np.isnan(row_of(effects, "duration_min").events_vp)
    assert row_of(effects, "time_to_fracture").events_kp > 0


def test_baseline_analysis_matches_analysis(demo, baseline):
    ps = propensity_weights(demo)
    pd.testing.assert_frame_equal(baseline.table_one, table_one(demo, p_values=True))
    pd.testing.assert_frame_equal(baseline.table_one_weighted, table_one(demo, weights=ps))
    pd.testing.assert_frame_equal(baseline.balance, ps.balance)
    assert baseline.c_statistic == pytest.approx(ps.c_statistic)
    # Only bin counts are kept, never a patient's score.
    assert list(baseline.histogram.columns) == ["procedure", "bin_start", "bin_end", "count"]
    assert baseline.histogram["count"].sum() == ps.scores.notna().sum()
    assert baseline.ps_error is None


def test_baseline_without_kyphoplasty_reports_why(demo):
    result = fig.baseline_analysis(demo[demo.procedure == "vertebroplasty"].head(6))
    assert result.table_one_weighted is None and result.histogram is None
    assert "kyphoplasty" in result.ps_error


# --- Table 1 ---------------------------------------------------------------------------------


def test_table_one_display_values_and_small_levels(demo, baseline):
    shown = fig.table_one_display(baseline.table_one, baseline.table_one_weighted)
    raw = baseline.table_one
    age = shown[shown["Characteristic"].str.startswith("Age")].iloc[0]
    expected = raw[raw.variable == "age"].iloc[0]
    assert age["VP"] == expected["vertebroplasty"] and age["KP"] == expected["kyphoplasty"]
    assert age["SMD"] == fig.plain(expected["smd"], 3)
    # SMDs lead; the p-values only on request (STROBE 14a, tableone test = FALSE).
    assert list(shown.columns) == ["Characteristic", "VP", "KP", "SMD", "VP (IPTW)",
                                   "KP (IPTW)", "SMD (IPTW)", "Missing (VP / KP)"]
    with_p = fig.table_one_display(baseline.table_one, baseline.table_one_weighted, True)
    assert list(with_p.columns)[-1] == "p-value"
    assert with_p[with_p["Characteristic"].str.startswith("Age")].iloc[0]["p-value"] == \
        fig.p_text(expected["p_value"])
    # A level with 1-10 patients in a procedure: "<11", its weighted share and SMDs hidden.
    counts = {
        (r.variable, r.level): (
            fig._leading_count(r.vertebroplasty),
            fig._leading_count(r.kyphoplasty),
        )
        for r in raw.itertuples()
        if r.level
    }
    small = [key for key, (a, b) in counts.items() if 1 <= a <= 10 or 1 <= b <= 10]
    assert small, "the demo cohort should have a rare level"
    variable, level = small[0]
    index = raw.index[(raw.variable == variable) & (raw.level == level)][0]
    row = shown.iloc[index]
    a, b = counts[(variable, level)]
    assert row["VP"] == ("<11" if 1 <= a <= 10 else raw.loc[index, "vertebroplasty"])
    assert row["KP"] == ("<11" if 1 <= b <= 10 else raw.loc[index, "kyphoplasty"])
    assert row["SMD"] == "" and row["SMD (IPTW)"] == ""
    assert "<11" in (row["VP (IPTW)"], row["KP (IPTW)"])


def test_table_one_display_formats_large_counts():
    raw = pd.DataFrame(
        [
            {
                "variable": "n",
                "level": "",
                "vertebroplasty": "408735",
                "kyphoplasty": "591265",
                "missing_vp": pd.NA,
                "missing_kp": pd.NA,
                "p_value": np.nan,
                "test": "",
                "smd": np.nan,
            },
            {
                "variable": "sex",
                "level": "F",
                "vertebroplasty": "62997 (15.4)",
                "kyphoplasty": "7 (0.0)",
                "missing_vp": pd.NA,
                "missing_kp": pd.NA,
                "p_value": np.nan,
                "test": "",
                "smd": 0.1,
            },
        ]
    )
    shown = fig.table_one_display(raw)
    assert shown["VP"].tolist() == ["408,735", "62,997 (15.4)"]
    assert shown["KP"].tolist() == ["591,265", "<11"]
    assert fig._thousands("57231.9 (14.0)") == "57,231.9 (14.0)"
    assert fig._thousands("74.8 (9.3)") == "74.8 (9.3)"


def test_table_one_summary_never_states_a_hidden_smd(demo):
    few = pd.concat(
        [
            demo[demo.procedure == "vertebroplasty"].head(20),
            demo[demo.procedure == "kyphoplasty"].head(12),
        ]
    )
    raw = table_one(few)
    shown = fig.table_one_display(raw)
    summary = fig.table_one_summary(raw, None)
    for r, (_, d) in zip(raw.itertuples(), shown.iterrows(), strict=True):
        if r.level == "" and r.variable != "n" and d["SMD"] == "" and not np.isnan(r.smd):
            name = fig.COVARIATE_LABELS.get(r.variable, r.variable.replace("_", " "))
            assert f"{name} ({abs(r.smd):.2f})" not in summary


def test_table_one_display_hides_a_small_group(demo):
    tiny = demo[demo.procedure == "vertebroplasty"].head(6)
    shown = fig.table_one_display(table_one(tiny, p_values=True), p_values=True)
    assert shown.iloc[0]["VP"] == "<11" and shown.iloc[0]["KP"] == "0"
    cells = shown["VP"].tolist()
    assert all(c in ("<11", "", "–") for c in cells)
    assert (shown["SMD"] == "").all() and (shown["p-value"] == "").all()


# --- effects ---------------------------------------------------------------------------------


def test_forest_puts_each_scale_on_its_own_axis(effects):
    figure = fig.forest_figure(effects)
    layout = figure.to_plotly_json()["layout"]
    titles = [a["text"] for a in layout["annotations"]]
    for title in (
        "Risk difference, KP − VP",
        "Difference in mean pain score, KP − VP",
        "Difference in mean procedure duration, KP − VP",
        "Ratio of mean costs, KP / VP (adjusted)",
        "Hazard ratio of a new fracture, KP / VP",
    ):
        assert title in titles
    axes = {k: v for k, v in layout.items() if k.startswith("xaxis")}
    assert len(axes) == 6  # RD, pain MD, duration MD, cost MD, cost ratio, HR
    assert sum(a.get("type") == "log" for a in axes.values()) == 2
    # The adjusted leakage RD is drawn in percentage points on the RD axis.
    leakage = row_of(effects, "cement_leakage")
    adjusted = [t for t in figure.data if t.name == "Adjusted (model-based)" and t.xaxis == "x"][0]
    assert any(math.isclose(x, 100 * leakage.adjusted) for x in adjusted.x)
    iptw = [t for t in figure.data if t.name == "Adjusted (IPTW)"][0]
    assert list(iptw.x) == pytest.approx([100 * leakage.iptw])
    hr = [t for t in figure.data if t.xaxis == "x6"]
    assert {round(x, 6) for t in hr for x in t.x} == {
        round(row_of(effects, "time_to_fracture")[c], 6) for c in ("unadjusted", "adjusted")
    }


def test_forest_and_table_suppress_an_outcome_with_few_events(effects):
    table = effects.copy()
    i = table.index[table.outcome == "pulmonary_embolism"][0]
    table.loc[i, "events_kp"] = 7
    figure = fig.forest_figure(table)
    text = figure_text(figure)
    assert "Cement embolism (<11: suppressed)" in text
    hovers = [h for t in figure.data for h in (t.hovertext or [])]
    assert hovers and not any("Cement embolism" in h for h in hovers)
    rd = [x for t in figure.data if t.xaxis == "x" for x in t.x]
    assert not any(math.isclose(x, 100 * table.loc[i, "adjusted"]) for x in rd)
    shown = fig.effects_table(table).iloc[i]
    assert shown["VP"] == shown["KP"] == "suppressed"
    assert shown["Adjusted (95% CI, clustered by facility)"] == "suppressed" and shown["p (BH)"] == ""
    assert f"{100 * table.loc[i, 'estimate_kp']:.1f}" not in " ".join(map(str, shown.values))
    assert "Cement embolism" in fig.forest_summary(table) and "suppressed" in fig.forest_summary(
        table
    )


def test_effects_table_values_methods_and_notes(effects):
    shown = fig.effects_table(effects, 0.95)
    leakage_row = row_of(effects, "cement_leakage")
    leakage = shown[shown.Outcome == leakage_row.definition].iloc[0]
    assert leakage["Adjusted (95% CI, clustered by facility)"].startswith(
        f"RD {fig.signed(100 * leakage_row.adjusted, 1)} pp"
    )
    assert leakage["Adjusted p"] == fig.p_text(leakage_row.p_adjusted)
    assert leakage["p (BH)"] == fig.p_text(leakage_row.p_bh)
    assert leakage["IPTW (95% CI, clustered by facility)"].startswith(f"RD {fig.signed(100 * leakage_row.iptw, 1)} pp")
    assert leakage["Adjusted method"].startswith("g-computation")
    cost = shown[shown.Outcome.str.startswith("Procedure cost")].iloc[0]
    assert cost["Unadjusted (95% CI, clustered by facility)"].startswith("MD ") and "USD" in cost["Unadjusted (95% CI, clustered by facility)"]
    assert cost["Adjusted (95% CI, clustered by facility)"].startswith("ratio of means ")
    hr = shown[shown.Outcome.str.startswith("Time to")].iloc[0]
    assert hr["Notes"] == row_of(effects, "time_to_fracture").note


def test_counts_in_method_and_note_texts_are_redacted():
    assert (
        fig.redact_counts("risk difference KP − VP (1742/2425 vs 3/15)")
        == "risk difference KP − VP (1742/2425 vs <11/15)"
    )
    assert fig.redact_counts(
        "adjusted model skipped: 3 events in kyphoplasty, at least 10 needed"
    ) == ("adjusted model skipped: <11 events in kyphoplasty, at least 10 needed")
    assert (
        fig.redact_counts("skipped: 1 kyphoplasty and 12 vertebroplasty records")
        == "skipped: <11 kyphoplasty and 12 vertebroplasty records"
    )
    assert (
        fig.redact_counts("fewer than 2 values in a procedure")
        == "fewer than 2 values in a procedure"
    )
    assert fig.redact_counts("t-based CI (df = 7); 0 events") == "t-based CI (df = 7); 0 events"
    assert fig.redact_counts(None) == "" and fig.redact_counts(math.nan) == ""


def test_effects_table_redacts_small_counts_from_notes(demo):
    few = demo[demo.procedure == "vertebroplasty"].head(300)
    few = pd.concat([few, demo[demo.procedure == "kyphoplasty"].head(8)])
    table = fig.comparison_analysis(few)
    shown = fig.effects_table(table)
    text = " ".join(shown.astype(str).to_numpy().ravel())
    assert "8 kyphoplasty" not in text and "/8 " not in text
    assert (shown["n KP"] == "<11").all()


def test_empty_inputs_give_empty_figures():
    empty = pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    for figure in (fig.forest_figure(empty), fig.love_plot(None), fig.overlap_figure(None)):
        assert not figure.data
        assert figure.layout.annotations
    assert fig.forest_summary(empty) == "No outcomes to compare."


# --- balance and overlap ---------------------------------------------------------------------


def test_love_plot_values_and_hidden_covariates(baseline):
    balance = baseline.balance
    hidden = fig.hidden_covariates(balance, baseline.table_one)
    figure = fig.love_plot(balance, hidden)
    before = [t for t in figure.data if t.name == "Before weighting"][0]
    shown = {y: x for y, x in zip(before.y, before.x, strict=True)}
    age = balance[balance.covariate == "age"].iloc[0]
    assert shown["Age"] == pytest.approx(abs(age.smd_before))
    shapes = figure.to_plotly_json()["layout"]["shapes"]
    assert any(s.get("x0") == 0.1 for s in shapes)
    for name in hidden:
        label = fig._covariate_text(name) + " (<11)"
        assert shown[label] is None
    table = fig.balance_table(balance, hidden)
    assert (
        table.loc[balance.covariate.isin(hidden).to_numpy(), "SMD before"] == "suppressed"
    ).all()


def test_hidden_covariates_follow_table_one_counts(baseline):
    raw = baseline.table_one.copy()
    i = raw.index[(raw.variable == "country") & (raw.level == "GB")][0]
    raw.loc[i, "kyphoplasty"] = "4 (0.5)"
    assert "country[GB]" in fig.hidden_covariates(baseline.balance, raw)
    assert "country[FR]" not in fig.hidden_covariates(baseline.balance, raw)


def test_overlap_histogram_suppresses_bins_with_few_patients():
    scores = pd.Series([0.11] * 5 + [0.52] * 30 + [0.53] * 12 + [0.9] * 40)
    procedure = pd.Series(["kyphoplasty"] * 47 + ["vertebroplasty"] * 40)
    histogram = fig.score_histogram(scores, procedure)
    assert histogram["count"].sum() == 87
    figure = fig.overlap_figure(histogram)
    kp = [t for t in figure.data if t.type == "bar" and t.name.startswith("Kyphoplasty")][0]
    assert sorted(kp.y) == [12, 30]  # the bin with 5 patients has no bar
    assert all("5 patients" not in h for t in figure.data for h in t.hovertext)
    marks = [t for t in figure.data if t.type == "scatter"]
    assert marks and "<11 patients" in marks[0].hovertext[0]
    vp = [t for t in figure.data if t.type == "bar" and t.name.startswith("Vertebroplasty")][0]
    assert list(vp.y) == [-40]  # VP below the axis


def test_weight_summary_table(baseline):
    shown = fig.weight_summary_table(baseline.weight_summary)
    ess = baseline.weight_summary.set_index("group").loc["kyphoplasty", "ess"]
    assert (
        shown.loc[shown.Group == "Kyphoplasty (KP)", "Effective sample size"].iloc[0]
        == f"{ess:,.0f}"
    )
    small = baseline.weight_summary.assign(n=[5, 1000, 1005])
    assert fig.weight_summary_table(small).iloc[0][["n", "Median"]].tolist() == ["<11", ""]


# --- minimum detectable differences ----------------------------------------------------------


def test_mdd_table_equals_analysis_and_suppresses(demo):
    mdd = minimum_detectable_differences(demo)
    shown = fig.mdd_table(mdd)
    leak = mdd[mdd.outcome == "cement_leakage"].iloc[0]
    row = shown[shown.Outcome == "Cement leakage"].iloc[0]
    assert row["Smallest detectable increase"] == f"+{100 * leak.mdd_increase:.1f} pp"
    assert row["Reference"] == f"VP risk {100 * leak.reference:.1f}%"
    duration = mdd[mdd.outcome == "duration_min"].iloc[0]
    assert (
        shown[shown.Outcome == "Procedure duration"].iloc[0]["Smallest detectable increase"]
        == f"+{duration.mdd_increase:.2f} min"
    )
    small = mdd.assign(n_kp=[7] * len(mdd))
    assert set(fig.mdd_table(small)["Smallest detectable increase"]) == {"suppressed"}
    assert "Cement leakage" in fig.mdd_summary(mdd)


def test_nice_axis_steps():
    assert [fig._nice_step(v) for v in (0.4, 3, 7, 182, 2600)] == [1, 5, 10, 200, 5000]


def test_table_one_hides_a_partner_level_so_the_small_one_cannot_be_derived():
    """KP with 11 F and 1 M: showing F = 11 and n = 12 would reveal M = 1, so both are hidden."""
    from analysis.table_one import table_one
    from dashboard.figures.comparison import table_one_display
    from data.demo import demo_records

    records = demo_records(400, seed=8)
    vp = records[records.procedure == "vertebroplasty"].head(40)
    kp = records[records.procedure == "kyphoplasty"].head(12).copy()
    kp["sex"] = pd.Categorical(["F"] * 11 + ["M"], categories=["F", "M", "X"])
    shown = table_one_display(table_one(pd.concat([vp, kp])))
    sex = shown.set_index("Characteristic").loc[["\u2003F", "\u2003M"], "KP"]
    assert list(sex) == ["<11", "<11"]


def test_interval_labels_say_whether_they_are_clustered(demo, effects):
    # Issue 12 item 5: the default intervals are clustered by facility and say so, the
    # cumulative incidences "by day N" included (grouped jackknife / cluster bootstrap).
    horizon = effects["outcome"] == "adjacent_fracture_12m"
    assert effects["clustered"].all()
    assert "not clustered" not in effects.loc[horizon, "note"].iloc[0]
    shown = fig.effects_table(effects, 0.95)
    assert "Adjusted (95% CI, clustered by facility)" in shown.columns
    fracture = shown[shown["Outcome"] == effects.loc[horizon, "definition"].iloc[0]].iloc[0]
    assert not fracture["Unadjusted (95% CI, clustered by facility)"].endswith(", not clustered)")
    assert "confidence intervals clustered by facility" in fig.forest_summary(effects)
    hovers = [h for t in fig.forest_figure(effects).data for h in (t.hovertext or [])]
    assert hovers and all("95% CI, clustered by facility" in h for h in hovers if "95% CI" in h)
    # A row that could not be clustered (e.g. one procedure in a single facility) is
    # labelled as not clustered wherever it is shown.
    mixed = effects.copy()
    mixed.loc[horizon, "clustered"] = False
    fracture = fig.effects_table(mixed, 0.95)
    fracture = fracture[fracture["Outcome"] == effects.loc[horizon, "definition"].iloc[0]].iloc[0]
    assert fracture["Unadjusted (95% CI, clustered by facility)"].endswith(", not clustered)")
    hovers = [h for t in fig.forest_figure(mixed).data for h in (t.hovertext or [])]
    label = "New fracture by 12 months"
    assert hovers and all(("95% CI, clustered by facility" in h) != h.startswith(label)
                          for h in hovers if "95% CI" in h)
    plain = fig.comparison_analysis(demo, clustered=False)
    assert not plain["clustered"].any()
    assert "Adjusted (95% CI)" in fig.effects_table(plain, 0.95).columns
    assert "(model-based)" in fig.forest_summary(plain)
    np.testing.assert_allclose(plain["adjusted"], effects["adjusted"], rtol=1e-6)


def test_horizon_row_method_counts_are_redacted():
    """The 12-month row's method text carries events and numbers at risk at the horizon:
    every count from 1 to the threshold must be redacted on the page (issue 12 item 1)."""
    from analysis.comparison import compare_procedures
    from dashboard.figures.comparison import redact_counts
    from data import demo_records

    records = demo_records(400, seed=3)
    kp = records.index[records.procedure == "kyphoplasty"]
    records = records.drop(kp[30:])  # few KP patients: small counts at day 365
    row = compare_procedures(records, outcomes=["adjacent_fracture_12m"], adjust=False).iloc[0]
    text = redact_counts(row["unadjusted_method"])
    assert "events by day 365" in text and "still at risk at day 365" in text
    numbers = [int(n.replace(",", "")) for n in re.findall(r"(?<![\w.])\d[\d,]*(?![\w.])", text)
               if n not in ("365",)]
    assert not any(1 <= n <= 10 for n in numbers), text
