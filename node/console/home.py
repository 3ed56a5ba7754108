"""The console's first page: what needs attention at this center, with links to it:
listings per category, interest waiting for an answer, and how sync stands per peer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.console.listing_fields import CATEGORY_LABELS
from node.services.sync_status import peer_statuses
from node.storage.models import EoiRow
from node.ui.auth import require_role
from node.ui.i18n import N_
from node.ui.templating import render
from node.web.appkeys import RUNTIME

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

ANSWERED = ("accepted", "declined", "dropped")
PEER_STATES = {
    "never synced": N_("never synced"),
    "ok": N_("up to date"),
    "lagging": N_("catching up"),
    "failing": N_("failing"),
    "unreachable": N_("unreachable"),
    "stale": N_("stale: last success long ago"),
}
"""What each sync state (node.services.sync_status) is called on the page."""


@dataclass(frozen=True)
class Overview:
    listings: list[tuple[str, int, int]]  # category, live, withdrawn
    waiting: int  # interest in this center's listings not answered yet
    peers: list[dict[str, Any]]


def overview(rt: NodeRuntime) -> Overview:
    counts = rt.listings.counts()
    listings = [
        (cat, sum(n for k, n in by.items() if k != "withdrawn"), by.get("withdrawn", 0))
        for cat, by in sorted(counts.items())
    ]
    with Session(rt.engine) as session:
        waiting = session.scalar(
            select(func.count())
            .select_from(EoiRow)
            .where(EoiRow.owner == rt.node_id, EoiRow.state.not_in(ANSWERED))
        )
    names = {m.node_id: f"{m.name} ({m.country})" for m in rt.directory.members()}
    peers = [{**p, "name": names.get(p["peer"], p["peer"])} for p in peer_statuses(rt)]
    return Overview(listings, int(waiting or 0), peers)


@require_role("viewer")
async def home(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    summary = await rt.run(overview, rt)
    return render(
        request,
        "console/home.html",
        {
            "node_name": rt.config.name,
            "node_id": rt.node_id,
            "overview": summary,
            "categories": CATEGORY_LABELS,
            "states": PEER_STATES,
        },
    )
