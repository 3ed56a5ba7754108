"""The hub's matcher works from what changed: each applied page queues its added, replaced
and purged listings in its own transaction (``match_queue``), and a pass of the matching
worker reads those summaries only, whatever else the hub holds. A change whose re-match
never ran (the observer not told, the worker killed between the page and its re-match)
is found at the next pass or start. After a lost and regained leadership the app serves
the new matcher."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.hub import app_setup, match_queue, match_snapshot
from node.hub.match_engine import MatchEngine
from node.hub.match_worker import MatchingUnavailable
from node.matching.match import Match
from node.storage.models import MatchStampRow, RemoteListingRow
from node.web.appkeys import HUB_MATCHING, LEADER
from tests.federation.network import NodeFactory, load_records
from tests.hub.helpers import get_json, start_hub_network
from tests.hub.test_match_worker import generated, pull_all
from tests.nodes import RunningNode

MEMBERS = ("th", "vn")
DEADLINE_S = 30.0


async def until(what: str, check: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < end, f"not within {DEADLINE_S:g} s: {what}"
        await asyncio.sleep(0.02)


def queued(hub: RunningNode) -> int:
    return match_queue.size(hub.runtime.engine)


def stamp_of(hub: RunningNode, ref: tuple[str, str]) -> str | None:
    with Session(hub.runtime.engine) as session:
        return session.scalar(
            select(MatchStampRow.stamp).where(
                MatchStampRow.owner == ref[0], MatchStampRow.listing_id == ref[1]
            )
        )


def held_version(hub: RunningNode, ref: tuple[str, str]) -> int | None:
    with Session(hub.runtime.engine) as session:
        return session.scalar(
            select(RemoteListingRow.version).where(
                RemoteListingRow.origin == ref[0], RemoteListingRow.listing_id == ref[1]
            )
        )


def matched_listing(member: RunningNode) -> str:
    """One of ``member``'s listings that the matcher takes (an offer)."""
    return next(
        str(rec["id"])
        for rec in generated(member.runtime.node_id, 40)
        if rec["category"] == "tech_offer"
    )


def scores(top: dict[tuple[str, str], list[Match]]) -> dict[tuple[str, str], list[float]]:
    return {ref: [m.score for m in found] for ref, found in top.items()}


def touch(member: RunningNode, listing_id: str) -> None:
    """A new version of one listing at its owner."""
    stored = member.runtime.listings.get(listing_id)
    title = {"en": f"Renamed offer {stored.record['version'] + 1}"}
    member.runtime.listings.update(listing_id, {**stored.record, "title": title})


async def quiet_hub(node_factory: NodeFactory) -> tuple[RunningNode, dict[str, RunningNode]]:
    """A hub and two members with generated listings, the hub's own matcher stopped and
    its pulls telling no one: the test's engine is the queue's one consumer."""
    net = await start_hub_network(node_factory, MEMBERS, load_hub_sample=False)
    for node_id in MEMBERS:
        load_records(net.nodes[node_id], generated(node_id, 40))
    hub = net.hub
    hub.sync.remove_observer(hub.app[HUB_MATCHING])
    await hub.app[HUB_MATCHING].service.aclose()
    await pull_all(net)
    return hub, net.nodes


async def test_a_pass_reads_what_changed_not_what_is_held(node_factory: NodeFactory) -> None:
    hub, members = await quiet_hub(node_factory)
    assert queued(hub) > 0  # the pulls' pages queued what they stored
    engine = MatchEngine(hub.runtime, consumes_queue=True)
    await hub.runtime.run(engine.after_sync)
    held = engine.status()["held"]
    assert held > 40 and engine.reads == held and engine.left == 0
    assert queued(hub) == 0  # covered by the load, dropped

    engine.reads = 0
    assert await hub.runtime.run(engine.after_sync) == 0
    assert engine.reads == 0  # nothing changed: no summary read
    # Between passes the worker's matcher holds no weighed matrix (rebuilt by the next),
    # unless work is left for the next pass, which comes at once.
    rows = [r for st in engine.matcher.stores.values() for r in st.sparse.values()]
    assert all(r._csc is None for r in rows)  # noqa: SLF001
    engine.scoring = "next/lexical"  # everything to match again
    await hub.runtime.run(lambda: engine.after_sync(budget_s=0))  # one transaction
    assert engine.left > 0 and any(r._csc is not None for r in rows)  # noqa: SLF001
    await hub.runtime.run(engine.after_sync)
    assert engine.left == 0 and all(r._csc is None for r in rows)  # noqa: SLF001

    th = members["th"]
    changed = matched_listing(th)
    touch(th, changed)
    gone = next(lid for lid in (r["id"] for r in generated("th", 40)) if lid != changed)
    th.runtime.listings.withdraw(gone)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None
    assert queued(hub) == 2

    engine.reads = 0
    assert await hub.runtime.run(engine.refresh) == [("th", changed)]
    assert engine.reads == 1  # the changed summary; the purged one is simply gone
    assert engine.pending() == [("th", changed)]
    assert ("th", gone) not in engine.versions and queued(hub) == 0
    await hub.runtime.run(engine.after_sync)
    status = engine.status()
    assert (status["held"], status["pending"], status["scoring"]) == (held - 1, 0, engine.scoring)
    version = held_version(hub, ("th", changed))
    stamp = stamp_of(hub, ("th", changed))
    assert version is not None and stamp is not None and stamp.split(":")[-2] == str(version)
    assert stamp_of(hub, ("th", gone)) is None  # the stamp of what is gone is forgotten

    # An engine that does not consume the queue (a CLI command's) leaves it alone.
    touch(th, changed)
    await hub.sync.sync_peer("th", force=True)
    tool = MatchEngine(hub.runtime)
    await hub.runtime.run(tool.after_sync)
    assert queued(hub) == 1
    assert await hub.runtime.run(engine.refresh) == [("th", changed)]


