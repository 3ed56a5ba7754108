"""Peak memory of cattc import: a million listings in one file, each import under 500 MB.

DESIGN section 11 builds for 100 times today's network, and a center's first load is its
whole catalogue in one file. The import reads the file line by line and stores 1,000
listings per batch, so its memory must not grow with the file. This benchmark generates
``N_LISTINGS`` valid listings of one node (bench.import_listings' generator), then runs
``cattc import DATA_DIR FILE --json`` as its own process on a fresh SQLite node, once
without and once with ``--strict`` (one transaction for the whole file), and reads each
process's peak resident set size from the kernel (``os.wait4``: ``ru_maxrss``).

One run of each: an import of a million listings takes minutes, and its peak varies
little between runs. The goal is < 500 MB.

Run alone with ``python -m bench.import_memory [--n N]`` or through
``python -m bench.run --only import_memory``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PROJECT_ROOT, BenchResult
from bench.import_listings import new_node, write_jsonl

logger = logging.getLogger(__name__)

N_LISTINGS = 1_000_000
GOAL_MB = 500.0
REPORT_NOTE = (
    "Peak resident memory of the whole `cattc import` process (Python, SQLAlchemy, "
    "SQLite's cache), from the kernel; one run each."
)


def import_process(data_dir: Path, path: Path, *flags: str) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``cattc import`` process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATTC_")}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "import", str(data_dir), str(path), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=PROJECT_ROOT,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"cattc import {' '.join(flags)} exited with {proc.returncode}")
    return usage.ru_maxrss / 1024, took  # ru_maxrss is in KiB on Linux


def run(n_listings: int = N_LISTINGS) -> list[BenchResult]:
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="cattc-bench-") as tmp:
        root = Path(tmp)
        path = write_jsonl(root / "listings.jsonl", n_listings)
        size_mb = path.stat().st_size / 1e6
        logger.info("generated %d listings (%.0f MB)", n_listings, size_mb)
        for label, flags in (("", ("--json",)), (" --strict", ("--json", "--strict"))):
            data_dir = new_node(root / f"node{label.strip()}")
            peak_mb, took = import_process(data_dir, path, *flags)
            logger.info("cattc import%s: peak %.0f MB, %.0f s", label, peak_mb, took)
            results += [
                BenchResult(
                    name=f"peak RSS, cattc import{label}",
                    value=peak_mb,
                    unit="MB",
                    goal=f"< {GOAL_MB:.0f} MB",
                    ratio=peak_mb / GOAL_MB,
                    goal_max=GOAL_MB,
                    notes=f"{n_listings:,} listings of node th in one JSON Lines file "
                    f"({size_mb:,.0f} MB), a fresh SQLite node",
                    runs=(peak_mb,),
                ),
                BenchResult(
                    name=f"cattc import{label}, listings per second",
                    value=n_listings / took,
                    unit="listings/s",
                    notes="the same process, from start to exit (the encoding scan included)",
                    runs=(n_listings / took,),
                ),
            ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_LISTINGS, help="listings to generate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for r in run(args.n):
        logger.info("%-45s %12.1f %s", r.name, r.value, r.unit)


if __name__ == "__main__":
    main()
