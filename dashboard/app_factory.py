"""Build the Dash application (kept out of ``app.py`` so tests can create apps per store)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import dash
import flask

from dashboard import security
from dashboard.auth import web as auth_web
from dashboard.auth.config import AuthConfig
from dashboard.auth.gate import gate_pages
from dashboard.availability import guard_layout
from dashboard.compute_cache import install_fork_gate
from dashboard.exports import register_export_callbacks
from dashboard.layout import register_callbacks, shell

PAGES_FOLDER = Path(__file__).parent / "pages"
# Bootstrap's CSS is served by the app itself: a CDN is unreachable on many hospital networks.
BOOTSTRAP_CSS_DIR = resources.files("flask_bootstrap") / "static" / "bootstrap5" / "css"
BOOTSTRAP_ROUTE = "/vendor/bootstrap/"


def create_app(database: str | None = None, auth_config: AuthConfig | None = None) -> dash.Dash:
    """A Dash app reading the store named by ``database`` (URL or SQLite path).

    The store location travels in the Flask config rather than a module global, so several
    apps (tests, workers) can each have their own. With ``auth_config``
    (:func:`dashboard.auth.config.load_config`) every request needs a signed-in user; without
    it the app answers loopback clients only, as the local admin.

    Examples
    --------
    >>> app = create_app("sqlite:///instance/vertebral_augmentation.db")  # doctest: +SKIP
    >>> app.server.test_client().get("/").status_code  # doctest: +SKIP
    200
    """
    server = flask.Flask(__name__)
    server.add_url_rule(f"{BOOTSTRAP_ROUTE}<path:name>", "bootstrap_css",
                        lambda name: flask.send_from_directory(str(BOOTSTRAP_CSS_DIR), name))
    app = dash.Dash(
        # The package name makes Dash load pages as ``dashboard.pages.<name>``, their real import
        # name, so importing a page module elsewhere never registers the page twice.
        "dashboard",
        server=server,
        use_pages=True,
        pages_folder=str(PAGES_FOLDER),
        external_stylesheets=[f"{BOOTSTRAP_ROUTE}bootstrap.min.css"],
        title="Vertebral augmentation outcomes",
        suppress_callback_exceptions=True,
    )
    # The page's language, for screen readers and hyphenation (axe: html-has-lang).
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)
    app.server.config["VA_DATABASE"] = database
    # Never the Dash dev tools or Flask debugger, whatever DASH_DEBUG says: tracebacks would
    # reach the browser.
    app.server.config["DEBUG"] = False
    gate_pages()  # pages declaring required_role show "not permitted" to lower roles
    from dashboard import alerts

    alerts.install()  # quality alerts after uploads, when VA_ALERTS_CONFIG is set
    auth_web.install(app, auth_config)
    # Before sign-in's hook: the Host rule of local mode, well-formed callback bodies (400).
    security.install_request_checks(app, local_only=auth_config is None)
    security.install(app, [auth_config.oidc.issuer_origin]
                     if auth_config is not None and auth_config.oidc is not None else [])
    # A function: filter options and the demo banner follow the data; during a database
    # outage it is the outage page instead (dashboard.availability).
    app.layout = guard_layout(shell)
    register_callbacks(app)
    register_export_callbacks(app)  # server-side CSV downloads (dashboard.exports)
    install_fork_gate(app.server)  # background jobs fork while no other request runs
    return app
