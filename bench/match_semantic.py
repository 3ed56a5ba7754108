"""Benchmark: matching with the semantic component on (the hub's default multilingual model).

The figures of ``bench.match_speed.run_semantic``: the model's encoding rate and the
first encoding of 200,000 listings extrapolated from it, all requests' top 10 offers with
embeddings stored for every listing, and one new listing matched with its encoding
included. ``CATTC_BENCH_SEMANTIC_N`` sets the number of offers and of requests (default
100,000; smaller when the machine is shared, as the report then says).

Then ``encode_listings``: e5-static (the model a hub too large for e5's background
encoding can choose, ``CATTC_SEMANTIC=e5-static``) encodes 200,000 listing texts for
real, made from the sample's listings with words dropped and swapped (so that no text
repeats and the encoder's cache does not help), through the same cached encoder the hub
uses, with its progress reports; and one text alone.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

from bench.match_speed import load_sample, run_semantic
from node.matching.concepts import default_lexicon
from node.matching.evaluate import hub_view
from node.matching.features import extract
from node.matching.semantic import CachedEncoder, load_encoder

REPORT_NOTE = (
    "Encoding is measured on 64 of the sample's own listings; the bulk figure gives each "
    "scaled copy a real vector of one of them plus noise: encoding every copy would take "
    "hours with the full model. The 200,000-listing encoding is measured for real with the "
    "static model (e5-static)."
)
LISTINGS = 200_000
logger = logging.getLogger("bench.match_semantic")


def listing_texts(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct listing texts (what the matcher encodes) varied from the sample's."""
    lexicon = default_lexicon()
    base = []
    for rec in load_sample():
        feats = extract(str(rec["owner"]), hub_view(rec), lexicon)
        if feats is not None and feats.text.strip():
            base.append(feats.text)
    rng = random.Random(seed)
    pool = [w for text in base for w in text.split()]
    out = []
    for i in range(n):
        words = [w for w in base[i % len(base)].split() if rng.random() > 0.1]
        for _ in range(3):
            words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
        out.append(" ".join(words) + f" {i}")
    return out


def encode_listings(n: int = LISTINGS, model: str = "e5-static") -> list[dict[str, Any]]:
    texts = listing_texts(n)
    encoder = CachedEncoder(load_encoder(model).inner)  # a cold cache of its own
    reports: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        if not reports or done * 10 // total > reports[-1][0] * 10 // total:
            logger.info("%d of %d listings encoded", done, total)
        reports.append((done, total))

    started = time.perf_counter()
    vectors = encoder.encode(texts, progress=progress)
    seconds = time.perf_counter() - started
    singles = []
    for text in texts[:50]:
        began = time.perf_counter()
        encoder.inner.encode([text + " (new)"])
        singles.append(time.perf_counter() - began)
    singles.sort()
    return [
        {
            "name": f"first encoding of {n:,} listings ({model}, measured)",
            "value": round(seconds / 60, 2),
            "unit": "min",
            "goal": "< 10 min on 2 cores",
            "notes": f"{n / seconds:,.0f} texts/s; {len(reports)} progress reports; "
            f"vectors {vectors.shape[1]} dims",
        },
        {
            "name": f"one listing encoded ({model})",
            "value": round(singles[len(singles) // 2] * 1000, 2),
            "unit": "ms",
            "goal": "",
            "notes": "median of 50 single texts",
        },
    ]


def run() -> list[dict[str, Any]]:
    n = int(os.environ.get("CATTC_BENCH_SEMANTIC_N", "100000"))
    return run_semantic(n) + encode_listings()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for row in encode_listings():
        print(row)
