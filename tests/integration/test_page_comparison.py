"""The "VP vs KP statistics" page: callbacks called as functions with filter states, their
numbers against ``analysis`` on the same selection, suppression, and the on-disk cache."""

from __future__ import annotations

import time

import pytest

from analysis.adjustment import propensity_weights
from analysis.comparison import compare_procedures, minimum_detectable_differences
from analysis.filters import RecordFilter, apply_filter
from analysis.table_one import table_one
from dashboard.figures import comparison as fig
from tests.dash_tree import find_by_id, graph, grid_rows, texts
from tests.integration.conftest import TINY_FACILITY

US = RecordFilter(countries=("US",))
TINY = RecordFilter(facilities=(TINY_FACILITY,))
NOBODY = RecordFilter(facilities=("NO-SUCH-FACILITY",))


def page():
    from dashboard.pages import comparison

    return comparison


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """A cache of this module's own (the app's real one lives in instance/cache)."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("comparison-cache")
        patch.setenv("VA_CACHE_DIR", str(path))
        yield path


def test_effects_equal_analysis(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        body = page().update_effects(US.to_dict(), 0.95)
    expected = compare_procedures(apply_filter(records, US), adjust=True)
    rows = {r["Outcome"]: r for r in grid_rows(body, "comparison-effects")}
    assert len(rows) == len(expected)
    chosen = apply_filter(records, US)
    vp_embolisms = int(chosen.loc[chosen.procedure == "vertebroplasty", "pulmonary_embolism"].sum())
    assert 1 <= vp_embolisms <= 10  # so this selection also shows a suppressed outcome
    for r in expected.itertuples():
        shown = rows[r.definition]
        assert shown["n VP"] == f"{r.n_vp:,}" and shown["n KP"] == f"{r.n_kp:,}"
        if r.outcome == "pulmonary_embolism":
            assert shown["VP"] == shown["Adjusted (95% CI, clustered by facility)"] == "suppressed"
            assert shown["p (BH)"] == ""
        else:
            assert shown["p (BH)"] == fig.p_text(r.p_bh)
    leakage = expected[expected.outcome == "cement_leakage"].iloc[0]
    shown = rows[leakage.definition]
    assert shown["Adjusted (95% CI, clustered by facility)"].startswith(f"RD {fig.signed(100 * leakage.adjusted, 1)} pp")
    assert shown["Unadjusted (95% CI, clustered by facility)"].startswith(
        f"RD {fig.signed(100 * leakage.unadjusted, 1)} pp"
    )
    assert shown["IPTW p"] == fig.p_text(leakage.p_iptw)
    # The g-computation interval is analytic: the page says it has no Monte-Carlo error.
    assert "influence-function (sandwich) variance" in shown["Adjusted method"]
    assert "no Monte-Carlo error" in shown["Adjusted method"]
    forest = graph(body, "comparison-forest")
    adjusted = [x for t in forest.data if t.name == "Adjusted (model-based)" for x in t.x]
    assert any(abs(x - 100 * leakage.adjusted) < 1e-9 for x in adjusted)
    summary = find_by_id(body, "comparison-forest-summary").children
    assert f"Cement leakage adjusted {fig.signed(100 * leakage.adjusted, 1)} pp" in summary


def test_confidence_level_control(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        body = page().update_effects(US.to_dict(), 0.9)
    expected = compare_procedures(apply_filter(records, US), outcomes=["duration_min"], level=0.9)
    row = expected.iloc[0]
    shown = [r for r in grid_rows(body, "comparison-effects") if r["Outcome"] == row.definition][0]
    assert shown["Adjusted (90% CI, clustered by facility)"] == (
        f"MD {fig.signed(row.adjusted, 1)} min ({fig.plain(row.adjusted_low, 1)} to "
        f"{fig.plain(row.adjusted_high, 1)})"
    )


def test_cluster_control(dashboard_app):
    # Default: intervals clustered by facility (issue 12 item 5); the switch turns it off.
    app, records = dashboard_app
    with app.server.app_context():
        clustered = page().update_effects(US.to_dict(), 0.95, True)
        model_based = page().update_effects(US.to_dict(), 0.95, False)
    chosen = apply_filter(records, US)
    for body, cluster, header in (
        (clustered, "facility_id", "Adjusted (95% CI, clustered by facility)"),
        (model_based, None, "Adjusted (95% CI)"),
    ):
        row = compare_procedures(chosen, outcomes=["duration_min"], cluster=cluster).iloc[0]
        shown = [r for r in grid_rows(body, "comparison-effects") if r["Outcome"] == row.definition]
        assert shown[0][header] == (
            f"MD {fig.signed(row.adjusted, 1)} min ({fig.plain(row.adjusted_low, 1)} to "
            f"{fig.plain(row.adjusted_high, 1)})"
        )
    assert "clustered by facility" in find_by_id(clustered, "comparison-cluster-text").children
    assert "model-based" in find_by_id(model_based, "comparison-cluster-text").children


def test_baseline_equal_analysis(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        table, diagnostics = page().update_baseline(US.to_dict())
    chosen = apply_filter(records, US)
    ps = propensity_weights(chosen)
    raw, weighted = table_one(chosen), table_one(chosen, weights=ps)
    rows = grid_rows(table, "comparison-table-one")
    assert rows[0]["VP"] == f"{(chosen.procedure == 'vertebroplasty').sum():,}"
    assert rows[0]["KP"] == f"{(chosen.procedure == 'kyphoplasty').sum():,}"
    age = [r for r in rows if r["Characteristic"].startswith("Age")][0]
    raw_age, weighted_age = (t[t.variable == "age"].iloc[0] for t in (raw, weighted))
    assert (
        age["KP"] == raw_age.kyphoplasty and age["KP (IPTW)"] == weighted_age.kyphoplasty_weighted
    )
    assert age["SMD"] == fig.plain(raw_age.smd, 3)
    assert age["SMD (IPTW)"] == fig.plain(weighted_age.smd_weighted, 3)
    # Table 1 leads with the SMDs; baseline p-values only when the switch is on.
    assert list(rows[0])[:4] == ["Characteristic", "VP", "KP", "SMD"] and "p-value" not in age
    assert "the switch above adds them" in " ".join(texts(table))
    with app.server.app_context():
        with_p, _ = page().update_baseline(US.to_dict(), True)
    tested = table_one(chosen, p_values=True)
    age_p = [r for r in grid_rows(with_p, "comparison-table-one")
             if r["Characteristic"].startswith("Age")][0]
    assert age_p["p-value"] == fig.p_text(tested[tested.variable == "age"].iloc[0].p_value)
    balance = {r["Covariate"]: r for r in grid_rows(diagnostics, "comparison-balance")}
    age_balance = ps.balance[ps.balance.covariate == "age"].iloc[0]
    assert balance["Age"]["SMD before"] == fig.plain(age_balance.smd_before, 3)
    assert balance["Age"]["SMD after IPTW"] == fig.plain(age_balance.smd_after, 3)
    weights = {r["Group"]: r for r in grid_rows(diagnostics, "comparison-weights")}
    ess = ps.weight_summary.set_index("group").loc["all", "ess"]
    assert weights["All"]["Effective sample size"] == f"{ess:,.0f}"
    overlap = graph(diagnostics, "comparison-overlap")
    drawn = sum(abs(y) for t in overlap.data if t.type == "bar" for y in t.y)
    assert drawn <= ps.scores.notna().sum()
    assert find_by_id(diagnostics, "comparison-positivity") is not None


def test_mdd_equal_analysis(dashboard_app):
    app, records = dashboard_app
    with app.server.app_context():
        body = page().update_mdd(US.to_dict())
    mdd = minimum_detectable_differences(apply_filter(records, US))
    leak = mdd[mdd.outcome == "cement_leakage"].iloc[0]
    row = [r for r in grid_rows(body, "comparison-mdd") if r["Outcome"] == "Cement leakage"][0]
    assert row["Smallest detectable increase"] == f"+{100 * leak.mdd_increase:.1f} pp"
    assert row["n KP"] == f"{leak.n_kp:,}"


def test_tiny_facility_is_suppressed(dashboard_app):
    app, _ = dashboard_app
    with app.server.app_context():
        effects = page().update_effects(TINY.to_dict(), 0.95)
        table, diagnostics = page().update_baseline(TINY.to_dict())
        mdd = page().update_mdd(TINY.to_dict())
    for row in grid_rows(effects, "comparison-effects"):
        assert row["n VP"] == "<11" and row["n KP"] == "0"
        # One facility: nothing to cluster, so the intervals are model-based.
        assert row["VP"] == "suppressed" and row["Adjusted (95% CI)"] == "suppressed"
    shown = " ".join(str(v) for r in grid_rows(effects, "comparison-effects") for v in r.values())
    assert "/6 " not in shown and " 6 " not in shown
    assert "suppressed" in find_by_id(effects, "comparison-forest-summary").children
    rows = grid_rows(table, "comparison-table-one")
    assert rows[0]["VP"] == "<11"
    assert {r["VP"] for r in rows} <= {"<11", "", "–"}
    assert "Balance and overlap are not available" in " ".join(texts(diagnostics))
    assert {r["n VP"] for r in grid_rows(mdd, "comparison-mdd")} == {"<11"}


def test_empty_selection(dashboard_app):
    app, _ = dashboard_app
    with app.server.app_context():
        effects = page().update_effects(NOBODY.to_dict(), 0.95)
        table, diagnostics = page().update_baseline(NOBODY.to_dict())
        mdd = page().update_mdd(NOBODY.to_dict())
    for component in (effects, table, mdd):
        assert "No records match the current filters." in texts(component)
    assert diagnostics is None


def test_second_call_is_served_from_the_cache(dashboard_app, monkeypatch):
    app, _ = dashboard_app
    calls = []
    original = fig.compare_procedures
    monkeypatch.setattr(
        fig, "compare_procedures", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    state = RecordFilter(countries=("DE",)).to_dict()
    selection = RecordFilter.from_dict(state)
    with app.server.app_context():
        first = page().update_effects(state, 0.95)
        second = page().update_effects(dict(reversed(list(state.items()))), 0.95)
        page().update_effects(state, 0.99)  # another level is another result
        assert len(calls) == 2
        # Time the cached analysis itself (building the figures is not cached and, for a small
        # selection, costs about as much as the analysis, so whole-callback times mislead).
        start = time.perf_counter()
        page().comparison(RecordFilter(countries=("GB",)), 0.95)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        page().comparison(selection, 0.95)
        warm = time.perf_counter() - start
    assert len(calls) == 3
    assert grid_rows(first, "comparison-effects") == grid_rows(second, "comparison-effects")
    assert warm < cold / 3


def test_new_import_recomputes(tmp_path, monkeypatch):
    from dashboard.app_factory import create_app
    from data import import_dataframe, store
    from data.demo import demo_records

    store.dispose_engines()
    database = f"sqlite:///{tmp_path / 'store.db'}"
    import_dataframe(demo_records(400, seed=2), "demo", database, synthetic=True)
    app = create_app(database)
    calls = []
    original = fig.baseline_analysis
    monkeypatch.setattr(fig, "baseline_analysis", lambda r: calls.append(len(r)) or original(r))
    from dashboard.compute_cache import data_key

    try:
        with app.server.app_context():
            before = data_key()
            page().update_baseline(None)
            page().update_baseline(None)
            assert calls == [400]
            more = demo_records(60, seed=9).assign(
                record_id=lambda f: "NEW-" + f.record_id.astype(str),
                patient_id=lambda f: "NEW-" + f.patient_id.astype(str),
            )
            key = page().MANAGER.build_cache_key(page().update_baseline, [None], [], None)
            import_dataframe(more, "second", database, synthetic=True)
            assert data_key() != before
            # Dash's result cache misses too: its key includes the data version.
            assert page().MANAGER.build_cache_key(page().update_baseline, [None], [], None) != key
            table, _ = page().update_baseline(None)
        assert calls == [400, 460]
        assert grid_rows(table, "comparison-table-one")[0]["VP"] != ""
    finally:
        store.dispose_engines()


def test_report_sections(dashboard_app):
    app, _ = dashboard_app
    with app.server.app_context():
        sections = page().comparison_report(US)
        tiny = page().comparison_report(TINY)
        empty = page().comparison_report(NOBODY)
    titles = [s.title for s in sections]
    assert titles[:2] == [
        "Baseline characteristics by procedure (Table 1)",
        "Effects of KP compared with VP",
    ]
    assert any("balance" in t for t in titles) and any("detectable" in t for t in titles)
    assert sections[1].figure is not None and sections[1].table is not None
    assert tiny[0].table.iloc[0]["VP"] == "<11"
    assert empty[0].title == "No records"


def test_background_callbacks_cache_by_data_version(dashboard_app):
    """Dash's own result cache: keyed by the inputs and the data version, on the shared disk."""
    from dashboard.compute_cache import cache_dir, data_key

    app, _ = dashboard_app
    manager = page().MANAGER
    assert data_key in manager.cache_by
    assert manager.handle.directory == str(cache_dir())
    assert manager.handle.size_limit == 200 * 2**20
    with app.server.app_context():
        key = manager.build_cache_key(page().update_effects, [US.to_dict(), 0.95], [], None)
        again = manager.build_cache_key(page().update_effects, [US.to_dict(), 0.95], [], None)
        other = manager.build_cache_key(page().update_effects, [TINY.to_dict(), 0.95], [], None)
    assert key == again != other


