"""Durations and resources page: callbacks called as functions with filter states."""

from __future__ import annotations

import numpy as np

from analysis.filters import RecordFilter, apply_filter
from analysis.means import compare_means
from analysis.outcomes import resource_summary, setting_mix
from tests.dash_tree import find_by_id, grid_rows, texts


def render(app, selection: RecordFilter):
    from dashboard.pages.durations import update_durations

    with app.server.app_context():
        return update_durations(selection.to_dict())


def test_numbers_equal_analysis(dashboard_app):
    app, records = dashboard_app
    selection = RecordFilter(countries=("US",))
    page = render(app, selection)
    chosen = apply_filter(records, selection)
    duration = chosen["duration_min"].astype(float)
    kp = duration[chosen.procedure == "kyphoplasty"].dropna()
    vp = duration[chosen.procedure == "vertebroplasty"].dropna()
    expected = compare_means(kp, vp)
    assert texts(find_by_id(page, "durations-md")) == [f"{expected.mean_difference:+.1f} min"]
    assert texts(find_by_id(page, "durations-hl")) == [f"{expected.hodges_lehmann:+.1f} min"]
    assert f"{expected.md_low:+.1f} to {expected.md_high:+.1f}" in \
        texts(find_by_id(page, "durations-md-detail"))[0]

    mix = setting_mix(chosen)
    kp_mix = mix[mix.procedure.astype(str) == "kyphoplasty"].iloc[0]
    assert texts(find_by_id(page, "durations-outpatient-kp")) == [
        f"{100 * kp_mix.share_outpatient:.1f}%"]

    summary = resource_summary(chosen, by=("procedure",))
    rows = grid_rows(page, "durations-summary")
    for variable, measure in (("duration_min", "Duration (min)"), ("cement_volume_ml", "Cement (mL)")):
        want = summary[(summary.variable == variable)
                       & (summary.procedure.astype(str) == "vertebroplasty")].iloc[0]
        got = [r for r in rows if r["measure"] == measure and r["group"] == "all"
               and r["procedure"] == "VP"][0]
        assert got["n"] == f"{int(want.n):,}"
        assert got["median_iqr"].startswith(f"{want['median']:.{1 if 'mL' in measure else 0}f} [")

    # Box plots carry statistics, never record values.
    graph = find_by_id(page, "durations-levels")
    boxes = [trace for trace in graph.figure["data"] if trace["type"] == "box"]
    assert boxes and all(trace["y"] is None for trace in boxes)


def test_tiny_facility_is_suppressed(dashboard_app):
    app, records = dashboard_app
    selection = RecordFilter(facilities=("FAC-TINY",))
    assert len(apply_filter(records, selection)) == 6
    page = render(app, selection)
    assert texts(find_by_id(page, "durations-outpatient-vp")) == ["<11"]
    assert texts(find_by_id(page, "durations-md")) == ["–"]
    rows = grid_rows(page, "durations-summary")
    assert rows and all(r["n"] in ("<11", "0") for r in rows)
    assert all(r["mean_sd"] is None and r["median_iqr"] is None for r in rows)
    for graph_id in ("durations-resources", "durations-levels", "durations-anesthesia"):
        figure = find_by_id(page, graph_id).figure
        assert not [t for t in figure["data"] if t["type"] == "box"]
    setting_rows = grid_rows(page, "durations-setting-table")
    assert all(r["outpatient_share"] is None for r in setting_rows)


def test_subsample_when_groups_are_large(dashboard_app, monkeypatch):
    from dashboard.pages import durations

    app, records = dashboard_app
    monkeypatch.setattr(durations, "SUBSAMPLE_MAX", 100)
    frame = durations.resource_frame(records)
    result, note = durations.duration_difference(frame)
    assert result.n1 == 100 and result.n2 == 100
    assert "random subsample of 100 durations per procedure" in note
    again, _ = durations.duration_difference(frame)
    assert again == result  # seeded: the page shows the same numbers on every refresh
    rng = np.random.default_rng(durations.SUBSAMPLE_SEED)
    kp = frame.loc[frame.procedure == "kyphoplasty", "duration_min"].dropna().to_numpy()
    vp = frame.loc[frame.procedure == "vertebroplasty", "duration_min"].dropna().to_numpy()
    expected = compare_means(rng.choice(kp, 100, replace=False), rng.choice(vp, 100, replace=False))
    assert result == expected


def test_empty_selection_is_a_message(dashboard_app):
    app, _ = dashboard_app
    page = render(app, RecordFilter(countries=("ZW",)))
    assert "No records match the current filters." in texts(page)


def test_report_has_sections_and_is_suppressed(dashboard_app):
    from dashboard.layout import download_report
    from dashboard.pages.durations import durations_report

    app, _ = dashboard_app
    with app.server.app_context():
        sections = durations_report(RecordFilter(countries=("GB",)))
        sent = download_report(1, "/durations", RecordFilter(facilities=("FAC-TINY",)).to_dict())
    assert len(sections) == 6 and sections[1].figure is not None
    assert sections[-1].table is not None and len(sections[-1].table)
    assert sent["filename"].startswith("durations-and-resources-report-")
    assert "<td>&lt;11</td>" in sent["content"]
