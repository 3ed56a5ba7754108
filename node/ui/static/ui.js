// Light progressive enhancement; every page works without it.
"use strict";
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
// A table wider than the window scrolls in its box: make the box reachable by keyboard
// (and named after the table) only while it actually scrolls.
(function () {
  var boxes = document.querySelectorAll(".table-scroll");
  if (!boxes.length) { return; }
  var update = function () {
    boxes.forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        var table = box.querySelector("table");
        var caption = table && table.caption ? table.caption.textContent.trim() : "";
        box.setAttribute("tabindex", "0");
        if (caption) {
          box.setAttribute("role", "region");
          box.setAttribute("aria-label", caption);
        } else if (table && table.getAttribute("aria-labelledby")) {
          box.setAttribute("role", "region");
          box.setAttribute("aria-labelledby", table.getAttribute("aria-labelledby"));
        }
      } else if (!scrolls && box.getAttribute("tabindex") === "0") {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
        box.removeAttribute("aria-labelledby");
      }
    });
  };
  update();
  window.addEventListener("resize", update);
}());
