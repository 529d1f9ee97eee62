"""Saved views in the shell: "Views" opens a dialog that lists the views the user may open
(their own and the published ones), saves the current view under a name, and lets the owner
delete theirs and an admin publish, withdraw or delete any (stored and audited by
:mod:`data.views`).

Only the address is saved, rebuilt from the parsed filters and page settings
(:func:`canonical_query`): no other text, and never patient data. Opening a view is opening its
address, so the records shown stay restricted to the user's facilities.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, html

from dashboard.auth import User, current_user
from dashboard.components import safe_callback
from dashboard.context import database
from dashboard.state import (
    PAGE_SETTINGS,
    filter_from_query,
    query_from_filter,
    setting_text,
    settings_from_query,
)
from data import views as stored_views

PUBLISH_ROLE = "admin"


def canonical_query(path: str, search: str | None) -> str:
    """The query string of a view: the filters and the page's settings, nothing else.

    >>> canonical_query("/nowhere", "?country=US&note=anything&from=2023-01-01")
    '?from=2023-01-01&country=US'
    """
    settings = PAGE_SETTINGS.get(path, ())
    values = settings_from_query(path, search)
    kept = {s.key: setting_text(values[s.key]) for s in settings if values[s.key] != s.default}
    return query_from_filter(filter_from_query(search), kept)


def views_control(user: User) -> html.Div:
    """The "Views" button and its dialog (the publish choice only for admins)."""
    admin = user.has_role(PUBLISH_ROLE)
    return html.Div([
        dbc.Button("Views", id="views-open", color="light", size="sm",
                   className="ms-2 text-nowrap", title="Save this view or open a saved one"),
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle("Saved views")),
            dbc.ModalBody([
                html.Div(id="views-list"),
                html.H3("Save this view", className="h6 mt-3"),
                dbc.Label("Name", html_for="view-name", className="small mb-0"),
                dbc.Input(id="view-name", maxLength=stored_views.MAX_NAME,
                          placeholder="e.g. Cement embolism, FAC-009"),
                dbc.Checkbox(id="view-publish", label="Publish to everyone", value=False,
                             className="small mt-1",
                             style=None if admin else {"display": "none"}),
                dbc.Button("Save view", id="view-save", color="primary", size="sm",
                           className="mt-2"),
                html.Div(id="view-status", role="status", className="small mt-2"),
            ]),
        ], id="views-modal", is_open=False),
    ], className="d-flex align-items-center")


def view_list(user: User) -> html.Div:
    """The views ``user`` may open, each a link to its address, with the actions allowed."""
    admin = user.has_role(PUBLISH_ROLE)
    found = stored_views.list_views(database(), user.name)
    if not found:
        return html.P("No saved views yet.", className="small text-muted", id="views-empty")
    items = []
    for view in found:
        actions = []
        if admin:
            actions.append(dbc.Button("Withdraw" if view.published else "Publish",
                                      id={"type": "view-publish-toggle", "view": view.view_id},
                                      size="sm", color="link", className="py-0"))
        if admin or view.owner == user.name:
            actions.append(dbc.Button("Delete", id={"type": "view-delete", "view": view.view_id},
                                      size="sm", color="link", className="py-0 text-danger"))
        note = " · published" if view.published else ""
        owner = "" if view.owner == user.name else f" · by {view.owner}"
        items.append(html.Li([html.A(view.name, href=view.address, className="view-link"),
                              html.Span(f" {view.path}{note}{owner}",
                                        className="small text-muted"), *actions]))
    return html.Ul(items, id="views-items", className="list-unstyled mb-0")


def toggle_views(_clicks, is_open):
    return not is_open


def update_views(_open, _save, _deletes, _publishes, name, publish, path, search):
    """Save, delete or publish as asked, then list the views (one callback: one list)."""
    user, trigger, status = current_user(), ctx.triggered_id, ""
    admin = user.has_role(PUBLISH_ROLE)
    try:
        if trigger == "view-save":
            path = path or "/"
            view = stored_views.save_view(database(), user.name, name or "", path,
                                          canonical_query(path, search),
                                          published=bool(publish) and admin)
            status = f"Saved “{view.name}”."
        elif isinstance(trigger, dict) and trigger.get("type") == "view-delete":
            if not ctx.triggered[0]["value"]:  # the button was just drawn, not clicked
                return dash.no_update, dash.no_update
            stored_views.delete_view(database(), trigger["view"], user.name, admin)
            status = "Deleted."
        elif isinstance(trigger, dict) and trigger.get("type") == "view-publish-toggle":
            if not ctx.triggered[0]["value"] or not admin:
                return dash.no_update, dash.no_update
            shown = {v.view_id: v for v in stored_views.list_views(database(), user.name)}
            current = shown.get(trigger["view"])
            if current is None:
                raise stored_views.ViewError("no such view")
            stored_views.publish_view(database(), current.view_id, user.name,
                                      not current.published)
            status = "Withdrawn." if current.published else "Published to everyone."
    except stored_views.ViewError as error:
        status = str(error)
    return view_list(user), status


def register_view_callbacks(app: dash.Dash) -> None:
    """Attach the saved-view callbacks to ``app``."""
    app.callback(Output("views-modal", "is_open"), Input("views-open", "n_clicks"),
                 State("views-modal", "is_open"), prevent_initial_call=True)(toggle_views)
    app.callback(
        Output("views-list", "children"), Output("view-status", "children"),
        Input("views-open", "n_clicks"), Input("view-save", "n_clicks"),
        Input({"type": "view-delete", "view": ALL}, "n_clicks"),
        Input({"type": "view-publish-toggle", "view": ALL}, "n_clicks"),
        State("view-name", "value"), State("view-publish", "value"),
        State("page-url", "pathname"), State("page-url", "search"),
        prevent_initial_call=True,
    )(safe_callback(2)(update_views))
