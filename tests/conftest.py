"""Shared fixtures: stores on SQLite and PostgreSQL, and small seeded cohorts.

PostgreSQL tests use the server named by ``VA_TEST_POSTGRES_URL`` (``.ci/run`` starts one).
Without it they skip locally; under ``CI=true`` they fail, so CI cannot pass without the server.
The same rule holds for browser tests and Chromium (see ``tests/browser/conftest.py``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data import store  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_or_skip(available: bool, what: str) -> None:
    """Skip when a service is missing locally; fail under CI, where skipping would hide it."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def postgres_url() -> str | None:
    url = os.environ.get("VA_TEST_POSTGRES_URL")
    if not url:
        return None
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError:
        return None
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    """A fresh, empty store URL on each backend."""
    store.dispose_engines()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = postgres_url()
        require_or_skip(url is not None, "PostgreSQL (VA_TEST_POSTGRES_URL)")
        _reset_postgres(url)
    yield url
    store.dispose_engines()


@pytest.fixture
def sqlite_database(tmp_path) -> str:
    store.dispose_engines()
    yield f"sqlite:///{tmp_path / 'store.db'}"
    store.dispose_engines()


@pytest.fixture(autouse=True)
def _figures_as_validated(monkeypatch):
    """Every figure :func:`dashboard.figures.common.new_figure` builds without validation is
    built again with it, and must give the same JSON (what production sends)."""
    import plotly.graph_objects as go
    from plotly.utils import PlotlyJSONEncoder

    from dashboard.figures import common

    unvalidated = common.new_figure

    def checked(traces, layout):
        figure = unvalidated(traces, layout)
        validated = go.Figure(data=traces, layout=layout)
        shown = json.dumps(figure.to_plotly_json(), cls=PlotlyJSONEncoder, sort_keys=True)
        expected = json.dumps(validated.to_plotly_json(), cls=PlotlyJSONEncoder, sort_keys=True)
        assert shown == expected, "a figure differs from its validated build"
        return figure

    monkeypatch.setattr(common, "new_figure", checked)


@pytest.fixture(autouse=True)
def _isolated_result_cache(tmp_path, monkeypatch):
    """Each test gets its own on-disk result cache, so no test is answered by another's
    (unless its module chose a cache folder on purpose, as the comparison page tests do)."""
    if not os.environ.get("VA_CACHE_DIR"):
        monkeypatch.setenv("VA_CACHE_DIR", str(tmp_path / "result-cache"))
    from dashboard import compute_cache

    compute_cache._DATA_KEYS.clear()
