"""The operator's commands beside a running ``cattc serve`` on the same data directory.

The hub is a real ``cattc serve`` process; the member th is a real node in this process,
reached through a proxy that can hold a feed page, so that a pull by the server is
certainly in flight when ``cattc sync HUB now`` starts (also a real process). The two
must never pull the same peer at once: they would apply the same page twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from yarl import URL

from node.config import NodeConfig
from node.runtime import open_runtime
from node.services.directory import Member, keys_from_identity
from node.services.setup import init_node
from node.storage.db import make_engine
from node.storage.models import RemoteListingRow, SyncRunRow
from protocol.b64 import b64url_encode
from protocol.keys import KeyStore
from tests.e2e.test_processes import free_port
from tests.federation.faultproxy import FaultProxy
from tests.federation.network import NodeFactory, allowed_for, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode, seed_for
from tests.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow
DatabaseUrlFactory = Callable[[str], str]
DEADLINE_S = 30.0


def cattc_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATTC_")}
    env["CATTC_LOG_LEVEL"] = "WARNING"
    return env


async def start_cattc(*args: str | Path, **kwargs: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli.main",
        *(str(a) for a in args),
        cwd=PROJECT_ROOT,
        env=cattc_env(),
        **kwargs,
    )


@dataclass
class FirstPages:
    """Holds each pull's first feed page (the one asked for without a cursor) until
    the test lets it go: the server's first, and a second one if another pull asks."""

    server_page: asyncio.Event
    release_server: asyncio.Event
    other_page: asyncio.Event
    release_other: asyncio.Event
    seen: int = 0

    async def __call__(self, target: str, _body: bytes) -> None:
        if URL(target).query.get("after"):
            return
        self.seen += 1
        if self.seen == 1:
            self.server_page.set()
            await self.release_server.wait()
        else:
            self.other_page.set()
            await self.release_other.wait()


HUB_PORT = free_port()
HUB_KEY = b64url_encode(KeyStore.generate(0, seed=seed_for("cn")).active.public)


@pytest.fixture
async def th(node_factory: NodeFactory) -> AsyncIterator[tuple[RunningNode, FaultProxy]]:
    """The member th (the hub, cn, will run at ``HUB_PORT``), behind a proxy."""
    node = await node_factory(
        "th", hub_url=f"http://127.0.0.1:{HUB_PORT}", hub_key=HUB_KEY, hub_id="cn"
    )
    load_records(node, sample_records("th"))
    proxy = await FaultProxy(node.url).start()
    try:
        yield node, proxy
    finally:
        await proxy.close()


def hub_dir(tmp_path: Path, database_url: str, th: RunningNode, th_url: str) -> Path:
    """The hub's data directory; th is its member, at ``th_url`` (the proxy)."""
    port = HUB_PORT
    data_dir = tmp_path / "procs" / "cn"
    config = NodeConfig(
        node_id="cn",
        country="CN",
        port=port,
        database_url=database_url,
        is_hub=True,
        sync_interval_seconds=3600,  # the server pulls once, at start
        sync_jitter_seconds=0,
    )
    init_node(data_dir, config, seed=seed_for("cn"))
    rt = open_runtime(data_dir)
    try:
        rt.directory.upsert(
            Member(
                node_id="th",
                country=th.runtime.config.country,
                name=th.runtime.config.name,
                base_url=th_url,
                keys=keys_from_identity(th.runtime.identity()),
                groups=["mou"],
            ),
            create=True,
        )
    finally:
        rt.close()
    return data_dir


def finished_runs(data_dir: Path, database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            stmt = select(func.count()).where(
                SyncRunRow.peer == "th", SyncRunRow.finished.is_not(None)
            )
            return int(session.scalar(stmt) or 0)
    finally:
        engine.dispose()


async def poll(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not await asyncio.to_thread(check):
        if time.monotonic() > end:
            pytest.fail(f"gave up after {DEADLINE_S:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sync_now_waits_for_the_servers_pull_of_the_same_peer(
    tmp_path: Path,
    database_url: DatabaseUrlFactory,
    th: tuple[RunningNode, FaultProxy],
) -> None:
    node, proxy = th
    url = database_url("cn")
    hub = hub_dir(tmp_path, url, node, proxy.url)
    gate = FirstPages(asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event())
    proxy.after_each_page(gate)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = await start_cattc("serve", hub, stdout=out, stderr=out)
    try:
        await wait_or_exit(gate.server_page.wait(), server, log, "the server's first pull")
        cli = await start_cattc(
            "sync", hub, "now", "--peer", "th", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stderr_lines: list[str] = []
        waiting = asyncio.Event()
        reader = asyncio.create_task(read_lines(cli, stderr_lines, waiting))
        # Either the CLI says it waits for the server's pull, or (the bug) it pulls too;
        # then both go on at once: two first pulls of th used to insert the same rows.
        await first_of(waiting.wait(), gate.other_page.wait(), reader)
        gate.release_server.set()
        gate.release_other.set()
        stdout = await asyncio.wait_for(cli.stdout.read(), DEADLINE_S)  # type: ignore[union-attr]
        await asyncio.wait_for(reader, DEADLINE_S)
        code = await asyncio.wait_for(cli.wait(), DEADLINE_S)
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGINT)
            await asyncio.wait_for(server.wait(), DEADLINE_S)
    errors = "\n".join(stderr_lines)
    assert "Traceback" not in errors, errors
    assert code == 0, errors
    assert stderr_lines == [
        "a pull of th is already running in another process (cattc serve?); waiting for it to end"
    ]
    [run] = json.loads(stdout)
    assert run["peer"] == "th" and run["error"] is None, run
    assert run["applied"] == 0  # the server's pull brought everything already
    served = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in served and "IntegrityError" not in served, served[-3000:]
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            held = session.scalar(select(func.count()).select_from(RemoteListingRow))
    finally:
        engine.dispose()
    assert held == len(allowed_for(node, "cn"))


async def read_lines(
    proc: asyncio.subprocess.Process, lines: list[str], waiting: asyncio.Event
) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        lines.append(line)
        if "already running" in line:
            waiting.set()


async def first_of(*aws: Awaitable[Any]) -> None:
    """Until the first of ``aws`` is done; the others that this started are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(
        tasks, timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED
    )
    for aw, task in zip(aws, tasks, strict=True):
        if task in pending and task is not aw:
            task.cancel()
    if not done:
        pytest.fail(f"nothing happened within {DEADLINE_S:g} s")


async def wait_or_exit(
    aw: Awaitable[Any], proc: asyncio.subprocess.Process, log: Path, what: str
) -> None:
    waiter = asyncio.ensure_future(aw)
    exited = asyncio.ensure_future(proc.wait())
    done, _ = await asyncio.wait(
        [waiter, exited], timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED
    )
    if waiter not in done:
        waiter.cancel()
        text = log.read_text(encoding="utf-8", errors="replace")
        pytest.fail(f"no {what} within {DEADLINE_S:g} s (exit {proc.returncode}):\n{text[-3000:]}")
    exited.cancel()
