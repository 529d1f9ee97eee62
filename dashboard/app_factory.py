"""Build the Dash application (kept out of ``app.py`` so tests can create apps per store)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import dash
import flask

from dashboard.layout import register_callbacks, shell

PAGES_FOLDER = Path(__file__).parent / "pages"
# Bootstrap's CSS is served by the app itself: a CDN is unreachable on many hospital networks.
BOOTSTRAP_CSS_DIR = resources.files("flask_bootstrap") / "static" / "bootstrap5" / "css"
BOOTSTRAP_ROUTE = "/vendor/bootstrap/"


def create_app(database: str | None = None) -> dash.Dash:
    """A Dash app reading the store named by ``database`` (URL or SQLite path).

    The store location travels in the Flask config rather than a module global, so several
    apps (tests, workers) can each have their own.
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
    app.server.config["VA_DATABASE"] = database
    app.layout = shell  # a function: filter options and the demo banner follow the data
    register_callbacks(app)
    return app
