"""``setup_hub(app)``: what makes a node's app the hub's. Only the hub calls it, so on a
member node the hub's routes do not exist (the router's 404) and none of its state runs.

It registers the hub's API routes, the public marketplace and the operator's console,
and a cleanup context holding the hub's state: the search index, the loop-lag monitor,
the metrics registry and the matcher (``HubMatching``).

Several processes may serve one hub (``cattc serve --workers N``): every one serves
search, status and pages, but the matcher runs once, in the node's leader process
(``node.services.leader``), in a worker process of its own. A re-match after another
process's pull and ``/admin/v1/matches`` asked of another process go to the leader's
control endpoint: a loopback HTTP site only the leader runs, whose address and secret
it writes into the database with its leader row.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from node.hub.loop_lag import LoopLagMonitor
from node.hub.monitor import HubCollector
from node.hub.notices import MatchingService
from node.hub.search import SearchIndex
from node.runtime import NodeRuntime
from node.services.leader import LeaderInfo, Leadership, leader_in
from node.web.appkeys import (
    HUB_MATCHING,
    LEADER,
    LOOP_LAG,
    METRICS,
    RUNTIME,
    SEARCH_INDEX,
    SYNC,
)
from node.web.middleware import ApiError
from node.web.routes import setup_hub_routes
from protocol.errors import ErrorCode
from sync.interfaces import Changes

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Cattc-Leader"
FORWARD_TIMEOUT_S = 120.0  # a top list of a large hub takes the worker a while
REMATCH_HINT_TIMEOUT_S = 5.0


def setup_hub(app: web.Application) -> None:
    """The hub's routes, pages and state, on ``app`` (before it starts). Needs the node's
    runtime, sync manager and leadership (``node.web.app``'s contexts) started first."""
    from node.hubops import routes as hubops_routes  # noqa: PLC0415 - pages import the app
    from node.market import routes as market_routes  # noqa: PLC0415

    setup_hub_routes(app)
    market_routes.setup(app)
    hubops_routes.setup(app)
    app.cleanup_ctx.append(_hub_ctx)
    # Before the contexts close (the sync manager waits for its pulls, which may wait for
    # a re-match): a re-match in progress ends now, its rest stays queued.
    app.on_shutdown.append(_stop_matching)


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    app[SEARCH_INDEX] = SearchIndex()
    lag = LoopLagMonitor()
    app[LOOP_LAG] = lag
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(rt, lag))
    app[METRICS] = registry
    manager = app[SYNC]
    hub = HubMatching(rt, app[LEADER], manager.session)
    # The matcher is ``hub.service``, made again at each gained leadership: held only
    # there (one source of truth), it starts no worker until the leader calls it (a
    # process that never leads never starts one).
    app[HUB_MATCHING] = hub
    manager.add_observer(hub)
    lag_task = asyncio.create_task(lag.run())
    yield
    lag_task.cancel()
    await asyncio.gather(lag_task, return_exceptions=True)
    await hub.stop()


async def _stop_matching(app: web.Application) -> None:
    hub = app.get(HUB_MATCHING)
    if hub is not None:
        hub.service.close()


