"""The aiohttp application factory of a node.

``create_app(data_dir)`` wires one node: its runtime (config, keys, database, services)
starts and stops in ``cleanup_ctx``, so several nodes can live in one process (tests).
The hub's routes, pages and state come from ``node.hub.app_setup.setup_hub``, on the hub
only; the node's once-per-node work runs in its leader process (``node.services.leader``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from node.clock import Clock, system_clock
from node.config import NodeConfig, load_config
from node.hub.app_setup import setup_hub
from node.runtime import open_runtime
from node.services.leader import LeaderPresigner, Leadership
from node.services.notifier import Notifier
from node.services.sync_manager import SyncManager
from node.ui.setup import setup_ui
from node.web.appkeys import CLOCK, LEADER, RUNTIME, SYNC
from node.web.federation_auth import federation_auth
from node.web.headers import REQUEST_HEAD_LIMITS, install_security_headers, quiet_refused_heads
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
        # Compressed bodies are refused (``body_limit_middleware``), never inflated.
        handler_args={**REQUEST_HEAD_LIMITS, "auto_decompress": False},
    )
    app[CLOCK] = clock
    quiet_refused_heads()

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        rt = open_runtime(data_dir, config=config, clock=clock)
        app[RUNTIME] = rt
        session = http or aiohttp.ClientSession()
        manager = SyncManager(rt, session)
        app[SYNC] = manager
        app[LEADER] = Leadership(rt)
        yield
        await manager.aclose()
        if http is None:
            await session.close()
        rt.close()

    async def leader_ctx(app: web.Application) -> AsyncIterator[None]:
        """The node's singletons (the hub's matcher, the pre-signer, the notifier) run in
        the process that holds the node's leader lock; the others take over when it
        stops. After the hub's context: its start hooks are registered by then."""
        leadership = app[LEADER]
        manager = app[SYNC]
        manager.presigner = LeaderPresigner(app[RUNTIME], leadership)
        if run_sync:
            notifier = Notifier(app[RUNTIME], manager.client)
            running: list[asyncio.Task[None]] = []

            async def start_notifier() -> None:
                running.append(asyncio.create_task(notifier.run()))

            async def stop_notifier() -> None:
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                running.clear()

            leadership.on_gain(start_notifier)
            leadership.on_lose(stop_notifier)
        await leadership.start()
        yield
        await leadership.aclose()

    async def sync_ctx(app: web.Application) -> AsyncIterator[None]:
        if run_sync:
            app[SYNC].start()
        yield
        app[SYNC].stop()

    app.cleanup_ctx.append(runtime_ctx)
    setup_routes(app)
    setup_ui(app)
    if config.is_hub:
        setup_hub(app)
    app.cleanup_ctx.append(leader_ctx)
    app.cleanup_ctx.append(sync_ctx)
    install_security_headers(app)
    return app
