"""The console's EoI inbox: interest received for this node's listings, and sent.

An editor accepts (choosing which of the listing's contact fields to disclose) or
declines each received interest, once. The rules are the service's (``node.hub.eoi``),
exactly as ``cattc eoi accept|decline`` uses them: ``answer`` signs the reply, the hub
takes one answer per interest (its conditional update refuses a second), and only then
is the local state set, with the audit entry in the same transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from node.hub import eoi as service
from node.hub.eoi import ANSWERED, CONTACT_FIELDS
from node.hub.eoi_gate import AlreadyAnswered
from node.services.errors import Conflict, NotFound, ServiceError
from node.services.peers import peer_info
from node.storage.models import EoiRow
from node.ui.audit import append, record
from node.ui.auth import form_of, require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME, SYNC
from node.web.numbers import count
from protocol.canonical import canonical_bytes
from protocol.errors import ErrorCode
from protocol.timeutil import ms_to_iso
from sync.client import PeerClient, PeerError

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)
EOI_PATH = "/federation/v1/eoi"
REPLY_PATH = "/federation/v1/eoi/reply"
PAGE_SIZE = 50
ENVELOPE = frozenset(
    {"type", "v", "issuer", "ts", "audience", "id", "listing", "message", "signatures"}
)
"""The keys every EoI has; whatever else one carries (about a marketplace visitor, say)
is shown as it is."""


ALREADY = N_("This was already answered; it cannot be answered again.")


class HubRefused(Exception):
    """The hub did not take an EoI or a reply: ``reason`` is a message id for people,
    ``status`` the page's HTTP status (409 when the hub holds it already)."""

    def __init__(self, reason: str, detail: str, status: int = 502) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status


def when(ms: int | None) -> str:
    """A time for people: ``2026-12-04 16:30 UTC``."""
    return "" if ms is None else ms_to_iso(ms)[:16].replace("T", " ") + " UTC"


async def send_to_hub(request: web.Request, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    """POST a signed EoI or reply to the hub, as ``cattc eoi`` does (on the hub itself,
    straight to the hub's service); the hub's answer, or ``HubRefused``."""
    rt = request.app[RUNTIME]
    if rt.config.is_hub:
        receive = service.hub_receive_eoi if path == EOI_PATH else service.hub_receive_reply
        try:
            return await rt.run(receive, rt, rt.node_id, obj)
        except (Conflict, AlreadyAnswered) as exc:
            raise HubRefused(ALREADY, exc.message, 409) from exc
        except ServiceError as exc:
            raise HubRefused(N_("The hub refused it."), exc.message, 400) from exc
    hub = await rt.run(peer_info, rt, rt.config.hub_id)
    if hub is None or not hub.base_url:
        raise HubRefused(N_("This node has no hub configured."), "no hub")
    client: PeerClient = request.app[SYNC].client
    try:
        resp = await client.request(
            "POST", hub.base_url, hub.node_id, path, body=canonical_bytes(obj)
        )
    except PeerError as exc:
        raise HubRefused(
            N_("The hub could not be reached. Nothing was sent; try again."), str(exc)
        ) from exc
    try:
        payload = resp.json()
    except PeerError as exc:
        payload = {"error": {"message": str(exc)}}
    if resp.status == 202 and isinstance(payload, dict):
        return payload
    err = payload.get("error", {}) if isinstance(payload, dict) else {}
    detail = f"hub answered {resp.status}: {err.get('message')}"
    logger.info("the hub refused %s: %s", path, detail)
    if err.get("code") in (ErrorCode.ALREADY_ANSWERED, ErrorCode.CONFLICT):
        raise HubRefused(ALREADY, detail, 409)
    if err.get("code") == ErrorCode.RATE_LIMITED:
        raise HubRefused(
            N_("The hub is taking no more interest from this node for now."), detail, 429
        )
    raise HubRefused(N_("The hub refused it."), detail)


# -- reading ---------------------------------------------------------------------------
def absorb(rt: NodeRuntime) -> None:
    """``absorb_inbox``: safe when two pages (or a page and ``cattc eoi list``) run it at
    once; it reads only what arrived since the last call."""
    service.absorb_inbox(rt)


@dataclass(frozen=True)
class EoiView:
    id: str
    incoming: bool
    requester: str
    requester_name: str
    owner: str
    owner_name: str
    listing_id: str
    listing_title: Any
    state: str
    updated: str
    message: str
    visitor: dict[str, str] | None
    about_requester: list[tuple[str, str]]
    reply_decision: str | None
    reply_contact: dict[str, str]
    reply_at: str


def _names(rt: NodeRuntime) -> dict[str, str]:
    names = {m.node_id: f"{m.name} ({m.country})" for m in rt.directory.members()}
    names.setdefault(rt.node_id, f"{rt.config.name} ({rt.config.country})")
    return names


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list):
        out.append((prefix, ", ".join(str(v) for v in value)))
    else:
        out.append((prefix, str(value)))


