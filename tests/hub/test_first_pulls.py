"""A fresh hub is pulled by every member at once: its first feed requests run side by side
(on its worker threads, or on several hub workers), and each of them may find the cursor
secret not made yet. All must succeed, with one secret; before the fix, all but one failed
with a unique violation on the ``meta`` table (an HTTP 500 seen in the process tests).
On PostgreSQL, nodes whose schemas share one database each pull too: before the fix their
pulls of the same peer shared one advisory lock, and all but one were skipped."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from node.runtime import open_runtime
from node.services.cursors import SECRET_KEY, CursorCodec, load_codec
from node.services.peer_lock import peer_lock
from node.storage.models import MetaRow
from tests.federation.network import NodeFactory, start_network

READERS = 8


async def test_concurrent_first_pulls_share_one_cursor_secret(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, [], load_sample=False)
    engine = net.hub.runtime.engine
    with Session(engine) as session:
        assert session.get(MetaRow, SECRET_KEY) is None  # no feed served yet
    start = threading.Barrier(READERS, timeout=30)

    def first_request() -> CursorCodec:
        start.wait()
        return load_codec(engine, "cn")

    with ThreadPoolExecutor(READERS) as pool:
        futures = [pool.submit(first_request) for _ in range(READERS)]
        codecs = [f.result() for f in futures]
    with Session(engine) as session:
        stored = session.get_one(MetaRow, SECRET_KEY).value
    assert {c.secret.hex() for c in codecs} == {stored}


async def test_members_pulling_a_fresh_hub_together_all_succeed(
    node_factory: NodeFactory,
) -> None:
    net = await start_network(node_factory, ["th", "vn", "la", "kh"], load_sample=False)
    runs = await asyncio.gather(
        *(node.sync.sync_peer("cn", force=True) for node in net.nodes.values())
    )
    assert all(r is not None and r.error is None for r in runs), [
        r.error if r else "skipped" for r in runs
    ]


async def test_the_pull_lock_excludes_only_the_hubs_own_other_workers(
    node_factory: NodeFactory,
) -> None:
    """A second hub worker (same node, same database) skips a peer the first is pulling;
    another node (on PostgreSQL: whose schema shares the database) does not. On SQLite
    the lock is a file of the data directory, so it holds across processes too."""
    net = await start_network(node_factory, ["th", "vn"], load_sample=False)
    hub = net.hub.runtime
    worker = open_runtime(net.hub.data_dir, config=hub.config)  # a second hub worker
    try:
        async with peer_lock(hub, "th") as first:
            async with (
                peer_lock(worker, "th") as same_peer,
                peer_lock(worker, "vn") as other_peer,
                peer_lock(net.nodes["vn"].runtime, "th") as other_node,
            ):
                assert first and other_peer and other_node
                assert not same_peer
        async with peer_lock(worker, "th") as after:
            assert after  # released with the first run
    finally:
        worker.close()
