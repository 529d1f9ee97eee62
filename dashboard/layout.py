"""The app shell: navigation, the global filter panel, the match count and the page container.

Filter state lives in the URL query string (``dashboard.state``); the ``filter-state`` store
holds its parsed form for page callbacks. Each page's own settings (the controls it declares
with :func:`dashboard.state.register_settings`) are written to the URL through ``page-url``,
a location that does not re-render the page, and restored from it by the page's layout.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html
from werkzeug.exceptions import Forbidden

from analysis.filters import AGE_BANDS, LEVEL_GROUPS, RecordFilter, filter_mask
from dashboard import data_access
from dashboard.auth import User, auth_enabled, current_user, requires_role
from dashboard.auth.gate import may_see
from dashboard.components import safe_callback
from dashboard.compute_cache import cached_output
from dashboard.state import (
    PAGE_SETTINGS,
    filter_from_query,
    page_parameters,
    query_from_filter,
    query_with_settings,
)
from dashboard.suppression import format_count, rounded_count
from dashboard.views import register_view_callbacks, views_control
from data.dictionary import FIELDS_BY_NAME

FILTER_CONTROLS: dict[str, str] = {  # RecordFilter field -> control id
    "countries": "filter-country", "regions": "filter-region", "facilities": "filter-facility",
    "operators": "filter-operator", "procedures": "filter-procedure",
    "etiologies": "filter-etiology", "age_bands": "filter-age", "sexes": "filter-sex",
    "levels": "filter-levels",
}
SEX_LABELS = {"F": "Female", "M": "Male", "X": "Other/unknown"}
#: Downloads (the HTML report, CSV files) need this role; viewers see pages only.
# The HTML report holds the page as shown (aggregated, suppressed): every role may share it.
REPORT_ROLE = "viewer"


def _options(values) -> list[dict]:
    return [{"label": str(v), "value": str(v)} for v in values]


def filter_panel(records: pd.DataFrame) -> html.Div:
    """Controls of every global filter, with options from the data."""
    def present(column: str) -> list[str]:
        return sorted(str(v) for v in records[column].dropna().unique())

    first = records["procedure_date"].min() if len(records) else None
    last = records["procedure_date"].max() if len(records) else None

    def dropdown(field: str, label: str, options: list[dict]) -> html.Div:
        return html.Div([
            dbc.Label(label, html_for=FILTER_CONTROLS[field], className="small mb-0"),
            dcc.Dropdown(id=FILTER_CONTROLS[field], options=options, multi=True, placeholder="All",
                         className="mb-2"),
        ])

    return html.Div([
        html.H2("Filters", className="h6"),
        dbc.Label("Procedure date", html_for="filter-dates", className="small mb-0"),
        dcc.DatePickerRange(id="filter-dates", min_date_allowed=first, max_date_allowed=last,
                            display_format="YYYY-MM-DD", clearable=True, className="mb-2 d-block",
                            start_date_placeholder_text="From", end_date_placeholder_text="To"),
        dropdown("procedures", "Procedure", [
            {"label": "Vertebroplasty", "value": "vertebroplasty"},
            {"label": "Kyphoplasty", "value": "kyphoplasty"}]),
        dropdown("countries", "Country", _options(present("country"))),
        dropdown("regions", "Region", _options(present("region"))),
        dropdown("facilities", "Facility", _options(present("facility_id"))),
        dropdown("operators", "Operator", _options(present("operator_id"))),
        dropdown("etiologies", "Etiology", _options(FIELDS_BY_NAME["etiology"].allowed)),
        dropdown("age_bands", "Age band", _options(AGE_BANDS)),
        dropdown("sexes", "Sex", [{"label": SEX_LABELS[s], "value": s} for s in ("F", "M", "X")]),
        dropdown("levels", "Levels treated", _options(LEVEL_GROUPS)),
        dbc.Button("Reset filters", id="filter-reset", color="secondary", outline=True, size="sm",
                   className="mt-1 w-100"),
    ], id="filter-panel")


def _nav_link(page: dict, class_name: str = "px-1 px-xxl-2 text-nowrap") -> dbc.NavLink:
    return dbc.NavLink(page["name"], href=page["relative_path"], active="exact",
                       className=class_name,
                       id={"type": "nav-link", "path": page["relative_path"]})


def navigation(pages: list[dict]) -> list:
    """The navbar's items in page order; pages registered with the same ``nav_group`` share
    one menu (placed where its first page is), so the bar fits one line at 1366 px."""
    items, groups = [], {}
    for page in pages:
        group = page.get("nav_group")
        if group is None:
            items.append(dbc.NavItem(_nav_link(page)))
            continue
        if group not in groups:
            groups[group] = []
            items.append((group, groups[group]))
        groups[group].append(dbc.DropdownMenuItem(
            page["name"], href=page["relative_path"],
            id={"type": "nav-link", "path": page["relative_path"]}))
    nav = []
    for item in items:
        if isinstance(item, tuple):
            label, entries = item
            item = dbc.DropdownMenu(entries, label=label, nav=True, in_navbar=True,
                                    toggle_class_name="px-1 px-xxl-2 text-nowrap",
                                    id=f"nav-group-{label.lower()}")
        nav.append(item)
    return nav


def user_menu(user: User) -> html.Div:
    """Who is signed in, their role, the administration pages they may open (registered with
    ``user_menu=True``) and "Sign out" (a note instead of the user when sign-in is off)."""
    tools = [_nav_link(page, "ms-2 p-0 text-nowrap link-light")
             for page in dash.page_registry.values() if page.get("user_menu") and may_see(page)]
    if not auth_enabled():
        return html.Div([html.Span("Local use", className="small va-nav-muted",
                                   title="Local single-user mode: sign-in is off"),
                         *tools], id="user-menu",
                        className="ms-2 text-nowrap d-flex align-items-center")
    scope = (f" · {len(user.facilities)} facilit{'y' if len(user.facilities) == 1 else 'ies'}"
             if user.facilities is not None else "")
    return html.Div([
        html.Span(user.name, id="user-name", className="small text-white fw-semibold"),
        html.Span(f"({user.role}{scope})", id="user-role", className="small va-nav-muted ms-1"),
        *tools,
        sign_out_form(),
    ], id="user-menu", className="ms-2 text-nowrap d-flex align-items-center")


def sign_out_form() -> html.Form:
    """"Sign out": a form that posts to ``/logout`` with the session's CSRF token (no script,
    so the CSP's ban on inline scripts holds; a link could be followed by another site)."""
    from dashboard.auth.web import csrf_token

    return html.Form([
        dcc.Input(type="hidden", name="csrf_token", value=csrf_token(), id="sign-out-csrf"),
        html.Button("Sign out", type="submit", id="sign-out", className="btn btn-sm btn-light"),
    ], method="POST", action="/logout", id="sign-out-form", className="ms-2 mb-0")


