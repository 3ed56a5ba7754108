// The import's progress page: polls the job's status and updates the figures; reloads
// for the report when the import ends. Without it, the page has a refresh link.
"use strict";
(function () {
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
