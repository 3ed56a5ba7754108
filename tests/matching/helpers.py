"""Listing views for matcher tests: the ``listing`` member of a hub-held summary."""

from __future__ import annotations

from typing import Any

from node.matching.evaluate import hub_view, load_records
from tests.paths import DATA, require

NOW = 1_795_824_000_000  # 2026-11-28, the sample data's "today"
DAY = 86_400_000
LATER = NOW + 400 * DAY


def view(
    listing_id: str,
    category: str,
    *,
    version: int = 1,
    expires: int = LATER,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": listing_id,
        "category": category,
        "version": version,
        "updated": NOW - DAY,
        "expires": expires,
        "fields": fields,
        "rights": {"ip_owner": ["x"], "attribution": "declined", "name_logo_consent": False},
    }


def offer(listing_id: str, title: str, summary: str = "", **fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "title": {"en": title},
        "summary": summary or title,
        "trl": 9,
        "partnership": ["licensing", "commercial_with_tech_assistance"],
    }
    expires = fields.pop("expires", LATER)
    version = fields.pop("version", 1)
    return view(
        listing_id, "tech_offer", version=version, expires=expires, **{**defaults, **fields}
    )


def request(listing_id: str, title: str, need: str = "", **fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "title": {"en": title},
        "summary": title,
        "need": need or title,
        "trl_min": 5,
        "partnership": ["licensing"],
    }
    expires = fields.pop("expires", LATER)
    version = fields.pop("version", 1)
    return view(
        listing_id, "tech_request", version=version, expires=expires, **{**defaults, **fields}
    )


def sample_records() -> dict[str, dict[str, Any]]:
    return load_records(require(DATA / "listings.jsonl"))


def sample_views() -> list[tuple[str, dict[str, Any]]]:
    return [
        (str(r["owner"]), hub_view(r))
        for r in sample_records().values()
        if r.get("visibility") != "private"
    ]
