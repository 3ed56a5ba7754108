"""Feed pages assembled from stored bytes (node.services.feed): a page of stored summaries
is read in one range query over the change log, with no IN-lists; pages of any size give
each listing once; what the page gives is remembered (``feed_sent``) and logged
(``share_log``) in its transaction, from ``feed_sent`` alone: every time a listing
changes hands, and never again for a page served again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from node.services.feed import Bookkeeping
from node.services.feed_items import Item, Listing, Sent
from node.services.share_log import SUMMARY, WITHDRAWAL
from node.services.summary_cache import Presigner
from node.storage.models import FeedSentRow, ShareLogRow
from tests.federation.clocks import HeldClock
from tests.federation.network import NodeFactory, allowed_for, load_records
from tests.federation.test_summary_cache import NARROW
from tests.node.sample import sample_records
from tests.nodes import RunningNode

WIDE = (
    NARROW
    + """\
  - audience: cn
    category: tech_request
    visibility: [public, network]
    fields: [title, keywords, expires, country]
"""
)


async def owner(node_factory: NodeFactory, clock: HeldClock | None = None) -> RunningNode:
    vn = await node_factory("vn", hub_id="cn", clock=clock or HeldClock())
    load_records(vn, sample_records("vn"))
    return vn


def walk(node: RunningNode, limit: int, reader: str = "cn") -> list[list[dict[str, Any]]]:
    """``reader``'s whole feed from the start, ``limit`` items a page: the pages' items."""
    rt = node.runtime
    pages: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        page = json.loads(rt.feed.page_bytes(reader, after, limit))
        assert len(page["items"]) <= limit
        pages.append(page["items"])
        after = page["next"]
        if not page["more"]:
            return pages


def share_rows(node: RunningNode) -> list[tuple[str, str, int, str]]:
    with Session(node.runtime.engine) as session:
        stmt = select(
            ShareLogRow.reader, ShareLogRow.listing_id, ShareLogRow.version, ShareLogRow.kind
        ).order_by(ShareLogRow.id)
        return [(r, lid, v, k) for r, lid, v, k in session.execute(stmt)]


def sent_rows(node: RunningNode) -> dict[str, tuple[int, bool, bool]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(FeedSentRow).where(FeedSentRow.reader == "cn"))
        return {r.listing_id: (r.version, r.consent, r.retracted) for r in rows}


@contextmanager
def statements(node: RunningNode) -> Iterator[list[str]]:
    """The SQL statements the node's engine runs inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, stmt: str, *_: Any) -> None:
        seen.append(stmt)

    engine = node.runtime.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def ids_of(items: list[dict[str, Any]]) -> list[str]:
    return [o["listing"]["id"] if o["type"] == "listing" else o["listing_id"] for o in items]


async def test_a_page_of_stored_summaries_is_one_range_query(node_factory: NodeFactory) -> None:
    vn = await owner(node_factory)
    Presigner(vn.runtime).run_sync()
    vn.runtime.feed.sweep_expired(vn.runtime.clock())  # the expired sample listings, logged
    allowed = allowed_for(vn, "cn")
    assert len(allowed) > 5
    with statements(vn) as seen:
        (items,) = walk(vn, 1000)
    assert sorted(ids_of(items)) == sorted(allowed)
    reads = [s for s in seen if "signed_summaries" in s]
    assert len(reads) == 1, reads  # the change log, joined to what the page needs
    assert "changes" in reads[0] and "feed_sent" in reads[0]
    assert not [s for s in seen if " IN (" in s.upper()], seen  # no IN-lists of listings
    writes = [s.split("(")[0].strip() for s in seen if s.startswith(("INSERT", "UPDATE"))]
    assert sorted(writes) == ["INSERT INTO feed_sent", "INSERT INTO meta", "INSERT INTO share_log"]
    # Served again: the same one read, and nothing new to write.
    with statements(vn) as again:
        walk(vn, 1000)
    assert len([s for s in again if "signed_summaries" in s]) == 1
    assert not [s for s in again if s.startswith(("INSERT", "UPDATE", "DELETE"))], again


