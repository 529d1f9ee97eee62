"""Quality monitoring page: callbacks called as functions on a demo store."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter
from analysis.quality import apply_risk_model, caterpillar, cusum, funnel_data, risk_model
from dashboard.app_factory import create_app
from dashboard.figures.quality import _p_text
from data import import_dataframe, load_records, store
from data.demo import ELEVATED_LEAKAGE_FACILITIES, demo_records
from tests.integration.conftest import demo_with_tiny_facility
from tests.integration.test_dashboard_core import find_by_id, texts


@pytest.fixture(scope="module")
def app_and_records(tmp_path_factory):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('quality') / 'store.db'}"
    # 5,000 records: enough volume per facility for the funnel tests.
    import_dataframe(demo_with_tiny_facility(5000), "demo", database, synthetic=True)
    app = create_app(database)
    yield app, load_records(database)
    store.dispose_engines()


ALL = RecordFilter()


def run(app, selection=ALL, outcome="cement_leakage", unit="facility_id",
        adjust="adjusted", overdispersion="none", current=None):
    from dashboard.pages.quality import update_quality

    with app.server.app_context():
        return update_quality(selection.to_dict(), outcome, unit, adjust, overdispersion,
                              current)[:6]


def adjustment(app, selection=ALL, outcome="cement_leakage", unit="facility_id",
               adjust="adjusted"):
    from dashboard.pages.quality import update_adjustment

    with app.server.app_context():
        return " ".join(texts(update_adjustment(selection.to_dict(), outcome, unit, adjust)))


def grid_rows(component) -> dict:
    grid = find_by_id(component, {"type": "data-grid", "name": "quality-units"})
    return {row["unit"]: row for row in grid.rowData}


def flagged_high(figure) -> set[str]:
    units = set()
    for trace in figure.data:
        if trace.mode == "markers" and "above" in (trace.name or ""):
            units |= {text.split("</b>")[0].removeprefix("<b>") for text in trace.hovertext}
    return units


@pytest.mark.parametrize("adjust", ["adjusted", "crude"])
def test_numbers_equal_analysis(app_and_records, adjust):
    app, records = app_and_records
    selection = RecordFilter(countries=("US", "GB"))
    stats, funnel, text, table, options, chosen = run(app, selection, adjust=adjust,
                                                      overdispersion="multiplicative")
    selected = apply_filter(records, selection)
    # The page fits the case-mix model once on all records (the reference population) and
    # applies it, recalibrated, to the selection.
    reference = risk_model(records, "cement_leakage")
    model = apply_risk_model(reference, selected) if adjust == "adjusted" else None
    expected = funnel_data(selected, "facility_id", "cement_leakage", adjust=adjust == "adjusted",
                           overdispersion="multiplicative", model=model)
    assert texts(find_by_id(stats, "quality-target")) == [f"{100 * expected.target:.1f}%"]
    rows = grid_rows(table)
    units = expected.units.set_index("unit")
    assert set(rows) == set(units.index.astype(str))
    for unit in ELEVATED_LEAKAGE_FACILITIES:
        row, raw = rows[unit], units.loc[unit]
        assert row["n"] == f"{int(raw.n):,}" and row["events"] == f"{int(raw.events):,}"
        assert row["rate"] == round(100 * raw.rate, 1) and row["oe"] == round(raw.oe, 2)
        assert row["z"] == round(raw.z, 2) and row["p_adjusted"] == _p_text(raw.p_adjusted)
        assert row["flag"].endswith("high")
    figure = find_by_id(funnel, "quality-funnel-graph").figure
    assert flagged_high(figure) >= set(ELEVATED_LEAKAGE_FACILITIES)
    words = " ".join(texts(text)) + " " + adjustment(app, selection, adjust=adjust)
    if adjust == "adjusted":
        assert "Active adjustment: risk-adjusted" in words
        assert f"c-statistic is {reference.c_statistic:.2f}" in words
    else:
        assert "Active adjustment: none (crude rates)" in words
    assert f"φ = {expected.phi:.2f}" in words
    assert chosen in {o["value"] for o in options if not o["disabled"]}


@pytest.mark.parametrize("unit", ["facility_id", "operator_id"])
@pytest.mark.parametrize("adjusted", [True, False])
def test_page_frame_gives_the_analysis_numbers(app_and_records, unit, adjusted):
    """The page's per-selection frame (units as categoricals coded once per data version)
    gives exactly the funnel, caterpillar and CUSUM of the plain selected records."""
    from dashboard.pages import quality

    app, records = app_and_records
    selection = RecordFilter(countries=("US", "GB"))
    selected = apply_filter(records, selection)
    model = apply_risk_model(risk_model(records, "cement_leakage"), selected) if adjusted else None
    with app.server.app_context():
        key = quality._store_key()
        frame = quality._frame(*key, selection)
        result, _ = quality._funnel(*key, selection, unit, "cement_leakage", adjusted, "none")
        table = quality._caterpillar(*key, selection, unit, "cement_leakage", adjusted)
        chosen = str(result.units.sort_values("n").iloc[-1]["unit"])
        chart, _ = quality._cusum(*key, selection, unit, chosen, "cement_leakage", adjusted)
    assert isinstance(frame[unit].dtype, pd.CategoricalDtype)
    assert frame.index.equals(selected.index)
    assert frame[unit].astype(object).where(frame[unit].notna(), None).tolist() == \
        selected[unit].astype(object).where(selected[unit].notna(), None).tolist()
    expected = funnel_data(selected, unit, "cement_leakage", adjust=adjusted, model=model,
                           min_volume=quality.MIN_VOLUME)
    pd.testing.assert_frame_equal(result.units, expected.units, rtol=1e-12)
    pd.testing.assert_frame_equal(result.limits, expected.limits, rtol=1e-12)
    pd.testing.assert_frame_equal(table, caterpillar(selected, unit, "cement_leakage",
                                                     adjust=adjusted, model=model), rtol=1e-12)
    n = int(selected.loc[selected[unit] == chosen, "cement_leakage"].notna().sum())
    plain = cusum(selected, unit, chosen, "cement_leakage", adjust=adjusted, model=model)
    assert chart.n == plain.n == n
    assert (chart.threshold_upper, chart.threshold_lower) == (plain.threshold_upper,
                                                              plain.threshold_lower)
    assert chart.chart["record_id"].tolist() == plain.chart["record_id"].tolist()
    np.testing.assert_allclose(chart.chart["upper"], plain.chart["upper"], rtol=1e-12)
    pd.testing.assert_frame_equal(chart.signals, plain.signals)


@pytest.mark.parametrize("seed", [3, 7])
def test_elevated_facilities_are_flagged_high_on_demo_data(seed):
    from dashboard.figures.quality import funnel_figure
    from dashboard.pages.quality import funnel_result

    records = demo_records(5000, seed=seed)
    for adjust in (True, False):
        result, failed = funnel_result(records, "facility_id", "cement_leakage", adjust, "none")
        assert failed is None and result.adjusted == adjust
        assert flagged_high(funnel_figure(result)) >= set(ELEVATED_LEAKAGE_FACILITIES)


def test_tiny_facility_is_suppressed_everywhere(app_and_records):
    from dashboard.pages.quality import update_caterpillar, update_cusum

    app, records = app_and_records
    stats, funnel, text, table, options, chosen = run(app)
    tiny = grid_rows(table)["FAC-TINY"]
    assert tiny["n"] == "<11" and tiny["events"] in ("<11", "0")
    assert all(tiny[c] is None for c in ("rate", "expected", "oe", "oe_ci", "z", "p_adjusted"))
    figure = find_by_id(funnel, "quality-funnel-graph").figure
    hover = " ".join(str(h) for t in figure.data for h in (t.hovertext or ()))
    assert "FAC-TINY" not in hover
    option = next(o for o in options if o["value"] == "FAC-TINY")
    assert option["disabled"] and "6" not in option["label"]
    with app.server.app_context():
        cat = update_caterpillar({}, "cement_leakage", "facility_id", "adjusted")
        chart = update_cusum("FAC-TINY", {}, "cement_leakage", "facility_id", "adjusted")
    cat_figure = find_by_id(cat, "quality-caterpillar-graph").figure
    assert "FAC-TINY" not in " ".join(str(h) for t in cat_figure.data for h in (t.hovertext or ()))
    assert find_by_id(chart, "quality-cusum-graph") is None
    assert "suppressed" in " ".join(texts(chart))
    # The tiny facility alone: six records, nothing reveals the count.
    only = RecordFilter(facilities=("FAC-TINY",))
    words = adjustment(app, only)
    assert "Risk adjustment was requested but is not possible" in words
    shown = " ".join(texts(list(run(app, only)[:4]))) + " " + words
    assert " 6 " not in shown and "6 of" not in shown and "6 record" not in shown


def test_cusum_equals_analysis(app_and_records):
    from dashboard.pages.quality import update_cusum

    app, records = app_and_records
    selection = ALL  # the same view as the report's, which then reuses the cached chart
    chosen = run(app, selection)[5]
    with app.server.app_context():
        card = update_cusum(chosen, selection.to_dict(), "cement_leakage", "facility_id",
                            "adjusted")
    chosen_records = apply_filter(records, selection)
    n = int(chosen_records.loc[chosen_records.facility_id == chosen, "cement_leakage"]
            .notna().sum())
    expected = cusum(chosen_records, "facility_id", chosen, "cement_leakage")
    figure = find_by_id(card, "quality-cusum-graph").figure
    upper = next(t for t in figure.data if t.name == "Upper CUSUM")
    np.testing.assert_allclose(np.asarray(upper.y, dtype=float), expected.chart["upper"])
    words = " ".join(texts(card))
    assert expected.threshold_method == "false_alarm" and expected.n == n
    assert f"h⁺ = {expected.threshold_upper:.2f}" in words and "Markov-chain" in words
    # Issue 12 item 4: the in-control false-alarm probability is shown next to the chart.
    assert (f"{100 * expected.false_alarm_upper:.1f}% for the upper chart and "
            f"{100 * expected.false_alarm_lower:.1f}% for the lower chart") in words
    assert "at most 5% together" in words
    assert "unlikely" not in words


def test_empty_selection_is_a_message(app_and_records):
    app, _ = app_and_records
    from dashboard.pages.quality import update_quality

    empty = RecordFilter(countries=("ZW",))
    stats, funnel, text, table, options, chosen = run(app, empty)
    assert "No records match the current filters." in texts(stats)
    assert options == [] and chosen is None
    assert adjustment(app, empty) == ""
    with app.server.app_context():
        style = update_quality(empty.to_dict(), "cement_leakage", "facility_id", "adjusted",
                               "none", None)[6]
    assert style == {"display": "none"}


def test_failed_adjustment_falls_back_to_crude_and_says_so():
    from dashboard.figures.quality import interpretation
    from dashboard.pages.quality import MODEL_FAILED, funnel_result

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"facility_id": np.repeat(["A", "B", "C"], 20),
                          "age": rng.integers(60, 90, 60),
                          "cement_leakage": [True] * 5 + [False] * 55})
    result, failed = funnel_result(frame, "facility_id", "cement_leakage", True, "none")
    assert not result.adjusted and failed == MODEL_FAILED
    words = " ".join(interpretation(result, None, failed))
    assert "requested but is not possible" in words and "5 event" not in words


def test_results_are_cached(app_and_records, monkeypatch):
    app, _ = app_and_records
    calls = []
    from dashboard.pages import quality

    original = quality.risk_model  # the page fits once through _fit and passes the fit on

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(quality, "risk_model", counting)
    selection = RecordFilter(countries=("DE",))
    run(app, selection, outcome="non_response")
    fitted = len(calls)
    assert fitted >= 1
    run(app, selection, outcome="non_response")  # same view again: no refit
    assert len(calls) == fitted


def test_report_sections_and_download(app_and_records):
    from dashboard.layout import download_report
    from dashboard.pages.quality import quality_report

    app, _ = app_and_records
    with app.server.app_context():
        sections = quality_report(ALL)  # the download below reuses the cached results
        sent = download_report(1, "/quality", {})
    titles = [s.title for s in sections]
    assert titles[:3] == ["How to read these results", "Funnel plot", "Units"]
    assert any(t.startswith("Risk-adjusted CUSUM") for t in titles)
    assert all(s.figure is not None for s in sections[1:2] + sections[3:])
    document = sent["content"]
    assert sent["filename"].startswith("quality-monitoring-report-")
    assert re.search(r"<td>FAC-TINY</td>\s*<td>&lt;11</td>", document)
    assert "<td>None</td>" not in document


def test_the_risk_model_is_fitted_once_for_all_views(app_and_records, monkeypatch):
    """Funnel, caterpillar and CUSUM for one filter and outcome share one fit."""
    from dashboard.pages import quality

    app, _records = app_and_records
    calls = []
    real = quality.risk_model
    monkeypatch.setattr(quality, "risk_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    applied = []
    real_apply = quality.apply_risk_model
    monkeypatch.setattr(quality, "apply_risk_model",
                        lambda *a, **k: applied.append(1) or real_apply(*a, **k))
    for cache in (quality._reference_fit, quality._applied_fit, quality._funnel,
                  quality._caterpillar, quality._cusum, quality._model, quality._excluded):
        cache.cache_clear()
    selection = RecordFilter(countries=("US",))
    with app.server.app_context():
        key = quality._store_key()
        quality._funnel(*key, selection, "facility_id", "cement_leakage", True, "none")
        quality._caterpillar(*key, selection, "facility_id", "cement_leakage", True)
        quality._model(*key, selection, "cement_leakage")
        quality._cusum(*key, selection, "facility_id", "FAC-009", "cement_leakage", True)
        excluded = quality._excluded(*key, selection, "facility_id", "cement_leakage")
    assert len(calls) == 1
    # ... and, when no unit is left out, one recalibration to the selection serves the
    # funnel, the caterpillar, the CUSUM and the adjustment summary alike.
    assert excluded == () and len(applied) == 1


def test_table_shows_completeness_per_unit(app_and_records):
    """Pain non-response is monitored on the patients with a month-1 score: the table shows
    each unit's share with a score, hidden when it would reveal 1-10 records."""
    from analysis.quality import outcome_completeness

    app, records = app_and_records
    _stats, _funnel, _text, table, _options, _chosen = run(app, outcome="non_response",
                                                           adjust="crude")
    rows = grid_rows(table)
    expected = outcome_completeness(records, "facility_id", "non_response").set_index("unit")
    shown = 0
    for unit, row in rows.items():
        raw = expected.loc[unit]
        missing = raw.n_eligible - raw.n_recorded
        if 1 <= raw.n_eligible <= 10 or 1 <= missing <= 10:
            assert row["completeness"] is None
        else:
            assert row["completeness"] == round(100 * raw.completeness, 1)
            shown += 1
    assert shown > 10
    assert "share with a month-1 score" in " ".join(texts(table))
