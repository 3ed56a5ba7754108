"""Several processes serving one hub on one database (``cattc serve --workers N``): the
node's leader lock decides which runs the matcher (and the other once-per-node work);
the others answer the matcher's questions through it, and one of them takes over when the
leader stops. Two apps on one data directory in this test process stand for two
processes (each lock is held on a connection or file descriptor of its own)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from node.services.leader import (
    LEADER_KEY,
    AdvisoryLeaderLock,
    FileLeaderLock,
    LeaderInfo,
    LeaderPresigner,
    leader_in,
    leader_key,
    open_leader_lock,
    read_leader,
)
from node.storage.models import MetaRow
from node.web.appkeys import HUB_MATCHING, LEADER, SYNC
from sync.interfaces import Changes
from tests.conftest import POSTGRES_URL
from tests.federation.network import NodeFactory
from tests.hub.helpers import cattc_json, get_json, start_hub_network
from tests.nodes import RunningNode, serve_node

DEADLINE_S = 20.0


async def until(what: str, check: Callable[[], Awaitable[bool]] | Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < end, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.05)


def worker_pid(node: RunningNode) -> int | None:
    worker = node.app[HUB_MATCHING].service.worker
    return None if worker is None else worker.pid


async def second_process(hub: RunningNode) -> RunningNode:
    """Another app on the hub's data directory and database."""
    cfg = hub.runtime.config.model_copy()
    return await serve_node(hub.data_dir, cfg, hub.token)


async def matches(http: aiohttp.ClientSession, node: RunningNode) -> tuple[int, Any]:
    return await get_json(
        http, node.url + "/admin/v1/matches", token=node.token, params={"k": 3, "limit": 20}
    )


async def test_one_process_runs_the_matcher_and_another_takes_over(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, ["th"])
    first = net.hub
    run = await first.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied
    second = await second_process(first)
    stopped = False
    try:
        # The first process started first: it leads, and only it starts a matcher.
        assert first.app[LEADER].is_leader and not second.app[LEADER].is_leader
        assert second.app[SYNC].presigner.__class__ is LeaderPresigner
        await until("the leader's matcher started", lambda: worker_pid(first) is not None)
        service = first.app[HUB_MATCHING].service

        async def matched() -> bool:
            return bool((await first.runtime.run(service.status))["pending"] == 0)

        await until("the leader's first re-match", matched)
        assert worker_pid(second) is None
        # /hub/status says who leads, in either process.
        for node, mine in ((first, True), (second, False)):
            status, body = await get_json(http, node.url + "/hub/status", token=node.token)
            assert status == 200
            assert body["leader"]["this_process"] is mine
            assert body["leader"]["since"] > 0 and "secret" not in body["leader"]
        # The match list, asked of the other process, comes from the leader's matcher.
        status, of_leader = await matches(http, first)
        assert status == 200 and of_leader["matches"]
        assert await matches(http, second) == (200, of_leader)
        assert first.app[HUB_MATCHING].answered == 1
        assert worker_pid(second) is None  # it started no matcher of its own for that
        # A pull in the other process hands its re-match to the leader.
        await second.app[HUB_MATCHING].synced(Changes("th", {"th-off-0001": "updated"}))
        assert worker_pid(second) is None

        await first.stop()
        stopped = True
        await until("the other process leads", lambda: second.app[LEADER].is_leader)
        await until("its matcher started", lambda: worker_pid(second) is not None)
        status, body = await get_json(http, second.url + "/hub/status", token=second.token)
        assert status == 200 and body["leader"]["this_process"] is True

        async def same_list() -> bool:  # once its matcher has read what the hub holds
            return await matches(http, second) == (200, of_leader)

        await until("the new leader's match list", same_list)
    finally:
        await second.stop()
        if not stopped:
            await first.stop()


