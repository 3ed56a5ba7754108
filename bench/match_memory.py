"""Matcher memory per listing: what the hub's matching worker holds for each summary.

Builds a matcher in a process of its own with ``N_LISTINGS`` listings (copies of the
sample's offers, requests and experts with perturbed text and fields, bench.match_speed),
added 500 at a time as the hub's worker adds them, then runs the worker's pass
(``matches_for_many`` over blocks of 100 listings, without explanations) over the first
``PASS_LISTINGS`` of them, and reports from the kernel (``/proc/self/status``) the
process's resident size after the load and after the pass (freed heap given back as the
worker does, ``release_memory``), the pass's time per listing and its peak above its
start, and the bytes the
matcher's own structures hold per listing (numpy arrays at their capacity, Python
containers and the objects in them counted once), by structure in the notes, with the
matching engine's versions of the same listings (``StampTable``); then the peak of the first
bulk ranking (every request's top 10 offers, ``top_pairs``) above its start, with the
worker's fixed mmap threshold.

Issue 10's goal for a hub of 200,000 summaries is a whole process tree under 800 MB, of
which the server takes ~200 MB and the worker's interpreter with its modules ~100 MB,
with room for a ranking's peak (~200 MB): what the worker holds per listing (the matcher's
structures and the engine's state) must stay under about 1,500 bytes. One run: the
figures vary little between runs.

Run alone with ``python -m bench.match_memory [N]`` or through
``python -m bench.run --only match_memory``.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from bench.common import PROJECT_ROOT, BenchResult

N_LISTINGS = 20_000
PASS_LISTINGS = 2_000
BATCH = 500
REPORT_NOTE = (
    "One run of a matcher in a process of its own (lexical scoring); sizes from the kernel, "
    "structures counted at their capacity."
)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and what it holds, less what ``seen`` already counted."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if base is not obj:
            if id(base) in seen:
                return 0
            seen.add(id(base))
        return int(base.nbytes)
    if sp.issparse(obj):
        return sum(_size(getattr(obj, a), seen) for a in ("data", "indices", "indptr"))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_size(k, seen) + _size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(_size(v, seen) for v in obj)
    elif isinstance(obj, str | bytes | int | float | bool | None):
        pass
    else:
        if hasattr(obj, "__dict__"):
            size += _size(vars(obj), seen)
        for name in getattr(type(obj), "__slots__", ()):
            size += _size(getattr(obj, name, None), seen)
    return size


def structures(matcher: Any, versions: Any = None) -> dict[str, int]:
    """Bytes held by each of the matcher's structures (all kinds together), and by the
    matching engine's ``versions`` of the same listings when given."""
    seen: set[int] = set()
    out: collections.Counter[str] = collections.Counter()
    if versions is not None:
        out["engine versions"] += _size(versions, seen)
    for space, vocab in matcher.vocabs.items():
        out[f"vocabulary ({space})"] += _size(vocab, seen)
    for store in matcher.stores.values():
        out["slot maps (refs)"] += _size(store.slot_of, seen)
        columns = (store.versions, store.titles, store.texts, store.targets)
        out["features"] += sum(_size(c, seen) for c in columns)
        out["features"] += _size(store._target_sets, seen)  # noqa: SLF001 - measured
        for space, rows in store.sparse.items():
            cached = (rows._built, rows._csc, rows._tail)  # noqa: SLF001 - measured
            out[f"weighted matrices ({space})"] += sum(_size(m, seen) for m in cached)
            out[f"term rows ({space})"] += _size(rows, seen)
        out["embeddings"] += _size(store.dense, seen)
        rest = {k: v for k, v in vars(store).items() if k not in {"vocabs", "nodes", "features"}}
        out["columns and the rest"] += _size(rest, seen)
    state = {k: v for k, v in vars(matcher).items() if k not in {"vocabs", "stores", "lexicon"}}
    out["matcher caches"] += _size(state, seen)
    return dict(out)


