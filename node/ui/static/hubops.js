// The hub operator's pages: ask before a form marked data-confirm is sent (the pages
// work without this; suspension has its own confirmation page).
"use strict";
document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
  });
});
// After a form came back with errors, start at the first field to fix.
var firstInvalid = document.querySelector("[aria-invalid='true']");
if (firstInvalid) { firstInvalid.focus(); }
