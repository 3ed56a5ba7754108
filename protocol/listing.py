"""Listings: the six data categories a center holds, as frozen, strict pydantic models.

A listing is the owner's full record. What leaves a node is never the listing itself but
a policy-filtered view of it (``protocol.objects.ListingSummary``). Field names here are
the vocabulary of sharing policies: ``shareable_fields()`` lists them, nested with dots.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from protocol.countries import ISO_COUNTRIES
from protocol.safe_json import NUL_MESSAGE, holds_nul
from protocol.timeutil import date_to_ms


class WireModel(BaseModel):
    """Base of every wire type: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


CATEGORIES: tuple[str, ...] = (
    "tech_offer",
    "tech_request",
    "expert",
    "organization",
    "event",
    "agreement",
)
Category = Literal["tech_offer", "tech_request", "expert", "organization", "event", "agreement"]
Visibility = Literal["public", "network", "bilateral", "private"]
VISIBILITIES: tuple[str, ...] = ("public", "network", "bilateral", "private")
Sector = Literal[
    "agrifood",
    "new_energy",
    "biomedicine",
    "ict_digital",
    "advanced_manufacturing",
    "environment",
    "marine",
    "construction_materials",
    "mining",
]
OrgType = Literal["university", "research_institute", "enterprise", "government"]
Partnership = Literal[
    "licensing",
    "joint_venture",
    "technical_cooperation",
    "commercial_with_tech_assistance",
    "rnd_cooperation",
    "investment",
]
Stage = Literal["concept", "under_development", "lab_tested", "demonstrated", "on_market"]
IprStatus = Literal["none", "secret_know_how", "applied", "granted"]
EventKind = Literal["conference", "matchmaking", "training", "exhibition"]
AgreementKind = Literal["licensing", "technical_cooperation", "joint_lab", "joint_venture"]
IpArrangement = Literal["sole", "joint"]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer RFC 8785 (I-JSON) signs exactly; every integer field stays within it."""
MAX_VERSION = 1_000_000_000
"""A listing's version at input: far below the 32-bit columns that store it, so each later
change (update, withdrawal) still fits."""
MAX_WIRE_VERSION = 2**31 - 1
"""The largest version a reader takes from a peer: what its 32-bit columns store."""

NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
ListingId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
LangCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
Millis = Annotated[int, Field(ge=0, le=253_402_300_799_999)]  # up to 9999-12-31
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
WireVersion = Annotated[int, Field(ge=1, le=MAX_WIRE_VERSION)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
# IPC: section, class, subclass, optionally a group such as "A01G 9/14".
IpcCode = Annotated[str, StringConstraints(pattern=r"^[A-H](\d{2}([A-Z]( ?\d{1,4}/\d{1,6})?)?)?$")]
# ISIC Rev.4: a section letter, or a division / group / class of 2-4 digits.
IsicCode = Annotated[str, StringConstraints(pattern=r"^([A-U]|\d{2,4})$")]


def _check_country(code: str) -> str:
    if code not in ISO_COUNTRIES:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_check_country)
]


def _check_title(title: dict[str, str]) -> dict[str, str]:
    if "en" not in title:
        raise ValueError("an English title ('en') is required")
    return title


Title = Annotated[
    dict[LangCode, Annotated[str, StringConstraints(min_length=1, max_length=300)]],
    Field(min_length=1, max_length=12),
    AfterValidator(_check_title),
]


def _unique(items: list[Any]) -> list[Any]:
    if len(set(items)) != len(items):
        raise ValueError("values must be unique")
    return items


class Contact(WireModel):
    person: ShortText | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}$")] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()./-]{3,40}$")] | None = None


class Rights(WireModel):
    ip_owner: Annotated[list[ShortText], Field(min_length=1, max_length=10)]
    attribution: Annotated[list[ShortText], Field(max_length=30)] | Literal["declined"]
    name_logo_consent: bool


class Organization(WireModel):
    name: ShortText
    type: OrgType


class Party(WireModel):
    name: ShortText
    node: NodeId | None = None


class ListingBase(WireModel):
    """Fields every category has."""

    id: ListingId
    owner: NodeId
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]
    created: Millis
    updated: Millis
    expires: Millis
    title: Title
    summary: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    keywords: Annotated[list[Keyword], Field(max_length=20)] = []
    ipc: Annotated[list[IpcCode], Field(max_length=20)] = []
    isic: Annotated[list[IsicCode], Field(max_length=20)] = []
    country: CountryCode
    contact: Contact | None = None
    rights: Rights
    visibility: Visibility
    share_with: Annotated[list[NodeId], Field(min_length=1, max_length=50)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """No text holds NUL, whatever brought the record (a form, a CSV cell): PostgreSQL
        cannot store it (``protocol.safe_json`` refuses it in JSON already)."""
        if holds_nul(data):
            raise ValueError(NUL_MESSAGE)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ListingBase:
        if self.updated < self.created:
            raise ValueError("updated is before created")
        if self.visibility == "bilateral" and not self.share_with:
            raise ValueError("share_with is required when visibility is bilateral")
        if self.visibility != "bilateral" and self.share_with is not None:
            raise ValueError("share_with is only allowed when visibility is bilateral")
        if self.share_with and self.owner in self.share_with:
            raise ValueError("share_with must not name the owner")
        return self


Partnerships = Annotated[
    list[Partnership], Field(min_length=1, max_length=6), AfterValidator(_unique)
]
Sectors = Annotated[list[Sector], Field(max_length=9)]

_STAGE_TRL = {
    "concept": (1, 3),
    "under_development": (2, 5),
    "lab_tested": (3, 6),
    "demonstrated": (5, 8),
    "on_market": (8, 9),
}


class TechOffer(ListingBase):
    category: Literal["tech_offer"]
    sector: Sector
    trl: Annotated[int, Field(ge=1, le=9)]
    stage: Stage
    ipr_status: IprStatus
    partnership: Partnerships
    target_countries: Annotated[list[NodeId], Field(max_length=50)] = []
    organization: Organization

    @model_validator(mode="after")
    def _trl_fits_stage(self) -> TechOffer:
        low, high = _STAGE_TRL[self.stage]
        if not low <= self.trl <= high:
            raise ValueError(f"trl {self.trl} does not fit stage {self.stage} ({low}-{high})")
        return self


class TechRequest(ListingBase):
    category: Literal["tech_request"]
    sector: Sector
    need: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    trl_min: Annotated[int, Field(ge=1, le=9)]
    partnership: Partnerships
    budget_range: Annotated[str, StringConstraints(max_length=64)] | None = None
    deadline: Millis | None = None
    organization: Organization


class Expert(ListingBase):
    category: Literal["expert"]
    name: ShortText
    job_title: ShortText | None = None
    affiliation: ShortText | None = None
    fields: Annotated[list[ShortText], Field(max_length=30)] = []
    languages: Annotated[list[LangCode], Field(max_length=20)] = []
    sectors: Sectors = []


class OrganizationListing(ListingBase):
    category: Literal["organization"]
    name: ShortText
    type: OrgType
    sectors: Sectors = []
    member_since: Millis | None = None
    website: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,250}$")] | None = None


class Event(ListingBase):
    category: Literal["event"]
    name: ShortText
    kind: EventKind
    city: ShortText
    start: Millis
    end: Millis
    organizer: NodeId
    organization: Organization
    registration_open: bool
    capacity: Count | None = None
    sectors: Sectors = []

    @model_validator(mode="after")
    def _ordered(self) -> Event:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class Agreement(ListingBase):
    category: Literal["agreement"]
    parties: Annotated[list[Party], Field(min_length=1, max_length=20)]
    kind: AgreementKind
    signed: Millis
    related_listings: Annotated[list[ListingId], Field(max_length=50)] = []
    ip_arrangement: IpArrangement
    value_usd: Count | None = None
    sector: Sector


Listing = Annotated[
    TechOffer | TechRequest | Expert | OrganizationListing | Event | Agreement,
    Field(discriminator="category"),
]
LISTING_ADAPTER: TypeAdapter[Listing] = TypeAdapter(Listing)
MODEL_BY_CATEGORY: dict[str, type[ListingBase]] = {
    "tech_offer": TechOffer,
    "tech_request": TechRequest,
    "expert": Expert,
    "organization": OrganizationListing,
    "event": Event,
    "agreement": Agreement,
}

# Fields that are part of the summary envelope or never leave as such.
ENVELOPE_FIELDS = frozenset(
    {
        "id",
        "owner",
        "category",
        "version",
        "created",
        "updated",
        "rights",
        "visibility",
        "share_with",
    }
)
DATE_FIELDS = (
    "created",
    "updated",
    "expires",
    "deadline",
    "start",
    "end",
    "member_since",
    "signed",
)


def parse_listing(record: dict[str, Any]) -> Listing:
    """Validate a wire record (times in integer ms). Raises pydantic.ValidationError."""
    return LISTING_ADAPTER.validate_python(record)


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    """Convert ``YYYY-MM-DD`` dates of the sample/import format to integer ms (00:00 UTC).

    Values that are not date strings are left for validation to judge.
    """
    out = dict(record)
    for name in DATE_FIELDS:
        value = out.get(name)
        if isinstance(value, str):
            try:
                out[name] = date_to_ms(value)
            except ValueError:
                pass  # validation names the field
    return out


def listing_to_wire(listing: ListingBase) -> dict[str, Any]:
    """The listing as plain JSON values, omitting unset optional fields."""
    return listing.model_dump(mode="json", exclude_none=True)


def _paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested_model(info.annotation)
        if nested is not None and not prefix and name not in ENVELOPE_FIELDS:
            out.append(path)
            out.extend(_paths(nested, path + "."))
        elif prefix or name not in ENVELOPE_FIELDS:
            out.append(path)
    return out


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for cand in candidates:
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
        for arg in getattr(cand, "__args__", ()):  # list[Party]
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def shareable_fields(category: str) -> tuple[str, ...]:
    """Field paths a policy may name for ``category``: ``title``, ``organization.type``..."""
    return tuple(_paths(MODEL_BY_CATEGORY[category]))


ALL_SHAREABLE_FIELDS: frozenset[str] = frozenset(
    path for cat in CATEGORIES for path in shareable_fields(cat)
)
