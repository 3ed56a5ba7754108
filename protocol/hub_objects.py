"""What the hub signs (DESIGN 6.1, 9): match notices, custody receipts and lists, the
member directory; and the key hand-over any node signs when it rotates.

Each is a frozen model with ``extra="forbid"``: the hub builds its objects through these
models, and every reader validates what arrives against them before acting on it (the
table of who may issue which type is ``protocol.authority``). Field names are those of
protocol v1 as already stored and signed, so existing signed bytes stay valid.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from protocol.listing import CountryCode, ListingId, Millis, NodeId, WireModel
from protocol.objects import B64, KeyName, SignedObject

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ShortStr = Annotated[str, StringConstraints(max_length=200)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
GroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_*-]{1,64}$")]
BaseUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,250}$")]
MAX_ENTRIES = 1_000_000  # a custody list covers everything the hub holds of one owner
# Nodes in a directory. The federation is a dozen national centres (fifty at the scale the
# hub is built for): the bound only keeps a directory that every node reads and pulls from
# within reach of a small server (each member is a peer it pulls each interval).
MAX_MEMBERS = 1_000


# -- match notice (hub -> the member whose listing matched, in the hub's feed) ----------
class OwnListing(WireModel):
    id: ListingId
    role: Literal["request", "candidate"]


class Counterpart(WireModel):
    """The other side of a match, as far as its owner's policy lets the reader know it."""

    owner: NodeId
    listing_id: ListingId | None = None
    kind: Literal["offer", "request", "expert"]
    descriptor: ShortStr
    fields: dict[str, Any] = {}


_KIND_CATEGORY = {"offer": "tech_offer", "request": "tech_request", "expert": "expert"}


def counterpart_category(role: str, kind: str) -> str:
    """The listing category of a notice's counterpart: a request when the reader's own
    listing is the candidate, else a listing of the notice's ``kind``."""
    return "tech_request" if role == "candidate" else _KIND_CATEGORY[kind]


class Explanation(WireModel):
    components: Annotated[
        dict[Annotated[str, StringConstraints(max_length=64)], float], Field(max_length=32)
    ] = {}
    shared_terms: Annotated[list[ShortStr], Field(max_length=200)] = []
    shared_codes: Annotated[list[ShortStr], Field(max_length=200)] = []


class MatchNotice(SignedObject):
    type: Literal["match_notice"] = "match_notice"
    audience: NodeId
    own_listing: OwnListing
    counterpart: Counterpart
    score: Score
    explanation: Explanation


# -- custody (hub -> owner) ----------------------------------------------------------
class CustodyEntry(WireModel):
    listing_id: ListingId
    version: Annotated[int, Field(ge=1)]
    sha256: Sha256Hex


class CustodyReceipt(SignedObject):
    """After each page the hub applied from an owner: what it now holds of the listings
    that page touched, which it purged, and how many items it set aside."""

    type: Literal["custody_receipt"] = "custody_receipt"
    audience: NodeId
    position: Annotated[int, Field(ge=0)] | None = None
    held: Annotated[list[CustodyEntry], Field(max_length=100_000)]
    purged: Annotated[list[ListingId], Field(max_length=100_000)]
    rejected: Annotated[int, Field(ge=0)]


class CustodyList(SignedObject):
    """``GET /federation/v1/custody``: everything the hub holds of the asking owner."""

    type: Literal["custody"] = "custody"
    audience: NodeId
    entries: Annotated[list[CustodyEntry], Field(max_length=MAX_ENTRIES)]


# -- member directory (hub -> every node) -----------------------------------------------
class DirectoryKey(WireModel):
    key: B64
    valid_until: Millis | None = None
    expired_at: Millis | None = None


class DirectoryMember(WireModel):
    node_id: NodeId
    country: CountryCode
    name: ShortStr
    base_url: BaseUrl
    keys: Annotated[dict[KeyName, DirectoryKey], Field(max_length=120)]
    groups: Annotated[list[GroupName], Field(max_length=100)] = []
    status: Literal["active", "suspended"] = "active"


class Directory(SignedObject):
    type: Literal["directory"] = "directory"
    version: Annotated[int, Field(ge=1, le=2**53 - 1)]
    members: Annotated[list[DirectoryMember], Field(max_length=MAX_MEMBERS)]


# -- key hand-over (any node, signed by the key it retires) ----------------------------
class NewKey(WireModel):
    name: KeyName
    key: B64


class KeyTransition(SignedObject):
    type: Literal["key_transition"] = "key_transition"
    old: KeyName
    new: NewKey


def build(model: type[SignedObject], **fields: Any) -> dict[str, Any]:
    """The object ``fields`` describe, checked against ``model``, as the plain dict to
    sign. Only the fields given are kept (no defaults added), so the signed bytes are
    those the producer meant."""
    return model.model_validate(fields).model_dump(mode="python", exclude_unset=True)
