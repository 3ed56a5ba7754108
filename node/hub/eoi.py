"""Expressions of interest (DESIGN 9): requester's center -> hub -> owner's center and
back, each hop signed. Contact details travel only on acceptance, and only the fields
the owner chooses.

States: ``submitted`` (signed, not yet taken by the hub), ``forwarded`` (the hub queued
it for the owner), ``accepted`` / ``declined`` (the owner answered), ``introduced``
(the requester holds the contact details the owner disclosed).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services.errors import Conflict, InvalidInput, NotFound
from node.services.feed import post_to_outbox
from node.services.peers import PeerInfo, PinnedKeys, peer_info
from node.storage.models import EoiRow, InboxRow, RemoteListingRow
from protocol import PROTOCOL_VERSION
from protocol.signing import SignatureError, sign_object, verify_object

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

CONTACT_FIELDS = ("person", "email", "phone")


def _verify_from(rt: NodeRuntime, obj: Any, issuer: str) -> None:
    if issuer == rt.node_id:  # the hub answering for its own listings
        info: PeerInfo | None = PeerInfo(issuer, "", rt.keys.verify_keys())
    else:
        info = peer_info(rt, issuer)
    if info is None:
        raise InvalidInput(f"{issuer} is not a known node")
    if not isinstance(obj, dict) or obj.get("issuer") != issuer:
        raise InvalidInput(f"object is not issued by {issuer}")
    try:
        verify_object(obj, issuer, PinnedKeys(info))
    except SignatureError as exc:
        raise InvalidInput(f"signature of {issuer}: {exc.message}") from exc


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
                request_obj=json.dumps(eoi),
                reply_obj=None if reply is None else json.dumps(reply),
            )
        )
    else:
        row.state, row.updated = state, now
        if reply is not None:
            row.reply_obj = json.dumps(reply)


# -- the requester -------------------------------------------------------------------
def new_eoi(rt: NodeRuntime, owner: str, listing_id: str, message: str) -> dict[str, Any]:
    if not message.strip() or len(message) > 2000:
        raise InvalidInput("say in 1-2000 characters what the interest is")
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
def hub_receive_eoi(rt: NodeRuntime, origin: str, eoi: Any) -> dict[str, Any]:
    _verify_from(rt, eoi, origin)
    if eoi.get("type") != "eoi" or eoi.get("audience") != rt.node_id:
        raise InvalidInput("not an expression of interest for this hub")
    owner, lid = eoi["listing"]["owner"], eoi["listing"]["id"]
    now = rt.clock()
    with Session(rt.engine) as session, session.begin():
        if session.get(EoiRow, eoi["id"]) is not None:
            raise Conflict(f"{eoi['id']} was received before")
        held = session.get(RemoteListingRow, (owner, lid)) is not None
        if owner == rt.node_id:
            held = True
            _save(session, eoi, "forwarded", now)
            return {"id": eoi["id"], "state": "forwarded"}
        if not held:
            raise NotFound(f"the hub holds no listing {owner}/{lid}")
        _save(session, eoi, "forwarded", now)
        forward = {
            "type": "eoi_forward",
            "v": PROTOCOL_VERSION,
            "issuer": rt.node_id,
            "ts": now,
            "audience": owner,
            "eoi": eoi,
        }
        post_to_outbox(session, owner, sign_object(forward, rt.node_id, rt.keys.active), now)
    return {"id": eoi["id"], "state": "forwarded"}


def hub_receive_reply(rt: NodeRuntime, origin: str, reply: Any) -> dict[str, Any]:
    _verify_from(rt, reply, origin)
    if reply.get("type") != "eoi_reply":
        raise InvalidInput("not a reply to an expression of interest")
    now = rt.clock()
    with Session(rt.engine) as session, session.begin():
        row = session.get(EoiRow, reply.get("eoi_id"))
        if row is None or row.owner != origin:
            raise NotFound("no such expression of interest for this owner")
        row.state, row.updated, row.reply_obj = reply["decision"], now, json.dumps(reply)
        if row.requester == rt.node_id:  # the hub asked for itself: nothing to forward
            if reply["decision"] == "accepted" and reply.get("contact"):
                row.state = "introduced"
            return {"id": reply["eoi_id"], "state": row.state}
        forward = {
            "type": "eoi_reply_forward",
            "v": PROTOCOL_VERSION,
            "issuer": rt.node_id,
            "ts": now,
            "audience": row.requester,
            "reply": reply,
        }
        post_to_outbox(
            session, row.requester, sign_object(forward, rt.node_id, rt.keys.active), now
        )
    return {"id": reply["eoi_id"], "state": reply["decision"]}


# -- the owner and the requester: what arrived through the hub's feed ------------------
def absorb_inbox(rt: NodeRuntime) -> None:
    """Turn forwarded EOIs and replies received from the hub into EOI states."""
    with Session(rt.engine) as session, session.begin():
        rows = session.scalars(
            select(InboxRow).where(InboxRow.type.in_(["eoi_forward", "eoi_reply_forward"]))
        ).all()
        for row in rows:
            obj = json.loads(row.obj)
            if row.type == "eoi_forward":
                eoi = obj["eoi"]
                try:
                    _verify_from(rt, eoi, eoi.get("issuer", ""))
                except InvalidInput:
                    continue
                if (eoi.get("listing") or {}).get("owner") != rt.node_id:
                    continue  # interest in someone else's listing: not ours to answer
                if session.get(EoiRow, eoi["id"]) is None:
                    _save(session, eoi, "forwarded", row.received_at)
            else:
                reply = obj["reply"]
                try:
                    _verify_from(rt, reply, reply.get("issuer", ""))
                except InvalidInput:
                    continue
                eoi_row = session.get(EoiRow, reply["eoi_id"])
                if eoi_row is None or eoi_row.state in ("introduced", "declined"):
                    continue
                if reply["issuer"] != eoi_row.owner or eoi_row.requester != rt.node_id:
                    continue  # only the listing's owner answers, and only our own interest
                state = reply["decision"]
                if state == "accepted" and reply.get("contact"):
                    state = "introduced"
                eoi_row.state, eoi_row.updated = state, row.received_at
                eoi_row.reply_obj = json.dumps(reply)


def answer(
    rt: NodeRuntime, eoi_id: str, decision: str, share: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The owner's signed answer; on acceptance it carries the chosen contact fields."""
    if decision not in ("accepted", "declined"):
        raise InvalidInput("decision is accepted or declined")
    unknown = [f for f in share if f not in CONTACT_FIELDS]
    if unknown:
        raise InvalidInput(f"can share only {', '.join(CONTACT_FIELDS)}, not {', '.join(unknown)}")
    with Session(rt.engine) as session:
        row = session.get(EoiRow, eoi_id)
        if row is None or row.owner != rt.node_id:
            raise NotFound(f"no expression of interest {eoi_id} for this node")
        if row.state in ("accepted", "declined"):
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
    return sign_object(reply, rt.node_id, rt.keys.active)


def list_eois(rt: NodeRuntime) -> list[dict[str, Any]]:
    absorb_inbox(rt)
    with Session(rt.engine) as session:
        rows = session.scalars(select(EoiRow).order_by(EoiRow.updated.desc())).all()
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
                    "contact": (reply or {}).get("contact") if r.requester == rt.node_id else None,
                }
            )
        return out
