"""Cross-filtering and drill-down: a click on a chart point sets the global filter.

A clickable chart names what each point stands for in the point's Plotly ``ids``, written as
a query string of the global filters (``facility=FAC-009`` or ``country=US&region=North&
procedure=kyphoplasty``, :func:`point_id`). Clicking the point puts those values into the URL
(the one filter state, :mod:`dashboard.state`): every page follows, the page's own settings in
the URL are kept, and the browser's Back button returns to the view before the click (the URL
change is a history entry). The bar under the match count (:func:`drill_bar`) says which
facility or operator filter is set, offers "Clear" for it, and, for the roles that may open
the Records page, links to the records behind the selection (``/records`` with the same
query string).

A user restricted to some facilities cannot widen the view by clicking: a clicked facility
outside their list is refused (and the records they are served are restricted anyway).
"""

from __future__ import annotations

import urllib.parse

import dash
from dash import Input, Output, State, dcc, html

from analysis.filters import RecordFilter
from dashboard.state import FIELD_OF_KEY, filter_from_query, page_parameters, query_from_filter

#: Graphs whose points carry filter ids (``ids``): a click on one sets the global filter.
CLICKABLE_GRAPHS = ("quality-funnel-graph", "quality-caterpillar-graph", "costs-figure")
#: Filters the drill bar offers to clear (query key -> what it is called).
CLEARABLE = {"facility": "facility", "operator": "operator", "region": "region"}
#: The hint shown under a clickable chart.
CLICK_HINT = ("Click a point to filter every page to it; the browser's Back button or "
              "“Clear” above the page returns.")


def point_id(**filters: str) -> str:
    """The id of a chart point: the global filters it stands for, as a query string.

    ``filters`` are keyed by query key (``facility``, ``operator``, ``country``, ``region``,
    ``procedure``; :data:`dashboard.state.QUERY_KEYS`).

    Examples
    --------
    >>> point_id(facility="FAC-009")
    'facility=FAC-009'
    >>> point_id(country="US", procedure="kyphoplasty")
    'country=US&procedure=kyphoplasty'
    """
    unknown = set(filters) - set(FIELD_OF_KEY)
    if unknown:
        raise ValueError(f"not a filter: {', '.join(sorted(unknown))}")
    return urllib.parse.urlencode(list(filters.items()))


def clicked_filters(click_data: dict | None) -> dict[str, str]:
    """The filters a click stands for: the clicked point's id read back (unknown keys, empty
    values and points without an id give nothing).

    Examples
    --------
    >>> clicked_filters({"points": [{"id": "facility=FAC-009", "x": 120}]})
    {'facility': 'FAC-009'}
    >>> clicked_filters({"points": [{"x": 1}]}), clicked_filters(None)
    ({}, {})
    """
    points = (click_data or {}).get("points") or []
    if not points or not isinstance(points[0], dict):
        return {}
    text = points[0].get("id")
    if not isinstance(text, str):
        return {}
    return {key: value for key, value in urllib.parse.parse_qsl(text)
            if key in FIELD_OF_KEY and value and not key.startswith(("from", "to"))}


def drilled_query(search: str | None, clicked: dict[str, str],
                  allowed_facilities: frozenset[str] | None = None) -> str | None:
    """The query string after a click: the current filters with each clicked filter set to
    the clicked value (page settings kept); ``None`` when the click sets nothing, names a value
    the filters refuse, or a facility outside ``allowed_facilities`` (a restricted user).

    Examples
    --------
    >>> drilled_query("?country=US&tp=month3", {"facility": "FAC-009"})
    '?country=US&facility=FAC-009&tp=month3'
    >>> drilled_query("", {"facility": "FAC-009"}, frozenset({"FAC-001"})) is None
    True
    """
    if not clicked:
        return None
    facility = clicked.get("facility")
    if allowed_facilities is not None and facility is not None \
            and facility not in allowed_facilities:
        return None
    values = filter_from_query(search).to_dict()
    for key, value in clicked.items():
        values[FIELD_OF_KEY[key]] = [value]
    try:
        selection = RecordFilter.from_dict(values)
    except (TypeError, ValueError):
        return None
    return query_from_filter(selection, page_parameters(search))


def without(search: str | None, key: str) -> str:
    """The query string with one filter removed (page settings kept).

    >>> without("?country=US&facility=FAC-009", "facility")
    '?country=US'
    """
    selection = filter_from_query(search)
    values = selection.to_dict()
    values[FIELD_OF_KEY[key]] = []
    return query_from_filter(RecordFilter.from_dict(values), page_parameters(search))


def drill_bar(pathname: str | None, search: str | None, may_open_records: bool) -> list:
    """What the bar under the match count shows: each facility, operator or region filter with
    a "Clear" link, and a link to the records behind the selection (for roles that may open
    the Records page). Empty without such a filter."""
    params = urllib.parse.parse_qs((search or "").lstrip("?"))
    set_filters = [(key, params[key][0]) for key in CLEARABLE if params.get(key)]
    if not set_filters:
        return []
    path = pathname or "/"
    parts: list = []
    for key, value in set_filters:
        parts += [html.Span(f"{CLEARABLE[key].capitalize()} filter: "),
                  html.Strong(value), " ",
                  dcc.Link(f"Clear {CLEARABLE[key]} filter", href=path + without(search, key),
                           id={"type": "drill-clear", "key": key}, className="me-3")]
    if may_open_records and path != "/records":
        query = query_from_filter(filter_from_query(search))
        parts.append(dcc.Link("Open the records behind this selection",
                              href="/records" + query, id="drill-records"))
    return parts


# ---------------------------------------------------------------------------------- callbacks
def set_filter_from_click(click_data, search):
    """A chart click: the clicked filters into the URL (a history entry), or no change."""
    from dashboard.auth import current_user

    facilities = current_user().facilities
    allowed = None if facilities is None else frozenset(map(str, facilities))
    query = drilled_query(search, clicked_filters(click_data), allowed)
    if query is None or query == (search or ""):
        raise dash.exceptions.PreventUpdate
    return query


def show_drill_bar(search, pathname):
    from dashboard.auth.gate import may_see

    records_page = next((page for page in dash.page_registry.values()
                         if page.get("path") == "/records"), None)
    return drill_bar(pathname, search, records_page is not None and may_see(records_page))


def register_drilldown_callbacks(app: dash.Dash) -> None:
    """A click callback per clickable graph, and the drill bar."""
    for graph in CLICKABLE_GRAPHS:
        app.callback(Output("url", "search", allow_duplicate=True),
                     Input(graph, "clickData"), State("url", "search"),
                     prevent_initial_call=True)(set_filter_from_click)
    app.callback(Output("drill-bar", "children"), Input("url", "search"),
                 Input("url", "pathname"))(show_drill_bar)
