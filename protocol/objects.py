"""Signed protocol objects (DESIGN 6.1): node identity, listing summary, retraction, feed page.

What the hub signs is in ``protocol.hub_objects`` and ``protocol.eoi``; which type may come
from whom, and through which channel, is ``protocol.authority``.

Every signed object carries ``type``, ``v``, ``issuer`` and ``ts`` and a ``signatures``
member. These models validate the shape of what arrives; what is stored and re-served is
always the canonical bytes of the object as received, never a re-serialisation.

A feed builds a summary per item per reader, so its producers do not pass each object
through its model (validation would add about a third to the owner's cost per item, on
top of signing and canonical bytes). They build it with the ``*_body`` functions here
instead, one per object type, whose keys are the model's fields; tests hold each body,
and every producer's output, to its model (tests/protocol/test_producers.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from protocol import PROTOCOL_VERSION
from protocol.listing import (
    MAX_WIRE_VERSION,
    Category,
    CountryCode,
    ListingId,
    Millis,
    NodeId,
    WireModel,
    WireVersion,
)

KeyName = Annotated[str, StringConstraints(pattern=r"^ed25519:[A-Za-z0-9_]{1,32}$")]
B64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,200}$")]
Signatures = dict[NodeId, dict[KeyName, B64]]
RetractionReason = Literal["withdrawn", "expired", "not_shared", "consent_revoked"]
# A name or a descriptor in a view's rights ("a university in Thailand"): at most as long
# as the listing's own names (``protocol.listing.ShortText``).
ViewName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SignedObject(WireModel):
    type: str
    v: Literal[1] = 1
    issuer: NodeId
    ts: Millis
    signatures: Signatures = {}


class CurrentKey(WireModel):
    key: B64
    valid_until: Millis | None = None


class OldKey(WireModel):
    key: B64
    expired_at: Millis


class NodeIdentity(SignedObject):
    type: Literal["node"] = "node"
    node_id: NodeId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    country: CountryCode
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,250}$")]
    protocols: list[str] = ["cattc/1"]
    verify_keys: Annotated[dict[KeyName, CurrentKey], Field(min_length=1, max_length=20)]
    old_verify_keys: Annotated[dict[KeyName, OldKey], Field(max_length=100)] = {}
    # Signed key_transition objects (protocol.key_transition), checked by who follows them.
    key_transitions: Annotated[list[dict[str, Any]], Field(max_length=100)] = []

    @model_validator(mode="after")
    def _issuer_is_node(self) -> NodeIdentity:
        if self.issuer != self.node_id:
            raise ValueError("a node identity is issued by the node itself")
        return self


class RelayRef(WireModel):
    """What the owner lets the hub pass on of this listing in match notices, and to whom."""

    to: Annotated[list[str], Field(max_length=100)]
    fields: Annotated[list[str], Field(max_length=100)]


class PolicyRef(WireModel):
    version: Annotated[int, Field(ge=0, le=MAX_WIRE_VERSION)]
    relay: RelayRef | None = None


class ViewRights(WireModel):
    """A view's rights block as the owner's policy builds it (``policies.evaluate``).

    ``ip_owner``: the listing's owners, by name only with the listing's consent and a rule
    that shows names, otherwise each as words ("a university in Thailand"); empty when the
    listing names none. ``attribution``: the listing's, only when the view shows the
    summary (otherwise empty), an expert's own name as words unless shown; or
    ``"declined"``."""

    ip_owner: Annotated[list[ViewName], Field(max_length=10)]
    attribution: Annotated[list[ViewName], Field(max_length=30)] | Literal["declined"]
    name_logo_consent: bool


class PublicView(WireModel):
    """The owner's view of a listing for the public (``*``), carried to the hub: all that
    public search may show of it."""

    fields: dict[str, Any]
    rights: ViewRights


class SummaryListing(WireModel):
    id: ListingId
    category: Category
    version: WireVersion
    updated: Millis
    expires: Millis
    fields: dict[str, Any]
    rights: ViewRights
    public: bool = False
    public_view: PublicView | None = None


class ListingSummary(SignedObject):
    """One owner's view of one listing for one audience."""

    type: Literal["listing"] = "listing"
    audience: NodeId
    listing: SummaryListing
    policy: PolicyRef


class Retraction(SignedObject):
    type: Literal["retraction"] = "retraction"
    audience: NodeId
    listing_id: ListingId
    category: Category
    version: WireVersion
    reason: RetractionReason


class FeedPage(SignedObject):
    type: Literal["feed_page"] = "feed_page"
    audience: NodeId
    after: Annotated[str, StringConstraints(max_length=200)] | None
    next: Annotated[str, StringConstraints(max_length=200)]
    head: Annotated[int, Field(ge=0)]
    position: Annotated[int, Field(ge=0)] | None = None
    more: bool
    items: Annotated[list[dict[str, Any]], Field(max_length=1000)]


# -- bodies: what producers build, unsigned, with exactly the models' fields -----------
def public_view_body(fields: dict[str, Any], rights: dict[str, Any]) -> dict[str, Any]:
    """A ``PublicView``."""
    return {"fields": fields, "rights": rights}


def policy_ref_body(version: int, relay: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``PolicyRef``: ``relay`` only when the rule has one."""
    out: dict[str, Any] = {"version": version}
    if relay:
        out["relay"] = relay
    return out


def listing_summary_body(
    *, issuer: str, audience: str, ts: int, listing: dict[str, Any], policy: dict[str, Any]
) -> dict[str, Any]:
    """A ``ListingSummary`` before its signature: ``listing`` is a ``SummaryListing``
    (``policies.evaluate.build_view`` and ``node.services.views.envelope``)."""
    return {
        "type": "listing",
        "v": PROTOCOL_VERSION,
        "issuer": issuer,
        "ts": ts,
        "audience": audience,
        "listing": listing,
        "policy": policy,
    }


def retraction_body(
    *,
    issuer: str,
    audience: str,
    ts: int,
    listing_id: str,
    category: str,
    version: int,
    reason: str,
) -> dict[str, Any]:
    """A ``Retraction`` before its signature."""
    return {
        "type": "retraction",
        "v": PROTOCOL_VERSION,
        "issuer": issuer,
        "ts": ts,
        "audience": audience,
        "listing_id": listing_id,
        "category": category,
        "version": version,
        "reason": reason,
    }


def feed_page_head(
    *,
    issuer: str,
    audience: str,
    ts: int,
    after: str | None,
    next: str,  # noqa: A002 - the field's name on the wire
    head: int,
    position: int | None,
    more: bool,
) -> dict[str, Any]:
    """A ``FeedPage`` before its ``items`` (which the feed serialises once, itself) and
    its signature."""
    return {
        "type": "feed_page",
        "v": PROTOCOL_VERSION,
        "issuer": issuer,
        "ts": ts,
        "audience": audience,
        "after": after,
        "next": next,
        "head": head,
        "position": position,
        "more": more,
    }
