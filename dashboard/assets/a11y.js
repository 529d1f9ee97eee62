/*
 * Accessibility repairs for three Dash 4 components whose markup axe-core flags (served from
 * the app itself, so the Content-Security-Policy's script-src 'self' covers it).
 *
 * - dcc.Dropdown keeps a read-only <input class="dash-dropdown-focus-target"> in the tab order
 *   while hiding it from assistive technology (aria-hidden-focus), and takes its trigger button
 *   out of the tab order. The button (which has the dropdown's name and opens it with Enter or
 *   Space) becomes the tab stop and the hidden input leaves the tab order.
 * - dcc.DatePickerRange puts aria-haspopup/aria-expanded on a plain <div> (aria-allowed-attr):
 *   they are removed (each date input keeps its own label), and its "Clear" link, an <a>
 *   without href carrying an aria-label (aria-prohibited-attr), becomes a keyboard-operable
 *   button.
 * - dcc.Upload's hidden file input has no label (label): it is named after the upload area's
 *   visible text ("Drop a file here or choose a file").
 *
 * Dash re-renders components, so the repairs are re-applied whenever the page changes.
 */
(function () {
  "use strict";

  function repair(root) {
    root.querySelectorAll(".dash-dropdown-focus-target").forEach(function (input) {
      if (input.getAttribute("tabindex") !== "-1") { input.setAttribute("tabindex", "-1"); }
      var button = input.parentElement && input.parentElement.querySelector("button.dash-dropdown");
      if (button && button.getAttribute("tabindex") === "-1") { button.removeAttribute("tabindex"); }
    });
    root.querySelectorAll(".dash-datepicker-input-wrapper").forEach(function (wrapper) {
      ["aria-haspopup", "aria-expanded", "type"].forEach(function (name) {
        if (wrapper.hasAttribute(name)) { wrapper.removeAttribute(name); }
      });
      if (wrapper.getAttribute("role") !== "group") { wrapper.setAttribute("role", "group"); }
      var labelled = wrapper.getAttribute("aria-labelledby");
      if (labelled && labelled.indexOf("undefined") !== -1) {
        wrapper.setAttribute("aria-labelledby",
          labelled.split(" ").filter(function (id) { return id !== "undefined"; }).join(" "));
      }
    });
    root.querySelectorAll("a.dash-datepicker-clear:not([role])").forEach(function (link) {
      link.setAttribute("role", "button");
      link.setAttribute("tabindex", "0");
      link.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); link.click(); }
      });
    });
    root.querySelectorAll("input[type=file]:not([aria-label])").forEach(function (input) {
      var area = input.parentElement;
      var text = area && area.textContent ? area.textContent.trim() : "";
      input.setAttribute("aria-label", text || "Choose a file to upload");
    });
  }

  var scheduled = false;
  function schedule() {
    if (scheduled) { return; }
    scheduled = true;
    window.requestAnimationFrame(function () { scheduled = false; repair(document); });
  }

  function start() {
    repair(document);
    new MutationObserver(schedule).observe(document.body, {
      childList: true, subtree: true, attributes: true,
      attributeFilter: ["tabindex", "aria-expanded", "aria-haspopup"],
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
