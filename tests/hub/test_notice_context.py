"""What a re-match pass keeps of the counterparts its notices tell of is bounded
(``KNOWABLE_CACHE`` summaries and ``KNOWABLE_BYTES`` of their JSON), whatever the hub
holds: the least recently wanted leave first, and one read again is read as it is held."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.hub import match_engine
from node.hub.match_engine import _Context
from node.matching.features import Ref
from node.runtime import NodeRuntime
from node.services.audiences import membership
from node.storage.models import RemoteListingRow
from tests.federation.network import NodeFactory
from tests.hub.helpers import start_hub_network


async def _hub_holding_th(node_factory: NodeFactory) -> tuple[NodeRuntime, list[Ref]]:
    """A hub that pulled th's sample, and the listings it holds."""
    net = await start_hub_network(node_factory, ("th",))
    run = await net.hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None, run
    rt = net.hub.runtime
    with Session(rt.engine) as session:
        rows = session.execute(select(RemoteListingRow.origin, RemoteListingRow.listing_id))
        return rt, sorted((origin, lid) for origin, lid in rows)


async def test_the_pass_keeps_a_bounded_number_of_counterparts(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, held = await _hub_holding_th(node_factory)
    assert len(held) >= 5, "the sample holds listings"
    a, b, c, d, e = held[:5]
    fresh = _Context(rt, membership(rt.engine), rt.policy.compiled()[1], rt.clock())
    told = {ref: fresh.summary(ref) for ref in (a, b, c, d, e)}
    assert all(told.values()), "each held summary has something a notice may tell"

    monkeypatch.setattr(match_engine, "KNOWABLE_CACHE", 3)
    ctx = _Context(rt, membership(rt.engine), rt.policy.compiled()[1], rt.clock())
    ctx.load([a, b, c])
    ctx.load([a, d])  # a is wanted again: b, wanted least recently, leaves
    assert list(ctx._summaries) == [c, a, d]
    ctx.load([e, e])
    assert list(ctx._summaries) == [a, d, e]
    assert ctx.summary(b) == told[b]  # read again, as held
    assert len(ctx._summaries) == 3
    assert {ref: ctx.summary(ref) for ref in (a, b, c, d, e)} == told


async def test_the_pass_keeps_a_bounded_size_of_counterparts(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large summaries (a member may send them up to a feed item's size) leave by their
    bytes before their number reaches the bound: a pass holds what it wants now, and of
    the rest no more than ``KNOWABLE_BYTES`` of JSON."""
    rt, held = await _hub_holding_th(node_factory)
    a, b, c, d = held[:4]
    ctx = _Context(rt, membership(rt.engine), rt.policy.compiled()[1], rt.clock())
    ctx.load([a, b])
    size = ctx._held
    assert size == ctx._sizes[a] + ctx._sizes[b] > 0
    # Room for about two of them: the count (5,000) never binds here, the bytes do.
    monkeypatch.setattr(match_engine, "KNOWABLE_BYTES", size)
    ctx.load([c])  # a and b were within the bound: kept
    assert list(ctx._summaries) == [a, b, c]
    ctx.load([d])  # a, b and c passed it: the oldest go until they are within it
    assert list(ctx._summaries)[-1] == d and a not in ctx._summaries
    assert ctx._held == sum(ctx._sizes[r] for r in ctx._summaries)
    kept_before_d = [r for r in ctx._summaries if r != d]
    assert sum(ctx._sizes[r] for r in kept_before_d) <= size
    assert ctx.summary(a) is not None  # read again when wanted
