"""The console's "What was shared with whom": per peer (with counts), one peer's rows a
page at a time, and per listing (which peer got which version when, and whether it was
withdrawn from it later). Read from the share log the feed writes
(``node.services.share_log``); every signed-in user may read it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.services import share_log
from node.ui.auth import require_role
from node.ui.templating import render
from node.web.appkeys import RUNTIME
from node.web.numbers import count
from protocol.timeutil import ms_to_iso

PAGE_SIZE = 50
PEER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _when(ms: int | None) -> str:
    """ISO 8601 UTC to the second, or "" for none."""
    return ms_to_iso(ms - ms % 1000) if ms is not None else ""


def _page_number(raw: str) -> int:
    """The page asked for, or 0 when it is not a page number."""
    return count(raw, 6) or 0


@require_role("viewer")
async def peers_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    totals = await rt.run(share_log.peers, rt.engine)
    rows = [{**t.as_dict(), "last": _when(t.last_at)} for t in totals]
    return render(request, "console/shared.html", {"peers": rows})


@require_role("viewer")
async def peer_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    peer = request.match_info["peer"]
    if not (2 <= len(peer) <= 32 and set(peer) <= PEER_CHARS and peer[0].isalpha()):
        return render(request, "console/shared_missing.html", {"what": "peer"}, status=404)
    page = _page_number(request.query.get("page", "1"))
    total = await rt.run(share_log.count_for_peer, rt.engine, peer)
    pages = max(1, -(-total // PAGE_SIZE))
    error = "" if 1 <= page <= pages else "There is no such page."
    page = min(max(page, 1), pages)
    rows = await rt.run(
        share_log.for_peer, rt.engine, peer, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    base = f"/console/shared/{peer}"
    context: dict[str, Any] = {
        "peer": peer,
        "total": total,
        "rows": [{**r.as_dict(), "when": _when(r.at)} for r in rows],
        "page": page,
        "pages": pages,
        "error": error,
        "prev_url": f"{base}?page={page - 1}" if page > 1 else "",
        "next_url": f"{base}?page={page + 1}" if page < pages else "",
    }
    return render(request, "console/shared_peer.html", context, status=400 if error else 200)


@require_role("viewer")
async def listing_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    listing_id = request.match_info["listing_id"]
    if not await rt.run(share_log.listing_exists, rt.engine, listing_id):
        return render(request, "console/shared_missing.html", {"what": "listing"}, status=404)
    title = await rt.run(share_log.listing_title, rt.engine, listing_id)
    rows = await rt.run(share_log.for_listing, rt.engine, listing_id)
    holdings = [
        {**h.as_dict(), "received": _when(h.received_at), "withdrawn": _when(h.withdrawn_at)}
        for h in share_log.holdings(rows)
    ]
    history = [{**r.as_dict(), "when": _when(r.at)} for r in reversed(rows)]
    context = {
        "listing_id": listing_id,
        "title": title or {},
        "holdings": holdings,
        "history": history,
    }
    return render(request, "console/shared_listing.html", context)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/console/shared", peers_page)
    r.add_get("/console/shared/{peer}", peer_page)
    r.add_get("/console/listings/{listing_id}/shared", listing_page)
