"""Signed incremental sync survives faults (DESIGN 3.3-3.5, 6, 8).

Each test puts a real hub and a real national node through one kind of fault (a proxy
that resets, truncates, corrupts, delays, fails or replays; a node out of reach; stale
signed objects; changes in the same millisecond or between two pages; bad and expired
cursors; a narrowed policy; a reader killed inside its transaction) and then drives sync
rounds until one succeeds. The hub must then hold exactly what the owner's policy allows
it now: the same listing ids with the same views, nothing lost, nothing twice, nothing
withdrawn.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from node.services.sync_manager import NOTIFY_SPACING_S
from node.storage.models import ChangeRow, OutboxRow, SyncRunRow
from sync.client import PeerError
from sync.interfaces import Changes
from sync.reader import Peer
from sync.verify import check_item
from tests.conftest import DatabaseUrlFactory
from tests.federation.faultproxy import FEED_PATH, Fault, FaultProxy, route_through, start_proxy
from tests.federation.network import (
    Network,
    NodeFactory,
    add_member,
    allowed_for,
    held_by,
    hub_key,
    load_records,
    start_network,
)
from tests.federation.rounds import (
    OWNER,
    assert_hub_holds_allowed,
    hub_cursor,
    item_ids,
    new_listing_like,
    quarantined,
    retitle,
    set_visibility,
    sync_round,
    sync_runs,
    sync_until_clean,
    wait_until,
)
from tests.node.sample import sample_records
from tests.nodes import RunningNode, start_node
from tests.paths import PROJECT_ROOT

PAGE = 5  # small enough that vn's share for the hub takes several pages


@pytest.fixture
async def net(node_factory: NodeFactory) -> Network:
    net = await start_network(node_factory, [OWNER])
    net.hub.sync.reader.page_size = PAGE
    assert len(allowed_for(net.nodes[OWNER], "cn")) > 2 * PAGE  # several pages
    return net


@pytest.fixture
async def proxy(net: Network) -> AsyncIterator[FaultProxy]:
    proxy = await start_proxy(net.hub, net.nodes[OWNER])
    yield proxy
    await proxy.close()


# -- proxy faults ----------------------------------------------------------------------
# name: (fault, let the node serve the page first, requests to hit, what the run must say).
# aiohttp resends an idempotent request once when a reused connection drops, so a reset
# that the reader is to notice hits that second attempt too.
FAULTS = {
    "reset": (Fault.RESET, False, 2, "unreachable"),
    "reset_after_serving": (Fault.RESET, True, 2, "unreachable"),
    "truncate": (Fault.TRUNCATE, False, 1, "truncated"),
    "corrupt": (Fault.CORRUPT, False, 1, "signature_invalid"),
    "http_500": (Fault.ERROR, False, 1, "answered 500"),
    "duplicate": (Fault.DUPLICATE, False, 1, "cursor_mismatch"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_fault_on_second_page_loses_nothing(
    net: Network, proxy: FaultProxy, name: str
) -> None:
    fault, upstream, times, symptom = FAULTS[name]
    rule = proxy.inject(fault, skip=1, upstream=upstream, times=times)
    first = await sync_round(net)
    assert rule.applied == times
    assert first.error is not None and symptom in first.error, first.error
    # Page 1 is kept, nothing of page 2 is, and the cursor is still after page 1.
    page1 = json.loads(proxy.feed_pages[0])
    assert sorted(held_by(net.hub, OWNER)) == sorted(item_ids(page1))
    assert hub_cursor(net) == page1["next"]

    runs = await sync_until_clean(net)
    assert len(runs) == 1
    assert_hub_holds_allowed(net)
    assert (await sync_round(net)).applied == 0


async def test_a_page_served_then_dropped_is_asked_for_again_with_a_fresh_nonce(
    net: Network, proxy: FaultProxy
) -> None:
    """The node serves page 2 (and records the request's nonce), then the connection
    drops. aiohttp resends the GET on its own with the same signature, which the node
    refuses as a replay (nonce_reused); the reader then signs the request afresh, and the
    run goes on without an error."""
    rule = proxy.inject(Fault.RESET, skip=1, upstream=True, times=1)
    run = await sync_round(net)
    assert rule.applied == 1
    assert run.error is None, run.error
    assert_hub_holds_allowed(net)


async def test_faults_on_every_other_request_still_converge(
    net: Network, proxy: FaultProxy
) -> None:
    for fault in (Fault.TRUNCATE, Fault.CORRUPT, Fault.RESET, Fault.DUPLICATE, Fault.ERROR):
        proxy.inject(fault, skip=1, times=2 if fault is Fault.RESET else 1)
    runs = await sync_until_clean(net, rounds=10)
    assert proxy.faults_applied() == 6
    # A replayed page is refused, or, when it is the very page the reader asked for (a
    # truncated or corrupted answer recorded before), accepted: either way no harm. A
    # fault may also hit the page fetched ahead of a run that had already failed (that
    # page is dropped unread), so not every fault ends a run; most do.
    assert sum(r.error is not None for r in runs) >= 3
    assert_hub_holds_allowed(net)


async def test_closing_the_hub_mid_pull_ends_the_pull_and_records_it(
    net: Network, proxy: FaultProxy
) -> None:
    """The hub is shut down while its scheduled pull waits for page 2: closing stops the
    pull and waits until it has recorded its run (so the database is closed only after),
    and page 1 stays applied with its cursor."""
    proxy.inject(Fault.DELAY, skip=1, delay_s=600.0)
    net.hub.sync.start()
    # page 1 applied, page 2 (asked for ahead) held back by the proxy
    await wait_until(lambda: proxy.faults_applied() == 1 and hub_cursor(net) is not None, 10)
    await asyncio.wait_for(net.hub.sync.aclose(), 10)
    [run] = sync_runs(net.hub)
    assert run.error == "stopped: this node is shutting down"
    page1 = json.loads(proxy.feed_pages[0])
    assert hub_cursor(net) == page1["next"]
    assert sorted(held_by(net.hub, OWNER)) == sorted(item_ids(page1))


async def test_two_pulls_of_one_peer_at_once_apply_each_page_once(net: Network) -> None:
    """One puller per peer is the pull lock's job; when PostgreSQL ended the session that
    held it, two hub workers pulled one member at once and each page was applied, and
    its custody receipt sent, twice. A page now applies only where it began: of two
    pulls from the same cursor, one fails, saying why, and nothing is applied twice."""
    reader = net.hub.sync.reader
    peer = Peer(OWNER, net.nodes[OWNER].url)
    runs = await asyncio.gather(reader.pull(peer), reader.pull(peer))
    errors = [run.error for run in runs if run.error]
    assert len(errors) == 1 and "another process pulled it" in errors[0], errors
    assert_hub_holds_allowed(net)
    with Session(net.hub.runtime.engine) as session:
        receipts = [
            json.loads(obj)
            for obj in session.scalars(
                select(OutboxRow.obj).where(OutboxRow.type == "custody_receipt")
            )
        ]
    pages = [(r["position"], json.dumps(r["held"], sort_keys=True)) for r in receipts]
    assert pages and len(set(pages)) == len(pages), "a page's receipt went out twice"


async def test_delay_beyond_the_run_timeout(net: Network, proxy: FaultProxy) -> None:
    # A run whose last page came in the second half of its time counts as still
    # progressing (``sync.reader.PROGRESS_MS``) and is pulled on without error: the first
    # page must come in the first half. 2 s left one second for it, which a loaded CI
    # machine once missed.
    net.hub.sync.run_timeout_s = 6.0
    proxy.inject(Fault.DELAY, skip=1, delay_s=600.0)
    slow = await sync_round(net)
    assert slow.error is not None and "timed out" in slow.error
    # One run, recorded once, with its error and what it did apply; one failure counted.
    assert [(r.error, r.applied) for r in sync_runs(net.hub)] == [(slow.error, PAGE)]
    assert net.hub.sync.store.peer_cursor(OWNER).failures == 1
    page1 = json.loads(proxy.feed_pages[0])
    assert sorted(held_by(net.hub, OWNER)) == sorted(item_ids(page1))
    assert hub_cursor(net) == page1["next"]

    proxy.inject(Fault.DELAY, delay_s=0.2)  # slow but within the timeout: no harm
    await sync_until_clean(net, rounds=1)
    assert_hub_holds_allowed(net)


async def test_a_run_out_of_pages_is_pulled_on_at_once_and_is_no_failure(net: Network) -> None:
    """A first sync longer than one run's page budget: the hub pulls on at once, run
    after run, rather than waiting for the next interval, and counts no failure."""
    net.hub.sync.reader.max_pages = 2
    run = await sync_round(net)
    assert run.error is None and not run.more  # the last run reached the end of the feed
    runs = sync_runs(net.hub)
    assert len(runs) > 1 and all(r.error is None for r in runs)
    assert [r.applied for r in runs[:-1]] == [2 * PAGE] * (len(runs) - 1)
    assert net.hub.sync.store.peer_cursor(OWNER).failures == 0
    assert_hub_holds_allowed(net)


async def test_a_run_out_of_time_while_pages_still_come_is_pulled_on_at_once(
    net: Network, proxy: FaultProxy
) -> None:
    """Every page slowed a little, and a run's time shorter than the whole feed: the run
    ends with its pages still coming, which is no failure; the next runs follow at once
    until the hub holds everything. (A peer that stalls still fails the run, as in
    ``test_delay_beyond_the_run_timeout``.)"""
    net.hub.sync.reader.page_size = 2
    # A page every ~0.6 s against the 1.5 s within which the last page must have come
    # (half the run's time): room for a loaded machine, and the feed's 6 pages or more
    # (more than 10 listings) take longer than one run.
    net.hub.sync.run_timeout_s = 3.0
    proxy.inject(Fault.DELAY, delay_s=0.6, times=10_000)
    run = await sync_round(net)
    assert run.error is None and not run.more
    runs = sync_runs(net.hub)
    assert len(runs) > 1, "the feed fitted in one run: slow the pages more"
    assert all(r.error is None for r in runs)
    assert net.hub.sync.store.peer_cursor(OWNER).failures == 0
    assert_hub_holds_allowed(net)


# -- a node out of reach ---------------------------------------------------------------
async def test_withdrawal_while_unreachable_reaches_the_hub_after(
    net: Network, proxy: FaultProxy
) -> None:
    vn = net.nodes[OWNER]
    await sync_until_clean(net, rounds=1)
    before = held_by(net.hub, OWNER)
    victim, changed = sorted(before)[:2]

    await proxy.stop()
    assert (await sync_round(net)).error is not None
    vn.runtime.listings.withdraw(victim)
    retitle(vn, changed, " (revised while the hub was away)")
    down = await sync_round(net)
    assert down.error is not None and "unreachable" in down.error
    assert held_by(net.hub, OWNER) == before  # kept (served as stale), not emptied

    await proxy.start()  # back, at the same address
    back = await sync_until_clean(net, rounds=1)
    assert back[0].retracted == 1
    assert victim not in held_by(net.hub, OWNER)
    assert_hub_holds_allowed(net)


async def test_closed_port_then_back(net: Network, proxy: FaultProxy) -> None:
    vn = net.nodes[OWNER]
    await sync_until_clean(net, rounds=1)
    victim = sorted(held_by(net.hub, OWNER))[-1]
    closed = await FaultProxy(vn.url).start()
    await closed.close()
    route_through(net.hub, OWNER, closed.url)
    vn.runtime.listings.withdraw(victim)
    assert (await sync_round(net)).error is not None
    route_through(net.hub, OWNER, proxy.url)
    await sync_until_clean(net, rounds=1)
    assert victim not in held_by(net.hub, OWNER)
    assert_hub_holds_allowed(net)


# -- stale signed objects --------------------------------------------------------------
async def test_old_summary_after_withdrawal_is_refused_and_quarantined(
    net: Network, proxy: FaultProxy
) -> None:
    vn = net.nodes[OWNER]
    hub = net.hub
    hub.sync.reader.page_size = 500
    await sync_until_clean(net, rounds=1)
    old_page_body = proxy.feed_pages[-1]
    old_page = json.loads(old_page_body)
    old = next(i for i in old_page["items"] if i["type"] == "listing")
    victim = old["listing"]["id"]
    vn.runtime.listings.withdraw(victim)
    gone = await sync_round(net)
    assert gone.error is None and gone.retracted == 1

    # Straight into the store: the old summary is genuine (it verifies) but stale.
    store = hub.sync.store
    item = check_item(old, peer=OWNER, me="cn", keys=hub.sync.keys.keys(OWNER))
    cursor = hub_cursor(net)
    assert cursor is not None and gone.head is not None
    result = store.apply_page(
        OWNER,
        [item],
        [],
        after=cursor,
        next_cursor=cursor,
        head=gone.head,
        position=gone.position,
        now=1,
    )
    assert result.applied == 0
    assert [r.code for r in result.rejected] == ["stale_version"]
    assert victim not in held_by(hub, OWNER)
    rows = quarantined(hub, OWNER)
    assert [r.code for r in rows] == ["stale_version"]
    assert json.loads(rows[0].item)["listing"]["id"] == victim

    # Through the wire: the whole old page replayed to a reader starting over.
    store.reset_cursor(OWNER)
    proxy.inject(Fault.DUPLICATE, body=old_page_body)
    replayed = await sync_round(net)
    assert replayed.error is None
    assert replayed.applied == 0 and replayed.rejected == 1
    assert victim not in held_by(hub, OWNER)
    assert len(quarantined(hub, OWNER)) == 2
    assert_hub_holds_allowed(net)
    await sync_until_clean(net, rounds=1)
    assert_hub_holds_allowed(net)


# -- changes in the same millisecond, and between pages --------------------------------
@pytest.fixture
async def fixed_clock_net(
    node_factory: NodeFactory, tmp_path: Path, database_url: DatabaseUrlFactory
) -> AsyncIterator[Network]:
    """A hub on the real clock and a ``vn`` whose clock never moves."""
    fixed = time.time_ns() // 1_000_000
    hub = await node_factory("cn", is_hub=True)
    vn = await start_node(
        tmp_path,
        OWNER,
        database_url(OWNER),
        clock=lambda: fixed,
        hub_url=hub.url,
        hub_key=hub_key(hub),
        hub_id="cn",
    )
    try:
        add_member(hub, vn)
        load_records(vn, sample_records(OWNER))
        hub.sync.reader.page_size = PAGE
        yield Network(hub, {OWNER: vn})
    finally:
        await vn.stop()


NARROW_OFFERS = """\
groups:
  mou: [cn, th, la, kh, mm, vn, bn, id]
  no_mou: [my, ph]
rules:
  - audience: cn
    category: tech_offer
    visibility: [public, network]
    fields: [title, keywords, ipc, trl, expires, country]
  - audience: cn
    category: tech_request
    visibility: [public]
    fields: [title, summary, keywords, expires, country]
"""


async def test_many_changes_in_one_millisecond(fixed_clock_net: Network) -> None:
    net = fixed_clock_net
    vn = net.nodes[OWNER]
    await sync_until_clean(net, rounds=1)
    assert_hub_holds_allowed(net)
    shared = sorted(held_by(net.hub, OWNER))
    offers = [lid for lid in shared if "-off-" in lid]
    requests = [lid for lid in shared if "-req-" in lid]

    for n in range(12):  # one listing through twelve versions, a sync now and then
        retitle(vn, offers[0], f" r{n}")
        retitle(vn, offers[2], f" r{n}")
        if n in (3, 7):
            await sync_until_clean(net, rounds=1)
            assert_hub_holds_allowed(net)
    vn.runtime.listings.withdraw(offers[1])
    set_visibility(vn, requests[0], "private")
    set_visibility(vn, requests[0], "public")  # back again, still the same millisecond
    set_visibility(vn, requests[1], "private")
    added = new_listing_like(vn, offers[0], "A new offer, made in the same millisecond")
    await sync_until_clean(net, rounds=1)
    assert_hub_holds_allowed(net)
    held = held_by(net.hub, OWNER)
    assert added in held and offers[1] not in held and requests[1] not in held
    assert held[offers[0]]["fields"]["title"]["en"].endswith(" r11")

    # A narrower policy, still in the same millisecond: same listing versions, new views
    # (the hub took these for duplicates of the views it held and kept the wider ones).
    vn.runtime.policy.apply(NARROW_OFFERS, "test")
    runs = await sync_until_clean(net, rounds=1)
    assert runs[0].retracted > 0
    assert_hub_holds_allowed(net)
    assert all(
        "summary" not in v["fields"]
        for v in held_by(net.hub, OWNER).values()
        if v["category"] == "tech_offer"
    )


async def test_listings_changed_between_pages(net: Network, proxy: FaultProxy) -> None:
    vn = net.nodes[OWNER]
    pages: list[dict[str, Any]] = []
    touched: dict[str, str] = {}

    async def change(_target: str, body: bytes) -> None:
        page = json.loads(body)
        pages.append(page)
        delivered = item_ids(page)
        seen = {lid for p in pages for lid in item_ids(p)}
        later = [lid for lid in sorted(allowed_for(vn, "cn")) if lid not in seen]
        if len(pages) == 1:
            retitle(vn, delivered[0], " (changed after it was sent)")
            vn.runtime.listings.withdraw(delivered[1])
            retitle(vn, later[0], " (changed before it was sent)")
            vn.runtime.listings.withdraw(later[1])
            touched.update(
                {
                    delivered[0]: "retitled",
                    delivered[1]: "withdrawn",
                    later[0]: "retitled",
                    later[1]: "withdrawn",
                }
            )
        elif len(pages) == 2:
            touched[new_listing_like(vn, delivered[0], "New while paging")] = "created"
            set_visibility(vn, delivered[0], "private")
            touched[delivered[0]] = "private"

    proxy.after_each_page(change)
    run = await sync_round(net)  # one round takes it all in
    assert run.error is None, run.error
    assert len(pages) >= 3 and len(touched) == 6
    assert_hub_holds_allowed(net)
    held = held_by(net.hub, OWNER)
    for lid, what in touched.items():
        assert (lid in held) == (what in ("retitled", "created")), (lid, what)
    assert (await sync_round(net)).applied == 0


def hub_title(net: Network, listing_id: str) -> str:
    listing = held_by(net.hub, OWNER).get(listing_id)
    return str(listing["fields"]["title"]["en"]) if listing else ""


async def test_notify_during_a_scheduled_run_pulls_again_right_after_it(
    net: Network, proxy: FaultProxy
) -> None:
    """A notify that arrives while the scheduler's own pull of that peer is running must
    not be lost (APScheduler would skip a second instance of the running job): the run in
    flight pulls again as soon as it ends. The change is made after the last page left
    the owner, so only that second pull can bring it; the next scheduled one is a minute
    away."""
    vn = net.nodes[OWNER]
    shared = sorted(allowed_for(vn, "cn"))
    notified: list[bool] = []

    async def change_after_last_page(_target: str, body: bytes) -> None:
        if json.loads(body)["more"] or notified:
            return
        retitle(vn, shared[0], " (changed during the run)")
        notified.append(net.hub.sync.trigger(OWNER))

    proxy.after_each_page(change_after_last_page)
    net.hub.sync.start()
    try:
        await wait_until(lambda: "(changed during the run)" in hub_title(net, shared[0]), 10)
    finally:
        await net.hub.sync.aclose()
    assert notified == [True]
    assert_hub_holds_allowed(net)


async def test_notify_while_the_hub_rematches_is_pulled_at_once(net: Network) -> None:
    """The hub's re-matching after a pull runs outside the peer's pull: a notify that comes
    meanwhile is pulled at once, however long the matching takes."""
    vn = net.nodes[OWNER]
    shared = sorted(allowed_for(vn, "cn"))
    entered, release = asyncio.Event(), asyncio.Event()

    class SlowRematch:
        async def synced(self, changes: Changes) -> None:
            entered.set()
            await release.wait()

    net.hub.sync.add_observer(SlowRematch())
    net.hub.sync.start()
    try:
        await asyncio.wait_for(entered.wait(), 10)  # the first pull is done, matching hangs
        mark = " (changed while the hub re-matched)"
        retitle(vn, shared[0], mark)
        assert net.hub.sync.trigger(OWNER)
        await wait_until(lambda: mark in hub_title(net, shared[0]), 10)
        assert not release.is_set()
    finally:
        release.set()
        await net.hub.sync.aclose()
    assert_hub_holds_allowed(net)


async def test_a_flood_of_notifies_makes_one_pull_a_second(net: Network) -> None:
    """A member that sends notifies without pause (or anyone replaying its notify path)
    gets the first pulled at once and the rest folded into one pull a spacing later,
    not a pull and a recorded run each."""
    manager = net.hub.sync

    def runs() -> list[int]:
        with Session(net.hub.runtime.engine) as session:
            rows = session.scalars(
                select(SyncRunRow.started).where(SyncRunRow.peer == OWNER).order_by(SyncRunRow.id)
            )
            return list(rows)

    manager.start()
    try:
        await wait_until(lambda: len(runs()) == 1 and not manager.busy(), 20)
        assert all([manager.trigger(OWNER) for _ in range(50)])
        await wait_until(lambda: len(runs()) == 2 and not manager.busy(), 10)
        assert all([manager.trigger(OWNER) for _ in range(50)])  # within the spacing
        await wait_until(lambda: len(runs()) == 3 and not manager.busy(), 10)
    finally:
        await manager.aclose()
    started = runs()
    assert len(started) == 3, started
    assert started[2] - started[1] >= NOTIFY_SPACING_S * 1000 - 20, started


# -- cursors ---------------------------------------------------------------------------
async def test_feed_refuses_junk_and_foreign_cursors(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th", OWNER])
    vn, th = net.nodes[OWNER], net.nodes["th"]
    client = net.hub.sync.client

    async def feed_error(after: str) -> PeerError:
        with pytest.raises(PeerError) as info:
            await client.get_json(vn.url, OWNER, FEED_PATH, {"after": after, "limit": PAGE})
        return info.value

    await net.hub.sync.sync_all()
    await th.sync.sync_all()
    own = hub_cursor(net)
    th_cursor = th.sync.store.peer_cursor(OWNER).cursor  # th's cursor in vn's feed
    other_owner = hub_cursor(net, "th")  # the hub's cursor in th's feed
    assert own and th_cursor and other_owner
    payload, _, mac = own.partition(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    for after in ("junk", tampered, th_cursor, other_owner, own + "x"):
        err = await feed_error(after)
        assert (err.status, err.code) == (400, "bad_cursor"), after
    page = await client.get_json(vn.url, OWNER, FEED_PATH, {"after": own, "limit": PAGE})
    assert page["after"] == own and page["items"] == []


async def test_expired_cursor_resyncs_to_the_allowed_set(net: Network) -> None:
    vn = net.nodes[OWNER]
    await sync_until_clean(net, rounds=1)
    shared = sorted(held_by(net.hub, OWNER))
    vn.runtime.listings.withdraw(shared[0])
    retitle(vn, shared[1], " (revised)")
    set_visibility(vn, shared[2], "private")
    retitle(vn, shared[1], " (revised again)")
    assert vn.runtime.feed.compact(vn.runtime.listings.head()) > 0

    expired = await sync_round(net)
    assert expired.error is not None and "cursor_expired_resync" in expired.error
    assert hub_cursor(net) is None
    assert sorted(held_by(net.hub, OWNER)) == shared  # nothing purged meanwhile

    again = await sync_until_clean(net, rounds=1)
    assert again[0].retracted == 2
    assert_hub_holds_allowed(net)
    assert not {shared[0], shared[2]} & set(held_by(net.hub, OWNER))


async def test_a_rewound_change_log_makes_the_reader_resync(net: Network) -> None:
    """The owner's database is restored from a backup taken before the hub's last pull,
    and more edits follow the restore than preceded it: they reuse change-log positions
    the hub's cursor has passed. The cursor's mark of the entry it stopped at no longer
    matches, so the owner answers 410 with the resync code and the hub starts again from
    the beginning: the edits made after the restore reach it."""
    vn = net.nodes[OWNER]
    backup_head = vn.runtime.listings.head()
    shared = sorted(allowed_for(vn, "cn"))
    retitle(vn, shared[0], " (revised before the restore)")
    await sync_until_clean(net, rounds=1)
    rewind_change_log(vn, backup_head)
    for lid in shared[1:4]:
        retitle(vn, lid, " (revised after the restore)")
    assert vn.runtime.listings.head() > backup_head + 1  # past the hub's cursor again

    rewound = await sync_round(net)
    assert rewound.error is not None and "cursor_expired_resync" in rewound.error
    assert "restored from a backup?" in rewound.error
    assert hub_cursor(net) is None
    await sync_until_clean(net, rounds=1)
    assert_hub_holds_allowed(net)
    assert all("after the restore" in hub_title(net, lid) for lid in shared[1:4])


def rewind_change_log(node: RunningNode, head: int) -> None:
    """What restoring a backup taken at ``head`` does to the change log: later entries
    are gone, and the next entry is ``head + 1`` again."""
    engine = node.runtime.engine
    with Session(engine) as session, session.begin():
        session.execute(delete(ChangeRow).where(ChangeRow.seq > head))
        if engine.dialect.name == "postgresql":  # SQLite numbers from the highest row left
            session.execute(
                text("SELECT setval(pg_get_serial_sequence('changes', 'seq'), :head)"),
                {"head": head},
            )


# -- policy ----------------------------------------------------------------------------
async def test_narrowed_policy_reaches_the_hub_in_one_round(net: Network) -> None:
    vn = net.nodes[OWNER]
    await sync_until_clean(net, rounds=1)
    before = held_by(net.hub, OWNER)
    vn.runtime.policy.apply(NARROW_OFFERS, "test")
    after = allowed_for(vn, "cn")
    cut = set(before) - set(after)
    assert cut and any("-exp-" in lid for lid in cut) and any("-req-" in lid for lid in cut)

    run = await sync_round(net)  # ONE round
    assert run.error is None and run.retracted == len(cut)
    assert_hub_holds_allowed(net)
    held = held_by(net.hub, OWNER)
    assert not cut & set(held)
    for view in held.values():
        if view["category"] == "tech_offer":
            assert not {"summary", "organization", "stage", "partnership"} & set(view["fields"])


# -- a reader killed inside its transaction --------------------------------------------
async def test_reader_killed_mid_page_loses_nothing(net: Network, tmp_path: Path) -> None:
    marker = tmp_path / "stalled.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.federation.slow_reader",
        str(net.hub.data_dir),
        OWNER,
        "--page-size",
        str(PAGE),
        "--stall-page",
        "2",
        "--marker",
        str(marker),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_until(lambda: marker.exists() or proc.returncode is not None)
        assert marker.exists(), await proc.communicate()
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    stalled = json.loads(marker.read_text(encoding="utf-8"))
    assert stalled["committed"] and stalled["stalled"]

    # Page 1 committed; page 2 was written but never committed, so none of it is there.
    held = held_by(net.hub, OWNER)
    assert sorted(held) == sorted(stalled["committed"])
    assert not (set(stalled["stalled"]) - set(stalled["committed"])) & set(held)
    assert hub_cursor(net) == stalled["cursor"]

    restarted = await sync_until_clean(net, rounds=1)
    assert restarted[0].applied == len(allowed_for(net.nodes[OWNER], "cn")) - len(held)
    assert_hub_holds_allowed(net)
