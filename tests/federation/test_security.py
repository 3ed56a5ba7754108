"""Attacks on federation calls, on what a reader is fed and on the member directory.

1. Requests signed by hand (``sign_request``) against real nodes: each bad one is refused
   by the middleware with its own code and HTTP status before anything is recorded (no
   nonce kept, nothing marked as given to the caller); a good one is served. An unknown
   origin or key is looked up once (directory, identity document) before it is refused.
2. A fake peer (a real aiohttp app on port 0 serving pages the test builds and signs)
   feeds the hub: a bad item is quarantined with its reason while the others apply; a
   page that does not verify is refused whole and the cursor stays; a suspended member
   is not pulled at all.
3. A node's directory mirror refuses forged, older and foreign directories, and picks up
   the hub operator's edits on its next refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.clock import system_clock
from node.config import KEY_FILE
from node.runtime import NodeRuntime
from node.services.directory import DirectoryRejected, Member
from node.services.errors import InvalidInput
from node.services.remote_store import RemoteStore
from node.services.sync_manager import DIRECTORY_REFETCH_MS
from node.services.views import signed_summary
from node.storage.models import (
    FeedSentRow,
    MemberRow,
    PeerStateRow,
    QuarantineRow,
    SeenNonceRow,
)
from node.web.federation_auth import FEED_IN_FLIGHT
from protocol.b64 import b64url_encode
from protocol.hub_objects import MAX_MEMBERS
from protocol.keys import KeyStore, NodeKey
from protocol.limits import MAX_ITEM_BYTES
from protocol.request_sig import MAX_SKEW_MS, sign_request
from protocol.signing import sign_object
from tests.federation.clocks import HeldClock
from tests.federation.network import (
    NodeFactory,
    add_member,
    allowed_for,
    hub_key,
    load_records,
    start_network,
)
from tests.node.sample import sample_records
from tests.nodes import COUNTRY, RunningNode, seed_for

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FEED = "/federation/v1/feed"
NOTIFY = "/federation/v1/notify"
DAY_MS = 24 * 3600 * 1000


def node_key(node_id: str, key_id: str = "1") -> NodeKey:
    """The fixed-seed key the test nodes are made with (``tests.nodes.seed_for``)."""
    return KeyStore.generate(0, key_id=key_id, seed=seed_for(node_id)).active


FORGED = KeyStore.generate(0, seed=b"\x07" * 32).active  # named ed25519:1, like everyone's


def member(node_id: str, base_url: str, key: NodeKey) -> Member:
    """A directory entry for ``node_id`` with just ``key``."""
    return Member(
        node_id=node_id,
        country=COUNTRY[node_id],
        name=node_id,
        base_url=base_url,
        keys={key.name: {"key": b64url_encode(key.public)}},
        groups=["mou"],
    )


# -- part 1: request signatures ---------------------------------------------------------


@dataclass
class Pair:
    hub: RunningNode
    th: RunningNode


@pytest.fixture
async def pair(node_factory: NodeFactory) -> Pair:
    net = await start_network(node_factory, ["th"], load_sample=False)
    load_records(net.hub, sample_records("cn")[:8])
    assert allowed_for(net.hub, "th"), "the hub must have something to show th"
    return Pair(net.hub, net.nodes["th"])


def header(
    key: NodeKey,
    *,
    target: str = FEED,
    method: str = "GET",
    origin: str = "th",
    destination: str = "cn",
    body: bytes = b"",
    created: int | None = None,
    nonce: str | None = None,
) -> str:
    return sign_request(
        method=method,
        target=target,
        origin=origin,
        destination=destination,
        body=body,
        key=key,
        now_ms=system_clock() if created is None else created,
        nonce=nonce,
    ).header()


async def send(
    http: aiohttp.ClientSession,
    node: RunningNode,
    auth: str | None,
    *,
    target: str = FEED,
    method: str = "GET",
    body: bytes = b"",
) -> tuple[int, Any]:
    headers = {} if auth is None else {"Authorization": auth}
    async with http.request(method, node.url + target, headers=headers, data=body or None) as r:
        return r.status, await r.json()


def traces(rt: NodeRuntime) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[Any, ...]]]:
    """What serving a call leaves behind: the nonces kept, and what each reader was given."""
    with Session(rt.engine) as session:
        nonces = frozenset((r.origin, r.nonce) for r in session.scalars(select(SeenNonceRow)))
        sent = frozenset(
            (r.reader, r.listing_id, r.version, r.retracted)
            for r in session.scalars(select(FeedSentRow))
        )
    return nonces, sent


async def refused(
    http: aiohttp.ClientSession,
    node: RunningNode,
    auth: str | None,
    code: str,
    status: int,
    **kwargs: Any,
) -> str:
    """Send; check the refusal (code and status) and that the node recorded nothing."""
    before = traces(node.runtime)
    got_status, body = await send(http, node, auth, **kwargs)
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert traces(node.runtime) == before
    return str(body["error"]["message"])


async def served(http: aiohttp.ClientSession, node: RunningNode, auth: str, **kwargs: Any) -> Any:
    got_status, body = await send(http, node, auth, **kwargs)
    assert got_status in (200, 202), body
    return body


async def test_a_signed_call_is_served_and_its_nonce_kept(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    assert traces(pair.hub.runtime) == (frozenset(), frozenset())
    auth = header(pair.th.runtime.keys.active, nonce="good-nonce-1")
    page = await served(http, pair.hub, auth)
    assert {i["listing"]["id"] for i in page["items"]} == set(allowed_for(pair.hub, "th"))
    nonces, sent = traces(pair.hub.runtime)
    assert nonces == {("th", "good-nonce-1")}
    assert {(lid, retracted) for _, lid, _, retracted in sent} == {
        (lid, False) for lid in allowed_for(pair.hub, "th")
    }


async def test_missing_or_foreign_authorization_is_refused(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    await refused(http, pair.hub, None, "signature_missing", 401)
    await refused(http, pair.hub, "Bearer token-th", "signature_missing", 401)
    await refused(http, pair.hub, "", "signature_missing", 401)


async def test_malformed_headers_are_refused_without_burning_the_nonce(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    good = header(pair.th.runtime.keys.active)
    params = good.removeprefix("CATTC-Sig ")
    fields = dict(p.split("=", 1) for p in params.split(","))
    variants = {
        "no parameters": "CATTC-Sig",
        "sig missing": "CATTC-Sig " + ",".join(f"{k}={v}" for k, v in fields.items() if k != "sig"),
        "origin twice": f'{good},origin="th"',
        "unknown field": f'{good},extra="1"',
        "unquoted value": good.replace('origin="th"', "origin=th"),
        "bad node id": good.replace('origin="th"', 'origin="TH!"'),
        "bad key name": good.replace('key="ed25519:1"', 'key="rsa:1"'),
        "created not a number": good.replace(f"created={fields['created']}", 'created="soon"'),
        # str.isdigit() says yes to these; int() refuses the first and reads the second
        "created in superscript": good.replace(f"created={fields['created']}", 'created="²"'),
        "created in other digits": good.replace(
            f"created={fields['created']}", 'created="{}"'.format("١٢٣")
        ),
        "nonce too short": good.replace(f"nonce={fields['nonce']}", 'nonce="abc"'),
        "garbage between fields": good.replace(",destination", ";destination"),
    }
    for name, bad in variants.items():
        assert bad != good, name
        await refused(http, pair.hub, bad, "signature_malformed", 401)
    # None of them used up the nonce: the well-formed original is still served once.
    await served(http, pair.hub, good)


async def test_one_member_has_two_feed_pages_answered_at_once_at_most(
    pair: Pair, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight readers under one member's key took 21 MB/s of pages and every database
    thread (the console's pages 16 -> 146 ms): a member's signed requests beyond
    ``FEED_IN_FLIGHT`` feed pages (``ORIGIN_IN_FLIGHT`` requests of any kind) being answered get 503
    at once, counted only once their signature holds."""
    feed = pair.hub.runtime.feed
    building = feed.page_bytes
    release, entered = threading.Event(), threading.Semaphore(0)

    def held(*args: Any, **kwargs: Any) -> bytes:
        entered.release()
        assert release.wait(30)
        return building(*args, **kwargs)

    monkeypatch.setattr(feed, "page_bytes", held)
    key = pair.th.runtime.keys.active
    first = [asyncio.create_task(send(http, pair.hub, header(key))) for _ in range(FEED_IN_FLIGHT)]
    for _ in range(FEED_IN_FLIGHT):
        assert await asyncio.to_thread(entered.acquire, timeout=30)
    # a forged signature is refused as ever, and takes no slot
    await refused(http, pair.hub, header(FORGED), "bad_signature", 401)
    status, body = await send(http, pair.hub, header(key))
    assert (status, body["error"]["code"]) == (503, "server_busy"), body
    # the member's other calls still have room
    notify = header(key, target="/federation/v1/notify", method="POST")
    assert (await send(http, pair.hub, notify, target="/federation/v1/notify", method="POST"))[
        0
    ] in (200, 202)
    release.set()
    assert [status for status, _ in await asyncio.gather(*first)] == [200] * FEED_IN_FLIGHT
    await served(http, pair.hub, header(key))  # the slots are given back


