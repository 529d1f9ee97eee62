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
# scrollable container (overflow-x auto/scroll) is cut off.
MEASURE = r"""
const found = {broken: [], clipped: [], cut: []};
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
      const pieces = strict ? [m[0]] : m[0].split(/(?<=[-\u2010-\u2014\/?&=;:,])/);
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
