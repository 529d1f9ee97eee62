"""The store and its Parquet snapshot are private files whatever the umask (issue 13, item 6)."""

from __future__ import annotations

import os
import stat

import pytest

from data import demo_records, import_dataframe, load_records, store
from data.load import snapshot_path


@pytest.fixture()
def umask_022():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_store_its_folder_and_snapshot_are_private(tmp_path, umask_022):
    database = tmp_path / "instance" / "nested" / "store.db"
    url = f"sqlite:///{database}"
    import_dataframe(demo_records(60, seed=3), "demo", url, synthetic=True)
    load_records(url)  # writes the Parquet snapshot beside the store
    snapshot = snapshot_path(url, store.data_version(url))
    assert snapshot is not None and snapshot.exists()
    assert _mode(tmp_path / "instance") == 0o700
    assert _mode(database.parent) == 0o700
    assert _mode(database) == 0o600
    assert _mode(snapshot) == 0o600
    for sidecar in (database.with_name("store.db-wal"), database.with_name("store.db-shm")):
        if sidecar.exists():  # SQLite copies the database file's mode
            assert _mode(sidecar) == 0o600
    others = [p for p in database.parent.iterdir() if _mode(p) & 0o077]
    assert others == []


def test_an_existing_world_readable_store_is_kept_but_warned_about(tmp_path, umask_022, caplog):
    database = tmp_path / "shared.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    store.get_engine(f"sqlite:///{database}")
    assert _mode(database) == 0o644  # the operator's file: not changed behind their back
    assert "may be read by other users" in caplog.text