# ------------------------------------------------------------------- issue 12, items 2 and 4
def test_new_fracture_on_demo_data_is_monitored_per_person_time(app_and_records):
    """The demo has no facility effect on new fractures. Today's code (the proportion ever
    recorded) flags 8 of 40 facilities at 20,000 records (2 alarms) and O/E follows each
    facility's median follow-up (Spearman 0.78-0.80); per person-time neither happens."""
    import scipy.stats as st

    from dashboard.pages.quality import funnel_result

    records = demo_records(20_000)
    follow_up = records.groupby("facility_id", observed=True)["followup_days"].median()
    reference = risk_model(records, "adjacent_fracture")
    assert reference.family == "poisson" and "procedure" not in reference.formula
    for adjust in (True, False):
        result, failed = funnel_result(records, "facility_id", "adjacent_fracture", adjust,
                                       "none", reference if adjust else None)
        assert failed is None and result.measure == "rate"
        units = result.units.set_index("unit")
        rho = st.spearmanr(units["oe"], follow_up.loc[units.index])[0]
        assert abs(rho) < 0.5, (adjust, rho)
        tested = units[units["flag"] != "low_volume"]
        # ~2 alerts and ~0.08 alarms expected by chance among 40 units.
        assert (tested["flag"] != "within").sum() <= 5
        assert tested["flag"].str.startswith("alarm").sum() <= 1


