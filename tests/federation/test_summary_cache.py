"""Stored signed summaries (node.services.summary_cache): feed pages assembled from them
verify at the reader and carry what a fresh signing would; a change of policy or listing
never serves a stale one; a withdrawal still arrives; the store stays one row per reader
and listing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from node.services import summary_cache
from node.services.summary_cache import Presigner
from node.storage.models import ChangeRow, FeedSentRow, ListingRow, SignedSummaryRow
from sync.interfaces import RunRecord
from tests.federation.clocks import HeldClock
from tests.federation.network import (
    Network,
    NodeFactory,
    add_member,
    allowed_for,
    held_by,
    hub_key,
    load_records,
)
from tests.federation.rounds import assert_hub_holds_allowed, wait_until
from tests.federation.rows_read import rows_read
from tests.node.sample import sample_records
from tests.nodes import RunningNode

OWNER = "vn"
NARROW = """\
groups:
  mou: [cn, th, la, kh, mm, vn, bn, id]
rules:
  - audience: cn
    category: tech_offer
    visibility: [public, network]
    fields: [title, keywords, expires, country]
"""


async def owner_network(node_factory: NodeFactory, clock: HeldClock) -> Network:
    hub = await node_factory("cn", is_hub=True)
    vn = await node_factory(OWNER, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn", clock=clock)
    add_member(hub, vn)
    net = Network(hub, {OWNER: vn})
    load_records(vn, sample_records(OWNER))
    return net


async def sync_round(net: Network, owner: str = OWNER) -> RunRecord:
    """One pull of ``owner`` by the hub; again while another process holds the peer's
    lock (another test's hub on a shared PostgreSQL pulls a node of the same name)."""
    deadline = time.monotonic() + 60
    while (run := await net.hub.sync.sync_peer(owner, force=True)) is None:
        assert time.monotonic() < deadline, f"the pull of {owner} never got its lock"
        await asyncio.sleep(0.05)
    return run


def stored_rows(node: RunningNode, reader: str = "cn") -> dict[str, SignedSummaryRow]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(SignedSummaryRow).where(SignedSummaryRow.reader == reader))
        return {r.listing_id: r for r in rows}


def count_rows(node: RunningNode) -> int:
    with Session(node.runtime.engine) as session:
        return int(session.scalar(select(func.count()).select_from(SignedSummaryRow)) or 0)


def live_listings(node: RunningNode) -> int:
    now = node.runtime.clock()
    with Session(node.runtime.engine) as session:
        stmt = select(func.count()).where(ListingRow.withdrawn.is_(False), ListingRow.expires > now)
        return int(session.scalar(stmt) or 0)


def bare(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("ts", "signatures")}


def page_items(node: RunningNode, reader: str = "cn") -> list[dict[str, Any]]:
    """Every item of ``reader``'s feed from the start, as sent."""
    page, body = node.runtime.feed.signed_page(reader, None, 1000)
    assert not page["more"]
    items: list[dict[str, Any]] = json.loads(body)["items"]
    assert items == page["items"]
    return items


async def test_a_page_from_stored_summaries_verifies_and_equals_a_fresh_signing(
    node_factory: NodeFactory,
) -> None:
    clock = HeldClock()
    net = await owner_network(node_factory, clock)
    vn = net.nodes[OWNER]
    signed_at = clock.now
    assert Presigner(vn.runtime).run_sync() == live_listings(vn)
    stored = stored_rows(vn)
    allowed = allowed_for(vn, "cn")
    assert {lid for lid, r in stored.items() if r.body is not None} == set(allowed)
    clock.now += 60_000  # a page much later than the signing
    items = page_items(vn)
    assert sorted(o["listing"]["id"] for o in items) == sorted(allowed)
    for obj in items:  # the stored bytes themselves, signed then
        assert obj["ts"] == signed_at
        row = stored[obj["listing"]["id"]]
        assert row.body is not None and json.loads(row.body) == obj
    # What a fresh signing now would carry: the same, apart from ts and signature.
    _, compiled = vn.runtime.policy.compiled()
    view = summary_cache.reader_view(vn.runtime, "cn", compiled, compiled_version(vn))
    for obj in items:
        record = vn.runtime.listings.get(obj["listing"]["id"]).record
        fresh, _, _ = summary_cache.make_summary(
            vn.runtime, record, view.audience, compiled, compiled_version(vn), clock.now
        )
        assert fresh is not None and fresh["ts"] == clock.now
        assert bare(fresh) == bare(obj)
    # The reader verifies every stored item and holds exactly what the policy allows.
    run = await sync_round(net, OWNER)
    assert run.error is None and run.rejected == 0 and run.applied == len(allowed)
    assert_hub_holds_allowed(net, OWNER)


