"""Storing a stream of imported listings in constant memory, all or nothing when strict.

A center's first load is its whole catalogue, possibly a million listings. ``ImportRun``
takes records one at a time, validates each at once and stores them in batches, so only
one batch is ever held. What it must remember across batches (which ids it has met, on
which line, and which version each got) goes to a temporary table on its own database
connection, not to memory.

With ``strict`` nothing is stored unless every record is good: the whole import is one
transaction, rolled back when any record is bad (the rest is still read, to report every
problem) and by the database itself if the process dies. Without it, the good records are
stored and the bad ones reported, each batch in its own transaction: a crash keeps the
batches stored before it, and importing the file again completes it (unchanged records
are skipped); ``single_transaction`` makes even that all or nothing (the admin route uses
it: its bodies are small, and an upload cut short then stores nothing).

In one transaction the change-log entries are written last, just before the commit, so
that on PostgreSQL their sequence numbers are not handed out long before other writers'
(a feed reader that had passed them would never see them).
"""

from __future__ import annotations

import gc
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from node.services.errors import InvalidListing
from node.services.listings import (
    CHANGES,
    LISTINGS,
    ImportReport,
    ListingService,
    _row_values,
    content_hash,
)
from node.services.validation import validate_record
from node.storage.db import begin_write
from protocol.listing import Listing, listing_to_wire

BATCH = 1000
MAX_ID_SHOWN = 100

Pending = tuple[int, dict[str, Any], Listing]


AlsoOnImport = Callable[[Connection, ImportReport], None]


