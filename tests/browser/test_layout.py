"""Every page at 800, 1366 and 1920 px: no table heading or number breaks inside a word and
nothing is cut off horizontally, measured on the element boxes (not screenshot pixels)."""

from __future__ import annotations

import pytest

from dashboard.app_factory import create_app
from data import import_dataframe, store
from data.demo import demo_records
from tests.browser.helpers import PAGES, wait_settled

WIDTHS = (800, 1366, 1920)

# For each table heading and cell (AG Grid and HTML tables) and each KPI value: a word (text
# between spaces; in prose cells, also a part ending in a hyphen, dash or slash) whose Range has
# client rectangles on more than one line is broken inside it;
# a one-line cell (numbers) whose content is wider than its box is clipped. Then every visible
# element whose right edge is beyond the viewport and that is not inside a deliberately
# scrollable container (overflow-x auto/scroll) is cut off. Unit ids ("FAC-009", "OP-0012")
# are unbreakable words even in prose. For every drawn chart: each axis, subplot and colour-bar
# title lies inside the chart's svg, and the legend overlaps neither the chart toolbar (modebar)
# nor a subplot title or note (annotation).
MEASURE = r"""
const found = {broken: [], clipped: [], cut: [], charts: []};
const UNIT_ID = /[A-Z]{2,}-\d{2,}/;
const cells = document.querySelectorAll(
  '.ag-header-cell-text, .ag-cell-value, .ag-cell.va-nowrap, #main table th, #main table td, ' +
  '.card .fs-4');
function describe(el) {
  return (el.closest('[id]') ? '#' + el.closest('[id]').id + ' ' : '') + JSON.stringify(el.textContent.trim().slice(0, 40));
}
function visible(el) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return false;
  for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden') return false;
  }
  return true;
}
for (const cell of cells) {
  if (!visible(cell)) continue;
  const strict = cell.matches('.ag-header-cell-text, th, .va-nowrap, .va-nowrap *, .card .fs-4');
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    const words = /\S+/g;
    let m;
    while ((m = words.exec(text)) !== null) {
      // Prose may break after a hyphen, dash or slash ("cluster-|robust", URLs); headings,
      // numbers and intervals only at spaces.
      const pieces = strict || UNIT_ID.test(m[0]) ? [m[0]] : m[0].split(/(?<=[-\u2010-\u2014\/?&=;:,])/);
      let offset = m.index;
      for (const piece of pieces) {
        const range = document.createRange();
        range.setStart(node, offset);
        range.setEnd(node, offset + piece.length);
        offset += piece.length;
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                .map(r => Math.round(r.top)));
        if (tops.size > 1) found.broken.push(describe(cell) + ' breaks in ' + JSON.stringify(piece));
      }
    }
  }
  if (cell.matches('.ag-cell.va-nowrap, .ag-cell-value') &&
      getComputedStyle(cell).whiteSpace === 'nowrap' && cell.scrollWidth > cell.clientWidth + 1) {
    found.clipped.push(describe(cell) + ' ' + cell.scrollWidth + '>' + cell.clientWidth);
  }
}
const width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > width + 1) {
  found.cut.push('page scrolls sideways: ' + document.documentElement.scrollWidth + '>' + width);
}
function scrolls(el) {
  for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
    const s = getComputedStyle(e).overflowX;
    if (s === 'auto' || s === 'scroll' || s === 'hidden' || s === 'clip') return true;
  }
  return false;
}
for (const el of document.querySelectorAll('#main *, nav *, #filter-column *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.right <= width + 1 || !visible(el) || scrolls(el)) continue;
  found.cut.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' +
                 String(el.className).slice(0, 40) + ' right=' + Math.round(r.right));
}
function overlap(a, b) {
  return Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
         Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
}
for (const plot of document.querySelectorAll('#main .js-plotly-plot')) {
  if (!visible(plot)) continue;
  const svg = plot.querySelector('svg.main-svg');
  if (!svg) continue;
  const box = svg.getBoundingClientRect();
  const name = plot.closest('[id]') ? '#' + plot.closest('[id]').id : 'a chart';
  for (const title of plot.querySelectorAll('.infolayer [class$="title"] text, ' +
                                             '.infolayer text[class$="title"]')) {
    const r = title.getBoundingClientRect();
    if (r.width === 0 || !title.textContent.trim()) continue;
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 ||
        r.bottom > box.bottom + 1) {
      found.charts.push(name + ' title ' + JSON.stringify(title.textContent.trim().slice(0, 30)) +
                        ' outside its svg');
    }
  }
  const legend = plot.querySelector('.legend');
  const modebar = plot.querySelector('.modebar');
  if (legend && modebar) {
    const l = legend.getBoundingClientRect(), m = modebar.getBoundingClientRect();
    if (l.width > 0 && m.width > 0 && overlap(l, m)) {
      found.charts.push(name + ' legend overlaps the toolbar');
    }
  }
  // Nor does it cover a subplot title or a note above the plot (annotations).
  if (legend && legend.getBoundingClientRect().width > 0) {
    const l = legend.getBoundingClientRect();
    for (const note of plot.querySelectorAll('.infolayer .annotation-text-g text, ' +
                                             '.annotation .annotation-text')) {
      if (note.textContent.trim() && overlap(l, note.getBoundingClientRect())) {
        found.charts.push(name + ' legend covers ' +
                          JSON.stringify(note.textContent.trim().slice(0, 30)));
      }
    }
  }
}
for (const key of Object.keys(found)) found[key] = found[key].slice(0, 8);
return found;
"""


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    store.dispose_engines()
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-layout') / 'store.db'}"
    import_dataframe(demo_records(2000, seed=11), "demo", url, synthetic=True)
    yield url
    store.dispose_engines()


