"""A small federation for tests: the hub and national nodes as real aiohttp servers,
each with its own database, joined through the hub's signed directory."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from node.services.directory import Member, keys_from_identity
from tests.node.sample import sample_records
from tests.nodes import COUNTRY, RunningNode

MOU = {"cn", "th", "la", "kh", "mm", "vn", "bn", "id"}
NodeFactory = Callable[..., Awaitable[RunningNode]]


@dataclass
class Network:
    hub: RunningNode
    nodes: dict[str, RunningNode] = field(default_factory=dict)

    def all(self) -> list[RunningNode]:
        return [self.hub, *self.nodes.values()]

    def node(self, node_id: str) -> RunningNode:
        return self.hub if node_id == self.hub.node_id else self.nodes[node_id]


def hub_key(hub: RunningNode) -> str:
    return hub.runtime.keys.verify_keys()[hub.runtime.keys.active.name].b64


def add_member(hub: RunningNode, node: RunningNode, groups: Iterable[str] | None = None) -> None:
    rt = node.runtime
    groups = (
        list(groups) if groups is not None else (["mou"] if node.node_id in MOU else ["no_mou"])
    )
    hub.runtime.directory.upsert(
        Member(
            node_id=node.node_id,
            country=rt.config.country,
            name=rt.config.name,
            base_url=node.url,
            keys=keys_from_identity(rt.identity()),
            groups=groups,
        ),
        create=True,
    )


async def start_network(
    node_factory: NodeFactory, members: Iterable[str], *, load_sample: bool = True, **config: Any
) -> Network:
    hub = await node_factory("cn", is_hub=True, **config)
    net = Network(hub)
    for node_id in members:
        node = await node_factory(
            node_id, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn", **config
        )
        add_member(hub, node)
        net.nodes[node_id] = node
    if load_sample:
        for node in net.all():
            load_records(node, sample_records(node.node_id))
    return net


def load_records(node: RunningNode, records: list[dict[str, Any]]) -> None:
    report = node.runtime.listings.import_records(list(enumerate(records, start=1)))
    assert not report.problems, report.problems


def held_by(node: RunningNode, origin: str) -> dict[str, dict[str, Any]]:
    """What ``node`` holds of ``origin``: listing id -> the ``listing`` member."""
    from node.services.remote_store import RemoteStore

    rows = RemoteStore(node.runtime.engine).held(origin)
    return {r.listing_id: json.loads(r.signed_bytes)["listing"] for r in rows}


def allowed_for(owner: RunningNode, reader: str) -> dict[str, dict[str, Any]]:
    """What the owner's active policy lets ``reader`` see now: listing id -> view."""
    from node.services.audiences import audience_of, membership
    from node.services.views import reader_envelope
    from policies.evaluate import evaluate

    rt = owner.runtime
    _, compiled = rt.policy.compiled()
    audience = audience_of(reader, compiled.policy, membership(rt.engine))
    now = rt.clock()
    out = {}
    for stored in rt.listings.iter_all():
        decision = evaluate(stored.record, audience, compiled, now, withdrawn=stored.withdrawn)
        if decision.view is not None:
            out[stored.id] = reader_envelope(
                decision.view,
                stored.record,
                reader=reader,
                hub_id=rt.config.hub_id,
                compiled=compiled,
                now_ms=now,
            )
    return out


__all__ = ["COUNTRY", "Network", "start_network"]
