"""What the hub checks before it takes an expression of interest or a reply (DESIGN 9).

An EoI must not tell its sender anything: whether the hub holds the listing, or whether
the sender may see it, never changes the answer. So every check that depends only on
the request (size, schema, signature, duplicates, the sender's rate limits) comes first
and may refuse; the one that depends on the listing (``may_know``) only decides, out of
sight, whether the EoI is passed on to the owner or dropped and logged for the hub's
operator. Rate limits count every EoI a sender sent, passed on or not, for the same
reason.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.hub.notice_content import Knowable, held_knowable, own_knowable
from node.hub.notice_index import was_named
from node.services.audiences import audience_of, membership
from node.services.errors import InvalidInput, NotFound, SchemaInvalid, ServiceError
from node.services.peers import PeerInfo, PinnedKeys, peer_info
from node.storage.models import EoiRow, NoticeSentRow, RemoteListingRow
from policies.compiled import CompiledPolicy
from policies.model import Audience
from protocol.eoi import BODY_MAX_BYTES
from protocol.errors import ErrorCode
from protocol.safe_json import JsonInputError, loads
from protocol.signing import SignatureError, verify_object

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
PER_SENDER_PER_HOUR = 30  # EoIs one member may send in any hour
PER_LISTING_PER_DAY = 3  # EoIs one member may send about one listing in any day
M = TypeVar("M", bound=BaseModel)


class BodyTooLarge(ServiceError):
    code = ErrorCode.BODY_TOO_LARGE


class InvalidJson(ServiceError):
    code = ErrorCode.INVALID_JSON


class SignatureInvalid(ServiceError):
    code = ErrorCode.SIGNATURE_INVALID


class NotListingOwner(ServiceError):
    code = ErrorCode.NOT_LISTING_OWNER


class AlreadyAnswered(ServiceError):
    code = ErrorCode.ALREADY_ANSWERED


class UnknownIssuer(InvalidInput):
    """The signer is not (yet) known to this node: a member its directory lacks."""


class RateLimited(ServiceError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def load_body(raw: bytes) -> Any:
    """The JSON of an EoI or reply body: bounded, strict, never a 500 for odd bytes."""
    if len(raw) > BODY_MAX_BYTES:
        raise BodyTooLarge(f"an expression of interest or reply is at most {BODY_MAX_BYTES} bytes")
    if not raw:
        raise InvalidJson("request body is empty; send the signed object as JSON")
    try:
        return loads(raw)
    except JsonInputError as exc:
        raise InvalidJson(f"body is not valid JSON: {exc.message}") from exc


def parse(model: type[M], obj: Any, what: str) -> M:
    """``obj`` as ``model``, or a 422 naming the first field that does not fit."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the object"
        raise SchemaInvalid(f"not a valid {what}: {where}: {err['msg']}") from exc


def verify_from(
    rt: NodeRuntime,
    obj: Any,
    issuer: str,
    signers: dict[str, PeerInfo | None] | None = None,
) -> None:
    """Check that ``obj`` is issued and signed by ``issuer``, with the keys this node
    knows of it (``signers`` keeps them, for a caller checking many objects)."""
    if signers is not None and issuer in signers:
        info = signers[issuer]
    else:
        if issuer == rt.node_id:  # the hub answering for its own listings
            info = PeerInfo(issuer, "", rt.keys.verify_keys())
        else:
            info = peer_info(rt, issuer)
        if signers is not None:
            signers[issuer] = info
    if info is None:
        raise UnknownIssuer(f"{issuer} is not a known node")
    if not isinstance(obj, dict) or obj.get("issuer") != issuer:
        raise InvalidInput(f"object is not issued by {issuer}")
    try:
        verify_object(obj, issuer, PinnedKeys(info))
    except SignatureError as exc:
        raise SignatureInvalid(f"signature of {issuer}: {exc.message}") from exc


