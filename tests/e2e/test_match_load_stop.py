"""A hub answers while its matching worker loads the matcher from the database (no
snapshot yet), and SIGINT in the middle of that load stops the hub and its worker within
10 s; started again, the worker loads and writes its snapshot after its first pass."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from bench.loop_lag import _held_summaries
from bench.sync_pull import HUB_SEED
from node.config import NodeConfig
from node.hub import match_snapshot
from node.runtime import open_runtime
from node.services.setup import init_node
from node.storage.models import RemoteListingRow
from tests.e2e.test_match_stop import STOP_S, descendants, stop_within
from tests.e2e.test_processes import Proc, free_port, poll, serve

pytestmark = pytest.mark.slow
N_LISTINGS = 3000
PROBES = 10


def test_a_hub_answers_and_stops_while_its_matcher_loads(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = NodeConfig(
        node_id="cn",
        country="CN",
        is_hub=True,
        host="127.0.0.1",
        port=port,
        base_url=url,
        sync_interval_seconds=3600,
        sync_jitter_seconds=0,
    )
    result = init_node(tmp_path / "cn", config, seed=HUB_SEED)
    rt = open_runtime(tmp_path / "cn")
    try:  # summaries held already, as after a pull: the worker's start loads them all
        rows = _held_summaries(rt, N_LISTINGS)
        with Session(rt.engine) as session, session.begin():
            session.execute(insert(RemoteListingRow), rows)
    finally:
        rt.close()
    hub = Proc("cn", tmp_path / "cn", url, result.admin_token, tmp_path / "cn.log")
    snapshot = match_snapshot.path_in(hub.data_dir)
    try:
        serve([hub])
        assert hub.popen is not None
        pid = hub.popen.pid
        poll(lambda: len(descendants(pid)) >= 2 or None, 30, "the matching worker")
        slowest = 0.0
        for _ in range(PROBES):  # answered while the worker loads
            start = time.monotonic()
            assert hub.get("/healthz")["status"] == "ok"
            slowest = max(slowest, time.monotonic() - start)
        assert slowest < 1.0, slowest
        assert not snapshot.exists()  # the load (and the first pass after it) not done
        seconds, code = stop_within(hub, signal.SIGINT)
        assert seconds < STOP_S
        assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), code
        log = hub.log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in log, log[-3000:]

        serve([hub])
        poll(lambda: snapshot.exists() or None, 300, "the first pass after a whole load")
        seconds, code = stop_within(hub, signal.SIGTERM)
        assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
    finally:
        if hub.popen is not None and hub.popen.poll() is None:
            hub.popen.kill()
            hub.popen.wait()
