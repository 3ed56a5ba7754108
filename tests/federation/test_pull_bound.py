"""Pulls from many members run at once, but never more than the sync manager's bound."""

from __future__ import annotations

import aiohttp

from node.services.sync_manager import SyncManager
from tests.federation.network import NodeFactory, allowed_for, held_by, start_network


async def test_pulls_run_concurrently_within_the_bound(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th", "vn", "my"])
    async with aiohttp.ClientSession() as session:
        for bound in (1, 3):
            manager = SyncManager(net.hub.runtime, session, max_pulls=bound)
            try:
                runs = await manager.sync_all()
            finally:
                await manager.aclose()
            assert sorted(r.peer for r in runs) == ["my", "th", "vn"]
            assert all(r.error is None for r in runs), [r.error for r in runs]
            if bound == 1:
                assert manager.peak_pulls == 1
            else:
                assert 2 <= manager.peak_pulls <= bound
    for node_id, node in net.nodes.items():
        assert set(held_by(net.hub, node_id)) == set(allowed_for(node, "cn"))