async def test_pages_of_any_size_give_each_listing_once(node_factory: NodeFactory) -> None:
    """Most listings give this reader nothing: a page reads on past them, a few entries at
    a time, and never repeats or skips one."""
    vn = await owner(node_factory)
    vn.runtime.policy.apply(NARROW, "test")
    allowed = sorted(allowed_for(vn, "cn"))
    assert 1 < len(allowed) < len(sample_records("vn")) // 2
    for limit in (1, 2, 3, 1000):
        pages = walk(vn, limit)
        assert sorted(ids_of([o for p in pages for o in p])) == allowed, limit
    # Logged once each, though served four times; feed_sent holds each, not retracted.
    assert sorted(share_rows(vn)) == sorted(
        ("cn", lid, allowed_for(vn, "cn")[lid]["version"], SUMMARY) for lid in allowed
    )
    assert set(sent_rows(vn)) == set(allowed)


async def test_the_share_log_follows_each_change_of_hands(node_factory: NodeFactory) -> None:
    clock = HeldClock()
    vn = await owner(node_factory, clock)
    rt = vn.runtime
    rt.policy.apply(WIDE, "test")
    Presigner(rt).run_sync()
    walk(vn, 1000)
    wide = allowed_for(vn, "cn")
    request = next(lid for lid, v in wide.items() if v["category"] == "tech_request")
    version = wide[request]["version"]
    start = len(share_rows(vn))
    assert start == len(wide)

    # No longer shared: one withdrawal; shared again (new bytes for the new view, though
    # the listing is the same version): one summary, the reader holds it again.
    clock.now += 1000
    rt.policy.apply(NARROW, "test")
    (items,) = walk(vn, 1000)
    assert request in ids_of(items)
    clock.now += 1000
    rt.policy.apply(WIDE, "test")
    (again,) = walk(vn, 1000)
    (summary,) = [o for o in again if o["type"] == "listing" and o["listing"]["id"] == request]
    assert summary["ts"] == clock.now  # signed for the new view, not the stored bytes
    assert sent_rows(vn)[request] == (version, wide[request]["rights"]["name_logo_consent"], False)
    mine = [r for r in share_rows(vn)[start:] if r[1] == request]
    assert mine == [("cn", request, version, WITHDRAWAL), ("cn", request, version, SUMMARY)]

    # Name consent taken back: a retraction, then the summary without the name.
    named = next(
        lid
        for lid, v in allowed_for(vn, "cn").items()
        if v["rights"]["name_logo_consent"] and sent_rows(vn)[lid][1]
    )
    record = rt.listings.get(named).record
    clock.now += 1000
    rt.listings.update(
        named, {**record, "rights": {**record["rights"], "name_logo_consent": False}}
    )
    before = len(share_rows(vn))
    (items,) = walk(vn, 1000)
    kinds = [o["type"] for o in items if named in ids_of([o])]
    assert kinds == ["retraction", "listing"]
    new_version = rt.listings.get(named).record["version"]
    assert share_rows(vn)[before:] == [
        ("cn", named, new_version, WITHDRAWAL),
        ("cn", named, new_version, SUMMARY),
    ]
    assert sent_rows(vn)[named] == (new_version, False, False)
    # Served again from the start: nothing new to log.
    total = len(share_rows(vn))
    walk(vn, 2)
    assert len(share_rows(vn)) == total


def test_a_listing_met_twice_in_one_page_is_noted_once() -> None:
    """On PostgreSQL a listing changed while a page is made can come back in the page's
    next scan: the page then answers it from what it gave already, and writes one
    ``feed_sent`` row (an insert twice would fail) with the log of both."""
    book = Bookkeeping()
    row = Listing("vn-1", "tech_offer", 3, False, 2**40, "sha")
    book.note(row, None, [Item(b"{}", SUMMARY, True)])
    assert book.current("vn-1", None) == Sent("vn-1", 3, True, False)
    withdrawn = row._replace(version=4, withdrawn=True)
    book.note(withdrawn, book.current("vn-1", None), [Item(b"{}", WITHDRAWAL)])
    assert book.sent == {"vn-1": (True, Sent("vn-1", 4, False, True))}
    assert book.shared == [("vn-1", 3, SUMMARY), ("vn-1", 4, WITHDRAWAL)]
    # A row the reader had already: left alone when the page says what it says, updated
    # (not inserted) when it says more; nothing logged for what the reader holds.
    held = Sent("vn-2", 2, False, False)
    listing = Listing("vn-2", "expert", 2, False, 2**40, "s2")
    book.note(listing, held, [Item(b"{}", SUMMARY)])
    assert "vn-2" not in book.sent
    book.note(listing, held, [Item(b"{}", SUMMARY, True)])
    assert book.sent["vn-2"] == (False, Sent("vn-2", 2, True, False))
    assert book.shared[2:] == []
