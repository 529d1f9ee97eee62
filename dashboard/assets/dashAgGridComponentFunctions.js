/*
 * Cell renderers for the VP vs KP effects table (dashboard/pages/comparison.py), served from
 * the app itself (the Content-Security-Policy's script-src 'self' covers it; nothing is
 * evaluated from strings). They only lay out the row's own text on at most two lines; the
 * grid's data (and so its CSV download) keep every column as it is.
 *
 * - VaOutcomeCell: the outcome's name without its long definition (the part after ": "), which
 *   the "Methods and notes for each outcome" list below the table gives in full.
 * - VaGroupCell: a procedure's estimate, then "n <count>" from the field named by
 *   cellRendererParams.n.
 * - VaEffectCell: "RD −15.6 pp (−19.1 to −12.1)" as the estimate over its interval, with the
 *   p-value from the field cellRendererParams.p on the shorter line ("RD −15.6 pp, p <0.001",
 *   then "(−19.1 to −12.1)"); as effect_lines in dashboard/pages/comparison.py, which sizes
 *   the columns.
 */
(function () {
  "use strict";
  var functions = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

  function lines(first, second) {
    var e = window.React.createElement;
    var parts = [e("span", {key: "a", className: "va-line"}, first)];
    if (second) { parts.push(e("span", {key: "b", className: "va-line"}, second)); }
    return e("span", {className: "va-lines"}, parts);
  }

  function text(value) { return value === null || value === undefined ? "" : String(value); }

  functions.VaOutcomeCell = function (props) {
    var value = text(props.value);
    var cut = value.indexOf(": ");
    return cut > 0 ? value.slice(0, cut) : value;
  };

  functions.VaGroupCell = function (props) {
    var field = props.colDef.cellRendererParams && props.colDef.cellRendererParams.n;
    var n = field && props.data ? text(props.data[field]) : "";
    return lines(text(props.value), n ? "n " + n : "");
  };

  functions.VaEffectCell = function (props) {
    var value = text(props.value);
    var field = props.colDef.cellRendererParams && props.colDef.cellRendererParams.p;
    var p = field && props.data ? text(props.data[field]) : "";
    var cut = value.indexOf(" (");
    var estimate = cut > 0 ? value.slice(0, cut) : value;
    var interval = cut > 0 ? value.slice(cut + 1) : "";
    if (!p) { return lines(estimate, interval); }
    if (interval && interval.length < estimate.length) { return lines(estimate, interval + ", p " + p); }
    return lines(estimate + ", p " + p, interval);
  };
})();