async def test_a_new_worker_starts_from_the_snapshot_and_takes_in_what_changed_since(
    node_factory: NodeFactory,
) -> None:
    hub, members = await quiet_hub(node_factory)
    rt = hub.runtime
    first = MatchEngine(rt, consumes_queue=True)
    await rt.run(first.after_sync)  # loaded from the database: a snapshot at once
    held = first.status()["held"]
    assert match_snapshot.path_in(rt.data_dir).exists() and first.unsaved == 0
    th = members["th"]
    changed = matched_listing(th)
    touch(th, changed)
    await hub.sync.sync_peer("th", force=True)

    again = MatchEngine(rt, consumes_queue=True)  # a new worker's engine
    assert await rt.run(again.refresh) == [("th", changed)]
    assert again.reads == 1  # the changed summary alone is parsed
    assert again.pending() == [("th", changed)] and queued(hub) == 0
    fresh = MatchEngine(rt)  # everything parsed from the database
    await rt.run(fresh.refresh)
    assert again.versions == fresh.versions and len(again.versions) == held
    # The same top lists (a tie may be broken the other way: their scores are compared).
    assert scores(again.top(k=5)) == scores(fresh.top(k=5))
    await rt.run(again.after_sync)
    assert again.status()["pending"] == 0

    # A snapshot of another scoring (or matching code) is not used.
    head = match_snapshot.header(rt.node_id, again.scoring)
    assert match_snapshot.load(rt.data_dir, head) is not None
    assert match_snapshot.load(rt.data_dir, {**head, "code": "other"}) is None
    other = MatchEngine(rt, consumes_queue=True)
    other.scoring = "0/lexical"  # not this code's scoring version
    await rt.run(other.refresh)
    assert other.reads == held and other.status()["pending"] == held


async def _first_matched(node_factory: NodeFactory) -> tuple[Any, Any]:
    """The hub and its members with 40 generated listings each, pulled and matched once:
    the network and the hub's matching."""
    net = await start_hub_network(node_factory, MEMBERS, load_hub_sample=False)
    for node_id in MEMBERS:
        load_records(net.nodes[node_id], generated(node_id, 40))
    hub = net.hub
    matching = hub.app[HUB_MATCHING]
    await pull_all(net)
    service = matching.service
    await until("the first match", lambda: service.left == 0 and queued(hub) == 0)
    return net, matching


