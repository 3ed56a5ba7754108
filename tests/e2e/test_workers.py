"""``cattc serve --workers N``: several processes serve one hub on one address.

The end-to-end test (PostgreSQL only: a SQLite node is served by one process) starts a
real ``cattc serve --workers 2`` hub on a schema of its own and a ``cattc serve`` member
that it pulls every second from both workers. Both workers answer on the one port
(``X-Cattc-Worker``); the member's summaries arrive exactly once (the pulls, shared by
the per-peer advisory lock, never overlap and together applied each item once); a worker
killed with SIGKILL is started again, its children gone with it; one worker alone runs
the matcher, and both name it the leader in ``/hub/status``; SIGTERM to the supervisor
stops every process within 10 s.

The rest runs on any engine: what ``--workers`` refuses, and the one error line of a
supervisor whose address, database or workers fail.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from bench.sync_pull import HUB_SEED, Owner, add_owners
from node.cli.main import cli
from node.config import KEY_FILE, NodeConfig
from node.hub.match_worker import PROCESS_NAME
from node.services.setup import init_node
from node.storage.db import make_engine
from node.storage.models import RemoteListingRow, SyncRunRow
from node.web.workers import WORKER_HEADER
from tests.conftest import POSTGRES_URL, DatabaseUrlFactory
from tests.e2e.test_match_stop import alive, descendants
from tests.e2e.test_processes import free_port, poll
from tests.nodes import make_node_dir
from tests.paths import PROJECT_ROOT

N_LISTINGS = 120
STOP_S = 10.0
# Deadlines of the polls are generous: starting a worker took 30 s on a loaded 2-core machine.
MEMBER = "wk"  # a member name of its own: pull locks are database-wide
POSTGRES_ONLY = pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL only: set CATTC_TEST_POSTGRES_URL"
)


@dataclass
class Hub:
    data_dir: Path
    url: str
    log: Path
    engine: Engine
    token: str = ""
    popen: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CATTC_")}
        env["CATTC_LOG_LEVEL"] = "INFO"  # the workers' start and matcher lines
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "node.cli.main", "serve", str(self.data_dir), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=PROJECT_ROOT,
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid of each worker started, the latest start of each."""
        found = re.findall(r"worker (\d+) started \(pid (\d+)\)", self.text())
        return {int(index): int(pid) for index, pid in found}

    def worker(self) -> str:
        """The worker that answers a request on a new connection."""
        with urllib.request.urlopen(self.url + "/healthz", timeout=5) as resp:
            return str(resp.headers[WORKER_HEADER])

    def leaders(self) -> dict[str, dict[str, Any]] | None:
        """What each worker's /hub/status says of the leader (new connections until both
        answered), or None if one did not within 200 requests."""
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(200):
            req = urllib.request.Request(self.url + "/hub/status")
            req.add_header("Authorization", f"Bearer {self.token}")
            with urllib.request.urlopen(req, timeout=10) as resp:
                seen[resp.headers[WORKER_HEADER]] = json.loads(resp.read())["leader"]
            if len(seen) == 2:
                return seen
        return None


def matchers(pid: int) -> set[int]:
    """The matching workers under ``pid`` (by the name the worker gives itself)."""
    out = set()
    for child in descendants(pid):
        try:
            name = Path(f"/proc/{child}/comm").read_text().strip()
        except OSError:
            continue
        if name == PROCESS_NAME:
            out.add(child)
    return out


def both_answer(hub: Hub, tries: int = 200) -> bool:
    """Whether requests on new connections reach both workers (within ``tries``)."""
    seen: set[str] = set()
    for _ in range(tries):
        seen.add(hub.worker())
        if seen == {"1", "2"}:
            return True
    return False