async def test_a_replayed_request_is_refused(pair: Pair, http: aiohttp.ClientSession) -> None:
    key = pair.th.runtime.keys.active
    auth = header(key, nonce="once-only-1")
    await served(http, pair.hub, auth)
    # A change the replay would be given (and remembered as given) if it were served.
    gone = sorted(allowed_for(pair.hub, "th"))[0]
    pair.hub.runtime.listings.withdraw(gone)
    message = await refused(http, pair.hub, auth, "nonce_reused", 401)
    assert "replayed" in message
    # A fresh signature does not make an old nonce usable again.
    await refused(http, pair.hub, header(key, nonce="once-only-1"), "nonce_reused", 401)
    # A new nonce is served, and now the withdrawal reaches th as a retraction.
    await served(http, pair.hub, header(key, nonce="once-only-2"))
    _, sent = traces(pair.hub.runtime)
    assert ("th", gone) in {(reader, lid) for reader, lid, _, retracted in sent if retracted}


async def test_a_call_for_another_node_is_refused(pair: Pair, http: aiohttp.ClientSession) -> None:
    key = pair.th.runtime.keys.active
    for destination in ("th", "vn"):
        auth = header(key, destination=destination)
        await refused(http, pair.hub, auth, "wrong_destination", 421)


async def test_created_more_than_five_minutes_off_is_refused_both_ways(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    key = pair.th.runtime.keys.active
    minute = 60_000
    for offset in (-MAX_SKEW_MS - minute, MAX_SKEW_MS + minute):
        auth = header(key, created=system_clock() + offset)
        await refused(http, pair.hub, auth, "created_out_of_window", 401)
    # Inside the window, in either direction, the same call is served.
    for offset in (-MAX_SKEW_MS + minute, MAX_SKEW_MS - minute):
        await served(http, pair.hub, header(key, created=system_clock() + offset))


async def test_an_unknown_origin_is_refused(pair: Pair, http: aiohttp.ClientSession) -> None:
    # vn signs correctly with its own key, but the hub's directory does not know vn.
    auth = header(node_key("vn"), origin="vn")
    await refused(http, pair.hub, auth, "unknown_origin", 403)


async def test_a_national_node_looks_an_unknown_origin_up_in_the_directory(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub = await node_factory("cn", is_hub=True)
    clock = HeldClock()
    th = await node_factory("th", clock=clock, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
    add_member(hub, th)
    hub.runtime.directory.upsert(member("vn", "http://127.0.0.1:9", node_key("vn")), create=True)
    assert th.runtime.directory.version() == 0
    # vn is new to th: th fetches the hub's directory, finds vn there and serves the call
    await served(http, th, header(node_key("vn"), origin="vn", destination="th"))
    assert th.runtime.directory.version() == 2
    # la joins too, but th looked at the directory less than a minute ago: refused, no fetch
    hub.runtime.directory.upsert(member("la", "http://127.0.0.1:9", node_key("la")), create=True)
    auth = header(node_key("la"), origin="la", destination="th")
    await refused(http, th, auth, "unknown_origin", 403)
    assert th.runtime.directory.version() == 2
    clock.now += DIRECTORY_REFETCH_MS
    await served(http, th, header(node_key("la"), origin="la", destination="th"))
    assert th.runtime.directory.version() == 3
    # a node the hub does not list stays unknown after the lookup
    clock.now += DIRECTORY_REFETCH_MS
    auth = header(node_key("kh"), origin="kh", destination="th")
    await refused(http, th, auth, "unknown_origin", 403)


async def test_an_unknown_key_is_refused(pair: Pair, http: aiohttp.ClientSession) -> None:
    stranger = KeyStore.generate(0, key_id="9", seed=b"\x09" * 32).active
    message = await refused(http, pair.hub, header(stranger), "key_not_valid", 401)
    assert "ed25519:9" in message
    # th's key name with another secret behind it: known name, signature does not verify.
    await refused(http, pair.hub, header(FORGED), "bad_signature", 401)


async def test_a_key_not_valid_at_created_is_refused(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    th = pair.th.runtime
    old = th.keys.active
    rotated_at = th.clock()
    th.keys.rotate(rotated_at).save(th.data_dir / KEY_FILE)
    th.reload_keys()
    # The hub meets ed25519:2, refetches th's identity and so learns when ed25519:1 expired.
    await served(http, pair.hub, header(th.keys.active))
    keys = pair.hub.runtime.directory.get("th")
    assert keys is not None and keys.keys["ed25519:1"]["expired_at"] == rotated_at
    late = max(system_clock(), rotated_at + 1)
    message = await refused(http, pair.hub, header(old, created=late), "key_not_valid", 401)
    assert "not valid at" in message
    # Signed with the old key before it expired: still good (within the 5-minute window).
    await served(http, pair.hub, header(old, created=rotated_at - 1))


async def test_a_request_altered_after_signing_is_refused(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    key = pair.th.runtime.keys.active
    # target: signed for one page size, sent with another
    auth = header(key, target=FEED + "?limit=1")
    await refused(http, pair.hub, auth, "bad_signature", 401, target=FEED + "?limit=1000")
    # method: signed as POST, sent as GET
    await refused(http, pair.hub, header(key, method="POST"), "bad_signature", 401)
    # body: signed over one body, sent with another
    auth = header(key, target=NOTIFY, method="POST", body=b'{"n":1}')
    kwargs: dict[str, Any] = {"target": NOTIFY, "method": "POST"}
    await refused(http, pair.hub, auth, "bad_signature", 401, body=b'{"n":2}', **kwargs)
    # sig: not base64url at all
    garbled = header(key).rpartition('sig="')[0] + 'sig="!!!"'
    await refused(http, pair.hub, garbled, "bad_signature", 401)
    # the unaltered body is accepted, so it was the alteration that failed
    auth = header(key, target=NOTIFY, method="POST", body=b'{"n":1}')
    await served(http, pair.hub, auth, body=b'{"n":1}', **kwargs)


async def test_a_suspended_member_is_refused(pair: Pair, http: aiohttp.ClientSession) -> None:
    key = pair.th.runtime.keys.active
    await served(http, pair.hub, header(key))
    pair.hub.runtime.directory.set_status("th", "suspended")
    await refused(http, pair.hub, header(key), "member_suspended", 403)
    auth = header(key, target=NOTIFY, method="POST")
    await refused(http, pair.hub, auth, "member_suspended", 403, target=NOTIFY, method="POST")
    pair.hub.runtime.directory.set_status("th", "active")
    await served(http, pair.hub, header(key))


# -- part 2: what the reader is fed ------------------------------------------------------


@dataclass
class FakePeer:
    """A peer that is no node: it serves whatever page the test put under each cursor."""

    url: str = ""
    pages: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    asked: list[str | None] = field(default_factory=list)

    async def feed(self, request: web.Request) -> web.Response:
        after = request.query.get("after")
        self.asked.append(after)
        if after not in self.pages:
            error = {"code": "bad_cursor", "message": f"no page after {after!r}"}
            return web.json_response({"error": error}, status=400)
        return web.json_response(self.pages[after])


@contextlib.asynccontextmanager
async def feed_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server answering the feed path with ``handler``: its base URL."""
    app = web.Application()
    app.router.add_get(FEED, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake_th() -> AsyncIterator[FakePeer]:
    peer = FakePeer()
    async with feed_server(peer.feed) as url:
        peer.url = url
        yield peer


@pytest.fixture
async def hub(node_factory: NodeFactory, fake_th: FakePeer) -> RunningNode:
    """A real hub whose directory sends it to the fake peer for th's feed."""
    hub = await node_factory("cn", is_hub=True)
    hub.runtime.directory.upsert(member("th", fake_th.url, node_key("th")), create=True)
    hub.runtime.directory.upsert(member("vn", "http://127.0.0.1:9", node_key("vn")), create=True)
    return hub


def summary(
    listing_id: str,
    *,
    version: int = 1,
    issuer: str = "th",
    audience: str = "cn",
    key: NodeKey | None = None,
    title: str | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = system_clock()
    view = {
        "id": listing_id,
        "category": "tech_offer",
        "version": version,
        "updated": now - DAY_MS,
        "expires": now + 30 * DAY_MS,
        "fields": fields or {"title": {"en": title or f"Listing {listing_id} v{version}"}},
        "rights": {"ip_owner": ["A university"], "attribution": [], "name_logo_consent": False},
    }
    obj, _ = signed_summary(
        issuer=issuer,
        audience=audience,
        view=view,
        policy_version=1,
        key=key or node_key(issuer),
        now_ms=now,
    )
    return obj


def feed_page(
    items: list[dict[str, Any]],
    *,
    after: str | None,
    next_cursor: str,
    key: NodeKey | None = None,
    more: bool = False,
    head: int = 10,
) -> dict[str, Any]:
    page = {
        "type": "feed_page",
        "v": 1,
        "issuer": "th",
        "ts": system_clock(),
        "audience": "cn",
        "after": after,
        "next": next_cursor,
        "head": head,
        "position": 10,
        "more": more,
        "items": items,
    }
    return sign_object(page, "th", key or node_key("th"))


def held(node: RunningNode) -> dict[str, str]:
    return {r.listing_id: r.signed_bytes for r in RemoteStore(node.runtime.engine).held("th")}


def quarantined(node: RunningNode) -> list[tuple[str, str, str, Any]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(QuarantineRow).order_by(QuarantineRow.id))
        return [(r.origin, r.code, r.message, json.loads(r.item)) for r in rows]


def cursor(node: RunningNode) -> str | None:
    with Session(node.runtime.engine) as session:
        row = session.get(PeerStateRow, "th")
        return row.cursor if row else None


def forged_item() -> dict[str, Any]:
    item = summary("th-off-0001", version=2)
    item["listing"]["fields"]["title"]["en"] = "Altered after signing"
    return item


def unknown_key_item() -> dict[str, Any]:
    stranger = KeyStore.generate(0, key_id="5", seed=b"\x05" * 32).active
    return summary("th-off-0001", version=2, key=stranger)


BAD_ITEMS: dict[str, tuple[Callable[[], Any], str]] = {
    "forged": (forged_item, "signature_invalid"),
    "not_an_object": (lambda: ["th-off-0001", 2], "schema_invalid"),
    "signed_with_another_secret": (
        lambda: summary("th-off-0001", version=2, key=FORGED),
        "signature_invalid",
    ),
    "unknown_key": (unknown_key_item, "key_not_valid"),
    "issued_by_another_member": (
        lambda: summary("th-off-0001", version=2, issuer="vn"),
        "issuer_mismatch",
    ),
    "for_another_audience": (
        lambda: summary("th-off-0001", version=2, audience="vn"),
        "audience_mismatch",
    ),
    "invalid_schema": (lambda: summary("th-off-0001", version=0), "schema_invalid"),
    # signed as JSON allows, but no database text holds it (PostgreSQL refuses it)
    "nul_in_a_title": (lambda: summary("th-off-0001", version=2, title="a\x00b"), "schema_invalid"),
    # the listing's types, field by field: search indexing met a str title's .values()
    "a_title_not_an_object": (
        lambda: summary("th-off-0001", version=2, fields={"title": "Solar dryer"}),
        "schema_invalid",
    ),
    "a_trl_not_a_number": (
        lambda: summary("th-off-0001", version=2, fields={"title": {"en": "x"}, "trl": [9]}),
        "schema_invalid",
    ),
    "a_field_no_listing_has": (
        lambda: summary("th-off-0001", version=2, fields={"title": {"en": "x"}, "boost": 1}),
        "schema_invalid",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_ITEMS))
async def test_a_bad_item_is_quarantined_and_the_rest_applied(
    hub: RunningNode, fake_th: FakePeer, kind: str
) -> None:
    make_bad, code = BAD_ITEMS[kind]
    fake_th.pages[None] = feed_page([summary("th-off-0001")], after=None, next_cursor="c1")
    first = await hub.sync.sync_peer("th", force=True)
    assert first is not None and first.error is None and first.applied == 1
    before = held(hub)

    bad = make_bad()
    good = summary("th-off-0002")
    fake_th.pages["c1"] = feed_page([bad, good], after="c1", next_cursor="c2")
    run = await hub.sync.sync_peer("th", force=True)

    assert run is not None and run.error is None, run
    assert (run.applied, run.rejected) == (1, 1)
    after = held(hub)
    assert after["th-off-0001"] == before["th-off-0001"]  # the held v1 was not replaced
    assert set(after) == {"th-off-0001", "th-off-0002"}
    [(origin, got_code, message, item)] = quarantined(hub)
    assert (origin, got_code) == ("th", code), message
    assert item == bad and message
    assert cursor(hub) == "c2"


async def test_an_item_larger_than_a_feed_item_may_be_is_quarantined(
    hub: RunningNode, fake_th: FakePeer
) -> None:
    """A page may hold more bytes than one item ever may (MAX_ITEM_BYTES): a member whose
    pages each carried 15 items of 1 MB filled another node's disk at 28 MB/s, and one
    item of 15 MB was stored."""
    big = summary("th-off-0001", title="x" * (MAX_ITEM_BYTES + 1))
    fake_th.pages[None] = feed_page([big, summary("th-off-0002")], after=None, next_cursor="c1")
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None, run
    assert (run.applied, run.rejected) == (1, 1)
    assert set(held(hub)) == {"th-off-0002"}
    with Session(hub.runtime.engine) as session:
        [row] = session.scalars(select(QuarantineRow))
        assert (row.origin, row.code) == ("th", "object_too_large")
        assert row.message.startswith("listing item of 1049") and len(row.item) <= 100_000


def pad(page: dict[str, Any]) -> dict[str, Any]:
    page["items"].append(summary("th-off-0003"))  # itself validly signed by th
    return page


def cut(page: dict[str, Any]) -> dict[str, Any]:
    page["items"].pop()
    return page


def flip(page: dict[str, Any]) -> dict[str, Any]:
    page["more"] = True
    return page


BAD_PAGES = {
    "padded_after_signing": (pad, "signature_invalid"),
    "cut_after_signing": (cut, "signature_invalid"),
    "altered_after_signing": (flip, "signature_invalid"),
    "signed_with_another_secret": (lambda p: sign_object(p, "th", FORGED), "signature_invalid"),
    "signed_with_an_unknown_key": (
        lambda p: sign_object(p, "th", KeyStore.generate(0, key_id="5", seed=b"\x05" * 32).active),
        "key_not_valid",
    ),
    # validly signed by th, but not a feed page: nothing in it can be trusted as a list
    "without_items": (
        lambda p: sign_object({k: v for k, v in p.items() if k != "items"}, "th", node_key("th")),
        "schema_invalid",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_PAGES))
async def test_a_bad_page_is_refused_whole_and_the_cursor_stays(
    hub: RunningNode, fake_th: FakePeer, kind: str
) -> None:
    spoil, code = BAD_PAGES[kind]
    fake_th.pages[None] = feed_page([summary("th-off-0001")], after=None, next_cursor="c1")
    first = await hub.sync.sync_peer("th", force=True)
    assert first is not None and first.error is None
    before = held(hub)

    items = [summary("th-off-0001", version=2), summary("th-off-0002")]
    good_page = feed_page(items, after="c1", next_cursor="c2")
    bad_page = copy.deepcopy(good_page)
    if kind.startswith("signed_with"):
        del bad_page["signatures"]
    fake_th.pages["c1"] = spoil(bad_page)
    run = await hub.sync.sync_peer("th", force=True)

    assert run is not None and run.error is not None and run.error.startswith(code), run
    assert (run.applied, run.rejected) == (0, 0)
    assert held(hub) == before
    assert quarantined(hub) == []
    assert cursor(hub) == "c1"
    # The same position, served honestly, then applies: nothing was skipped.
    fake_th.pages["c1"] = good_page
    again = await hub.sync.sync_peer("th", force=True)
    assert again is not None and again.error is None and again.applied == 2
    assert fake_th.asked == [None, "c1", "c1"]
    assert cursor(hub) == "c2"


async def test_a_feed_that_gives_back_the_cursor_it_was_asked_for_is_refused(
    hub: RunningNode, fake_th: FakePeer
) -> None:
    """A hostile member answered every page with no item, "more" and the cursor it was
    asked for: the hub pulled it at ~300 pages a second, a core's worth, as a success."""
    fake_th.pages[None] = feed_page([], after=None, next_cursor="c1", more=True)
    fake_th.pages["c1"] = feed_page([], after="c1", next_cursor="c1", more=True)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is not None, run
    assert run.error.startswith("feed_stalled") and "gives back the cursor" in run.error
    assert not run.more  # not pulled on at once
    assert fake_th.asked[:2] == [None, "c1"] and len(fake_th.asked) <= 3
    assert cursor(hub) == "c1"  # the first page held: its cursor moved


async def test_a_run_of_empty_pages_without_end_fails_and_the_peer_waits_its_backoff(
    node_factory: NodeFactory,
) -> None:
    """Empty pages may skip what the reader is not given, so one is no fault; a whole
    run's page budget of them (each with a fresh cursor) is a peer keeping the hub busy."""
    asked: list[str | None] = []

    async def endless(request: web.Request) -> web.Response:
        after = request.query.get("after")
        asked.append(after)
        page = feed_page([], after=after, next_cursor=f"{after or ''}x", more=True)
        return web.json_response(page)

    async with feed_server(endless) as url:
        hub = await node_factory("cn", is_hub=True)
        hub.runtime.directory.upsert(member("th", url, node_key("th")), create=True)
        hub.sync.reader.max_pages = 20
        run = await hub.sync.sync_peer("th", force=True)
        assert run is not None and run.error is not None, run
        assert run.error.startswith("feed_stalled") and "20 pages in a row" in run.error
        assert len(asked) == 20  # one run, not MAX_CONTINUED more after it
        assert cursor(hub) == "x" * 20  # the pages held: an honest run of them still moves
        # Failed, so the schedule and its notifies wait the backoff: no pull now.
        assert await hub.sync.sync_peer("th") is None
        assert len(asked) == 20


async def test_a_peer_that_redirects_is_not_followed(node_factory: NodeFactory) -> None:
    """A redirect from a member's URL sent every pull to another address (a port of the
    hub's own machine): the answer is the peer's, and a 3xx is an error."""
    elsewhere: list[str] = []

    async def inside(request: web.Request) -> web.Response:
        elsewhere.append(request.path_qs)
        return web.json_response({})

    async with feed_server(inside) as target:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(target + request.path_qs)

        async with feed_server(redirect) as url:
            hub = await node_factory("cn", is_hub=True)
            hub.runtime.directory.upsert(member("th", url, node_key("th")), create=True)
            run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is not None and "answered 302" in run.error, run
    assert elsewhere == []


async def test_what_a_peer_writes_in_its_error_cannot_forge_a_log_line(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer's error message went raw into the logs and the operator's terminal: a
    newline began a forged log line, ESC cleared the screen."""
    forged = "x\n2026-12-07 WARNING node.security: FORGED\x1b[2J\u202e"

    async def hostile(request: web.Request) -> web.Response:
        error = {"code": "bad\ncode", "message": forged}
        return web.json_response({"error": error}, status=500)

    async with feed_server(hostile) as url:
        hub = await node_factory("cn", is_hub=True)
        hub.runtime.directory.upsert(member("th", url, node_key("th")), create=True)
        with caplog.at_level(logging.INFO):
            run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is not None, run
    assert "x\\u000a2026-12-07 WARNING" in run.error and "\\u001b[2J\\u202e" in run.error
    for text in [run.error, *(r.getMessage() for r in caplog.records)]:
        assert text.isprintable(), text


async def test_a_suspended_member_is_not_pulled(hub: RunningNode, fake_th: FakePeer) -> None:
    fake_th.pages[None] = feed_page([summary("th-off-0001")], after=None, next_cursor="c1")
    hub.runtime.directory.set_status("th", "suspended")
    # neither the schedule nor an operator's 'cattc sync now --peer th' pulls it
    assert await hub.sync.sync_peer("th", force=True) is None
    assert [run.peer for run in await hub.sync.sync_all()] == ["vn"]
    assert fake_th.asked == [] and held(hub) == {} and cursor(hub) is None
    hub.runtime.directory.set_status("th", "active")
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied == 1


# -- part 3: the member directory ------------------------------------------------------


@pytest.fixture
async def mirror(node_factory: NodeFactory) -> Pair:
    net = await start_network(node_factory, ["th"], load_sample=False)
    return Pair(net.hub, net.nodes["th"])


def members_of(rt: NodeRuntime) -> tuple[int, list[dict[str, Any]]]:
    return rt.directory.version(), [m.to_json() for m in rt.directory.members()]


def accept(pair: Pair, doc: Any) -> bool:
    hub_public = pair.hub.runtime.keys.active.public
    return pair.th.runtime.directory.accept(doc, hub_id="cn", hub_key=hub_public)


def unsigned(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(doc).items() if k != "signatures"}


def assert_rejected(pair: Pair, doc: Any, reason: str) -> None:
    before = members_of(pair.th.runtime)
    with pytest.raises(DirectoryRejected, match=reason):
        accept(pair, doc)
    assert members_of(pair.th.runtime) == before


async def test_a_directory_not_signed_by_the_pinned_hub_key_is_refused(mirror: Pair) -> None:
    genuine = mirror.hub.runtime.directory_document()
    assert_rejected(mirror, sign_object(unsigned(genuine), "cn", FORGED), "signature")
    stranger = KeyStore.generate(0, key_id="7", seed=b"\x07" * 32).active
    assert_rejected(mirror, sign_object(unsigned(genuine), "cn", stranger), "signature")
    assert_rejected(mirror, unsigned(genuine), "signature")
    junk_signatures: list[Any] = [None, [], "cn", {"cn": None}, {"cn": []}]
    for junk in junk_signatures:
        assert_rejected(mirror, dict(unsigned(genuine), signatures=junk), "signature")
    tampered = copy.deepcopy(genuine)
    tampered["members"][0]["base_url"] = "http://attacker.example"
    assert_rejected(mirror, tampered, "signature")
    assert members_of(mirror.th.runtime) == (0, [])
    assert accept(mirror, genuine) is True  # the same document, untouched, is taken


async def test_an_older_directory_is_refused(mirror: Pair) -> None:
    hub_rt = mirror.hub.runtime
    v1 = hub_rt.directory_document()
    hub_rt.directory.upsert(member("vn", "http://127.0.0.1:9", node_key("vn")), create=True)
    v2 = hub_rt.directory_document()
    assert (v1["version"], v2["version"]) == (1, 2)
    assert accept(mirror, v2) is True
    held_v2 = members_of(mirror.th.runtime)
    assert held_v2[0] == 2 and [m["node_id"] for m in held_v2[1]] == ["cn", "th", "vn"]
    assert_rejected(mirror, v1, "older")
    assert accept(mirror, v2) is False  # the same version again changes nothing
    assert members_of(mirror.th.runtime) == held_v2


async def test_a_directory_no_newer_than_the_held_one_is_left_before_its_signature(
    mirror: Pair,
) -> None:
    """Checking a hostile hub's 58 MB directory took ~3 CPU-seconds at every refresh,
    unchanged or not: a version no newer than the held one (under the same pinned key)
    is now left before its signature is checked, whatever the signature says."""
    genuine = mirror.hub.runtime.directory_document()
    assert accept(mirror, genuine) is True
    held = members_of(mirror.th.runtime)
    forged = copy.deepcopy(genuine)
    forged["members"][0]["base_url"] = "http://attacker.example"
    assert accept(mirror, forged) is False  # the same version: nothing to check
    assert_rejected(mirror, {**unsigned(genuine), "version": 0}, "older")
    assert members_of(mirror.th.runtime) == held
    # a newer version is still checked
    assert_rejected(mirror, {**forged, "version": genuine["version"] + 1}, "signature")


async def test_a_directory_holds_a_bounded_number_of_nodes(mirror: Pair) -> None:
    """Every node pulls each member of the directory every interval: a directory of
    10,000 made a hostile hub's members send 80-130 signed requests a second."""
    hub_rt = mirror.hub.runtime
    doc = unsigned(hub_rt.directory_document())
    one = doc["members"][0]
    many = [dict(one, node_id=f"n{i:04d}") for i in range(MAX_MEMBERS + 1)]
    signed = sign_object({**doc, "version": 2, "members": many}, "cn", hub_rt.keys.active)
    assert_rejected(mirror, signed, "members")
    # the hub refuses the member past the bound (its own entry counts)
    with Session(hub_rt.engine) as session, session.begin():
        session.add_all(
            MemberRow(node_id=f"n{i:04d}", country="TH", name="", base_url="http://127.0.0.1:9",
                      keys="{}", key_sources="{}", groups="[]", status="active", updated=0)
            for i in range(MAX_MEMBERS - 1 - len(hub_rt.directory.members()))
        )  # fmt: skip
    version = hub_rt.directory.version()
    with pytest.raises(InvalidInput, match=f"{MAX_MEMBERS} nodes at most"):
        hub_rt.directory.upsert(member("vn", "http://127.0.0.1:9", node_key("vn")), create=True)
    assert hub_rt.directory.version() == version and hub_rt.directory.get("vn") is None


async def test_a_new_pinned_hub_key_recovers_from_a_directory_at_the_last_version(
    mirror: Pair,
) -> None:
    """Whoever stole the hub's key signed a directory of version 2^53 - 1: no directory
    could be newer, and after the operator pinned the hub's new key (the guide's
    recovery) the node still refused every one as older. A directory held under another
    pinned key is replaced by the first one the new key signs, whatever its version."""
    directory = mirror.th.runtime.directory
    stolen = mirror.hub.runtime.keys.active
    doc = unsigned(mirror.hub.runtime.directory_document())
    last = sign_object({**doc, "version": 2**53 - 1}, "cn", stolen)
    assert directory.accept(last, hub_id="cn", hub_key=stolen.public) is True
    newer = KeyStore.generate(0, key_id="2", seed=b"\x0b" * 32).active
    fresh = sign_object({**doc, "version": 5}, "cn", newer)
    with pytest.raises(DirectoryRejected, match="older"):  # still under the stolen pin
        directory.accept(sign_object({**doc, "version": 5}, "cn", stolen), hub_id="cn",
                         hub_key=stolen.public)  # fmt: skip
    assert directory.accept(fresh, hub_id="cn", hub_key=newer.public) is True
    assert directory.version() == 5
    older = sign_object({**doc, "version": 4}, "cn", newer)
    with pytest.raises(DirectoryRejected, match="older"):  # now under the new pin
        directory.accept(older, hub_id="cn", hub_key=newer.public)


async def test_a_directory_from_another_issuer_is_refused(mirror: Pair) -> None:
    th_key = mirror.th.runtime.keys.active
    doc = unsigned(mirror.hub.runtime.directory_document())
    doc["issuer"] = "th"
    assert_rejected(mirror, sign_object(doc, "th", th_key), "issued by 'th'")
    # issued in th's name but carrying the hub's own, valid signature of those bytes
    assert_rejected(mirror, sign_object(doc, "cn", mirror.hub.runtime.keys.active), "issued by")
    assert_rejected(mirror, dict(doc, type="node"), "not a directory")


async def test_refresh_picks_up_the_hub_operators_edits(mirror: Pair) -> None:
    th = mirror.th
    assert await th.sync.refresh_directory() is True
    assert members_of(th.runtime) == members_of_doc(mirror.hub.runtime.directory_document())
    assert await th.sync.refresh_directory() is False  # nothing new

    hub_dir = str(mirror.hub.data_dir)
    vn_key = f"ed25519:1={b64url_encode(node_key('vn').public)}"
    runner = CliRunner()
    for args in (
        ["add", "vn", "--base-url", "http://127.0.0.1:9", "--country", "vn", "--key", vn_key],
        ["update", "th", "--group", "no_mou"],
        ["suspend", "vn"],
    ):
        result = runner.invoke(cli, ["directory", hub_dir, *args])
        assert result.exit_code == 0, result.output

    assert await th.sync.refresh_directory() is True
    version, members = members_of(th.runtime)
    assert version == 4
    by_id = {m["node_id"]: m for m in members}
    assert by_id["vn"]["status"] == "suspended" and by_id["th"]["groups"] == ["no_mou"]
    assert (version, members) == members_of_doc(mirror.hub.runtime.directory_document())
    # The mirror pinned the hub key at init; the hub's key is what signed all of this.
    assert hub_key(mirror.hub) == th.runtime.config.hub_key


async def test_a_directory_that_gives_a_known_key_name_another_key_is_logged(
    mirror: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub may replace a member's key under the same name (its operator, having
    checked with the center; or whoever holds the hub's key), and what that key signs
    then verifies: each node says so in its log, and the member whose own key it is says
    so as an error."""
    hub_rt = mirror.hub.runtime
    assert accept(mirror, hub_rt.directory_document()) is True
    other = b64url_encode(KeyStore.generate(0, seed=b"\x09" * 32).active.public)
    for node_id in ("vn", "th"):
        if node_id == "vn":
            hub_rt.directory.upsert(member("vn", "http://127.0.0.1:9", node_key("vn")), create=True)
            assert accept(mirror, hub_rt.directory_document()) is True
        swapped = hub_rt.directory.get(node_id)
        assert swapped is not None
        swapped.keys["ed25519:1"] = {"key": other}
        hub_rt.directory.upsert(swapped, create=False)
    with caplog.at_level(logging.WARNING, logger="node.services.directory"):
        assert accept(mirror, hub_rt.directory_document()) is True
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        (
            "ERROR",
            "the hub's directory gives th's key ed25519:1 another value: this node's own "
            "key; ask the hub's operator why",
        ),
        ("WARNING", "the hub's directory gives vn's key ed25519:1 another value"),
    ]


def members_of_doc(doc: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    return doc["version"], sorted(doc["members"], key=lambda m: m["node_id"])
