"""No object can block a feed: pages have a byte limit as well as an item limit, an object
too large for a feed item is refused where it would be queued, and a reader refuses a
page over the protocol's byte limit with an error that says so.

The finding: twenty 4 MB expressions of interest made the hub's next page for the owner
larger than the reader's response cap; the owner never synced from the hub again, and a
later withdrawal never reached it.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.services.feed import OUTBOX_PREFIX, ObjectTooLarge, post_to_outbox
from node.storage.models import ChangeRow, OutboxRow
from protocol import PROTOCOL_VERSION
from protocol.canonical import canonical_bytes, parse_json
from protocol.limits import MAX_ITEM_BYTES, MAX_PAGE_BYTES, MIN_PAGE_BYTES
from protocol.signing import sign_object
from sync.client import PeerClient
from tests.federation.network import Network, NodeFactory, held_by
from tests.hub.helpers import start_hub_network
from tests.nodes import RunningNode

EOI = "/federation/v1/eoi"


async def pull_hub(node: RunningNode) -> str | None:
    """One pull of the hub's feed; the run's error (None when it went through)."""
    await node.sync.refresh_directory()
    run = await node.sync.sync_peer("cn", force=True)
    assert run is not None
    return run.error


async def network(node_factory: NodeFactory) -> tuple[Network, str]:
    """The hub (with its sample listings), th and vn, each having pulled once; a hub
    listing that th holds."""
    net = await start_hub_network(node_factory, ["th", "vn"])
    for member in ("th", "vn"):
        run = await net.hub.sync.sync_peer(member, force=True)
        assert run is not None and run.error is None, run
    assert await pull_hub(net.nodes["th"]) is None
    return net, sorted(held_by(net.nodes["th"], "cn"))[0]


def hub_object(net: Network, reader: str, pad: int) -> dict[str, Any]:
    """A hub-signed object for ``reader`` whose canonical form is about ``pad`` bytes."""
    rt = net.hub.runtime
    obj = {
        "type": "eoi_forward",
        "v": PROTOCOL_VERSION,
        "issuer": "cn",
        "ts": rt.clock(),
        "audience": reader,
        "eoi": {"message": "x" * pad},
    }
    return sign_object(obj, "cn", rt.keys.active)


async def walk(
    net: Network, after: str | None, pages: list[list[dict[str, Any]]] | None = None
) -> str | None:
    """Page through the hub's feed for th from ``after`` (each page within the byte
    limit); the cursor at its end."""
    rt = net.hub.runtime
    while True:
        page, body = await rt.run(rt.feed.signed_page, "th", after, 100)
        assert len(body) <= rt.config.max_page_bytes, len(body)
        assert parse_json(body) == page
        if page["items"] and pages is not None:
            pages.append(page["items"])
        after = page["next"]
        if not page["more"]:
            return after


def outbox_size(net: Network) -> int:
    with Session(net.hub.runtime.engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxRow)) or 0)


async def test_an_eoi_flood_does_not_stop_the_owner_syncing(node_factory: NodeFactory) -> None:
    net, hub_listing = await network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    owned = sorted(held_by(net.hub, "th"))[0]
    rt = vn.runtime
    async with aiohttp.ClientSession() as http:
        client = PeerClient(http, "vn", lambda: rt.keys.active, rt.clock)
        for _ in range(20):
            eoi = {
                "type": "eoi",
                "v": PROTOCOL_VERSION,
                "issuer": "vn",
                "ts": rt.clock(),
                "audience": "cn",
                "id": f"vn-eoi-{secrets.token_hex(6)}",
                "listing": {"owner": "th", "id": owned},
                "message": "We are very interested. " * 170_000,  # about 4 MB
            }
            body = canonical_bytes(sign_object(eoi, "vn", rt.keys.active))
            assert 4_000_000 < len(body) < net.hub.runtime.config.max_body_bytes
            await client.request("POST", net.hub.url, "cn", EOI, body=body)
    # Whatever the hub made of the flood, th still syncs, and hears of a withdrawal.
    await net.hub.runtime.run(net.hub.runtime.listings.withdraw, hub_listing)
    assert await pull_hub(th) is None
    assert hub_listing not in held_by(th, "cn")


async def test_pages_stop_at_their_byte_limit_and_carry_at_least_one_item(
    node_factory: NodeFactory,
) -> None:
    net, hub_listing = await network(node_factory)
    rt = net.hub.runtime
    rt.config.max_page_bytes = MIN_PAGE_BYTES  # room for one item of the largest size
    start = await walk(net, None)  # to the end of what the hub has for th now
    sizes = [300_000, 700_000, MAX_ITEM_BYTES - 2_000, 300_000, 300_000]
    queued = [hub_object(net, "th", n) for n in sizes]
    assert all(len(canonical_bytes(obj)) <= MAX_ITEM_BYTES for obj in queued)
    with Session(rt.engine) as session, session.begin():
        for obj in queued:
            post_to_outbox(session, "th", obj, rt.clock())
    await rt.run(rt.listings.withdraw, hub_listing)

    pages: list[list[dict[str, Any]]] = []
    await walk(net, start, pages)
    delivered = [i for items in pages for i in items if i["type"] == "eoi_forward"]
    assert delivered == queued  # each once, in order
    # 300 + 700 KB, then the largest alone, then 300 + 300 KB (a match notice the hub's
    # re-matching queues meanwhile may ride along: it is small).
    grouped = [
        [len(i["eoi"]["message"]) for i in items if i["type"] == "eoi_forward"] for items in pages
    ]
    assert [g for g in grouped if g] == [sizes[:2], sizes[2:3], sizes[3:]], grouped
    retraction = [i for items in pages for i in items if i["type"] == "retraction"]
    assert [r["listing_id"] for r in retraction] == [hub_listing]

    # th pulls the same way, page by page, and hears of the withdrawal.
    assert await pull_hub(net.nodes["th"]) is None
    assert hub_listing not in held_by(net.nodes["th"], "cn")


async def test_an_object_too_large_for_a_feed_item_is_never_queued(
    node_factory: NodeFactory,
) -> None:
    hub = await node_factory("cn", is_hub=True)
    net = Network(hub)
    before = outbox_size(net)
    too_big = hub_object(net, "th", MAX_ITEM_BYTES)
    with pytest.raises(ObjectTooLarge, match=f"at most {MAX_ITEM_BYTES} bytes"):
        with Session(hub.runtime.engine) as session, session.begin():
            post_to_outbox(session, "th", hub_object(net, "th", 10), hub.runtime.clock())
            post_to_outbox(session, "th", too_big, hub.runtime.clock())
    assert outbox_size(net) == before  # the transaction, and the small one in it, is gone


async def pull_from_fake_hub(node: RunningNode, body: bytes) -> str | None:
    """``node`` pulls "cn" from a real server that answers every feed call with ``body``;
    the run's error."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(body=io.BytesIO(body), content_type="application/json")

    fake = web.Application()
    fake.router.add_get("/federation/v1/feed", page)
    runner = web.AppRunner(fake)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        node.runtime.config.hub_url = f"http://127.0.0.1:{site.port}"
        run = await node.sync.sync_peer("cn", force=True)
    finally:
        await runner.cleanup()
    assert run is not None
    return run.error


