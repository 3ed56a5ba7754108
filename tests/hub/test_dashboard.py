"""The hub operator's dashboard in headless Chromium: one member failing, one stale.

Chromium is Debian's package (``make test`` installs it when missing); the page's own
JavaScript fetches /hub/status with the admin token and renders each member's state.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from node.services.directory import Member
from node.web.appkeys import HUB_MATCHING
from tests.conftest import DatabaseUrlFactory
from tests.federation.network import add_member, hub_key
from tests.nodes import RunningNode, start_node

INTERVAL_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def broken_peer() -> AsyncIterator[str]:
    """A 'member' whose feed answers HTTP 500."""

    async def fail(_: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": "internal_error", "message": "db down"}}, status=500
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _chromium(args: list[str]) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is not installed; run 'make test' (it installs it)"
    proc = await asyncio.create_subprocess_exec(
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=8000",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0
    return out.decode("utf-8", "replace")


async def test_dashboard_shows_failing_and_stale_members(
    tmp_path: Path, database_url: DatabaseUrlFactory, broken_peer: str
) -> None:
    clock = Clock()
    started: list[RunningNode] = []
    try:
        hub = await start_node(tmp_path, "cn", database_url("cn"), clock=clock, is_hub=True)
        started.append(hub)
        th = await start_node(
            tmp_path, "th", database_url("th"), hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn"
        )
        started.append(th)
        add_member(hub, th)
        from tests.federation.network import load_records
        from tests.node.sample import sample_records

        load_records(th, sample_records("th"))
        # 'vn' is a member whose node answers 500: failing from the start.
        vn_keys = {"ed25519:1": {"key": hub_key(hub)}}
        hub.runtime.directory.upsert(
            Member("vn", "VN", "Vietnam", broken_peer, vn_keys, ["mou"]), create=True
        )
        runs = await hub.sync.sync_all()
        by_peer = {r.peer: r for r in runs}
        assert by_peer["th"].error is None and by_peer["th"].applied > 0
        assert by_peer["vn"].error is not None

        # th goes away for longer than three sync intervals: its copies become stale.
        member = hub.runtime.directory.get("th")
        assert member is not None
        member.base_url = "http://127.0.0.1:9"  # discard port: connection refused
        hub.runtime.directory.upsert(member, create=False)
        clock.now += int(4 * INTERVAL_S * 1000)
        await hub.sync.sync_peer("th", force=True)
        await hub.sync.sync_peer("vn", force=True)

        # The matcher's first pass has ended: the page can say how it matches.
        matching = hub.app[HUB_MATCHING]
        deadline = time.monotonic() + 60
        while matching.service.last_status is None:
            assert time.monotonic() < deadline, "the hub's matcher never ended a pass"
            await asyncio.sleep(0.1)

        url = f"{hub.url}/hub/dashboard#token={hub.token}"
        dom = await _chromium(["--dump-dom", url])
        assert 'data-loaded="yes"' in dom, dom[:2000]
        assert 'data-member="th"' in dom and 'data-state="stale"' in dom
        assert 'data-member="vn"' in dom and 'data-state="failing"' in dom
        assert "db down" in dom  # the failing member's error is shown
        # The suite's hubs match lexically (tests/conftest.py), and the page says why.
        assert 'data-matching="lexical"' in dom
        assert "lexical only (switched off by CATTC_SEMANTIC)" in dom

        shot = tmp_path / "dashboard.png"
        await _chromium([f"--screenshot={shot}", "--window-size=1366,800", url])
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        for node in reversed(started):
            await node.stop()
