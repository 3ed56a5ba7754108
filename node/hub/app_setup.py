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
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from node.hub import match_queue
from node.hub.held_now import held_now
from node.hub.loop_lag import LoopLagMonitor
from node.hub.match_engine import Ref
from node.hub.monitor import HubCollector
from node.hub.notices import MatchingService
from node.hub.search import SearchIndex
from node.matching.model_choice import hub_encoder_name
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

if TYPE_CHECKING:
    from node.matching.match import Match

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Cattc-Leader"
FORWARD_TIMEOUT_S = 120.0  # a top list of a large hub takes the worker a while
REMATCH_HINT_TIMEOUT_S = 5.0
# Seconds between two looks of the leader at the matcher's queue: changes queued with no
# re-match asked of it (another process's hint lost, ``cattc sync`` meanwhile) are
# matched within this time.
CATCH_UP_S = 30.0
# Retracted listings a re-match hint names at most (more: the re-match alone takes them
# out): at most about 100 bytes each, a hint stays under the 1 MiB a body may have.
DROP_MAX = 5_000
HELD_CHECK = 1000  # pairs of a match list checked against what is held per query
# Pairs of the match lists kept between queries: the most a query shows (1,000), with
# room for those that left the hub since.
LIST_ROWS = 2000
LIST_MAX_AGE_S = 60.0


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
    hub = HubMatching(rt, app[LEADER], manager.session, manager.checking_in_workers)
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


@dataclass(frozen=True)
class _Lists:
    """The best pairs of the top lists as the matcher ``service`` gave them, at ``at``
    (``time.monotonic()``), when pulls and passes stood at ``mark``."""

    matches: list[Match]
    mark: tuple[int, int]
    at: float
    service: MatchingService


