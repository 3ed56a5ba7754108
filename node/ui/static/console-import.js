// The console's import pages, as a light enhancement (each works without it):
// the upload form refuses a file over the node's limit before sending it, and the
// progress page polls the job's status, updating the figures, then reloads for the report.
"use strict";
(function () {
  var form = document.getElementById("import-form");
  if (form) {
    var max = Number(form.dataset.maxBytes);
    var input = document.getElementById("import-file");
    var message = document.getElementById("upload-size-error");
    form.addEventListener("submit", function (event) {
      var file = input && input.files && input.files[0];
      if (file && max && file.size > max) {
        event.preventDefault();
        message.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", "upload-size-error");
        input.focus();
      }
    });
  }

  var box = document.getElementById("import-progress");
  if (!box || box.dataset.state !== "running") { return; }
  var url = box.dataset.status;
  function show(status) {
    ["processed", "total", "good", "bad"].forEach(function (name) {
      var el = box.querySelector('[data-figure="' + name + '"]');
      if (el) { el.textContent = String(status[name]); }
    });
    var bar = document.getElementById("import-bar");
    if (bar) { bar.value = status.percent; bar.textContent = status.percent + "%"; }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (!status) { return; }
        show(status);
        if (status.done) { window.location.reload(); } else { window.setTimeout(poll, 500); }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  poll();
})();