# -- rate limits ---------------------------------------------------------------------
def check_rates(session: Session, sender: str, owner: str, listing_id: str, now: int) -> None:
    """Refuse (429) an EoI over the sender's limits; what it is about does not matter."""
    mine = select(EoiRow.received).where(EoiRow.requester == sender)
    hour = session.scalars(mine.where(EoiRow.received > now - HOUR_MS)).all()
    if len(hour) >= PER_SENDER_PER_HOUR:
        raise RateLimited(
            f"at most {PER_SENDER_PER_HOUR} expressions of interest an hour; try again later",
            _retry_after(min(hour) + HOUR_MS, now),
        )
    same = session.scalars(
        mine.where(
            EoiRow.owner == owner,
            EoiRow.listing_id == listing_id,
            EoiRow.received > now - DAY_MS,
        )
    ).all()
    if len(same) >= PER_LISTING_PER_DAY:
        raise RateLimited(
            f"at most {PER_LISTING_PER_DAY} expressions of interest a day in one listing;"
            " try again later",
            _retry_after(min(same) + DAY_MS, now),
        )


def _retry_after(free_at: int, now: int) -> int:
    return max(1, -(-(free_at - now) // 1000))


def dropped_by_sender(session: Session) -> dict[str, int]:
    """How many EoIs of each member the hub did not pass on (a metric for the operator:
    many suggest a member guessing listing ids)."""
    rows = session.execute(
        select(EoiRow.requester, func.count())
        .where(EoiRow.state == "dropped")
        .group_by(EoiRow.requester)
    ).all()
    return {requester: int(n) for requester, n in rows}


# -- could the sender have known of the listing? --------------------------------------
def may_know(rt: NodeRuntime, sender: str, owner: str, listing_id: str) -> bool:
    """True if ``sender`` could know ``owner``'s ``listing_id`` from what it was given,
    by the rule match notices follow (``node.hub.notice_content``): the owner's public
    view, its relay rule naming the sender, or (for the hub's own listings) the hub's
    view for the sender; or a match notice from the hub that named the listing. The hub
    itself knows all it holds."""
    now = rt.clock()
    _, compiled = rt.policy.compiled()
    ms = membership(rt.engine)
    recipient = audience_of(sender, compiled.policy, ms)
    if owner == rt.node_id:
        me = audience_of(rt.node_id, compiled.policy, ms)
        known = _own_listing_known(rt, recipient, me, listing_id, compiled, now)
    else:
        known = _held_listing_known(rt, recipient, owner, listing_id, now)
    return known or _named_in_a_notice(rt, sender, owner, listing_id)


def _known(k: Knowable) -> bool:
    return bool(k.views) or k.relayed is not None


def _own_listing_known(
    rt: NodeRuntime,
    recipient: Audience,
    me: Audience,
    listing_id: str,
    compiled: CompiledPolicy,
    now: int,
) -> bool:
    try:
        stored = rt.listings.get(listing_id)
    except NotFound:
        return False
    if stored.withdrawn or stored.record.get("expires", 0) <= now:
        return False
    if recipient.node_id == rt.node_id:
        return True
    return _known(own_knowable(stored.record, recipient, me, compiled, now))


def _held_listing_known(
    rt: NodeRuntime, recipient: Audience, owner: str, listing_id: str, now: int
) -> bool:
    with Session(rt.engine) as session:
        row = session.get(RemoteListingRow, (owner, listing_id))
        if row is None or row.expires <= now:
            return False
        summary = json.loads(row.signed_bytes)
    return recipient.node_id == rt.node_id or _known(held_knowable(summary, recipient))


def _named_in_a_notice(rt: NodeRuntime, sender: str, owner: str, listing_id: str) -> bool:
    """A match of ``sender``'s with the listing, and a notice to it that named the
    listing (only if the owner's rules let it): two indexed lookups, however many
    notices the sender was sent (``node.hub.notice_index``)."""
    with Session(rt.engine) as session:
        matched = session.scalar(
            select(NoticeSentRow.at)
            .where(
                NoticeSentRow.reader == sender,
                NoticeSentRow.cp_owner == owner,
                NoticeSentRow.cp_id == listing_id,
            )
            .limit(1)
        )
        return matched is not None and was_named(session, sender, owner, listing_id)
