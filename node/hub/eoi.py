"""Expressions of interest (DESIGN 9): requester's center -> hub -> owner's center and
back, each hop signed. Contact details travel only on acceptance, and only the fields
the owner chooses.

States: ``submitted`` (signed, not yet taken by the hub), ``forwarded`` (the hub queued
it for the owner), ``accepted`` / ``declined`` (the owner answered, once), ``introduced``
(the requester holds the contact details the owner disclosed). At the hub only:
``dropped`` (the sender could not have known the listing; nobody was told, and the
sender got the same answer as for ``forwarded``). The checks at the hub's door, and
what decides between forwarding and dropping, are in ``node.hub.eoi_gate``.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.hub.eoi_gate import (
    AlreadyAnswered,
    NotListingOwner,
    check_rates,
    load_body,
    may_know,
    parse,
    verify_from,
)
from node.hub.eoi_inbox import absorb_inbox
from node.services.errors import Conflict, InvalidInput, NotFound
from node.services.feed import post_to_outbox
from node.storage.db import begin_write
from node.storage.models import EoiRow
from protocol import PROTOCOL_VERSION
from protocol.eoi import (
    DECISIONS,
    MESSAGE_MAX_CHARS,
    EoiAnswer,
    EoiForward,
    EoiReply,
    EoiReplyForward,
    ExpressionOfInterest,
)
from protocol.signing import sign_object

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

__all__ = [
    "ANSWERED",
    "CONTACT_FIELDS",
    "absorb_inbox",
    "answer",
    "hub_receive_eoi",
    "hub_receive_reply",
    "list_eois",
    "mark",
    "new_eoi",
]
logger = logging.getLogger(__name__)
CONTACT_FIELDS = ("person", "email", "phone")
ANSWERED = ("accepted", "declined", "introduced")


def _save(session: Session, eoi: dict[str, Any], state: str, now: int, reply: Any = None) -> None:
    row = session.get(EoiRow, eoi["id"])
    if row is None:
        session.add(
            EoiRow(
                id=eoi["id"],
                requester=eoi["issuer"],
                owner=eoi["listing"]["owner"],
                listing_id=eoi["listing"]["id"],
                state=state,
                updated=now,
                received=now,
                request_obj=json.dumps(eoi),
                reply_obj=None if reply is None else json.dumps(reply),
            )
        )
    else:
        row.state, row.updated = state, now
        if reply is not None:
            row.reply_obj = json.dumps(reply)


def _answer(eoi_id: str, state: str) -> dict[str, Any]:
    return EoiAnswer(id=eoi_id, state=state).model_dump()  # type: ignore[arg-type]


# -- the requester -------------------------------------------------------------------
def new_eoi(rt: NodeRuntime, owner: str, listing_id: str, message: str) -> dict[str, Any]:
    if not message.strip() or len(message) > MESSAGE_MAX_CHARS:
        raise InvalidInput(f"say in 1-{MESSAGE_MAX_CHARS} characters what the interest is")
    if owner == rt.node_id:
        raise InvalidInput("this node owns that listing")
    obj = {
        "type": "eoi",
        "v": PROTOCOL_VERSION,
        "issuer": rt.node_id,
        "ts": rt.clock(),
        "audience": rt.config.hub_id,
        "id": f"{rt.node_id}-eoi-{secrets.token_hex(6)}",
        "listing": {"owner": owner, "id": listing_id},
        "message": message,
    }
    parse(ExpressionOfInterest, obj, "expression of interest")
    signed = sign_object(obj, rt.node_id, rt.keys.active)
    with Session(rt.engine) as session, session.begin():
        _save(session, signed, "submitted", rt.clock())
    return signed


def mark(rt: NodeRuntime, eoi_id: str, state: str) -> None:
    with Session(rt.engine) as session, session.begin():
        row = session.get(EoiRow, eoi_id)
        if row is not None:
            row.state, row.updated = state, rt.clock()


# -- the hub -------------------------------------------------------------------------
def _check_envelope(rt: NodeRuntime, origin: str, obj: Any, issuer: str, audience: str) -> None:
    if issuer != origin:
        raise InvalidInput(f"object is issued by {issuer}, but the request comes from {origin}")
    if audience != rt.node_id:
        raise InvalidInput(f"object is addressed to {audience}, not to this hub")
    verify_from(rt, obj, origin)


def hub_receive_eoi(rt: NodeRuntime, origin: str, body: bytes | dict[str, Any]) -> dict[str, Any]:
    """Take an EoI from ``origin``; the answer never depends on the listing. It reaches
    the owner only if the sender could know the listing (``may_know``); otherwise it is
    kept as ``dropped`` for the hub's operator, and the sender is not told."""
    obj = load_body(body) if isinstance(body, bytes) else body
    eoi = parse(ExpressionOfInterest, obj, "expression of interest")
    _check_envelope(rt, origin, obj, eoi.issuer, eoi.audience)
    if eoi.visitor is not None and origin != rt.node_id:
        raise InvalidInput("only the hub speaks for a visitor of its marketplace")
    now = rt.clock()
    try:
        with Session(rt.engine) as session, session.begin():
            _take_eoi(rt, session, origin, obj, eoi, now)
    except IntegrityError as exc:  # the same id, sent twice at once
        raise Conflict(f"{eoi.id} was received before") from exc
    return _answer(eoi.id, "forwarded")


