"""Strangers cost a hub nothing: 1,000 connections to a real ``cattc serve`` hub, each
announcing an expression of interest of the largest size the route takes (32 KiB),
sending half of it and stalling, raise the hub's memory by < 100 MB while ``/healthz``
answers in < 100 ms.

A third of them sends no signature, a third a well-formed one from an unknown origin
(both refused before a byte of body is read), a third a forged one that names a member
and its key (its signature can only fail once the body is in: these may read within the
bytes-in-flight cap, set to 4 MiB here, the rest get 503 at once, and the ones admitted
time out). A body larger than its route takes is refused at once, signature or not.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import secrets
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.runtime import open_runtime
from node.services.directory import Member, keys_from_identity
from node.web import server
from node.web.client import networks
from node.web.federation_auth import ADDRESS_SHARE
from node.web.server import MAX_HEAD_BYTES, GuardedSite, bind
from protocol.b64 import b64url_encode
from protocol.eoi import BODY_MAX_BYTES as EOI_BODY_MAX_BYTES
from protocol.request_sig import RequestSignature
from tests.e2e.test_processes import Proc, serve, stop
from tests.federation.network import NodeFactory, add_member, hub_key
from tests.nodes import COUNTRY
from tests.security.procs import make_node

pytestmark = pytest.mark.slow
CONNECTIONS = 1000
ANNOUNCED = EOI_BODY_MAX_BYTES
SENT = ANNOUNCED // 2
IN_FLIGHT = 4 * 1024 * 1024  # the hub's max_bytes_in_flight here (32 MiB by default)
BODY_TIMEOUT_S = 3.0


@dataclass
class Flood:
    port: int
    headers: list[str | None]
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    answers: list[asyncio.Task[str]] = field(default_factory=list)
    closed: int = 0


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, f"ulimit -Hn {hard} < {needed}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def header(origin: str, key: str) -> str:
    sig = RequestSignature(
        origin=origin,
        destination="cn",
        key=key,
        created=int(time.time() * 1000),
        nonce=b64url_encode(secrets.token_bytes(16)),
        sig=b64url_encode(secrets.token_bytes(64)),
    )
    return sig.header()


async def answer(flood: Flood, reader: asyncio.StreamReader) -> str:
    """The status the hub answers with (or what became of the connection), once the hub
    has closed the connection."""
    status = "no answer"
    try:
        async with asyncio.timeout(4 * BODY_TIMEOUT_S):
            line = await reader.readline()
            status = line.decode().split(" ")[1] if line else "closed"
            while await reader.read(65536):
                pass
    except TimeoutError:
        pass
    except ConnectionError:
        status = "reset" if status == "no answer" else status
    flood.closed += 1
    return status


async def stall(flood: Flood, auth: str | None) -> None:
    """Connect, announce an EoI of ``ANNOUNCED`` bytes, send ``SENT``, then stall
    (reading what the hub answers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", flood.port)
    flood.writers.append(writer)
    head = (
        "POST /federation/v1/eoi HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {ANNOUNCED}\r\n"
        + (f"Authorization: {auth}\r\n" if auth else "")
        + "\r\n"
    )
    writer.write(head.encode() + b" " * SENT)  # no drain: a hub that does not read is fine
    flood.answers.append(asyncio.create_task(answer(flood, reader)))


async def whole_body_from(source: str, port: int, auth: str) -> str:
    """A forged EoI with its whole body, from ``source``: the status line answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    body = b"{}" + b" " * (ANNOUNCED - 2)
    writer.write(
        (
            "POST /federation/v1/eoi HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Authorization: {auth}\r\n\r\n"
        ).encode()
        + body
    )
    try:
        return (await asyncio.wait_for(reader.readline(), 10)).decode()
    finally:
        writer.close()


async def poll_async(check: Callable[[], bool], deadline_s: float) -> bool:
    """``check()`` until it holds (True) or ``deadline_s`` passes (False)."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


def probe(url: str, done: threading.Event) -> list[tuple[float, float]]:
    """``(when, latency)`` of ``/healthz`` calls until ``done``, from a thread of its own:
    the flood's event loop (in this process) must not delay them."""
    latencies: list[tuple[float, float]] = []
    while not done.is_set():
        start = time.monotonic()
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
            resp.read()
        latencies.append((start, time.monotonic() - start))
        done.wait(0.05)  # a probe every 50 ms
    return latencies


async def watch_rss(pid: int, peak: list[int], done: asyncio.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], vm_rss(pid))
        await asyncio.sleep(0.02)


def hub_with_member(root: Path) -> tuple[Proc, str]:
    """A hub whose directory has vn (which never serves): the forged headers name it."""
    hub = make_node(root, "cn", is_hub=True)
    vn = make_node(root, "vn")
    vn_rt = open_runtime(vn.data_dir)
    hub_rt = open_runtime(hub.data_dir)
    try:
        key = vn_rt.keys.active.name
        hub_rt.directory.upsert(
            Member(
                node_id="vn",
                country=COUNTRY["vn"],
                name="vn",
                base_url=vn.url,
                keys=keys_from_identity(vn_rt.identity()),
                groups=["mou"],
            ),
            create=True,
        )
    finally:
        vn_rt.close()
        hub_rt.close()
    return hub, key