def compiled_version(node: RunningNode) -> int:
    return node.runtime.policy.compiled()[0]


async def test_a_policy_change_or_an_update_is_never_served_stale(
    node_factory: NodeFactory,
) -> None:
    clock = HeldClock()
    net = await owner_network(node_factory, clock)
    vn = net.nodes[OWNER]
    Presigner(vn.runtime).run_sync()
    assert (await sync_round(net, OWNER)).error is None
    before = held_by(net.hub, OWNER)
    offer = next(lid for lid, v in before.items() if v["category"] == "tech_offer")
    assert "summary" in before[offer]["fields"]

    # A narrower policy, in the same millisecond, with nothing signed ahead for it.
    vn.runtime.policy.apply(NARROW, "test")
    run = await sync_round(net, OWNER)
    assert run.error is None and run.retracted > 0
    assert_hub_holds_allowed(net, OWNER)
    assert all("summary" not in v["fields"] for v in held_by(net.hub, OWNER).values())

    # An update: the next page carries the new version, signed now.
    clock.now += 1000
    record = vn.runtime.listings.get(offer).record
    vn.runtime.listings.update(offer, {**record, "title": {"en": "A renamed offer"}})
    run = await sync_round(net, OWNER)
    assert run.error is None and run.applied == 1
    held = held_by(net.hub, OWNER)[offer]
    assert held["fields"]["title"] == {"en": "A renamed offer"}
    assert held["version"] == record["version"] + 1
    row = stored_rows(vn)[offer]
    assert row.version == held["version"] and row.ts == clock.now
    assert_hub_holds_allowed(net, OWNER)


async def test_a_withdrawal_still_arrives_and_the_store_is_pruned(
    node_factory: NodeFactory,
) -> None:
    clock = HeldClock()
    net = await owner_network(node_factory, clock)
    vn = net.nodes[OWNER]
    Presigner(vn.runtime).run_sync()
    assert (await sync_round(net, OWNER)).error is None
    victim = sorted(held_by(net.hub, OWNER))[0]
    clock.now += 1000
    vn.runtime.listings.withdraw(victim)
    run = await sync_round(net, OWNER)
    assert run.error is None and run.retracted == 1
    assert victim not in held_by(net.hub, OWNER)
    Presigner(vn.runtime).run_sync()
    assert victim not in stored_rows(vn)


async def test_the_store_holds_one_row_per_reader_and_listing(
    node_factory: NodeFactory,
) -> None:
    clock = HeldClock()
    net = await owner_network(node_factory, clock)
    vn = net.nodes[OWNER]
    presigner = Presigner(vn.runtime)
    first = presigner.run_sync()
    assert first == live_listings(vn) and count_rows(vn) == first
    assert presigner.run_sync() == 0  # nothing changed: nothing signed again
    assert count_rows(vn) == first
    # Every listing changed, the policy changed, pages served between: still one row each.
    assert (await sync_round(net, OWNER)).error is None
    for stored in vn.runtime.listings.iter_all():
        clock.now += 1
        vn.runtime.listings.update(stored.id, {**stored.record, "summary": "Changed for the test."})
    vn.runtime.policy.apply(NARROW, "test")
    assert (await sync_round(net, OWNER)).error is None
    assert count_rows(vn) == first
    assert presigner.run_sync() == 0  # the page stored what it signed
    # A second reader doubles the bound, no more.
    with Session(vn.runtime.engine) as session, session.begin():
        session.execute(
            insert(FeedSentRow),
            [{"reader": "th", "listing_id": "none", "version": 1, "consent": False}],
        )
    assert presigner.run_sync() == first
    assert count_rows(vn) == 2 * first