def _title(rt: NodeRuntime, listing_id: str, cache: dict[str, Any]) -> Any:
    if listing_id not in cache:
        try:
            cache[listing_id] = rt.listings.get(listing_id).record.get("title")
        except NotFound:
            cache[listing_id] = None
    return cache[listing_id]


def _view(rt: NodeRuntime, row: EoiRow, names: dict[str, str], titles: dict[str, Any]) -> EoiView:
    req = json.loads(row.request_obj)
    reply = json.loads(row.reply_obj) if row.reply_obj else None
    visitor = req.get("visitor")
    extra: list[tuple[str, str]] = []
    for key in sorted(set(req) - ENVELOPE - {"visitor"}):
        _flatten(key, req[key], extra)
    incoming = row.owner == rt.node_id
    return EoiView(
        id=row.id,
        incoming=incoming,
        requester=row.requester,
        requester_name=names.get(row.requester, row.requester),
        owner=row.owner,
        owner_name=names.get(row.owner, row.owner),
        listing_id=row.listing_id,
        listing_title=_title(rt, row.listing_id, titles) if incoming else None,
        state=row.state,
        updated=when(row.updated),
        message=str(req.get("message", "")),
        visitor={str(k): str(v) for k, v in visitor.items() if v is not None}
        if isinstance(visitor, dict)
        else None,
        about_requester=extra,
        reply_decision=None if reply is None else str(reply.get("decision")),
        reply_contact=dict((reply or {}).get("contact") or {}),
        reply_at=when(reply.get("ts")) if reply else "",
    )


@dataclass(frozen=True)
class Section:
    """One page of one side of the inbox, newest first."""

    items: list[EoiView]
    page: int
    pages: int


