"""Server-side CSV downloads, the record grid and the browser upload, through HTTP posts to
Dash's callback endpoint with signed-in users of each role (Flask test client)."""

from __future__ import annotations

import base64
import io
import json

import flask
import pandas as pd
import pytest

from analysis.filters import RecordFilter, apply_filter
from dashboard.app_factory import create_app
from dashboard.auth import User
from dashboard.auth.config import load_config
from data import audit, import_dataframe, load_records, store
from data.demo import demo_records
from tests.auth_support import auth_dir, callback_payload, sign_in
from tests.conftest import FIXTURES

XSS_REGION = "<img src=x onerror=alert(1)>"
FORMULA_OPERATOR = "=HYPERLINK(\"http://x.example\")"
RESTRICTED = ["FAC-004", "FAC-011"]
ACCOUNTS = {"vic": ("viewer", None), "ana": ("analyst", None), "adm": ("admin", None),
            "north": ("analyst", RESTRICTED)}
CSV_KEY = '{"name":["MATCH"],"type":"csv-file"}.data'
UPLOAD_KEY = "..data-upload-result.children...data-refresh.n_clicks.."


def nasty_records(n: int = 1200, seed: int = 23) -> pd.DataFrame:
    records = demo_records(n, seed=seed)
    records.loc[records.index[:5], "region"] = XSS_REGION
    records.loc[records.index[:5], "operator_id"] = FORMULA_OPERATOR
    return records


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store.dispose_engines()
    folder = tmp_path_factory.mktemp("exports")
    database = f"sqlite:///{folder / 'store.db'}"
    import_dataframe(nasty_records(), "demo", database, synthetic=True)
    config = auth_dir(folder / "auth", ACCOUNTS)
    yield database, config
    store.dispose_engines()


@pytest.fixture
def app(site):
    return create_app(site[0], load_config(site[1]))


def signed_in(app, name: str):
    client = app.server.test_client()
    assert sign_in(client, name).status_code == 302
    assert client.get("/").status_code == 200  # Dash registers the pages' callbacks
    return client


def post(client, payload: dict):
    return client.post("/_dash-update-component", json=payload)


def grid_payload(name: str, rows: list[dict], column_defs: list[dict], state: dict) -> dict:
    """What the browser posts when "Download CSV" of grid ``name`` is clicked."""
    grid = {"type": "data-grid", "name": name}
    button = {"type": "csv-export", "name": name}
    return {
        "output": CSV_KEY, "outputs": {"id": {"type": "csv-file", "name": name},
                                       "property": "data"},
        "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
        "state": [{"id": grid, "property": "virtualRowData", "value": rows},
                  {"id": grid, "property": "rowData", "value": rows},
                  {"id": grid, "property": "columnDefs", "value": column_defs},
                  {"id": grid, "property": "csvExportParams",
                   "value": {"fileName": f"{name}.csv"}},
                  {"id": button, "property": "id", "value": button},
                  {"id": "filter-state", "property": "data", "value": state},
                  {"id": "url", "property": "pathname", "value": "/facilities"}],
        "changedPropIds": [f"{json.dumps(button, separators=(',', ':'))}.n_clicks"],
    }


def sent_file(response, output: str) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()["response"]
    return next(iter(body.values()))["data"] if output not in body else body[output]["data"]


# -- display grid downloads -------------------------------------------------------------------


def test_grid_download_is_server_side_neutralised_suppressed_and_audited(app, site):
    rows = [{"facility": "=cmd|' /C calc'!A0", "n": 7, "rate": -0.5},
            {"facility": "Leeds", "n": 120, "rate": 0.25}]
    defs = [{"field": "facility", "headerName": "Facility"}, {"field": "n", "headerName": "N"},
            {"field": "rate", "headerName": "Rate"}]
    state = {"countries": ["US"], "procedures": ["kyphoplasty"]}
    payload = grid_payload("quality-units", rows, defs, state)
    assert post(signed_in(app, "vic"), payload).status_code == 403  # the viewer: refused
    before = audit.read_events(site[0], limit=1).event_id.max()
    sent = sent_file(post(signed_in(app, "ana"), payload), "csv-file")
    assert sent["filename"] == "quality-units.csv"
    table = pd.read_csv(io.StringIO(sent["content"]), keep_default_na=False)
    assert table.Facility.tolist() == ["'=cmd|' /C calc'!A0", "Leeds"]
    assert table.N.astype(str).tolist() == ["<11", "120"]  # a tampered small count is hidden
    assert table.Rate.tolist() == [-0.5, 0.25]  # numbers stay numbers
    event = audit.read_events(site[0], limit=1).iloc[0]
    assert event.event_id > before and event.action == "download" and event.actor == "ana"
    assert event.detail["table"] == "quality-units" and event.detail["rows"] == 2
    assert event.detail["filters"] == {"countries": ["US"], "procedures": ["kyphoplasty"]}