class HubMatching:
    """The hub's matcher as each of its processes sees it: the leader runs it (and its
    control endpoint); the others hand it re-matches and ask it for match lists."""

    def __init__(
        self,
        rt: NodeRuntime,
        leadership: Leadership,
        session: aiohttp.ClientSession,
        hold_encoding: Callable[[], bool],
    ) -> None:
        """``hold_encoding``: whether the matcher's passes leave encoding for later (a
        long pull's checks run in their workers: ``SyncManager.checking_in_workers``)."""
        self.rt = rt
        self.leadership = leadership
        self.session = session
        self.model = hub_encoder_name()  # e5 unless CATTC_SEMANTIC says otherwise
        self.hold_encoding = hold_encoding
        self.service = self._new_service()
        self._stopped = False  # the matcher was closed: a new leadership makes a new one
        self._site: web.AppRunner | None = None
        self._secret = ""
        self.answered = 0  # match lists the control endpoint gave other processes
        self._tasks: set[asyncio.Task[Any]] = set()
        # The best pairs of the last top lists asked of the matcher, per k (``_lists``).
        self._lists: dict[int, _Lists] = {}
        self._fetching: dict[int, asyncio.Task[list[Match]]] = {}
        self._added = 0  # pulls that added or changed listings: the lists may have grown
        leadership.on_gain(self.start)
        leadership.on_lose(self.stop)

    def status(self) -> dict[str, Any]:
        """What ``/hub/status`` tells of matching: the model asked for, and (in the leader,
        after its first pass) what the matcher holds, has still to do and to encode, and
        whether its model loaded (the reason when it did not: it then matches lexically)."""
        out: dict[str, Any] = {"model": self.model or "lexical", "this_process": False}
        last = self.service.last_status
        if self.leadership.is_leader and not self._stopped:
            out["this_process"] = True
            out["left"] = self.service.left
            out["encoding_held"] = self.service.encoding_held
            if last is not None:
                out.update(last)
        return out

    def _new_service(self) -> MatchingService:
        return MatchingService(
            self.rt, self.worker_model(), in_worker=True, hold_encoding=self.hold_encoding
        )

    def worker_model(self) -> str:
        """What the worker is told to load: the model, or ``off`` (it then says why it
        matches lexically)."""
        return self.model or "off"

    # -- as the leader ----------------------------------------------------------------
    async def start(self) -> None:
        """Leading now: a fresh matcher if the last one was stopped, the control
        endpoint, and a re-match of what the hub already holds (without delaying)."""
        if self._stopped:
            self.service = self._new_service()
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
        self._background(self._catch_up())

    async def _catch_up(self) -> None:
        """As the leader: a re-match whenever changes wait in the matcher's queue though
        no pull asked for one (``node.hub.match_queue``)."""
        while True:
            await asyncio.sleep(CATCH_UP_S)
            try:
                if await self.rt.db.run(match_queue.waiting):
                    await self.service.rematch()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: look again next time
                logger.exception("matcher queue check failed")

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
        """Another process pulled: take what it retracted out of the lists now, then
        re-match (in the background)."""
        self._check(request)
        try:
            removed = _refs(await request.json()) if request.can_read_body else []
        except ValueError:
            removed = []
        self._background(self._drop_and_rematch(removed))
        return web.json_response({"scheduled": True}, status=202)

    async def _drop_and_rematch(self, removed: list[Ref]) -> None:
        """Retracted listings leave every match list at once (the matching worker drops
        them between two batches of a re-match in progress); the re-match after."""
        await self.service.drop(removed)
        await self.service.rematch()

    async def _local_rows(self, k: int, limit: int) -> list[dict[str, Any]]:
        """The best ``limit`` pairs of the matcher's top lists that name only listings
        held now (``node.hub.held_now``: a withdrawal applied a moment ago is not shown,
        though the worker may still be in the middle of a batch)."""
        ordered = await self._lists_for(k)
        rows: list[Match] = []
        for start in range(0, len(ordered), HELD_CHECK):
            chunk = ordered[start : start + HELD_CHECK]
            refs = {ref for m in chunk for ref in (m.request, m.candidate)}
            held = await self.rt.run(held_now, self.rt, refs)
            rows.extend(m for m in chunk if m.request in held and m.candidate in held)
            if len(rows) >= limit:
                break
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
            for m in rows[:limit]
        ]

    def _mark(self) -> tuple[int, int]:
        return self._added, self.service.passes

    async def _lists_for(self, k: int) -> list[Match]:
        """The best ``LIST_ROWS`` pairs of the top ``k`` lists, best first. Asking the
        matcher takes seconds on a large hub (the worker answers between the batches of a
        re-match, and ranks every request's candidates), so the last answer is kept: it
        is given again, and asked anew in the background once a pull added or changed
        listings, a re-match pass ended, or ``LIST_MAX_AGE_S`` passed. What left the hub
        meanwhile is filtered out by the caller; only a first list is waited for."""
        cached = self._lists.get(k)
        if cached is None or cached.service is not self.service:
            return await asyncio.shield(self._fetch(k))
        stale = time.monotonic() - cached.at > LIST_MAX_AGE_S
        if (stale or cached.mark != self._mark()) and k not in self._fetching:
            self._fetch(k)
        return cached.matches

    def _fetch(self, k: int) -> asyncio.Task[list[Match]]:
        """The task asking the matcher for the top ``k`` lists (one at a time per k)."""
        task = self._fetching.get(k)
        if task is None:
            task = asyncio.create_task(self._fetch_now(k))
            self._fetching[k] = task
            self._tasks.add(task)

            def done(t: asyncio.Task[list[Match]]) -> None:
                self._tasks.discard(t)
                if self._fetching.get(k) is t:
                    del self._fetching[k]
                if not t.cancelled() and t.exception() is not None:
                    logger.warning("match lists not refreshed: %s", t.exception())

            task.add_done_callback(done)
        return task

    async def _fetch_now(self, k: int) -> list[Match]:
        service, mark = self.service, self._mark()  # before: a change meanwhile asks again
        # Waited for in a thread: the worker answers between the batches of a re-match.
        ordered = await self.rt.run(service.best, LIST_ROWS, k)
        self._lists[k] = _Lists(ordered, mark, time.monotonic(), service)
        return ordered

    # -- in every process -------------------------------------------------------------
    async def synced(self, changes: Changes) -> None:
        """A pull of this process changed listings (``sync.interfaces.SyncObserver``): the
        leader re-matches. Waiting re-matches queue in the loop
        (``MatchingService.rematch``), never in the database threads: parked there, they
        would leave none for requests."""
        removed = [(changes.origin, lid) for lid in changes.ids("removed")]
        if len(removed) < len(changes.listings):
            self._added += 1
        if self.leadership.is_leader:
            await self._drop_and_rematch(removed)
            return
        hint = {"removed": removed} if len(removed) <= DROP_MAX else None
        try:
            await self._to_leader("POST", "/rematch", REMATCH_HINT_TIMEOUT_S, hint)
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

    async def _to_leader(self, method: str, path: str, timeout_s: float, body: Any = None) -> Any:
        info = await self.rt.db.run(leader_in)
        if info is None or not info.url:
            raise ApiError(
                503, ErrorCode.SERVER_BUSY, "the matcher is starting (no leader process yet)"
            )
        try:
            return await call_leader(self.session, info, method, path, timeout_s, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                503, ErrorCode.SERVER_BUSY, f"the matcher's process did not answer: {exc}"
            ) from exc


async def call_leader(
    session: aiohttp.ClientSession,
    info: LeaderInfo,
    method: str,
    path: str,
    timeout_s: float,
    body: Any = None,
) -> Any:
    """The JSON answer of the leader's control endpoint (``aiohttp.ClientError`` or
    ``TimeoutError`` when it does not answer, or not with 2xx); ``body`` is sent as JSON."""
    async with session.request(
        method,
        info.url + path,
        headers={SECRET_HEADER: info.secret},
        json=body,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as resp:
        resp.raise_for_status()
        return await resp.json()


def _refs(body: Any) -> list[Ref]:
    """The (owner, listing id) pairs of a re-match hint's ``removed`` ([] if malformed:
    the re-match takes them out anyway)."""
    removed = body.get("removed") if isinstance(body, dict) else None
    if not isinstance(removed, list) or len(removed) > DROP_MAX:
        return []
    refs: list[Ref] = []
    for pair in removed:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(part, str) for part in pair)
        ):
            return []
        refs.append((pair[0], pair[1]))
    return refs
