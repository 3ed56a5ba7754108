"""The per-reader change feed a node serves (DESIGN 6, 8): signed pages of signed items.

Each page walks the change log after the reader's cursor, taking only the newest entry
of each listing, and turns it into what this reader may know: the current view (a signed
summary), a signed retraction when a listing it was given is withdrawn, expired, no longer
shared with it or lost its name consent, or nothing at all. ``feed_sent`` remembers what
each reader was given, so a reader never hears of a listing it never received.

A page is assembled from bytes: the log is read in the cursor's order by one range query
joined to each entry's listing, the reader's stored summary (``summary_cache``: per
listing version and view digest, so a change of policy, audience or key never serves a
stale one) and its ``feed_sent`` row; a stored summary goes into the page as the bytes it
was stored as. Only what no stored summary answers is evaluated and signed now. The page's
``feed_sent`` changes and its ``share_log`` rows (told new from ``feed_sent``) are written
in the page's transaction.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    Engine,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased

from node.hub.notice_index import note_queued
from node.services import share_log, summary_cache
from node.services.cursors import (
    CursorCodec,
    CursorExpired,
    entry_mark,
    history_floor,
    load_codec,
)
from node.services.errors import ServiceError
from node.services.feed_items import (
    Item,
    ItemMaker,
    Listing,
    PageContext,
    Sent,
    load_records,
    reuse,
)
from node.storage.models import (
    ChangeRow,
    FeedSentRow,
    ListingRow,
    MetaRow,
    OutboxRow,
    SignedSummaryRow,
)
from protocol.canonical import array_bytes, canonical_bytes, member_bytes
from protocol.errors import ErrorCode
from protocol.limits import MAX_ITEM_BYTES, PAGE_ENVELOPE_BYTES
from protocol.objects import feed_page_head
from protocol.signing import sign_object_bytes

if TYPE_CHECKING:
    from node.services.parts import NodeParts

logger = logging.getLogger(__name__)
SCAN_FACTOR = 4
OUTBOX_PREFIX = "o:"


class ObjectTooLarge(ServiceError):
    """An object that no feed page could carry: refused where it is made, never queued."""

    code = ErrorCode.OBJECT_TOO_LARGE


class FeedService:
    def __init__(self, rt: NodeParts) -> None:
        self.rt = rt
        self._codec: CursorCodec | None = None

    @property
    def engine(self) -> Engine:
        return self.rt.engine

    def codec(self) -> CursorCodec:
        if self._codec is None:
            self._codec = load_codec(self.engine, self.rt.node_id)
        return self._codec

    # -- expiry -----------------------------------------------------------------------
    def sweep_expired(self, now: int) -> int:
        """Log an ``expire`` change for listings that expired since the last sweep."""
        with Session(self.engine) as session, session.begin():
            rows = session.execute(
                select(ListingRow.id, ListingRow.version).where(
                    ListingRow.expires <= now,
                    ListingRow.withdrawn.is_(False),
                    ListingRow.expiry_logged.is_(False),
                )
            ).all()
            if not rows:
                return 0
            session.execute(
                insert(ChangeRow),
                [{"listing_id": i, "version": v, "kind": "expire", "at": now} for i, v in rows],
            )
            session.execute(
                update(ListingRow)
                .where(ListingRow.id.in_([i for i, _ in rows]))
                .values(expiry_logged=True)
            )
            return len(rows)

    # -- pages ------------------------------------------------------------------------
    def page(self, reader: str, after: str | None, limit: int) -> dict[str, Any]:
        return self.signed_page(reader, after, limit)[0]

    def signed_page(
        self, reader: str, after: str | None, limit: int
    ) -> tuple[dict[str, Any], bytes]:
        """The next page for ``reader``, parsed, and its canonical bytes (``page_bytes``;
        for callers that look into the page: the feed endpoint sends the bytes alone)."""
        body = self.page_bytes(reader, after, limit)
        page: dict[str, Any] = json.loads(body)
        return page, body

    def page_bytes(self, reader: str, after: str | None, limit: int) -> bytes:
        """The canonical bytes of the next signed page for ``reader``, which are what
        the feed endpoint sends, assembled from the items' own bytes (a stored summary is
        never parsed or serialised again). What the page gives the reader is remembered
        (``feed_sent``) and logged (``share_log``) in the page's transaction, before any
        of it is sent: a page the reader never got is served again."""
        now = self.rt.clock()
        self.sweep_expired(now)
        codec = self.codec()
        cursor = codec.position(reader, after) if after else None
        after_seq = cursor.seq if cursor else 0
        policy_version, compiled = self.rt.policy.compiled()
        view = summary_cache.reader_view(self.rt, reader, compiled, policy_version)
        ctx = PageContext(view=view, compiled=compiled, policy_version=policy_version, now=now)
        with Session(self.engine) as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                # Two pages for one reader at once wait for each other (SQLite's write
                # lock does this there): both would record the same listings.
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :k))"),
                    {"k": f":feed:{reader}"},
                )
            floor = history_floor(session)
            if cursor is not None and cursor.seq < floor and cursor.floor < floor:
                raise CursorExpired(
                    f"cursor is older than the history this node keeps (from {floor}); "
                    "resynchronise from the start (after=null)"
                )
            head = int(session.scalar(select(func.max(ChangeRow.seq))) or 0)
            if (
                cursor is not None
                and cursor.mark is not None
                and entry_mark(session.get(ChangeRow, cursor.seq)) != cursor.mark
            ):
                # This node's own cursor (the HMAC holds), but the entry it stopped at is
                # gone or another: the log was rewound (a database restored from a
                # backup), and changes made since could sit below the reader's cursor.
                raise CursorExpired(
                    f"cursor does not match this node's change log (now at {head}): "
                    "restored from a backup? resynchronise from the start (after=null)"
                )
            items, position, book = self._assemble(session, reader, ctx, after_seq, limit, head)
            self._store_sent(session, reader, book)
            share_log.insert_rows(session, reader, book.shared, now)
            more = position < head
            mark = entry_mark(session.get(ChangeRow, position)) if position else None
        page = feed_page_head(
            issuer=self.rt.node_id,
            audience=reader,
            ts=now,
            after=after,
            next=codec.encode(reader, position, floor, mark),
            head=head,
            position=position,
            more=more,
        )
        parts = member_bytes(page)
        parts["items"] = b'"items":' + array_bytes(items)
        return sign_object_bytes(page, self.rt.node_id, self.rt.keys.active, parts=parts)[1]

    def _assemble(
        self,
        session: Session,
        reader: str,
        ctx: PageContext,
        after_seq: int,
        limit: int,
        head: int,
    ) -> tuple[list[bytes], int, Bookkeeping]:
        """The items of the page after ``after_seq`` (their bytes), the position it ends
        at, and what the reader now holds. The change log is read in order of the cursor,
        ``limit`` entries at a time, each with its listing, stored summary and what the
        reader was given in the same query; at most ``SCAN_FACTOR * limit`` entries
        (listings that give this reader nothing make no items). Only the entries this
        reader may get are read (``_scan``): another member's outbox entries are passed
        over by the index, and a page that reaches the end of the log ends at its head
        (``head``), past them, as it did when it read them."""
        maker = ItemMaker(self.rt, ctx, {})
        book = Bookkeeping()
        items: list[bytes] = []
        position = scan_from = after_seq
        budget = limit * SCAN_FACTOR
        # Bytes left for items (each with its comma): a page stops before the item
        # that would take it over, but always carries at least one.
        room = self.rt.config.max_page_bytes - PAGE_ENVELOPE_BYTES
        end = False  # the end of the log reached
        full = False  # the page took all it may
        while budget > 0 and not end:
            chunk = min(limit, budget)
            entries = _scan(session, reader, ctx, scan_from, chunk)
            end = len(entries) < chunk
            if not entries:
                break
            budget -= len(entries)
            scan_from = entries[-1].seq
            outbox = self._outbox(session, reader, [e.listing_id for e in entries])
            missing = [  # rare: a usable summary that must be signed afresh (a retraction
                # went before it, or the reader held a consent it no longer carries)
                e.row.id
                for e in entries
                if e.row is not None
                and e.record is None
                and reuse(e.row, book.current(e.row.id, e.sent), e.stored, ctx) == "fresh"
            ]
            maker.records.update(load_records(session, missing))
            for e in entries:
                if e.listing_id.startswith(OUTBOX_PREFIX):
                    data = outbox.get(e.listing_id, b"")
                    if len(data) > MAX_ITEM_BYTES:
                        # Queued before queues refused such objects: no reader could take it.
                        logger.warning(
                            "feed for %s: dropped %s (%d bytes)", reader, e.listing_id, len(data)
                        )
                    elif data:
                        if items and (len(items) >= limit or len(data) + 1 > room):
                            full = True
                            break
                        items.append(data)
                        room -= len(data) + 1
                    position = e.seq
                    continue
                if e.row is None:  # a listing gone from the table: nothing to say of it
                    position = e.seq
                    continue
                if e.record is not None:  # parsed only for an item made now
                    maker.records[e.row.id] = json.loads(e.record)
                sent = book.current(e.row.id, e.sent)
                produced = maker.items(e.row, sent, e.stored)
                size = sum(len(item.data) + 1 for item in produced)
                if items and (len(items) + len(produced) > limit or size > room):
                    full = True
                    break
                items.extend(item.data for item in produced)
                room -= size
                book.note(e.row, sent, produced)
                position = e.seq
                if len(items) >= limit:
                    full = True
                    break
            if full:
                break
        if end and not full:
            # Every entry up to the head that this reader may get is in the page; what is
            # left below the head is other members' (or superseded entries).
            position = max(position, head)
        # Signed now: kept for the next pages (the last signing of a listing, should it
        # have come twice).
        made = {(r["reader"], r["listing_id"]): r for r in maker.made}
        summary_cache.save(session, made.values())
        return items, position, book

    @staticmethod
    def _outbox(session: Session, reader: str, ids: list[str]) -> dict[str, bytes]:
        """The canonical bytes of this reader's outbox objects among the scanned entries
        (``_outbox_bytes``)."""
        wanted = [int(i.removeprefix(OUTBOX_PREFIX)) for i in ids if i.startswith(OUTBOX_PREFIX)]
        if not wanted:
            return {}
        stmt = select(OutboxRow.id, OutboxRow.obj).where(
            OutboxRow.id.in_(wanted), OutboxRow.reader == reader
        )
        return {
            f"{OUTBOX_PREFIX}{oid}": _outbox_bytes(obj)
            for oid, obj in session.connection().execute(stmt)
        }

    @staticmethod
    def _store_sent(session: Session, reader: str, book: Bookkeeping) -> None:
        """Write the page's ``feed_sent`` changes in two statements, not one per item."""
        table = FeedSentRow.__table__
        assert isinstance(table, Table)
        new, changed = [], []
        for is_new, sent in book.sent.values():
            values = {"version": sent.version, "consent": sent.consent, "retracted": sent.retracted}
            if is_new:
                new.append({"reader": reader, "listing_id": sent.listing_id, **values})
            else:
                changed.append({"lid": sent.listing_id, **values})
        if new:  # Core, not the ORM's bulk path (which costs more than the insert itself)
            session.connection().execute(table.insert(), new)
        if changed:
            session.connection().execute(
                table.update()
                .where(table.c.reader == reader, table.c.listing_id == bindparam("lid"))
                .values(
                    version=bindparam("version"),
                    consent=bindparam("consent"),
                    retracted=bindparam("retracted"),
                ),
                changed,
            )

    # -- history ----------------------------------------------------------------------
    def compact(self, before_seq: int) -> int:
        """Drop change entries below ``before_seq`` that a newer entry supersedes.

        Cursors issued before, pointing below ``before_seq``, then get 410 and
        resynchronise from the start (cursors issued during that resync are good).
        """
        newer = aliased(ChangeRow)
        with Session(self.engine) as session, session.begin():
            superseded = select(ChangeRow.seq).where(
                ChangeRow.seq < before_seq,
                select(newer.seq)
                .where(newer.listing_id == ChangeRow.listing_id, newer.seq > ChangeRow.seq)
                .exists(),
            )
            seqs = [int(s) for s in session.scalars(superseded)]
            if seqs:
                session.execute(delete(ChangeRow).where(ChangeRow.seq.in_(seqs)))
            floor = session.get(MetaRow, "feed_floor")
            if floor is None:
                session.add(MetaRow(key="feed_floor", value=str(before_seq)))
            else:
                floor.value = str(max(int(floor.value), before_seq))
            return len(seqs)


