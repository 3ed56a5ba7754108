"""Real nodes for tests: a data directory made by ``init_node``, a real database, and the
aiohttp app served on a loopback port chosen by the OS."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node.clock import Clock, system_clock
from node.config import NodeConfig
from node.runtime import NodeRuntime
from node.services.setup import init_node
from node.services.sync_manager import SyncManager
from node.web.app import create_app
from node.web.appkeys import RUNTIME, SYNC

COUNTRY = {
    "cn": "CN",
    "th": "TH",
    "la": "LA",
    "kh": "KH",
    "mm": "MM",
    "vn": "VN",
    "bn": "BN",
    "id": "ID",
    "my": "MY",
    "ph": "PH",
    "sg": "SG",
}


def seed_for(node_id: str) -> bytes:
    """A fixed Ed25519 seed per node id, so signatures in tests are reproducible."""
    return hashlib.sha256(f"cattc-test-seed-{node_id}".encode()).digest()


def make_node_dir(
    root: Path, node_id: str, database_url: str, **config: Any
) -> tuple[Path, NodeConfig, str]:
    data_dir = root / node_id
    cfg = NodeConfig(
        node_id=node_id,
        country=COUNTRY.get(node_id, "VN"),
        name=f"Test center {node_id}",
        port=0,
        database_url=database_url,
        **config,
    )
    result = init_node(data_dir, cfg, seed=seed_for(node_id), admin_token=f"token-{node_id}")
    return data_dir, result.config, result.admin_token


@dataclass
class RunningNode:
    node_id: str
    data_dir: Path
    url: str
    token: str
    app: web.Application
    runner: web.AppRunner

    @property
    def runtime(self) -> NodeRuntime:
        return self.app[RUNTIME]

    @property
    def sync(self) -> SyncManager:
        return self.app[SYNC]

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def admin(
        self, session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {**self.admin_headers, **kwargs.pop("headers", {})}
        async with session.request(method, self.url + path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_node(
    root: Path,
    node_id: str,
    database_url: str,
    *,
    clock: Clock = system_clock,
    run_sync: bool = False,
    http: aiohttp.ClientSession | None = None,
    **config: Any,
) -> RunningNode:
    data_dir, cfg, token = make_node_dir(root, node_id, database_url, **config)
    return await serve_node(data_dir, cfg, token, clock=clock, run_sync=run_sync, http=http)


async def serve_node(
    data_dir: Path,
    cfg: NodeConfig,
    token: str,
    *,
    clock: Clock = system_clock,
    run_sync: bool = False,
    http: aiohttp.ClientSession | None = None,
) -> RunningNode:
    """Serve a node on a free loopback port. ``run_sync`` starts its scheduler and notifier;
    without it, tests drive sync rounds themselves (``node.sync.sync_all()``). ``http`` is
    the client session its sync uses (the caller closes it); by default the node's own."""
    app = create_app(data_dir, config=cfg, clock=clock, run_sync=run_sync, http=http)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    url = f"http://127.0.0.1:{port}"
    app[RUNTIME].config.base_url = url
    app[RUNTIME].config.port = port
    return RunningNode(cfg.node_id, data_dir, url, token, app, runner)