def demo_banner(share) -> html.Div | dbc.Alert:
    """The warning shown whenever some records are synthetic: their share, suppressed
    (:meth:`data.batches.SyntheticShare.sentence`), and how to replace or remove them."""
    if not share.any:
        return html.Div(id="demo-banner")
    sentence = share.sentence(format_count)
    if share.all:
        text = ("Synthetic demonstration data: every record was generated by the demo generator "
                "and describes no real patient. Import your facility's export to analyse real "
                f"data. {sentence}")
    else:
        text = (f"Mixed data: {sentence} They were generated by the demo generator and describe "
                "no real patient, but they are counted in every figure. An admin can remove "
                "them on the Data page (or python -m data remove-demo).")
    return dbc.Alert(text, color="warning", className="py-2 mb-2", id="demo-banner")


def shell() -> html.Div:
    """The whole page frame (a function: options and the demo banner follow the current data).

    The navigation lists only the pages the signed-in user's role includes.
    """
    try:
        user = current_user()
    except Forbidden:
        # Only Dash's one-off layout check on the app's first request gets here (the sign-in
        # gate never serves the layout to a signed-out browser): show nothing of the data.
        return html.Div([dcc.Location(id="url"), html.P("Sign-in required.", id="signed-out"),
                         dash.page_container])
    records = data_access.all_records()
    nav = navigation([page for page in dash.page_registry.values()
                      if may_see(page) and not page.get("user_menu")])
    report_button = dbc.Button(
        "Report", id="report-button", color="light", size="sm",
        className="ms-auto text-nowrap", title="Download a self-contained HTML report of this page",
        style=None if user.has_role(REPORT_ROLE) else {"display": "none"})
    banner = demo_banner(data_access.synthetic_share())
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        # The page's settings go to the address bar through this location: it updates the URL
        # without telling the page router, so a control change does not re-render the page.
        dcc.Location(id="page-url", refresh=False),
        dcc.Store(id="filter-state"),
        # The data version this page shows; data changes made on the page (an upload, removing
        # the demo data) set it, and the match count and the demo banner follow.
        dcc.Store(id="data-version", data=data_access.data_version()),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand(html.Span("VA outcomes", title="Vertebral augmentation outcomes"),
                            href="/"),
            # Below the large breakpoint (992 px) the links fold into a menu.
            html.Button(html.Span(className="navbar-toggler-icon"), id="navbar-toggler",
                        type="button", className="navbar-toggler",
                        **{"aria-label": "Menu", "aria-controls": "navbar-collapse"}),
            dbc.Collapse([
                dbc.Nav(nav, navbar=True, className="flex-wrap"),
                report_button,
                views_control(user),
                user_menu(user),
            ], id="navbar-collapse", navbar=True, is_open=False),
        ], fluid=True), color="#0b3d6e", dark=True, expand="lg", className="mb-2 va-navbar"),
        dbc.Container([
            html.Div(banner, id="demo-banner-slot"),
            dbc.Row([
                dbc.Col([
                    # Below 992 px the filters are a drawer opened by this button.
                    html.Button("Filters", id="filter-drawer-toggle", type="button",
                                className="btn btn-outline-secondary btn-sm mb-2",
                                **{"aria-controls": "filter-drawer"}),
                    dbc.Collapse(html.Aside(filter_panel(records), **{"aria-label": "Filters"}),
                                 id="filter-drawer", is_open=False),
                ], xs=12, lg=3, xxl=2, className="mb-3", id="filter-column"),
                dbc.Col([
                    html.Div(id="match-count", role="status", className="mb-2 fw-semibold"),
                    # Set by a chart click (dashboard.drilldown): the way back, and the records.
                    html.Div(id="drill-bar", className="mb-2 small"),
                    html.Main(dash.page_container, id="main"),
                ], xs=12, lg=9, xxl=10, id="main-column"),
                dcc.Download(id="report-download"),
            ]),
        ], fluid=True),
    ])


