"""End to end with real processes: a hub and two national nodes, each a ``cattc serve``
OS process (``python -m node.cli.main serve DATA_DIR``, as ``make demo`` starts them) with
its own SQLite database, on free loopback ports.

Nothing here drives a sync round: the schedulers pull by themselves, notify brings an
owner's change to the hub early, and SIGINT stops every process cleanly.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner

from node.cli.main import cli
from node.config import NodeConfig
from node.demo import PUBLIC_RULES
from node.hub.match_worker import PROCESS_NAME
from node.runtime import open_runtime
from node.services.directory import Member, keys_from_identity
from node.services.setup import init_node
from tests.node.sample import sample_records
from tests.nodes import COUNTRY
from tests.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow
NODE_INTERVAL_S = 1.0
T = TypeVar("T")


_GIVEN: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, and never one this process handed out
    before: the kernel may give the port of a socket just closed again, and two nodes
    of one federation must not be told the same port."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


@dataclass
class Proc:
    node_id: str
    data_dir: Path
    url: str
    token: str
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def get(self, path: str, *, token: str | None = None) -> Any:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())


def poll(check: Callable[[], T | None], deadline_s: float, what: str) -> T:
    """``check()`` until it returns something, at most ``deadline_s`` seconds."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            value = check()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"gave up after {deadline_s:g} s waiting for {what}")
        time.sleep(0.02)


def make_federation(root: Path, *, hub_interval_s: float) -> dict[str, Proc]:
    """Data directories for the hub and th, vn: sample listings, the hub's directory."""
    procs: dict[str, Proc] = {}
    hub_key = ""
    for node_id in ("cn", "th", "vn"):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        is_hub = node_id == "cn"
        result = init_node(
            root / node_id,
            NodeConfig(
                node_id=node_id,
                country=COUNTRY[node_id],
                name=f"Test center {node_id}",
                host="127.0.0.1",
                port=port,
                base_url=url,
                is_hub=is_hub,
                hub_url="" if is_hub else procs["cn"].url,
                hub_key=hub_key,
                sync_interval_seconds=hub_interval_s if is_hub else NODE_INTERVAL_S,
                sync_jitter_seconds=0,
            ),
        )
        if is_hub:
            hub_key = result.keys.verify_keys()[result.keys.active.name].b64
        procs[node_id] = Proc(
            node_id, root / node_id, url, result.admin_token, root / f"{node_id}.log"
        )
    hub_rt = open_runtime(procs["cn"].data_dir)
    try:
        for node_id in ("th", "vn"):
            rt = open_runtime(procs[node_id].data_dir)
            try:
                # Public search serves only what an owner's rule for "*" gives.
                rt.policy.apply(rt.policy.active().text + PUBLIC_RULES, "test")
                records = sample_records(node_id)
                report = rt.listings.import_records(list(enumerate(records, start=1)))
                assert not report.problems, report.problems
                hub_rt.directory.upsert(
                    Member(
                        node_id=node_id,
                        country=COUNTRY[node_id],
                        name=rt.config.name,
                        base_url=procs[node_id].url,
                        keys=keys_from_identity(rt.identity()),
                        groups=["mou"],
                    ),
                    create=True,
                )
            finally:
                rt.close()
    finally:
        hub_rt.close()
    return procs


def serve(procs: list[Proc], **env_overrides: str) -> None:
    """Start ``cattc serve`` for each and wait until all answer /healthz."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATTC_")}
    env.update(CATTC_LOG_LEVEL="WARNING", **env_overrides)
    for p in procs:
        with p.log.open("ab") as log:
            p.popen = subprocess.Popen(
                [sys.executable, "-m", "node.cli.main", "serve", str(p.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=PROJECT_ROOT,
            )
    for p in procs:
        poll(functools.partial(serving, p), 60, f"{p.node_id} to serve")


def serving(p: Proc) -> bool:
    assert p.popen is not None
    code = p.popen.poll()
    if code is not None:
        log = p.log.read_text(encoding="utf-8", errors="replace")
        pytest.fail(f"{p.node_id} exited with {code} before serving:\n{log[-3000:]}")
    return bool(p.get("/healthz")["status"] == "ok")


def stop(p: Proc, deadline_s: float = 15) -> int:
    """SIGINT, then the exit code (killing the process if it does not stop in time)."""
    assert p.popen is not None
    if p.popen.poll() is None:
        p.popen.send_signal(signal.SIGINT)
    try:
        return p.popen.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        p.popen.kill()
        p.popen.wait()
        pytest.fail(f"{p.node_id} did not stop within {deadline_s:g} s of SIGINT")


def assert_stopped_cleanly(p: Proc) -> None:
    code = stop(p)
    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), (p.node_id, code)
    log = p.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    """One federation for the module (starting processes is the slow part): every node
    syncs each second. The tests run in file order; the last one stops everything."""
    procs = make_federation(tmp_path_factory.mktemp("e2e"), hub_interval_s=NODE_INTERVAL_S)
    try:
        serve(list(procs.values()))  # a first pull that finds a peer not up is retried
        yield procs
    finally:
        for p in procs.values():
            if p.popen is not None and p.popen.poll() is None:
                stop(p)


def peers_ok(node: Proc, other: str) -> dict[str, Any] | None:
    """The node's own view (``cattc sync DATA_DIR status``) once every peer is ok and it
    holds the other member's listings."""
    result = CliRunner().invoke(cli, ["sync", str(node.data_dir), "status", "--json"])
    assert result.exit_code == 0, result.output
    peers = {p["peer"]: p for p in json.loads(result.stdout)}
    if set(peers) != {"cn", other} or any(p["state"] != "ok" for p in peers.values()):
        return None
    return peers if peers[other]["held"] > 0 else None


