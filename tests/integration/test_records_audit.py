"""Record-grid browsing is audited per session and selection (issue 13 item 4).

An analyst could page through every record of their scope without a trace. Now the first
block of each selection (global filters, column filters, sort) writes a ``records_view``
event, scrolling on adds follow-ups at most every five minutes, and turning to another
selection writes what is still uncounted of the earlier ones. Counts and the table name come
from the server, never from the grid request.
"""

from __future__ import annotations

import datetime as dt

import pytest

from dashboard.app_factory import create_app
from dashboard.auth.config import load_config
from data import audit, import_dataframe, store
from data.demo import demo_records
from tests.auth_support import auth_dir, callback_payload, sign_in

OUTPUT = "records-grid.getRowsResponse"


@pytest.fixture
def app(tmp_path):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path / 'store.db'}"
    import_dataframe(demo_records(1200, seed=8), "demo", database, synthetic=True)
    config = auth_dir(tmp_path / "auth", {"ana": ("analyst", None)})
    yield create_app(database, load_config(config))
    store.dispose_engines()


def _views(app) -> list[dict]:
    events = audit.read_events(app.server.config["VA_DATABASE"], limit=1000)
    chosen = events[events.action == "records_view"].sort_values("event_id")
    return [dict(detail, actor=actor) for detail, actor in zip(chosen.detail, chosen.actor,
                                                                strict=True)]


def _rows(app, client, start: int, sort=None, filters=None, state=None, **claims) -> dict:
    request = {"startRow": start, "endRow": start + 100, **claims}
    if sort:
        request["sortModel"] = sort
    if filters:
        request["filterModel"] = filters
    payload = callback_payload(app, OUTPUT, {("records-grid", "getRowsRequest"): request,
                                             ("filter-state", "data"): state or {}})
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200
    return response.get_json()["response"]["records-grid"]["getRowsResponse"]


def test_browsing_is_audited_per_selection_with_server_counts(app, monkeypatch):
    client = app.server.test_client()
    assert sign_in(client, "ana").status_code == 302
    assert client.get("/").status_code == 200
    clock = {"now": audit._now()}
    monkeypatch.setattr(audit, "_now", lambda: clock["now"])
    state = {"procedures": ["kyphoplasty"]}
    # Three blocks of one selection; the request claims far more rows than it gets.
    first = _rows(app, client, 0, state=state, rowCount=10**6, endRow=10**6)
    for start in (100, 200):
        _rows(app, client, start, state=state)
    views = _views(app)
    assert len(views) == 1  # one event per selection, not one per block
    assert views[0] == {
        "actor": "ana", "table": "records", "filters": {"procedures": ["kyphoplasty"]},
        "column_filters": [], "sort": [], "new_selection": True, "rows_served": 100,
        "rows_served_total": 100, "matching_rows": first["rowCount"]}
    assert first["rowCount"] < 1200 and len(first["rowData"]) == 100
    # A new sort is a new selection; the 200 rows served since of the first are written too.
    typed = {"region": {"filterType": "text", "type": "contains", "filter": "o"}}
    sort = [{"colId": "age", "sort": "desc"}]
    served = [len(_rows(app, client, 0, state=state, sort=sort, filters=typed)["rowData"])]
    views = _views(app)
    assert len(views) == 3
    new, earlier = (views[1], views[2]) if views[1]["new_selection"] else (views[2], views[1])
    assert new["sort"] == ["-age"] and new["column_filters"] == ["region"]
    assert "contains" not in str(new)  # the typed filter is never logged
    assert new["rows_served"] == served[0]
    assert (earlier["new_selection"], earlier["rows_served"], earlier["rows_served_total"]) == (
        False, 200, 300)
    # Scrolling on: a follow-up at most every five minutes, with the rows served since.
    for start in (100, 200):
        served.append(len(_rows(app, client, start, state=state, sort=sort,
                                filters=typed)["rowData"]))
    assert len(_views(app)) == 3
    clock["now"] += dt.timedelta(minutes=5)
    served.append(len(_rows(app, client, 0, state=state, sort=sort, filters=typed)["rowData"]))
    views = _views(app)
    assert len(views) == 4 and views[-1]["new_selection"] is False
    assert views[-1]["rows_served"] == sum(served[1:]) and sum(served[1:]) > 100
    assert views[-1]["rows_served_total"] == sum(served)
    assert audit.verify_chain(app.server.config["VA_DATABASE"]).intact


def test_columns_a_request_may_not_use_are_not_logged(app):
    client = app.server.test_client()
    sign_in(client, "ana")
    client.get("/")
    _rows(app, client, 0, sort=[{"colId": "patient_id", "sort": "asc"}, {"colId": "<x>"}],
          filters={"record_id": {"filterType": "text", "type": "equals", "filter": "R1"}})
    (view,) = _views(app)
    assert view["sort"] == [] and view["column_filters"] == []


def test_a_grid_download_logs_the_servers_table_name_not_the_browsers(app):
    """The display-grid download took its audit table name and page from the request."""
    from tests.integration.test_exports_records_upload import grid_payload

    client = app.server.test_client()
    sign_in(client, "ana")
    client.get("/")
    rows = [{"unit": "A", "n": 40}, {"unit": "B", "n": 50}]
    defs = [{"field": "unit"}, {"field": "n"}]
    for name, table in (("quality-units", "quality-units"),
                        ("all-records-of-FAC-004", "unlisted grid")):
        response = client.post("/_dash-update-component", json=grid_payload(name, rows, defs, {}))
        assert response.status_code == 200
        event = audit.read_events(app.server.config["VA_DATABASE"], limit=1).iloc[0]
        assert (event.action, event.detail["table"], event.detail["rows"]) == (
            "download", table, 2)
        assert event.detail["page"] == "unlisted page"  # "/facilities" is no page of the app
    assert event.detail["grid_as_sent"] == "all-records-of-FAC-004"
