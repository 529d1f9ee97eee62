/*
 * The Records grid's position line ("Rows 101–123 of 48,210 matching records"), served from the
 * app itself (the Content-Security-Policy's script-src 'self' covers it).
 *
 * The grid (dashboard/pages/records.py) uses AG Grid's infinite row model: the server answers
 * each block with the number of records matching the global filters, the user's facility
 * restriction and the column filters, and the grid keeps that number as its row count. This
 * script reads the rows in view and that count from the grid's API after every scroll, resize,
 * filter, sort or new block, and writes them into #records-position (a polite live region,
 * updated once the grid is still for a moment, so screen readers are not flooded).
 */
(function () {
  "use strict";
  var GRID = "records-grid";
  var hooked = typeof WeakSet === "function" ? new WeakSet() : null;
  var timer = null;

  function number(n) { return Number(n).toLocaleString("en-US"); }

  function describe(api) {
    if (!api.isLastRowIndexKnown()) { return "Counting the matching records…"; }
    var total = api.getDisplayedRowCount();
    if (total === 0) { return "No records match the filters."; }
    // The rows in view: those whose middle lies in the scrolled window (the grid also draws
    // a row of which only a sliver shows).
    var range = api.getVerticalPixelRange();
    var from = Math.max(api.getFirstDisplayedRowIndex(), 0);
    var to = Math.min(api.getLastDisplayedRowIndex(), total - 1);
    var first = -1, last = -1;
    for (var i = from; i <= to; i++) {
      var node = api.getDisplayedRowAtIndex(i);
      if (!node || node.rowTop === null || node.rowTop === undefined) { continue; }
      var middle = node.rowTop + node.rowHeight / 2;
      if (middle >= range.top && middle <= range.bottom) {
        if (first < 0) { first = i; }
        last = i;
      }
    }
    if (first < 0) { first = from; last = to; }
    first += 1;
    last += 1;
    return "Rows " + number(first) + "–" + number(last) + " of " + number(total) +
      (total === 1 ? " matching record" : " matching records");
  }

  function update(api) {
    var line = document.getElementById("records-position");
    if (!line || api.isDestroyed && api.isDestroyed()) { return; }
    var text = describe(api);
    if (line.textContent !== text) { line.textContent = text; }
  }

  function later(api) {
    if (timer) { window.clearTimeout(timer); }
    timer = window.setTimeout(function () { timer = null; update(api); }, 150);
  }

  function hook() {
    if (!document.getElementById("records-position") || !window.dash_ag_grid) { return; }
    var api;
    try { api = window.dash_ag_grid.getApi(GRID); } catch (error) { return; }  // not mounted yet
    if (!api || (hooked && hooked.has(api))) { return; }
    if (hooked) { hooked.add(api); }
    ["modelUpdated", "viewportChanged", "bodyScroll", "filterChanged", "sortChanged",
     "gridSizeChanged"].forEach(function (name) {
      api.addEventListener(name, function () { later(api); });
    });
    later(api);
  }

  function start() {
    hook();
    new MutationObserver(hook).observe(document.body, {childList: true, subtree: true});
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