def test_download_button_only_for_analysts_and_admins(app):
    from dashboard.components import data_grid

    frame = pd.DataFrame({"n": [12]})
    with app.server.test_request_context("/"):
        for user, shown in ((User("vic", "viewer"), False), (User("ana", "analyst"), True),
                            (User("adm", "admin"), True)):
            flask.g.va_user = user
            block = data_grid(frame, "demo-grid", "demo")
            controls = block.children[0]
            ids = [getattr(child, "id", None) for child in (controls.children or [])]
            assert ({"type": "csv-export", "name": "demo-grid"} in ids) is shown, user.role
            assert block.children[-1].id == {"type": "data-grid", "name": "demo-grid"}
            assert "exportDataAsCsv" not in block.children[-1].to_plotly_json()["props"]


# -- the record grid --------------------------------------------------------------------------


def rows_request(state: dict | None = None, request: dict | None = None) -> dict:
    return {("records-grid", "getRowsRequest"): {"startRow": 0, "endRow": 100, **(request or {})},
            ("filter-state", "data"): state or {}}


def test_record_grid_pages_sorts_filters_on_the_server(app, site):
    records = load_records(site[0])
    analyst = signed_in(app, "ana")
    payload = callback_payload(app, "records-grid.getRowsResponse", rows_request(
        {"procedures": ["kyphoplasty"]},
        {"startRow": 100, "endRow": 5000, "sortModel": [{"colId": "age", "sort": "desc"}],
         "filterModel": {"sex": {"filterType": "text", "type": "equals", "filter": "f"},
                         "patient_id": {"filterType": "text", "type": "equals",
                                        "filter": "nobody"}}}))
    response = post(analyst, payload)
    assert response.status_code == 200
    answer = response.get_json()["response"]["records-grid"]["getRowsResponse"]
    chosen = apply_filter(records, RecordFilter(procedures=("kyphoplasty",)))
    chosen = chosen[chosen.sex == "F"]  # the hidden patient_id filter is ignored
    assert answer["rowCount"] == len(chosen)
    assert len(answer["rowData"]) == 100  # one block, never more, whatever endRow asks
    expected = chosen.sort_values("age", ascending=False, kind="stable").iloc[100:200]
    assert [row["age"] for row in answer["rowData"]] == expected.age.tolist()
    assert all("record_id" not in row and "patient_id" not in row for row in answer["rowData"])
    assert {row["sex"] for row in answer["rowData"]} == {"F"}


def test_record_grid_is_facility_restricted_and_refused_to_viewers(app, site):
    records = load_records(site[0])
    viewer = signed_in(app, "vic")  # the first page load registers the pages' callbacks
    payload = callback_payload(app, "records-grid.getRowsResponse", rows_request())
    assert post(viewer, payload).status_code == 403
    answer = post(signed_in(app, "north"), payload).get_json()["response"]
    restricted = records[records.facility_id.isin(RESTRICTED)]
    assert answer["records-grid"]["getRowsResponse"]["rowCount"] == len(restricted)
    shown = {row["facility_id"] for row in answer["records-grid"]["getRowsResponse"]["rowData"]}
    assert shown <= set(RESTRICTED)


def test_records_page_layout_is_not_permitted_for_viewers(app):
    viewer = signed_in(app, "vic")
    layout = viewer.post("/_dash-update-component", json=callback_payload(
        app, next(k for k in app.callback_map if "_pages_content" in k),
        {("_pages_location", "pathname"): "/records", ("_pages_location", "search"): ""}))
    assert layout.status_code == 200
    text = json.dumps(layout.get_json())
    assert "not-permitted" in text and "records-grid" not in text


