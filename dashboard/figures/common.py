"""Palette, layout defaults and figure pieces shared by every page."""

from __future__ import annotations

import functools
import html
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

# Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
    "grey": "#999999",
}
# Darker shades of the same hues for TEXT on white (WCAG AA, at least 4.5:1; the palette's
# orange is 2.3:1, its grey 2.8:1): marks keep the palette, labels use these.
TEXT_COLOURS = {
    "orange": "#8F5F00", "sky_blue": "#2A7AB0", "bluish_green": "#007A59", "yellow": "#7A6F00",
    "blue": "#0072B2", "vermillion": "#B04D00", "reddish_purple": "#A8507F", "black": "#000000",
    "grey": "#6C757D",
}
# The procedures in display order (vertebroplasty is the reference group) and their short names.
PROCEDURES = ("vertebroplasty", "kyphoplasty")
PROCEDURE_SHORT = {"vertebroplasty": "VP", "kyphoplasty": "KP"}
PROCEDURE_COLOURS = {"vertebroplasty": OKABE_ITO["blue"], "kyphoplasty": OKABE_ITO["orange"]}
PROCEDURE_TEXT_COLOURS = {"vertebroplasty": TEXT_COLOURS["blue"],
                          "kyphoplasty": TEXT_COLOURS["orange"]}
PROCEDURE_LABELS = {"vertebroplasty": "Vertebroplasty (VP)", "kyphoplasty": "Kyphoplasty (KP)"}
SEQUENCE = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion", "sky_blue",
                                   "reddish_purple", "yellow", "black")]

# PNG export from the modebar, at print resolution.
GRAPH_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "vertebral-augmentation"},
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}


# Plotly's white template cut to the trace types this app draws (its layout part unchanged):
# every figure carries its template, and a cached figure is re-validated when it is unpickled,
# so the defaults of twenty unused trace types cost time on every warm update and bytes in
# every response.
_WHITE = pio.templates["plotly_white"]
TEMPLATE = "va_white"
pio.templates[TEMPLATE] = go.layout.Template(
    layout=_WHITE.layout,
    data={kind: getattr(_WHITE.data, kind) for kind in ("bar", "scatter", "scattergl", "histogram",
                                                         "heatmap", "table")},
)
# The process default: a figure then carries it from its creation, and base_layout() need not
# set it again (setting a template by name validates and copies it, ~40 ms per figure).
pio.templates.default = TEMPLATE


#: Height in pixels of the band at the top of every chart that the toolbar (modebar) takes on
#: hover; legends start below it.
TOOLBAR_BAND = 34


def legend_below_toolbar(height: int) -> dict:
    """A one-row (wrapping) legend at the top left of a ``height``-pixel figure, starting below
    the toolbar band: a wrapped legend grows downwards and pushes the plot down (plotly's
    automatic margins), never up into the toolbar.

    Examples
    --------
    >>> legend_below_toolbar(340)["y"], legend_below_toolbar(340)["yref"]
    (0.9, 'container')
    """
    return {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container",
            "yanchor": "top", "y": round(1 - TOOLBAR_BAND / height, 4)}


def top_margin_for_titles(legend_lines: int) -> int:
    """The top margin of a figure with subplot titles (annotations just above each panel,
    which plotly's automatic margins do not count): the toolbar band, the legend's lines as
    they wrap in the narrowest card, and one line of titles.

    Examples
    --------
    >>> top_margin_for_titles(1), top_margin_for_titles(2)
    (94, 116)
    """
    # A legend line is 22 px, its box has 8 px of padding; a title line with its gap 30 px.
    return TOOLBAR_BAND + 22 * legend_lines + 8 + 30