FILTER_INPUTS = [Input("filter-dates", "start_date"), Input("filter-dates", "end_date")] + [
    Input(control, "value") for control in FILTER_CONTROLS.values()]
FILTER_OUTPUTS = [Output("filter-dates", "start_date"), Output("filter-dates", "end_date")] + [
    Output(control, "value") for control in FILTER_CONTROLS.values()]


def sync_filters(search, _reset, start, end, *values_and_address):
    """Keep URL, controls and the filter store in step (one callback, so the cycle is allowed).

    The page's settings in the address bar (``page-url``: ``url`` does not see what the page
    wrote there) are kept when a filter changes, so the re-rendered page restores them."""
    *values, address = values_and_address
    trigger = ctx.triggered_id
    if trigger == "filter-reset":
        selection = RecordFilter()
    elif trigger in (None, "url"):
        selection = filter_from_query(search)  # page load, reload, or a shared link
    else:
        chosen = dict(zip(FILTER_CONTROLS, values, strict=True))
        try:
            selection = RecordFilter.from_dict({"date_from": start, "date_to": end, **chosen})
        except (ValueError, TypeError):  # a value no control offers: a forged request
            raise dash.exceptions.PreventUpdate from None
    controls = [selection.date_from, selection.date_to] + [
        list(getattr(selection, field)) or None for field in FILTER_CONTROLS]
    # A page's own settings in the link (not filters) are kept, except on Reset.
    extra = ({} if trigger == "filter-reset" else
             page_parameters(search if trigger in (None, "url") or address is None else address))
    return query_from_filter(selection, extra), selection.to_dict(), *controls


def match_count(state, _data_version=None):
    """The records matching the filters, of all records (recomputed when the data version
    changes as well as when the filters do)."""
    selection = RecordFilter.from_dict(state)
    records = data_access.all_records()
    # The records' shared filter index (built once per frame), as filtered_records uses.
    matched = int(filter_mask(records, selection, data_access.frame_index(records)).sum())
    # Secondary suppression: the match count can be differenced against any refinement of the
    # selection shown elsewhere (FAC-005 ≈35, FAC-005 + KP 33), so it is rounded to the
    # nearest 5 (and "<11" when small), as is the total it is a part of.
    text = f"{rounded_count(matched)} of {rounded_count(len(records))} records match"
    return text if matched else [text, " — no records match these filters; press Reset filters."]


def refresh_demo_banner(_data_version):
    """The demo banner for the data now stored (after an upload or a removal)."""
    return demo_banner(data_access.synthetic_share())


def keep_filters_in_links(search, ids):
    """Navigation keeps the filters: every page link carries the current filters (not the
    page's own settings, which belong to that page)."""
    filters = query_from_filter(filter_from_query(search))
    return [item["path"] + filters for item in ids]


