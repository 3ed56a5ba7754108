"""One sync round between a real hub and real national nodes holds exactly what each
owner's policy allows, and withdrawal, narrowing and re-sync behave."""

from __future__ import annotations

from tests.federation.network import NodeFactory, allowed_for, held_by, start_network


async def test_hub_holds_exactly_the_allowed_set(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th", "vn", "my"])
    runs = await net.hub.sync.sync_all()
    assert {r.peer for r in runs} == {"th", "vn", "my"}
    assert all(r.error is None for r in runs), [r.error for r in runs]
    for node_id, node in net.nodes.items():
        expected = allowed_for(node, "cn")
        held = held_by(net.hub, node_id)
        assert set(held) == set(expected), node_id
        for lid, view in expected.items():
            assert held[lid] == view
    # a second round changes nothing
    again = await net.hub.sync.sync_all()
    assert sum(r.applied for r in again) == 0


async def test_nodes_accept_directory_and_pull_each_other(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th", "vn"])
    runs = await net.nodes["th"].sync.sync_all()
    assert {r.peer for r in runs} == {"cn", "vn"}, runs
    assert all(r.error is None for r in runs), [r.error for r in runs]
    assert set(held_by(net.nodes["th"], "vn")) == set(allowed_for(net.nodes["vn"], "th"))
    assert set(held_by(net.nodes["th"], "cn")) == set(allowed_for(net.hub, "th"))


async def test_withdrawal_reaches_the_hub_as_a_purge(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["vn"])
    await net.hub.sync.sync_all()
    vn = net.nodes["vn"]
    shared = sorted(allowed_for(vn, "cn"))
    victim = shared[0]
    vn.runtime.listings.withdraw(victim)
    runs = await net.hub.sync.sync_all()
    assert runs[0].retracted == 1
    held = held_by(net.hub, "vn")
    assert victim not in held and set(held) == set(shared[1:])
