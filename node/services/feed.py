"""The per-reader change feed a node serves (DESIGN 6, 8): signed pages of signed items.

Each page walks the change log after the reader's cursor, taking only the newest entry
of each listing, and turns it into what this reader may know: the current view (a signed
summary), a signed retraction when a listing it was given is withdrawn, expired, no longer
shared with it or lost its name consent, or nothing at all. ``feed_sent`` remembers what
each reader was given, so a reader never hears of a listing it never received.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from node.hub.notice_index import note_queued
from node.services import summary_cache
from node.services.cursors import (
    CursorCodec,
    CursorExpired,
    entry_mark,
    history_floor,
    load_codec,
)
from node.services.errors import ServiceError
from node.services.feed_items import ItemMaker, Listing, PageContext, Sent, load_records, reuse
from node.storage.models import ChangeRow, FeedSentRow, ListingRow, MetaRow, OutboxRow
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
        """The next page for ``reader`` and its canonical bytes, which are what the
        feed endpoint sends: each item is serialised once, for its own signature, the
        page's and the response."""
        now = self.rt.clock()
        self.sweep_expired(now)
        codec = self.codec()
        cursor = codec.position(reader, after) if after else None
        after_seq = cursor.seq if cursor else 0
        policy_version, compiled = self.rt.policy.compiled()
        view = summary_cache.reader_view(self.rt, reader, compiled, policy_version)
        with Session(self.engine) as session, session.begin():
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
            entries = self._latest_entries(session, after_seq, limit * SCAN_FACTOR)
            ids = [lid for _, lid in entries]
            # Plain rows (Core), not ORM objects: a page reads up to 4 * limit of each.
            rows = {
                r.id: r
                for r in session.execute(
                    select(
                        ListingRow.id,
                        ListingRow.category,
                        ListingRow.version,
                        ListingRow.withdrawn,
                        ListingRow.expires,
                        ListingRow.content_sha256,
                    ).where(ListingRow.id.in_(ids))
                )
            }
            sent = {
                r.listing_id: r
                for r in session.execute(
                    select(
                        FeedSentRow.listing_id, FeedSentRow.consent, FeedSentRow.retracted
                    ).where(FeedSentRow.reader == reader, FeedSentRow.listing_id.in_(ids))
                )
            }
            stored = summary_cache.load(session, reader, [i for i in ids if i in rows])
            ctx = PageContext(view=view, compiled=compiled, policy_version=policy_version, now=now)
            fresh = [
                lid
                for lid, row in rows.items()
                if reuse(row, sent.get(lid), stored.get(lid), ctx) == "fresh"
            ]
            maker = ItemMaker(self.rt, ctx, load_records(session, fresh))
            outbox = self._outbox(session, reader, ids)
            items: list[tuple[dict[str, Any], bytes]] = []
            remember: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
            position = after_seq
            # Bytes left for items (each with its comma): a page stops before the item
            # that would take it over, but always carries at least one.
            room = self.rt.config.max_page_bytes - PAGE_ENVELOPE_BYTES
            for seq, lid in entries:
                if lid.startswith(OUTBOX_PREFIX):
                    obj = outbox.get(lid)
                    data = canonical_bytes(obj) if obj is not None else b""
                    if len(data) > MAX_ITEM_BYTES:
                        # Queued before queues refused such objects: no reader could take it.
                        logger.warning("feed for %s: dropped %s (%d bytes)", reader, lid, len(data))
                    elif obj is not None:
                        if items and (len(items) >= limit or len(data) + 1 > room):
                            break
                        items.append((obj, data))
                        room -= len(data) + 1
                    position = seq
                    continue
                row = rows.get(lid)
                produced = maker.items(row, sent.get(lid), stored.get(lid)) if row else []
                size = sum(len(data) + 1 for _, data in produced)
                if items and (len(items) + len(produced) > limit or size > room):
                    break
                items.extend(produced)
                room -= size
                self._remember(remember, row, sent.get(lid), [obj for obj, _ in produced])
                position = seq
                if len(items) >= limit:
                    break
            self._store_sent(session, reader, remember)
            summary_cache.save(session, maker.made)  # signed now: kept for the next pages
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
        parts["items"] = b'"items":' + array_bytes(data for _, data in items)
        page["items"] = [obj for obj, _ in items]
        return sign_object_bytes(page, self.rt.node_id, self.rt.keys.active, parts=parts)

    @staticmethod
    def _outbox(session: Session, reader: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """This reader's outbox objects among the scanned entries."""
        wanted = [int(i.removeprefix(OUTBOX_PREFIX)) for i in ids if i.startswith(OUTBOX_PREFIX)]
        if not wanted:
            return {}
        stmt = select(OutboxRow).where(OutboxRow.id.in_(wanted), OutboxRow.reader == reader)
        return {f"{OUTBOX_PREFIX}{r.id}": json.loads(r.obj) for r in session.scalars(stmt)}

    @staticmethod
    def _latest_entries(session: Session, after_seq: int, scan: int) -> list[tuple[int, str]]:
        newer = aliased(ChangeRow)
        latest = (
            select(func.max(newer.seq))
            .where(newer.listing_id == ChangeRow.listing_id)
            .scalar_subquery()
        )
        stmt = (
            select(ChangeRow.seq, ChangeRow.listing_id)
            .where(ChangeRow.seq > after_seq, ChangeRow.seq == latest)
            .order_by(ChangeRow.seq)
            .limit(scan)
        )
        return [(int(s), str(lid)) for s, lid in session.execute(stmt)]

    @staticmethod
    def _remember(
        batch: tuple[list[dict[str, Any]], list[dict[str, Any]]],
        row: Listing | None,
        sent: Sent | None,
        produced: list[dict[str, Any]],
    ) -> None:
        """Note what the reader now holds of ``row``: (new rows, changed rows)."""
        if row is None or not produced:
            return
        last = produced[-1]
        if last["type"] == "listing":
            consent = bool(last["listing"]["rights"].get("name_logo_consent"))
            values = {"version": row.version, "consent": consent, "retracted": False}
        else:
            values = {"version": row.version, "consent": False, "retracted": True}
        batch[0 if sent is None else 1].append({"lid": row.id, **values})

    @staticmethod
    def _store_sent(
        session: Session, reader: str, batch: tuple[list[dict[str, Any]], list[dict[str, Any]]]
    ) -> None:
        """Write the page's ``feed_sent`` changes in two statements, not one per item."""
        new, changed = batch
        table = FeedSentRow.__table__
        assert isinstance(table, Table)
        if new:  # Core, not the ORM's bulk path (which costs more than the insert itself)
            session.connection().execute(
                table.insert(),
                [
                    {
                        "reader": reader,
                        "listing_id": v["lid"],
                        "version": v["version"],
                        "consent": v["consent"],
                        "retracted": v["retracted"],
                    }
                    for v in new
                ],
            )
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


def post_to_outbox(session: Session, reader: str, obj: dict[str, Any], now: int) -> int:
    """Queue a signed object for ``reader``; it goes out in order with the feed.

    ObjectTooLarge if it is larger than a feed item may be (``MAX_ITEM_BYTES``): the
    caller's transaction then fails, and nothing of it is queued."""
    size = len(canonical_bytes(obj))
    if size > MAX_ITEM_BYTES:
        raise ObjectTooLarge(
            f"{obj.get('type', 'object')} for {reader} is {size} bytes; a feed item may be "
            f"at most {MAX_ITEM_BYTES} bytes"
        )
    row = OutboxRow(reader=reader, type=str(obj["type"]), created=now, obj=json.dumps(obj))
    session.add(row)
    session.flush()
    session.execute(
        insert(ChangeRow),
        [{"listing_id": f"{OUTBOX_PREFIX}{row.id}", "version": 1, "kind": "outbox", "at": now}],
    )
    note_queued(session, row.id, reader, obj)  # a notice naming a listing: the EoI gate's index
    return row.id