class Entry(NamedTuple):
    """One change-log entry of a page, with what the page needs to answer it: the listing
    (None for an outbox entry), what the reader was given of it, its stored summary when
    that still holds (``usable``), and the listing's record when it may have to be
    evaluated now (None when the stored summary answers)."""

    seq: int
    listing_id: str
    row: Listing | None
    sent: Sent | None
    stored: summary_cache.Stored | None
    record: str | None


def _picked(reader: Any, after_seq: Any, count: Any) -> Any:
    """The seqs of the next ``count`` entries after ``after_seq`` that ``reader`` may get:
    the next ``count`` listings' entries (``reader`` NULL) and the next ``count`` of its
    own outbox entries, each a range of the index (reader, seq), the newest entry of each
    id only (an outbox id can come again: SQLite gives a deleted last row's id to the next
    row). Other members' outbox entries are never read, however many there are."""
    c, newer = aliased(ChangeRow), aliased(ChangeRow)
    latest = select(func.max(newer.seq)).where(newer.listing_id == c.listing_id).scalar_subquery()
    listings = (
        select(c.seq)
        .where(c.reader.is_(None), c.seq > after_seq, c.seq == latest)
        .order_by(c.seq)
        .limit(count)
        .subquery()
    )
    own = (
        select(c.seq)
        .where(c.reader == reader, c.seq > after_seq, c.seq == latest)
        .order_by(c.seq)
        .limit(count)
        .subquery()
    )
    return union_all(select(listings.c.seq), select(own.c.seq)).subquery()


