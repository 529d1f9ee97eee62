"""HTTP security headers for every response of the dashboard.

* **Content-Security-Policy**: scripts only from the app itself plus the SHA-256 hashes of
  Dash's own inline scripts (``app.csp_hashes()``: the renderer start-up and inline clientside
  callbacks), so an injected ``<script>`` cannot run. Plotly and AG Grid set inline ``style``
  attributes, hence ``style-src 'self' 'unsafe-inline'`` (styles cannot run code). Plotly's
  2-D charts used here need no ``'unsafe-eval'`` (checked by the browser tests, which fail on
  any CSP violation); only its WebGL traces would. Images may be ``data:``/``blob:`` URLs
  (the chart PNG download). Nothing may frame the app (``frame-ancestors 'none'``), forms post
  only to the app or the OIDC provider, and no plugin, base-URI or worker tricks are allowed.
* ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin``, ``Cross-Origin-Opener-Policy: same-origin``.
* ``Cache-Control: no-store`` on everything except the versioned static bundles, so no page,
  callback result or download is kept by a browser or proxy cache.

Request checks (:func:`install_request_checks`), before sign-in and role checks:

* **Host header in local mode**: without sign-in the app answers only requests addressed to
  ``127.0.0.1``, ``localhost`` or ``[::1]`` (any port); any other ``Host`` gets 421. A web page
  on another site could otherwise rebind its own name to 127.0.0.1 (DNS rebinding) and read the
  dashboard through the visitor's browser as a same-origin page.
* **Callback bodies**: a request to ``/_dash-update-component`` whose JSON does not have the
  shape of a call of a registered callback (an object naming a known output, with as many
  inputs and states as that callback has, each an ``{id, property}`` object) gets 400 with a
  short reason instead of reaching Dash, where it raised (HTTP 500).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dash
import flask

#: Paths of static files that hold no data (cacheable).
STATIC_PREFIXES = ("/_dash-component-suites/", "/assets/", "/vendor/bootstrap/", "/_favicon.ico")


#: ``Host`` values a local (no sign-in) app answers, with any port.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_HOST = re.compile(r"(?P<name>\[[^\]]*\]|[^:\[\]]*)(:\d{1,5})?")
CALLBACK_PATH_SUFFIX = "/_dash-update-component"


def is_local_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this computer's loopback address (any port).

    Examples
    --------
    >>> [is_local_host(h) for h in ("127.0.0.1:8050", "localhost", "[::1]:80", "LocalHost")]
    [True, True, True, True]
    >>> [is_local_host(h) for h in ("evil.example", "127.0.0.1.evil.example", "localhost:x", None)]
    [False, False, False, False]
    """
    match = _HOST.fullmatch((host or "").strip())
    return bool(match) and match.group("name").lower() in LOCAL_HOSTS


def _is_dependency(item: Any) -> bool:
    """An input/state/output entry: ``{id, property}``, or a list of them (pattern ``ALL``)."""
    entries = item if isinstance(item, list) else [item]
    return all(isinstance(entry, dict) and isinstance(entry.get("id"), (str, dict))
               and isinstance(entry.get("property"), str) for entry in entries)


UNKNOWN_OUTPUT = "no callback has this output"


