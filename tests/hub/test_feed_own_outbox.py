"""A member's feed page reads the listings' entries and its own outbox entries only: the
change log is shared, and on a hub most of it is other members' match notices and custody
receipts (at fifty members, 49 of every 50). Each entry names its reader
(``changes.reader``) and a page reads by the index (reader, seq), so what a page reads
does not grow with the other members' notices; its cursor is still a position in the
shared log, and pages stay gap-free and in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from node.services.feed import post_to_outbox
from tests.federation.network import NodeFactory, load_records
from tests.federation.rows_read import rows_read
from tests.node.sample import sample_records
from tests.nodes import RunningNode

OTHERS = [f"m{i:02d}" for i in range(49)]


def queue(hub: RunningNode, reader: str, n: int, tag: str) -> list[dict[str, Any]]:
    rt = hub.runtime
    objs = [{"type": "match_notice", "audience": reader, "tag": tag, "n": i} for i in range(n)]
    with Session(rt.engine) as session, session.begin():
        for obj in objs:
            post_to_outbox(session, reader, obj, rt.clock())
    return objs


def queue_for_others(hub: RunningNode, each: int, tag: str) -> None:
    for reader in OTHERS:
        queue(hub, reader, each, tag)


def pull(hub: RunningNode, reader: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Every page for ``reader`` until ``more`` is false: its items and last cursor."""
    items: list[dict[str, Any]] = []
    after = None
    for _ in range(1000):
        page = hub.runtime.feed.page(reader, after, limit)
        items.extend(page["items"])
        after = page["next"]
        if not page["more"]:
            return items, after
    raise AssertionError("the feed never ended")


async def test_a_page_reads_no_more_rows_with_other_members_notices(
    node_factory: NodeFactory,
) -> None:
    hub = await node_factory("cn", is_hub=True, sync_interval_seconds=3600.0)
    rt = hub.runtime
    load_records(hub, sample_records("cn")[:3])
    queue_for_others(hub, 2, "before")
    own = queue(hub, "th", 5, "own")
    rt.feed.page("th", None, 100)  # the node's first page loads its cursor key: not counted
    with rows_read(rt.engine) as few:
        first = rt.feed.page("th", None, 100)
    notices = [i for i in first["items"] if i.get("type") == "match_notice"]
    assert notices == own and not first["more"]

    queue_for_others(hub, 40, "after")  # 1,960 more entries, none th's
    with rows_read(rt.engine) as many:
        again = rt.feed.page("th", None, 100)
    assert again["items"] == first["items"] and not again["more"]
    # The same statements, each handed the same rows (the scan: 3 listings and th's 5).
    assert [n for n, _ in many.per_statement()] == [n for n, _ in few.per_statement()]
    # The page still ends at the head of the shared log, past the others' entries.
    assert again["position"] == again["head"] > first["head"]
    # Read from its cursor: nothing new for th, however many entries the others got.
    with rows_read(rt.engine) as idle:
        empty = rt.feed.page("th", again["next"], 100)
    assert empty["items"] == [] and not empty["more"]
    assert idle.rows < 30, idle.per_statement()


async def test_pages_between_other_members_entries_are_gap_free_and_in_order(
    node_factory: NodeFactory,
) -> None:
    """th's notices interleaved with the other members' and the hub's listings, pulled
    three items a page: each exactly once, in the order queued; a page served again from
    the same cursor is the same page; a notice queued after the pull comes next."""
    hub = await node_factory("cn", is_hub=True, sync_interval_seconds=3600.0)
    rt = hub.runtime
    records = sample_records("cn")
    mine: list[dict[str, Any]] = []
    for round_ in range(4):
        load_records(hub, records[round_ : round_ + 1])
        queue_for_others(hub, 1, f"r{round_}")
        mine += queue(hub, "th", 3, f"r{round_}")
    whole, _ = pull(hub, "th", 1000)
    paged, cursor = pull(hub, "th", 3)
    assert paged == whole
    assert [i for i in paged if i.get("type") == "match_notice"] == mine
    assert any(i.get("type") != "match_notice" for i in paged)  # the listings among them

    first = rt.feed.page("th", None, 3)
    assert rt.feed.page("th", None, 3)["items"] == first["items"]  # served again alike

    queue_for_others(hub, 1, "late")
    late = queue(hub, "th", 1, "late")
    page = rt.feed.page("th", cursor, 3)
    assert page["items"] == late and not page["more"]
    # vn, another member, gets its own and none of th's.
    theirs, _ = pull(hub, "m07", 2)
    assert [i["tag"] for i in theirs if i.get("type") == "match_notice"] == [
        "r0",
        "r1",
        "r2",
        "r3",
        "late",
    ]
