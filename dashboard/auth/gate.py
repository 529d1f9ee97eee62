"""Pages that need a role: ``dash.register_page(..., required_role="analyst")``.

:func:`gate_pages` (run by ``create_app``) wraps the layout of every such page so that a user
without the role gets a "not permitted" message instead of the page, and the navigation bar
(``dashboard.layout``) leaves the page out for them. Hiding is only a courtesy: the page's
callbacks must still be decorated with :func:`dashboard.auth.requires_role`, which is what
the server enforces.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard.auth import current_user


def page_role(page: dict[str, Any]) -> str:
    """The role a registered page needs (``viewer`` when it does not say)."""
    return page.get("required_role") or "viewer"


def may_see(page: dict[str, Any]) -> bool:
    """True when the current user has the role ``page`` needs."""
    return current_user().has_role(page_role(page))


def not_permitted(role: str) -> html.Div:
    """The message shown instead of a page the user's role does not include.

    >>> not_permitted("admin").id
    'not-permitted'
    """
    return html.Div(dbc.Alert([
        html.H1("Not permitted", className="h5"),
        html.P(f"This page needs the {role} role. Ask an administrator if you need access.",
               className="mb-0"),
    ], color="warning"), id="not-permitted")


def role_gated(role: str, layout: Callable[..., Any] | Any) -> Callable[..., Any]:
    """A page layout that shows ``layout`` only to users with ``role``.

    >>> gated = role_gated("admin", lambda **kwargs: "secret page")
    >>> gated.va_required_role
    'admin'
    """
    @functools.wraps(layout if callable(layout) else (lambda **kwargs: None))
    def gated(**kwargs):
        if not current_user().has_role(role):
            return not_permitted(role)
        return layout(**kwargs) if callable(layout) else layout

    gated.va_required_role = role  # type: ignore[attr-defined]
    gated.va_gated = True  # type: ignore[attr-defined]
    return gated


def gate_pages() -> None:
    """Wrap the layout of every registered page that declares ``required_role``."""
    for page in dash.page_registry.values():
        role = page.get("required_role")
        layout = page.get("layout")
        if role and not getattr(layout, "va_gated", False):
            page["layout"] = role_gated(role, layout)
