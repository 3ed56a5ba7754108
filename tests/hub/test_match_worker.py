"""The hub's matching runs in a worker process: it finds what the in-process matcher
finds, answers queries while it re-matches, can be stopped in the middle and resumes
where it stopped without losing or repeating a notice, and is started again if it dies.
The event loop's lateness is measured and shown in /hub/status and /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.import_listings import load_templates, make_listing
from node.hub.loop_lag import LoopLagMonitor
from node.hub.match_engine import CHUNK_S, FIRST_REFS, REFS_PER_TXN, MatchEngine, chunk_size
from node.hub.match_worker import MatchingUnavailable
from node.hub.notices import MatchingService
from node.matching.match import Match
from node.storage.models import MatchStampRow, NoticeSentRow, OutboxRow
from node.web.appkeys import HUB_MATCHING
from tests.federation.network import Network, NodeFactory, load_records
from tests.hub.helpers import get_json, start_hub_network
from tests.hub.test_status_metrics import gauges, metrics_text
from tests.nodes import COUNTRY, RunningNode

MEMBERS = ("th", "vn")
GENERATED = 150  # per member, besides the sample: a re-match that takes a while


def generated(node_id: str, n: int) -> list[dict[str, Any]]:
    templates = [t for t in load_templates() if t["visibility"] != "private"]
    rng = random.Random(node_id)
    out = []
    for i in range(n):
        rec = make_listing(templates[i % len(templates)], i + 1, rng)
        rec["id"] = rec["id"].replace("th-", f"{node_id}-gen-", 1)
        rec["owner"] = node_id
        rec["country"] = COUNTRY[node_id]
        rec["visibility"] = "public"
        rec.pop("share_with", None)
        rec["expires"] = "2030-01-01"
        if rec["category"] == "event":
            rec["organizer"] = node_id
        out.append(rec)
    return out


async def pull_all(net: Network) -> None:
    for peer in MEMBERS:
        run = await net.hub.sync.sync_peer(peer, force=True)
        assert run is not None and run.error is None, run


def stamped(hub: RunningNode) -> int:
    with Session(hub.runtime.engine) as session:
        return int(session.scalar(select(func.count()).select_from(MatchStampRow)) or 0)


def notices_queued(hub: RunningNode) -> tuple[set[tuple[str, ...]], Counter[tuple[str, ...]]]:
    """What the hub recorded as sent, and the match notices it queued per key."""
    with Session(hub.runtime.engine) as session:
        sent: set[tuple[str, ...]] = {
            (r.reader, r.own_id, r.cp_owner, r.cp_id)
            for r in session.scalars(select(NoticeSentRow))
            if r.reader != "cn"
        }
        queued: Counter[tuple[str, ...]] = Counter()
        for row in session.scalars(select(OutboxRow).where(OutboxRow.type == "match_notice")):
            n = json.loads(row.obj)
            cp = n["counterpart"]
            queued[(row.reader, n["own_listing"]["id"], cp["owner"], cp["listing_id"])] += 1
        return sent, queued


def pairs(top: dict[tuple[str, str], list[Match]]) -> set[tuple[Any, ...]]:
    return {(m.request, m.candidate, m.kind, m.score) for ms in top.values() for m in ms}


async def poll_until(check: Any, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"gave up after {deadline_s:g} s waiting for {what}")
        await asyncio.sleep(0.01)


async def test_the_worker_finds_what_the_matcher_in_process_finds(
    node_factory: NodeFactory,
) -> None:
    net = await start_hub_network(node_factory, MEMBERS)
    await pull_all(net)
    service = net.hub.app[HUB_MATCHING].service
    assert service.worker is not None and service.worker.pid not in (None, os.getpid())
    in_worker = service.top(k=5)
    assert in_worker, "the sample data has matches"
    local = MatchingService(net.hub.runtime)
    local.refresh()
    assert pairs(local.top(k=5)) == pairs(in_worker)
    # The best pairs of all lists: the worker explains and sends those alone.
    every = sorted(
        (m for ms in in_worker.values() for m in ms), key=lambda m: (-m.score, m.request)
    )
    assert service.best(20, k=5) == local.best(20, k=5) == every[:20]
    ref = next(iter(in_worker))
    assert service.matches_for(ref) == local.matches_for(ref)
    status = service.status()
    assert status["pending"] == 0 and status["held"] == stamped(net.hub) > 0, status

    # Stamps written by the worker are what an engine here computes: nothing to redo;
    # a new scoring version makes everything pending once.
    engine = MatchEngine(net.hub.runtime)
    engine.refresh()
    assert engine.pending() == []
    engine.scoring = "next/lexical"
    assert len(engine.pending()) == status["held"]
    # A pass with no time left does one batch; the rest stays for the next passes.
    assert status["held"] > FIRST_REFS
    engine.after_sync(budget_s=0)
    assert engine.left == len(engine.pending()) == status["held"] - FIRST_REFS


def test_a_notify_pass_takes_fewer_listings_a_transaction_when_each_costs_more() -> None:
    """A retraction waits for the transaction in progress: about CHUNK_S of matching."""
    assert chunk_size(0.0) == chunk_size(CHUNK_S / 1000) == REFS_PER_TXN
    assert chunk_size(CHUNK_S / 10) == 10
    assert chunk_size(CHUNK_S / 2.5) == 2
    assert chunk_size(CHUNK_S * 4) == 1


async def test_a_stopped_rematch_resumes_without_losing_or_repeating_a_notice(
    node_factory: NodeFactory,
) -> None:
    net = await start_hub_network(node_factory, MEMBERS, load_hub_sample=False)
    for node_id in MEMBERS:
        load_records(net.nodes[node_id], generated(node_id, GENERATED))
    hub = net.hub
    hub.sync.remove_observer(hub.app[HUB_MATCHING])  # re-matched here, not by the pulls
    service = hub.app[HUB_MATCHING].service
    await service.rematch()  # after the one at start, which found nothing to do
    base = stamped(hub)
    await pull_all(net)
    rematch = asyncio.ensure_future(service.rematch())
    await poll_until(lambda: stamped(hub) >= base + FIRST_REFS, 120, "a first batch")
    # Mid-way, queries are answered between batches.
    status = await hub.runtime.run(service.status)
    assert status["pending"] > 0 and not rematch.done(), status
    service.close()
    assert await asyncio.wait_for(rematch, 10) == 0  # cut short, not an error
    with pytest.raises(MatchingUnavailable):
        service.status()
    done_at_stop = stamped(hub)
    held = status["held"]
    assert base + FIRST_REFS <= done_at_stop < held, (base, done_at_stop, held)
    sent_at_stop, _ = notices_queued(hub)

    # A new service as the hub makes one (the same model, or "off" as the suite sets it).
    again = MatchingService(hub.runtime, hub.app[HUB_MATCHING].worker_model(), in_worker=True)
    try:
        assert again.status()["pending"] == held - done_at_stop
        await again.rematch()
        while again.left:  # passes of PASS_BUDGET_S each
            await again.rematch()
        assert again.status() == {**status, "pending": 0}
    finally:
        await again.aclose()
    assert stamped(hub) == held
    sent, queued = notices_queued(hub)
    assert sent >= sent_at_stop and queued == {k: 1 for k in sent}
    # Nothing was lost: matching everything again from scratch finds no new pair.
    engine = MatchEngine(hub.runtime)
    engine.refresh()
    engine.scoring = "again/lexical"
    engine.after_sync()
    assert notices_queued(hub) == (sent, queued)


async def test_a_dead_worker_is_started_again(node_factory: NodeFactory) -> None:
    net = await start_hub_network(node_factory, ["th"])
    await pull_all_of(net, "th")
    service = net.hub.app[HUB_MATCHING].service
    worker = service.worker
    assert worker is not None and worker.pid is not None
    held = service.status()["held"]
    os.kill(worker.pid, signal.SIGKILL)
    await poll_until(lambda: worker._proc is not None and not worker._proc.is_alive(), 10, "death")
    assert service.status()["held"] == held  # a new worker, loaded from the database
    assert worker.starts == 2


async def pull_all_of(net: Network, peer: str) -> None:
    run = await net.hub.sync.sync_peer(peer, force=True)
    assert run is not None and run.error is None, run


async def test_bad_calls_are_refused(node_factory: NodeFactory) -> None:
    hub = await node_factory("cn", is_hub=True)
    service = hub.app[HUB_MATCHING].service
    assert service.worker is not None
    with pytest.raises(ValueError, match="unknown method"):
        service.worker.submit("drop_everything", (), now=0)
    with pytest.raises(ValueError, match="model name or None"):
        MatchingService(hub.runtime, encoder=object(), in_worker=True)
    with pytest.raises(ValueError, match="positive"):
        LoopLagMonitor(interval_s=0)


def test_loop_lag_summary_over_the_window() -> None:
    now = [100.0]
    monitor = LoopLagMonitor(window_s=10, clock=lambda: now[0])
    assert monitor.summary() == {
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "max_ms": 0.0,
        "samples": 0,
        "window_s": 10,
    }
    monitor.record(80.0, 5.0)  # outside the window by the time of the summary
    for i in range(100):
        monitor.record(95.0 + i * 0.01, 0.001 * i)
    monitor.record(99.0, -0.001)  # early wake-ups count as no lag
    summary = monitor.summary()
    assert summary["samples"] == 101
    assert summary["p50_ms"] == 49.0 and summary["p99_ms"] == 98.0
    assert summary["max_ms"] == 99.0


async def test_loop_lag_in_status_and_metrics(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub = await node_factory("cn", is_hub=True)

    async def sampled() -> dict[str, Any]:
        status, body = await get_json(http, hub.url + "/hub/status", token=hub.token)
        assert status == 200
        lag: dict[str, Any] = body["event_loop_lag"]
        return lag

    end = time.monotonic() + 10
    while (lag := await sampled())["samples"] < 3:
        assert time.monotonic() < end, "no lag samples after 10 s"
        await asyncio.sleep(0.05)
    assert lag["window_s"] == 60 and lag["max_ms"] >= lag["p99_ms"] >= lag["p50_ms"] >= 0
    values = gauges(await metrics_text(http, hub))
    quantiles = {
        dict(labels)["quantile"]: value
        for (name, labels), value in values.items()
        if name == "cattc_event_loop_lag_seconds"
    }
    assert set(quantiles) == {"0.5", "0.99", "1"}
    assert quantiles["1"] >= quantiles["0.99"] >= quantiles["0.5"] >= 0
