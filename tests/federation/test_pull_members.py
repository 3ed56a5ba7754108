"""``pull_members = false``: a member reads the hub's feed (and its ``peers``), not the
feeds of the directory's other members; the hub reads every member's whatever it says."""

from __future__ import annotations

from tests.federation.network import NodeFactory, add_member, hub_key


async def test_a_member_may_read_only_the_hub(node_factory: NodeFactory) -> None:
    hub = await node_factory("cn", is_hub=True, pull_members=False)
    members = {}
    for node_id, pulls in (("th", False), ("vn", True)):
        node = await node_factory(
            node_id, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn", pull_members=pulls
        )
        add_member(hub, node)
        members[node_id] = node
    th, vn = members["th"], members["vn"]
    assert await th.sync.refresh_directory() and await vn.sync.refresh_directory()
    assert {m.node_id for m in th.runtime.directory.members()} == {"cn", "th", "vn"}

    assert [run.peer for run in await th.sync.sync_all()] == ["cn"]
    assert [run.peer for run in await vn.sync.sync_all()] == ["cn", "th"]
    assert [run.peer for run in await hub.sync.sync_all()] == ["th", "vn"]
