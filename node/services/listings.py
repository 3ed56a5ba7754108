"""A node's own listings: create, update, withdraw, query, and import in bulk.

Every change bumps the listing's version and appends to the change log (``changes``), the
monotonic sequence that feeds page through. Withdrawal keeps a tombstone so the id is
never reused and readers that held the listing can be told.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Table, func, insert, or_, select, update
from sqlalchemy.orm import Session

from node.clock import Clock
from node.services.errors import Conflict, InvalidListing, NotFound
from node.services.validation import validate_record
from node.storage.db import begin_write
from node.storage.models import ChangeRow, ListingRow
from protocol.listing import Listing, listing_to_wire

KIND_PREFIX = {
    "tech_offer": "off",
    "tech_request": "req",
    "expert": "exp",
    "organization": "org",
    "event": "evt",
    "agreement": "agr",
}
_VOLATILE = ("version", "updated", "created")
# Core tables for bulk inserts: the ORM's per-row bookkeeping is not needed there.
LISTINGS = cast(Table, ListingRow.__table__)
CHANGES = cast(Table, ChangeRow.__table__)
Also = Callable[[Session, dict[str, Any]], None]  # more to write in a change's transaction


LIKE_ESCAPE = "\\"


def listing_head(session: Session) -> int:
    """The last entry of the listings' own change log, 0 for none: one probe of the
    index (reader, seq). The outbox's entries (``reader`` set: notices queued for a
    member, one per match at a hub) change no listing and are left out."""
    return int(
        session.scalar(select(func.max(ChangeRow.seq)).where(ChangeRow.reader.is_(None))) or 0
    )


def like_escape(text: str) -> str:
    """``text`` for a LIKE pattern that matches it literally: ``%`` and ``_`` (and the
    escape character itself) escaped with ``LIKE_ESCAPE``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def content_hash(wire: dict[str, Any]) -> str:
    """Hash of what a listing says, ignoring its version and times of change."""
    body = {k: v for k, v in wire.items() if k not in _VOLATILE}
    return hashlib.sha256(dumps(body).encode()).hexdigest()


@dataclass(frozen=True)
class StoredListing:
    record: dict[str, Any]
    withdrawn: bool

    @property
    def id(self) -> str:
        return str(self.record["id"])


@dataclass
class ImportProblem:
    line: int
    listing_id: str | None
    reason: str


MAX_PROBLEMS_KEPT = 1000


