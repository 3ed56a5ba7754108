"""What a stranger may post is read whole, small and soon, before anything else.

The forms anyone may send (sign-in on every node; the marketplace's interest form at the
hub): a body over the form's size is 413 whether it announces its length or comes
chunked, one still coming after the form's time is 408, a compressed one is 400 (a few
kilobytes of gzip inflate to megabytes). A compressed body is 400 on every route. On the
federation routes a body is capped by what its route takes, before any of it is read,
and has a time to arrive that grows with its size. Real nodes on loopback ports, spoken
to over raw sockets (chunked and trickled bodies are not what an HTTP client sends).
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Sequence

import pytest

from node.web import requests
from node.web.federation_auth import BODY_GRACE_S, MIN_BODY_RATE, body_deadline_s
from protocol.eoi import BODY_MAX_BYTES as EOI_BODY_MAX_BYTES
from tests.federation.network import NodeFactory, add_member, hub_key
from tests.nodes import RunningNode
from tests.security.test_strangers import header

LOGIN = "/console/login"
INTEREST = "/market/listing/vn/vn-off-0001/interest"
FORM = "application/x-www-form-urlencoded"


def port_of(node: RunningNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


async def exchange(
    node: RunningNode,
    head: str,
    parts: Sequence[bytes] = (),
    gap_s: float = 0.0,
) -> tuple[int, bytes, float]:
    """Send ``head`` (its lines, without the blank line) and then ``parts`` (``gap_s``
    apart, as a slow client would, stopping once an answer has come): the status
    answered, the body and the seconds it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(node))
    started = time.monotonic()
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    answer = asyncio.ensure_future(reader.read(1 << 20))
    try:
        for part in parts:
            if answer.done():
                break
            writer.write(part)
            await writer.drain()
            if gap_s:
                await asyncio.wait({answer}, timeout=gap_s)  # pacing the client
        raw = await asyncio.wait_for(answer, 15)
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw.partition(b"\r\n\r\n")[2], time.monotonic() - started


def chunked(data: bytes, size: int) -> list[bytes]:
    """``data`` as HTTP chunks of ``size`` bytes, and the last chunk."""
    out = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return [*out, b"0\r\n\r\n"]


def post_head(path: str, *lines: str) -> str:
    return "\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines])


@pytest.fixture
async def hub(node_factory: NodeFactory) -> RunningNode:
    return await node_factory("cn", is_hub=True)


@pytest.mark.parametrize("path", [LOGIN, INTEREST])
async def test_a_form_larger_than_it_may_be_is_413_announced_or_chunked(
    hub: RunningNode, path: str
) -> None:
    status, _, _ = await exchange(
        hub, post_head(path, f"Content-Type: {FORM}", "Content-Length: 200000")
    )
    assert status == 413
    body = b"name=" + b"a" * 70_000
    status, page, _ = await exchange(
        hub,
        post_head(path, f"Content-Type: {FORM}", "Transfer-Encoding: chunked"),
        chunked(body, 4096),
    )
    assert status == 413
    assert b"<html" in page  # a page for people, not the JSON error shape


@pytest.mark.parametrize("path", [LOGIN, INTEREST])
async def test_a_form_trickled_byte_by_byte_is_cut_off_at_its_time(
    hub: RunningNode, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "FORM_TIMEOUT_S", 0.5)
    status, page, took = await exchange(
        hub,
        post_head(path, f"Content-Type: {FORM}", "Transfer-Encoding: chunked"),
        [b"1\r\na\r\n"] * 100,
        gap_s=0.1,
    )
    assert status == 408
    assert b"<html" in page
    assert took < 5, took


async def test_a_compressed_body_is_400_on_forms_and_elsewhere(hub: RunningNode) -> None:
    small = gzip.compress(b"name=" + b"a" * 4_000_000)  # 4 MB inflated, a few KB sent
    assert len(small) < 10_000
    for path in (LOGIN, INTEREST, "/admin/v1/listings", "/federation/v1/eoi"):
        status, _, _ = await exchange(
            hub,
            post_head(
                path,
                f"Content-Type: {FORM}",
                "Content-Encoding: gzip",
                f"Content-Length: {len(small)}",
            ),
            [small],
        )
        assert status == 400, path


async def test_a_form_of_the_right_size_in_time_is_read(hub: RunningNode) -> None:
    """Sign-in still reads its form: without the form token it is the expired-form
    page (403), not a refusal of the body."""
    body = b"name=alice&password=secret&login_token=x"
    status, page, _ = await exchange(
        hub,
        post_head(LOGIN, f"Content-Type: {FORM}", "Transfer-Encoding: chunked"),
        chunked(body, 7),
    )
    assert status == 403, page[:300]


async def test_a_federation_body_larger_than_its_route_takes_is_413_before_it_is_read(
    node_factory: NodeFactory, hub: RunningNode
) -> None:
    """A forged signature that names a real member and key passes the header check (the
    body it signs is not there yet): it may still announce no more than its route takes,
    an EoI its few kilobytes and a notify next to nothing."""
    vn = await node_factory("vn", hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
    add_member(hub, vn)
    key = vn.runtime.keys.active.name
    for path, size in (
        ("/federation/v1/eoi", EOI_BODY_MAX_BYTES + 1),
        ("/federation/v1/eoi/reply", EOI_BODY_MAX_BYTES + 1),
        ("/federation/v1/notify", 2048),
    ):
        status, body, took = await exchange(
            hub,
            post_head(
                path,
                "Content-Type: application/json",
                f"Content-Length: {size}",
                f"Authorization: {header('vn', key)}",
            ),
        )
        assert status == 413, (path, body)
        assert took < 2


def test_a_body_has_time_to_arrive_by_its_size() -> None:
    assert body_deadline_s(0, 30) == BODY_GRACE_S
    assert body_deadline_s(EOI_BODY_MAX_BYTES, 30) == round(
        BODY_GRACE_S + EOI_BODY_MAX_BYTES / MIN_BODY_RATE, 1
    )
    assert body_deadline_s(4 * 1024 * 1024, 30) == 30
