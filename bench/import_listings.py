"""How fast a node imports its listings, against the floor set by raw SQLite inserts.

A center's first load is its whole catalogue at once, and DESIGN section 11 asks us to build
for 100 times today's network. This benchmark generates 100,000 valid listings for one node
(th) from the 260 sample records in ../shared/data (owner, id and country rewritten, text
varied), then, in the same run:

(a) times the real path, ``rt.listings.import_records(read_records(path))`` on a fresh
    node (``init_node`` + ``open_runtime``, SQLite in a temporary directory): reading,
    parsing, validating, hashing and storing, as ``cattc import`` does;
(b) times plain ``sqlite3`` ``executemany`` of the very rows (a) stored, into tables of
    the same shape (DDL copied from (a)'s database), WAL, one transaction.

The goal is that (a) reaches at least half the listings per second of (b). To say where the
time goes, the timed runs also add up the garbage collector's pauses, and a third pass
replays (a)'s steps before SQLAlchemy (parse, normalise, validate, dump, serialise and
hash) on a sample, with a clock around each; what is left of (a)'s time is SQLAlchemy and
SQLite.

Run alone with ``python -m bench.import_listings [--n N] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import logging
import pstats
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_REPEATS,
    SHARED_DATA,
    BenchResult,
    Timing,
    measured,
    result_from_runs,
)
from node.config import DB_FILE, NodeConfig
from node.runtime import open_runtime
from node.services.importer import read_records
from node.services.listings import KIND_PREFIX, ImportReport, content_hash, dumps
from node.services.setup import init_node
from protocol.listing import listing_to_wire, normalize_record, parse_listing

logger = logging.getLogger(__name__)

NODE_ID = "th"
COUNTRY = "TH"
N_LISTINGS = 100_000
GOAL_RATIO = 0.5
PHASE_SAMPLE = 20_000  # records replayed per run to break the import time down
SAMPLE_FILE = SHARED_DATA / "listings.jsonl"
TABLES = ("listings", "changes")
REPORT_NOTE = (
    "Rows below the first four break the import's wall time down; their ratio is their "
    f"share of it. Steps are replayed on the first {PHASE_SAMPLE:,} records, timed per "
    "record without the garbage collector's pauses and scaled to the whole file; the "
    "pauses are measured in the timed runs (gc.callbacks); the rest is SQLAlchemy and SQLite."
)

_PLACES = (
    "Chiang Mai",
    "Khon Kaen",
    "Hat Yai",
    "Nakhon Ratchasima",
    "Udon Thani",
    "Surat Thani",
    "Rayong",
    "Phitsanulok",
    "Ubon Ratchathani",
    "Songkhla",
)
_TRIALS = (
    "piloted with {k} smallholder cooperatives",
    "validated on {k} hectares over two seasons",
    "installed at {k} sites since the last review",
    "assessed by {k} partner laboratories",
    "adapted for {k} provincial extension offices",
)
_EXTRA_KEYWORDS = (
    "smallholders",
    "scale-up",
    "pilot line",
    "energy saving",
    "traceability",
    "export markets",
    "low cost",
    "field trial",
)


# -- data -------------------------------------------------------------------------------
def load_templates(path: Path = SAMPLE_FILE) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"sample listings missing: {path} (expected beside the project)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def make_listing(template: dict[str, Any], number: int, rng: random.Random) -> dict[str, Any]:
    """A valid listing of NODE_ID built from ``template``, with its own id and varied text."""
    rec = dict(template)
    source = template["owner"]
    rec["id"] = f"{NODE_ID}-{KIND_PREFIX[rec['category']]}-{number:06d}"
    rec["owner"] = NODE_ID
    rec["country"] = COUNTRY
    place = rng.choice(_PLACES)
    title = dict(template["title"])
    title["en"] = f"{title['en']} ({place} variant {number})"
    rec["title"] = title
    sentences = template["summary"].split(". ")
    rng.shuffle(sentences)
    trial = rng.choice(_TRIALS).format(k=rng.randint(2, 400))
    rec["summary"] = f"{'. '.join(sentences).rstrip('.')}. In {place}, {trial}."[:2000]
    rec["keywords"] = [*template.get("keywords", [])[:4], rng.choice(_EXTRA_KEYWORDS)]
    if "share_with" in template:
        rec["share_with"] = [n for n in template["share_with"] if n != NODE_ID] or ["cn"]
    if "target_countries" in template:
        rec["target_countries"] = [n for n in template["target_countries"] if n != NODE_ID]
    if rec["category"] == "event":
        rec["organizer"] = NODE_ID
    if rec["category"] == "agreement":
        rec["parties"] = [
            {**p, "node": NODE_ID} if p.get("node") == source else p for p in template["parties"]
        ]
    return rec


def generate(templates: list[dict[str, Any]], n: int, seed: int = 20261128) -> Iterator[str]:
    """``n`` JSON lines, cycling through the templates."""
    rng = random.Random(seed)
    for i in range(n):
        rec = make_listing(templates[i % len(templates)], i + 1, rng)
        yield json.dumps(rec, ensure_ascii=False)


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for line in generate(load_templates(), n):
            fh.write(line + "\n")
    return path


# -- (a) the real import path -------------------------------------------------------------
def new_node(work: Path) -> Path:
    data_dir = work / "node"
    init_node(data_dir, NodeConfig(node_id=NODE_ID, country=COUNTRY))
    return data_dir


def import_once(jsonl: Path, work: Path) -> tuple[Timing, float, Path]:
    """How long ``import_records`` takes on a fresh node, the garbage collector's pauses
    within that, and the node's database file."""
    data_dir = new_node(work)
    rt = open_runtime(data_dir)
    try:
        gc.collect()
        with GcPauses() as pauses:
            took, report = measured(lambda: rt.listings.import_records(read_records(jsonl)))
    finally:
        rt.close()
    _check(report, jsonl)
    return took, pauses.seconds, data_dir / DB_FILE