@dataclass
class ImportReport:
    """What an import did. ``rejected`` counts every bad record; ``problems`` names the
    first ``MAX_PROBLEMS_KEPT`` of them (a million bad lines must not fill memory)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    applied: bool = True

    def add_problem(self, line: int, listing_id: str | None, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(ImportProblem(line, listing_id, reason))


def _row_values(wire: dict[str, Any], listing: Listing) -> dict[str, Any]:
    return {
        "id": listing.id,
        "category": listing.category,
        "version": listing.version,
        "visibility": listing.visibility,
        "created": listing.created,
        "updated": listing.updated,
        "expires": listing.expires,
        "withdrawn": False,
        "title_en": listing.title["en"][:300],
        "record": dumps(wire),
        "content_sha256": content_hash(wire),
    }


class ListingService:
    def __init__(self, engine: Engine, node_id: str, country: str, clock: Clock) -> None:
        self.engine = engine
        self.node_id = node_id
        self.country = country
        self.clock = clock

    # -- validation -------------------------------------------------------------------
    def _check_owner(self, listing: Listing) -> None:
        if listing.owner != self.node_id:
            raise InvalidListing(
                f"listing {listing.id} is owned by '{listing.owner}', not by this node "
                f"('{self.node_id}'); only the owner's node may hold it",
                field="owner",
            )

    def _complete(self, record: dict[str, Any], session: Session) -> dict[str, Any]:
        """Fill what an operator may leave out when creating through the API."""
        now = self.clock()
        out = dict(record)
        out.setdefault("owner", self.node_id)
        out.setdefault("country", self.country)
        out.setdefault("created", now)
        out.setdefault("updated", out["created"])
        out.setdefault("version", 1)
        if "id" not in out and isinstance(out.get("category"), str):
            out["id"] = self._next_id(session, out["category"])
        return out

    def _next_id(self, session: Session, category: str) -> str:
        prefix = f"{self.node_id}-{KIND_PREFIX.get(category, 'lst')}-"
        last = session.scalar(
            select(func.max(ListingRow.id)).where(ListingRow.id.like(prefix + "%"))
        )
        number = int(last.removeprefix(prefix)) + 1 if last and last[len(prefix) :].isdigit() else 1
        return f"{prefix}{number:04d}"

    # -- single listings --------------------------------------------------------------
    def create(self, record: dict[str, Any], *, also: Also | None = None) -> dict[str, Any]:
        """Store a new listing. ``also(session, wire)`` runs in its transaction (the
        audit entry of the change commits with it, or neither does)."""
        with Session(self.engine) as session, session.begin():
            begin_write(session.connection(), ListingRow.__tablename__)  # _next_id reads
            listing = validate_record(self._complete(record, session))
            self._check_owner(listing)
            if session.get(ListingRow, listing.id) is not None:
                raise Conflict(f"listing {listing.id} exists; update it instead", field="id")
            wire = listing_to_wire(listing)
            session.execute(insert(ListingRow), [_row_values(wire, listing)])
            self._log(session, listing.id, listing.version, "upsert")
            if also is not None:
                also(session, wire)
            return wire

    def update(
        self, listing_id: str, record: dict[str, Any], *, also: Also | None = None
    ) -> dict[str, Any]:
        """Change a listing; ``also`` as for ``create``, when anything changed."""
        with Session(self.engine) as session, session.begin():
            row = self._row(session, listing_id, for_update=True)
            if row.withdrawn:
                raise Conflict(f"listing {listing_id} is withdrawn and cannot change")
            current = json.loads(row.record)
            merged = {**record, "id": listing_id, "owner": self.node_id}
            merged.setdefault("category", row.category)
            merged["created"] = current["created"]
            merged["version"] = row.version
            merged["updated"] = current["updated"]
            listing = validate_record(merged)
            if listing.category != row.category:
                raise InvalidListing("a listing cannot change category", field="category")
            wire = listing_to_wire(listing)
            if content_hash(wire) == row.content_sha256:
                return dict(current)
            wire["version"] = row.version + 1
            wire["updated"] = max(self.clock(), row.updated)
            listing = validate_record(wire)
            session.execute(
                update(ListingRow).where(ListingRow.id == listing_id),
                _row_values(wire, listing),
            )
            self._log(session, listing_id, wire["version"], "upsert")
            if also is not None:
                also(session, wire)
            return wire

    def withdraw(self, listing_id: str, *, also: Also | None = None) -> dict[str, Any]:
        """Withdraw a listing; ``also`` as for ``create``, when it was not withdrawn."""
        with Session(self.engine) as session, session.begin():
            row = self._row(session, listing_id, for_update=True)
            if row.withdrawn:
                return {"id": listing_id, "version": row.version, "withdrawn": True}
            row.withdrawn = True
            row.version += 1
            row.updated = max(self.clock(), row.updated)
            self._log(session, listing_id, row.version, "withdraw")
            result = {"id": listing_id, "version": row.version, "withdrawn": True}
            if also is not None:
                also(session, result)
            return result

    def get(self, listing_id: str) -> StoredListing:
        with Session(self.engine) as session:
            row = self._row(session, listing_id)
            return StoredListing(json.loads(row.record), row.withdrawn)

    def query(
        self,
        *,
        category: str | None = None,
        visibility: str | None = None,
        text: str | None = None,
        include_withdrawn: bool = False,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[StoredListing], str | None]:
        """A page of listings ordered by id; returns the items and the id to continue after."""
        stmt = select(ListingRow).order_by(ListingRow.id).limit(limit + 1)
        if category:
            stmt = stmt.where(ListingRow.category == category)
        if visibility:
            stmt = stmt.where(ListingRow.visibility == visibility)
        if text:
            pattern = f"%{like_escape(text.lower())}%"
            stmt = stmt.where(
                or_(
                    func.lower(ListingRow.title_en).like(pattern, escape=LIKE_ESCAPE),
                    ListingRow.id == text,
                )
            )
        if not include_withdrawn:
            stmt = stmt.where(ListingRow.withdrawn.is_(False))
        if after:
            stmt = stmt.where(ListingRow.id > after)
        with Session(self.engine) as session:
            rows = list(session.scalars(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        items = [StoredListing(json.loads(r.record), r.withdrawn) for r in rows]
        return items, (rows[-1].id if more and rows else None)

    def iter_all(self, include_withdrawn: bool = True) -> Iterator[StoredListing]:
        with Session(self.engine) as session:
            stmt = select(ListingRow.record, ListingRow.withdrawn).order_by(ListingRow.id)
            if not include_withdrawn:
                stmt = stmt.where(ListingRow.withdrawn.is_(False))
            for record, withdrawn in session.execute(stmt):
                yield StoredListing(json.loads(record), bool(withdrawn))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per category: active listings per visibility, and withdrawn ones."""
        stmt = select(
            ListingRow.category, ListingRow.visibility, ListingRow.withdrawn, func.count()
        ).group_by(ListingRow.category, ListingRow.visibility, ListingRow.withdrawn)
        out: dict[str, dict[str, int]] = {}
        with Session(self.engine) as session:
            for cat, vis, withdrawn, n in session.execute(stmt):
                key = "withdrawn" if withdrawn else vis
                out.setdefault(cat, {})[key] = out.get(cat, {}).get(key, 0) + int(n)
        return out

    def head(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.max(ChangeRow.seq))) or 0)

    # -- bulk import ------------------------------------------------------------------
    def import_records(
        self, records: Iterable[tuple[int, Any]], *, strict: bool = False, batch: int = 1000
    ) -> ImportReport:
        """Validate and store records as they come, ``batch`` at a time (none if ``strict``
        and any is bad): memory stays flat whatever the number of records.

        ``records`` yields (line number, parsed JSON or an Exception from parsing). The same
        file imported twice changes nothing: records whose content is unchanged are skipped.
        """
        from node.services.bulk_import import ImportRun

        enabled = gc.isenabled()
        gc.disable()  # each batch collects its own young objects (ImportRun.flush)
        try:
            with ImportRun(self, strict=strict, batch=batch) as run:
                for line, record in records:
                    run.add(line, record)
                return run.finish()
        finally:
            if enabled:
                gc.enable()

    # -- helpers ----------------------------------------------------------------------
    @staticmethod
    def _change(listing_id: str, version: int, at: int, kind: str = "upsert") -> dict[str, Any]:
        return {"listing_id": listing_id, "version": version, "kind": kind, "at": at}

    def _log(self, session: Session, listing_id: str, version: int, kind: str) -> None:
        session.execute(insert(ChangeRow), [self._change(listing_id, version, self.clock(), kind)])

    @staticmethod
    def _row(session: Session, listing_id: str, for_update: bool = False) -> ListingRow:
        stmt = select(ListingRow).where(ListingRow.id == listing_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = session.scalar(stmt)
        if row is None:
            raise NotFound(f"no listing {listing_id} on this node")
        return row
