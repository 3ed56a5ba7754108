// The marketplace works without this; it only counts what is left of a message.
"use strict";
document.querySelectorAll("textarea[maxlength]").forEach(function (area) {
  var hint = document.getElementById(area.id + "-hint");
  if (!hint) { return; }
  var base = hint.textContent;
  var update = function () {
    var left = area.maxLength - area.value.length;
    hint.textContent = base + " (" + left + ")";
  };
  area.addEventListener("input", update);
});
// On a narrow screen the results come first: the filters fold away behind their heading.
document.querySelectorAll("details.facet-box").forEach(function (box) {
  if (window.matchMedia("(max-width: 760px)").matches) { box.open = false; }
});
