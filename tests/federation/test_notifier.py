"""The notifier tells the node's readers soon after a change: a stream of edits does not
hold it back, and a reader that never answers delays no other reader's notify.

Real parts: a hub and a member served on loopback; the member's ``Notifier`` over its
own runtime and signing client, notifying the hub (which answers 202) and, in the second
test, a peer of the member's config that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Callable

from node.config import PeerConfig
from node.services.notifier import Notifier, change_state
from tests.federation.network import NodeFactory, add_member, hub_key, load_records
from tests.federation.rows_read import rows_read
from tests.node.sample import sample_records
from tests.nodes import RunningNode


async def member_of_a_hub(node_factory: NodeFactory) -> tuple[RunningNode, RunningNode]:
    hub = await node_factory("cn", is_hub=True, sync_interval_seconds=3600.0)
    th = await node_factory(
        "th", hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn", sync_interval_seconds=3600.0
    )
    add_member(hub, th)
    load_records(th, sample_records("th")[:4])
    hub.sync.start()  # a notify asks for a pull of th: the hub has a job for it
    return hub, th


async def until(check: Callable[[], bool], deadline_s: float, what: str) -> float:
    """Seconds until ``check()`` holds, at most ``deadline_s``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline_s, f"no {what} within {deadline_s:g} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[None]:
    task = asyncio.create_task(notifier.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_stream_of_edits_does_not_hold_the_notify_back(
    node_factory: NodeFactory,
) -> None:
    hub, th = await member_of_a_hub(node_factory)
    rt = th.runtime
    notifier = Notifier(rt, th.sync.client)
    listing_id = sample_records("th")[0]["id"]
    edits = 0
    stop = asyncio.Event()

    def edit() -> None:
        record = copy.deepcopy(rt.listings.get(listing_id).record)
        record["summary"] = f"{record['summary'][:1500]} (edit {edits})"
        rt.listings.update(listing_id, record)

    async def keep_editing() -> None:  # an edit every 50 ms: the head is never still
        nonlocal edits
        while not stop.is_set():
            await rt.run(edit)
            edits += 1
            await asyncio.sleep(0.05)

    async with running(notifier):
        await asyncio.sleep(notifier.poll_s)  # it has read the head it starts from
        editor = asyncio.create_task(keep_editing())
        try:
            # Before: notified once the head had been still for the debounce time, i.e.
            # only after the edits stopped. Now within max_delay_s (plus the reads and the
            # hub's answer), while they go on.
            waited = await until(lambda: notifier.sent >= 1, 5, "notify during the edits")
            assert not editor.done()
        finally:
            stop.set()
            await editor
    print(f"\nnotified {waited:.2f} s into a stream of edits ({edits} in all)")


async def test_a_reader_that_never_answers_delays_no_other(
    node_factory: NodeFactory,
) -> None:
    hub, th = await member_of_a_hub(node_factory)
    rt = th.runtime
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # takes the request, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        rt.config.peers = [PeerConfig(node_id="la", base_url=f"http://127.0.0.1:{port}")]
        notifier = Notifier(rt, th.sync.client, timeout_s=2.0)
        async with running(notifier):
            await asyncio.sleep(notifier.poll_s * 2)  # it has read the head it starts from
            load_records(th, sample_records("th")[4:5])
            waited = await until(lambda: notifier.sent >= 1, 5, "the hub's notify")
            assert accepted, "the silent peer was asked too"
            assert waited < notifier.timeout_s  # not after the silent peer's notify gave up
            # ...which ends at its bound: nothing stays in flight for ever
            await until(lambda: not notifier.in_flight(), 2 * notifier.timeout_s, "the bound")
        assert notifier.sent == 1
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_state_polled_is_the_head_and_policy_version_in_one_row(
    node_factory: NodeFactory,
) -> None:
    """Read ten times a second for ever: one statement, one row, and what it says moves
    with a listing's change and with a policy applied."""
    _hub, th = await member_of_a_hub(node_factory)
    rt = th.runtime
    policy = rt.policy.active()
    assert change_state(rt.engine) == (rt.listings.head(), policy.version) != (0, 0)
    with rows_read(rt.engine) as reads:
        before = change_state(rt.engine)
    assert [n for n, _ in reads.per_statement()] == [1]
    load_records(th, sample_records("th")[4:5])
    moved = change_state(rt.engine)
    assert moved[0] > before[0] and moved[1] == before[1]
    rt.policy.apply(policy.text + "\n# again\n", "test")
    after = change_state(rt.engine)
    assert after == (rt.listings.head(), rt.policy.active().version)
    assert after[0] >= moved[0] and after[1] > before[1]