def test_records_download_is_neutralised_restricted_and_audited(app, site):
    viewer = signed_in(app, "vic")
    payload = callback_payload(app, "records-download.data", {
        ("records-download-button", "n_clicks"): 1,
        ("records-grid", "getRowsRequest"): {"filterModel": {"region": {
            "filterType": "text", "type": "contains", "filter": "onerror"}}},
        ("filter-state", "data"): {}})
    assert post(viewer, payload).status_code == 403
    sent = sent_file(post(signed_in(app, "ana"), payload), "records-download")
    table = pd.read_csv(io.StringIO(sent["content"]), dtype=str, keep_default_na=False)
    assert len(table) == 5 and set(table.region) == {XSS_REGION}
    assert set(table.operator_id) == {"'" + FORMULA_OPERATOR}
    assert "record_id" not in table and "patient_id" not in table
    event = audit.read_events(site[0], limit=1).iloc[0]
    assert (event.action, event.actor, event.detail["table"], event.detail["rows"]) == (
        "download", "ana", "records", 5)
    assert event.detail["column_filters"] == ["region"]
    assert "onerror" not in json.dumps(event.detail)  # the typed filter text is not logged
    north = sent_file(post(signed_in(app, "north"), callback_payload(app, "records-download.data", {
        ("records-download-button", "n_clicks"): 1, ("filter-state", "data"): {}})),
        "records-download")
    assert set(pd.read_csv(io.StringIO(north["content"]), dtype=str).facility_id) <= set(RESTRICTED)


# -- upload -----------------------------------------------------------------------------------


def upload_payload(app, name: str, payload: bytes) -> dict:
    contents = "data:application/octet-stream;base64," + base64.b64encode(payload).decode()
    return callback_payload(app, UPLOAD_KEY, {("data-upload", "contents"): contents,
                                              ("data-upload", "filename"): name,
                                              ("data-refresh", "n_clicks"): 2})


def upload_text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return json.dumps(response.get_json()["response"])


def test_upload_is_admin_only_and_goes_through_the_import_pipeline(app, site):
    export = (FIXTURES / "exports" / "messy_aliases.csv").read_bytes()
    viewer = signed_in(app, "vic")
    payload = upload_payload(app, "C:\\exports\\messy_aliases.csv", export)
    assert post(viewer, payload).status_code == 403
    assert post(signed_in(app, "ana"), payload).status_code == 403
    before = store.data_version(site[0])
    response = post(signed_in(app, "adm"), payload)
    body = response.get_json()["response"]
    assert body["data-refresh"]["n_clicks"] == 3  # the import history is reloaded
    summary = json.dumps(body["data-upload-result"])
    assert store.data_version(site[0]) != before
    batch = store.get_engine(site[0]).connect().execute(
        store.import_batches.select().order_by(store.import_batches.c.batch_id.desc())
    ).mappings().first()
    assert batch["file_name"] == "messy_aliases.csv"
    equation = (f"{batch['rows_read']:,} rows read = {batch['accepted']:,} accepted + "
                f"{batch['rejected']:,} rejected + {batch['duplicates']:,} duplicates + "
                f"{batch['conflicts']:,} conflicts")
    assert equation in summary and batch["rejected"] > 0
    assert "data-upload-reasons" in summary
    event = audit.read_events(site[0], limit=1).iloc[0]
    assert (event.action, event.actor, event.detail["file"], event.detail["batch_id"]) == (
        "import", "adm", "messy_aliases.csv", batch["batch_id"])
    assert event.detail["rows_read"] == batch["rows_read"]


def test_upload_refusals_have_clear_messages(app, site, monkeypatch):
    admin = signed_in(app, "adm")
    phi = upload_text(post(admin, upload_payload(
        app, "phi_columns.csv", (FIXTURES / "exports" / "phi_columns.csv").read_bytes())))
    assert "identifiers" in phi and "'Patient Name'" in phi and "Nothing was stored" in phi
    raw = (FIXTURES / "exports" / "phi_columns.csv").read_text()
    second_row_values = raw.splitlines()[1].split(",")[:3]
    assert not any(value and value in phi for value in second_row_values if len(value) > 3)
    wrong = upload_text(post(admin, upload_payload(app, "payload.exe", b"MZ\x90\x00")))
    assert "'.exe' are not accepted" in wrong
    monkeypatch.setenv("VA_UPLOAD_MAX_MB", "0.001")  # about 1 KB
    big = upload_text(post(admin, upload_payload(app, "big.csv", b"a,b\n" + b"1,2\n" * 2000)))
    assert "larger than the upload limit of 0.001 MB" in big
    assert audit.read_events(site[0], limit=1).detail.iloc[0]["status"] == "refused"


def test_upload_section_only_on_the_admins_data_page(app):
    from dashboard.pages.data import layout

    with app.server.test_request_context("/"):
        flask.g.va_user = User("ana", "analyst")
        assert "'data-upload'" not in str(layout()) and "data-upload-off" in str(layout())
        flask.g.va_user = User("adm", "admin")
        assert "'data-upload'" in str(layout())


def test_request_size_is_capped(app):
    from dashboard.exports import request_limit_bytes

    assert app.server.config["MAX_CONTENT_LENGTH"] == request_limit_bytes()
    assert request_limit_bytes() > 50 * 1024 * 1024  # room for a 50 MB upload as base64
