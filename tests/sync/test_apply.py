"""The hub's apply of a page (``RemoteStore.apply_page``): the ordering rules in bulk, what
the result says changed, the search rows and page hooks in the same transaction, and the
observers told what each pull changed."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from node.services.remote_store import AppliedPage, RemoteStore
from node.storage.models import (
    OutboxRow,
    QuarantineRow,
    RemoteListingRow,
    RemoteTombstoneRow,
    SearchDocRow,
)
from protocol.hub_objects import CustodyReceipt, build
from sync.interfaces import ApplyResult, Changes, CursorMoved, VerifiedItem
from tests.federation.network import NodeFactory, allowed_for, held_by, start_network
from tests.nodes import RunningNode

ORIGIN = "vn"
T = 1_800_000_000_000


def _item(obj: dict[str, Any]) -> VerifiedItem:
    return VerifiedItem(obj, json.dumps(obj, sort_keys=True).encode(), "ed25519:1")


def listing(
    lid: str, version: int, ts: int, *, policy: int = 1, public: bool = False
) -> VerifiedItem:
    body: dict[str, Any] = {
        "id": lid,
        "version": version,
        "category": "tech_offer",
        "updated": ts,
        "expires": T * 2,
        "fields": {"title": {"en": f"Solar dryer {lid}"}},
    }
    if public:
        body["public"] = True
        body["public_view"] = {"fields": {"title": {"en": f"Solar dryer {lid}"}}, "rights": {}}
    return _item(
        {
            "type": "listing",
            "issuer": ORIGIN,
            "ts": ts,
            "policy": {"version": policy},
            "listing": body,
        }
    )


def retraction(lid: str, version: int, ts: int, reason: str = "withdrawn") -> VerifiedItem:
    return _item(
        {
            "type": "retraction",
            "issuer": ORIGIN,
            "listing_id": lid,
            "version": version,
            "ts": ts,
            "reason": reason,
        }
    )


class Pages:
    """A store with a hook recording what each page left held."""

    def __init__(self, hub: RunningNode) -> None:
        self.engine = hub.runtime.engine
        self.seen: list[AppliedPage] = []
        self.store = RemoteStore(self.engine, [lambda _s, page: self.seen.append(page)])
        self.n = 0

    def apply(self, *items: VerifiedItem) -> ApplyResult:
        self.n += 1
        after = f"c{self.n - 1}" if self.n > 1 else None
        return self.store.apply_page(
            ORIGIN,
            items,
            [],
            after=after,
            next_cursor=f"c{self.n}",
            head=99,
            position=self.n,
            now=T,
        )

    def held(self) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(
                select(RemoteListingRow.listing_id, RemoteListingRow.version).where(
                    RemoteListingRow.origin == ORIGIN
                )
            )
            return {str(lid): int(v) for lid, v in rows}

    def tombs(self) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(
                select(RemoteTombstoneRow.listing_id, RemoteTombstoneRow.version).where(
                    RemoteTombstoneRow.origin == ORIGIN
                )
            )
            return {str(lid): int(v) for lid, v in rows}

    def searched(self) -> set[str]:
        with Session(self.engine) as s:
            q = select(SearchDocRow.listing_id).where(SearchDocRow.owner == ORIGIN)
            return set(s.scalars(q))

    def quarantined(self) -> list[str]:
        with Session(self.engine) as s:
            return list(s.scalars(select(QuarantineRow.code).where(QuarantineRow.origin == ORIGIN)))


async def test_a_page_names_what_it_added_updated_and_removed(node_factory: NodeFactory) -> None:
    pages = Pages(await node_factory("cn", is_hub=True))
    # New listings, one retracted in the same page, and a retraction of one never held.
    first = pages.apply(
        listing("a", 1, T),
        listing("b", 1, T, public=True),
        listing("c", 1, T),
        retraction("c", 1, T + 1),
        retraction("d", 1, T + 1),
    )
    assert (first.added, first.updated, first.removed) == (["a", "b"], [], [])
    assert (first.applied, first.retracted, first.rejected) == (3, 1, [])
    assert pages.held() == {"a": 1, "b": 1}
    assert pages.tombs() == {"c": 1, "d": 1}
    assert pages.searched() == {"b"}
    assert pages.seen[-1].held == {
        "a": (1, pages.seen[-1].held["a"][1]),  # type: ignore[index]
        "b": (1, pages.seen[-1].held["b"][1]),  # type: ignore[index]
        "c": None,
        "d": None,
    }

    # An update (then its duplicate), a purge, a stale copy, a newer version after a purge.
    second = pages.apply(
        listing("a", 2, T + 2),
        retraction("b", 1, T + 2),
        listing("a", 2, T + 2),
        listing("c", 1, T + 3),
        listing("d", 2, T + 3),
    )
    assert (second.added, second.updated, second.removed) == (["d"], ["a"], ["b"])
    assert (second.duplicates, [r.code for r in second.rejected]) == (1, ["stale_version"])
    assert pages.held() == {"a": 2, "d": 2}
    assert pages.tombs() == {"b": 1, "c": 1}
    assert pages.searched() == set()
    assert pages.quarantined() == ["stale_version"]
    held = pages.seen[-1].held
    assert set(held) == {"a", "b", "c", "d"} and held["b"] is None and held["c"] is None
    with Session(pages.engine) as s:
        row = s.get(RemoteListingRow, (ORIGIN, "a"))
        assert row is not None and held["a"] == (2, row.bytes_sha256)
        assert json.loads(row.signed_bytes)["ts"] == T + 2

    # Withdrawn from sharing, then shared again at the same version: reopened.
    third = pages.apply(retraction("a", 2, T + 4, reason="not_shared"))
    assert (third.removed, third.retracted) == (["a"], 1)
    fourth = pages.apply(listing("a", 2, T + 5, public=True), listing("a", 2, T + 4, policy=9))
    assert (fourth.added, fourth.updated) == (["a"], [])
    assert [r.code for r in fourth.rejected] == ["stale_version"]  # older ts than held
    assert pages.held() == {"a": 2, "d": 2} and pages.searched() == {"a"}
    assert pages.store.peer_cursor(ORIGIN).cursor == "c4"


async def test_an_empty_page_moves_the_cursor_only(node_factory: NodeFactory) -> None:
    pages = Pages(await node_factory("cn", is_hub=True))
    result = pages.apply()
    assert (result.applied, result.added, result.rejected) == (0, [], [])
    assert pages.store.peer_cursor(ORIGIN).cursor == "c1"
    assert pages.held() == {} and pages.seen[-1].held == {}


async def test_a_page_begun_where_the_cursor_no_longer_is_is_not_applied(
    node_factory: NodeFactory,
) -> None:
    """Two hub workers pulled one member at once for 53-93 s after the database ended
    one's pull-lock session: each page was applied twice and its custody receipt sent
    twice. A page applies only where it began (the cursor it was asked after)."""
    pages = Pages(await node_factory("cn", is_hub=True))
    pages.apply(listing("a", 1, T))  # the cursor moves from none to c1
    with pytest.raises(CursorMoved, match="another process pulled it"):
        pages.store.apply_page(
            ORIGIN, [listing("b", 1, T)], [], after=None, next_cursor="c9", head=99,
            position=9, now=T,
        )  # fmt: skip
    assert pages.held() == {"a": 1} and len(pages.seen) == 1
    pages.apply(listing("b", 1, T))  # from c1, where the cursor is
    assert pages.held() == {"a": 1, "b": 1}


def test_changes_merge_keeps_an_added_listing_added() -> None:
    changes = Changes("vn")
    changes.merge(ApplyResult(added=["a", "b"], removed=["c"]))
    changes.merge(ApplyResult(updated=["a", "c"], removed=["b"]))
    assert changes.listings == {"a": "added", "b": "removed", "c": "updated"}
    assert changes.ids("removed") == ["b"] and bool(changes)
    assert not Changes("vn")


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.told: list[Changes] = []

    async def synced(self, changes: Changes) -> None:
        self.told.append(changes)
        if self.fail:
            raise RuntimeError("observer broke")


async def test_observers_are_told_what_each_pull_changed(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, [ORIGIN])
    hub, vn = net.hub, net.nodes[ORIGIN]
    broken, seen = Recorder(fail=True), Recorder()
    hub.sync.add_observer(broken)  # fails first: the next one is told all the same
    hub.sync.add_observer(seen)
    await hub.sync.sync_all()
    shared = sorted(allowed_for(vn, "cn"))
    assert len(seen.told) == 1 and seen.told[0].origin == ORIGIN
    assert sorted(seen.told[0].ids("added")) == shared
    assert len(broken.told) == 1

    changed, gone = shared[0], shared[1]
    record = vn.runtime.listings.get(changed).record
    vn.runtime.listings.update(changed, {**record, "summary": "A new summary."})
    vn.runtime.listings.withdraw(gone)
    await hub.sync.sync_all()
    assert seen.told[-1].listings == {changed: "updated", gone: "removed"}

    hub.sync.remove_observer(seen)
    await hub.sync.sync_all()  # nothing changed: nobody is told
    assert len(seen.told) == 2 and len(broken.told) == 2


async def test_custody_receipts_are_what_build_would_make(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, [ORIGIN])
    net.hub.sync.reader.page_size = 3
    runs = await net.hub.sync.sync_all()
    assert [r.error for r in runs] == [None] and runs[0].applied > 3
    with Session(net.hub.runtime.engine) as s:
        receipts = [
            json.loads(o)
            for o in s.scalars(select(OutboxRow.obj).where(OutboxRow.type == "custody_receipt"))
        ]
    assert len(receipts) >= 2
    held: set[str] = set()
    for receipt in receipts:
        fields = {k: v for k, v in receipt.items() if k != "signatures"}
        assert build(CustodyReceipt, **fields) == fields
        held.update(e["listing_id"] for e in receipt["held"])
    assert held == set(held_by(net.hub, ORIGIN))


async def test_a_pull_does_no_database_work_on_the_event_loop(node_factory: NodeFactory) -> None:
    """Every statement a node's database runs during its pulls (the hub's of a member; a
    member's of the hub's directory, the hub and other members) runs off the loop's
    thread."""
    net = await start_network(node_factory, [ORIGIN, "th"])
    net.hub.sync.reader.page_size = 4
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def check(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() == loop_thread:
            on_loop.append(statement)

    engines = [net.hub.runtime.engine, net.nodes[ORIGIN].runtime.engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", check)
    try:
        runs = await net.hub.sync.sync_all()
        assert len(runs) == 2 and all(r.error is None and r.applied for r in runs)
        await net.hub.sync.sync_peer(ORIGIN, force=False)
        member_runs = await net.nodes[ORIGIN].sync.sync_all()
        assert {r.peer for r in member_runs} == {"cn", "th"}
        assert all(r.error is None for r in member_runs), member_runs
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", check)
    assert on_loop == []
