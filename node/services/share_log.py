"""What was shared with whom: which peer received which version of which listing, when.

The feed records each page it serves, in the page's own transaction, before the page is
sent (``node.services.feed``; ``insert_rows``): every summary and every retraction of this
node's own listings, in one INSERT per page. A row is written only when it says something
new for that reader: when what the reader last held of the listing (its ``feed_sent`` row,
which the page reads anyway, standing for the reader's latest row here: ``held``) is not
already the same version and kind. A reader that pulls from the start again (cursor 0)
therefore adds nothing, however often it does so, while a listing withdrawn from a reader
and shared again later is recorded each time it changes hands. ``record_page`` does the
same for a page's items from the log itself (one read, one INSERT).

The console and ``cattc shared`` read it per listing, per peer, and as peer totals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, case, func, insert, select, text
from sqlalchemy.orm import Session

from node.storage.models import ListingRow, ShareLogRow

SUMMARY = "summary"
WITHDRAWAL = "withdrawal"
_KIND_OF_TYPE = {"listing": SUMMARY, "retraction": WITHDRAWAL}
PAGE_SIZE = 50


@dataclass(frozen=True)
class Shared:
    """One row of the log: ``reader`` received ``version`` of ``listing_id`` at ``at``."""

    reader: str
    listing_id: str
    version: int
    kind: str
    at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "listing_id": self.listing_id,
            "version": self.version,
            "kind": self.kind,
            "at": self.at,
        }


@dataclass(frozen=True)
class PeerHolding:
    """Where one peer stands with one listing: the last version it got, and whether a
    withdrawal reached it after that."""

    reader: str
    version: int
    received_at: int
    withdrawn_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "version": self.version,
            "received_at": self.received_at,
            "withdrawn_at": self.withdrawn_at,
        }


@dataclass(frozen=True)
class PeerTotals:
    reader: str
    listings: int
    summaries: int
    withdrawals: int
    last_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "listings": self.listings,
            "summaries": self.summaries,
            "withdrawals": self.withdrawals,
            "last_at": self.last_at,
        }


def entries_of(issuer: str, items: Iterable[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """(listing id, version, kind) of each of ``issuer``'s own summaries and retractions
    among a page's items, in page order (other objects, such as notices, are skipped)."""
    out: list[tuple[str, int, str]] = []
    for item in items:
        kind = _KIND_OF_TYPE.get(str(item.get("type")))
        if kind is None or item.get("issuer") != issuer:
            continue
        if kind == SUMMARY:
            listing = item["listing"]
            out.append((str(listing["id"]), int(listing["version"]), kind))
        else:
            out.append((str(item["listing_id"]), int(item["version"]), kind))
    return out


def held(version: int, retracted: bool) -> tuple[int, str]:
    """The (version, kind) of the last row a reader's ``feed_sent`` row stands for."""
    return version, WITHDRAWAL if retracted else SUMMARY


def insert_rows(
    session: Session, reader: str, entries: Sequence[tuple[str, int, str]], now: int
) -> int:
    """Write rows the caller knows to be new for ``reader`` (the feed page, which tells
    that from ``feed_sent``), in its transaction: one executemany, nothing read."""
    if not entries:
        return 0
    table = ShareLogRow.__table__
    assert isinstance(table, Table)
    session.connection().execute(
        insert(table),
        [
            {"reader": reader, "listing_id": lid, "version": version, "kind": kind, "at": now}
            for lid, version, kind in entries
        ],
    )
    return len(entries)


