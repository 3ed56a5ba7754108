"""Key swapped from a URL (issue: trust the hub).

Whoever controls what a member's registered URL serves can publish a self-signed
identity document. Before the fix, the hub took every key in it: a different key under a
known name replaced the member's key and went out in a new directory version, after
which the impostor's calls were taken as the member's. Now a refetch only adds key names
(and shortens the life of known keys); the directory records where each key came from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.config import KEY_FILE
from node.services.directory import Member, keys_from_identity
from node.services.identity import identity_document
from node.services.sync_manager import IDENTITY_REFETCH_MS
from protocol.key_transition import rotate_with_transition
from protocol.keys import KeyStore, NodeKey
from sync.client import PeerClient, PeerError
from tests.federation.clocks import HeldClock
from tests.federation.network import NodeFactory
from tests.hub.helpers import cattc
from tests.nodes import RunningNode, seed_for

IMPOSTOR = KeyStore.generate(0, key_id="1", seed=b"\x66" * 32)  # named ed25519:1 too


@dataclass
class TakenUrl:
    """What answers at a member's registered URL once someone else controls it."""

    url: str = ""
    identity: dict[str, Any] = field(default_factory=dict)

    async def serve(self, request: web.Request) -> web.Response:
        return web.json_response(self.identity)


@pytest.fixture
async def taken() -> AsyncIterator[TakenUrl]:
    site_state = TakenUrl()
    app = web.Application()
    app.router.add_get("/.well-known/cattc-node", site_state.serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    site_state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield site_state
    await runner.cleanup()


def self_signed(keys: KeyStore, base_url: str) -> dict[str, Any]:
    return identity_document(
        node_id="vn", name="vn", country="VN", base_url=base_url, keys=keys, now_ms=1
    )


def register(hub: RunningNode, vn: RunningNode, base_url: str) -> None:
    """The operator registers vn with the keys vn really has, and a URL."""
    hub.runtime.directory.upsert(
        Member("vn", "VN", "vn", base_url, keys_from_identity(vn.runtime.identity()), ["mou"]),
        create=True,
    )


def vn_keys(hub: RunningNode) -> dict[str, dict[str, Any]]:
    member = hub.runtime.directory.get("vn")
    assert member is not None
    return member.keys


def vn_sources(hub: RunningNode) -> dict[str, str]:
    member = hub.runtime.directory.get("vn")
    assert member is not None
    return member.sources


def published_vn(hub: RunningNode) -> dict[str, Any]:
    doc = hub.runtime.directory_document()
    return next(m for m in doc["members"] if m["node_id"] == "vn")


async def call_as_vn(hub: RunningNode, key: NodeKey) -> int:
    """A signed federation call to the hub, as 'vn', with ``key``; its HTTP status."""
    async with aiohttp.ClientSession() as session:
        client = PeerClient(session, "vn", lambda: key, hub.runtime.clock)
        try:
            await client.get_json(hub.url, "cn", "/federation/v1/feed")
        except PeerError as exc:
            assert exc.status is not None
            return exc.status
        return 200


async def test_a_url_cannot_swap_a_known_key(node_factory: NodeFactory, taken: TakenUrl) -> None:
    hub = await node_factory("cn", is_hub=True)
    vn = await node_factory("vn")
    register(hub, vn, taken.url)
    real = vn_keys(hub)["ed25519:1"]["key"]
    version = hub.runtime.directory.version()
    before = published_vn(hub)
    assert await call_as_vn(hub, vn.runtime.keys.active) == 200

    # The URL serves the impostor's key under vn's key name; a call signed with a key
    # name the hub does not know makes the hub refetch that document.
    taken.identity = self_signed(IMPOSTOR, taken.url)
    stranger = KeyStore.generate(0, key_id="7", seed=b"\x77" * 32).active
    assert await call_as_vn(hub, stranger) == 401
    assert vn_keys(hub)["ed25519:1"]["key"] == real
    assert hub.runtime.directory.version() == version
    assert published_vn(hub) == before
    # so the impostor's key is refused, and vn's own still works
    assert await call_as_vn(hub, IMPOSTOR.active) == 401
    assert await call_as_vn(hub, vn.runtime.keys.active) == 200


async def test_a_refetch_adds_new_key_names_only(
    node_factory: NodeFactory, taken: TakenUrl
) -> None:
    hub = await node_factory("cn", is_hub=True)
    vn = await node_factory("vn")
    register(hub, vn, taken.url)
    version = hub.runtime.directory.version()
    assert vn_sources(hub) == {"ed25519:1": "operator"}

    # vn's own document, plus a new name with the impostor's key and vn's ed25519:1
    # swapped: only the new name is taken (first contact: what the URL says of a name
    # never seen before), and the directory says it came from the URL.
    mixed = KeyStore.generate(0, key_id="1", seed=b"\x66" * 32).rotate(5, seed=b"\x55" * 32)
    taken.identity = self_signed(mixed, taken.url)
    assert await hub.sync.keys.refresh("vn")
    keys = vn_keys(hub)
    assert keys["ed25519:1"]["key"] == keys_from_identity(vn.runtime.identity())["ed25519:1"]["key"]
    assert keys["ed25519:2"]["key"] == mixed.verify_keys()["ed25519:2"].b64
    assert "expired_at" not in keys["ed25519:1"]  # a swapped key's claims are not taken
    assert vn_sources(hub) == {"ed25519:1": "operator", "ed25519:2": "fetch"}
    assert hub.runtime.directory.version() == version + 1
    assert set(published_vn(hub)["keys"]) == {"ed25519:1", "ed25519:2"}


async def test_a_hand_over_is_recorded_and_a_retired_key_stays_retired(
    node_factory: NodeFactory, taken: TakenUrl
) -> None:
    clock = HeldClock()
    hub = await node_factory("cn", is_hub=True, clock=clock)
    vn = await node_factory("vn")
    register(hub, vn, vn.url)
    rt = vn.runtime
    at = rt.clock()
    rotate_with_transition(rt.keys, "vn", at).save(rt.data_dir / KEY_FILE)
    rt.reload_keys()
    assert await hub.sync.keys.refresh("vn")
    keys = vn_keys(hub)
    assert keys["ed25519:1"]["expired_at"] == at
    assert keys["ed25519:2"]["key"] == rt.keys.verify_keys()["ed25519:2"].b64
    assert vn_sources(hub) == {"ed25519:1": "operator", "ed25519:2": "transition"}
    version = hub.runtime.directory.version()

    # Later the URL is taken and serves the retired key as current again: not taken.
    member = hub.runtime.directory.get("vn")
    assert member is not None
    member.base_url = taken.url
    hub.runtime.directory.upsert(member, create=False)
    version = hub.runtime.directory.version()
    taken.identity = self_signed(KeyStore.generate(0, key_id="1", seed=seed_for("vn")), taken.url)
    clock.now += IDENTITY_REFETCH_MS  # past the once-a-minute refetch limit
    assert await hub.sync.keys.refresh("vn")
    assert vn_keys(hub)["ed25519:1"]["expired_at"] == at
    assert vn_sources(hub) == {"ed25519:1": "operator", "ed25519:2": "transition"}
    assert hub.runtime.directory.version() == version


async def test_update_fetch_cannot_swap_a_key_but_the_operator_can(
    node_factory: NodeFactory, taken: TakenUrl
) -> None:
    hub = await node_factory("cn", is_hub=True)
    vn = await node_factory("vn")
    register(hub, vn, taken.url)
    real = vn_keys(hub)["ed25519:1"]["key"]
    version = hub.runtime.directory.version()
    taken.identity = self_signed(IMPOSTOR, taken.url)

    result = await cattc("directory", hub.data_dir, "update", "vn", "--fetch")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: key ed25519:1 of vn is known with another key")
    assert len(result.stderr.splitlines()) == 1
    assert vn_keys(hub)["ed25519:1"]["key"] == real
    assert hub.runtime.directory.version() == version

    # The operator, having checked with the center, replaces it by hand.
    new = IMPOSTOR.verify_keys()["ed25519:1"].b64
    result = await cattc("directory", hub.data_dir, "update", "vn", "--key", f"ed25519:1={new}")
    assert result.exit_code == 0, result.output
    assert vn_keys(hub)["ed25519:1"]["key"] == new
    assert vn_sources(hub) == {"ed25519:1": "operator"}
    assert hub.runtime.directory.version() == version + 1
