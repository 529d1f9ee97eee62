"""How ``cached_output`` stores callback outputs: figures kept as their validated JSON and
rebuilt without re-validation, yet equal to the originals and validating later changes."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import plotly.graph_objects as go
import pytest
from _plotly_utils import basevalidators
from dash import dcc, html
from plotly.subplots import make_subplots
from plotly.utils import PlotlyJSONEncoder

from dashboard.compute_cache import CachedFigure, dump_output, load_output


def sample_output():
    """A callback-like output: components holding two figures (one with subplots)."""
    bars = go.Figure(go.Bar(x=["VP", "KP"], y=np.array([12.5, 7.25]), name="rate",
                            marker={"color": "#1f77b4"}, customdata=[["a", 1], ["b", 2]]))
    bars.update_layout(title="Leakage", yaxis={"range": [0, 20]})
    grid = make_subplots(rows=2, cols=1)
    grid.add_trace(go.Scatter(x=np.arange(4), y=np.array([1, 3, 2, 4]), mode="lines"), 1, 1)
    grid.add_trace(go.Box(q1=[1.0], median=[2.0], q3=[3.0], lowerfence=[0.0],
                          upperfence=[4.0], x=["KP"]), 2, 1)
    return html.Div([html.H3("Page"), dcc.Graph(id="bars", figure=bars),
                     dcc.Graph(id="grid", figure=grid)], id="root"), "n = 1,234"


def plotly_json(value) -> dict:
    return json.loads(json.dumps(value, cls=PlotlyJSONEncoder))


def trace_values(figure) -> list[dict]:
    return [{key: trace[key] for key in trace.to_plotly_json()} for trace in figure.data]


def same_value(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def test_round_trip_keeps_components_and_figures():
    original = sample_output()
    restored = load_output(dump_output(original))
    assert plotly_json(restored) == plotly_json(original)
    (div, count), (div0, _) = restored, original
    assert count == "n = 1,234" and div.id == "root" and div.children[0].children == "Page"
    for graph, graph0 in zip(div.children[1:], div0.children[1:], strict=True):
        assert type(graph.figure) is CachedFigure and isinstance(graph.figure, go.Figure)
        # Its stored JSON is what the original serialises to (what Dash sends).
        assert graph.figure.to_plotly_json() == graph0.figure.to_plotly_json()
        assert graph.figure.layout.to_plotly_json() == graph0.figure.layout.to_plotly_json()
        pairs = zip(trace_values(graph.figure), trace_values(graph0.figure), strict=True)
        for values, values0 in pairs:
            assert values.keys() == values0.keys()
            for key in values:
                assert same_value(values[key], values0[key]), key
    # Attribute and item access answer as on a freshly built figure.
    bars = div.children[1].figure
    assert bars.data[0].y.tolist() == [12.5, 7.25] and bars["data"][0]["type"] == "bar"
    assert bars.layout.title.text == "Leakage"
    with pytest.raises(ValueError):  # read-only: an in-place edit would leave the JSON stale
        bars.data[0].y[0] = 1.0


def test_rebuilt_figure_keeps_its_subplot_grid():
    _, grid = load_output(dump_output(sample_output()))[0].children[1:]
    figure = grid.figure
    figure.add_trace(go.Scatter(x=[0], y=[1]), row=2, col=1)  # needs the grid of make_subplots
    assert figure.data[-1].xaxis == "x2" and figure.data[-1].yaxis == "y2"


def test_rebuilt_figure_validates_later_changes():
    figure = load_output(dump_output(sample_output()))[0].children[1].figure
    with pytest.raises(ValueError):
        figure.data[0].marker.color = "not a colour"
    with pytest.raises(ValueError):
        figure.update_layout(no_such_property=1)


def test_reading_does_not_revalidate(monkeypatch):
    """Plain unpickling validates every array and colour again; load_output does not."""
    calls = []
    for validator in (basevalidators.DataArrayValidator, basevalidators.ColorValidator):
        real = validator.validate_coerce
        monkeypatch.setattr(validator, "validate_coerce",
                            lambda self, v, *a, _real=real, **k: calls.append(1) or _real(self, v,
                                                                                         *a, **k))
    output = sample_output()
    plain, fast = pickle.dumps(output), dump_output(output)
    pickle.loads(plain)
    assert calls, "plain unpickling should re-validate (else this test proves nothing)"
    calls.clear()
    load_output(fast)
    assert calls == []


def test_serialising_a_cached_answer_does_not_build_its_figures(monkeypatch):
    """A warm answer is only sent: Dash's encoder reads the stored JSON and never builds the
    figure (several ms of plotly object setup each); reading an attribute builds it."""
    from dash._utils import to_json

    import dashboard.compute_cache as compute_cache

    built = []
    real = compute_cache._build_cached
    monkeypatch.setattr(compute_cache, "_build_cached",
                        lambda figure, properties: built.append(1) or real(figure, properties))
    original = sample_output()
    restored = load_output(dump_output(original))
    assert json.loads(to_json(restored)) == plotly_json(original)
    assert built == []
    # Stored again (the cold path's pickler) without being built, and still the same figure.
    again = load_output(dump_output(restored))
    assert built == [] and plotly_json(again) == plotly_json(original)
    bars = again[0].children[1].figure
    assert bars.layout.title.text == "Leakage" and built == [1]
    assert not hasattr(bars, "no_such_attribute") and isinstance(bars, go.Figure)


def test_non_figure_values_round_trip():
    value = {"rows": [{"a": 1.5, "b": None}], "text": "x", "array": np.arange(3)}
    restored = load_output(dump_output(value))
    assert restored["rows"] == value["rows"] and restored["text"] == "x"
    assert np.array_equal(restored["array"], value["array"])


def fresh_bars() -> CachedFigure:
    return load_output(dump_output(sample_output()))[0].children[1].figure


CHANGES = {
    "trace property": lambda f: setattr(f.data[0], "y", [1, 2]),
    "nested trace property": lambda f: setattr(f.data[0].marker, "color", "red"),
    "update_traces": lambda f: f.update_traces(opacity=0.5),
    "layout property": lambda f: setattr(f.layout.title, "text", "Other"),
    "update_layout": lambda f: f.update_layout(height=300),
    "layout replaced": lambda f: setattr(f, "layout", go.Layout(title="New")),
    "update": lambda f: f.update(layout_width=500),
    "add_trace": lambda f: f.add_trace(go.Scatter(y=[1])),
    "data replaced": lambda f: setattr(f, "data", f.data[:0]),
    "frames": lambda f: setattr(f, "frames", [go.Frame(data=[go.Bar(y=[3, 4])])]),
    "template": lambda f: f.update_layout(template="none"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_drops_the_stored_json(change):
    """After any change the figure serialises its current state, exactly as go.Figure does."""
    figure, reference = fresh_bars(), go.Figure(sample_output()[0].children[1].figure)
    before = figure.to_plotly_json()
    CHANGES[change](figure)
    CHANGES[change](reference)
    assert figure.to_plotly_json() != before
    assert plotly_json(figure) == plotly_json(reference)


def test_cache_folder_is_made_private(tmp_path, monkeypatch):
    from dashboard.compute_cache import cache_dir

    folder = tmp_path / "shared-cache"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.setenv("VA_CACHE_DIR", str(folder))
    assert cache_dir() == folder
    assert folder.stat().st_mode & 0o777 == 0o700
    created = tmp_path / "new" / "cache"
    monkeypatch.setenv("VA_CACHE_DIR", str(created))
    assert cache_dir() == created and created.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_cache_folder_of_another_user_is_refused(tmp_path):
    from dashboard.compute_cache import ensure_private

    folder = tmp_path / "planted"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # nobody
    with pytest.raises(OSError, match="belongs to another user"):
        ensure_private(folder)


def test_the_cold_answer_is_what_the_cache_gives_without_rebuilding_it():
    """On a cold request the computed figures become CachedFigures carrying the JSON just
    made (no unpickle and rebuild), and serialise exactly as the cached answer does."""
    from dashboard.compute_cache import _as_stored, _dump

    value = sample_output()
    blob, figures = _dump(value)
    cold = _as_stored(value, figures)
    warm = load_output(blob)
    assert cold is value and len(figures) == 2
    for graph_cold, graph_warm in zip(cold[0].children[1:], warm[0].children[1:], strict=True):
        assert type(graph_cold.figure) is CachedFigure
        assert graph_cold.figure._stored_json is not None
        assert plotly_json(graph_cold.figure) == plotly_json(graph_warm.figure)
    bars = cold[0].children[1].figure
    with pytest.raises(ValueError):  # arrays are frozen, as in a figure read from the cache
        bars.data[0].y[0] = 99.0
    bars.update_layout(title="Changed")  # a change drops the stored JSON
    assert plotly_json(bars)["layout"]["title"]["text"] == "Changed"
