"""Request checks before sign-in (issue 13, item 6): the Host rule of local mode (DNS
rebinding) and malformed callback bodies answered 400 instead of 500."""

from __future__ import annotations

import pytest

from dashboard.app_factory import create_app
from dashboard.auth.config import load_config
from data import demo_records, import_dataframe, store
from tests.auth_support import auth_dir, callback_payload, sign_in

OUTPUT = "data-completeness.children"  # a callback every role may call: Input filter-state


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('checks') / 'store.db'}"
    import_dataframe(demo_records(300, seed=5), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


@pytest.fixture
def local_app(database):
    return create_app(database)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "127.0.0.1.nip.example",
                                  "localhost.evil.example", "10.0.0.5:8050", "[::2]:8050", ""])
def test_local_mode_refuses_other_host_headers(local_app, host):
    client = local_app.server.test_client()
    for path in ("/", "/_dash-layout", "/records"):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 421, (path, host)
        assert "127.0.0.1, localhost or [::1]" in response.get_data(as_text=True)
    response = client.post("/_dash-update-component", headers={"Host": host},
                           json={})
    assert response.status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8050", "localhost", "LOCALHOST:80",
                                  "[::1]", "[::1]:8050"])
def test_local_mode_answers_loopback_host_names(local_app, host):
    response = local_app.server.test_client().get("/", headers={"Host": host})
    assert response.status_code == 200, host


def test_signed_in_mode_leaves_the_host_to_the_proxy(database, tmp_path):
    """With sign-in the dashboard may be served under any name (behind a proxy): the Host rule
    is the local mode's only."""
    app = create_app(database, load_config(auth_dir(tmp_path / "auth", {"ann": ("viewer", None)})))
    client = app.server.test_client()
    response = client.get("/login", headers={"Host": "dashboard.hospital.example"})
    assert response.status_code == 200


def _post(app, body, content_type="application/json"):
    client = app.server.test_client()
    client.get("/")  # the first request sets Dash up
    return client.post("/_dash-update-component", data=body, content_type=content_type)


MALFORMED = [
    b"not json", b"[]", b"null", b'"text"', b"5", b"{}", b'{"output": 5}',
    b'{"output": ["x"]}', b'{"output": {"a": 1}}', b'{"output": "no-such.children"}',
    b'{"output": "data-completeness.children"}',
    b'{"output": "data-completeness.children", "inputs": "x"}',
    b'{"output": "data-completeness.children", "inputs": [1]}',
    b'{"output": "data-completeness.children", "inputs": [{"id": "filter-state"}]}',
    b'{"output": "data-completeness.children", "inputs": [], "state": []}',
    b'{"output": "data-completeness.children", "inputs": [{"id": "filter-state", '
    b'"property": "data"}, {"id": "x", "property": "y"}]}',
    b'{"output": "data-completeness.children", "inputs": [{"id": "filter-state", '
    b'"property": "data"}], "outputs": 7}',
    b'{"output": "data-completeness.children", "inputs": [{"id": "filter-state", '
    b'"property": "data"}], "changedPropIds": "filter-state.data"}',
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_callback_bodies_get_400_not_500(local_app, body):
    response = _post(local_app, body)
    assert response.status_code == 400, response.get_data(as_text=True)[:200]
    assert response.get_json()["error"].startswith("malformed callback request")


def test_malformed_bodies_before_the_first_request_get_400(database):
    """The very first request of a worker may be a callback post (Dash has not set up yet)."""
    app = create_app(database)
    response = app.server.test_client().post("/_dash-update-component", json={"output": ["x"]})
    assert response.status_code == 400


def test_a_well_formed_callback_still_runs(local_app):
    client = local_app.server.test_client()
    client.get("/")
    response = client.post("/_dash-update-component", json=callback_payload(local_app, OUTPUT))
    assert response.status_code == 200
    assert "data-completeness" in response.get_json()["response"]


def test_signed_in_users_get_400_for_malformed_bodies_too(database, tmp_path):
    app = create_app(database, load_config(auth_dir(tmp_path / "auth", {"ann": ("viewer", None)})))
    client = app.server.test_client()
    sign_in(client, "ann")
    client.get("/")
    response = client.post("/_dash-update-component", json={"output": ["x"]})
    assert response.status_code == 400


def test_a_workers_first_request_may_be_the_pages_router(database):
    """Dash registers the pages router callback only in its first-request set-up, after this
    check: with several gunicorn workers a browser's router call can be a worker's first
    request, and must not be refused as a callback that does not exist (it was: 400)."""
    warm = create_app(database)
    warm.server.test_client().get("/")
    router = next(key for key in warm.callback_map if "_pages_content.children" in key)
    body = {"output": router,
            "outputs": [{"id": "_pages_content", "property": "children"},
                        {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/costs"},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "state": [], "changedPropIds": ["_pages_location.pathname"]}
    fresh = create_app(database)
    response = fresh.server.test_client().post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    # Once set up, an unknown output is refused again.
    again = fresh.server.test_client().post("/_dash-update-component",
                                            json={**body, "output": "no-such.children"})
    assert again.status_code == 400
