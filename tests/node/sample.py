"""The sample listings of ../shared/data, read once per test session."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from tests.paths import DATA, require


@functools.cache
def _all() -> tuple[dict[str, Any], ...]:
    path = require(DATA / "listings.jsonl")
    with path.open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def sample_records(owner: str | None = None) -> list[dict[str, Any]]:
    """Deep copies of the sample records (all, or one owner's)."""
    return [copy.deepcopy(r) for r in _all() if owner is None or r["owner"] == owner]


def sample_record(listing_id: str) -> dict[str, Any]:
    for r in _all():
        if r["id"] == listing_id:
            return copy.deepcopy(r)
    raise KeyError(listing_id)