@functools.cache
def _scan_statement() -> Any:
    """``_scan``'s statement, built once (its values are bound parameters: reader,
    after_seq, count, digest, now): building it is most of an idle page's scan."""
    c, lst, s, f = ChangeRow, ListingRow, SignedSummaryRow, FeedSentRow
    reader: Any = bindparam("reader", type_=String(32))
    picked = _picked(reader, bindparam("after_seq"), bindparam("count"))
    usable = and_(
        s.version == lst.version,
        s.content_sha256 == lst.content_sha256,
        s.digest == bindparam("digest"),
    )
    answers = and_(usable, lst.withdrawn.is_(False), lst.expires > bindparam("now"))
    return (
        select(
            c.seq,
            c.listing_id,
            lst.id,
            lst.category,
            lst.version,
            lst.withdrawn,
            lst.expires,
            lst.content_sha256,
            f.listing_id,
            f.version,
            f.consent,
            f.retracted,
            case((usable, True), else_=False),
            s.consent,
            s.code,
            case((usable, s.body), else_=None),
            case((answers, None), else_=lst.record),
        )
        .select_from(picked)
        .join(c, c.seq == picked.c.seq)
        .outerjoin(lst, lst.id == c.listing_id)
        .outerjoin(s, and_(s.reader == reader, s.listing_id == c.listing_id))
        .outerjoin(f, and_(f.reader == reader, f.listing_id == c.listing_id))
        .order_by(c.seq)
        .limit(bindparam("count"))
    )