def test_effects_grid_two_lines_and_methods_list(dashboard_app):
    """Issue 14 item 4: the effects grid shows each effect over its interval with its p (the
    assets' VaEffectCell does the same split), hides the methods, notes, n, p and IPTW columns
    (kept in its data for the CSV) and lists every outcome's methods and notes under it."""
    app, records = dashboard_app
    assert page().effect_lines("RD −15.6 pp (−19.1 to −12.1)", "<0.001") == (
        "RD −15.6 pp, p <0.001", "(−19.1 to −12.1)")
    assert page().effect_lines("ratio of means 1.43 (1.36 to 1.51)", "0.002") == (
        "ratio of means 1.43", "(1.36 to 1.51), p 0.002")
    assert page().effect_lines("suppressed", "") == ("suppressed", "")
    with app.server.app_context():
        body = page().update_effects(US.to_dict(), 0.95)
    grid = find_by_id(body, {"type": "data-grid", "name": "comparison-effects"})
    ci = "95% CI, clustered by facility"
    hidden = {c["field"] for c in grid.columnDefs if c.get("hide")}
    assert hidden == {"n VP", "n KP", "Unadjusted p", "Adjusted p", "IPTW p", f"IPTW ({ci})",
                      "Unadjusted method", "Adjusted method", "Notes"}
    renderers = {c["field"]: c.get("cellRenderer") for c in grid.columnDefs if not c.get("hide")}
    assert renderers[f"Adjusted ({ci})"] == "VaEffectCell" and renderers["VP"] == "VaGroupCell"
    methods = find_by_id(body, "comparison-effects-methods")
    shown = " ".join(texts(methods))
    for row in grid_rows(body, "comparison-effects"):
        assert row["Outcome"] in shown and row["Adjusted method"] in shown
        if row[f"IPTW ({ci})"]:
            assert f"{row[f'IPTW ({ci})']}, p {row['IPTW p']}" in shown
    assert "IPTW" in shown
    stacked = find_by_id(body, "comparison-effects-list")
    assert len(stacked.children) == len(grid.rowData)
