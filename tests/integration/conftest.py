"""A dashboard app on a demo store, shared by the page tests of a module.

The store holds 3,000 demo records (seed 11) plus a tiny facility ``FAC-TINY`` with six
vertebroplasties, below the small-cell threshold, to prove suppression.
"""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.demo import demo_records

TINY_FACILITY = "FAC-TINY"


def demo_with_tiny_facility(n: int = 3000, seed: int = 11) -> pd.DataFrame:
    records = demo_records(n, seed=seed)
    tiny = records[(records.procedure == "vertebroplasty") & records.cost.notna()].head(6).copy()
    tiny["record_id"] = [f"TINY-{i}" for i in range(6)]
    tiny["patient_id"] = [f"TINY-P{i}" for i in range(6)]
    tiny["facility_id"] = TINY_FACILITY
    tiny["operator_id"] = "OP-TINY"
    return pd.concat([records, tiny])


@pytest.fixture(scope="module")
def dashboard_app(tmp_path_factory):
    """``(app, records)``: a Dash app on a fresh demo store, and the records it serves."""
    store.dispose_engines()
    database = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}"
    import_dataframe(demo_with_tiny_facility(), "demo", database, synthetic=True)
    app = create_app(database)
    yield app, load_records(database)
    store.dispose_engines()