class ImportRun:
    """One import: ``add`` each record, then ``finish``; as a context manager it rolls
    back what is not finished (an exception, an interrupted upload)."""

    def __init__(
        self,
        service: ListingService,
        *,
        strict: bool,
        single_transaction: bool = False,
        batch: int = BATCH,
    ) -> None:
        self.service = service
        self.strict = strict
        self.single = strict or single_transaction
        self.batch = batch
        self.report: ImportReport = ImportReport()
        self._pending: list[Pending] = []
        self._pending_lines: dict[str, int] = {}
        self._now = service.clock()
        self._seen = Table(
            f"cattc_import_{secrets.token_hex(6)}",
            MetaData(),
            Column("id", String(64), primary_key=True),
            Column("line", Integer, nullable=False),
            Column("version", Integer),  # None: not written by this import
            prefixes=["TEMPORARY"],
        )
        self._conn: Connection | None = service.engine.connect()
        try:
            with self._conn.begin():
                self._seen.create(self._conn)
            self._tx = self._conn.begin() if self.single else None
            if self._tx is not None:
                begin_write(self._conn, LISTINGS.name)  # nobody inserts what it read as absent
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> ImportRun:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- records -----------------------------------------------------------------------
    def add(self, line: int, record: Any) -> None:
        """Validate one record (or take the parse error it is) and queue it for storing."""
        if isinstance(record, Exception):
            self._problem(line, None, str(record))
            return
        rid = record.get("id") if isinstance(record, dict) else None
        try:
            listing = validate_record(record)
            self.service._check_owner(listing)
        except InvalidListing as exc:
            shown = rid[:MAX_ID_SHOWN] if isinstance(rid, str) else None
            self._problem(line, shown, exc.message)
            return
        first = self._pending_lines.get(listing.id)
        if first is not None:
            self._problem(line, listing.id, f"duplicate of line {first}")
            return
        self._pending_lines[listing.id] = line
        self._pending.append((line, listing_to_wire(listing), listing))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Store the queued records (in the open transaction, if there is one)."""
        chunk, self._pending, self._pending_lines = self._pending, [], {}
        if not chunk:
            return
        conn = self._connection()
        if self.single:
            self._store(conn, chunk)
        else:
            with conn.begin():
                begin_write(conn, LISTINGS.name)
                self._store(conn, chunk)
        del chunk
        # The collector is paused for the import (ListingService.import_records): its
        # full passes over everything alive cost a seventh of the wall time. Collecting
        # only the youngest generation after each batch frees that batch's cycles and
        # examines nothing older, so memory stays flat.
        gc.collect(0)

    def finish(
        self, also: Callable[[Connection, ImportReport], None] | None = None
    ) -> ImportReport:
        """Store what is left, commit (or roll back a strict import with any problem).
        ``also(connection, report)`` runs last in a single transaction that commits (the
        audit entry of the import commits with it, or neither does); after the last
        batch, in a transaction of its own, when each batch committed."""
        self.flush()
        report = self.report
        report.problems.sort(key=lambda p: p.line)
        if self._tx is not None:
            if self.strict and report.rejected:
                self._tx.rollback()
                report.applied = False
                report.created = report.updated = report.unchanged = 0
            else:
                seen = self._seen.c
                self._connection().execute(
                    insert(CHANGES).from_select(
                        ["listing_id", "version", "kind", "at"],
                        select(seen.id, seen.version, literal("upsert"), literal(self._now))
                        .where(seen.version.is_not(None))
                        .order_by(seen.line),
                    )
                )
                if also is not None:
                    also(self._connection(), report)
                self._tx.commit()
            self._tx = None
        elif also is not None:
            conn = self._connection()
            with conn.begin():
                also(conn, report)
        self.close()
        return report

    def close(self) -> None:
        """Roll back anything not committed and give the connection back."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
            with conn.begin():
                self._seen.drop(conn)
        except SQLAlchemyError:  # a broken connection: the database drops the table
            conn.invalidate()
        finally:
            self._tx = None
            conn.close()

    # -- storing -------------------------------------------------------------------------
    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("this import is finished")
        return self._conn

    def _problem(self, line: int, listing_id: str | None, reason: str) -> None:
        self.report.add_problem(line, listing_id, reason)

    def _store(self, conn: Connection, chunk: list[Pending]) -> None:
        ids = [listing.id for _, _, listing in chunk]
        seen = self._seen.c
        earlier: dict[str, int] = {
            rid: line
            for rid, line in conn.execute(select(seen.id, seen.line).where(seen.id.in_(ids)))
        }
        listings = LISTINGS.c
        existing = {
            rid: (version, digest, withdrawn)
            for rid, version, digest, withdrawn in conn.execute(
                select(
                    listings.id, listings.version, listings.content_sha256, listings.withdrawn
                ).where(listings.id.in_(ids))
            )
        }
        marks: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        report = self.report
        for line, wire, listing in chunk:
            if listing.id in earlier:
                self._problem(line, listing.id, f"duplicate of line {earlier[listing.id]}")
                continue
            written: int | None = None
            old = existing.get(listing.id)
            if old is None:
                inserts.append(_row_values(wire, listing))
                written = listing.version
                report.created += 1
            elif old[2]:
                self._problem(line, listing.id, "listing was withdrawn; ids are not reused")
            elif old[1] == content_hash(wire):
                report.unchanged += 1
            else:
                newer = {**wire, "version": max(old[0] + 1, listing.version)}
                newer["updated"] = max(newer["updated"], self._now)
                updates.append(_row_values(newer, validate_record(newer)))
                written = newer["version"]
                report.updated += 1
            marks.append({"id": listing.id, "line": line, "version": written})
        if marks:
            conn.execute(insert(self._seen), marks)
        if self.strict and report.rejected:
            return  # nothing of a failed strict import is written; keep reading for problems
        if inserts:
            conn.execute(insert(LISTINGS), inserts)
        for values in updates:
            conn.execute(update(LISTINGS).where(listings.id == values["id"]), values)
        if not self.single:
            changes = [
                {"listing_id": m["id"], "version": m["version"], "kind": "upsert", "at": self._now}
                for m in marks
                if m["version"] is not None
            ]
            if changes:
                conn.execute(insert(CHANGES), changes)
