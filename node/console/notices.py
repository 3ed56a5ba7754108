"""The console's match notices: what the hub found for this node's listings, and why.

A notice (``node.hub.notice_content``) names this node's listing, the counterpart as far
as its owner lets this node know it, the score and its explanation. From a notice an
editor expresses interest in the counterpart: ``new_eoi`` signs it and the hub takes
it, as ``cattc eoi submit`` does; the audit entry is written with the state the hub gave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.console.eois import EOI_PATH, HubRefused, audit_only, send_to_hub, settle, when
from node.hub import eoi as service
from node.services.errors import InvalidInput, NotFound
from node.storage.models import EoiRow, InboxRow
from node.ui.auth import form_of, require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME
from node.web.numbers import count
from protocol.eoi import MESSAGE_MAX_CHARS

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

PAGE_SIZE = 20
NOTICE = "match_notice"
OWN = N_("The other listing is your own center's: interest goes to other centers.")
BAD_MESSAGE = N_("Say in a few words what the interest is (at most 4000 characters).")


@dataclass(frozen=True)
class NoticeView:
    id: int
    received: str
    own_id: str
    own_role: str
    own_title: Any
    cp_owner: str
    cp_owner_name: str
    cp_listing_id: str | None
    cp_kind: str
    cp_descriptor: str
    cp_title: Any
    cp_fields: list[tuple[str, str]]
    score: float
    components: list[tuple[str, float]]
    shared_terms: list[str]
    shared_codes: list[str]
    evidence: dict[str, Any] | None


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _own_title(rt: NodeRuntime, listing_id: str, cache: dict[str, Any]) -> Any:
    if listing_id not in cache:
        try:
            cache[listing_id] = rt.listings.get(listing_id).record.get("title")
        except NotFound:
            cache[listing_id] = None
    return cache[listing_id]


def _view(
    row: InboxRow, names: dict[str, str], rt: NodeRuntime, cache: dict[str, Any]
) -> NoticeView:
    n = json.loads(row.obj)
    cp = n.get("counterpart", {})
    fields = cp.get("fields") or {}
    explanation = n.get("explanation", {})
    evidence = explanation.get("semantic_evidence")
    return NoticeView(
        id=row.id,
        received=when(row.received_at),
        own_id=n["own_listing"]["id"],
        own_role=n["own_listing"].get("role", ""),
        own_title=_own_title(rt, n["own_listing"]["id"], cache),
        cp_owner=cp.get("owner", ""),
        cp_owner_name=names.get(cp.get("owner", ""), cp.get("owner", "")),
        cp_listing_id=cp.get("listing_id"),
        cp_kind=cp.get("kind", ""),
        cp_descriptor=cp.get("descriptor", ""),
        cp_title=fields.get("title"),
        cp_fields=[(k, _text(v)) for k, v in fields.items() if k != "title"],
        score=float(n.get("score", 0.0)),
        components=sorted(
            ((str(k), float(v)) for k, v in (explanation.get("components") or {}).items()),
            key=lambda kv: -kv[1],
        ),
        shared_terms=[str(t) for t in explanation.get("shared_terms") or []],
        shared_codes=[str(c) for c in explanation.get("shared_codes") or []],
        evidence=evidence if isinstance(evidence, dict) else None,
    )


def _names(rt: NodeRuntime) -> dict[str, str]:
    return {m.node_id: f"{m.name} ({m.country})" for m in rt.directory.members()}


def notice_page(rt: NodeRuntime, page: int) -> tuple[list[NoticeView], int]:
    """Page ``page`` (from 1) of the notices received, newest first, and the page count."""
    with Session(rt.engine) as session:
        total = session.scalar(select(func.count()).where(InboxRow.type == NOTICE)) or 0
        rows = session.scalars(
            select(InboxRow)
            .where(InboxRow.type == NOTICE)
            .order_by(InboxRow.id.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        ).all()
        names, cache = _names(rt), dict[str, Any]()
        views = [_view(r, names, rt, cache) for r in rows]
    return views, max(1, -(-total // PAGE_SIZE))


def one_notice(rt: NodeRuntime, notice_id: int) -> tuple[NoticeView, list[dict[str, Any]]] | None:
    """One notice, and the interest this node already sent in its counterpart."""
    with Session(rt.engine) as session:
        row = session.get(InboxRow, notice_id)
        if row is None or row.type != NOTICE:
            return None
        view = _view(row, _names(rt), rt, {})
        sent = [
            {"id": e.id, "state": e.state, "updated": when(e.updated)}
            for e in session.scalars(
                select(EoiRow)
                .where(
                    EoiRow.requester == rt.node_id,
                    EoiRow.owner == view.cp_owner,
                    EoiRow.listing_id == (view.cp_listing_id or ""),
                )
                .order_by(EoiRow.updated.desc())
            )
        ]
    return view, sent


def _positive(text: str) -> int | None:
    return count(text, 9) or None


# -- pages -----------------------------------------------------------------------------
@require_role("viewer")
async def match_list(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    page = _positive(request.query.get("page", "1"))
    if page is None:
        return render(
            request,
            "console/matches.html",
            {"notices": [], "page": 1, "pages": 1, "problem": N_("The page number is not valid.")},
            status=400,
        )
    notices, pages = await rt.run(notice_page, rt, page)
    context = {"notices": notices, "page": page, "pages": pages}
    return render(request, "console/matches.html", context)


async def _detail(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    rt = request.app[RUNTIME]
    notice_id = _positive(request.match_info["notice_id"])
    found = None if notice_id is None else await rt.run(one_notice, rt, notice_id)
    if found is None:
        return render(request, "console/match_missing.html", status=404)
    notice, sent = found
    context = {
        "notice": notice,
        "sent": sent,
        "own": notice.cp_owner == rt.node_id,
        "max_chars": MESSAGE_MAX_CHARS,
        **extra,
    }
    return render(request, "console/match.html", context, status=status)


@require_role("viewer")
async def match_page(request: web.Request) -> web.Response:
    return await _detail(request)


@require_role("editor")
async def express_interest(request: web.Request) -> web.Response:
    """Sign an EoI in the notice's counterpart and send it to the hub."""
    rt = request.app[RUNTIME]
    user = request[STAFF_USER]
    assert user is not None  # require_role let only a signed-in user through
    message = str((await form_of(request)).get("message", ""))
    notice_id = _positive(request.match_info["notice_id"])
    found = None if notice_id is None else await rt.run(one_notice, rt, notice_id)
    if found is None:
        return render(request, "console/match_missing.html", status=404)
    notice = found[0]
    if notice.cp_owner == rt.node_id:
        return await _detail(request, status=400, problem=OWN)
    if notice.cp_listing_id is None:
        return await _detail(
            request, status=400, problem=N_("This match does not name the listing.")
        )
    if not message.strip() or len(message) > MESSAGE_MAX_CHARS:
        return await _detail(request, status=400, message_error=BAD_MESSAGE, message=message)
    try:
        obj = await rt.run(service.new_eoi, rt, notice.cp_owner, notice.cp_listing_id, message)
    except InvalidInput:
        return await _detail(request, status=400, message_error=BAD_MESSAGE, message=message)
    target = f"{notice.cp_owner}/{notice.cp_listing_id}"
    try:
        result = await send_to_hub(request, EOI_PATH, obj)
    except HubRefused as exc:
        detail = f"{target}: not sent ({exc.detail})"
        await rt.run(audit_only, rt, user.name, "eoi.submit", obj["id"], detail)
        return see_other(f"/console/eois/{obj['id']}?done=unsent")
    state = str(result.get("state", "forwarded"))
    await rt.run(settle, rt, obj["id"], state, user.name, "eoi.submit", f"{target}: {state}")
    return see_other(f"/console/eois/{obj['id']}?done=sent")