def _take_eoi(
    rt: NodeRuntime,
    session: Session,
    origin: str,
    obj: dict[str, Any],
    eoi: ExpressionOfInterest,
    now: int,
) -> None:
    owner, lid = eoi.listing.owner, eoi.listing.id
    # The id looked up and the rates counted under one lock with the insert (PostgreSQL:
    # interests sent at once all counted before any was added).
    begin_write(session.connection(), EoiRow.__tablename__)
    row = session.get(EoiRow, eoi.id)
    # The hub's own interest was saved as 'submitted' when it was made.
    own = origin == rt.node_id and row is not None and row.state == "submitted"
    if row is not None and not own:
        raise Conflict(f"{eoi.id} was received before")
    if origin != rt.node_id:
        check_rates(session, origin, owner, lid, now)
    # Only once the sender is within its limits: a flood costs the hub no policy work.
    if not may_know(rt, origin, owner, lid):
        logger.info(
            "interest %s from %s in %s/%s dropped: not a listing the sender may know",
            eoi.id,
            origin,
            owner,
            lid,
        )
        _save(session, obj, "dropped", now)
    elif owner == rt.node_id:  # the hub's own listing: its operator answers
        _save(session, obj, "forwarded", now)
    else:
        _save(session, obj, "forwarded", now)
        forward = {
            "type": "eoi_forward",
            "v": PROTOCOL_VERSION,
            "issuer": rt.node_id,
            "ts": now,
            "audience": owner,
            "eoi": obj,
        }
        parse(EoiForward, forward, "forward")
        post_to_outbox(session, owner, sign_object(forward, rt.node_id, rt.keys.active), now)


def hub_receive_reply(rt: NodeRuntime, origin: str, body: bytes | dict[str, Any]) -> dict[str, Any]:
    """Take the owner's one answer to an EoI it was sent, and pass it to the requester."""
    obj = load_body(body) if isinstance(body, bytes) else body
    reply = parse(EoiReply, obj, "reply to an expression of interest")
    _check_envelope(rt, origin, obj, reply.issuer, reply.audience)
    now = rt.clock()
    with Session(rt.engine) as session, session.begin():
        row = session.get(EoiRow, reply.eoi_id)
        if row is None or row.state in ("dropped", "submitted"):
            raise NotFound(f"no expression of interest {reply.eoi_id} was sent to {origin}")
        if row.owner != origin:
            raise NotListingOwner(f"only {row.owner}, the listing's owner, answers {row.id}")
        if row.state != "forwarded":
            raise AlreadyAnswered(f"{row.id} was already {row.state}; one answer only")
        state: str = reply.decision
        if row.requester == rt.node_id and state == "accepted" and obj.get("contact"):
            state = "introduced"  # the hub asked for itself: nothing to forward
        taken = session.execute(
            update(EoiRow)
            .where(EoiRow.id == row.id, EoiRow.state == "forwarded")
            .values(state=state, updated=now, reply_obj=json.dumps(obj))
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise AlreadyAnswered(f"{row.id} was answered meanwhile; one answer only")
        if row.requester != rt.node_id:
            forward = {
                "type": "eoi_reply_forward",
                "v": PROTOCOL_VERSION,
                "issuer": rt.node_id,
                "ts": now,
                "audience": row.requester,
                "reply": obj,
            }
            parse(EoiReplyForward, forward, "forward")
            signed = sign_object(forward, rt.node_id, rt.keys.active)
            post_to_outbox(session, row.requester, signed, now)
    return _answer(reply.eoi_id, state)


# -- the owner and the requester: what arrived through the hub's feed ------------------
# ``absorb_inbox`` (node.hub.eoi_inbox) turns it into EoI states, reading each row once.


def answer(
    rt: NodeRuntime, eoi_id: str, decision: str, share: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The owner's signed answer; on acceptance it carries the chosen contact fields."""
    if decision not in DECISIONS:
        raise InvalidInput("decision is accepted or declined")
    unknown = [f for f in share if f not in CONTACT_FIELDS]
    if unknown:
        raise InvalidInput(f"can share only {', '.join(CONTACT_FIELDS)}, not {', '.join(unknown)}")
    with Session(rt.engine) as session:
        row = session.get(EoiRow, eoi_id)
        if row is None or row.owner != rt.node_id or row.state == "dropped":
            raise NotFound(f"no expression of interest {eoi_id} for this node")
        if row.state in ANSWERED:
            raise Conflict(f"{eoi_id} was already {row.state}")
        listing_id = row.listing_id
    contact: dict[str, str] = {}
    if decision == "accepted" and share:
        record = rt.listings.get(listing_id).record
        contact = {f: record["contact"][f] for f in share if f in record.get("contact", {})}
    reply = {
        "type": "eoi_reply",
        "v": PROTOCOL_VERSION,
        "issuer": rt.node_id,
        "ts": rt.clock(),
        "audience": rt.config.hub_id,
        "eoi_id": eoi_id,
        "decision": decision,
        "contact": contact,
    }
    parse(EoiReply, reply, "reply to an expression of interest")
    return sign_object(reply, rt.node_id, rt.keys.active)


def list_eois(rt: NodeRuntime, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` EoIs changed last, newest first."""
    absorb_inbox(rt)
    with Session(rt.engine) as session:
        stmt = select(EoiRow).order_by(EoiRow.updated.desc(), EoiRow.id).limit(limit)
        rows = session.scalars(stmt).all()
        out = []
        for r in rows:
            req = json.loads(r.request_obj)
            reply = json.loads(r.reply_obj) if r.reply_obj else None
            out.append(
                {
                    "id": r.id,
                    "requester": r.requester,
                    "owner": r.owner,
                    "listing_id": r.listing_id,
                    "state": r.state,
                    "updated": r.updated,
                    "message": req.get("message"),
                    "visitor": req.get("visitor"),
                    "contact": (reply or {}).get("contact") if r.requester == rt.node_id else None,
                }
            )
        return out