def held_once(engine: Engine) -> tuple[int, int] | None:
    """(summaries held from the member, items the finished pulls applied in all), once
    all are in."""
    with engine.connect() as conn:
        held = conn.scalar(
            select(func.count())
            .select_from(RemoteListingRow)
            .where(RemoteListingRow.origin == MEMBER)
        )
        applied = conn.scalar(
            select(func.coalesce(func.sum(SyncRunRow.applied), 0)).where(
                SyncRunRow.peer == MEMBER, SyncRunRow.finished.is_not(None)
            )
        )
    # The run that applied them is counted once it has finished.
    if held != N_LISTINGS or applied is None or applied < held:
        return None
    return held, int(applied)


def pull_runs(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(SyncRunRow.started, SyncRunRow.finished)
            .where(SyncRunRow.peer == MEMBER, SyncRunRow.finished.is_not(None))
            .order_by(SyncRunRow.started)
        )
        return [(int(a), int(b or 0)) for a, b in rows]


@pytest.fixture
def pg_hub(tmp_path: Path, database_url: DatabaseUrlFactory) -> Iterator[tuple[Hub, Owner]]:
    owner = Owner(tmp_path, MEMBER, N_LISTINGS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = database_url("cn")
    result = init_node(
        tmp_path / "cn",
        NodeConfig(
            node_id="cn",
            country="CN",
            is_hub=True,
            host="127.0.0.1",
            port=port,
            base_url=url,
            database_url=db,
            sync_interval_seconds=1,  # both workers try every second: the lock decides
            sync_jitter_seconds=0,
        ),
        seed=HUB_SEED,
    )
    add_owners(tmp_path / "cn", [owner])
    engine = make_engine(db)
    hub = Hub(tmp_path / "cn", url, tmp_path / "cn.log", engine, result.admin_token)
    try:
        yield hub, owner
    finally:
        if hub.popen is not None and hub.popen.poll() is None:
            for pid in descendants(hub.popen.pid):
                os.kill(pid, signal.SIGKILL)
            hub.popen.kill()
            hub.popen.wait()
        engine.dispose()
        owner.stop()
        if hub.log.exists():  # shown with a failure (pytest's captured output)
            print(hub.text()[-6000:])


@pytest.mark.slow
@POSTGRES_ONLY
@pytest.mark.parametrize("db_engine_name", ["postgresql"])
def test_two_workers_share_one_port_and_the_pulls(pg_hub: tuple[Hub, Owner]) -> None:
    hub, owner = pg_hub
    hub.start("--workers", "2")
    owner.start()
    proc = hub.popen
    assert proc is not None
    poll(lambda: "with 2 workers" in hub.text() or proc.poll() is not None, 120, "the workers")
    assert proc.poll() is None, hub.text()[-3000:]
    poll(lambda: both_answer(hub), 60, "both workers to answer on the one port")

    # The member's summaries arrive exactly once: the pulls never overlap, and all of
    # them together applied each item once.
    held, applied = poll(lambda: held_once(hub.engine), 90, "the member's summaries")
    assert applied == held == N_LISTINGS
    runs = pull_runs(hub.engine)
    assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:], strict=False)), runs

    # A worker killed (its pulls go on in the other) is started again.
    pids = hub.worker_pids()
    assert set(pids) == {1, 2}, pids
    orphans = descendants(pids[2])  # its matcher, its verify pool
    os.kill(pids[2], signal.SIGKILL)

    poll(lambda: hub.worker_pids()[2] != pids[2], 60, "the killed worker's restart")
    poll(lambda: both_answer(hub), 120, "the restarted worker to answer")
    poll(lambda: not any(alive(p) for p in orphans), 10, "the killed worker's children to go")

    # One worker runs the matcher (the leader); the other has none.
    pids = hub.worker_pids()
    leader = poll(
        lambda: next((i for i, pid in pids.items() if matchers(pid)), None), 90, "the matcher"
    )
    assert not matchers(pids[3 - leader]), hub.text()[-3000:]
    # Both workers name it as the leader in /hub/status; only it says it is.
    said = poll(hub.leaders, 60, "both workers' /hub/status")
    assert {w: s["pid"] for w, s in said.items()} == {"1": pids[leader], "2": pids[leader]}
    assert {w: s["this_process"] for w, s in said.items()} == {
        str(leader): True,
        str(3 - leader): False,
    }, said

    # SIGTERM: the supervisor and everything under it gone within 10 s.
    everything = descendants(proc.pid)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the supervisor did not stop within {STOP_S:g} s:\n{hub.text()[-3000:]}")
    left = max(0.1, start + STOP_S - time.monotonic())
    try:
        poll(lambda: not any(alive(p) for p in everything), left, "the workers to stop")
    except pytest.fail.Exception:
        still = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in everything if alive(p)}
        pytest.fail(f"still running {time.monotonic() - start:.1f} s after SIGTERM: {still}")
    assert code == 0, code
    log = hub.text()
    assert "Traceback" not in log, log[log.find("Traceback") - 1000 :][:4000]
    assert held_once(hub.engine) == (N_LISTINGS, N_LISTINGS)


