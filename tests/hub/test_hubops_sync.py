"""The hub operator's sync page: each member's state after real sync rounds, and the
history over a day or a week aggregated from ``sync_runs`` into sparklines and tables."""

from __future__ import annotations

import re

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.hubops.charts import sparkline
from node.hubops.history import HOUR_MS, sync_history, window_bounds
from node.services import remote_store
from node.storage.models import SyncRunRow
from sync.interfaces import RunRecord
from tests.federation.network import NodeFactory
from tests.hub.helpers import start_hub_network
from tests.hub.hubops_pages import staff
from tests.nodes import RunningNode

PAGE = "/console/hub/sync"


def add_runs(node: RunningNode, runs: list[dict[str, object]]) -> None:
    with Session(node.runtime.engine) as session, session.begin():
        for run in runs:
            session.add(SyncRunRow(**run))


async def test_sync_page_after_sync_rounds(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, ["th", "vn"])
    hub = net.hub
    viewer = staff(http, hub, "lan", "viewer")

    before = await viewer.get(PAGE)
    assert before.status == 200
    assert "No sync run in this period." in before.text
    assert "never synced" in before.text

    runs = await hub.sync.sync_all()
    assert {r.peer for r in runs} == {"th", "vn"}
    applied = {r.peer: r.applied for r in runs}
    assert all(applied.values())

    page = await viewer.get(PAGE)
    assert page.status == 200
    for peer in ("th", "vn"):
        row = re.search(rf'<tr id="sync-{peer}">(.*?)</tr>', page.text, re.S)
        assert row, peer
        assert "state-ok" in row.group(1)
        assert f"<td>{applied[peer]}</td>" in row.group(1)  # applied in the last run
        history = re.search(rf'aria-labelledby="h-{peer}">(.*?)</section>', page.text, re.S)
        assert history, peer
        assert history.group(1).count("<svg") == 2  # lag and throughput
        assert f"items applied: {applied[peer]}" in history.group(1)
        assert "<polyline" in history.group(1) or "<circle" in history.group(1)
    assert " style=" not in page.text  # the CSP forbids inline styles

    week = await viewer.get(PAGE + "?window=7d")
    assert week.status == 200 and '<option value="7d" selected>' in week.text
    odd = await viewer.get(PAGE + "?window=forever")
    assert odd.status == 200 and '<option value="24h" selected>' in odd.text


async def test_history_buckets_in_sql(node_factory: NodeFactory) -> None:
    hub = await node_factory("cn", is_hub=True)
    engine = hub.runtime.engine
    now = hub.runtime.clock()
    since, width, count = window_bounds(now, "24h")
    assert (width, count) == (HOUR_MS, 24) and since <= now - 23 * HOUR_MS
    assert sync_history(engine, now, "24h").peers == {}
    add_runs(  # recorded as sync records them: in the order they end
        hub,
        [
            {"peer": "vn", "started": now - 9 * 24 * HOUR_MS, "applied": 9},  # too old
            {"peer": "th", "started": now - 3 * 24 * HOUR_MS, "applied": 7, "lag": 1},
            # two runs in the same hour, one failed: summed, the largest lag kept
            {"peer": "th", "started": now - 2 * HOUR_MS, "applied": 120, "lag": 40},
            {
                "peer": "th",
                "started": now - 2 * HOUR_MS + 1000,
                "applied": 60,
                "rejected": 2,
                "lag": 5,
                "error": "unreachable",
            },
        ],
    )
    day = sync_history(engine, now, "24h")
    assert set(day.peers) == {"th"} and day.cut is None
    (busy,) = [b for b in day.peers["th"].buckets if b.runs]
    assert (busy.runs, busy.applied, busy.rejected, busy.failed, busy.max_lag) == (
        2,
        180,
        2,
        1,
        40,
    )
    assert busy.per_minute == 3.0  # 180 items in an hour
    assert len(day.peers["th"].buckets) == 24
    assert busy.start <= now - 2 * HOUR_MS < busy.start + HOUR_MS

    week = sync_history(engine, now, "7d")
    assert set(week.peers) == {"th"} and week.peers["th"].applied == 187
    assert len(week.peers["th"].buckets) == 28

    # More runs than a page reads: the newest are counted, and the page says from when.
    capped = sync_history(engine, now, "7d", max_runs=2)
    assert capped.peers["th"].applied == 180 and capped.cut == now - 2 * HOUR_MS
    add_runs(
        hub, [{"peer": "th", "started": now - 1000 * (60 - i), "applied": 1} for i in range(50)]
    )
    many = sync_history(engine, now, "24h", max_runs=3)
    assert many.peers["th"].runs == 3 and many.cut == now - 1000 * 13


def test_sparkline_gaps_and_escaping() -> None:
    svg = sparkline([None, 1.0, 2.0, None, 4.0], label='Lag <of> "th"', kind="lag")
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # a gap splits the line
    assert "Lag &lt;of&gt; &#34;th&#34;" in svg and "style=" not in svg
    empty = sparkline([None, None], label="x", kind="rate")
    assert "<polyline" not in empty and "<circle" not in empty


async def test_run_records_older_than_the_retention_are_deleted_now_and_then(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of runs does not grow for ever: a run whose id is a multiple of
    ``PRUNE_RUNS_EVERY`` deletes those that started more than ``RUN_RETENTION_MS``
    before it ended; the others stay, and the other runs delete nothing."""
    hub = await node_factory("cn", is_hub=True)
    store = remote_store.RemoteStore(hub.runtime.engine)
    now = hub.runtime.clock()
    old = now - remote_store.RUN_RETENTION_MS - HOUR_MS

    def starts() -> list[int]:
        with Session(hub.runtime.engine) as session:
            return list(session.scalars(select(SyncRunRow.started).order_by(SyncRunRow.id)))

    monkeypatch.setattr(remote_store, "PRUNE_RUNS_EVERY", 10**9)
    store.record_run(RunRecord("th", started=old, finished=old + 1), success=True)
    store.record_run(RunRecord("vn", started=now - HOUR_MS, finished=now), success=True)
    assert old in starts()  # no run of these ids prunes
    monkeypatch.setattr(remote_store, "PRUNE_RUNS_EVERY", 1)
    store.record_run(RunRecord("th", started=now, finished=now + 1), success=True)
    assert old not in starts()
    assert {now - HOUR_MS, now} <= set(starts())
