"""Issue 14 item 2: say what the data are — the share of synthetic records in the banner and
the reports, removing the demo batches (page and CLI, audited), the match count after a data
change, and the quarantine download of the Data page."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.filters import RecordFilter
from dashboard.app_factory import create_app
from data import import_dataframe, load_records, store
from data.batches import synthetic_share
from data.demo import demo_records
from tests.dash_tree import find_by_id, texts

DEMO_N = 600
REAL_N = 25


def real_records(n: int, seed: int = 5) -> pd.DataFrame:
    """Records of a "real" (non-synthetic) import: demo rows with their own ids."""
    records = demo_records(n, seed=seed)
    records["record_id"] = [f"REAL-{i}" for i in range(n)]
    records["patient_id"] = [f"REAL-P{i}" for i in range(n)]
    return records


def mixed_store(folder, real: int = REAL_N) -> str:
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(demo_records(DEMO_N, seed=3), "demo-600", database, synthetic=True)
    import_dataframe(real_records(real), "first-real-export.csv", database)
    return database


@pytest.fixture
def mixed(tmp_path):
    store.dispose_engines()
    database = mixed_store(tmp_path)
    yield database
    store.dispose_engines()


def banner_text(app) -> str:
    from dashboard.layout import shell

    with app.server.test_request_context("/"):
        banner = find_by_id(shell(), "demo-banner")
    return " ".join(texts(banner))


def test_synthetic_share_counts_records_of_synthetic_batches(mixed):
    share = synthetic_share(mixed)
    assert (share.synthetic, share.total) == (DEMO_N, DEMO_N + REAL_N)
    assert share.sentence() == "600 of 625 records (96%) are synthetic demo data."


def test_banner_shows_the_synthetic_share_after_a_real_import(mixed):
    # Before the fix the banner vanished as soon as one real batch was imported.
    text = banner_text(create_app(mixed))
    assert "600 of 625 records (96%) are synthetic demo data." in text
    assert "Data page" in text  # says how to remove them


def test_banner_hides_a_small_number_of_real_records(tmp_path):
    # 600 of 602: the two real records must not be derivable (small-cell suppression).
    store.dispose_engines()
    database = mixed_store(tmp_path, real=2)
    text = banner_text(create_app(database))
    assert "All but <11 of 602 records are synthetic demo data." in text
    assert "600" not in text and "99.67" not in text
    store.dispose_engines()


def test_report_states_the_synthetic_share(mixed):
    from dashboard.layout import download_report

    app = create_app(mixed)
    with app.server.test_request_context("/"):
        sent = download_report(1, "/data", RecordFilter().to_dict())
    assert "600 of 625 records (96%) are synthetic demo data." in sent["content"]


def test_banner_is_empty_without_synthetic_records(tmp_path):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path / 'real.db'}"
    import_dataframe(real_records(30), "real.csv", database)
    app = create_app(database)
    assert banner_text(app) == ""
    assert load_records(database).shape[0] == 30
    store.dispose_engines()
