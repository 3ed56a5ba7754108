"""Benchmark: matching with the semantic component on (the hub's default multilingual model).

The figures of ``bench.match_speed.run_semantic``: the model's encoding rate and the
first encoding of 200,000 listings extrapolated from it, all requests' top 10 offers with
embeddings stored for every listing, and one new listing matched with its encoding
included. ``CATTC_BENCH_SEMANTIC_N`` sets the number of offers and of requests (default
100,000; smaller when the machine is shared, as the report then says).
"""

from __future__ import annotations

import os
from typing import Any

from bench.match_speed import run_semantic

REPORT_NOTE = (
    "Encoding is measured on 64 of the sample's own listings; the bulk figure gives each "
    "scaled copy a real vector of one of them plus noise: encoding every copy would take hours."
)


def run() -> list[dict[str, Any]]:
    n = int(os.environ.get("CATTC_BENCH_SEMANTIC_N", "100000"))
    return run_semantic(n)