async def test_a_thousand_stalled_bodies_cost_the_hub_nothing(tmp_path: Path) -> None:
    raise_open_files(CONNECTIONS + 256)
    hub, key = hub_with_member(tmp_path)
    serve(
        [hub],
        CATTC_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_S),
        CATTC_MAX_BYTES_IN_FLIGHT=str(IN_FLIGHT),
        CATTC_MAX_CONNECTIONS_PER_ADDRESS=str(CONNECTIONS + 10),  # one address plays many
    )
    try:
        await flood_and_measure(hub, key)
    finally:
        stop(hub)


async def flood_and_measure(hub: Proc, key: str) -> None:
    assert hub.popen is not None
    kinds = ["none", "unknown origin", "forged"]
    kind = [kinds[i % 3] for i in range(CONNECTIONS)]
    headers = [
        None if k == "none" else header("zz" if k == "unknown origin" else "vn", key) for k in kind
    ]
    flood = Flood(int(hub.url.rsplit(":", 1)[1]), headers)
    done, probes_done = asyncio.Event(), threading.Event()
    base = vm_rss(hub.popen.pid)
    peak = [base]
    watcher = asyncio.create_task(watch_rss(hub.popen.pid, peak, done))
    prober = asyncio.create_task(asyncio.to_thread(probe, hub.url, probes_done))
    admitted = int(IN_FLIGHT * ADDRESS_SHARE) // ANNOUNCED  # all come from one address
    try:
        opened = asyncio.Semaphore(100)

        async def one(auth: str | None) -> None:
            async with opened:
                await stall(flood, auth)

        started = time.monotonic()
        await asyncio.gather(*(one(auth) for auth in headers))
        # The hub answers and drops every stranger but those it lets send a body, which
        # stall (reading theirs) while /healthz is asked for a second.
        dropped = await poll_async(lambda: flood.closed >= CONNECTIONS - admitted, 10)
        # The stalled ones hold their address's share of the budget, not the budget: a
        # body from elsewhere is still read (and its forged signature refused).
        elsewhere = await whole_body_from("127.0.0.2", flood.port, header("vn", key))
        calm = time.monotonic()
        await asyncio.sleep(1.0)  # a time to measure in, not a wait for a condition
        probes_done.set()
        statuses = await asyncio.gather(*flood.answers)
    finally:
        done.set()
        probes_done.set()
        latencies = await prober
        await watcher
        for writer in flood.writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in flood.writers), return_exceptions=True)
    rise = peak[0] - base
    by_kind = {
        k: Counter(s for s, kk in zip(statuses, kind, strict=True) if kk == k) for k in kinds
    }
    stalled = [lat for when, lat in latencies if when >= calm]
    burst = [lat for when, lat in latencies if when < calm]
    print(
        f"\n{CONNECTIONS} stalled {ANNOUNCED >> 10} KiB bodies: "
        f"hub RSS {base >> 20} -> {peak[0] >> 20} MiB "
        f"(+{rise >> 20}); hub dropped the strangers in {calm - started:.1f} s; /healthz max "
        f"{max(burst, default=0) * 1000:.0f} ms meanwhile ({len(burst)} probes), "
        f"{max(stalled, default=0) * 1000:.0f} ms while they stall ({len(stalled)}); {by_kind}"
    )
    assert len(flood.writers) == CONNECTIONS
    assert rise < 100 * 1024 * 1024
    assert by_kind["none"] == Counter({"401": CONNECTIONS // 3 + 1}), by_kind
    assert by_kind["unknown origin"] == Counter({"403": CONNECTIONS // 3}), by_kind
    # As many as fit in the bytes-in-flight cap read (and time out); the rest get 503.
    forged = by_kind["forged"]
    assert set(forged) == {"408", "503"} and forged.total() == CONNECTIONS // 3, forged
    assert admitted <= forged["408"] <= 3 * admitted, forged
    assert elsewhere.startswith("HTTP/1.1 401"), elsewhere
    assert dropped and stalled and max(stalled) < 0.1


async def serve_guarded(
    max_connections: int, header_timeout_s: float, **site: Any
) -> tuple[web.AppRunner, int]:
    """A small app behind ``GuardedSite``, as ``cattc serve`` runs a node."""
    runner, port, _ = await serve_site(max_connections, header_timeout_s, **site)
    return runner, port


async def serve_site(
    max_connections: int, header_timeout_s: float, **site: Any
) -> tuple[web.AppRunner, int, GuardedSite]:
    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1024 * 1024)

    app = web.Application()
    app.router.add_get("/healthz", hello)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app, keepalive_timeout=header_timeout_s)
    await runner.setup()
    sock = bind("127.0.0.1", 0)
    guarded = GuardedSite(runner, sock, max_connections, **site)
    await guarded.start()
    return runner, int(sock.getsockname()[1]), guarded


async def get_healthz(port: int, source: str | None = None) -> str:
    local = None if source is None else (source, 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    try:
        return (await reader.read()).decode()
    finally:
        writer.close()


async def test_connections_over_the_cap_get_503_at_once() -> None:
    runner, port = await serve_guarded(max_connections=3, header_timeout_s=30)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        answer = await asyncio.wait_for(get_healthz(port), 5)
        assert answer.startswith("HTTP/1.1 503") and '"server_busy"' in answer, answer
        _, writer = idle.pop()
        writer.close()
        await writer.wait_closed()

        async def served() -> bool:
            return (await get_healthz(port)).startswith("HTTP/1.1 200")

        assert await poll_async_result(served, 5), "a freed place was not given to a new caller"
    finally:
        for _, writer in idle:
            writer.close()
        await runner.cleanup()


async def test_one_address_has_its_share_of_connections_and_others_still_come_in() -> None:
    """2,048 idle sockets from one address, reopened as they were closed, kept every
    other caller out: past its share an address gets 503, while others are served (a
    trusted proxy, which speaks for many, has no share)."""
    runner, port = await serve_guarded(max_connections=10, header_timeout_s=30, per_address=3)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        answer = await asyncio.wait_for(get_healthz(port), 5)
        assert answer.startswith("HTTP/1.1 503") and '"server_busy"' in answer, answer
        other = await asyncio.wait_for(get_healthz(port, source="127.0.0.2"), 5)
        assert other.startswith("HTTP/1.1 200"), other
    finally:
        for _, writer in idle:
            writer.close()
        await runner.cleanup()
    runner, port = await serve_guarded(
        max_connections=10, header_timeout_s=30, per_address=3, trusted=networks(["127.0.0.1"])
    )
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    try:
        answer = await asyncio.wait_for(get_healthz(port), 5)
        assert answer.startswith("HTTP/1.1 200"), answer
    finally:
        for _, writer in idle:
            writer.close()
        await runner.cleanup()


async def test_a_request_head_larger_than_its_bound_is_refused_before_it_ends() -> None:
    """aiohttp allows 128 headers of 8 KB and held each twice until the head ended:
    2,000 unfinished heads took 3 GB. A head past ``MAX_HEAD_BYTES`` gets 431 at once."""
    runner, port = await serve_guarded(max_connections=10, header_timeout_s=30)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Pad: " + b"a" * 8000 + b"\r\n"
        for _ in range(MAX_HEAD_BYTES // len(line) + 2):  # and never the blank line
            writer.write(line)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
        writer.close()
        # an ordinary head on a new connection is served, and heads one after another on
        # a kept-alive connection count one at a time
        assert (await get_healthz(port)).startswith("HTTP/1.1 200")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000 + b"\r\n\r\n"
        for _ in range(3 * MAX_HEAD_BYTES // len(head)):
            writer.write(head)
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200"), status
            while (await reader.readline()) != b"\r\n":  # the rest of the head
                pass
            await reader.readexactly(len(b'{"status": "ok"}'))
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_client_that_reads_nothing_is_dropped_after_the_write_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that asks for answers and never reads them kept them in memory (~60 MB a
    connection, for as long as it stayed): a write that cannot go on for
    ``WRITE_STALL_S`` ends the connection."""
    monkeypatch.setattr(server, "WRITE_STALL_S", 0.5)
    runner, port, site = await serve_site(max_connections=10, header_timeout_s=30)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 64)  # never read
        assert await poll_async_result(lambda: _true(site.open == 1), 5)
        assert await poll_async_result(lambda: _true(site.open == 0), 10), "still open"
        sock.close()
    finally:
        await runner.cleanup()


async def _true(value: bool) -> bool:
    return value


async def test_a_request_head_that_never_ends_is_cut_off() -> None:
    runner, port = await serve_guarded(max_connections=10, header_timeout_s=0.5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no blank line, ever
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        assert time.monotonic() - started < 3
        writer.close()
    finally:
        await runner.cleanup()


async def poll_async_result(check: Callable[[], Awaitable[bool]], deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while not await check():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_a_body_cut_short_is_no_error_of_the_hub(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await node_factory("cn", is_hub=True)
    vn = await node_factory("vn", hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
    add_member(hub, vn)
    port = int(hub.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /federation/v1/notify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        + f"Authorization: {header('vn', vn.runtime.keys.active.name)}\r\n\r\n".encode()
        + b"{"
    )
    await writer.drain()

    def cut_short() -> bool:
        return any("cut short" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="node.web.federation_auth"):
        writer.close()
        await writer.wait_closed()
        assert await poll_async(cut_short, 5), [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