def _scan(
    session: Session, reader: str, ctx: PageContext, after_seq: int, count: int
) -> list[Entry]:
    """The next ``count`` entries after ``after_seq`` that ``reader`` may get
    (``_picked``: the newest of each listing, and its own outbox entries), in the order
    of the change log's key (the feed cursor), joined to the listing, the reader's stored
    summary and its ``feed_sent`` row by primary keys. A stored body comes back only when
    it is usable, and a record only when no usable stored summary answers for a live
    listing: nothing is read that the page will not use."""
    params = {
        "reader": reader,
        "after_seq": after_seq,
        "count": count,
        "digest": ctx.view.digest,
        "now": ctx.now,
    }
    out: list[Entry] = []
    digest = ctx.view.digest
    for (
        seq,
        lid,
        row_id,
        category,
        version,
        withdrawn,
        expires,
        sha,
        sent_id,
        sent_version,
        sent_consent,
        sent_retracted,
        is_usable,
        s_consent,
        s_code,
        body,
        record,
    ) in session.connection().execute(_scan_statement(), params):  # Core: no ORM rows
        row = (
            Listing(row_id, category, int(version), bool(withdrawn), int(expires), sha)
            if row_id is not None
            else None
        )
        sent = (
            Sent(sent_id, int(sent_version), bool(sent_consent), bool(sent_retracted))
            if sent_id is not None
            else None
        )
        stored = (
            summary_cache.Stored(int(version), sha, digest, bool(s_consent), s_code, body)
            if is_usable
            else None
        )
        out.append(Entry(int(seq), str(lid), row, sent, stored, record))
    return out


