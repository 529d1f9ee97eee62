"""Access to the store from callbacks and page layouts."""

from __future__ import annotations

import flask


def database() -> str | None:
    """The store of the running app (set by :func:`dashboard.app_factory.create_app`)."""
    return flask.current_app.config.get("VA_DATABASE")