async def test_without_a_leader_the_match_list_is_refused_not_hung(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub = await node_factory("cn", is_hub=True)
    other = await second_process(hub)
    try:
        assert not other.app[LEADER].is_leader
        # The leader row names an address nobody answers at (a leader that died).
        with Session(hub.runtime.engine) as session, session.begin():
            row = session.get_one(MetaRow, LEADER_KEY)
            gone = LeaderInfo(1, "elsewhere", 1, "x", "http://127.0.0.1:9", "s")
            row.value = json.dumps(dataclasses.asdict(gone))
        status, body = await matches(http, other)
        assert status == 503 and body["error"]["code"] == "server_busy"
        assert "did not answer" in body["error"]["message"]
        with Session(hub.runtime.engine) as session, session.begin():
            session.delete(session.get_one(MetaRow, LEADER_KEY))
        status, body = await matches(http, other)
        assert status == 503 and "no leader" in body["error"]["message"]
        # A re-match handed to no leader is not an error for the pull that asked.
        await other.app[HUB_MATCHING].synced(Changes("th", {"th-off-0001": "updated"}))
    finally:
        await other.stop()


def as_printed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``/admin/v1/matches`` rows as ``cattc matches --json`` prints them."""

    def ref(x: dict[str, str]) -> str:
        return f"{x['owner']}/{x['id']}"

    return [
        {
            "request": ref(r["request"]),
            "candidate": ref(r["candidate"]),
            "kind": r["kind"],
            "score": r["score"],
            "shared": [*r["shared_codes"], *r["shared_terms"]],
        }
        for r in rows
    ]


async def test_cattc_matches_asks_the_running_hub_and_works_without_one(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, ["th"])
    hub = net.hub
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None
    service = hub.app[HUB_MATCHING].service

    async def matched() -> bool:
        return bool((await hub.runtime.run(service.status))["pending"] == 0)

    await until("the first re-match", matched)
    status, body = await get_json(
        http, hub.url + "/admin/v1/matches", token=hub.token, params={"k": 3, "limit": 50}
    )
    assert status == 200 and body["matches"]
    expected = as_printed(body["matches"])
    assert await cattc_json("matches", hub.data_dir) == expected
    assert hub.app[HUB_MATCHING].answered == 1  # asked of the running hub
    # A leader row left by a hub that died: the command computes the list itself.
    with Session(hub.runtime.engine) as session, session.begin():
        row = session.get_one(MetaRow, LEADER_KEY)
        gone = dataclasses.replace(LeaderInfo(**json.loads(row.value)), url="http://127.0.0.1:9")
        row.value = json.dumps(dataclasses.asdict(gone))
    assert await cattc_json("matches", hub.data_dir) == expected
    assert hub.app[HUB_MATCHING].answered == 1


async def test_the_control_endpoint_wants_the_leaders_secret(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub = await node_factory("cn", is_hub=True)
    info = read_leader(hub.runtime.engine)
    assert info is not None and info.url.startswith("http://127.0.0.1:")
    for headers in ({}, {"X-Cattc-Leader": "wrong"}):
        async with http.post(info.url + "/rematch", headers=headers) as resp:
            assert resp.status == 403
        async with http.get(info.url + "/matches?k=1&limit=1", headers=headers) as resp:
            assert resp.status == 403
    headers = {"X-Cattc-Leader": info.secret}
    async with http.get(info.url + "/matches?k=x&limit=1", headers=headers) as resp:
        assert resp.status == 400
    async with http.post(info.url + "/rematch", headers=headers) as resp:
        assert resp.status == 202


async def test_a_member_runs_its_presigner_in_one_process_only(
    node_factory: NodeFactory,
) -> None:
    member = await node_factory("th")
    other = await second_process(member)
    try:
        leader, follower = member.app[SYNC].presigner, other.app[SYNC].presigner
        assert isinstance(leader, LeaderPresigner) and isinstance(follower, LeaderPresigner)
        assert member.app[LEADER].is_leader and not other.app[LEADER].is_leader
        assert HUB_MATCHING not in member.app  # a member has no hub state at all
        # The leader's row is the first process's; the other sees it too.
        seen = read_leader(other.runtime.engine)
        assert seen is not None and seen.instance == member.app[LEADER].instance
    finally:
        await other.stop()
    # The follower stopping leaves the leader's row alone.
    assert read_leader(member.runtime.engine) is not None


def test_the_file_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    one, two = FileLeaderLock(tmp_path), FileLeaderLock(tmp_path)
    assert one.try_acquire() and one.still_held()
    assert not two.try_acquire()
    one.release()
    assert not one.still_held()
    assert two.try_acquire()
    two.release()


async def test_the_database_lock_is_one_holder_at_a_time(node_factory: NodeFactory) -> None:
    """On the node's own engine: an advisory lock (PostgreSQL) or the file lock (SQLite)."""
    hub = await node_factory("vn")
    rt = hub.runtime
    assert (rt.engine.dialect.name == "postgresql") != isinstance(
        open_leader_lock(rt), FileLeaderLock
    )
    # The app's own leadership holds it: a third bidder gets nothing.
    third = open_leader_lock(rt)
    try:
        assert not await rt.run(third.try_acquire)
    finally:
        await rt.run(third.release)
    assert hub.app[LEADER].is_leader


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL only: set CATTC_TEST_POSTGRES_URL")
@pytest.mark.parametrize("db_engine_name", ["postgresql"], indirect=True)
async def test_a_leader_that_loses_its_connection_stops_and_bids_again(
    node_factory: NodeFactory,
) -> None:
    """PostgreSQL: the lock lives with the leader's session; when the database ends that
    session, the leader stops its singletons and takes the lock again with a new one."""
    hub = await node_factory("cn", is_hub=True)
    rt = hub.runtime
    assert rt.engine.dialect.name == "postgresql"  # a file lock has no connection to lose
    leadership = hub.app[LEADER]
    lost: list[bool] = []

    async def note_loss() -> None:
        lost.append(True)

    leadership.on_lose(note_loss)
    first_matcher = hub.app[HUB_MATCHING].service

    def end_the_leaders_session() -> int:
        with rt.engine.connect() as conn:
            schema = str(conn.execute(text("SELECT current_schema()")).scalar())
            key = leader_key(rt.node_id, schema) & 0xFFFFFFFFFFFFFFFF
            pids = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :hi AND objid = :lo"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            ).scalars()
            ended = [conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": p}) for p in pids]
            conn.commit()
            return len(ended)

    assert await rt.run(end_the_leaders_session) == 1
    await until("the leader to notice", lambda: bool(lost))
    await until("the leader to lead again", lambda: leadership.is_leader)
    assert hub.app[HUB_MATCHING].service is not first_matcher  # a fresh matcher
    seen = await rt.db.run(leader_in)
    assert seen is not None and seen.instance == leadership.instance


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL only: set CATTC_TEST_POSTGRES_URL")
@pytest.mark.parametrize("db_engine_name", ["postgresql"], indirect=True)
async def test_a_bidder_whose_connection_died_can_still_lead(node_factory: NodeFactory) -> None:
    """A process that was not the leader when the database ended its session kept the
    failed connection, failed every try after it ("Can't reconnect until invalid
    transaction is rolled back") and never led, even once the leader had stopped."""
    hub = await node_factory("cn", is_hub=True)
    rt = hub.runtime
    bidder = open_leader_lock(rt)
    try:
        assert not await rt.run(bidder.try_acquire)  # the app leads
        assert isinstance(bidder, AdvisoryLeaderLock) and bidder.conn is not None
        session = bidder.conn
        pid = await rt.run(lambda: session.execute(text("SELECT pg_backend_pid()")).scalar())

        def end(backend: int) -> None:
            with rt.engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
                conn.commit()

        await rt.run(end, pid)
        with pytest.raises(Exception):  # noqa: B017 - the driver's error for a dead session
            await rt.run(bidder.try_acquire)
        assert not await rt.run(bidder.try_acquire)  # a new session, the app still leads
        await hub.app[LEADER].aclose()  # the leader stops
        assert await rt.run(bidder.try_acquire)
    finally:
        await rt.run(bidder.release)
