"""What the console's listings table shows: its filters (category, live or withdrawn,
words of the English title), a page of listings in id order through the service's query
(escaped LIKE), and one listing as a row (also the import preview's rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from node.runtime import NodeRuntime
from node.services.listings import LIKE_ESCAPE, StoredListing, like_escape
from node.storage.models import ListingRow
from protocol.listing import CATEGORIES
from protocol.timeutil import ms_to_date

PAGE_SIZE = 50
STATUSES = ("live", "withdrawn", "all")
MAX_QUERY = 200


@dataclass(frozen=True)
class Filters:
    category: str = ""
    status: str = "live"
    q: str = ""
    after: str = ""

    @classmethod
    def of(cls, request: web.Request) -> Filters:
        query = request.query
        category = query.get("category", "")
        status = query.get("status", "live")
        return cls(
            category=category if category in CATEGORIES else "",
            status=status if status in STATUSES else "live",
            q=query.get("q", "").strip()[:MAX_QUERY],
            after=query.get("after", "")[:64],
        )


def _withdrawn_page(
    engine: Engine, filters: Filters, limit: int
) -> tuple[list[StoredListing], str | None]:
    """Withdrawn listings only, the service's query's way (ordered by id, escaped LIKE)."""
    stmt = (
        select(ListingRow)
        .where(ListingRow.withdrawn.is_(True))
        .order_by(ListingRow.id)
        .limit(limit + 1)
    )
    if filters.category:
        stmt = stmt.where(ListingRow.category == filters.category)
    if filters.q:
        pattern = f"%{like_escape(filters.q.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(ListingRow.title_en).like(pattern, escape=LIKE_ESCAPE),
                ListingRow.id == filters.q,
            )
        )
    if filters.after:
        stmt = stmt.where(ListingRow.id > filters.after)
    with Session(engine) as session:
        rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [StoredListing(json.loads(r.record), r.withdrawn) for r in rows]
    return items, (rows[-1].id if more and rows else None)


def find(rt: NodeRuntime, filters: Filters) -> tuple[list[StoredListing], str | None]:
    if filters.status == "withdrawn":
        return _withdrawn_page(rt.engine, filters, PAGE_SIZE)
    return rt.listings.query(
        category=filters.category or None,
        text=filters.q or None,
        include_withdrawn=filters.status == "all",
        after=filters.after or None,
        limit=PAGE_SIZE,
    )


def table_row(stored: StoredListing) -> dict[str, Any]:
    """One listing as the table shows it (also the import preview's rows)."""
    rec = stored.record
    updated = rec.get("updated")
    return {
        "id": rec.get("id", ""),
        "title": rec.get("title") if isinstance(rec.get("title"), dict) else {},
        "category": rec.get("category", ""),
        "withdrawn": stored.withdrawn,
        "version": rec.get("version", ""),
        "updated": ms_to_date(updated) if isinstance(updated, int) else str(updated or ""),
    }
