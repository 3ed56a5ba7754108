"""The reader parses a feed page with ``json.loads`` and opens it; a page whose bytes are
not the canonical bytes of what was parsed is parsed again strictly, so that a duplicate
key is still refused (with nothing stored and the cursor where it was)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from protocol.canonical import canonical_bytes
from tests.federation.network import NodeFactory
from tests.federation.test_security import (
    cursor,
    feed_page,
    feed_server,
    held,
    member,
    node_key,
    summary,
)
from tests.nodes import RunningNode


class RawPeer:
    """Serves the bytes the test put under each cursor, as they are."""

    def __init__(self) -> None:
        self.url = ""
        self.bodies: dict[str | None, bytes] = {}

    async def feed(self, request: web.Request) -> web.Response:
        body = self.bodies[request.query.get("after")]
        return web.Response(body=body, content_type="application/json")


@pytest.fixture
async def raw_th() -> AsyncIterator[RawPeer]:
    peer = RawPeer()
    async with feed_server(peer.feed) as url:
        peer.url = url
        yield peer


@pytest.fixture
async def hub(node_factory: NodeFactory, raw_th: RawPeer) -> RunningNode:
    hub = await node_factory("cn", is_hub=True)
    hub.runtime.directory.upsert(member("th", raw_th.url, node_key("th")), create=True)
    return hub


async def test_canonical_page_is_applied(hub: RunningNode, raw_th: RawPeer) -> None:
    page = feed_page([summary("th-off-0001"), summary("th-off-0002")], after=None, next_cursor="c1")
    raw_th.bodies[None] = canonical_bytes(page)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied == 2
    assert sorted(held(hub)) == ["th-off-0001", "th-off-0002"] and cursor(hub) == "c1"


@pytest.mark.parametrize(
    "member_bytes",
    [b'"more":false,', b'"items":[],'],  # the same value again, or another one (hidden)
)
async def test_a_duplicate_key_is_refused(
    hub: RunningNode, raw_th: RawPeer, member_bytes: bytes
) -> None:
    page = feed_page([summary("th-off-0001")], after=None, next_cursor="c1")
    body = canonical_bytes(page)
    # json.loads keeps the last of two members of one name; the signature then holds.
    raw_th.bodies[None] = b"{" + member_bytes + body[1:]
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is not None
    assert "duplicate key" in run.error and "not valid JSON" in run.error, run.error
    assert held(hub) == {} and cursor(hub) is None