def measure(n: int, pass_listings: int = PASS_LISTINGS) -> dict[str, Any]:
    """The figures of one matcher of ``n`` listings, in this process."""
    import ctypes
    import gc

    from bench.match_speed import NOW_MS, load_sample, scale
    from node.hub.match_worker import fix_mmap_threshold
    from node.matching.evaluate import hub_view
    from node.matching.matcher import Matcher
    from node.matching.reftable import StampTable

    def trim() -> None:
        gc.collect()
        ctypes.CDLL(None).malloc_trim(0)

    sample = load_sample()
    shares = (("tech_offer", 0.45, 1), ("tech_request", 0.40, 2), ("expert", 0.15, 3))
    trim()
    start = _status_mb("VmRSS")
    matcher = Matcher(NOW_MS)
    refs: list[tuple[str, str]] = []
    for category, share, seed in shares:
        count = int(n * share)
        for first in range(0, count, BATCH):  # made and added a batch at a time
            batch = scale(sample, category, min(BATCH, count - first), seed=seed * 1000 + first)
            for rec in batch:
                rec["id"] = f"{rec['id']}-b{first}"  # copies' ids restart at each batch
            views = [(str(r["owner"]), hub_view(r)) for r in batch]
            matcher.upsert_many(views)
            refs += [(owner, str(view["id"])) for owner, view in views]
    trim()
    loaded = _status_mb("VmRSS") - start
    _reset_peak()
    passed = time.perf_counter()
    for first in range(0, min(pass_listings, len(refs)), 100):
        matcher.matches_for_many(refs[first : first + 100], k=10, explain=False)
    pass_s = time.perf_counter() - passed
    peak = _status_mb("VmHWM") - start
    trim()
    steady = _status_mb("VmRSS") - start
    versions = StampTable()  # the engine's, as the worker keeps them
    for ref in refs:
        versions[ref] = (1, NOW_MS)
    held = structures(matcher, versions)
    fix_mmap_threshold()  # as the worker runs its rankings
    trim()
    before = _status_mb("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    slots, _, _ = matcher.top_pairs(10, kinds=("offer",))
    ranking_s = time.perf_counter() - started
    ranking_peak = _status_mb("VmHWM") - before
    requests, offers = len(slots), len(matcher.stores["offer"].live_slots())
    del slots
    return {
        "listings": len(matcher),
        "loaded_mb": loaded,
        "steady_mb": steady,
        "peak_mb": peak,
        "pass_ms": 1000 * pass_s / min(pass_listings, len(refs)),
        "ranking": {
            "peak_mb": ranking_peak,
            "seconds": ranking_s,
            "requests": requests,
            "offers": offers,
        },
        "structures": held,
    }


def run(n: int = N_LISTINGS) -> list[BenchResult]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.match_memory", "--child", str(n)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    count = got["listings"]
    held = got["structures"]
    ranking = got["ranking"]
    total = sum(held.values())
    by = ", ".join(
        f"{name} {size / count:.0f}" for name, size in sorted(held.items(), key=lambda i: -i[1])
    )
    return [
        BenchResult(
            name=f"matcher structures per listing ({count:,} listings)",
            value=round(total / count),
            unit="B",
            goal="< 1,500 B",
            goal_max=1500.0,
            notes=f"bytes per listing: {by}",
        ),
        BenchResult(
            name="process resident size after the load, per listing",
            value=round(got["loaded_mb"] * 2**20 / count),
            unit="B",
            notes=f"{got['loaded_mb']:.0f} MB above the interpreter with the matcher's modules",
        ),
        BenchResult(
            name=f"after a pass over {PASS_LISTINGS:,} listings, per listing",
            value=round(got["steady_mb"] * 2**20 / count),
            unit="B",
            notes=f"{got['steady_mb']:.0f} MB; its weighted matrices built, freed heap given back",
        ),
        BenchResult(
            name="the pass: time per listing matched",
            value=round(got["pass_ms"], 1),
            unit="ms",
            notes=(
                f"{PASS_LISTINGS:,} offers each against all {count:,} listings' requests, "
                "100 a call, its weighted matrices built once (the worker's pass over "
                "changed listings)"
            ),
        ),
        BenchResult(
            name="the pass's peak above the interpreter",
            value=round(got["peak_mb"]),
            unit="MB",
            notes="blocks of many_vs_all and the weighted matrices being built",
        ),
        BenchResult(
            name="the first ranking's peak above its start",
            value=round(ranking["peak_mb"]),
            unit="MB",
            notes=(
                f"top 10 offers of every request ({ranking['requests']:,} x "
                f"{ranking['offers']:,}, sketch shortlist then exact rescoring) in "
                f"{ranking['seconds']:.1f} s, with the worker's mmap threshold"
            ),
        ),
    ]


def main(argv: list[str]) -> None:
    if len(argv) > 2 and argv[1] == "--child":
        print(json.dumps(measure(int(argv[2]))))
        return
    n = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else N_LISTINGS
    for result in run(n):
        print(f"{result.name:<58} {result.value:>9} {result.unit:<3} {result.notes}")


if __name__ == "__main__":
    main(sys.argv)
