"""The sync page (``/console/hub/sync``): how each member's sync stands now (the status the
JSON dashboard shows, ``node.hub.monitor.hub_status``) and its history over the last day
or week from ``sync_runs`` (``node.hubops.history``), drawn as sparklines with the same
numbers in a table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from node.hub.monitor import hub_status
from node.hubops.charts import sparkline
from node.hubops.history import DEFAULT_WINDOW, WINDOWS, PeerHistory, sync_history
from node.ui.auth import require_role
from node.ui.templating import render
from node.web.appkeys import RUNTIME


def utc(ms: int | None) -> str:
    """``ms`` as a UTC time a person reads, or an empty string."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _view(rt: Any, window: str) -> dict[str, Any]:
    status = hub_status(rt)
    history = sync_history(rt.engine, status["now"], window)
    members = []
    for m in status["members"]:
        runs = m["recent_runs"]
        last = runs[0] if runs else None
        members.append(
            {
                **m,
                "last_run": utc(last["started"]) if last else "",
                "last_run_applied": last["applied"] if last else None,
                "last_run_rejected": last["rejected"] if last else None,
                "last_success_utc": utc(m["last_success"]),
                "history": history.peers.get(m["node_id"]) or PeerHistory(m["node_id"]),
            }
        )
    return {
        "status": status,
        "members": members,
        "now_utc": utc(status["now"]),
        "history_from": utc(history.cut),
    }


@require_role("viewer")
async def sync_page(request: web.Request) -> web.Response:
    window = request.query.get("window", DEFAULT_WINDOW)
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    rt = request.app[RUNTIME]
    view = await rt.run(_view, rt, window)
    context = {**view, "window": window, "windows": list(WINDOWS), "sparkline": sparkline}
    return render(request, "hubops/sync.html", context)
