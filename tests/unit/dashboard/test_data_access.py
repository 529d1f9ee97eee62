"""The shared-frame helpers of :mod:`dashboard.data_access` that need no store."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from analysis.filters import RecordFilter, filter_mask
from dashboard import data_access
from data.demo import demo_records


def test_frame_index_is_kept_per_frame_and_goes_with_it():
    records = demo_records(300, seed=5)
    first = data_access.frame_index(records)
    assert data_access.frame_index(records) is first
    other = records.copy()
    assert data_access.frame_index(other) is not first
    selection = RecordFilter(countries=("US",), procedures=("kyphoplasty",))
    assert np.array_equal(data_access.frame_index(other).mask(selection),
                          filter_mask(records, selection))
    # Nothing else keeps the frame alive: after a new import the old frame (and its index)
    # must go, or every data version would stay in memory.
    gone = weakref.ref(other)
    del other
    gc.collect()
    assert gone() is None
