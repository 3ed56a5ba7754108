"""Public search at the hub over 200,000 summaries (issue: the hub at 100x): p50 and p99
of ``GET /api/v1/search`` with one client and with 20 concurrent clients, against a
``cattc serve`` hub on SQLite and on PostgreSQL, whose search rows (four members' public
views) are written straight into its tables, as ``search_store`` writes them when
summaries arrive; each idle, then while a writer process replaces pages of rows as a
sync does (500 listings a page, a page every 0.2 s: 2,500 listings/s, about a full
pull's rate).

The queries mix what the public page asks: no text with and without filters, one and two
words, an IPC prefix, a Thai phrase, deep pages. The goal is p99 < 100 ms. Answers are
cached per query while no row changed (node.hub.search): the mix repeats its ten
queries, so besides it "distinct queries" asks 2,000 different ones (a word and a page),
none cached, to show what a search costs itself. The clients run in this process, the
hub and the writer in their own; all share the machine's cores.

PostgreSQL: ``CATTC_BENCH_POSTGRES_URL`` (default the tests' local server), in a schema of
its own that is dropped after; empty to leave PostgreSQL out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from sqlalchemy.orm import Session

from bench.common import BenchResult
from bench.harness import postgres_schema, search_clients
from bench.import_listings import load_templates, make_listing
from bench.sync_pull import _free_port, _serve, _stop, _wait_http
from node.config import DB_FILE, NodeConfig
from node.hub import search_store
from node.hub.search import SearchIndex
from node.hub.search_store import RECOUNT, SearchDoc, _tsvector, public_listing
from node.runtime import open_runtime
from node.services.setup import init_node
from node.storage.db import make_engine

N_DOCS = int(os.environ.get("CATTC_BENCH_SEARCH_DOCS", "200000"))
POSTGRES = os.environ.get("CATTC_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CLIENTS = 20
REQUESTS = 2000
ALONE = 300
GOAL_MS = 100.0
WRITER_PAGE = 500
WRITER_EVERY_S = 0.2
OWNERS = {"th": "TH", "vn": "VN", "my": "MY", "id": "ID"}
THAI = ["พลังงานแสงอาทิตย์", "การเกษตร", "น้ำสะอาด", "เครื่องอบแห้ง"]
QUERIES: list[dict[str, Any]] = [
    {},
    {"category": "tech_offer"},
    {"country": "VN", "trl_min": 5},
    {"q": "solar"},
    {"q": "water treatment"},
    {"q": "sensor", "category": "tech_request"},
    {"ipc": "A01"},
    {"q": "พลังงาน"},
    {"q": "rice", "offset": 200},
    {"offset": 5000, "limit": 100},
]
WORDS = [
    "solar", "water", "sensor", "rice", "drying", "fish", "machine", "waste", "energy",
    "soil", "battery", "coconut", "cassava", "coffee", "pump", "filter", "vaccine",
    "bamboo", "rubber", "palm", "shrimp", "biogas", "drone", "storage", "cooling",
    "treatment", "harvest", "irrigation", "plastic", "recycling", "textile", "herbal",
    "enzyme", "fertilizer", "seed", "wind", "grid", "monitoring", "testing", "packaging",
]  # fmt: skip
REPORT_NOTE = (
    "A hub process holding the public views of 200,000 summaries of four members (SQLite "
    "FTS5, and PostgreSQL tsvector + GIN), clients in the bench process, each sending its "
    "next request when the last is answered (so with 20 a request waits for the others); "
    "'writing': a writer process replaces 2,500 listings' rows a second meanwhile. The "
    "machine's 2 cores are shared with other work, so the figures carry its load."
)


def _distinct() -> list[dict[str, Any]]:
    """2,000 different searches: a word, at one of 50 pages."""
    return [{"q": w, "offset": 20 * page} for page in range(50) for w in WORDS]


def _doc(
    i: int, templates: list[dict[str, Any]], rng: random.Random, version: int = 1
) -> SearchDoc:
    owners = list(OWNERS)
    rec = make_listing(templates[i % len(templates)], i + 1, rng)
    owner = owners[i % len(owners)]
    if i % 10 == 0:
        rec["title"] = {**rec["title"], "th": rng.choice(THAI)}
    fields = {
        k: rec[k] for k in ("title", "summary", "keywords", "ipc", "sector", "trl") if k in rec
    }
    held = {
        "id": f"{owner}-{rec['id']}",
        "category": rec["category"],
        "version": version,
        "updated": 1_790_000_000_000,
        "expires": 1_900_000_000_000,
        "public_view": {"fields": fields, "rights": {}},
    }
    shown = public_listing(held)
    assert shown is not None
    return SearchDoc(owner, shown, OWNERS[owner])


def _templates() -> list[dict[str, Any]]:
    return [t for t in load_templates() if t["category"] in ("tech_offer", "tech_request")]


def _docs(n: int) -> list[SearchDoc]:
    templates = _templates()
    rng = random.Random(11)
    return [_doc(i, templates, rng) for i in range(n)]


def _fill(db: Path, docs: list[SearchDoc]) -> None:
    """The rows ``search_store.put`` writes, in bulk."""
    conn = sqlite3.connect(db)
    with conn:
        for start in range(0, len(docs), 10_000):
            chunk = docs[start : start + 10_000]
            rows: list[tuple[Any, ...]] = []
            codes: list[tuple[int, str]] = []
            shown: list[tuple[int, str]] = []
            words: list[tuple[int, str, str]] = []
            for number, doc in enumerate(chunk, start=start + 1):
                v = doc.values()
                rows.append(
                    (number, v["owner"], v["listing_id"], v["category"], v["country"],
                     v["trl"], v["sectors"], v["expires"])
                )  # fmt: skip
                shown.append((number, doc.shown_json()))
                codes.extend((number, c) for c in doc.codes())
                title, body = doc.words()
                words.append((number, " ".join(title), " ".join(body)))
            conn.executemany("INSERT INTO search_docs VALUES (?,?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO search_shown VALUES (?,?)", shown)
            conn.executemany("INSERT INTO search_codes VALUES (?,?)", codes)
            conn.executemany("INSERT INTO search_fts (rowid, title, body) VALUES (?,?,?)", words)
        conn.execute(RECOUNT)
    conn.close()


def _fill_pg(db_url: str, docs: list[SearchDoc]) -> None:
    """The rows ``search_store.put`` writes, in bulk (COPY; the tsvector as it makes it)."""
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        for table, columns, rows in _pg_rows(docs):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('search_docs', 'id'), max(id)) FROM search_docs"
        )
        cur.execute(RECOUNT)
        cur.execute("ANALYZE")


def _pg_rows(docs: list[SearchDoc]) -> Iterator[tuple[str, str, Iterator[tuple[Any, ...]]]]:
    def values() -> Iterator[tuple[Any, ...]]:
        for number, doc in enumerate(docs, start=1):
            v = doc.values()
            yield (number, v["owner"], v["listing_id"], v["category"], v["country"],
                   v["trl"], v["sectors"], v["expires"])  # fmt: skip

    columns = "id, owner, listing_id, category, country, trl, sectors, expires"
    yield "search_docs", columns, values()
    yield "search_shown", "doc_id, shown", ((i, d.shown_json()) for i, d in enumerate(docs, 1))
    codes = ((i, c) for i, d in enumerate(docs, 1) for c in d.codes())
    yield "search_codes", "doc_id, code", codes
    words = ((i, _tsvector(*d.words())) for i, d in enumerate(docs, 1))
    yield "search_fts", "doc_id, doc", words


def _writer(db_url: str, n_docs: int, stop: EventType, pages: Any) -> None:
    """Replace WRITER_PAGE listings' rows (new versions, new text) every WRITER_EVERY_S
    until ``stop``, in one transaction a page, as a sync's apply does (the pages made
    before, so that the writer's time is the database's)."""
    engine = make_engine(db_url)
    templates = _templates()
    rng = random.Random(7)
    owners = list(OWNERS)
    made = []
    for page in range(20):
        owner = page % len(owners)
        start = rng.randrange(0, max(1, n_docs - WRITER_PAGE * 4))
        chosen = [i for i in range(start, start + WRITER_PAGE * 4) if i % 4 == owner]
        made.append((owners[owner], [_doc(i, templates, rng, 2) for i in chosen if i < n_docs]))
    try:
        next_at = time.monotonic()
        while not stop.is_set():
            owner, docs = made[pages.value % len(made)]
            with Session(engine) as session, session.begin():
                search_store.remove(session, owner, [d.shown["id"] for d in docs])
                search_store.put_many(session, docs)
            pages.value += 1
            next_at = max(next_at + WRITER_EVERY_S, time.monotonic() - 1)
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        engine.dispose()


@contextlib.contextmanager
def _writing(db_url: str, n_docs: int) -> Iterator[Any]:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    pages = ctx.Value("i", 0)
    proc = ctx.Process(target=_writer, args=(db_url, n_docs, stop, pages), daemon=True)
    proc.start()
    started = time.monotonic()
    deadline = started + 60
    while pages.value == 0 and time.monotonic() < deadline:  # until it writes
        time.sleep(0.05)
    counted, started = pages.value, time.monotonic()
    try:
        yield lambda: (pages.value - counted) * WRITER_PAGE / (time.monotonic() - started)
    finally:
        stop.set()
        proc.join(timeout=60)


async def _clients(
    url: str, clients: int, requests: int, queries: list[dict[str, Any]] | None = None
) -> list[float]:
    """Times of ``requests`` searches by ``clients`` clients (sorted, ms)."""
    times, _wall = await search_clients(
        url, clients, QUERIES if queries is None else queries, requests
    )
    return times


async def _warm(url: str) -> None:
    """Each query once (the engine's pages in memory, the cached answers made)."""
    async with aiohttp.ClientSession() as http:
        for params in QUERIES:
            async with http.get(url, params=params) as resp:
                assert resp.status == 200, await resp.text()


def _cpu_s(pid: int) -> float:
    """CPU seconds ``pid`` has used (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def _postgres_schema() -> contextlib.AbstractContextManager[str | None]:
    """A URL to a schema of its own on the bench's PostgreSQL, or None without one."""
    return postgres_schema(POSTGRES, "bench_search")


def _measure(
    engine_name: str, db_url: str | None, tmp: Path, docs: list[SearchDoc]
) -> list[BenchResult]:
    hub_dir = tmp / f"cn-{engine_name}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = NodeConfig(
        node_id="cn", country="CN", port=port, base_url=url, is_hub=True, database_url=db_url or ""
    )
    init_node(hub_dir, config)
    rt = open_runtime(hub_dir)
    try:
        SearchIndex().refresh(rt)  # the hub's own listings, once
        rows_url = rt.config.resolved_database_url(hub_dir)
    finally:
        rt.close()
    took = time.perf_counter()
    if db_url is None:
        _fill(hub_dir / DB_FILE, docs)
    else:
        _fill_pg(db_url, docs)
    fill_s = time.perf_counter() - took
    search = url + "/api/v1/search"
    runs: dict[str, tuple[list[float], float]] = {}  # phase -> (times, hub CPU ms/request)
    proc = _serve(hub_dir)

    def phase(name: str, clients: int, requests: int, queries: Any = None) -> None:
        cpu = _cpu_s(proc.pid)
        times = asyncio.run(_clients(search, clients, requests, queries))
        runs[name] = (times, (_cpu_s(proc.pid) - cpu) * 1000 / len(times))

    try:
        _wait_http(url + "/healthz")
        asyncio.run(_warm(search))
        phase("idle, one client", 1, ALONE)
        phase(f"idle, {CLIENTS} clients", CLIENTS, REQUESTS)
        distinct = _distinct()
        phase("distinct queries, one client", 1, ALONE, distinct)
        phase(
            f"distinct queries, {CLIENTS} clients", CLIENTS, len(distinct) - ALONE, distinct[ALONE:]
        )
        with _writing(rows_url, len(docs)) as rate:
            phase("writing, one client", 1, ALONE)
            phase(f"writing, {CLIENTS} clients", CLIENTS, REQUESTS)
            written = rate()
        rss = _rss_mb(proc.pid)
    finally:
        _stop(proc)
    n = len(docs)
    out = []
    for name, (times, cpu_ms) in runs.items():
        note = f"{engine_name}, {n:,} listings, {len(times)} requests"
        note += f", the hub's CPU {cpu_ms:.1f} ms a request"
        if name.startswith("writing"):
            note += f", the writer at {written:,.0f} listings/s"
        for p, label in ((0.5, "p50"), (0.99, "p99")):
            value = _pct(times, p)
            goal = p == 0.99 and name.endswith(f"{CLIENTS} clients") and "distinct" not in name
            out.append(
                BenchResult(
                    name=f"{engine_name}: {name}: {label}",
                    value=value,
                    unit="ms",
                    notes=note,
                    goal=f"< {GOAL_MS:.0f} ms" if goal else "",
                    goal_max=GOAL_MS if goal else None,
                    runs=(value,),
                )
            )
    out.append(BenchResult(name=f"{engine_name}: hub RSS after the searches", value=rss, unit="MB"))
    out.append(
        BenchResult(
            name=f"{engine_name}: search rows written (bulk, bench only)",
            value=n / fill_s,
            unit="rows/s",
        )
    )
    return out


def run(n_docs: int = N_DOCS) -> list[BenchResult]:
    docs = _docs(n_docs)
    results = []
    with tempfile.TemporaryDirectory(prefix="cattc-bench-search-") as tmp:
        results.extend(_measure("SQLite", None, Path(tmp), docs))
        with _postgres_schema() as db_url:
            if db_url is not None:
                results.extend(_measure("PostgreSQL", db_url, Path(tmp), docs))
    return results


if __name__ == "__main__":
    for r in run(int(os.environ.get("CATTC_BENCH_SEARCH_DOCS", "20000"))):
        print(json.dumps(r.__dict__, default=str))