def _check(report: ImportReport, jsonl: Path) -> None:
    if report.problems or not report.applied:
        first = report.problems[0] if report.problems else None
        raise RuntimeError(f"the generated file {jsonl} did not import cleanly: {first}")


# -- (b) raw sqlite3 ----------------------------------------------------------------------
StoredRows = tuple[list[str], dict[str, tuple[list[str], list[tuple[Any, ...]]]]]


def stored_rows(db: Path) -> StoredRows:
    """The DDL of the listings and changes tables (with indexes) and the rows (a) stored."""
    conn = sqlite3.connect(db)
    try:
        ddl = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name IN (?, ?) AND sql IS NOT NULL "
                "ORDER BY type DESC, name",
                TABLES,
            )
        ]
        rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table in TABLES:
            cur = conn.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cur.description]
            rows[table] = (columns, cur.fetchall())
    finally:
        conn.close()
    return ddl, rows


def raw_insert_once(rows: StoredRows, work: Path) -> Timing:
    """How long inserting ``rows`` with sqlite3 executemany takes, WAL, one transaction."""
    ddl, tables = rows
    conn = sqlite3.connect(work / "raw.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # as node.storage.db sets it
        for statement in ddl:
            conn.execute(statement)
        gc.collect()

        def insert() -> None:
            conn.execute("BEGIN")
            for table, (columns, values) in tables.items():
                marks = ", ".join("?" for _ in columns)
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    values,
                )
            conn.execute("COMMIT")

        took, _ = measured(insert)
    finally:
        conn.close()
    return took


# -- where the time goes --------------------------------------------------------------------
class GcPauses:
    """Adds up the time the cyclic garbage collector pauses the program (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)


class Laps:
    """Per-step wall time, less the garbage collector's pauses within each step."""

    def __init__(self, pauses: GcPauses) -> None:
        self.pauses = pauses
        self.totals: dict[str, float] = {}
        self._at = time.perf_counter()
        self._gc = pauses.seconds

    def lap(self, step: str) -> None:
        now, gc_now = time.perf_counter(), self.pauses.seconds
        spent = (now - self._at) - (gc_now - self._gc)
        self.totals[step] = self.totals.get(step, 0.0) + spent
        self._at, self._gc = now, gc_now


def phases_once(jsonl: Path, limit: int) -> dict[str, float]:
    """Seconds of each step ``import_records`` takes before SQLAlchemy, without gc pauses,
    for the first ``limit`` records of ``jsonl``.

    Replays the import's two loops (validate every record, then serialise and hash them
    for storage) and keeps the same objects alive, so memory behaves as in the real run.
    """
    gc.collect()
    kept: list[tuple[int, dict[str, Any], Any]] = []
    with GcPauses() as pauses:
        laps = Laps(pauses)
        for line, record in itertools.islice(read_records(jsonl), limit):
            laps.lap("read + json.loads")
            normalized = normalize_record(record)
            laps.lap("normalize_record (dates)")
            listing = parse_listing(normalized)
            laps.lap("parse_listing (pydantic)")
            wire = listing_to_wire(listing)
            laps.lap("listing_to_wire (model_dump)")
            kept.append((line, wire, listing))
            laps.lap("listing_to_wire (model_dump)")
        for _, wire, _ in kept:  # as _store_batch does, after validating every record
            laps.lap("loop")
            dumps(wire)
            content_hash(wire)
            laps.lap("record JSON + content hash")
    laps.totals.pop("loop", None)
    return laps.totals