class HubMatching:
    """The hub's matcher as each of its processes sees it: the leader runs it (and its
    control endpoint); the others hand it re-matches and ask it for match lists."""

    def __init__(
        self, rt: NodeRuntime, leadership: Leadership, session: aiohttp.ClientSession
    ) -> None:
        self.rt = rt
        self.leadership = leadership
        self.session = session
        self.service = MatchingService(rt, in_worker=True)
        self._stopped = False  # the matcher was closed: a new leadership makes a new one
        self._site: web.AppRunner | None = None
        self._secret = ""
        self.answered = 0  # match lists the control endpoint gave other processes
        self._tasks: set[asyncio.Task[Any]] = set()
        leadership.on_gain(self.start)
        leadership.on_lose(self.stop)

    # -- as the leader ----------------------------------------------------------------
    async def start(self) -> None:
        """Leading now: a fresh matcher if the last one was stopped, the control
        endpoint, and a re-match of what the hub already holds (without delaying)."""
        if self._stopped:
            self.service = MatchingService(self.rt, in_worker=True)
            self._stopped = False
        secret = secrets.token_urlsafe(32)
        self._secret = secret
        control = web.Application()
        control.router.add_get("/matches", self._control_matches)
        control.router.add_post("/rematch", self._control_rematch)
        runner = web.AppRunner(control, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._site = runner
        host, port = runner.addresses[0][:2]
        self.leadership.address = (f"http://{host}:{port}", secret)
        self._background(self.service.rematch())

    async def stop(self) -> None:
        """No longer leading (or stopping): the matcher and its endpoint end now."""
        self._stopped = True
        await self.service.aclose()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._site is not None:
            runner, self._site = self._site, None
            await runner.cleanup()

    def _background(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check(self, request: web.Request) -> None:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise web.HTTPForbidden()

    async def _control_matches(self, request: web.Request) -> web.Response:
        self._check(request)
        try:
            k, limit = int(request.query["k"]), int(request.query["limit"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest() from None
        self.answered += 1
        return web.json_response({"matches": await self._local_rows(k, limit)})

    async def _control_rematch(self, request: web.Request) -> web.Response:
        self._check(request)
        self._background(self.service.rematch())
        return web.json_response({"scheduled": True}, status=202)

    async def _local_rows(self, k: int, limit: int) -> list[dict[str, Any]]:
        top = await self.rt.run(self.service.top, k)
        rows = sorted(
            (m for found in top.values() for m in found), key=lambda m: (-m.score, m.request)
        )[:limit]
        return [
            {
                "request": {"owner": m.request[0], "id": m.request[1]},
                "candidate": {"owner": m.candidate[0], "id": m.candidate[1]},
                "kind": m.kind,
                "score": round(m.score, 4),
                "components": {name: round(v, 4) for name, v in m.components.items()},
                "shared_terms": list(m.shared_terms),
                "shared_codes": list(m.shared_codes),
                "explanation": m.explanation(),
            }
            for m in rows
        ]

    # -- in every process -------------------------------------------------------------
    async def synced(self, changes: Changes) -> None:
        """A pull of this process changed listings (``sync.interfaces.SyncObserver``): the
        leader re-matches. Waiting re-matches queue in the loop
        (``MatchingService.rematch``), never in the database threads: parked there, they
        would leave none for requests."""
        if self.leadership.is_leader:
            await self.service.rematch()
            return
        try:
            await self._to_leader("POST", "/rematch", REMATCH_HINT_TIMEOUT_S)
        except ApiError as exc:  # the new leader re-matches what is pending when it starts
            logger.info("re-match not handed over: %s", exc.message)

    async def match_rows(self, k: int, limit: int) -> list[dict[str, Any]]:
        """The best candidates of each request (``k`` each), best first, ``limit`` in all:
        from the matcher here, or the leader's."""
        if self.leadership.is_leader:
            return await self._local_rows(k, limit)
        body = await self._to_leader("GET", f"/matches?k={k}&limit={limit}", FORWARD_TIMEOUT_S)
        rows: list[dict[str, Any]] = body["matches"]
        return rows

    async def _to_leader(self, method: str, path: str, timeout_s: float) -> Any:
        info = await self.rt.db.run(leader_in)
        if info is None or not info.url:
            raise ApiError(
                503, ErrorCode.SERVER_BUSY, "the matcher is starting (no leader process yet)"
            )
        try:
            return await call_leader(self.session, info, method, path, timeout_s)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                503, ErrorCode.SERVER_BUSY, f"the matcher's process did not answer: {exc}"
            ) from exc


async def call_leader(
    session: aiohttp.ClientSession, info: LeaderInfo, method: str, path: str, timeout_s: float
) -> Any:
    """The JSON answer of the leader's control endpoint (``aiohttp.ClientError`` or
    ``TimeoutError`` when it does not answer, or not with 2xx)."""
    async with session.request(
        method,
        info.url + path,
        headers={SECRET_HEADER: info.secret},
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as resp:
        resp.raise_for_status()
        return await resp.json()
