"""The page-answer comparison used to check that a refactoring changes nothing users see."""

from __future__ import annotations

from tools.compare_pages import _figures_of, _normalise, differences


def found(before, after, tolerance=1e-9) -> list[str]:
    out: list[str] = []
    differences(before, after, "", tolerance, out)
    return out


def test_equal_answers_and_float_noise_within_tolerance_pass():
    answer = {"table": [{"n": 12, "rate": 0.25, "ci": "0.21–0.30"}], "text": "n = 1,234"}
    assert found(answer, {"text": "n = 1,234", "table": [{"ci": "0.21–0.30", "rate": 0.25,
                                                          "n": 12}]}) == []
    assert found({"x": 0.1 + 0.2}, {"x": 0.3}) == []
    assert found({"t": "mean 0.30000000000000004"}, {"t": "mean 0.3"}) == []


def test_changed_numbers_texts_lengths_and_keys_are_reported():
    assert found({"x": 1.0}, {"x": 1.000001}) == [".x: 1.0 -> 1.000001"]
    assert found({"t": "12 patients"}, {"t": "13 patients"})
    assert found({"t": "<11"}, {"t": "8"})
    assert found({"rows": [1, 2]}, {"rows": [1, 2, 3]}) == [".rows: 2 items -> 3"]
    assert found({"a": 1}, {"a": 1, "b": 2}) == [".b: only after"]
    assert found({"flag": True}, {"flag": 1})


def test_volatile_text_and_figure_json_order_do_not_count():
    assert _normalise("made 2026-12-07 23:40:36 UTC, id 3f2a9c0d-1e4b-4a6c-9e1c-0f2a7b3d1e4b") \
        == "made <time>, id <uuid>"
    html = ('<div>Plotly.newPlot(\n "a", [{"type": "bar", "y": [1]}], {"height": 300}, {})'
            '</div>')
    text, figures = _figures_of(html)
    assert text == '<div>Plotly.newPlot(<figure 1>, {})</div>'
    assert figures == [{"data": [{"type": "bar", "y": [1]}], "layout": {"height": 300}}]
