"""The matcher's temporary memory: a full re-match scores its pairs in bounded blocks, so
its peak does not grow with requests x candidates (the hub's matching worker peaked at
450 MB over 3,500 listings when a block was 2,000,000 pairs)."""

from __future__ import annotations

import tracemalloc

from node.matching import Matcher, bulk
from tests.matching.helpers import NOW, offer, request

WORDS = ["solar", "pump", "rice", "drying", "water", "filter", "cassava", "biogas", "kiln", "mill"]


def _listings(n: int) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for i in range(n):
        a, b, c = WORDS[i % 10], WORDS[(i // 10) % 10], WORDS[(i // 100) % 10]
        out.append(("aa", request(f"r{i}", f"{a} {b} {c} needed", f"need {c} {a} {i}")))
        out.append(("bb", offer(f"o{i}", f"{b} {c} {a} machine", f"offer {a} {b} {i}")))
    return out


def test_exact_top_peak_is_bounded_by_its_block() -> None:
    m = Matcher(NOW)  # lexical: the pairs' own temporaries, no model
    m.upsert_many(_listings(1_000))
    pairs = len(m.stores["request"].live_slots()) * len(m.stores["offer"].live_slots())
    assert pairs == 1_000_000 and pairs <= m.exact_pairs  # one exact table, 10 blocks
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        top = m.top_matches(10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(top) == 1_000 and all(len(found) == 10 for found in top.values())
    # ~220 bytes per pair of a block; one block of all 1,000,000 pairs traced ~200 MB.
    assert bulk.BLOCK_PAIRS * 220 < 40_000_000
    assert peak < 60_000_000, f"re-match peak {peak / 1e6:.0f} MB"
