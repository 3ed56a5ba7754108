"""The operator's commands beside a running ``cattc serve`` on the same data directory.

1. ``cattc sync HUB now`` while the server pulls the same peer. The hub is a real
   ``cattc serve`` process; the member th is a real node in this process, reached through
   a proxy that holds each pull's first feed page, so that the server's pull is certainly
   in flight when ``cattc sync`` (a real process too) starts. The two must never pull one
   peer at once: both applied the same page, and the second tripped over the rows of the
   first (an IntegrityError traceback on SQLite; on PostgreSQL the CLI said the peer was
   not a peer). Now the CLI waits for the server's pull, then pulls.
2. The other writing commands (import, withdraw, policy apply, keys rotate, ...) run
   while the server itself writes (listings created through its admin API): every
   command and every request succeeds, none meets a locked database.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from yarl import URL

from node.cli import sync_cmds
from node.cli.main import cli
from node.config import NodeConfig
from node.runtime import open_runtime
from node.services.directory import Member, keys_from_identity
from node.services.peer_lock import peer_lock
from node.services.setup import init_node
from node.storage.db import begin_write, make_engine
from node.storage.models import RemoteListingRow
from protocol.b64 import b64url_encode
from protocol.keys import KeyStore
from tests.e2e.test_processes import free_port
from tests.federation.faultproxy import FaultProxy
from tests.federation.network import NodeFactory, allowed_for, load_records, start_network
from tests.node.sample import sample_records
from tests.nodes import RunningNode, seed_for
from tests.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow
DatabaseUrlFactory = Callable[[str], str]
DEADLINE_S = 60.0  # a cap for a loaded machine; each test takes a few seconds
HUB_KEY = b64url_encode(KeyStore.generate(0, seed=seed_for("cn")).active.public)


async def start_cattc(*args: str | Path, **kwargs: Any) -> asyncio.subprocess.Process:
    """``cattc ARGS`` as a process, with none of this environment's CATTC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATTC_")}
    env["CATTC_LOG_LEVEL"] = "WARNING"
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli.main",
        *(str(a) for a in args),
        cwd=PROJECT_ROOT,
        env=env,
        **kwargs,
    )


async def stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), DEADLINE_S)


async def within_deadline(
    aw: Awaitable[Any], server: asyncio.subprocess.Process, log: Path
) -> None:
    """Until ``aw`` is done; fails if the server exits or the deadline passes first."""
    waiter = asyncio.ensure_future(aw)
    exited = asyncio.ensure_future(server.wait())
    done, _ = await asyncio.wait(
        [waiter, exited], timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED
    )
    exited.cancel()
    if waiter not in done:
        waiter.cancel()
        text = log.read_text(encoding="utf-8", errors="replace")
        pytest.fail(f"gave up after {DEADLINE_S:g} s (server exit {server.returncode}):\n{text}")
    waiter.result()


def assert_clean_log(log: Path) -> None:
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text and "Error" not in text, text[-3000:]


# -- 1. sync now beside the server's pull of the same peer ------------------------------------


@dataclass
class FirstPages:
    """Holds each pull's first feed page (the one asked for without a cursor) until the
    test lets it go: the server's, then a second pull's if one comes while it is held."""

    server_page: asyncio.Event = field(default_factory=asyncio.Event)
    other_page: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    seen: int = 0

    async def __call__(self, target: str, _body: bytes) -> None:
        if URL(target).query.get("after"):
            return
        self.seen += 1
        (self.server_page if self.seen == 1 else self.other_page).set()
        await self.release.wait()


@pytest.fixture
def hub_port() -> int:
    return free_port()


@pytest.fixture
async def th(
    node_factory: NodeFactory, hub_port: int
) -> AsyncIterator[tuple[RunningNode, FaultProxy]]:
    """The member th (its hub, cn, is to run on ``hub_port``), behind a proxy."""
    node = await node_factory(
        "th", hub_url=f"http://127.0.0.1:{hub_port}", hub_key=HUB_KEY, hub_id="cn"
    )
    load_records(node, sample_records("th"))
    proxy = await FaultProxy(node.url).start()
    try:
        yield node, proxy
    finally:
        await proxy.close()


