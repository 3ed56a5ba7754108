"""Benchmark: policy views per second on one core (the goal is >= 50,000).

A node evaluates every listing for every counterpart after a policy change, and the hub
may hold a million summaries (DESIGN 11), so evaluation must stay cheap. This scales the
sample data (../shared/data/listings.jsonl) to ``n_listings`` copies with new ids and
evaluates one view per listing for one audience (the nodes in turn, skipping the owner),
timing whole passes: under the default policy (many refusals, names anonymised) and
under a policy sharing every field with everyone (the most work per view). The listings
are validated once beforehand; evaluation itself never touches pydantic.
Run: ``python -m bench.views``.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from pathlib import Path
from typing import Any

from policies import (
    Audience,
    Policy,
    Rule,
    audience_for,
    compile_policy,
    default_policy_yaml,
    parse_policy,
)
from policies.evaluate import evaluate
from protocol.listing import (
    CATEGORIES,
    listing_to_wire,
    normalize_record,
    parse_listing,
    shareable_fields,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "listings.jsonl"
NODES = ("cn", "th", "la", "kh", "mm", "vn", "bn", "id", "my", "ph")
NOW_MS = int(dt.datetime(2026, 11, 28, tzinfo=dt.UTC).timestamp() * 1000)


def load_sample(path: Path = DATA) -> list[dict[str, Any]]:
    """The sample listings as wire dicts (validated once, here, not in the timed loop)."""
    with path.open(encoding="utf-8") as handle:
        return [
            listing_to_wire(parse_listing(normalize_record(json.loads(line))))
            for line in handle
            if line.strip()
        ]


def scale(sample: list[dict[str, Any]], n_listings: int) -> list[dict[str, Any]]:
    """``n_listings`` listings: the sample repeated, each copy with a new id."""
    out: list[dict[str, Any]] = []
    for i in range(n_listings):
        source = sample[i % len(sample)]
        copy = json.loads(json.dumps(source))
        copy["id"] = f"{source['id']}-c{i // len(sample)}"
        out.append(copy)
    return out


def wide_policy() -> Policy:
    """Every field of every category to everyone: the most work per view."""
    visible = ("public", "network", "bilateral")
    return Policy(rules=tuple(Rule("*", c, visible, shareable_fields(c)) for c in CATEGORIES))


def _pass(
    listings: list[dict[str, Any]], audiences: list[Audience], policy: Any
) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) for one pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    for listing, audience in zip(listings, audiences, strict=True):
        evaluate(listing, audience, policy, NOW_MS)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(n_listings: int = 100_000, runs: int = 5) -> dict[str, Any]:
    """Median views/s over ``runs`` passes, under the default and a share-everything policy.

    ``views_per_s`` is wall-clock; ``views_per_cpu_s`` counts only this process's CPU time,
    which is the steadier figure on a shared machine. The top-level ``views_per_s`` is the
    default policy's."""
    listings = scale(load_sample(), n_listings)
    results: dict[str, Any] = {"n_listings": n_listings, "runs": runs}
    policies = {
        "default": parse_policy(default_policy_yaml()),
        "wide": wide_policy(),
    }
    for name, policy in policies.items():
        compiled = compile_policy(policy)
        by_node = {node: audience_for(node, compiled) for node in NODES}
        audiences = []
        for i, listing in enumerate(listings):
            node = NODES[i % len(NODES)]
            if node == listing["owner"]:
                node = NODES[(i + 1) % len(NODES)]
            audiences.append(by_node[node])
        shared = sum(
            evaluate(lst, aud, compiled, NOW_MS).view is not None
            for lst, aud in zip(listings, audiences, strict=True)
        )
        timings = [_pass(listings, audiences, compiled) for _ in range(runs)]
        wall = statistics.median(t[0] for t in timings)
        cpu = statistics.median(t[1] for t in timings)
        results[name] = {
            "views_per_s": round(n_listings / wall),
            "views_per_cpu_s": round(n_listings / cpu),
            "shared": shared,
            "seconds": [round(t[0], 4) for t in timings],
        }
    results["views_per_s"] = results["default"]["views_per_s"]
    return results


def main() -> None:
    result = run()
    for name in ("default", "wide"):
        part = result[name]
        print(
            f"{name:8} policy: {part['views_per_s']:>9,} views/s wall-clock, "
            f"{part['views_per_cpu_s']:>9,} per CPU-second "
            f"(median of {result['runs']}, {result['n_listings']:,} listings, "
            f"{part['shared']:,} shared)"
        )


if __name__ == "__main__":
    main()
