"""A hub network for the tests of expressions of interest, and signed calls as a member.

Hub cn (with its sample listings when asked) and members th and vn (mou) and my (no_mou).
The hub has pulled th once, so it holds th's hub views; vn and my have no listings, so the hub
has sent them no match notice. Calls are signed as the real ``PeerClient`` signs them,
with the calling member's own key, so the hub's federation door lets them in as any.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.clock import Clock, system_clock
from node.storage.models import EoiRow, InboxRow, OutboxRow
from protocol import PROTOCOL_VERSION
from protocol.canonical import canonical_bytes
from protocol.request_sig import sign_request
from protocol.signing import sign_object
from tests.federation.network import Network, NodeFactory, add_member, hub_key, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode

EOI = "/federation/v1/eoi"
REPLY = "/federation/v1/eoi/reply"


async def eoi_network(
    node_factory: NodeFactory, *, hub_clock: Clock = system_clock, hub_listings: bool = False
) -> Network:
    hub = await node_factory("cn", is_hub=True, clock=hub_clock)
    net = Network(hub)
    for node_id in ("th", "vn", "my"):
        node = await node_factory(node_id, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
        add_member(hub, node)
        net.nodes[node_id] = node
    load_records(net.nodes["th"], sample_records("th"))
    if hub_listings:
        load_records(hub, sample_records("cn"))
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None, run
    return net


def eoi_obj(
    sender: RunningNode,
    owner: str,
    listing_id: str,
    message: str | None = "Interested.",
    **extra: Any,
) -> dict[str, Any]:
    """An expression of interest as ``sender`` makes one, signed (``extra`` overrides
    members before signing; a value of None drops that member)."""
    obj: dict[str, Any] = {
        "type": "eoi",
        "v": PROTOCOL_VERSION,
        "issuer": sender.node_id,
        "ts": sender.runtime.clock(),
        "audience": "cn",
        "id": f"{sender.node_id}-eoi-{secrets.token_hex(6)}",
        "listing": {"owner": owner, "id": listing_id},
        "message": message,
    }
    obj.update(extra)
    obj = {k: v for k, v in obj.items() if v is not None}
    return sign_object(obj, sender.node_id, sender.runtime.keys.active)


def reply_obj(
    owner: RunningNode, eoi_id: str, decision: str | None = "accepted", **extra: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "eoi_reply",
        "v": PROTOCOL_VERSION,
        "issuer": owner.node_id,
        "ts": owner.runtime.clock(),
        "audience": "cn",
        "eoi_id": eoi_id,
        "decision": decision,
        "contact": {},
    }
    obj.update(extra)
    obj = {k: v for k, v in obj.items() if v is not None}
    return sign_object(obj, owner.node_id, owner.runtime.keys.active)


async def post(
    net: Network,
    sender: RunningNode,
    path: str,
    body: bytes | dict[str, Any],
    clock: Clock = system_clock,
) -> tuple[int, Any, Mapping[str, str]]:
    """A POST to the hub signed as ``sender`` (``CATTC-Sig``, its own key), as its
    ``PeerClient`` makes them: (status, the JSON answer, the response headers)."""
    raw = body if isinstance(body, bytes) else canonical_bytes(body)
    sig = sign_request(
        method="POST",
        target=path,
        origin=sender.node_id,
        destination=net.hub.node_id,
        body=raw,
        key=sender.runtime.keys.active,
        now_ms=clock(),
    )
    headers = {"Authorization": sig.header(), "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(net.hub.url + path, data=io.BytesIO(raw), headers=headers) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


def hub_states(net: Network) -> dict[str, tuple[str, str, str]]:
    """The hub's EoIs: id -> (requester, owner/listing, state)."""
    with Session(net.hub.runtime.engine) as session:
        return {
            r.id: (r.requester, f"{r.owner}/{r.listing_id}", r.state)
            for r in session.scalars(select(EoiRow))
        }


def forwards_for(net: Network, reader: str, kind: str = "eoi_forward") -> list[dict[str, Any]]:
    """What the hub queued for ``reader`` of ``kind``, oldest first."""
    with Session(net.hub.runtime.engine) as session:
        rows = session.scalars(
            select(OutboxRow)
            .where(OutboxRow.reader == reader, OutboxRow.type == kind)
            .order_by(OutboxRow.id)
        ).all()
        return [json.loads(r.obj) for r in rows]


def received(node: RunningNode, kind: str) -> list[dict[str, Any]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(InboxRow).where(InboxRow.type == kind)).all()
        return [json.loads(r.obj) for r in rows]


async def pull_hub(node: RunningNode) -> None:
    await node.sync.refresh_directory()
    run = await node.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is None, run
