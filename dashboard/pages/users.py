"""Users (admin only): local accounts, their roles and facilities, and the recent audit log.

Lists the accounts of the users file (name, role, facilities — never password hashes), lets
an admin change a role or facilities, add an account with a one-time password, or remove one,
and shows the latest audit-log events. Every callback here requires the admin role on the
server (``requires_role("admin")``); the page itself shows "not permitted" to other roles.
OIDC users are not listed: their roles come from the identity provider's groups.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import flask
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html

from dashboard.auth import CONFIG_KEY, ROLES, current_user, requires_role
from dashboard.auth import users as users_file
from dashboard.auth.web import audit
from dashboard.components import page_header
from dashboard.context import database

dash.register_page(__name__, path="/users", name="Users", title="Users", order=90,
                   user_menu=True,  # linked beside the user name, not in the page navigation
                   global_filters=False,  # the filter panel is hidden here: no filter applies
                   required_role="admin")

AUDIT_ROWS = 50


def _users_path():
    if not flask.has_app_context():  # a layout built outside the app (tools, tests): none
        return None
    config = flask.current_app.config.get(CONFIG_KEY)
    return config.users_file if config is not None else None


def _facility_text(facilities) -> str:
    return ", ".join(facilities) if facilities is not None else "all"


def _parse_facilities(text: str | None) -> list[str] | None:
    """"F01, F02" -> ["F01", "F02"]; blank or "all" -> None (every facility)."""
    values = [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]
    if not values or [v.lower() for v in values] == ["all"]:
        return None
    return values


def users_table() -> html.Div:
    path = _users_path()
    accounts = users_file.read_accounts(path) if path is not None else {}
    if not accounts:
        return html.Div(dbc.Alert("No local accounts yet.", color="info"), id="users-table")
    rows = [html.Tr([html.Td(a.name), html.Td(a.role), html.Td(_facility_text(a.facilities))])
            for a in sorted(accounts.values(), key=lambda a: a.name)]
    return html.Div(dbc.Table([
        html.Thead(html.Tr([html.Th("User"), html.Th("Role"), html.Th("Facilities")])),
        html.Tbody(rows)], bordered=False, hover=True, size="sm"), id="users-table")


def _field_value(value) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_field_value(v)}"
                         for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_field_value(v) for v in value)
    return "" if value is None else str(value)


def detail_fields(detail) -> html.Dl | str:
    """An audit event's detail as labelled fields (a description list), not raw JSON.

    >>> detail_fields({"rows": 12, "file_name": "a.csv"}).children[0].children
    'file name'
    """
    if not detail:
        return ""
    if not isinstance(detail, dict):
        return str(detail)
    items = []
    for key, value in sorted(detail.items()):
        items += [html.Dt(str(key).replace("_", " "), className="col-sm-4 fw-normal text-muted"),
                  html.Dd(_field_value(value), className="col-sm-8 mb-0")]
    return html.Dl(items, className="row mb-0")


def audit_table() -> html.Div:
    from data.audit import read_events

    try:
        events = read_events(database(), limit=AUDIT_ROWS)
    except Exception:  # noqa: BLE001 - the page stays usable without the log
        return html.Div(dbc.Alert("The audit log could not be read.", color="warning"),
                        id="users-audit")
    if events.empty:
        return html.Div(html.P("No events yet.", className="text-muted"), id="users-audit")
    rows = [html.Tr([html.Td(str(pd.Timestamp(e.occurred_at).strftime("%Y-%m-%d %H:%M:%S"))),
                     html.Td(str(e.actor)), html.Td(str(e.action)),
                     html.Td(detail_fields(e.detail))])
            for e in events.itertuples()]
    return html.Div(dbc.Table([
        html.Thead(html.Tr([html.Th("When (UTC)"), html.Th("Who"), html.Th("What"),
                            html.Th("Detail")])),
        html.Tbody(rows)], size="sm", className="small"), id="users-audit")


def _user_options() -> list[dict]:
    path = _users_path()
    accounts = users_file.read_accounts(path) if path is not None else {}
    return [{"label": name, "value": name} for name in sorted(accounts)]


def layout(**_query) -> html.Div:
    header = page_header("Users", "Local accounts, their roles and facilities, and the recent "
                         "audit log. Roles: viewer (pages), analyst (adds downloads and the "
                         "record grid), admin (adds uploads and this page).")
    if _users_path() is None:
        return html.Div([header, dbc.Alert([
            "Sign-in is not configured, so there are no accounts to manage. Create a "
            "configuration with ", html.Code("python -m dashboard.auth init DIR"),
            " and start the app with ", html.Code("--auth-config DIR/auth.toml"), "."],
            color="info", id="users-not-configured"), html.H2("Audit log", className="h5"),
            audit_table()])
    role_options = [{"label": r, "value": r} for r in ROLES]
    return html.Div([
        header,
        html.Div(id="users-message", role="status"),
        dbc.Row([
            dbc.Col([html.H2("Accounts", className="h5"), users_table()], lg=6),
            dbc.Col([
                dbc.Card(dbc.CardBody([
                    html.H2("Change or remove", className="h6"),
                    dbc.Label("User", html_for="users-select", className="small mb-0"),
                    dcc.Dropdown(id="users-select", options=_user_options(), className="mb-2"),
                    dbc.Label("Role", html_for="users-role", className="small mb-0"),
                    dcc.Dropdown(id="users-role", options=role_options, className="mb-2"),
                    dbc.Label("Facilities (comma-separated; blank = all)",
                              html_for="users-facilities", className="small mb-0"),
                    dbc.Input(id="users-facilities", className="mb-2", size="sm"),
                    dbc.Button("Save", id="users-save", size="sm", className="me-2"),
                    dbc.Checkbox(id="users-remove-confirm", label="Yes, remove this user",
                                 className="d-inline-block ms-3 small"),
                    dbc.Button("Remove", id="users-remove", size="sm", color="danger",
                               outline=True, className="ms-2"),
                ]), className="mb-3"),
                dbc.Card(dbc.CardBody([
                    html.H2("Add an account", className="h6"),
                    dbc.Label("User name", html_for="users-new-name", className="small mb-0"),
                    dbc.Input(id="users-new-name", className="mb-2", size="sm",
                              autoComplete="off"),
                    dbc.Label("Role", html_for="users-new-role", className="small mb-0"),
                    dcc.Dropdown(id="users-new-role", options=role_options, value="viewer",
                                 clearable=False, className="mb-2"),
                    dbc.Label("Facilities (comma-separated; blank = all)",
                              html_for="users-new-facilities", className="small mb-0"),
                    dbc.Input(id="users-new-facilities", className="mb-2", size="sm"),
                    dbc.Label(f"One-time password (at least {users_file.MIN_PASSWORD_LENGTH} "
                              "characters; the user changes it with the administrator)",
                              html_for="users-new-password", className="small mb-0"),
                    dbc.Input(id="users-new-password", type="password", className="mb-2",
                              size="sm", autoComplete="new-password"),
                    dbc.Button("Add", id="users-add", size="sm"),
                ])),
            ], lg=6),
        ]),
        html.H2("Audit log", className="h5 mt-3"),
        html.P(f"The latest {AUDIT_ROWS} events, newest first.", className="small text-muted"),
        audit_table(),
    ])


def _message(text: str, ok: bool) -> dbc.Alert:
    return dbc.Alert(text, color="success" if ok else "danger", className="py-2",
                     id="users-result")


def _change(name, role, facilities_text) -> str:
    actor = current_user()
    if not name:
        raise users_file.UsersFileError("choose a user")
    facilities = _parse_facilities(facilities_text)
    if name == actor.name and role is not None and role != "admin":
        raise users_file.UsersFileError("you cannot lower your own role (ask another admin)")
    before, after = users_file.update_user(_users_path(), name, role=role,
                                           facilities=facilities)
    audit(actor.name, "role_change", {
        "user": name, "from": before.role, "to": after.role,
        "facilities_from": list(before.facilities) if before.facilities is not None else "all",
        "facilities_to": list(after.facilities) if after.facilities is not None else "all"})
    return f"{name}: {after.role}, facilities {_facility_text(after.facilities)}"


def _remove(name, confirmed) -> str:
    actor = current_user()
    if not name:
        raise users_file.UsersFileError("choose a user")
    if not confirmed:
        raise users_file.UsersFileError("tick \"Yes, remove this user\" first")
    if name == actor.name:
        raise users_file.UsersFileError("you cannot remove your own account")
    removed = users_file.remove_user(_users_path(), name)
    audit(actor.name, "user_removed", {"user": removed.name, "role": removed.role})
    return f"removed {name}"


def _add(name, role, facilities_text, password) -> str:
    actor = current_user()
    account = users_file.add_user(_users_path(), (name or "").strip(), role or "",
                                  password or "", _parse_facilities(facilities_text))
    audit(actor.name, "user_added", {"user": account.name, "role": account.role,
                                     "facilities": list(account.facilities or []) or None})
    return f"added {account.name} ({account.role})"


@callback(
    Output("users-message", "children"),
    Output("users-table", "children"),
    Output("users-select", "options"),
    Output("users-new-password", "value"),
    Output("users-audit", "children"),
    Input("users-save", "n_clicks"),
    Input("users-remove", "n_clicks"),
    Input("users-add", "n_clicks"),
    State("users-select", "value"),
    State("users-role", "value"),
    State("users-facilities", "value"),
    State("users-remove-confirm", "value"),
    State("users-new-name", "value"),
    State("users-new-role", "value"),
    State("users-new-facilities", "value"),
    State("users-new-password", "value"),
    prevent_initial_call=True,
)
@requires_role("admin")
def manage_users(_save, _remove_clicks, _add_clicks, name, role, facilities, confirmed,
                 new_name, new_role, new_facilities, new_password):
    """Apply one change (save, remove or add) and refresh the lists; errors become a message."""
    try:
        if ctx.triggered_id == "users-save":
            text = _change(name, role, facilities)
        elif ctx.triggered_id == "users-remove":
            text = _remove(name, confirmed)
        elif ctx.triggered_id == "users-add":
            text = _add(new_name, new_role, new_facilities, new_password)
        else:
            return (dash.no_update,) * 5
        message = _message(text, True)
    except users_file.UsersFileError as error:
        message = _message(str(error), False)
    # The password field is always cleared: it is never sent back to the browser.
    return (message, users_table().children, _user_options(), "",
            audit_table().children)


@callback(
    Output("users-role", "value"),
    Output("users-facilities", "value"),
    Input("users-select", "value"),
    prevent_initial_call=True,
)
@requires_role("admin")
def show_user(name):
    """Fill the change form with the chosen user's current role and facilities."""
    path = _users_path()
    account = users_file.read_accounts(path).get(name) if path is not None and name else None
    if account is None:
        return None, ""
    return account.role, ", ".join(account.facilities) if account.facilities else ""
