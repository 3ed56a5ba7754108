"""A busy hub stops at once and finishes its work later: a ``cattc serve`` hub pulls a
few thousand summaries from a ``cattc serve`` owner and re-matches them in its matching
worker for many seconds; SIGINT in the middle of it ends the hub, worker included, within
10 s. Restarted, the hub finishes only what was left (the stamps written before the stop
stay), and SIGTERM stops it as well.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.sync_pull import HUB_SEED, Owner
from node.config import DB_FILE, NodeConfig
from node.runtime import open_runtime
from node.services.directory import Member, keys_from_identity
from node.services.setup import init_node
from tests.e2e.test_processes import Proc, free_port, poll, serve

pytestmark = pytest.mark.slow
N_LISTINGS = 1200
STOP_S = 10.0
MATCHED = "('tech_offer', 'tech_request', 'expert')"


def counts(hub: Proc) -> tuple[int, int]:
    """(listings the hub holds that are matched, listings whose matching is done)."""
    con = sqlite3.connect(f"file:{hub.data_dir / DB_FILE}?mode=ro", uri=True, timeout=5)
    try:
        held = con.execute(
            f"SELECT count(*) FROM remote_listings WHERE category IN {MATCHED}"
        ).fetchone()[0]
        done = con.execute("SELECT count(*) FROM match_stamps").fetchone()[0]
        return int(held), int(done)
    except sqlite3.OperationalError:  # not migrated yet
        return 0, 0
    finally:
        con.close()


def descendants(pid: int) -> set[int]:
    """Processes under ``pid`` (the matching worker among them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (an exited process waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_within(hub: Proc, sig: signal.Signals) -> tuple[float, int]:
    """Send ``sig``; the seconds until the hub and all its children were gone, and its
    exit code."""
    assert hub.popen is not None
    children = descendants(hub.popen.pid)
    assert children, "the hub has no matching worker"
    start = time.monotonic()
    hub.popen.send_signal(sig)
    try:
        code = hub.popen.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        hub.popen.kill()
        hub.popen.wait()
        pytest.fail(f"the hub did not stop within {STOP_S:g} s of {sig.name}")
    left = start + STOP_S - time.monotonic()
    poll(lambda: not any(alive(p) for p in children), max(left, 0.1), "the hub's children")
    return time.monotonic() - start, code


@pytest.fixture
def busy_hub(tmp_path: Path) -> Iterator[tuple[Proc, Owner]]:
    owner = Owner(tmp_path, "th", N_LISTINGS)
    owner.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    result = init_node(
        tmp_path / "cn",
        NodeConfig(
            node_id="cn",
            country="CN",
            is_hub=True,
            host="127.0.0.1",
            port=port,
            base_url=url,
            sync_interval_seconds=3600,  # one pull, at start
            sync_jitter_seconds=0,
        ),
        seed=HUB_SEED,
    )
    rt = open_runtime(tmp_path / "cn")
    try:
        rt.directory.upsert(
            Member("th", "TH", "th", owner.url, keys_from_identity(owner.identity), ["mou"]),
            create=True,
        )
    finally:
        rt.close()
    hub = Proc("cn", tmp_path / "cn", url, result.admin_token, tmp_path / "cn.log")
    try:
        yield hub, owner
    finally:
        if hub.popen is not None and hub.popen.poll() is None:
            hub.popen.kill()
            hub.popen.wait()
        owner.stop()


def test_stops_mid_rematch_and_resumes(busy_hub: tuple[Proc, Owner]) -> None:
    hub, _ = busy_hub
    serve([hub])
    poll(lambda: counts(hub)[0] >= N_LISTINGS // 2, 120, "the hub to pull the owner")
    # Matching is under way (some listings done) and far from finished.
    poll(lambda: counts(hub)[1] >= 50, 120, "the first listings to be matched")
    held, done = counts(hub)
    assert done < held / 2, (held, done)
    # The server capped malloc's arenas for itself and the processes it started.
    assert hub.popen is not None
    environs = {}
    for pid in descendants(hub.popen.pid):
        with contextlib.suppress(OSError):  # one that ended meanwhile (a verify worker)
            environs[pid] = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert environs and all(b"MALLOC_ARENA_MAX=2" in e for e in environs.values())
    seconds, code = stop_within(hub, signal.SIGINT)
    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), code
    held, stopped_at = counts(hub)
    assert 0 < stopped_at < held, (held, stopped_at)
    log = hub.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]

    serve([hub])
    # The work left is done after the restart.
    poll(lambda: counts(hub)[1] >= held or None, 300, "the rest of the re-match")
    assert counts(hub) == (held, held)
    status = hub.get("/hub/status", token=hub.token)
    lag = status["event_loop_lag"]
    assert lag["samples"] > 0 and lag["max_ms"] >= lag["p99_ms"] >= lag["p50_ms"] >= 0, lag
    seconds, code = stop_within(hub, signal.SIGTERM)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
