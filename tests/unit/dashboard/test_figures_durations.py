"""Pure figure and table builders of the Durations and resources page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.means import compare_means
from analysis.outcomes import resource_summary, setting_mix
from dashboard.figures import durations as fig


def records(groups: dict[tuple[str, int, str | None], list[float]]) -> pd.DataFrame:
    """Records with the columns the page reads: (procedure, levels, anaesthesia) -> durations."""
    rows = []
    for (procedure, levels, anesthesia), durations in groups.items():
        for value in durations:
            rows.append({"procedure": procedure, "levels_treated": levels,
                         "anesthesia": anesthesia, "duration_min": value,
                         "cement_volume_ml": value / 10, "length_of_stay_days": 1.0,
                         "setting": "outpatient" if value < 40 else "inpatient"})
    frame = pd.DataFrame(rows)
    frame["levels_treated"] = frame["levels_treated"].astype("Int64")
    frame["anesthesia"] = frame["anesthesia"].astype("category")
    return frame


@pytest.fixture
def sample() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    big_vp = list(np.round(rng.normal(30, 6, 200)))
    big_kp = list(np.round(rng.normal(40, 8, 150))) + [120.0, 2.0]  # two outliers
    tiny = [77.0, 78.0, 79.0, 81.0, 83.0]  # 5 KP with 3+ levels: must be suppressed
    return records({("vertebroplasty", 1, "sedation"): big_vp,
                    ("kyphoplasty", 1, "general"): big_kp,
                    ("kyphoplasty", 4, None): tiny})


def test_resource_frame_groups_levels_and_anaesthesia(sample):
    frame = fig.resource_frame(sample)
    assert list(frame["levels_group"].cat.categories) == ["1", "2", "3+", "not recorded"]
    assert (frame.loc[sample["levels_treated"] == 4, "levels_group"] == "3+").all()
    assert (frame.loc[sample["anesthesia"].isna(), "anesthesia"] == "not recorded").all()


def test_box_statistics_match_resource_summary_and_tukey_whiskers(sample):
    frame = fig.resource_frame(sample)
    stats = fig.box_statistics(frame, ("procedure",), "duration_min")
    expected = resource_summary(frame, by=("procedure",), variables=["duration_min"])
    for column in ("n", "median", "q1", "q3", "mean"):
        assert np.allclose(stats[column].astype(float), expected[column].astype(float))
    for _, row in stats.iterrows():
        values = frame.loc[frame["procedure"] == row["procedure"], "duration_min"]
        iqr = row.q3 - row.q1
        assert row.lowerfence == values[values >= row.q1 - 1.5 * iqr].min()
        assert row.upperfence == values[values <= row.q3 + 1.5 * iqr].max()
    kp = stats[stats["procedure"] == "kyphoplasty"].iloc[0]
    assert kp.upperfence < 120 and kp.lowerfence > 2  # the outliers are beyond the whiskers


def test_grouped_box_figure_sends_statistics_only_and_suppresses_small_groups(sample):
    frame = fig.resource_frame(sample)
    stats = fig.box_statistics(frame, ("procedure", "levels_group"), "duration_min")
    figure = fig.grouped_box_figure(stats, "levels_group")
    boxes = [trace for trace in figure.data if trace.type == "box"]
    assert boxes and all(trace.y is None for trace in boxes)  # no raw points
    drawn = {(trace.name, x) for trace in boxes for x in trace.x}
    assert ("KP", "3+") not in drawn  # 5 values: suppressed
    assert ("KP", "1") in drawn and ("VP", "1") in drawn
    tiny = stats[(stats["procedure"] == "kyphoplasty") & (stats["levels_group"] == "3+")].iloc[0]
    shown = [v for trace in boxes for v in (*trace.median, *trace.mean, *trace.q1, *trace.q3,
                                             *trace.lowerfence, *trace.upperfence)]
    for value in (tiny["median"], tiny["mean"], tiny["q1"], tiny["q3"], 77.0, 83.0):
        assert value not in shown
    notes = " ".join(a.text for a in figure.layout.annotations)
    assert "<11" in notes and "KP: 3+" in notes


def test_summary_table_suppresses_small_groups(sample):
    frame = fig.resource_frame(sample)
    stats = fig.box_statistics(frame, ("procedure", "levels_group"), "duration_min")
    table = fig.summary_table([("duration_min", "levels_group", stats)])
    tiny = table[(table["procedure"] == "KP") & (table["group"] == "levels treated: 3+")].iloc[0]
    assert tiny["n"] == "<11" and tiny["mean_sd"] is None and tiny["median_iqr"] is None
    big = table[(table["procedure"] == "VP")].iloc[0]
    assert big["n"] == "200" and big["median_iqr"].startswith(f"{stats.iloc[0]['median']:.0f} [")
    assert "min" not in table.columns and "range" not in table.columns  # single-patient values


def test_resource_box_figure_empty_and_summary_text(sample):
    empty = fig.resource_box_figure({v: pd.DataFrame() for v in ("duration_min",)})
    assert not empty.data and "No durations" in empty.layout.annotations[0].text
    frame = fig.resource_frame(sample)
    stats = {v: fig.box_statistics(frame, ("procedure",), v) for v in fig.RESOURCE_VARIABLES}
    figure = fig.resource_box_figure(stats)
    assert len([t for t in figure.data if t.type == "box"]) == 6
    assert "VP median" in fig.resource_summary_text(stats)


def test_setting_figure_hides_small_counts():
    mix = setting_mix(records({("vertebroplasty", 1, "local"): [30.0] * 50 + [50.0] * 5,
                               ("kyphoplasty", 1, "local"): [30.0] * 40 + [50.0] * 30}))
    figure = fig.setting_figure(mix)
    vp = [t for t in figure.data if t.name == "Vertebroplasty (VP)"][0]
    kp = [t for t in figure.data if t.name == "Kyphoplasty (KP)"][0]
    assert vp.y == (None,) and "<11" in vp.customdata[0][0]  # 5 inpatients: suppressed
    assert kp.y[0] == pytest.approx(100 * 40 / 70)
    table = fig.setting_table(mix).set_index("procedure")
    assert table.loc["VP", "inpatient"] == "<11" and table.loc["VP", "outpatient_share"] is None
    assert table.loc["KP", "outpatient_share"] == f"{100 * 40 / 70:.1f}%"
    assert "suppressed" in fig.setting_summary_text(mix)


def test_setting_figure_empty():
    mix = setting_mix(pd.DataFrame({"procedure": pd.Series([], dtype=object),
                                    "setting": pd.Series([], dtype=object)}))
    assert not fig.setting_figure(mix).data


def test_difference_rows_formats_compare_means():
    result = compare_means([40.0, 42, 45, 50, 38, 41], [30.0, 33, 35, 31, 29, 36])
    rows = fig.difference_rows(result)
    assert rows.loc[0, "value"] == f"{result.mean_difference:+.1f} min"
    assert rows.loc[1, "ci_95"] == f"{result.hl_low:+.1f} to {result.hl_high:+.1f}"
    assert fig.difference_rows(None).empty
