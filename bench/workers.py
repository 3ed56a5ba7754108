"""What a second hub worker adds (issue: the hub at 100x, item 5): public search
requests/s and p50/p99 with 20 concurrent clients against a ``cattc serve`` hub on
PostgreSQL served by one process, and by ``cattc serve --workers 2`` (two processes on
one port, SO_REUSEPORT), over the same database and the same rows.

The hub holds the public views of ``CATTC_BENCH_WORKERS_DOCS`` summaries (default
50,000), written straight into its search tables as bench.search does. Both hubs run at
once from the one data directory on two ports, and the rounds alternate between them
(1, 2, 1, 2, ...), so that a change in the machine's load falls on both; each figure is
the median of the rounds, and the ratio (two workers / one) is taken in the same run.
Two kinds of request: the public page's mix of ten queries (answers cached per process
while no row changed) and 2,000 different ones (a word and a page, none cached: what a
search costs the database and the worker).

The clients run in this process, and PostgreSQL on the same machine: with two cores, two
workers can at most take the cores the clients and the database leave them.
PostgreSQL: ``CATTC_BENCH_POSTGRES_URL`` (default the tests' local server), in a schema
of its own that is dropped after.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import PROJECT_ROOT, BenchResult, median, result_from_runs
from bench.harness import search_clients, serve_env
from bench.search import (
    CLIENTS,
    QUERIES,
    _distinct,
    _docs,
    _fill_pg,
    _pct,
    _postgres_schema,
    _warm,
)
from bench.sync_pull import _free_port, _stop, _wait_http
from node.config import NodeConfig
from node.hub.search import SearchIndex
from node.runtime import open_runtime
from node.services.setup import init_node
from node.web.workers import WORKER_HEADER

N_DOCS = int(os.environ.get("CATTC_BENCH_WORKERS_DOCS", "50000"))
ROUNDS = int(os.environ.get("CATTC_BENCH_WORKERS_ROUNDS", "3"))
MIX_REQUESTS = 2000
WORKERS = (1, 2)
REPORT_NOTE = (
    "One hub served by one process and by two (cattc serve --workers 2, SO_REUSEPORT) "
    "from one PostgreSQL database, 20 clients in the bench process, rounds alternating "
    "between the two. The machine has 2 cores, shared by the clients, PostgreSQL and the "
    "workers: the ratio is what a second worker adds here, not on a server with more cores."
)


def _serve(hub_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """``cattc serve DATA_DIR --port PORT --workers N``; its log in ``DATA_DIR``."""
    env = serve_env()
    args = ["serve", str(hub_dir), "--port", str(port), "--workers", str(workers)]
    with (hub_dir / f"serve-{workers}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )


def _all_workers_answer(url: str, workers: int, deadline_s: float = 120) -> None:
    """Until requests on new connections have reached each of the ``workers``."""
    seen: set[str] = set()
    end = time.monotonic() + deadline_s
    while len(seen) < workers:
        if time.monotonic() > end:
            raise RuntimeError(f"only workers {sorted(seen)} of {workers} answered at {url}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
                seen.add(resp.headers.get(WORKER_HEADER) or "1")
        except OSError:
            time.sleep(0.1)


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds used by ``pid`` and every live process under it (the workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    total = 0.0
    for p in tree:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def _load(
    url: str, queries: list[dict[str, Any]], requests: int
) -> tuple[list[float], float]:
    """``requests`` searches by CLIENTS clients: the sorted times (ms) and the wall
    seconds of them all."""
    return await search_clients(url, CLIENTS, queries, requests)


def _hub(tmp: Path, db_url: str, n_docs: int) -> Path:
    hub_dir = tmp / "cn"
    init_node(
        hub_dir,
        NodeConfig(node_id="cn", country="CN", is_hub=True, database_url=db_url, port=8080),
    )
    rt = open_runtime(hub_dir)
    try:
        SearchIndex().refresh(rt)  # the hub's own listings, once
    finally:
        rt.close()
    _fill_pg(db_url, _docs(n_docs))
    return hub_dir


def run(n_docs: int = N_DOCS, rounds: int = ROUNDS) -> list[BenchResult]:
    with _postgres_schema() as db_url, tempfile.TemporaryDirectory(prefix="cattc-bench-w-") as t:
        if db_url is None:
            raise RuntimeError("bench.workers needs PostgreSQL: set CATTC_BENCH_POSTGRES_URL")
        hub_dir = _hub(Path(t), db_url, n_docs)
        ports = {w: _free_port() for w in WORKERS}
        procs = {w: _serve(hub_dir, ports[w], w) for w in WORKERS}
        kinds = {"mix": (QUERIES, MIX_REQUESTS), "distinct": (_distinct(), len(_distinct()))}
        # kind -> workers -> per round: (requests/s, p50, p99, hub CPU ms a request)
        got: dict[str, dict[int, list[tuple[float, float, float, float]]]] = {
            k: {w: [] for w in WORKERS} for k in kinds
        }
        try:
            for w in WORKERS:
                url = f"http://127.0.0.1:{ports[w]}"
                _wait_http(url + "/healthz", deadline_s=120)
                _all_workers_answer(url, w)
                for _ in range(4 * w):  # each worker's cached answers, as far as it goes
                    asyncio.run(_warm(url + "/api/v1/search"))
            for _ in range(rounds):
                for kind, (queries, requests) in kinds.items():
                    for w in WORKERS:
                        search = f"http://127.0.0.1:{ports[w]}/api/v1/search"
                        cpu = _tree_cpu_s(procs[w].pid)
                        times, wall = asyncio.run(_load(search, queries, requests))
                        cpu_ms = (_tree_cpu_s(procs[w].pid) - cpu) * 1000 / len(times)
                        got[kind][w].append(
                            (len(times) / wall, _pct(times, 0.5), _pct(times, 0.99), cpu_ms)
                        )
        finally:
            for proc in procs.values():
                _stop(proc)
        codes = {w: p.returncode for w, p in procs.items()}
        if any(c not in (0, -signal.SIGINT, 128 + signal.SIGINT) for c in codes.values()):
            raise RuntimeError(f"a hub did not stop cleanly (workers: exit code): {codes}")
    return _results(got, n_docs)


def _results(
    got: dict[str, dict[int, list[tuple[float, float, float, float]]]], n_docs: int
) -> list[BenchResult]:
    out = []
    for kind, by_workers in got.items():
        label = "the page's query mix (cached)" if kind == "mix" else "distinct queries"
        one = [r[0] for r in by_workers[1]]
        for w, rows in by_workers.items():
            name = f"{label}, {CLIENTS} clients, {w} worker{'s' if w > 1 else ''}"
            note = (
                f"PostgreSQL, {n_docs:,} listings, {len(rows)} rounds, the hub's CPU "
                f"{median([r[3] for r in rows]):.1f} ms a request"
            )
            if w > 1:  # each round's two measurements were taken one after the other
                paired = ", ".join(f"{r[0] / b:.2f}" for r, b in zip(rows, one, strict=True))
                note += f"; ratio to one worker, the medians' (each round's: {paired})"
            out.append(
                result_from_runs(
                    f"{name}: requests/s",
                    [r[0] for r in rows],
                    "requests/s",
                    baseline_runs=one if w > 1 else None,
                    notes=note,
                )
            )
            for i, p in ((1, "p50"), (2, "p99")):
                out.append(result_from_runs(f"{name}: {p}", [r[i] for r in rows], "ms"))
    return out


if __name__ == "__main__":
    for r in run(int(os.environ.get("CATTC_BENCH_WORKERS_DOCS", "20000")), 2):
        print(json.dumps(r.__dict__, default=str))