async def test_a_change_whose_rematch_never_ran_is_matched_at_the_next_start(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page is stored, then the worker dies before it is told (a crash between the
    apply and the re-match): the next start finds the change; none is lost."""
    monkeypatch.setattr(app_setup, "CATCH_UP_S", 3600.0)  # no look at the queue meanwhile
    net, matching = await _first_matched(node_factory)
    hub, service = net.hub, matching.service
    assert service.status()["pending"] == 0
    held = service.status()["held"]

    hub.sync.remove_observer(matching)  # the re-match after the next pull never runs
    th = net.nodes["th"]
    changed = matched_listing(th)
    before = stamp_of(hub, ("th", changed))
    touch(th, changed)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and queued(hub) == 1
    worker = service.worker
    assert worker is not None and worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    await until(
        "the worker's death", lambda: worker._proc is not None and not worker._proc.is_alive()
    )

    await service.rematch()  # a new worker: loaded from what is held
    assert worker.starts == 2
    assert service.status() == {**service.status(), "held": held, "pending": 0}
    after = stamp_of(hub, ("th", changed))
    assert after is not None and after != before
    assert after.split(":")[-2] == str(held_version(hub, ("th", changed)))
    assert queued(hub) == 0


async def test_a_change_not_told_to_a_running_matcher_is_taken_at_its_next_pass(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull whose observer was not told (another process's, lost with it): the queue
    has the change, and the leader's next pass, for whatever reason, takes it."""
    monkeypatch.setattr(app_setup, "CATCH_UP_S", 3600.0)  # no look at the queue meanwhile
    net, matching = await _first_matched(node_factory)
    hub, service = net.hub, matching.service
    hub.sync.remove_observer(matching)
    th = net.nodes["th"]
    changed = matched_listing(th)
    before = stamp_of(hub, ("th", changed))
    touch(th, changed)
    await hub.sync.sync_peer("th", force=True)
    assert queued(hub) == 1 and stamp_of(hub, ("th", changed)) == before
    hub.sync.add_observer(matching)
    await hub.sync.sync_peer("vn", force=True)  # nothing new there: no observer call
    assert queued(hub) == 1
    await service.rematch()
    assert queued(hub) == 0 and stamp_of(hub, ("th", changed)) != before


async def test_queued_changes_no_pull_asked_for_are_matched_at_the_leaders_next_look(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cattc sync`` meanwhile, or a hint from another process lost: the leader looks
    at the queue every ``CATCH_UP_S`` and re-matches what waits there."""
    monkeypatch.setattr(app_setup, "CATCH_UP_S", 0.2)
    net = await start_hub_network(node_factory, ["th"], load_hub_sample=False)
    load_records(net.nodes["th"], generated("th", 40))
    hub = net.hub
    matching = hub.app[HUB_MATCHING]
    hub.sync.remove_observer(matching)  # no pull asks for a re-match
    th = net.nodes["th"]
    changed = matched_listing(th)
    await hub.sync.sync_peer("th", force=True)
    await until("the first match", lambda: stamp_of(hub, ("th", changed)) is not None)
    before = stamp_of(hub, ("th", changed))
    touch(th, changed)
    await hub.sync.sync_peer("th", force=True)
    await until(
        "the change matched", lambda: queued(hub) == 0 and stamp_of(hub, ("th", changed)) != before
    )


async def test_a_regained_leadership_serves_the_new_matcher(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, ["th"], load_hub_sample=False)
    hub = net.hub
    await hub.sync.sync_peer("th", force=True)
    leadership = hub.app[LEADER]
    first = hub.app[HUB_MATCHING].service
    held = await hub.runtime.run(first.status)
    await leadership._step_down()  # as when the lock's connection is lost
    with pytest.raises(MatchingUnavailable):
        first.status()
    await until("the lead taken again", lambda: leadership.is_leader)
    current = hub.app[HUB_MATCHING].service
    assert current is not first
    end = time.monotonic() + DEADLINE_S
    while await hub.runtime.run(current.status) != held:  # loaded again, nothing to do
        assert time.monotonic() < end, "the new matcher did not load what is held"
        await asyncio.sleep(0.02)
    status, body = await get_json(
        http, hub.url + "/admin/v1/matches", token=hub.token, params={"limit": 5}
    )
    assert status == 200 and isinstance(body["matches"], list)
    await hub.app[HUB_MATCHING].stop()


async def test_the_hubs_own_listings_are_read_again_only_when_they_changed(
    node_factory: NodeFactory,
) -> None:
    net = await start_hub_network(node_factory, [])
    hub = net.hub
    rt = hub.runtime
    await hub.app[HUB_MATCHING].service.aclose()
    engine = MatchEngine(rt, consumes_queue=True)
    await rt.run(engine.after_sync)
    own = sorted(engine.own)
    assert len(own) >= 2 and engine.status()["pending"] == 0
    scanned = engine.own_scanned
    await rt.run(engine.after_sync)
    assert engine.own_scanned == scanned  # neither the change log nor the policy moved

    record = rt.listings.get(own[0][1]).record
    title = {"en": f"Renamed {record['version'] + 1}"}
    rt.listings.update(own[0][1], {**record, "title": title})
    assert await rt.run(engine.refresh) == [own[0]]
    assert engine.pending() == [own[0]]
    rt.listings.withdraw(own[1][1])
    assert await rt.run(engine.refresh) == []
    assert own[1] not in engine.versions and own[1] not in engine.own
    await rt.run(engine.after_sync)
    assert engine.status()["pending"] == 0 and stamp_of(hub, own[1]) is None