@pytest.mark.parametrize("width", WIDTHS)
def test_no_word_breaks_and_nothing_cut_off(dash_duo, database, width):
    dash_duo.start_server(create_app(database))  # local mode: the admin sees every page
    dash_duo.driver.set_window_size(width, 1000)
    problems = {}
    for path in PAGES:
        dash_duo.driver.get(dash_duo.server_url + path)
        dash_duo.wait_for_element("#main", timeout=30)
        wait_settled(dash_duo)
        found = dash_duo.driver.execute_script(MEASURE)
        found = {kind: items for kind, items in found.items() if items}
        if found:
            problems[path] = found
    assert not problems, f"at {width} px: {problems}"


def test_narrow_window_folds_navigation_and_filters(dash_duo, database):
    """Below 992 px the navigation is a menu and the filters a drawer, each opened by its
    button; the navigation bar stays one line."""
    dash_duo.start_server(create_app(database))
    dash_duo.driver.set_window_size(800, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/costs")
    wait_settled(dash_duo)
    bar = dash_duo.find_element("nav.navbar")
    assert bar.size["height"] < 80  # one line: brand and the menu button
    assert not dash_duo.find_element("#filter-country").is_displayed()
    assert not dash_duo.find_element("#navbar-collapse .nav-link").is_displayed()
    dash_duo.find_element("#navbar-toggler").click()
    dash_duo.wait_for_element("#navbar-collapse.show", timeout=10)
    dash_duo.find_element("#filter-drawer-toggle").click()
    dash_duo.wait_for_element("#filter-drawer.show", timeout=10)
    assert dash_duo.find_element("#filter-country").is_displayed()
    dash_duo.driver.set_window_size(1366, 1000)
    assert not dash_duo.find_element("#filter-drawer-toggle").is_displayed()


EFFECTS = r"""
const grid = document.querySelector('#comparison-effects .ag-root-wrapper');
const list = document.querySelector('#comparison-effects-list');
function shown(el) { return !!el && el.getBoundingClientRect().height > 0; }
const out = {grid: shown(grid), list: shown(list), rows: 0, scroll: null, tall: [],
             methods: document.querySelectorAll('#comparison-effects-methods [data-outcome]').length};
if (shown(grid)) {
  const viewport = grid.querySelector('.ag-center-cols-viewport');
  out.scroll = [viewport.scrollWidth, viewport.clientWidth];
  out.rows = grid.querySelectorAll('.ag-center-cols-container .ag-row').length;
  for (const cell of grid.querySelectorAll('.ag-center-cols-container .ag-cell')) {
    const range = document.createRange();
    range.selectNodeContents(cell.querySelector('.ag-cell-value') || cell);
    const tops = [...range.getClientRects()].filter(r => r.width > 0).map(r => r.top);
    const lines = [];
    for (const top of tops.sort((a, b) => a - b)) {
      if (!lines.length || top - lines[lines.length - 1] > 4) lines.push(top);
    }
    if (lines.length > 2) {
      out.tall.push(cell.getAttribute('col-id') + ': ' + lines.length + ' lines: ' +
                    JSON.stringify(cell.textContent.slice(0, 40)));
    }
  }
}
if (shown(list)) out.rows = list.querySelectorAll('[data-outcome]').length;
return out;
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_comparison_effects_table_reads_cleanly(dash_duo, database, width):
    """VP vs KP effects (issue 14 item 4): at 1366 and 1920 px the table fits its card without
    sideways scrolling and no cell takes more than two lines (methods and notes are listed
    below it, per outcome); at 800 px each outcome is a stacked block instead of a table."""
    dash_duo.start_server(create_app(database))
    dash_duo.driver.set_window_size(width, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/comparison")
    dash_duo.wait_for_element("#comparison-forest .main-svg", timeout=60)
    wait_settled(dash_duo)
    found = dash_duo.driver.execute_script(EFFECTS)
    assert found["rows"] >= 8, found  # one row (or block) per outcome
    assert found["methods"] == found["rows"], found  # every outcome's methods and notes
    if width >= 992:
        assert found["grid"] and not found["list"], found
        viewport, visible = found["scroll"]
        assert viewport <= visible + 1, f"the effects table scrolls sideways at {width} px: {found}"
        assert not found["tall"], f"at {width} px: {found['tall']}"
    else:
        assert found["list"] and not found["grid"], found
