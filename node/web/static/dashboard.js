// The hub dashboard: polls /hub/status with the admin token from the URL fragment and
// renders one row per member. Served from /hub/static: the page's CSP allows no inline script.
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
function age(ms) {
  if (ms === null || ms === undefined) return "never";
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function esc(text) {
  const d = document.createElement("div"); d.textContent = String(text ?? ""); return d.innerHTML;
}
function date(ms) { return ms ? new Date(ms).toISOString().slice(0, 10) : "-"; }
function row(m) {
  const cls = "state state-" + m.state.split(" ")[0];
  const rejects = m.recent_rejects.map(r => esc(r.code + ": " + r.message)).join("<br>");
  const runs = m.recent_runs.map(r =>
    (r.error ? "✗ " + esc(r.error) : "✓ +" + r.applied + " −" + r.retracted) +
    (r.duration_ms !== null ? " (" + r.duration_ms + " ms)" : "")).join("<br>");
  return `<tr data-member="${esc(m.node_id)}">
    <td><b>${esc(m.node_id)}</b> ${esc(m.country || "")}<br><span class="runs">${esc((m.groups || []).join(", "))}</span></td>
    <td><span class="${cls}" data-state="${esc(m.state)}">${esc(m.state)}</span>
      ${m.last_error ? `<div class="err">${esc(m.last_error)}</div>` : ""}</td>
    <td>${age(m.last_success_age_ms)}${m.state === "stale" && m.oldest_copy_age_ms !== null ? `<div class="err">copies up to ${age(m.oldest_copy_age_ms).replace(" ago", "")} old</div>` : ""}</td>
    <td class="num">${m.lag ?? "-"}</td>
    <td class="num">${m.items_held}</td>
    <td class="num">${m.rejected}${rejects ? `<div class="err">${rejects}</div>` : ""}</td>
    <td>${date(m.key_expiry)}</td>
    <td class="num">${m.policy_version ?? "-"}</td>
    <td class="num">${m.matches}</td>
    <td class="runs">${runs || "-"}</td>
  </tr>`;
}
function matching(m) {
  // The hub's matcher: semantic with its model (and listings still to encode), or lexical
  // only with the reason. Only the process that runs the matcher knows its state.
  if (!m) return "";
  if (!m.this_process) return `<span data-matching="elsewhere">matching: ${esc(m.model)} (in the leader process)</span>`;
  const sem = m.semantic;
  if (!sem) return `<span data-matching="starting">matching: ${esc(m.model)}, starting</span>`;
  if (!sem.enabled) return `<span class="err" data-matching="lexical">matching: lexical only (${esc(sem.reason || "no model")})</span>`;
  const held = m.encoding_held ? " (encoding resumes when the long sync in progress ends)" : "";
  const todo = sem.to_encode ? `, ${sem.to_encode} listings still to encode${held}` : "";
  return `<span data-matching="semantic">matching: semantic (${esc(sem.model)})${todo}</span>`;
}
async function refresh() {
  try {
    const resp = await fetch("/hub/status", { headers: { Authorization: "Bearer " + token } });
    if (!resp.ok) throw new Error("status " + resp.status + (resp.status === 401 ? ": open this page as /hub/dashboard#token=<admin token>" : ""));
    const s = await resp.json();
    document.getElementById("hub").textContent = s.hub;
    document.getElementById("dirv").textContent = s.directory_version;
    document.getElementById("updated").textContent = new Date(s.now).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    document.getElementById("totals").innerHTML =
      `<span>${s.totals.members} members</span><span>${s.totals.items_held} summaries held</span>` +
      `<span>${s.totals.rejected} rejected</span><span>${s.totals.matches} matches notified</span>` + matching(s.matching);
    document.getElementById("members").innerHTML = s.members.map(row).join("") || '<tr><td colspan="10">no members yet</td></tr>';
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "yes";
  } catch (e) {
    document.getElementById("error").textContent = "· " + e.message;
  }
}
refresh();
setInterval(refresh, 5000);
