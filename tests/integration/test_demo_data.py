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


def mixed_store(folder, real: int = REAL_N, database: str | None = None) -> str:
    database = database or f"sqlite:///{folder / 'store.db'}"
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


# --- removing the demo batches ---------------------------------------------------------------


def test_remove_synthetic_batches_is_audited_and_changes_the_data_version(database, tmp_path):
    from data import audit
    from data.batches import remove_synthetic_batches
    from data.load import snapshot_path

    mixed = mixed_store(tmp_path, database=database)  # SQLite and PostgreSQL

    before = store.data_version(mixed)
    assert len(load_records(mixed)) == DEMO_N + REAL_N  # writes the Parquet snapshot
    result = remove_synthetic_batches(mixed, "cli:tester")
    assert result.records == DEMO_N and result.batch_ids == (1,)

    after = store.data_version(mixed)
    assert after != before
    records = load_records(mixed)  # not the old snapshot: a new version, a new snapshot
    assert len(records) == REAL_N and records.record_id.str.startswith("REAL-").all()
    if mixed.startswith("sqlite"):
        assert snapshot_path(mixed, after).exists()
        assert not snapshot_path(mixed, before).exists()
    assert synthetic_share(mixed).synthetic == 0

    event = audit.read_events(mixed, limit=1).iloc[0]
    assert (event.actor, event.action) == ("cli:tester", "remove_batch")
    assert event.detail["records"] == DEMO_N and event.detail["batches"] == [1]

    with store.get_engine(mixed).connect() as connection:
        statuses = dict(connection.execute(
            store.import_batches.select().with_only_columns(
                store.import_batches.c.batch_id, store.import_batches.c.status)).all())
    assert statuses == {1: "removed", 2: "complete"}  # the history keeps the batch
    # Nothing left to remove: no event, no change.
    assert remove_synthetic_batches(mixed, "cli:tester").batch_ids == ()
    assert store.data_version(mixed) == after


def test_cli_remove_demo_asks_for_yes(mixed):
    from tests.integration.test_cli import run

    dry = run("remove-demo", database=mixed)
    assert dry.returncode == 1 and "would remove 600 synthetic records" in dry.stdout
    assert synthetic_share(mixed).synthetic == DEMO_N  # nothing removed without --yes
    done = run("remove-demo", "--yes", database=mixed)
    assert done.returncode == 0, done.stderr
    assert "removed 600 synthetic records" in done.stdout
    store.dispose_engines()
    assert synthetic_share(mixed) == synthetic_share(mixed).__class__(0, REAL_N)
    again = run("remove-demo", "--yes", database=mixed)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


@pytest.fixture
def signed_in_site(tmp_path):
    """A mixed store with sign-in: an admin, an analyst and a facility-restricted admin."""
    from dashboard.auth.config import load_config
    from tests.auth_support import auth_dir

    store.dispose_engines()
    database = mixed_store(tmp_path)
    config = auth_dir(tmp_path / "auth", {"adm": ("admin", None), "ana": ("analyst", None),
                                          "north": ("admin", ["FAC-001"])})
    app = create_app(database, load_config(config))
    yield app, database
    store.dispose_engines()


def client_for(app, name: str):
    from tests.auth_support import sign_in

    client = app.server.test_client()
    assert sign_in(client, name).status_code == 302
    assert client.get("/").status_code == 200
    return client


REMOVE_KEY = "..data-demo-result.children...data-refresh.n_clicks@"


def remove_payload(app):
    from tests.auth_support import callback_payload

    key = next(k for k in app.callback_map if k.startswith(REMOVE_KEY))
    return callback_payload(app, key, {("data-demo-confirm", "n_clicks"): 1,
                                       ("data-refresh", "n_clicks"): 3})


def test_only_admins_remove_demo_data_from_the_page(signed_in_site):
    import json

    from data import audit

    app, database = signed_in_site
    refused = client_for(app, "ana").post("/_dash-update-component", json=remove_payload(app))
    assert refused.status_code == 403
    assert synthetic_share(database).synthetic == DEMO_N

    restricted = client_for(app, "north").post("/_dash-update-component",
                                               json=remove_payload(app))
    assert restricted.status_code == 200 and "needs an admin who may see all" in restricted.text
    assert synthetic_share(database).synthetic == DEMO_N

    done = client_for(app, "adm").post("/_dash-update-component", json=remove_payload(app))
    assert done.status_code == 200, done.text
    response = json.loads(done.text)["response"]
    assert "Removed 600 synthetic records" in json.dumps(response["data-demo-result"])
    assert response["data-refresh"]["n_clicks"] == 4  # refreshes the history and data version
    assert synthetic_share(database).synthetic == 0
    event = audit.read_events(database, limit=1).iloc[0]
    assert (event.actor, event.action) == ("adm", "remove_batch")


def test_data_page_asks_for_confirmation_first(mixed):
    from dashboard.pages.data import confirmation_open

    assert confirmation_open("data-demo-open") is True
    assert confirmation_open("data-demo-cancel") is False
    assert confirmation_open("data-demo-confirm") is False
    # The removal runs on "Remove demo data" inside the confirmation, never on the first button.
    app = create_app(mixed)
    assert app.server.test_client().get("/").status_code == 200  # registers page callbacks
    key = next(k for k in app.callback_map if k.startswith(REMOVE_KEY))
    assert [i["id"] for i in app.callback_map[key]["inputs"]] == ["data-demo-confirm"]
    modal = app.callback_map["data-demo-modal.is_open"]
    assert {i["id"] for i in modal["inputs"]} == {"data-demo-open", "data-demo-cancel",
                                                 "data-demo-confirm"}