# -- what --workers refuses, and failures in one line -------------------------------------


def invoke(args: list[str]) -> Result:
    runner = CliRunner(env={"CATTC_DEBUG": ""})
    return runner.invoke(cli, ["serve", *args], prog_name="cattc", catch_exceptions=False)


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code not in (0, None), (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "cn", f"sqlite:///{tmp_path / 'cn.db'}", is_hub=True)
    line = one_error_line(invoke([str(data_dir), "--workers", "2", "--port", "0"]))
    assert line == (
        "error: --workers 2 needs PostgreSQL: a SQLite database is served by one process; "
        "set database_url in node.toml, or serve with --workers 1"
    )


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_workers_out_of_range_is_a_usage_error(tmp_path: Path, count: str) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "cn", f"sqlite:///{tmp_path / 'cn.db'}", is_hub=True)
    result = invoke([str(data_dir), "--workers", count])
    line = one_error_line(result)
    assert result.exit_code == 2
    assert "--workers" in line and "see 'cattc serve --help'" in line, line


@POSTGRES_ONLY
@pytest.mark.parametrize("db_engine_name", ["postgresql"])
def test_workers_on_a_busy_port_or_a_missing_database_is_one_line(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "cn", database_url("cn"), is_hub=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(invoke([str(data_dir), "--workers", "2", "--port", str(port)]))
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), line
    # The data directory's lock went with the command: the next one gets further.
    base, _, _ = POSTGRES_URL.rpartition("/")
    env_url = f"{base}/cattc_not_created_yet"
    config = (data_dir / "node.toml").read_text(encoding="utf-8")
    (data_dir / "node.toml").write_text(
        re.sub(r'database_url = ".*"', f'database_url = "{env_url}"', config), encoding="utf-8"
    )
    line = one_error_line(invoke([str(data_dir), "--workers", "2", "--port", "0"]))
    assert 'database "cattc_not_created_yet" does not exist' in line, line


@pytest.mark.slow
@POSTGRES_ONLY
@pytest.mark.parametrize("db_engine_name", ["postgresql"])
def test_a_worker_that_cannot_start_stops_the_supervisor(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> None:
    """The database is fine (the supervisor migrates it) but the workers cannot load the
    node's key: the supervisor stops, its one error line names the worker's reason."""
    db = database_url("cn")
    data_dir, _, _ = make_node_dir(tmp_path, "cn", db, is_hub=True)
    (data_dir / KEY_FILE).unlink()
    hub = Hub(data_dir, "", tmp_path / "cn.log", make_engine(db))
    try:
        hub.start("--workers", "2", "--port", "0")
        assert hub.popen is not None
        code = hub.popen.wait(timeout=120)
    finally:
        hub.engine.dispose()
    log = hub.text()
    assert code == 1, log
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, log
    assert re.fullmatch(
        r"error: node cn stopped: worker [12] stopped before serving: .+", errors[0]
    )
    assert KEY_FILE in errors[0], errors[0]
    assert "Traceback" not in log, log