def settings_writer(path: str):
    """The callback that writes the settings of the page at ``path`` into the address bar."""
    def write_settings(*values_and_address):
        *values, search, pathname = values_and_address
        if (pathname or "/") != path:
            raise dash.exceptions.PreventUpdate
        query = query_with_settings(search, path, values)
        if query == (search or ""):
            raise dash.exceptions.PreventUpdate
        return query
    return write_settings


def report_settings(pathname: str | None, search: str | None) -> dict:
    """The settings of the page at ``pathname`` from the query string (defaults filled in)."""
    from dashboard.state import settings_from_query

    return settings_from_query(pathname or "/", search)


@requires_role(REPORT_ROLE)
def download_report(_clicks, pathname, state, search=None):
    """The current page's report as a self-contained HTML file (audited as a download), with
    the page's settings as they are in the address bar (``search``), i.e. the view on screen."""
    from dashboard.report import REPORT_BUILDERS, page_report

    if (pathname or "/") not in REPORT_BUILDERS:
        return dash.no_update
    selection = RecordFilter.from_dict(state)
    title, sections, document = page_report(pathname or "/", selection,
                                            report_settings(pathname, search))
    stamp = pd.Timestamp.now().strftime("%Y%m%d-%H%M")
    name = f"{title.lower().replace(' ', '-')}-report-{stamp}.html"
    from dashboard.exports import log_download

    table_rows = sum(len(section.table) for section in sections if section.table is not None)
    log_download(f"report {pathname or '/'}", name, table_rows, state, sections=len(sections))
    return dcc.send_string(document, name)


def filters_apply(pathname):
    """Hide the global filter panel and match count on pages they do not apply to (registered
    with ``global_filters=False``, e.g. Users) and give the page the whole width."""
    page = next((p for p in dash.page_registry.values()
                 if p["relative_path"] == (pathname or "/")), None)
    if page is not None and page.get("global_filters") is False:
        return "d-none", 12, 12, "d-none"
    return "mb-3", 9, 10, "mb-2 fw-semibold"


def toggle(clicks, is_open):
    """Open or close a drawer (the navigation menu, the filters) on its button."""
    return not is_open if clicks else is_open


def register_callbacks(app: dash.Dash) -> None:
    """Attach the shell's callbacks to ``app``.

    Registered per app (not with the global ``dash.callback``): Dash hands global callbacks to
    the first app created in a process only, and tests create several apps.
    """
    app.callback(
        Output("url", "search"), Output("filter-state", "data"), *FILTER_OUTPUTS,
        Input("url", "search"), Input("filter-reset", "n_clicks"), *FILTER_INPUTS,
        State("page-url", "search"),
    )(sync_filters)
    app.callback(Output("match-count", "children"), Input("filter-state", "data"),
                 Input("data-version", "data"))(safe_callback()(cached_output(match_count)))
    app.callback(Output("demo-banner-slot", "children"), Input("data-version", "data"),
                 prevent_initial_call=True)(safe_callback()(refresh_demo_banner))
    app.callback(Output("report-download", "data"), Input("report-button", "n_clicks"),
                 State("url", "pathname"), State("filter-state", "data"),
                 State("page-url", "search"), prevent_initial_call=True)(download_report)
    from dashboard.drilldown import register_drilldown_callbacks

    register_drilldown_callbacks(app)
    app.callback(Output({"type": "nav-link", "path": ALL}, "href"), Input("url", "search"),
                 State({"type": "nav-link", "path": ALL}, "id"))(keep_filters_in_links)
    for path, settings in PAGE_SETTINGS.items():  # declared by the page modules Dash imported
        app.callback(Output("page-url", "search", allow_duplicate=True),
                     *[Input(setting.control, setting.prop) for setting in settings],
                     State("page-url", "search"), State("page-url", "pathname"),
                     prevent_initial_call=True)(settings_writer(path))
    register_view_callbacks(app)  # saved views (dashboard.views)
    app.callback(Output("filter-column", "className"), Output("main-column", "lg"),
                 Output("main-column", "xxl"), Output("match-count", "className"),
                 Input("url", "pathname"))(filters_apply)
    for drawer, button in (("navbar-collapse", "navbar-toggler"),
                           ("filter-drawer", "filter-drawer-toggle")):
        app.callback(Output(drawer, "is_open"), Input(button, "n_clicks"),
                     State(drawer, "is_open"), prevent_initial_call=True)(toggle)
    # CSV downloads are server-side callbacks (dashboard.exports, analysts and admins only);
    # the grids never export by themselves, so no clientside export callback is registered.
