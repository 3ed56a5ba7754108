"""Expressions of interest on the wire (DESIGN 9): the four signed objects of one EoI.

``eoi`` (the requester to the hub), ``eoi_reply`` (the owner to the hub), and the hub's
``eoi_forward`` / ``eoi_reply_forward``, which carry those two, whole and still signed by
their authors, through the hub's feed to the owner and back to the requester. A visitor
of the hub's public marketplace has no node: the hub issues the ``eoi`` for them, with
the visitor's own contact in ``visitor`` (only the hub may, and only to the owner). The limits
here are the protocol's: a node refuses at its door what does not fit them, so nothing
oversized is ever stored, signed over or queued in a feed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints, model_validator

from protocol.listing import Contact, ListingId, NodeId, ShortText, WireModel
from protocol.objects import SignedObject

MESSAGE_MAX_CHARS = 4000
# The largest EoI or reply a hub takes, as bytes of JSON: a message of MESSAGE_MAX_CHARS
# characters of four UTF-8 bytes each, plus the envelope and its signature, fits.
BODY_MAX_BYTES = 32 * 1024
DECISIONS: tuple[str, ...] = ("accepted", "declined")
Decision = Literal["accepted", "declined"]
# An EoI's id is its requester's node id, "-eoi-", then the requester's own suffix: ids of
# two requesters never collide, and one cannot take up another's.
EoiId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}-eoi-[A-Za-z0-9_-]{1,27}$")]
Message = Annotated[str, StringConstraints(min_length=1, max_length=MESSAGE_MAX_CHARS)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}$")]


class ListingRef(WireModel):
    """Which listing the interest is in: its owner and the owner's id for it."""

    owner: NodeId
    id: ListingId


class Visitor(WireModel):
    """Who a marketplace visitor said they are, for the owner only (never checked)."""

    name: ShortText
    email: Email
    organization: ShortText | None = None


class ExpressionOfInterest(SignedObject):
    """The requester's signed interest, addressed to the hub (``audience``). With
    ``visitor``, the hub speaks for a visitor of its marketplace (``issuer`` is the hub)."""

    type: Literal["eoi"] = "eoi"
    audience: NodeId
    id: EoiId
    listing: ListingRef
    message: Message
    visitor: Visitor | None = None

    @model_validator(mode="after")
    def _checks(self) -> ExpressionOfInterest:
        if not self.id.startswith(f"{self.issuer}-eoi-"):
            raise ValueError(
                f"an expression of interest by {self.issuer} has an id {self.issuer}-eoi-..."
            )
        if not self.message.strip():
            raise ValueError("the message says what the interest is; it is blank")
        if self.listing.owner == self.issuer:
            raise ValueError("a node does not express interest in its own listing")
        return self


class EoiReply(SignedObject):
    """The owner's signed answer, addressed to the hub: one decision, contact on accept."""

    type: Literal["eoi_reply"] = "eoi_reply"
    audience: NodeId
    eoi_id: EoiId
    decision: Decision
    contact: Contact = Contact()

    @model_validator(mode="after")
    def _contact_on_accept_only(self) -> EoiReply:
        if self.decision == "declined" and self.contact.model_dump(exclude_none=True):
            raise ValueError("a declined interest carries no contact")
        return self


class EoiForward(SignedObject):
    """The hub passes an EoI on to the listing's owner (``audience``) in its feed."""

    type: Literal["eoi_forward"] = "eoi_forward"
    audience: NodeId
    eoi: ExpressionOfInterest

    @model_validator(mode="after")
    def _visitor_from_the_hub(self) -> EoiForward:
        if self.eoi.visitor is not None and self.eoi.issuer != self.issuer:
            raise ValueError("only the hub speaks for a visitor: eoi.issuer is the forward's")
        if self.eoi.visitor is not None and self.eoi.audience != self.issuer:
            raise ValueError("a visitor's interest is addressed to the hub that forwards it")
        return self


class EoiReplyForward(SignedObject):
    """The hub passes the owner's reply on to the requester (``audience``) in its feed."""

    type: Literal["eoi_reply_forward"] = "eoi_reply_forward"
    audience: NodeId
    reply: EoiReply


class EoiAnswer(WireModel):
    """The hub's answer to an EoI or a reply (HTTP 202): the same for every listing,
    whether the hub holds it, the sender may see it, or it was passed on at all."""

    id: EoiId
    state: Literal["forwarded", "accepted", "declined", "introduced"]