def test_page_defaults_and_new_options(app_and_records):
    from dashboard.pages import quality

    def control_values(layout) -> dict:
        values = {}
        stack = [layout]
        while stack:
            node = stack.pop()
            if getattr(node, "id", None) in ("quality-overdispersion", "quality-procedure",
                                             "quality-false-alarm"):
                # Kept in the URL, not in browser storage (which would override a shared link).
                values[node.id] = (node.value, getattr(node, "persistence", None))
            children = getattr(node, "children", None)
            stack.extend(children if isinstance(children, list) else [children] if children else [])
        return values

    assert control_values(quality.layout()) == {"quality-overdispersion": ("additive", None),
                                                 "quality-procedure": ("no", None),
                                                 "quality-false-alarm": ("0.05", None)}
    assert control_values(quality.layout(od="none", proc="yes", alarm="0.1")) == {
        "quality-overdispersion": ("none", None), "quality-procedure": ("yes", None),
        "quality-false-alarm": ("0.1", None)}
    app, _ = app_and_records
    words = adjustment(app)
    assert "not the procedure" in words
    with app.server.app_context():
        with_procedure = " ".join(texts(quality.update_adjustment(
            ALL.to_dict(), "cement_leakage", "facility_id", "adjusted", "yes")))
    assert "procedure (VP/KP: the option is on)" in with_procedure
    _stats, _funnel, text, *_ = run(app, overdispersion="additive")
    assert "Active over-dispersion model:" in " ".join(texts(text))


