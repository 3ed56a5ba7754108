"""Export of a node's listings as JSON Lines in the import format: one listing record a
line, as stored (times in integer ms, which the import reads as they are). Importing the
file into a fresh node with the same node id gives the same listings (versions and
times included). Withdrawn listings are not exported: the format has no tombstones.

The console streams it page by page (``EXPORT_PAGE`` listings per trip to the database
threads); ``cattc listings export`` writes the same lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from node.runtime import NodeRuntime
from node.services.listings import ListingService
from node.ui.audit import append
from node.ui.auth import require_role
from node.ui.keys import STAFF_USER
from node.web.appkeys import RUNTIME

EXPORT_PAGE = 500


def export_line(record: dict[str, Any]) -> str:
    """One listing as a line of the file (UTF-8 text, no newline inside)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def export_lines(service: ListingService) -> Iterator[str]:
    """Every live listing of ``service``'s node, in id order."""
    for stored in service.iter_all(include_withdrawn=False):
        yield export_line(stored.record)


def _page(rt: NodeRuntime, after: str | None) -> tuple[bytes, str | None]:
    items, nxt = rt.listings.query(after=after, limit=EXPORT_PAGE)
    return "".join(export_line(s.record) for s in items).encode(), nxt


def _audit(rt: NodeRuntime, actor: str) -> None:
    append(
        rt.engine,
        at=rt.clock(),
        actor=actor,
        action="listing.export",
        target="listings",
        detail="live listings as JSON Lines",
    )


@require_role("editor")
async def export_listings(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    user = request[STAFF_USER]
    # Recorded before the first byte leaves: a download cut short was still asked for.
    await rt.run(_audit, rt, user.name if user is not None else "?")
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{rt.node_id}-listings.jsonl"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    after: str | None = None
    while True:
        data, after = await rt.run(_page, rt, after)
        await response.write(data)
        if after is None:
            break
    await response.write_eof()
    return response