def members_ok(hub: Proc, *, runs: int = 1, since: int = 0) -> dict[str, Any] | None:
    """The hub's members once all are ok, each with ``runs`` runs started after ``since``."""
    status = hub.get("/hub/status", token=hub.token)
    members = {m["node_id"]: m for m in status["members"]}
    if set(members) != {"th", "vn"}:
        return None
    for m in members.values():
        recent = [r for r in m["recent_runs"] if r["started"] >= since]
        if m["state"] != "ok" or len(recent) < runs:
            return None
    return members


def test_schedulers_pull_by_themselves(federation: dict[str, Proc]) -> None:
    hub = federation["cn"]
    # Every member ok, each pulled at least twice: the schedule keeps running.
    members = poll(lambda: members_ok(hub, runs=2), 20, "the hub to pull th and vn twice")
    assert all(m["items_held"] > 0 and m["lag"] == 0 for m in members.values()), members
    assert all(m["recent_runs"][0]["error"] is None for m in members.values())
    # The national nodes' schedulers pull the hub and each other.
    for node_id, other in (("th", "vn"), ("vn", "th")):
        poll(functools.partial(peers_ok, federation[node_id], other), 20, f"{node_id} pulls")


def test_notify_brings_a_new_listing_to_the_hub_early(
    federation: dict[str, Proc], capsys: pytest.CaptureFixture[str]
) -> None:
    """The hub is restarted to pull only once a minute (``CATTC_SYNC_INTERVAL_SECONDS``):
    a listing that reaches it within seconds was fetched because th's notifier asked."""
    hub, th = federation["cn"], federation["th"]
    assert_stopped_cleanly(hub)
    restarted = int(time.time() * 1000)
    serve([hub], CATTC_SYNC_INTERVAL_SECONDS="60")
    # Its first pulls run at start; after them the next is a minute away.
    poll(lambda: members_ok(hub, since=restarted), 20, "the restarted hub's first pulls")

    base = next(r for r in sample_records("th") if r["visibility"] == "public")
    record = copy.deepcopy(base)
    for key in ("id", "version", "created", "updated"):
        record.pop(key)
    record["title"] = {"en": "Quillwort zymography kit for early processing checks"}
    start = time.monotonic()
    status, created = th.post("/admin/v1/listings", record)
    assert status == 201

    def found() -> dict[str, Any] | None:
        body: dict[str, Any] = hub.get("/api/v1/search?q=quillwort+zymography")
        return body if body["total"] == 1 else None

    body = poll(found, 10, "the new listing to reach the hub")
    elapsed = time.monotonic() - start
    assert body["items"][0]["owner"] == "th"
    assert body["items"][0]["listing"]["id"] == created["id"]
    with capsys.disabled():
        print(f"\nnotify: th's new listing was searchable at the hub after {elapsed:.2f} s")
    assert elapsed < 5


def numeric_libraries(pid: int) -> set[str]:
    """The numpy and scipy shared objects mapped into process ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")
    return {
        Path(line.split()[-1]).name
        for line in maps.splitlines()
        if "/numpy/" in line or "/scipy/" in line
    }


def process_name(pid: int) -> str:
    """What ``ps -o comm`` shows for ``pid``."""
    return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()


def command_line(pid: int) -> bytes:
    """``pid``'s command line (empty once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def test_the_hubs_server_leaves_numpy_and_scipy_to_its_matching_worker(
    federation: dict[str, Proc],
) -> None:
    """The server process serves search, pages and the match list without the matcher's
    numeric libraries (about 45 MB resident): the matcher runs in the matching worker,
    and what comes back from it (``Match``) is plain data."""
    hub = federation["cn"]
    assert hub.popen is not None

    def listed() -> dict[str, Any] | None:
        body: dict[str, Any] = hub.get("/admin/v1/matches?limit=5", token=hub.token)
        return body if body["matches"] else None

    body = poll(listed, 60, "the hub's match list")
    assert body["matches"][0]["components"]
    assert "items" in hub.get("/api/v1/search?q=solar")
    assert numeric_libraries(hub.popen.pid) == set()
    numeric = {pid for pid in descendants(hub.popen.pid) if numeric_libraries(pid)}
    # One process holds the matcher: the matching worker, under its own name. No
    # forkserver stays beside it (it held another copy of those modules: 91 MB resident
    # at 200,000 summaries).
    assert [process_name(pid) for pid in numeric] == [PROCESS_NAME]
    assert not any(b"forkserver" in command_line(pid) for pid in descendants(hub.popen.pid))


def test_sigint_stops_every_process_cleanly(federation: dict[str, Proc]) -> None:
    for p in federation.values():
        assert p.popen is not None and p.popen.poll() is None, f"{p.node_id} is not running"
        assert_stopped_cleanly(p)
