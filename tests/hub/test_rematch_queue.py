"""Re-matching after pulls never starves the hub's database threads: while one re-match
runs, the others wait in the event loop, and a signed request (which records its nonce
in a database thread) is still answered at once."""

from __future__ import annotations

import asyncio
import threading

from node.web.appkeys import HUB_MATCHING
from sync.interfaces import Changes
from tests.federation.network import NodeFactory, start_network


async def test_queued_rematches_leave_threads_for_signed_requests(
    node_factory: NodeFactory,
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    hub, th = net.hub, net.nodes["th"]
    matching = hub.app[HUB_MATCHING].service
    release = threading.Event()
    real = matching.after_sync

    def slow_after_sync() -> int:  # a first match of many listings, say
        release.wait(30)
        return real()

    matching.after_sync = slow_after_sync  # type: ignore[method-assign]
    observer = hub.app[HUB_MATCHING]  # what the sync manager tells after each pull
    changes = Changes("th", {"th-off-0001": "updated"})
    # Six pulls end while the first re-match is still running.
    rematches = [asyncio.ensure_future(observer.synced(changes)) for _ in range(6)]
    try:
        resp = await asyncio.wait_for(
            th.sync.client.request("POST", hub.url, "cn", "/federation/v1/notify", body=b"{}"),
            5,
        )
        assert resp.status == 202
        assert not any(t.done() for t in rematches)  # they were all still queued
    finally:
        release.set()
        await asyncio.gather(*rematches)
