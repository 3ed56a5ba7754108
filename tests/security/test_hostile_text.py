"""Bytes and characters a stranger (or a hostile member) may put where the node expects a
number, a token or text: each is a clear 4xx, never a 500 or a traceback in the log.

Found by probing real ``cattc serve`` processes: digits ``int`` refuses ('²', 5,000 of
them) in page numbers and filters; raw non-UTF-8 bytes in a signature header, a session
cookie or a CSRF header; a form in a charset no codec knows; a form token or a feed cursor
with non-ASCII characters (``hmac.compare_digest`` refuses such ``str``); a client that
hangs up in the middle of its body; an admin body that never comes. Real nodes on loopback
ports, spoken to over raw sockets where an HTTP client would refuse to send the bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import quote

import aiohttp
import pytest

from node.clock import system_clock
from node.ui.sessions import COOKIE
from protocol.b64 import b64url_encode
from protocol.request_sig import RequestSignature, sign_request
from tests.federation.network import NodeFactory, start_network
from tests.federation.test_security import member, node_key
from tests.hub.market_net import (
    form_token,
    interest_form,
    interests,
    market_network,
    post_interest,
    public_keys,
    visitor,
)
from tests.nodes import RunningNode
from tests.security.console_client import Console
from tests.security.test_console_auth import staff
from tests.security.test_form_bodies import FORM, INTEREST, LOGIN, exchange, port_of, post_head

SUPERSCRIPT_TWO = quote("²")


@pytest.fixture
async def hub(node_factory: NodeFactory) -> RunningNode:
    return await node_factory("cn", is_hub=True, body_timeout_seconds=1.0)


async def get_status(node: RunningNode, path: str, *lines: str) -> tuple[int, bytes]:
    head = "\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *lines])
    status, body, _ = await exchange(node, head)
    return status, body


async def raw_status(node: RunningNode, head: bytes) -> int:
    """The status answered to a request head given as bytes (any bytes at all)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(node))
    try:
        writer.write(head + b"\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(1 << 20), 15)
    finally:
        writer.close()
    return int(raw.split(b" ", 2)[1])


async def test_page_numbers_and_filters_int_refuses_are_ignored(hub: RunningNode) -> None:
    for query in (
        f"trl={SUPERSCRIPT_TWO}",
        f"page={SUPERSCRIPT_TWO}",
        "trl=" + "9" * 5000,
        "page=" + "9" * 5000,
    ):
        status, body = await get_status(hub, f"/?{query}")
        assert status == 200, (query, body[:300])


async def test_console_page_numbers_int_refuses_are_4xx(hub: RunningNode) -> None:
    staff(hub, "alice", "admin")
    async with Console(hub) as me:
        assert (await me.login("alice")).status == 303
        for path in (
            f"/console/audit?page={SUPERSCRIPT_TWO}",
            f"/console/matches?page={SUPERSCRIPT_TWO}",
            f"/console/eois?page={SUPERSCRIPT_TWO}",
            f"/console/eois?sent_page={SUPERSCRIPT_TWO}",
            f"/console/shared/th?page={SUPERSCRIPT_TWO}",
            f"/console/matches/{SUPERSCRIPT_TWO}",
            "/console/audit?page=" + "9" * 5000,
        ):
            answer = await me.get(path)
            assert answer.status < 500, (path, answer.status, answer.text[:300])


async def test_raw_bytes_in_a_signature_header_are_a_malformed_signature(
    hub: RunningNode,
) -> None:
    sig = RequestSignature("th", "cn", "ed25519:1", system_clock(), "n" * 16, "A" * 86)
    good = sig.header().encode()
    bad_nonce = good.replace(b'nonce="' + b"n" * 16, b'nonce="' + b"\xff\xfe" * 8)
    for target in ("/federation/v1/feed", "/federation/v1/notify"):
        head = b"GET " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close"
        assert await raw_status(hub, head + b"\r\nAuthorization: " + bad_nonce) == 401


async def test_raw_bytes_in_session_cookie_and_csrf_header_are_refused(
    hub: RunningNode,
) -> None:
    cookie = b"Cookie: " + COOKIE.encode() + b"=\xff\xfe" + b"a" * 40
    head = b"GET /console HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + cookie
    assert await raw_status(hub, head) in (302, 303)  # to the sign-in page: no session
    staff(hub, "alice", "admin")
    async with Console(hub) as me:
        assert (await me.login("alice")).status == 303
        token = me.cookie()
        assert token is not None
        head = (
            b"POST /console/logout HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Length: 0\r\nCookie: "
            + COOKIE.encode()
            + b"="
            + token.encode()
            + b"\r\nX-CSRF-Token: \xff\xfe"
        )
        assert await raw_status(hub, head) == 403  # a wrong token, not an error


async def test_forms_in_an_unknown_charset_or_other_bytes_are_400(hub: RunningNode) -> None:
    for content_type, body in (
        (f"{FORM}; charset=bogus", b"name=alice&password=x"),
        (FORM, b"name=\xff\xfe&password=x"),
    ):
        head = post_head(LOGIN, f"Content-Type: {content_type}", f"Content-Length: {len(body)}")
        status, answer, _ = await exchange(hub, head, [body])
        assert status == 400, answer[:300]


async def test_a_market_form_token_with_other_characters_is_refused(
    node_factory: NodeFactory,
) -> None:
    net = await market_network(node_factory)
    key = public_keys(net)[0]
    async with visitor() as http:
        await form_token(http, net.hub, *key)  # the visitor's cookie
        for token in ("é" * 20, "\ufffd" * 20):
            status, _, body = await post_interest(http, net.hub, *key, interest_form(token))
            assert status == 403, body[:300]
    assert interests(net.hub) == []


async def test_a_signed_feed_request_with_a_non_ascii_cursor_is_a_bad_cursor(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    th = net.nodes["th"]
    for cursor in ("x." + quote("é"), quote("ÿ") + "." + quote("ÿ")):
        target = f"/federation/v1/feed?after={cursor}"
        auth = sign_request(
            method="GET",
            target=target,
            origin=net.hub.node_id,
            destination=th.node_id,
            body=b"",
            key=net.hub.runtime.keys.active,
            now_ms=system_clock(),
        ).header()
        async with http.get(th.url + target, headers={"Authorization": auth}) as resp:
            answer = await resp.json()
            assert resp.status == 400, answer
            assert "cursor" in answer["error"]["message"], answer


async def test_a_client_gone_mid_body_leaves_no_traceback(
    hub: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for path in (LOGIN, INTEREST):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(hub))
        head = post_head(path, f"Content-Type: {FORM}", "Content-Length: 1000")
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n\r\nname=a")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gone = [r for r in caplog.records if "went away" in r.getMessage()]
        if len(gone) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(gone) >= 2, [r.getMessage() for r in caplog.records][-10:]
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


async def test_an_admin_body_that_never_comes_is_408_in_the_body_time(hub: RunningNode) -> None:
    token = hub.token
    for path, content_type in (
        ("/admin/v1/listings", "application/json"),
        ("/admin/v1/policy/check", "application/yaml"),
    ):
        head = post_head(
            path,
            f"Authorization: Bearer {token}",
            f"Content-Type: {content_type}",
            "Content-Length: 1000",
        )
        status, answer, took = await exchange(hub, head, [b"{}"])
        assert status == 408, answer[:300]
        assert took < 5.0  # the hub's body_timeout_seconds is 1 s here


def test_a_signature_header_field_must_be_printable_ascii() -> None:
    from protocol.request_sig import RequestSignatureError, parse_header

    sig = RequestSignature("th", "cn", "ed25519:1", 1, b64url_encode(b"n" * 16), "A" * 86)
    parse_header(sig.header())  # as made, it parses
    for bad in ("\udcff" * 8, "ñ" * 8, "a\tb" * 4):
        header = sig.header().replace(sig.nonce, bad)
        with pytest.raises(RequestSignatureError, match="printable ASCII"):
            parse_header(header)


async def test_nul_in_a_listing_is_a_400_on_every_database(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """JSON may carry NUL escaped; PostgreSQL's text may not: a listing with one answered
    500 (and logged a traceback) on a node on PostgreSQL. Refused where JSON is read."""
    from tests.node.sample import sample_record

    node = await node_factory("th")
    cases = {
        "title": {"en": "Rice \u0000dryer"},
        "summary": "sum\u0000",
        "keywords": ["ok", "\u0000"],
    }
    for field, value in cases.items():
        record = dict(sample_record("th-off-0001"), **{field: value})
        status, body = await node.admin(http, "POST", "/admin/v1/listings", json=record)
        assert status == 400, (field, body)
        assert body["error"]["code"] == "invalid_json" and "NUL" in body["error"]["message"]
    # An import names the line and keeps the rest; a backslash written before "u0000"
    # is text, not NUL.
    good = dict(sample_record("th-off-0002"), summary="a path C:\\u0000 is text")
    bad = dict(sample_record("th-off-0001"), summary="sum\u0000")
    lines = "\n".join(json.dumps(r) for r in (good, bad)).encode()
    async with http.post(
        node.url + "/admin/v1/listings/import", data=lines, headers=node.admin_headers
    ) as resp:
        report = await resp.json()
    assert resp.status == 207, report
    assert [(p["line"], "NUL" in p["reason"]) for p in report["problems"]] == [(2, True)]
    assert node.runtime.listings.get("th-off-0002").record["summary"] == good["summary"]


async def test_nul_in_an_address_or_a_form_is_a_400_on_every_database(
    hub: RunningNode, http: aiohttp.ClientSession
) -> None:
    """Each of these answered 500 on PostgreSQL, whose text cannot hold NUL, when the
    value was looked up or written: an id in a path, a filter, a login name (before any
    sign-in), a member's name in the hub's directory."""
    admin = hub.admin_headers
    for path in (
        "/admin/v1/listings/%00",
        "/admin/v1/listings?q=%00",
        "/admin/v1/listings?after=a%00",
    ):
        async with http.get(hub.url + path, headers=admin) as resp:
            assert resp.status == 400, (path, await resp.text())
    async with http.put(
        hub.url + "/admin/v1/policy?author=a%00b", headers=admin, data=b"x"
    ) as resp:
        assert resp.status == 400
    hub.runtime.directory.upsert(member("th", "http://127.0.0.1:9", node_key("th")), create=True)
    staff(hub, "alice", "admin")
    async with Console(hub) as me:
        assert (await me.login("al\x00ice")).status == 400
        assert (await me.login("alice")).status == 303
        for path in (
            "/console/listings/%00",
            "/console/listings?q=%00",
            "/console/audit?actor=%00",
            "/console/eois/%00",
            "/console/hub/directory/%00/edit",
        ):
            answer = await me.get(path)
            assert answer.status == 400, (path, answer.text[:300])
            assert "Traceback" not in answer.text
        token = await me.csrf("/console/hub/directory/th/edit")
        answer = await me.post(
            "/console/hub/directory/th/edit", {"csrf_token": token, "name": "a\x00b"}
        )
        assert answer.status == 400, answer.text[:300]
    async with http.get(hub.url + "/admin/v1/listings?q=rice", headers=admin) as resp:
        assert resp.status == 200  # and the node goes on


async def test_a_csrf_token_in_the_header_is_taken_by_every_console_form(
    hub: RunningNode,
) -> None:
    """The token may come as the X-CSRF-Token header instead of a form field; then the
    form was not read before the handler, and six handlers that took it as read answered
    500 (KeyError) to a signed-in staff member."""
    hub.runtime.directory.upsert(member("th", "http://127.0.0.1:9", node_key("th")), create=True)
    staff(hub, "alice", "admin")
    async with Console(hub) as me:
        assert (await me.login("alice")).status == 303
        token = await me.csrf()
        answer = await me.request(
            "POST",
            "/console/hub/directory/th/status",
            data={"status": "suspended"},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status == 303, answer.text[:300]
        assert hub.runtime.directory.get("th").status == "suspended"  # type: ignore[union-attr]
        for path, form in (
            ("/console/hub/directory/th/edit", {"name": "Thailand"}),
            ("/console/hub/directory/add", {"node_id": "zz"}),
            ("/console/hub/directory/fetch", {"base_url": "http://127.0.0.1:9"}),
            ("/console/eois/nope/answer", {"decision": "accepted"}),
            ("/console/matches/1/interest", {"message": "hello"}),
        ):
            answer = await me.request("POST", path, data=form, headers={"X-CSRF-Token": token})
            assert answer.status < 500, (path, answer.status, answer.text[:300])