def base_layout(figure: go.Figure, title: str = "", height: int = 380, **kwargs) -> go.Figure:
    """Common look: white template, readable fonts, legend on top, no title clutter."""
    if pio.templates.default != TEMPLATE:  # someone changed the default: set it explicitly
        figure.update_layout(template=TEMPLATE)
    figure.update_layout(
        height=height, title={"text": title, "x": 0, "font": {"size": 15}},
        # Room above the plot for the legend below the toolbar band (a wrapped legend pushes
        # the plot down) and beside it for axis titles.
        margin={"l": 70, "r": 20, "t": 84 if title else 64, "b": 56},
        legend=legend_below_toolbar(height),
        font={"size": 13}, colorway=SEQUENCE, **kwargs,
    )
    return figure


def build_figure(traces: list[dict], layout: dict, height: int, after: dict | None = None,
                 **base) -> go.Figure:
    """One figure from trace and layout dicts, as :func:`base_layout` and then
    ``update_layout(after)`` would leave it, validated by plotly once.

    Adding traces and updating the layout one call at a time costs several milliseconds per
    call, most of a figure's time; the layout :func:`base_layout` gives is made once per
    height and options and merged in as a dict. An empty ``annotations`` list is left out,
    as in a figure that never had one.

    Parameters
    ----------
    traces : list of dict
        Plotly trace dicts (``{"type": "bar", "x": …, "y": …}``), drawn in this order.
    layout : dict
        The figure's own layout; :func:`base_layout`'s defaults are merged over it.
    height : int
        Figure height in pixels (passed to :func:`base_layout`).
    after : dict, optional
        A final layout update, merged last (as ``figure.update_layout(after)``).
    **base
        Further keyword arguments of :func:`base_layout` (e.g. ``barmode="group"``).

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> figure = build_figure([{"type": "bar", "x": ["VP", "KP"], "y": [1, 2]}],
    ...                       {"yaxis": {"title": {"text": "n"}}}, 300, {"margin": {"t": 40}})
    >>> figure.layout.height, figure.layout.margin.t, figure.layout.yaxis.title.text
    (300, 40, 'n')
    """
    options = json.dumps(base, sort_keys=True)
    defaults = json.loads(_base_layout_json(height, options, str(pio.templates.default)))
    merged = merge_layout(layout, defaults)
    if after:
        merged = merge_layout(merged, after)
    if "annotations" in merged and not merged["annotations"]:
        del merged["annotations"]
    return new_figure(traces, merged)


def _own_arrays(node):
    """A copy of the dict/list tree with its numpy arrays copied and read-only, as plotly's
    validation leaves them (the figure must not share a caller's arrays)."""
    if isinstance(node, dict):
        return {key: _own_arrays(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_own_arrays(value) for value in node]
    if isinstance(node, np.ndarray):
        copied = node.copy()
        copied.flags.writeable = False
        return copied
    return node


def new_figure(traces: list[dict], layout: dict) -> go.Figure:
    """``go.Figure(data=traces, layout=layout)`` without plotly's per-property validation,
    which costs ~5 ms a figure, a fifth of a page's cold update at a million records.

    The dicts are this package's own; the test suite builds every figure made here a second
    time with validation and requires the same JSON (``tests/conftest.py``), so production
    sends what a validated figure would. Validation is switched back on afterwards: a later
    change to the figure (``update_layout``, ``add_trace``) is checked as usual.

    Examples
    --------
    >>> figure = new_figure([{"type": "bar", "y": [1, 2]}], {"height": 300})
    >>> figure.data[0].type, figure.layout.height
    ('bar', 300)
    """
    figure = go.Figure(data=_own_arrays(traces), layout=_own_arrays(layout), _validate=False)
    figure._validate = True
    for trace in figure.data:
        trace._validate = True
    figure.layout._validate = True
    return figure


@functools.lru_cache(maxsize=64)
def _base_layout_json(height: int, options: str, default_template: str) -> str:
    """:func:`base_layout` of an empty figure as layout JSON; the template is left to the new
    figure unless base_layout set another than the default (`default_template` is part of
    the cache key for that)."""
    figure = base_layout(go.Figure(), height=height, **json.loads(options))
    layout = figure.layout.to_plotly_json()
    if pio.templates.default == TEMPLATE:
        layout.pop("template", None)
    return json.dumps(layout)


def merge_layout(target: dict, update: dict) -> dict:
    """`target` updated by `update` as ``update_layout`` does: dicts merged key by key, any
    other value replaced (neither argument is modified).

    Examples
    --------
    >>> merge_layout({"margin": {"l": 60, "t": 50}, "height": 300},
    ...              {"margin": {"t": 80}, "height": 400})
    {'margin': {'l': 60, 't': 80}, 'height': 400}
    """
    out = dict(target)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_layout(out[key], value)
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=32)
def _grid_json(rows: int, cols: int, options: str) -> str:
    """:func:`plotly.subplots.make_subplots` of this shape as layout JSON (without the
    template, which every new figure gets anyway) and the axes of each cell."""
    grid = make_subplots(rows=rows, cols=cols, **json.loads(options))
    layout = grid.layout.to_plotly_json()
    layout.pop("template", None)
    axes = {f"{row},{col}": {"xaxis": cell.xaxis.plotly_name.replace("axis", ""),
                             "yaxis": cell.yaxis.plotly_name.replace("axis", "")}
            for row in range(1, rows + 1) for col in range(1, cols + 1)
            for cell in [grid.get_subplot(row, col)]}
    return json.dumps({"layout": layout, "axes": axes})


