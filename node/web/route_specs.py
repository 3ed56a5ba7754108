"""What the route table cannot say about each handler: its query and body models, its
answers, who may call it. ``node.web.openapi`` joins these to the routes that
``setup_routes`` registered; a handler without an entry here is an error there, so a new
route cannot go undocumented (tests/security/test_openapi.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from node.web import (
    admin_listings,
    admin_policy,
    admin_status,
    api_models,
    federation,
    hub_routes,
    public,
)
from protocol.eoi import EoiAnswer, EoiReply, ExpressionOfInterest
from protocol.hub_objects import CustodyList, Directory
from protocol.objects import FeedPage, NodeIdentity

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Access = Literal["public", "admin", "federation"]
JSON = "application/json"
YAML = "application/yaml"
JSON_LINES = "application/jsonl"


@dataclass(frozen=True)
class Answer:
    """One documented answer: a model for JSON, or a raw schema for other media."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = JSON
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Body:
    description: str
    media_type: str = JSON
    model: type[BaseModel] | None = None
    schema: Mapping[str, Any] | None = None
    alternatives: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Other media types the handler takes, each with its schema."""


@dataclass(frozen=True)
class RouteSpec:
    summary: str
    access: Access
    answers: Mapping[int, Answer]
    query: type[BaseModel] | None = None
    body: Body | None = None
    hub_only: bool = False
    path_params: Mapping[str, str] = field(default_factory=dict)


_LISTING_ID = {"listing_id": "the listing's id"}
_LISTING_BODY = Body(
    "a listing (protocol/listing.py: one of its six categories); `id`, `owner`, "
    "`country`, `created`, `updated` and `version` may be left out",
    schema={"type": "object"},
)
_POLICY_BODY = Body(
    "the policy: a YAML mapping (UTF-8), as `cattc policy apply` takes it",
    media_type=YAML,
    schema={"type": "object"},
)
_TEXT = {"type": "string"}

SPECS: dict[Handler, RouteSpec] = {
    public.identity: RouteSpec(
        "the node's self-signed identity document",
        "public",
        {200: Answer("the identity (DESIGN 6.1)", NodeIdentity)},
    ),
    public.health: RouteSpec("health check", "public", {200: Answer("alive", api_models.Health)}),
    hub_routes.public_search: RouteSpec(
        "public search: each listing as its owner shows it to the public",
        "public",
        {200: Answer("a page of hits with facets", api_models.SearchResult)},
        query=hub_routes.SearchParams,
        hub_only=True,
    ),
    hub_routes.dashboard: RouteSpec(
        "the hub operator's page",
        "public",
        {200: Answer("the page", media_type="text/html", schema=_TEXT)},
        hub_only=True,
    ),
    hub_routes.static_file: RouteSpec(
        "the dashboard's script and style sheet",
        "public",
        {
            200: Answer(
                "dashboard.js or dashboard.css", media_type="text/javascript", schema=_TEXT
            ),
        },
        hub_only=True,
        path_params={"name": "dashboard.js or dashboard.css"},
    ),
    hub_routes.status: RouteSpec(
        "each member's sync state",
        "admin",
        {200: Answer("the hub's status", api_models.HubStatus)},
        hub_only=True,
    ),
    hub_routes.metrics: RouteSpec(
        "Prometheus metrics",
        "admin",
        {200: Answer("Prometheus text format", media_type="text/plain", schema=_TEXT)},
        hub_only=True,
    ),
    hub_routes.matches: RouteSpec(
        "the best candidates of each request",
        "admin",
        {200: Answer("matches, best first", api_models.Matches)},
        query=hub_routes.MatchesParams,
        hub_only=True,
    ),
    admin_status.status: RouteSpec(
        "who this node is and what it holds",
        "admin",
        {200: Answer("the node's status", api_models.NodeStatus)},
    ),
    admin_listings.list_listings: RouteSpec(
        "a page of the node's listings, ordered by id",
        "admin",
        {200: Answer("listings", api_models.ListingPage)},
        query=admin_listings.ListQuery,
    ),
    admin_listings.create_listing: RouteSpec(
        "create a listing",
        "admin",
        {201: Answer("the stored listing", schema={"type": "object"})},
        body=_LISTING_BODY,
    ),
    admin_listings.import_listings: RouteSpec(
        "import listings: JSON Lines or a JSON array, in one transaction",
        "admin",
        {
            200: Answer("every record stored", api_models.ImportReport),
            207: Answer("some records refused, each named", api_models.ImportReport),
            422: Answer("nothing stored", api_models.ImportReport),
        },
        query=admin_listings.ImportQuery,
        body=Body(
            "a JSON array of listings, or JSON Lines (one listing per line)",
            schema={"type": "array", "items": {"type": "object"}},
            alternatives={JSON_LINES: {"type": "string"}},
        ),
    ),
    admin_listings.get_listing: RouteSpec(
        "one listing",
        "admin",
        {200: Answer("the listing", api_models.StoredListing)},
        path_params=_LISTING_ID,
    ),
    admin_listings.update_listing: RouteSpec(
        "replace a listing (the whole listing, not a patch)",
        "admin",
        {200: Answer("the stored listing", schema={"type": "object"})},
        body=_LISTING_BODY,
        path_params=_LISTING_ID,
    ),
    admin_listings.withdraw_listing: RouteSpec(
        "withdraw a listing; a tombstone stays",
        "admin",
        {200: Answer("withdrawn", api_models.Withdrawn)},
        path_params=_LISTING_ID,
    ),
    admin_policy.show: RouteSpec(
        "the active policy",
        "admin",
        {200: Answer("the active version, with its text", api_models.PolicyVersion)},
    ),
    admin_policy.apply: RouteSpec(
        "apply a policy as a new version",
        "admin",
        {200: Answer("the new version", api_models.PolicyVersionInfo)},
        query=admin_policy.ApplyQuery,
        body=_POLICY_BODY,
    ),
    admin_policy.versions: RouteSpec(
        "every saved policy version",
        "admin",
        {200: Answer("versions", api_models.PolicyVersions)},
    ),
    admin_policy.check: RouteSpec(
        "check a policy without applying it",
        "admin",
        {200: Answer("valid", api_models.PolicyCheck)},
        body=_POLICY_BODY,
    ),
    admin_policy.diff: RouteSpec(
        "what a policy would change, per audience",
        "admin",
        {200: Answer("per audience", api_models.PolicyDiff)},
        body=_POLICY_BODY,
    ),
    admin_policy.explain: RouteSpec(
        "the decision for one listing and audience, and why",
        "admin",
        {200: Answer("the decision and the exact view", api_models.Explanation)},
        query=admin_policy.AudienceQuery,
        path_params=_LISTING_ID,
    ),
    admin_policy.view: RouteSpec(
        "the exact signed object an audience would receive",
        "admin",
        {200: Answer("the signed listing summary", schema={"type": "object"})},
        query=admin_policy.AudienceQuery,
        path_params=_LISTING_ID,
    ),
    federation.feed: RouteSpec(
        "a signed page of what the caller may see",
        "federation",
        {200: Answer("the page, as signed", FeedPage)},
        query=federation.FeedQuery,
    ),
    federation.notify: RouteSpec(
        "ask for an early pull of the caller's feed",
        "federation",
        {202: Answer("scheduled or already due", api_models.NotifyAnswer)},
    ),
    federation.directory: RouteSpec(
        "the signed member directory",
        "federation",
        {200: Answer("the directory", Directory)},
        hub_only=True,
    ),
    federation.custody: RouteSpec(
        "what the hub holds of the caller's listings",
        "federation",
        {200: Answer("the signed custody list", CustodyList)},
        hub_only=True,
    ),
    federation.eoi: RouteSpec(
        "an expression of interest in a listing",
        "federation",
        {202: Answer("the same answer for every listing", EoiAnswer)},
        body=Body("the sender's signed `eoi` (at most 32 KiB)", model=ExpressionOfInterest),
        hub_only=True,
    ),
    federation.eoi_reply: RouteSpec(
        "the owner's reply to an expression of interest",
        "federation",
        {202: Answer("the EoI's new state", EoiAnswer)},
        body=Body("the owner's signed `eoi_reply` (at most 32 KiB)", model=EoiReply),
        hub_only=True,
    ),
}
