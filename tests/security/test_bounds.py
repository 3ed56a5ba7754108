"""Bounds at every door: what cannot be signed is refused at input, hostile JSON and
headers get a 4xx, and a value stored before these bounds never fails a feed page.

Real nodes on loopback ports; federation calls are signed by hand with the members'
fixed-seed keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from node.clock import system_clock
from node.services.views import signed_retraction, signed_summary
from node.storage.models import ListingRow
from policies.write import default_policy_yaml
from protocol.keys import KeyStore
from protocol.listing import MAX_VERSION
from protocol.request_sig import sign_request
from sync.verify import PageError, check_item
from tests.federation.network import NodeFactory, held_by, load_records, start_network
from tests.node.sample import sample_record, sample_records
from tests.nodes import RunningNode, seed_for

DEEP = ("[" * 100_000 + "]" * 100_000).encode()
DEEP_OBJECT = ('{"a":' * 100_000 + "1" + "}" * 100_000).encode()
HUGE_INT = "7" * 5000


def agreement(listing_id: str, owner: str, **changes: Any) -> dict[str, Any]:
    """A valid, network-visible agreement of ``owner`` (from a sample one)."""
    record = sample_record("th-agr-0001")
    parties = [{"name": "Party A", "node": owner}, {"name": "Party B", "node": "vn"}]
    record.update(id=listing_id, owner=owner, country=owner.upper(), parties=parties)
    record.update(visibility="network", related_listings=[], value_usd=180_000)
    record.update(changes)
    return record


def event(listing_id: str, owner: str, **changes: Any) -> dict[str, Any]:
    """A valid event of ``owner`` (from a sample one)."""
    record = sample_record("cn-evt-0001")
    record.update(id=listing_id, owner=owner, country=owner.upper(), organizer=owner)
    record.update(expires="2030-01-01")
    record.update(changes)
    return record


async def post(
    http: aiohttp.ClientSession,
    node: RunningNode,
    path: str,
    body: bytes,
    *,
    method: str = "POST",
    content_type: str = "application/json",
) -> tuple[int, Any]:
    headers = {**node.admin_headers, "Content-Type": content_type}
    async with http.request(method, node.url + path, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


# -- integers that cannot be signed ------------------------------------------------------


OUT_OF_RANGE: list[tuple[Callable[..., dict[str, Any]], dict[str, Any], str]] = [
    (agreement, {"value_usd": 10**20}, "value_usd"),
    (agreement, {"value_usd": 2**53}, "value_usd"),
    (event, {"capacity": 10**16}, "capacity"),
    (agreement, {"version": MAX_VERSION + 1}, "version"),
]


async def test_out_of_range_integers_are_422_at_create_and_update(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    for n, (make, changes, field) in enumerate(OUT_OF_RANGE):
        new_id, old_id = f"vn-x-{n}-new", f"vn-x-{n}-old"
        status, created = await node.admin(
            http, "POST", "/admin/v1/listings", json=make(old_id, "vn")
        )
        assert status == 201, created
        status, body = await node.admin(
            http, "POST", "/admin/v1/listings", json=make(new_id, "vn", **changes)
        )
        assert status == 422, (changes, body)
        assert body["error"]["code"] == "invalid_listing"
        assert field in body["error"]["message"]
        if field != "version":  # an update keeps the stored version and bumps it
            status, body = await node.admin(
                http, "PUT", f"/admin/v1/listings/{old_id}", json=make(old_id, "vn", **changes)
            )
            assert status == 422 and field in body["error"]["message"], body
            assert node.runtime.listings.get(old_id).record == created
    assert node.runtime.listings.counts() == {"agreement": {"network": 3}, "event": {"public": 1}}
    # The largest integer that can be signed is taken.
    record = agreement("vn-x-max", "vn", value_usd=2**53 - 1)
    status, body = await node.admin(http, "POST", "/admin/v1/listings", json=record)
    assert status == 201 and body["value_usd"] == 2**53 - 1, body


async def test_import_names_each_line_it_cannot_take(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    good = agreement("vn-agr-0001", "vn")
    too_big = json.dumps(agreement("vn-agr-0002", "vn", value_usd=10**20))
    huge = json.dumps(agreement("vn-agr-0003", "vn")).replace(
        '"value_usd": 180000', f'"value_usd": {HUGE_INT}'
    )
    assert HUGE_INT in huge
    lines = [json.dumps(good), too_big, huge, DEEP.decode(), DEEP_OBJECT.decode()]
    status, body = await post(
        http,
        node,
        "/admin/v1/listings/import",
        "\n".join(lines).encode(),
        content_type="application/x-ndjson",
    )
    assert status == 207, body
    bad = {p["line"]: p["reason"] for p in body["problems"]}
    assert set(bad) == {2, 3, 4, 5}, bad
    assert "value_usd" in bad[2]
    assert body["created"] == 1
    assert node.runtime.listings.counts() == {"agreement": {"network": 1}}

    # The same as a JSON array: the element is named, the rest applies.
    array = json.dumps(
        [agreement("vn-agr-0004", "vn"), agreement("vn-agr-0005", "vn", value_usd=10**20)]
    )
    status, body = await post(http, node, "/admin/v1/listings/import", array.encode())
    assert status == 207, body
    assert [p["line"] for p in body["problems"]] == [2]


# -- hostile JSON bodies -----------------------------------------------------------------


HOSTILE: list[tuple[bytes, str]] = [
    (DEEP, "nested deeper"),
    (DEEP_OBJECT, "nested deeper"),
    (b'{"value_usd": ' + HUGE_INT.encode() + b"}", "5000 characters"),
    (b'{"title": {"en": "caf\xe9"}}', "not UTF-8"),
    ('{"category": "agreement"}'.encode("utf-16"), "not UTF-8"),
    (b'{"title": {"en": "\\ud800"}}', "lone surrogate"),
]


async def test_hostile_json_is_400_on_admin_routes(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    status, _ = await node.admin(
        http, "POST", "/admin/v1/listings", json=agreement("vn-agr-0001", "vn")
    )
    assert status == 201
    for body, says in HOSTILE:
        for method, path in [
            ("POST", "/admin/v1/listings"),
            ("PUT", "/admin/v1/listings/vn-agr-0001"),
            ("POST", "/admin/v1/listings/import"),
        ]:
            status, answer = await post(http, node, path, body, method=method)
            if path.endswith("/import") and not body.lstrip().startswith(b"["):
                # JSON Lines: a body that is not UTF-8 text is refused whole (400); else
                # its one line is named as bad, and nothing is applied.
                assert status in (400, 207, 422), answer
                if status != 400:
                    assert [p["line"] for p in answer["problems"]] == [1], answer
                    assert answer["created"] == answer["updated"] == 0
                continue
            assert status == 400, (path, says, answer)
            assert answer["error"]["code"] == "invalid_json"
            assert says in answer["error"]["message"], answer
    assert node.runtime.listings.get("vn-agr-0001").record["version"] == 1


def signed(node: RunningNode, hub: RunningNode, method: str, target: str, body: bytes) -> str:
    return sign_request(
        method=method,
        target=target,
        origin=node.node_id,
        destination=hub.node_id,
        body=body,
        key=node.runtime.keys.active,
        now_ms=system_clock(),
    ).header()


async def test_hostile_json_is_4xx_on_federation_routes(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    th = net.nodes["th"]
    nested = ("[" * 10_000 + "]" * 10_000).encode()  # small enough for any size limit
    for target in ("/federation/v1/eoi", "/federation/v1/eoi/reply", "/federation/v1/notify"):
        for body in (DEEP, DEEP_OBJECT, nested, b'{"listing": ' + HUGE_INT.encode() + b"}"):
            auth = signed(th, net.hub, "POST", target, body)
            async with http.post(
                net.hub.url + target, data=body, headers={"Authorization": auth}
            ) as resp:
                answer = await resp.json()
                if target.endswith("/notify"):  # a nudge: a body over 1 KiB is refused unread
                    assert resp.status == 413, answer
                elif len(body) > 32 * 1024:  # beyond what an EoI may hold: 400 or 413
                    assert resp.status in (400, 413), (target, answer)
                else:
                    assert resp.status == 400, (target, answer)
                    assert answer["error"]["code"] in ("invalid_json", "schema_invalid"), answer


# -- request signature headers -----------------------------------------------------------


async def test_overlong_signature_fields_are_401_malformed(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    good = signed(net.nodes["th"], net.hub, "GET", "/federation/v1/feed", b"")
    params = dict(p.split("=", 1) for p in good.removeprefix("CATTC-Sig ").split(","))
    created = ["9" * 4301, "9" * 5000, "1" * 17, "0" * 4400 + "1700000000000"]
    for bad in (
        *(good.replace(f"created={params['created']}", f'created="{c}"') for c in created),
        good.replace(f"sig={params['sig']}", f'sig="{"A" * 129}"'),
        good + "," * 2000,
    ):
        async with http.get(
            net.hub.url + "/federation/v1/feed", headers={"Authorization": bad}
        ) as resp:
            answer = await resp.json()
            assert (resp.status, answer["error"]["code"]) == (401, "signature_malformed"), bad[:200]
    # The scheme is case-insensitive (RFC 9110), like Bearer: the good header, re-cased.
    async with http.get(
        net.hub.url + "/federation/v1/feed",
        headers={"Authorization": "cattc-sig " + good.removeprefix("CATTC-Sig ")},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` as the request head over a plain socket; the status line back."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_absurd_headers_are_4xx(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """... each logged as one line (INFO), not an ERROR with a traceback a stranger could
    fill the log with."""
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    node = await node_factory("vn")
    start = b"GET /admin/v1/listings HTTP/1.1\r\nHost: x\r\n"
    heads = {
        "one 100 KB value": start + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n",
        "a 100 KB Authorization": start + b"Authorization: Bearer " + b"a" * 100_000 + b"\r\n\r\n",
        "5,000 headers": start + b"".join(b"X-%d: 1\r\n" % i for i in range(5000)) + b"\r\n",
        "a 100 KB path": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for name, head in heads.items():
        status_line = await raw_request(node.url, head)
        assert status_line.split()[1][:1] == b"4", (name, status_line)
    # The limits (node.web.headers.REQUEST_HEAD_LIMITS): 120 headers pass, 200 do not.
    for count, status in ((120, b"401"), (200, b"400")):
        head = start + b"".join(b"X-%d: 1\r\n" % i for i in range(count)) + b"\r\n"
        assert (await raw_request(node.url, head)).split()[1] == status, count
    # Bytes that are not text in the token: 401, not a 500.
    token_bytes = start + b"Authorization: Bearer \xff\xfe\xed\r\n\r\n"
    assert (await raw_request(node.url, token_bytes)).split()[1] == b"401"
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r for r in server if "refused a malformed request" in r.getMessage()]
    assert not [r for r in server if r.levelno >= logging.WARNING or r.exc_info], [
        r.getMessage() for r in server
    ]


# -- a value stored before the bounds ----------------------------------------------------

AGREEMENT_RULE = """  - audience: mou
    category: agreement
    visibility: [public, network]
    fields: [title, summary, kind, value_usd, sector, expires, country]
