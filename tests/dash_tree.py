"""Helpers to inspect Dash component trees returned by callbacks (no browser)."""

from __future__ import annotations


def texts(component) -> list[str]:
    """Every string inside a Dash component tree, in document order."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif hasattr(node, "children"):
            walk(node.children)

    walk(component)
    return found


def find_by_id(component, wanted):
    """The first component whose ``id`` equals ``wanted`` (depth first), or ``None``."""
    if getattr(component, "id", None) == wanted:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, str):
            hit = find_by_id(child, wanted)
            if hit is not None:
                return hit
    return None


def find_all(component, predicate) -> list:
    """Every component for which ``predicate(component)`` is true."""
    hits = []

    def walk(node) -> None:
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
            return
        if node is None or isinstance(node, str):
            return
        if predicate(node):
            hits.append(node)
        walk(getattr(node, "children", None))

    walk(component)
    return hits


def graph(component, graph_id):
    """The figure of the ``dcc.Graph`` with this id."""
    return find_by_id(component, graph_id).figure


def grid_rows(component, name: str) -> list[dict]:
    """The rows of the data grid named ``name`` (see ``dashboard.components.data_grid``)."""
    return find_by_id(component, {"type": "data-grid", "name": name}).rowData