def callback_body_problem(body: Any, callback_map: dict) -> str | None:
    """Why ``body`` is not a well-formed call of a callback in ``callback_map``, or ``None``.

    Examples
    --------
    >>> callbacks = {"out.children": {"inputs": [{}], "state": []}}
    >>> ok = {"output": "out.children", "outputs": {"id": "out", "property": "children"},
    ...       "inputs": [{"id": "in", "property": "value", "value": 1}],
    ...       "changedPropIds": ["in.value"]}
    >>> callback_body_problem(ok, callbacks) is None
    True
    >>> callback_body_problem({"output": "out.children"}, callbacks)
    "'inputs' must be a list of 1 {id, property} entries"
    """
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    output = body.get("output")
    if not isinstance(output, str):
        return "'output' is missing or not text"
    entry = callback_map.get(output)
    if entry is None:
        return UNKNOWN_OUTPUT
    for key in ("inputs", "state"):
        items = body.get(key, [])
        expected = len(entry.get(key) or [])
        if not (isinstance(items, list) and len(items) == expected
                and all(_is_dependency(item) for item in items)):
            return f"'{key}' must be a list of {expected} {{id, property}} entries"
    outputs = body.get("outputs", [])
    if not (_is_dependency(outputs) or (isinstance(outputs, list)
                                        and all(_is_dependency(item) for item in outputs))):
        return "'outputs' must be {id, property} entries"
    changed = body.get("changedPropIds", [])
    if not (isinstance(changed, list) and all(isinstance(prop, str) for prop in changed)):
        return "'changedPropIds' must be a list of text"
    return None


def _set_up(app: dash.Dash) -> bool:
    """Whether Dash's first-request set-up (server and pages) has run in this process."""
    done = getattr(app, "_got_first_request", None) or {}
    return bool(done.get("setup_server")) and (not app.use_pages or bool(done.get("pages")))


def _callbacks(app: dash.Dash) -> dict:
    """The app's callbacks by output id. Before its first request has run Dash's set-up (which
    needs the signed-in user, so it comes after these checks), callbacks declared with
    ``dash.callback`` still wait in Dash's global map."""
    from dash import _callback

    if not _callback.GLOBAL_CALLBACK_MAP:
        return app.callback_map
    return {**_callback.GLOBAL_CALLBACK_MAP, **app.callback_map}


def install_request_checks(app: dash.Dash, local_only: bool) -> None:
    """Refuse requests to another host in local mode (``local_only``: no sign-in), and
    malformed callback bodies, before any other before-request hook (sign-in included) runs."""
    server = app.server

    def check_request() -> flask.Response | None:
        request = flask.request
        if local_only and not is_local_host(request.headers.get("Host")):
            return flask.Response(
                "This dashboard has no sign-in configured and answers only requests addressed "
                "to 127.0.0.1, localhost or [::1].", 421, mimetype="text/plain")
        if request.method == "POST" and request.path.endswith(CALLBACK_PATH_SUFFIX):
            body = request.get_json(silent=True)
            problem = callback_body_problem(body, _callbacks(app))
            if problem == UNKNOWN_OUTPUT and not _set_up(app):
                # Dash registers some callbacks (the pages router) only in its first-request
                # set-up, which runs after this check: a worker whose first request is a
                # callback cannot know them yet. The body's shape is checked once it can.
                problem = None
            if problem is not None:
                return flask.jsonify(error=f"malformed callback request: {problem}"), 400
        return None

    server.before_request_funcs.setdefault(None, []).insert(0, check_request)


def content_security_policy(script_hashes: Sequence[str], form_targets: Sequence[str] = ()) -> str:
    """The CSP header value.

    Examples
    --------
    >>> policy = content_security_policy(["'sha256-abc='"], ["https://idp.example.org"])
    >>> "script-src 'self' 'sha256-abc='" in policy, "frame-ancestors 'none'" in policy
    (True, True)
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'", *form_targets],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def install(app: dash.Dash, form_targets: Sequence[str] = ()) -> None:
    """Add the security headers to every response of ``app``'s server.

    ``form_targets`` are extra origins forms may post to (the OIDC provider).
    """
    cached: dict[str, object] = {"count": -1, "policy": ""}

    def policy() -> str:
        # Inline scripts are known once Dash has set itself up (first request); recompute
        # only when their number changes.
        hashes = app.csp_hashes()
        if len(hashes) != cached["count"]:
            cached["policy"] = content_security_policy(hashes, form_targets)
            cached["count"] = len(hashes)
        return str(cached["policy"])

    @app.server.after_request
    def add_headers(response: flask.Response) -> flask.Response:
        headers = response.headers
        headers["Content-Security-Policy"] = policy()
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not flask.request.path.startswith(STATIC_PREFIXES):
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response