@dataclass
class Bookkeeping:
    """What one page gives its reader, for ``feed_sent`` and ``share_log``: per listing,
    (whether the reader had no row, the row's new values), and the share-log entries
    (listing, version, kind) that say something new: what the reader last held of a
    listing is its ``feed_sent`` row, so nothing else is read to tell what is new."""

    sent: dict[str, tuple[bool, Sent]] = field(default_factory=dict)
    shared: list[tuple[str, int, str]] = field(default_factory=list)

    def current(self, lid: str, sent: Sent | None) -> Sent | None:
        """What the reader holds of ``lid``, with what this page gave it already (on
        PostgreSQL a listing changed during the page can come back in a later scan)."""
        noted = self.sent.get(lid)
        return sent if noted is None else noted[1]

    def note(self, row: Listing, sent: Sent | None, produced: list[Item]) -> None:
        """Note what the reader now holds of ``row`` (``sent``: what it held before)."""
        if not produced:
            return
        held = share_log.held(sent.version, sent.retracted) if sent is not None else None
        for item in produced:
            assert item.kind is not None
            if (row.version, item.kind) != held:
                self.shared.append((row.id, row.version, item.kind))
                held = (row.version, item.kind)
        last = produced[-1]
        retracted = last.kind != share_log.SUMMARY
        now = Sent(row.id, row.version, last.consent and not retracted, retracted)
        first = self.sent.get(row.id)
        if first is None and sent == now:
            return  # the reader's row says this already (a page served again)
        self.sent[row.id] = (first[0] if first is not None else sent is None, now)


def _outbox_bytes(text: str) -> bytes:
    """An outbox row's canonical bytes: its text as stored, which ``post_to_outbox``
    writes in canonical JSON, so a page carries it without parsing and serialising it
    again (a match notice's scores are floats, off ``canonical_bytes``'s fast path).
    A row queued by an older version holds ``json.dumps`` text, which puts ``": `` after
    every member name; canonical JSON has that only inside a string. Such text is made
    canonical here (so is, needlessly, a canonical one with it in a string: slower, not
    wrong)."""
    if '": ' in text:
        return canonical_bytes(json.loads(text))
    return text.encode("utf-8")


def post_to_outbox(session: Session, reader: str, obj: dict[str, Any], now: int) -> int:
    """Queue a signed object for ``reader``; it goes out in order with the feed.

    ObjectTooLarge if it is larger than a feed item may be (``MAX_ITEM_BYTES``): the
    caller's transaction then fails, and nothing of it is queued."""
    return post_many_to_outbox(session, [(reader, obj)], now)[0]


def post_many_to_outbox(
    session: Session, items: Sequence[tuple[str, dict[str, Any]]], now: int
) -> list[int]:
    """Queue signed objects, each (reader, object), in this order; their outbox ids.
    One insert each for the outbox rows, their change log entries and the notice index,
    whatever their number (a re-match queues thousands). ObjectTooLarge as
    ``post_to_outbox``, before anything is written."""
    rows: list[dict[str, Any]] = []
    for reader, obj in items:
        data = canonical_bytes(obj)
        if len(data) > MAX_ITEM_BYTES:
            raise ObjectTooLarge(
                f"{obj.get('type', 'object')} for {reader} is {len(data)} bytes; a feed item "
                f"may be at most {MAX_ITEM_BYTES} bytes"
            )
        # Stored as the bytes the feed sends (canonical JSON is JSON: readers parse it alike).
        rows.append(
            {"reader": reader, "type": str(obj["type"]), "created": now, "obj": data.decode()}
        )
    if not rows:
        return []
    ids = list(
        session.scalars(
            insert(OutboxRow).returning(OutboxRow.id, sort_by_parameter_order=True), rows
        )
    )
    session.execute(
        insert(ChangeRow),
        [
            {
                "listing_id": f"{OUTBOX_PREFIX}{outbox_id}",
                "version": 1,
                "kind": "outbox",
                "at": now,
                "reader": reader,
            }
            for outbox_id, (reader, _) in zip(ids, items, strict=True)
        ],
    )
    # A notice naming a listing: the EoI gate's index.
    note_queued(session, ((i, reader, obj) for i, (reader, obj) in zip(ids, items, strict=True)))
    return ids
