"""OIDC single sign-on end to end against a small fake OpenID provider on loopback.

The provider serves a discovery document, an authorize endpoint that redirects back with a
code, a token endpoint returning an RS256-signed ID token (checking the client's secret), and
its JWKS. The dashboard talks to it over real HTTP through Authlib.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import flask
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from dashboard.app_factory import create_app
from dashboard.auth import SESSION_KEY
from dashboard.auth.config import load_config
from data import import_dataframe, store
from data.audit import read_events
from data.demo import demo_records
from tests.auth_support import write_private

CLIENT_ID = "va-dashboard"
CLIENT_SECRET = "a-client-secret-of-the-test-provider"


class FakeProvider:
    """A minimal OpenID provider: one signing key, codes held in memory."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.signing_key = self.key  # a test may swap in a key the JWKS does not publish
        self.claims: dict = {}
        self.codes: dict[str, dict] = {}
        self.app = flask.Flask("fake-oidc")
        self.app.add_url_rule("/.well-known/openid-configuration", "discovery", self.discovery)
        self.app.add_url_rule("/authorize", "authorize", self.authorize)
        self.app.add_url_rule("/token", "token", self.token, methods=["POST"])
        self.app.add_url_rule("/jwks", "jwks", self.jwks)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def discovery(self):
        return flask.jsonify(
            issuer=self.base, authorization_endpoint=f"{self.base}/authorize",
            token_endpoint=f"{self.base}/token", jwks_uri=f"{self.base}/jwks",
            response_types_supported=["code"], subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            token_endpoint_auth_methods_supported=["client_secret_basic"])

    def authorize(self):
        args = flask.request.args
        assert args["client_id"] == CLIENT_ID and args["response_type"] == "code"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": args.get("nonce"), "redirect_uri": args["redirect_uri"]}
        return flask.redirect(f"{args['redirect_uri']}?"
                              + urlencode({"code": code, "state": args["state"]}))

    def token(self):
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if flask.request.headers.get("Authorization") != f"Basic {expected}":
            return flask.jsonify(error="invalid_client"), 401
        grant = self.codes.pop(flask.request.form.get("code", ""), None)
        if grant is None or grant["redirect_uri"] != flask.request.form.get("redirect_uri"):
            return flask.jsonify(error="invalid_grant"), 400
        now = int(time.time())
        claims = {"iss": self.base, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                  "nonce": grant["nonce"], **self.claims}
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.signing_key)
        return flask.jsonify(access_token=secrets.token_urlsafe(16), token_type="Bearer",
                             expires_in=300, id_token=id_token)

    def jwks(self):
        return flask.jsonify(keys=[self.key.as_dict(private=False)])


@pytest.fixture(scope="module")
def provider():
    fake = FakeProvider()
    fake.thread.start()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def oidc_app(provider, tmp_path):
    store.dispose_engines()
    database = f"sqlite:///{tmp_path / 'store.db'}"
    import_dataframe(demo_records(300, seed=4), "demo", database, synthetic=True)
    write_private(tmp_path / "secret_key", secrets.token_urlsafe(48))
    write_private(tmp_path / "oidc_secret", CLIENT_SECRET)
    config = write_private(tmp_path / "auth.toml", f"""
secret_key_file = "secret_key"
session_cookie_secure = false
[oidc]
name = "Test SSO"
server_metadata_url = "{provider.base}/.well-known/openid-configuration"
client_id = "{CLIENT_ID}"
client_secret_file = "oidc_secret"
username_claim = "preferred_username"
[oidc.roles]
"va-viewers" = "viewer"
"va-analysts" = "analyst"
[oidc.facilities]
"site-north" = ["FAC-001", "FAC-002"]
""")
    app = create_app(database, load_config(config))
    yield app, database
    store.dispose_engines()


def _sign_in(app, provider, claims, next_url="/costs"):
    """Browser steps: app -> provider (real HTTP) -> app callback. Returns (client, response)."""
    provider.claims = claims
    client = app.server.test_client()
    start = client.get("/login/oidc?" + urlencode({"next": next_url}))
    assert start.status_code == 302 and start.headers["Location"].startswith(provider.base)
    at_provider = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == "/login/oidc/callback" and "code" in parse_qs(back.query)
    return client, client.get(f"{back.path}?{back.query}")


def test_login_page_offers_single_sign_on(oidc_app):
    app, _database = oidc_app
    page = app.server.test_client().get("/login").get_data(as_text=True)
    assert "Sign in with Test SSO" in page and 'id="login-form"' not in page


def test_oidc_sign_in_maps_groups_to_highest_role_and_facilities(oidc_app, provider):
    app, database = oidc_app
    client, done = _sign_in(app, provider, {"sub": "u-123", "preferred_username": "dr.north",
                                            "groups": ["va-viewers", "va-analysts",
                                                       "site-north", "unrelated"]})
    assert done.status_code == 302 and done.headers["Location"] == "/costs"
    with client.session_transaction() as session:
        assert session[SESSION_KEY] == {"name": "dr.north", "role": "analyst",
                                        "facilities": ["FAC-001", "FAC-002"], "source": "oidc"}
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200 and "dr.north" in layout.get_data(as_text=True)
    assert "sign_in" in read_events(database).query("actor == 'dr.north'").action.tolist()


def test_oidc_user_without_a_mapped_group_is_refused(oidc_app, provider):
    app, _database = oidc_app
    client, refused = _sign_in(app, provider, {"sub": "u-9", "groups": ["staff"]})
    assert refused.status_code == 403
    assert "not in any group that grants access" in refused.get_data(as_text=True)
    assert client.get("/_dash-layout").status_code == 401


def test_oidc_id_token_signed_with_an_unknown_key_is_refused(oidc_app, provider):
    app, _database = oidc_app
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    try:
        client, refused = _sign_in(app, provider, {"sub": "u-1", "groups": ["va-analysts"]})
    finally:
        provider.signing_key = provider.key
    assert refused.status_code == 401
    assert "did not confirm your sign-in" in refused.get_data(as_text=True)
    assert client.get("/_dash-layout").status_code == 401


def test_oidc_callback_with_a_forged_state_is_refused(oidc_app, provider):
    app, _database = oidc_app
    client = app.server.test_client()
    client.get("/login/oidc")
    refused = client.get("/login/oidc/callback?code=abc&state=forged")
    assert refused.status_code == 401
    assert client.get("/_dash-layout").status_code == 401