"""


async def test_a_stored_unsignable_value_never_fails_a_feed_page(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    hub, th = net.hub, net.nodes["th"]
    offers = [r for r in sample_records("cn") if r["category"] == "tech_offer"]
    offers = [r for r in offers if r["visibility"] in ("public", "network")][:3]
    load_records(hub, [*offers, agreement("cn-agr-9001", "cn")])
    hub.runtime.policy.apply(default_policy_yaml("cn") + AGREEMENT_RULE, author="test")
    # As if stored before value_usd was bounded: straight into the row.
    stored = hub.runtime.listings.get("cn-agr-9001").record
    with Session(hub.runtime.engine) as session, session.begin():
        session.execute(
            update(ListingRow)
            .where(ListingRow.id == "cn-agr-9001")
            .values(record=json.dumps({**stored, "value_usd": 10**20}))
        )

    with caplog.at_level(logging.ERROR):
        run = await th.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is None, run
    held = held_by(th, "cn")
    assert {o["id"] for o in offers} <= set(held)
    # The listing goes out without the value that cannot be signed, and the log says so.
    assert "value_usd" not in held["cn-agr-9001"]["fields"]
    assert held["cn-agr-9001"]["fields"]["kind"] == "licensing"
    assert any(
        "cn-agr-9001" in r.getMessage() and "value_usd" in r.getMessage() for r in caplog.records
    )

    # Withdrawals still reach the reader.
    hub.runtime.listings.withdraw(offers[0]["id"])
    run = await th.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is None, run
    assert offers[0]["id"] not in held_by(th, "cn")


# -- versions a reader stores --------------------------------------------------------------


@pytest.mark.parametrize("version", [2**31, 2**53 - 1])
def test_a_peer_summary_with_a_version_beyond_32_bits_is_quarantined(version: int) -> None:
    """A reader stores versions in 32-bit columns: a signed summary (or retraction) with a
    larger version is refused by its schema, never a failed insert that stops the pull."""
    store = KeyStore.generate(0, seed=seed_for("th"))
    view = {
        "id": "th-off-0001",
        "category": "tech_offer",
        "version": version,
        "updated": 1,
        "expires": 2,
        "fields": {},
        "rights": {"ip_owner": [], "attribution": [], "name_logo_consent": False},
    }
    summary, _ = signed_summary(
        issuer="th", audience="cn", view=view, policy_version=1, key=store.active, now_ms=1
    )
    retraction, _ = signed_retraction(
        issuer="th",
        audience="cn",
        listing_id="th-off-0001",
        category="tech_offer",
        version=version,
        reason="withdrawn",
        key=store.active,
        now_ms=1,
    )
    for obj in (summary, retraction):
        with pytest.raises(PageError) as info:
            check_item(obj, peer="th", me="cn", keys=store.verify_keys())
        assert info.value.code == "schema_invalid" and "version" in info.value.message
    # The largest version that fits is taken.
    ok, _ = signed_summary(
        issuer="th",
        audience="cn",
        view={**view, "version": 2**31 - 1},
        policy_version=1,
        key=store.active,
        now_ms=1,
    )
    assert check_item(ok, peer="th", me="cn", keys=store.verify_keys()).obj == ok


async def test_a_policy_with_a_huge_integer_is_422(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    for method, path in [
        ("PUT", "/admin/v1/policy"),
        ("POST", "/admin/v1/policy/check"),
        ("POST", "/admin/v1/policy/diff"),
    ]:
        for text in (f"rules: []\ngroups: {{a: {HUGE_INT}}}\n", "rules: " + "[" * 100_000):
            status, body = await post(
                http, node, path, text.encode(), method=method, content_type="text/yaml"
            )
            assert status == 422, (path, body)
            assert body["error"]["code"] == "invalid_policy"
            assert "not valid YAML" in body["error"]["message"]