def subplot_grid(rows: int, cols: int, **options) -> tuple[dict, dict[tuple[int, int], dict]]:
    """A fresh copy of the layout :func:`plotly.subplots.make_subplots` makes for these
    arguments, and ``(row, col) -> {"xaxis": "x2", "yaxis": "y2"}`` to place traces.

    The grid is made once per shape (it costs more than the rest of a figure); use it with
    :func:`build_figure` and :func:`axis_layout`.

    Examples
    --------
    >>> layout, axes = subplot_grid(2, 1, shared_xaxes=True)
    >>> axes[(2, 1)]
    {'xaxis': 'x2', 'yaxis': 'y2'}
    """
    made = json.loads(_grid_json(rows, cols, json.dumps(options, sort_keys=True)))
    axes = {tuple(int(i) for i in key.split(",")): refs for key, refs in made["axes"].items()}
    return made["layout"], axes


def axis_layout(layout: dict, ref: str) -> dict:
    """The layout dict of the axis a trace names (``"x2"`` → ``layout["xaxis2"]``), created
    empty if the layout has none yet.

    Examples
    --------
    >>> axis_layout({}, "y3")
    {}
    """
    return layout.setdefault(ref[0] + "axis" + ref[1:], {})


def empty_figure(message: str = "No records match the filters.", height: int = 300) -> go.Figure:
    """A blank figure that says why it is blank (never a broken chart)."""
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                          font={"size": 14, "color": TEXT_COLOURS["grey"]})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return base_layout(figure, height=height)


def plain_text(value) -> str:
    """``value`` as text that Plotly shows as written: ``<``, ``>`` and ``&`` become entities,
    so markup in data (an id ``<a href=…>``) is not rendered as a link or style in hover texts,
    axis labels or legends. Use it wherever a data value (an id, a label from a file) is put
    into figure text; the importer refuses ids with markup too (rule ``markup``).

    Examples
    --------
    >>> plain_text('<a href="https://x.example">FAC-1</a>')
    '&lt;a href="https://x.example"&gt;FAC-1&lt;/a&gt;'
    >>> plain_text("FAC-001")
    'FAC-001'
    """
    return html.escape(str(value), quote=False)


def percent(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def interval_text(low, high, scale: float = 100.0, digits: int = 1, unit: str = "%") -> str:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f"{scale * low:.{digits}f}–{scale * high:.{digits}f}{unit}"


def procedure_label(name: str) -> str:
    return PROCEDURE_LABELS.get(str(name), str(name))
