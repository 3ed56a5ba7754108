"""A fault-injecting HTTP proxy between a reader and one node, for the sync fault tests.

A real aiohttp server on 127.0.0.1 (port 0) that forwards every request (method, raw path
and query, headers including ``Authorization``, body) to a target node and returns its
answer, unless a rule says otherwise. Rules apply to the next N requests whose path starts
with a prefix (optionally after letting some through, optionally only those a predicate
accepts) and make the proxy delay, reset the connection, truncate or corrupt the body,
answer 500, or replay an earlier feed page. Hooks run after each forwarded answer, before
the reader sees it, so a test can change the owner's listings between two pages.

Point a reader at it by giving the proxy's URL as the member's ``base_url``
(:func:`route_through`).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from tests.nodes import RunningNode

FEED_PATH = "/federation/v1/feed"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class Fault(enum.Enum):
    DELAY = "delay"  # wait ``delay_s`` (cut short when the proxy stops), then forward
    RESET = "reset"  # close the connection without an answer
    TRUNCATE = "truncate"  # announce the whole body, send half of it, close
    CORRUPT = "corrupt"  # change one letter in the second half of the body
    ERROR = "error"  # answer 500 without asking the node
    DUPLICATE = "duplicate"  # answer with an earlier feed page (default: the last one)


@dataclass
class FaultRule:
    fault: Fault
    path: str = FEED_PATH
    times: int = 1
    skip: int = 0
    delay_s: float = 0.0
    upstream: bool = False  # RESET only: let the node answer first, then drop its answer
    body: bytes | None = None  # DUPLICATE only: the page to replay
    match: Callable[[web.Request], bool] | None = None
    seen: int = 0
    applied: int = 0

    def take(self, request: web.Request) -> bool:
        """Whether this rule fires for ``request`` (counting it if it matches)."""
        if self.applied >= self.times or not request.path.startswith(self.path):
            return False
        if self.match is not None and not self.match(request):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.applied += 1
        return True


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy and what became of it."""

    method: str
    target: str
    status: int | None
    fault: Fault | None


@dataclass
class Upstream:
    status: int
    headers: dict[str, str]
    body: bytes


ResponseHook = Callable[[str, bytes], Awaitable[None]]


@dataclass
class FaultProxy:
    target: str
    rules: list[FaultRule] = field(default_factory=list)
    hooks: list[ResponseHook] = field(default_factory=list)
    log: list[Exchange] = field(default_factory=list)
    feed_pages: list[bytes] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        assert self.port, "proxy not started"
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle -------------------------------------------------------------------
    async def start(self) -> FaultProxy:
        """Listen (again on the same port after a ``stop``, so the directory stays valid)."""
        self._stopping = asyncio.Event()
        if self._session is None:
            self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        """Stop listening: the reader then finds the port closed."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- faults -----------------------------------------------------------------------
    def inject(
        self,
        fault: Fault,
        *,
        path: str = FEED_PATH,
        times: int = 1,
        skip: int = 0,
        delay_s: float = 0.0,
        upstream: bool = False,
        body: bytes | None = None,
        match: Callable[[web.Request], bool] | None = None,
    ) -> FaultRule:
        """Apply ``fault`` to the next ``times`` requests under ``path`` (those ``match``
        accepts), after letting ``skip`` of them through."""
        rule = FaultRule(fault, path, times, skip, delay_s, upstream, body, match)
        self.rules.append(rule)
        return rule

    def after_each_page(self, hook: ResponseHook) -> None:
        """Run ``hook(target, body)`` after each feed page the node served, before the
        reader receives it."""
        self.hooks.append(hook)

    def faults_applied(self) -> int:
        return sum(r.applied for r in self.rules)

    # -- the proxy itself -------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rule = next((r for r in self.rules if r.take(request)), None)
        fault = rule.fault if rule else None
        target = request.raw_path
        response: web.StreamResponse
        status: int | None = None
        if rule is None or rule.fault is Fault.DELAY:
            if rule is not None and await self._stopped_within(rule.delay_s):
                return self._reset(request)
            up = await self._forward(request)
            await self._after(request, up)
            response = web.Response(status=up.status, body=up.body, headers=up.headers)
            status = up.status
        elif rule.fault is Fault.RESET:
            if rule.upstream:
                await self._after(request, await self._forward(request))
            response = self._reset(request)
        elif rule.fault is Fault.ERROR:
            status = 500
            response = web.json_response(
                {"error": {"code": "internal", "message": "injected by the fault proxy"}},
                status=500,
            )
        elif rule.fault is Fault.DUPLICATE:
            body = rule.body if rule.body is not None else self.feed_pages[-1]
            status = 200
            response = web.Response(body=body, content_type="application/json")
        else:
            up = await self._forward(request)
            await self._after(request, up)
            status = up.status
            if rule.fault is Fault.CORRUPT:
                response = web.Response(status=up.status, body=corrupt(up.body), headers=up.headers)
            else:
                response = await self._truncated(request, up)
        self.log.append(Exchange(request.method, target, status, fault))
        return response

    async def _forward(self, request: web.Request) -> Upstream:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        url = URL(self.target.rstrip("/") + request.raw_path, encoded=True)
        async with self._session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as resp:
            data = await resp.read()
            kept = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
            return Upstream(resp.status, kept, data)

    async def _after(self, request: web.Request, up: Upstream) -> None:
        if request.path == FEED_PATH and up.status == 200:
            self.feed_pages.append(up.body)
            for hook in self.hooks:
                await hook(request.raw_path, up.body)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _reset(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the reader: the connection is gone

    @staticmethod
    async def _truncated(request: web.Request, up: Upstream) -> web.StreamResponse:
        response = web.StreamResponse(status=up.status)
        response.content_type = "application/json"
        response.content_length = len(up.body)
        await response.prepare(request)
        await response.write(up.body[: len(up.body) // 2])
        if request.transport is not None:
            request.transport.close()
        return response


def corrupt(body: bytes) -> bytes:
    """``body`` with one letter changed: the first of the last English text (a title),
    else the first in the second half. The JSON still parses; only signatures can tell."""
    data = bytearray(body)
    mark = data.rfind(b'"en": "')
    start = mark + len(b'"en": "') if mark >= 0 else len(data) // 2
    for i in range(start, len(data)):
        if chr(data[i]).isascii() and chr(data[i]).isalpha():
            data[i] = ord("b") if data[i] == ord("a") else ord("a")
            return bytes(data)
    raise ValueError("no letter to corrupt in the body")


def route_through(hub: RunningNode, member: str, base_url: str) -> None:
    """Make ``hub`` reach ``member`` at ``base_url`` (a proxy, or a closed port)."""
    entry = hub.runtime.directory.get(member)
    assert entry is not None, f"{member} is not in the hub's directory"
    entry.base_url = base_url
    hub.runtime.directory.upsert(entry, create=False)


async def start_proxy(hub: RunningNode, member: RunningNode) -> FaultProxy:
    """A proxy in front of ``member``, with ``hub`` pulling through it."""
    proxy = await FaultProxy(member.url).start()
    route_through(hub, member.node_id, proxy.url)
    return proxy