async def test_a_page_over_the_byte_or_item_limit_is_refused_clearly(
    node_factory: NodeFactory,
) -> None:
    net = await start_hub_network(node_factory, ["th"], load_hub_sample=False)
    th = net.nodes["th"]
    error = await pull_from_fake_hub(th, b" " * (MAX_PAGE_BYTES + 1))
    assert error is not None and "page_too_large" in error, error
    assert f"larger than the protocol's limit of {MAX_PAGE_BYTES} bytes" in error, error

    asked = th.sync.reader.page_size
    too_many = json.dumps({"items": [{}] * (asked + 1)}).encode()
    error = await pull_from_fake_hub(th, too_many)
    assert error is not None and "page_too_large" in error, error
    assert f"has {asked + 1} items; {asked} were asked" in error, error


async def test_an_oversized_object_queued_before_the_limit_is_skipped(
    node_factory: NodeFactory,
) -> None:
    """A database from before the limit may hold such an object: the feed goes past it."""
    net = await start_hub_network(node_factory, ["th"], load_hub_sample=False)
    rt = net.hub.runtime
    start = await walk(net, None)
    legacy, later = hub_object(net, "th", MAX_ITEM_BYTES + 10), hub_object(net, "th", 10)
    with Session(rt.engine) as session, session.begin():
        row = OutboxRow(reader="th", type="eoi_forward", created=1, obj=json.dumps(legacy))
        session.add(row)
        session.flush()
        session.add(
            ChangeRow(listing_id=f"{OUTBOX_PREFIX}{row.id}", version=1, kind="outbox", at=1)
        )
        post_to_outbox(session, "th", later, rt.clock())
    pages: list[list[dict[str, Any]]] = []
    await walk(net, start, pages)
    assert [i for items in pages for i in items] == [later]