def test_new_fracture_view_states_the_person_time_method(app_and_records):
    from dashboard.pages.quality import update_cusum

    app, _ = app_and_records
    stats, funnel, text, table, options, chosen = run(app, outcome="adjacent_fracture")
    words = " ".join(texts(text))
    assert "time at risk" in words and "Poisson" in words
    assert "per 100 person-years" in " ".join(texts(stats))
    figure = find_by_id(funnel, "quality-funnel-graph").figure
    assert "person-years" in figure.layout.xaxis.title.text
    with app.server.app_context():
        card = update_cusum(chosen, ALL.to_dict(), "adjacent_fracture", "facility_id",
                            "adjusted", "no", "0.05")
    card_words = " ".join(texts(card))
    assert "within 12 months" in card_words and "chance of at least one false signal" in card_words
# -- issue 13: the funnel reveals no hidden unit -------------------------------------------

def test_a_hidden_unit_is_listed_as_hidden_and_left_out_of_the_target(app_and_records):
    """FAC-TINY (6 cases) beside one large facility: the pooled target of both would give
    FAC-TINY's events (target × N − the large unit's shown events); the target is the shown
    unit's own rate, the limits span its volume only, and FAC-TINY is listed as hidden."""
    app, records = app_and_records
    big = records[records.facility_id != "FAC-TINY"].facility_id.value_counts().index[0]
    selection = RecordFilter(facilities=("FAC-TINY", big))
    stats, funnel, text, table, _options, _chosen = run(app, selection, adjust="crude")
    selected = apply_filter(records, selection)
    shown = selected[selected.facility_id == big]["cement_leakage"].dropna().astype(float)
    both = selected["cement_leakage"].dropna().astype(float)
    assert f"{100 * shown.mean():.1f}" != f"{100 * both.mean():.1f}"  # the test can fail
    assert texts(find_by_id(stats, "quality-target")) == [f"{100 * shown.mean():.1f}%"]
    rows = grid_rows(table)
    assert rows["FAC-TINY"]["n"] == "<11" and rows["FAC-TINY"]["flag"] == "Hidden (small counts)"
    assert rows["FAC-TINY"]["rate"] is None
    assert "1 with counts hidden" in " ".join(texts(stats))
    figure = find_by_id(funnel, "quality-funnel-graph").figure
    limit_x = [x for t in figure.data if "limits" in (t.name or "") for x in t.x]
    assert min(limit_x) == pytest.approx(0.5 * len(shown))
    assert max(limit_x) == pytest.approx(1.1 * len(shown))
    assert "left out of the target" in " ".join(texts(text))


def test_every_unit_hidden_shows_no_target_nor_limits(app_and_records):
    app, _records = app_and_records
    stats, funnel, _text, table, options, chosen = run(
        app, RecordFilter(facilities=("FAC-TINY",)), adjust="crude")
    words = " ".join(texts(stats))
    assert "none can be plotted" in words and "%" not in words
    assert funnel is None and chosen is None
    assert grid_rows(table)["FAC-TINY"]["flag"] == "Hidden (small counts)"
    assert all(option["disabled"] for option in options)
