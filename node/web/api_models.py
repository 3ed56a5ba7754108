"""The shapes of the HTTP API's answers that are not wire objects of the protocol.

Signed objects (identity, feed page, directory, custody list, EoI answer) have their
models in ``protocol/``; these describe the rest (status, listings, policy, search,
matches, errors), so that ``/openapi.json`` can state every answer and a fuzz test can
hold the node to it. They are descriptions, not parsers: fields whose inside is the
protocol's or the policy engine's business (a listing record, a view) are plain objects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JsonObject = dict[str, Any]


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable code from protocol.errors.ErrorCode")
    message: str
    issues: list[str] | None = Field(
        default=None, description="policy errors only: each problem, rule and key named"
    )


class ErrorBody(BaseModel):
    """Every failure: ``{"error": {"code", "message"}}``, never a stack trace."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    node_id: str


class NodeStatus(BaseModel):
    node_id: str
    country: str
    name: str
    base_url: str
    key: str
    listings: dict[str, int]
    by_visibility: dict[str, dict[str, int]]
    change_log_head: int


class StoredListing(BaseModel):
    listing: JsonObject = Field(description="the listing record (protocol/listing.py)")
    withdrawn: bool


class ListingPage(BaseModel):
    items: list[StoredListing]
    next: str | None = Field(description="the id to pass as `after` for the next page")


class Withdrawn(BaseModel):
    id: str
    version: int
    withdrawn: Literal[True]


class ImportProblem(BaseModel):
    line: int
    id: str | None
    reason: str


class ImportReport(BaseModel):
    applied: bool
    created: int
    updated: int
    unchanged: int
    rejected: int
    problems: list[ImportProblem]


class PolicyVersionInfo(BaseModel):
    version: int
    author: str
    created: int
    digest: str
    active: bool


class PolicyVersion(PolicyVersionInfo):
    text: str


class PolicyVersions(BaseModel):
    versions: list[PolicyVersionInfo]


class PolicyCheck(BaseModel):
    valid: Literal[True]
    issues: list[str]


class AudienceDiff(BaseModel):
    visible_before: int
    visible_after: int
    becoming_visible: list[str]
    becoming_invisible: list[str]
    fields_appearing: JsonObject
    fields_disappearing: JsonObject


class PolicyDiff(BaseModel):
    audiences: dict[str, AudienceDiff]


class Explanation(BaseModel):
    listing_id: str
    audience: str
    policy_version: int
    shared: bool
    code: str
    reason: str
    rule_index: int | None
    rule: Any
    matched: Any
    matched_key: Any
    explanation: list[str]
    view: JsonObject | None


class SearchHit(BaseModel):
    owner: str
    listing: JsonObject = Field(description="the listing as its owner shows it to the public")


class SearchResult(BaseModel):
    total: int = Field(description="hits (with words or an IPC filter, counted up to a cap)")
    total_exact: bool = Field(
        description="false when the count stopped at its cap: at least ``total`` hits, "
        "and the facets count those"
    )
    items: list[SearchHit]
    next_offset: int | None
    facets: dict[str, dict[str, int]]


class ListingKey(BaseModel):
    owner: str
    id: str


class MatchRow(BaseModel):
    request: ListingKey
    candidate: ListingKey
    kind: str
    score: float
    components: dict[str, float]
    shared_terms: list[str]
    shared_codes: list[str]
    explanation: Any


class Matches(BaseModel):
    matches: list[MatchRow]


class HubTotals(BaseModel):
    members: int
    items_held: int
    rejected: int
    matches: int


class HubStatus(BaseModel):
    hub: str
    now: int
    directory_version: int
    sync_interval_ms: int
    members: list[JsonObject]
    totals: HubTotals
    leader: JsonObject  # the process running the matcher: pid, host, since, this_process
    # The matcher: model asked for, held, pending, left, scoring, and semantic (enabled,
    # model, reason when off, to_encode): the leader's own figures (this_process).
    matching: JsonObject


class NotifyAnswer(BaseModel):
    scheduled: bool