# -- the benchmark --------------------------------------------------------------------------
def run(n_listings: int = N_LISTINGS, repeats: int = DEFAULT_REPEATS) -> list[BenchResult]:
    with tempfile.TemporaryDirectory(prefix="cattc-bench-") as tmp:
        root = Path(tmp)
        jsonl = write_jsonl(root / "listings.jsonl", n_listings)
        logger.info("generated %d listings (%.0f MB)", n_listings, jsonl.stat().st_size / 1e6)
        imports: list[Timing] = []
        raws: list[Timing] = []
        gc_s: list[float] = []
        rows: StoredRows | None = None
        for i in range(repeats):
            took, pauses, db = import_once(jsonl, root / f"run-{i}")
            imports.append(took)
            gc_s.append(pauses)
            if rows is None:
                rows = stored_rows(db)
            raws.append(raw_insert_once(rows, root / f"run-{i}"))
            logger.info(
                "run %d: import %.2f s (cpu %.2f s), raw sqlite3 %.2f s (cpu %.2f s)",
                i + 1,
                *took,
                *raws[-1],
            )
        # Steps cost the same per record at any size once gc pauses are left out, so a
        # sample is replayed and scaled: this keeps `make bench` within its time budget.
        sample = min(n_listings, PHASE_SAMPLE)
        phase_runs = [
            {step: s * n_listings / sample for step, s in phases_once(jsonl, sample).items()}
            for _ in range(repeats)
        ]
    return _results(n_listings, imports, gc_s, raws, phase_runs)


def _results(
    n: int,
    imports: list[Timing],
    gc_s: list[float],
    raws: list[Timing],
    phase_runs: list[dict[str, float]],
) -> list[BenchResult]:
    import_s = [t.wall for t in imports]
    raw_s = [t.wall for t in raws]
    results = [
        result_from_runs(
            "import_records, SQLite",
            [n / s for s in import_s],
            "listings/s",
            goal=f">= {GOAL_RATIO:.0%} of raw sqlite3",
            baseline_runs=[n / s for s in raw_s],
            goal_ratio=GOAL_RATIO,
            notes=f"{n:,} listings of node {NODE_ID}, a fresh node each run: "
            "read, parse, validate, hash, store listings and changes rows",
        ),
        result_from_runs(
            "raw sqlite3 executemany (baseline)",
            [n / s for s in raw_s],
            "listings/s",
            notes="the rows the import stored, same DDL, WAL, synchronous=NORMAL, one transaction",
        ),
        result_from_runs(
            "import_records, SQLite, per CPU second",
            [n / t.cpu for t in imports],
            "listings/CPU-s",
            baseline_runs=[n / t.cpu for t in raws],
            notes="process CPU time, which other work on a shared machine disturbs less",
        ),
        result_from_runs("import_records, wall time", import_s, "s"),
        result_from_runs("raw sqlite3, wall time", raw_s, "s", baseline_runs=import_s),
        result_from_runs(
            "garbage collector pauses during the import",
            gc_s,
            "s",
            baseline_runs=import_s,
        ),
    ]
    for name in phase_runs[0]:
        results.append(
            result_from_runs(
                f"step: {name}",
                [p[name] for p in phase_runs],
                "s",
                baseline_runs=import_s,
            )
        )
    rest = [
        max(t - g - sum(p.values()), 0.0)
        for t, g, p in zip(import_s, gc_s, phase_runs, strict=True)
    ]
    results.append(
        result_from_runs(
            "rest: SQLAlchemy + SQLite",
            rest,
            "s",
            baseline_runs=import_s,
        )
    )
    return results


def profile(n_listings: int, out: Path | None) -> None:
    """cProfile one import of ``n_listings`` and print the top functions by own time."""
    with tempfile.TemporaryDirectory(prefix="cattc-bench-") as tmp:
        root = Path(tmp)
        jsonl = write_jsonl(root / "listings.jsonl", n_listings)
        data_dir = new_node(root)
        rt = open_runtime(data_dir)
        prof = cProfile.Profile()
        try:
            prof.runcall(rt.listings.import_records, read_records(jsonl))
        finally:
            rt.close()
    stats = pstats.Stats(prof)
    if out is not None:
        stats.dump_stats(out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_LISTINGS, help="listings to generate")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--profile", action="store_true", help="cProfile one import instead")
    parser.add_argument("--profile-out", type=Path, help="also save the profile (pstats)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.profile:
        profile(args.n, args.profile_out)
        return
    for r in run(args.n, args.repeats):
        ratio = f"  ratio {r.ratio:.3f}" if r.ratio is not None else ""
        logger.info("%-45s %12.2f %s%s", r.name, r.value, r.unit, ratio)


if __name__ == "__main__":
    main()
