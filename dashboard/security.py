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
"""

from __future__ import annotations

from collections.abc import Sequence

import dash
import flask

#: Paths of static files that hold no data (cacheable).
STATIC_PREFIXES = ("/_dash-component-suites/", "/assets/", "/vendor/bootstrap/", "/_favicon.ico")


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