def record_page(
    engine: Engine, reader: str, entries: Sequence[tuple[str, int, str]], now: int
) -> int:
    """Record what a feed page gave ``reader``; only what is new for it. Returns the
    number of rows written (one read and at most one INSERT)."""
    if not entries:
        return 0
    ids = sorted({lid for lid, _, _ in entries})
    with Session(engine) as session, session.begin():
        if engine.dialect.name == "postgresql":
            # Two pages for one reader at once (SQLite's write lock does this there).
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": reader})
        # Found through the listing index; ``reader || ''`` keeps SQLite's planner off
        # the reader index, whose rows (all this reader ever got) it would scan.
        newest = (
            select(func.max(ShareLogRow.id))
            .where(ShareLogRow.listing_id.in_(ids), ShareLogRow.reader.concat("") == reader)
            .group_by(ShareLogRow.listing_id)
        )
        last: dict[str, tuple[int, str]] = {
            lid: (int(version), kind)
            for lid, version, kind in session.execute(
                select(ShareLogRow.listing_id, ShareLogRow.version, ShareLogRow.kind).where(
                    ShareLogRow.id.in_(newest)
                )
            )
        }
        rows: list[dict[str, Any]] = []
        for lid, version, kind in entries:
            if last.get(lid) == (version, kind):
                continue
            last[lid] = (version, kind)
            rows.append(
                {"reader": reader, "listing_id": lid, "version": version, "kind": kind, "at": now}
            )
        if rows:  # Core executemany: no ORM bulk bookkeeping, no ids fetched back
            table = ShareLogRow.__table__
            assert isinstance(table, Table)
            session.connection().execute(insert(table), rows)
        return len(rows)


# -- reading ----------------------------------------------------------------------------
def listing_exists(engine: Engine, listing_id: str) -> bool:
    with Session(engine) as session:
        return session.get(ListingRow, listing_id) is not None


def listing_title(engine: Engine, listing_id: str) -> dict[str, str] | None:
    """The multilingual title of this node's listing ``listing_id``; None if it has none."""
    with Session(engine) as session:
        row = session.get(ListingRow, listing_id)
        if row is None:
            return None
        title = json.loads(row.record).get("title")
        return {str(k): str(v) for k, v in title.items()} if isinstance(title, dict) else None


def for_listing(engine: Engine, listing_id: str) -> list[Shared]:
    """Every row for ``listing_id``, oldest first."""
    stmt = (
        select(ShareLogRow)
        .where(ShareLogRow.listing_id == listing_id)
        .order_by(ShareLogRow.at, ShareLogRow.id)
    )
    with Session(engine) as session:
        return [_shared(r) for r in session.scalars(stmt)]


def holdings(rows: Sequence[Shared]) -> list[PeerHolding]:
    """Per peer, from one listing's rows (oldest first): the last version it received and
    when it was withdrawn from it after that (None if it still holds it)."""
    state: dict[str, PeerHolding] = {}
    for r in rows:
        held = state.get(r.reader)
        if r.kind == SUMMARY:
            state[r.reader] = PeerHolding(r.reader, r.version, r.at, None)
        elif held is not None and held.withdrawn_at is None:
            state[r.reader] = PeerHolding(r.reader, held.version, held.received_at, r.at)
    return sorted(state.values(), key=lambda h: h.reader)


def for_peer(
    engine: Engine, reader: str, *, offset: int = 0, limit: int = PAGE_SIZE
) -> list[Shared]:
    """``reader``'s rows, newest first, ``limit`` from ``offset``."""
    stmt = (
        select(ShareLogRow)
        .where(ShareLogRow.reader == reader)
        .order_by(ShareLogRow.at.desc(), ShareLogRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    with Session(engine) as session:
        return [_shared(r) for r in session.scalars(stmt)]


def count_for_peer(engine: Engine, reader: str) -> int:
    with Session(engine) as session:
        stmt = select(func.count()).select_from(ShareLogRow).where(ShareLogRow.reader == reader)
        return int(session.scalar(stmt) or 0)


def peers(engine: Engine) -> list[PeerTotals]:
    """Each peer that received anything: distinct listings, summaries, withdrawals, and
    the time of its last row."""
    withdrawal = case((ShareLogRow.kind == WITHDRAWAL, 1), else_=0)
    stmt = (
        select(
            ShareLogRow.reader,
            func.count(func.distinct(ShareLogRow.listing_id)),
            func.count() - func.sum(withdrawal),
            func.sum(withdrawal),
            func.max(ShareLogRow.at),
        )
        .group_by(ShareLogRow.reader)
        .order_by(ShareLogRow.reader)
    )
    with Session(engine) as session:
        return [
            PeerTotals(str(r), int(n), int(s or 0), int(w or 0), int(at))
            for r, n, s, w, at in session.execute(stmt)
        ]


def _shared(row: ShareLogRow) -> Shared:
    return Shared(row.reader, row.listing_id, row.version, row.kind, row.at)
