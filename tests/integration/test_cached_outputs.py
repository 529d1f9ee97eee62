"""Warm (cached) page updates: answered from the result cache, identical to the cold answer.

Every callback a filter change triggers on a page is posted to the real Dash endpoint twice
with the same inputs: the second time nothing may be recomputed (no cache miss) and the
response body must equal the first one byte for byte.
"""

from __future__ import annotations

import dash
import plotly.graph_objects as go
import pytest

from bench.pages import _layout_values, _payload, page_callbacks
from dashboard import compute_cache
from tests.dash_tree import find_all

PAGES = ["/", "/pain", "/complications", "/durations", "/costs", "/quality", "/data"]


def post_update(client, callbacks, values: dict, state: dict) -> list[bytes]:
    bodies = []
    for key, entry in callbacks:
        response = client.post("/_dash-update-component", json=_payload(key, entry, values, state))
        assert response.status_code in (200, 204), (key, response.status_code)
        if response.status_code == 200:
            bodies.append(response.data)
            for component_id, props in response.get_json()["response"].items():
                for prop, value in props.items():
                    values[(component_id, prop)] = value  # feeds dependent callbacks (Quality)
    return bodies


@pytest.mark.parametrize("path", PAGES)
def test_warm_update_is_served_from_the_cache_and_equal(dashboard_app, path):
    app, _ = dashboard_app
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    page = next(p for p in dash.page_registry.values() if p["path"] == path)
    callbacks = page_callbacks(app, page)
    assert len(callbacks) >= 2  # the page's own callback(s) and the shell's match count
    state = {"date_from": "2019-02-01", "countries": ["US"]}
    values = _layout_values(page["layout"], app)
    cache = compute_cache.get_cache()
    cache.stats(enable=True, reset=True)
    cold = post_update(client, callbacks, dict(values), state)
    hits, misses = cache.stats()
    assert misses >= len(cold)  # computed, not read from another test's cache
    warm = post_update(client, callbacks, dict(values), state)
    assert cache.stats() == (hits + len(warm), misses)  # every warm answer read, none computed
    assert warm == cold
    assert not any(b"could not be computed" in body for body in warm)


def test_first_and_repeated_call_return_the_same_kind_of_value(dashboard_app):
    """Called as functions (as the page tests do), a computed and a cached answer match."""
    from dashboard.pages.durations import update_durations

    app, _ = dashboard_app
    state = {"countries": ["GB"]}
    with app.server.app_context():
        first, second = update_durations(state), update_durations(dict(state))
    graphs = [find_all(out, lambda n: isinstance(getattr(n, "figure", None), go.Figure))
              for out in (first, second)]
    assert len(graphs[0]) == len(graphs[1]) >= 1
    for computed, cached in zip(*graphs, strict=True):
        assert type(computed) is type(cached) and type(computed.figure) is type(cached.figure)
        assert isinstance(cached.figure, go.Figure)
        assert computed.figure.to_plotly_json() == cached.figure.to_plotly_json()
        for trace, trace_again in zip(computed.figure.data, cached.figure.data, strict=True):
            assert type(trace) is type(trace_again)
            assert trace.to_plotly_json().keys() == trace_again.to_plotly_json().keys()


def test_data_key_reads_only_the_batches_and_changes_with_an_import(sqlite_database):
    """The key a warm callback re-reads every few seconds: no scan of the records table
    (costly at 1M rows), yet a new import changes it."""
    import sqlalchemy as sa

    from dashboard.app_factory import create_app
    from data import import_dataframe, store
    from data.demo import demo_records

    import_dataframe(demo_records(200, seed=4), "first.csv", sqlite_database, synthetic=True)
    app = create_app(sqlite_database)
    statements: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:
        statements.append(statement)

    engine = store.get_engine(sqlite_database)
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with app.server.app_context():
            before = compute_cache.data_key()
            assert statements and all("records" not in s.replace("import_batches", "")
                                      for s in statements), statements
            assert compute_cache.data_key() == before
            more = demo_records(30, seed=5).assign(record_id=lambda f: "NEW-" + f.record_id,
                                                   patient_id=lambda f: "NEW-" + f.patient_id)
            import_dataframe(more, "second.csv", sqlite_database, synthetic=True)
            after = compute_cache.data_key()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert after != before and after.split("/")[0] == before.split("/")[0]  # same store