def _section(
    rt: NodeRuntime, session: Session, where: list[Any], page: int, cache: dict[str, Any]
) -> Section:
    base = select(EoiRow).where(EoiRow.state != "dropped", *where)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(page, pages)
    rows = session.scalars(
        base.order_by(EoiRow.updated.desc(), EoiRow.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    names = cache.setdefault("names", _names(rt))
    titles = cache.setdefault("titles", {})
    return Section([_view(rt, r, names, titles) for r in rows], page, pages)


def inbox(rt: NodeRuntime, in_page: int = 1, out_page: int = 1) -> tuple[Section, Section]:
    """A page of the interest received (for this node's listings), and one of the
    interest sent, newest first."""
    absorb(rt)
    sent = [EoiRow.requester == rt.node_id, EoiRow.owner != rt.node_id]
    if rt.config.is_hub:
        # Interest the hub issued for marketplace visitors is the operator's queue (the
        # hub console), not interest this center sent. Inside a JSON string a quote is
        # escaped, so only the key itself matches.
        sent.append(EoiRow.request_obj.not_like('%"visitor": %'))
    cache: dict[str, Any] = {}
    with Session(rt.engine) as session:
        incoming = _section(rt, session, [EoiRow.owner == rt.node_id], in_page, cache)
        outgoing = _section(rt, session, sent, out_page, cache)
    return incoming, outgoing


def one(rt: NodeRuntime, eoi_id: str) -> tuple[EoiView, dict[str, str]] | None:
    """One interest of this node, and the listing's contact fields it may disclose."""
    absorb(rt)
    with Session(rt.engine) as session:
        row = session.get(EoiRow, eoi_id)
        if row is None or row.state == "dropped" or rt.node_id not in (row.owner, row.requester):
            return None
        view = _view(rt, row, _names(rt), {})
    contact: dict[str, str] = {}
    if view.incoming:
        try:
            given = rt.listings.get(view.listing_id).record.get("contact") or {}
        except NotFound:
            given = {}
        contact = {f: str(given[f]) for f in CONTACT_FIELDS if given.get(f)}
    return view, contact


def settle(
    rt: NodeRuntime,
    eoi_id: str,
    state: str,
    actor: str,
    action: str,
    detail: str,
    reply: dict[str, Any] | None = None,
) -> None:
    """Set the local state the hub confirmed (never over an earlier answer), keep the
    owner's signed ``reply`` (what was disclosed), and audit it, in one transaction."""
    values: dict[str, Any] = {"state": state, "updated": rt.clock()}
    if reply is not None:
        values["reply_obj"] = json.dumps(reply)
    with Session(rt.engine) as session, session.begin():
        session.execute(
            update(EoiRow)
            .where(EoiRow.id == eoi_id, EoiRow.state.not_in(ANSWERED))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        record(session, at=rt.clock(), actor=actor, action=action, target=eoi_id, detail=detail)


def audit_only(rt: NodeRuntime, actor: str, action: str, target: str, detail: str) -> None:
    append(rt.engine, at=rt.clock(), actor=actor, action=action, target=target, detail=detail)


# -- pages -----------------------------------------------------------------------------
@require_role("viewer")
async def eoi_list(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    pages = [_page_number(request.query.get(k, "1")) for k in ("page", "sent_page")]
    if pages[0] is None or pages[1] is None:
        return render(request, "console/eois_bad_page.html", status=400)
    incoming, outgoing = await rt.run(inbox, rt, pages[0], pages[1])
    context = {"incoming": incoming, "outgoing": outgoing}
    return render(request, "console/eois.html", context)


def _page_number(text: str) -> int | None:
    return count(text, 9) or None


async def _detail(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    rt = request.app[RUNTIME]
    eoi_id = request.match_info["eoi_id"]
    found = await rt.run(one, rt, eoi_id)
    if found is None:
        return render(
            request,
            "console/eoi_missing.html",
            {"eoi_id": eoi_id},
            status=404,
        )
    view, contact = found
    context = {"eoi": view, "contact": contact, "fields": CONTACT_FIELDS, **extra}
    return render(request, "console/eoi.html", context, status=status)


@require_role("viewer")
async def eoi_page(request: web.Request) -> web.Response:
    done = request.query.get("done", "")
    return await _detail(request, done=done if done in ("answered", "sent", "unsent") else "")


@require_role("editor")
async def eoi_answer(request: web.Request) -> web.Response:
    """Accept (with the contact fields ticked) or decline one received interest."""
    rt = request.app[RUNTIME]
    user = request[STAFF_USER]
    assert user is not None  # require_role let only a signed-in user through
    form = await form_of(request)
    eoi_id = request.match_info["eoi_id"]
    decision = str(form.get("decision", ""))
    share = tuple(str(v) for v in form.getall("share", []))
    if decision not in ("accepted", "declined") or any(f not in CONTACT_FIELDS for f in share):
        return await _detail(request, status=400, problem=N_("Choose accept or decline."))
    if decision == "declined":
        share = ()
    try:
        await rt.run(absorb, rt)
        reply = await rt.run(service.answer, rt, eoi_id, decision, share)
    except NotFound:
        return await _detail(request, status=404)
    except Conflict:
        return await _detail(request, status=409, problem=ALREADY)
    try:
        await send_to_hub(request, REPLY_PATH, reply)
    except HubRefused as exc:
        return await _detail(
            request, status=exc.status, problem=exc.reason, problem_detail=exc.detail
        )
    shared = ", ".join(reply["contact"]) or "nothing"
    action = "eoi.accept" if decision == "accepted" else "eoi.decline"
    await rt.run(settle, rt, eoi_id, decision, user.name, action, f"shared: {shared}", reply)
    return see_other(f"/console/eois/{eoi_id}?done=answered")


@require_role("editor")
async def eoi_resend(request: web.Request) -> web.Response:
    """Send again an interest of ours the hub has not taken yet (state ``submitted``)."""
    rt = request.app[RUNTIME]
    user = request[STAFF_USER]
    assert user is not None
    eoi_id = request.match_info["eoi_id"]
    obj = await rt.run(_unsent, rt, eoi_id)
    if obj is None:
        return await _detail(request, status=409, problem=N_("This interest was sent already."))
    try:
        result = await send_to_hub(request, EOI_PATH, obj)
        state = str(result.get("state", "forwarded"))
    except HubRefused as exc:
        if exc.status != 409:
            return await _detail(
                request, status=exc.status, problem=exc.reason, problem_detail=exc.detail
            )
        state = "forwarded"  # the hub took it before; its answer to us was lost
    await rt.run(settle, rt, eoi_id, state, user.name, "eoi.send", f"sent again: {state}")
    return see_other(f"/console/eois/{eoi_id}?done=sent")


def _unsent(rt: NodeRuntime, eoi_id: str) -> dict[str, Any] | None:
    with Session(rt.engine) as session:
        row = session.get(EoiRow, eoi_id)
        if row is None or row.requester != rt.node_id or row.state != "submitted":
            return None
        obj: dict[str, Any] = json.loads(row.request_obj)
        return obj
