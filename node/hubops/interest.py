"""The queue of visitors' expressions of interest (``/console/hub/interest``): what the
marketplace received, with the visitor's contact (shown to the operator only), and the
operator's one action on it: dropping spam before it is forwarded (admin, audited)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from node.hubops.sync import utc
from node.storage.models import VisitorInterestRow
from node.ui.audit import record
from node.ui.auth import require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME

PAGE = "/console/hub/interest"
STATES = ("queued", "forwarded", "dropped")
PAGE_ROWS = 200
NOT_QUEUED = N_("Only a queued expression of interest can be dropped; this one was not dropped.")
DROPPED = N_("Dropped: it will not be forwarded.")


@dataclass(frozen=True)
class Interest:
    id: str
    state: str
    owner: str
    listing_id: str
    received: str
    name: str
    email: str
    organization: str
    message: str


def queue(engine: Engine, state: str | None) -> tuple[list[Interest], dict[str, int]]:
    """The newest ``PAGE_ROWS`` expressions of interest (in ``state`` if given) and the
    count in each state."""
    stmt = select(VisitorInterestRow).order_by(
        VisitorInterestRow.received.desc(), VisitorInterestRow.id
    )
    if state is not None:
        stmt = stmt.where(VisitorInterestRow.state == state)
    with Session(engine) as session:
        rows = [
            Interest(
                r.id,
                r.state,
                r.owner,
                r.listing_id,
                utc(r.received),
                r.name,
                r.email,
                r.organization,
                r.message,
            )
            for r in session.scalars(stmt.limit(PAGE_ROWS))
        ]
        counts = dict(
            session.execute(
                select(VisitorInterestRow.state, func.count()).group_by(VisitorInterestRow.state)
            ).all()
        )
    return rows, {s: int(counts.get(s, 0)) for s in STATES}


def drop(engine: Engine, interest_id: str, *, actor: str, at: int) -> bool:
    """Mark a queued expression of interest dropped, audited; False if it was not queued."""
    with Session(engine) as session, session.begin():
        row = session.get(VisitorInterestRow, interest_id, with_for_update=True)
        if row is None or row.state != "queued":
            return False
        row.state = "dropped"
        detail = json.dumps({"owner": row.owner, "listing": row.listing_id}, sort_keys=True)
        record(session, at=at, actor=actor, action="interest.drop", target=row.id, detail=detail)
        return True


async def _page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    state = request.query.get("state")
    state = state if state in STATES else None
    rt = request.app[RUNTIME]
    rows, counts = await rt.run(queue, rt.engine, state)
    note = DROPPED if request.query.get("done") == "dropped" else ""
    context: dict[str, Any] = {
        "interests": rows,
        "counts": counts,
        "state": state,
        "states": STATES,
        "error": error,
        "note": note,
        "page_rows": PAGE_ROWS,
    }
    return render(request, "hubops/interest.html", context, status=status)


@require_role("viewer")
async def interest_page(request: web.Request) -> web.Response:
    return await _page(request)


@require_role("admin")
async def drop_interest(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    user = request[STAFF_USER]
    assert user is not None
    interest_id = request.match_info["interest_id"]
    if not await rt.run(drop, rt.engine, interest_id, actor=user.name, at=rt.clock()):
        return await _page(request, error=NOT_QUEUED, status=409)
    return see_other(f"{PAGE}?done=dropped")