def test_demo_section_lists_the_synthetic_batches(mixed):
    from dashboard.pages.data import demo_data_section

    app = create_app(mixed)
    with app.server.test_request_context("/data"):
        section = demo_data_section()
    text = " ".join(texts(section))
    assert "600 records of the store came from the demo generator (batch 1 (demo-600))" in text
    assert find_by_id(section, "data-demo-confirm") is not None  # inside the confirmation


# --- the match count follows data changes ----------------------------------------------------


def test_match_count_and_banner_follow_the_data_version(mixed):
    from dashboard.layout import match_count, refresh_demo_banner
    from data.batches import remove_synthetic_batches

    app = create_app(mixed)  # before importing a page module: pages register with the app
    from dashboard.pages.data import announce_data_version

    assert app.server.test_client().get("/").status_code == 200  # registers page callbacks
    inputs = {(i["id"], i["property"]) for i in app.callback_map["match-count.children"]["inputs"]}
    assert ("data-version", "data") in inputs  # a data change re-runs the match count
    announcer = next(v for k, v in app.callback_map.items() if k.startswith("data-version.data"))
    assert [i["id"] for i in announcer["inputs"]] == ["data-refresh"]  # upload and removal bump it

    state = RecordFilter().to_dict()
    with app.server.test_request_context("/"):
        version = announce_data_version(1)
        assert match_count(state, version) == "≈625 of ≈625 records match"  # rounded to 5
        remove_synthetic_batches(mixed, "adm")
        import time
        time.sleep(2.1)  # the cached data key lives 2 s (compute_cache.DATA_KEY_TTL_SECONDS)
        new_version = announce_data_version(2)
        assert new_version != version
        assert match_count(state, new_version) == "≈25 of ≈25 records match"
        assert texts(refresh_demo_banner(new_version)) == []


# --- the quarantine download ----------------------------------------------------------------

FORMULA = '=HYPERLINK("http://x.example","open")'


def import_with_formula_rejects(database: str, tmp_path) -> int:
    """A batch whose three rejected rows (age 17) carry a formula in the region column."""
    frame = real_records(15, seed=9)
    frame["record_id"] = [f"Q-{i}" for i in range(15)]
    frame.loc[frame.index[:3], "age"] = 17
    frame.loc[frame.index[:3], "region"] = FORMULA
    path = tmp_path / "with-formulas.csv"
    frame.to_csv(path, index=False)
    from data import import_file

    result = import_file(path, database)
    assert result.rejected == 3
    return result.batch_id


def test_cli_rejected_export_is_neutralised(mixed, tmp_path):
    from tests.integration.test_cli import run

    batch = import_with_formula_rejects(mixed, tmp_path)
    out = tmp_path / "rejected.csv"
    done = run("rejected", str(batch), "--csv", str(out), database=mixed)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out, dtype=str)
    assert list(table.columns[:3]) == ["row", "outcome", "reasons"]
    assert table["region"].tolist() == ["'" + FORMULA] * 3  # shown as text, never evaluated
    assert table["reasons"].str.startswith("age: range").all()
    stdout = run("rejected", str(batch), "--csv", "-", database=mixed)
    assert "'" + FORMULA.replace('"', '""') in stdout.stdout


def test_the_dashboard_and_the_cli_share_one_neutralisation():
    from dashboard import exports
    from data import spreadsheet

    assert exports.neutralise_cell is spreadsheet.neutralise_cell
    assert exports.safe_csv is spreadsheet.safe_csv and exports.safe_frame is spreadsheet.safe_frame


def quarantine_payload(app, batch):
    from tests.auth_support import callback_payload

    key = next(k for k in app.callback_map if "data-quarantine-download.data" in k)
    return callback_payload(app, key, {("data-quarantine-download-button", "n_clicks"): 1,
                                       ("data-quarantine-batch", "value"): batch})


def test_admins_download_a_batchs_quarantine_from_the_data_page(signed_in_site, tmp_path):
    import json

    from data import audit

    app, database = signed_in_site
    batch = import_with_formula_rejects(database, tmp_path)
    assert client_for(app, "ana").post("/_dash-update-component",
                                       json=quarantine_payload(app, batch)).status_code == 403
    restricted = client_for(app, "north").post("/_dash-update-component",
                                               json=quarantine_payload(app, batch))
    assert restricted.status_code == 200 and "content" not in restricted.text

    admin = client_for(app, "adm")
    page = admin.post("/_dash-update-component", json=quarantine_payload(app, batch))
    assert page.status_code == 200, page.text
    response = json.loads(page.text)["response"]
    sent = response["data-quarantine-download"]["data"]
    assert sent["filename"] == f"rejected_{batch}.csv"
    from io import StringIO

    table = pd.read_csv(StringIO(sent["content"]), dtype=str)
    assert list(table.columns[:3]) == ["row", "outcome", "reasons"]
    assert table["region"].tolist() == ["'" + FORMULA] * 3
    from tests.integration.test_cli import run

    assert sent["content"] == run("rejected", str(batch), "--csv", "-", database=database).stdout
    event = audit.read_events(database, limit=1).iloc[0]
    assert (event.actor, event.action) == ("adm", "download")
    assert event.detail["table"] == "quarantine" and event.detail["batch"] == batch
    assert event.detail["rows"] == 3

    missing = admin.post("/_dash-update-component", json=quarantine_payload(app, 999))
    assert "There is no import batch 999" in missing.text


def test_quarantine_section_offers_only_batches_with_quarantined_rows(mixed, tmp_path):
    from dashboard.pages.data import quarantine_section

    batch = import_with_formula_rejects(mixed, tmp_path)
    app = create_app(mixed)
    with app.server.test_request_context("/data"):
        section = quarantine_section()
    dropdown = find_by_id(section, "data-quarantine-batch")
    assert [option["value"] for option in dropdown.options] == [batch]
    assert dropdown.value == batch