def hub_dir(root: Path, database_url: str, port: int, th: RunningNode, th_url: str) -> Path:
    """The hub's data directory; th is its member, at ``th_url`` (the proxy)."""
    data_dir = root / "cn"
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


async def read_stderr(
    proc: asyncio.subprocess.Process, lines: list[str], waiting: asyncio.Event
) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        lines.append(raw.decode(errors="replace").rstrip("\n"))
        if "already running" in lines[-1]:
            waiting.set()


async def test_sync_now_waits_for_the_servers_pull_of_the_same_peer(
    tmp_path: Path,
    database_url: DatabaseUrlFactory,
    hub_port: int,
    th: tuple[RunningNode, FaultProxy],
) -> None:
    node, proxy = th
    url = database_url("cn")
    hub = hub_dir(tmp_path / "procs", url, hub_port, node, proxy.url)
    gate = FirstPages()
    proxy.after_each_page(gate)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = await start_cattc("serve", hub, stdout=out, stderr=out)
    try:
        await within_deadline(gate.server_page.wait(), server, log)
        cli_proc = await start_cattc(
            "sync", hub, "now", "--peer", "th", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stderr: list[str] = []
        waiting = asyncio.Event()
        reader = asyncio.ensure_future(read_stderr(cli_proc, stderr, waiting))
        # The CLI says it waits for the server's pull, or (the bug) it pulls too, or ends.
        first = [asyncio.ensure_future(e.wait()) for e in (waiting, gate.other_page)]
        await within_deadline(
            asyncio.wait([*first, reader], return_when="FIRST_COMPLETED"), server, log
        )
        for task in first:
            task.cancel()
        gate.release.set()  # both at once, if both hold a page: they used to collide
        assert cli_proc.stdout is not None
        stdout = await asyncio.wait_for(cli_proc.stdout.read(), DEADLINE_S)
        await asyncio.wait_for(reader, DEADLINE_S)
        code = await asyncio.wait_for(cli_proc.wait(), DEADLINE_S)
    finally:
        await stop(server)
    errors = "\n".join(stderr)
    assert "Traceback" not in errors, errors
    assert code == 0, errors
    assert stderr == [
        "a pull of th is already running in another process (cattc serve?); waiting for it to end"
    ]
    [run] = json.loads(stdout)
    assert run["peer"] == "th" and run["error"] is None, run
    assert run["applied"] == 0  # the server's pull, which it waited for, brought everything
    assert_clean_log(log)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            held = session.scalar(select(func.count()).select_from(RemoteListingRow))
    finally:
        engine.dispose()
    assert held == len(allowed_for(node, "cn"))


# -- 2. the writing commands beside a server that writes ---------------------------------------


def new_listing(n: int) -> dict[str, Any]:
    record = copy.deepcopy(next(r for r in sample_records("th") if r["visibility"] == "public"))
    for key in ("id", "version", "created", "updated"):
        record.pop(key)
    record["title"] = {"en": f"Solar dryer for cassava chips, batch {n}"}
    return record


async def create_listings(url: str, token: str, done: asyncio.Event) -> list[int]:
    """Create listings through the server's admin API until ``done`` (at least ten)."""
    statuses: list[int] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        while not done.is_set() or len(statuses) < 10:
            body = new_listing(len(statuses))
            async with session.post(f"{url}/admin/v1/listings", json=body, headers=headers) as r:
                statuses.append(r.status)
    return statuses


async def healthy(url: str, server: asyncio.subprocess.Process, log: Path) -> None:
    async def check() -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    await within_deadline(check(), server, log)


def run_commands(
    data_dir: Path, import_file: Path, policy_file: Path
) -> list[tuple[str, int, str]]:
    """The writing commands, and a few reading ones, one after another (in a thread)."""
    commands = [
        ["import", data_dir, import_file],
        ["listings", data_dir, "list", "--json"],
        ["policy", data_dir, "apply", policy_file, "--author", "test"],
        ["status", data_dir],
        ["sync", data_dir, "status"],
        ["verify", data_dir],
        ["matches", data_dir],
        ["eoi", data_dir, "list"],
        ["keys", data_dir, "rotate"],
    ]
    results = []
    for args in commands:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        results.append((" ".join(map(str, args[:1] + args[2:3])), result.exit_code, result.stderr))
        if args[0] == "listings":
            first = json.loads(result.stdout)[0]["id"]
            result = CliRunner().invoke(
                cli, ["listings", str(data_dir), "withdraw", first], catch_exceptions=False
            )
            results.append(("listings withdraw", result.exit_code, result.stderr))
    return results


async def test_writing_commands_beside_a_server_that_writes(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> None:
    port = free_port()
    data_dir = tmp_path / "th"
    config = NodeConfig(node_id="th", country="TH", port=port, database_url=database_url("th"))
    token = "token-th"
    init_node(data_dir, config, seed=seed_for("th"), admin_token=token)
    import_file = tmp_path / "listings.jsonl"
    import_file.write_text(
        "".join(json.dumps(r) + "\n" for r in sample_records("th")), encoding="utf-8"
    )
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text((data_dir / "policy.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = await start_cattc("serve", data_dir, stdout=out, stderr=out)
    try:
        await healthy(url, server, log)
        done = asyncio.Event()
        writer = asyncio.ensure_future(create_listings(url, token, done))
        try:
            results = await asyncio.to_thread(run_commands, data_dir, import_file, policy_file)
        finally:
            done.set()
        statuses = await asyncio.wait_for(writer, DEADLINE_S)
    finally:
        await stop(server)
    assert [r for r in results if r[1] != 0 or r[2]] == [], results
    assert set(statuses) == {201}, statuses
    assert_clean_log(log)


def test_a_write_transaction_on_sqlite_holds_the_write_lock_from_its_start(
    tmp_path: Path,
) -> None:
    """Why import and the server's own writes no longer collide: what a write transaction
    reads before it writes cannot change under it, since another process (here a plain
    sqlite3 connection) cannot begin writing meanwhile; a read-only session holds no lock."""
    path = tmp_path / "node.db"
    engine = make_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id TEXT PRIMARY KEY)")
        with Session(engine) as session, session.begin():
            session.execute(text("SELECT count(*) FROM t"))  # reads first, writes later
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)  # reads go on
        with engine.connect() as conn, conn.begin():
            begin_write(conn)  # Core code (the import) asks for it
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with Session(engine) as session:
            session.execute(text("SELECT count(*) FROM t"))
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


async def test_sync_now_reports_a_pull_that_stays_busy(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the pull of th for longer than ``sync now`` waits: a row
    that says so, exit 1, and the other peers are pulled as usual."""
    net = await start_network(node_factory, ["th", "vn"], load_sample=False)
    monkeypatch.setattr(sync_cmds, "LOCK_WAIT_S", 0.2)
    hub = net.hub.runtime
    worker = open_runtime(net.hub.data_dir, config=hub.config)  # another process's lock
    try:
        async with peer_lock(worker, "th") as held:
            assert held
            result = await asyncio.to_thread(
                CliRunner().invoke, cli, ["sync", str(net.hub.data_dir), "now", "--json"]
            )
    finally:
        worker.close()
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "a pull of th is already running in another process (cattc serve?); waiting for it to end\n"
    )
    runs = {r["peer"]: r for r in json.loads(result.stdout)}
    assert runs["th"]["error"] == (
        "a pull of th in another process did not end within 0.2 s; its result shows in "
        "'cattc sync DATA_DIR runs --peer th'"
    )
    assert runs["vn"]["error"] is None
