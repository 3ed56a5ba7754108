"""Who may say what (issue: trust the hub): for each signed object type, who may issue
it, to whom, through which channel, and the model it must satisfy.

A reader checks every object against this table before it acts on it: an object of a
type the table does not know, one that does not fit its type's model, or one that came
through a channel its issuer may not use (a ``match_notice`` in a member's feed, signed
by that member) is set aside with a named reason. docs/protocol-notes.md carries the same
table in prose; a test keeps the two the same.

This is the one place that maps a type to its model: a new object type is added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from protocol.eoi import EoiForward, EoiReply, EoiReplyForward, ExpressionOfInterest
from protocol.hub_objects import (
    CustodyList,
    CustodyReceipt,
    Directory,
    KeyTransition,
    MatchNotice,
)
from protocol.objects import (
    FeedPage,
    ListingSummary,
    NodeIdentity,
    Retraction,
    SignedObject,
)


class Issuer(StrEnum):
    HUB = "hub"  # the hub, and no one else
    OWNER = "owner"  # the node whose data or identity it is, about itself
    MEMBER = "member"  # any member, speaking for itself, to the hub


class Channel(StrEnum):
    HUB_FEED = "the hub's feed"
    OWN_FEED = "the issuer's own feed"
    FEED = "GET /federation/v1/feed"
    IDENTITY = "GET /.well-known/cattc-node"
    DIRECTORY = "GET /federation/v1/directory"
    CUSTODY = "GET /federation/v1/custody"
    EOI = "POST /federation/v1/eoi"
    EOI_REPLY = "POST /federation/v1/eoi/reply"


@dataclass(frozen=True)
class Authority:
    kind: str  # the object's ``type``
    issuer: Issuer
    audience: str
    channel: Channel
    model: type[SignedObject]


def _table(*rows: Authority) -> Mapping[str, Authority]:
    return MappingProxyType({r.kind: r for r in rows})


WHO_MAY_SAY_WHAT: Mapping[str, Authority] = _table(
    Authority("node", Issuer.OWNER, "anyone", Channel.IDENTITY, NodeIdentity),
    Authority(
        "key_transition",
        Issuer.OWNER,
        "anyone who pinned the old key",
        Channel.IDENTITY,
        KeyTransition,
    ),
    Authority("directory", Issuer.HUB, "every node", Channel.DIRECTORY, Directory),
    Authority("feed_page", Issuer.OWNER, "the reader", Channel.FEED, FeedPage),
    Authority("listing", Issuer.OWNER, "the reader", Channel.OWN_FEED, ListingSummary),
    Authority("retraction", Issuer.OWNER, "the reader", Channel.OWN_FEED, Retraction),
    Authority("custody_receipt", Issuer.HUB, "the owner", Channel.HUB_FEED, CustodyReceipt),
    Authority("custody", Issuer.HUB, "the owner asking", Channel.CUSTODY, CustodyList),
    Authority("match_notice", Issuer.HUB, "the matched member", Channel.HUB_FEED, MatchNotice),
    Authority("eoi", Issuer.MEMBER, "the hub", Channel.EOI, ExpressionOfInterest),
    Authority("eoi_reply", Issuer.OWNER, "the hub", Channel.EOI_REPLY, EoiReply),
    Authority("eoi_forward", Issuer.HUB, "the listing's owner", Channel.HUB_FEED, EoiForward),
    Authority("eoi_reply_forward", Issuer.HUB, "the requester", Channel.HUB_FEED, EoiReplyForward),
)

FEED_CHANNELS = frozenset({Channel.HUB_FEED, Channel.OWN_FEED})
FEED_ITEM_TYPES = frozenset(t for t, a in WHO_MAY_SAY_WHAT.items() if a.channel in FEED_CHANNELS)
HUB_ONLY_TYPES = frozenset(t for t, a in WHO_MAY_SAY_WHAT.items() if a.issuer is Issuer.HUB)


def feed_item_rule(kind: object) -> Authority | None:
    """The row of an object that may travel as a feed item, or None."""
    rule = WHO_MAY_SAY_WHAT.get(kind) if isinstance(kind, str) else None
    return rule if rule is not None and rule.channel in FEED_CHANNELS else None