async def test_a_listing_retracted_to_a_reader_is_signed_afresh_when_sent_again(
    node_factory: NodeFactory,
) -> None:
    """A reader keeps a tombstone until a summary signed after it: a stored summary signed
    before the retraction must not be the one that reopens the listing."""
    clock = HeldClock()
    net = await owner_network(node_factory, clock)
    vn = net.nodes[OWNER]
    Presigner(vn.runtime).run_sync()
    assert (await sync_round(net, OWNER)).error is None
    lid = sorted(held_by(net.hub, OWNER))[0]
    stored_ts = stored_rows(vn)[lid].ts
    clock.now += 1000
    with Session(vn.runtime.engine) as session, session.begin():
        session.execute(
            update(FeedSentRow)
            .where(FeedSentRow.reader == "cn", FeedSentRow.listing_id == lid)
            .values(retracted=True)
        )
        version = session.get(ListingRow, lid)
        assert version is not None
        session.execute(
            insert(ChangeRow),
            [{"listing_id": lid, "version": version.version, "kind": "upsert", "at": clock.now}],
        )
    page, _ = vn.runtime.feed.signed_page("cn", None, 1000)
    (item,) = [o for o in page["items"] if o.get("listing", {}).get("id") == lid]
    assert item["ts"] == clock.now > stored_ts
    assert stored_rows(vn)[lid].ts == clock.now  # and the store moves on with it


async def test_a_running_node_signs_ahead_after_an_import(node_factory: NodeFactory) -> None:
    hub = await node_factory("cn", is_hub=True)
    vn = await node_factory(
        OWNER, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn", run_sync=True
    )
    add_member(hub, vn)
    load_records(vn, sample_records(OWNER))
    await wait_until(lambda: count_rows(vn) == live_listings(vn) > 0)
    assert {lid for lid, r in stored_rows(vn).items() if r.body is not None} == set(
        allowed_for(vn, "cn")
    )


async def test_a_pass_with_nothing_new_reads_a_few_rows_however_long_the_log(
    node_factory: NodeFactory,
) -> None:
    """The pre-signer runs every 2 s for ever; the hub's log grows with every match
    notice it queues. A pass with nothing new reads the log's head, not the log (an ORM
    select of the column without a limit read every entry: 124 ms a pass at 92,000), and
    the outbox's entries do not make it look at every reader again (they change no
    summary; a notice flood moved the head at every pass)."""
    clock = HeldClock()
    net = await owner_network(node_factory, clock)
    vn = net.nodes[OWNER]
    presigner = Presigner(vn.runtime)
    assert presigner.run_sync() == live_listings(vn) > 0
    with Session(vn.runtime.engine) as session, session.begin():
        session.execute(
            insert(ChangeRow),
            [
                {
                    "listing_id": f"o:{i}",
                    "version": 1,
                    "kind": "outbox",
                    "at": clock.now,
                    "reader": "th",
                }
                for i in range(1, 5001)
            ],
        )
    assert presigner.plan() == []  # outbox entries: no reader to look at again
    with rows_read(vn.runtime.engine) as reads:
        assert presigner.run_sync() == 0
        assert presigner.plan() == []
    per_statement = reads.per_statement()
    assert per_statement, "no SELECT recorded"
    assert sum(n for n, _ in per_statement) < 50, per_statement
    # Nor does a pass read more statements with more readers (the policy once, not once
    # per reader: a hub serves every member).
    with rows_read(vn.runtime.engine) as one_reader:
        presigner.plan()
    with Session(vn.runtime.engine) as session, session.begin():
        session.execute(
            insert(FeedSentRow),
            [
                {"reader": f"r{i:02d}", "listing_id": "none", "version": 1, "consent": False}
                for i in range(10)
            ],
        )
    presigner.run_sync()
    with rows_read(vn.runtime.engine) as eleven:
        assert presigner.plan() == []
    assert len(eleven.statements) == len(one_reader.statements)
