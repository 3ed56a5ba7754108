"""The aiohttp application factory of a node.

``create_app(data_dir)`` wires one node: its runtime (config, keys, database, services)
starts and stops in ``cleanup_ctx``, so several nodes can live in one process (tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from node.clock import Clock, system_clock
from node.config import NodeConfig, load_config
from node.hub.loop_lag import LoopLagMonitor
from node.hub.monitor import HubCollector
from node.hub.notices import MatchingService
from node.hub.search import SearchIndex
from node.runtime import open_runtime
from node.services.notifier import Notifier
from node.services.sync_manager import SyncManager
from node.ui.setup import setup_ui
from node.web.appkeys import CLOCK, LOOP_LAG, MATCHING, METRICS, RUNTIME, SEARCH_INDEX, SYNC
from node.web.federation_auth import federation_auth
from node.web.headers import REQUEST_HEAD_LIMITS, install_security_headers
from node.web.middleware import admin_auth_middleware, body_limit_middleware, error_middleware
from node.web.routes import setup_routes


def create_app(
    data_dir: Path,
    *,
    config: NodeConfig | None = None,
    clock: Clock = system_clock,
    http: aiohttp.ClientSession | None = None,
    run_sync: bool = True,
) -> web.Application:
    """A node's app. ``run_sync=False`` leaves the scheduler and notifier off (tests
    that drive sync rounds themselves); the sync manager exists either way."""
    config = config or load_config(data_dir)
    app = web.Application(
        middlewares=[
            error_middleware,
            body_limit_middleware,
            admin_auth_middleware,
            # Before any handler can read a body: a federation body is read only once its
            # signature header holds, and within the bytes-in-flight budget.
            federation_auth(config),
        ],
        client_max_size=config.max_body_bytes,
        handler_args=REQUEST_HEAD_LIMITS,
    )
    app[CLOCK] = clock

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        rt = open_runtime(data_dir, config=config, clock=clock)
        app[RUNTIME] = rt
        session = http or aiohttp.ClientSession()
        manager = SyncManager(rt, session)
        app[SYNC] = manager
        if config.is_hub:
            app[SEARCH_INDEX] = SearchIndex()
            lag = LoopLagMonitor()
            app[LOOP_LAG] = lag
            registry = CollectorRegistry(auto_describe=False)
            registry.register(HubCollector(rt, lag))
            app[METRICS] = registry
            # Matching runs in a worker process: never on the loop, stopped at once.
            matching = MatchingService(rt, in_worker=True)
            app[MATCHING] = matching

            async def rematch(_peer: str) -> None:
                # Waiting re-matches queue in the loop (MatchingService.rematch), not in
                # the database threads: parked there, they would leave none for requests.
                await matching.rematch()

            manager.after_run = rematch
        notifier = Notifier(rt, manager.client)
        tasks: list[asyncio.Task[None]] = []
        if config.is_hub:  # index what the hub already holds, without delaying startup
            tasks.append(asyncio.create_task(rematch("startup")))
            tasks.append(asyncio.create_task(lag.run()))
        if run_sync:
            manager.start()
            tasks.append(asyncio.create_task(notifier.run()))
        yield
        if config.is_hub:  # first: a re-match in progress ends now, its rest stays queued
            await matching.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.aclose()
        if http is None:
            await session.close()
        rt.close()

    app.cleanup_ctx.append(runtime_ctx)
    setup_routes(app)
    setup_ui(app, is_hub=config.is_hub)
    install_security_headers(app)
    return app
