"""Whisker ends of the Durations box plots (issue 6 fast path) against a pandas groupby."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.outcomes import resource_summary
from dashboard.figures.durations import WHISKER, box_statistics, resource_frame


def reference_fences(frame: pd.DataFrame, by: tuple[str, ...], variable: str) -> pd.DataFrame:
    """Straightforward: per group, the smallest / largest value within 1.5 IQR of the box."""
    rows = []
    for key, group in frame.groupby(list(by), observed=True, dropna=False):
        values = group[variable].dropna().to_numpy()
        if values.size == 0:
            continue
        q1, q3 = np.quantile(values, [0.25, 0.75])
        low, high = q1 - WHISKER * (q3 - q1), q3 + WHISKER * (q3 - q1)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)),
                     "lowerfence": values[values >= low].min(),
                     "upperfence": values[values <= high].max()})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("by", [("procedure",), ("procedure", "levels_group"),
                                ("procedure", "anesthesia")])
def test_box_statistics_fences_equal_groupby(seed, by):
    rng = np.random.default_rng(seed)
    n = 1200
    records = pd.DataFrame({
        "procedure": rng.choice(["vertebroplasty", "kyphoplasty", None], n, p=[0.5, 0.45, 0.05]),
        "levels_treated": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(1, 5, n)),
                                   dtype="Int64"),
        "anesthesia": rng.choice(["local", "sedation", "general", "spinal?", None], n),
        "duration_min": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(4, 10, n)),
        "cement_volume_ml": rng.gamma(3, 1.5, n),
        "length_of_stay_days": rng.poisson(1.5, n).astype(float),
    })
    frame = resource_frame(records)
    got = box_statistics(frame, by, "duration_min")
    expected = reference_fences(frame, by, "duration_min")
    merged = got.merge(expected, on=list(by), suffixes=("", "_expected"), how="outer")
    assert len(merged) == len(got) == len(expected)
    assert np.allclose(merged["lowerfence"], merged["lowerfence_expected"], rtol=0, atol=0)
    assert np.allclose(merged["upperfence"], merged["upperfence_expected"], rtol=0, atol=0)
    # Reusing an earlier summary gives the same table.
    summary = resource_summary(frame, by=by, variables=["duration_min"])
    pd.testing.assert_frame_equal(box_statistics(frame, by, "duration_min", summary), got)
