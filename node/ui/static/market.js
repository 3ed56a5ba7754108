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
