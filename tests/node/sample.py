"""The sample listings of ../shared/data, read once per test session.

Their dates are moved by the days since the data's reference date (node.sample_dates),
so a listing that expires in December 2026 is still live in a test run next year.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from node.sample_dates import days_since_reference, shift_record
from tests.paths import DATA, require


@functools.cache
def _all() -> tuple[dict[str, Any], ...]:
    path = require(DATA / "listings.jsonl")
    with path.open(encoding="utf-8") as fh:
        days = days_since_reference()
        return tuple(shift_record(json.loads(line), days) for line in fh if line.strip())


def sample_records(owner: str | None = None) -> list[dict[str, Any]]:
    """Deep copies of the sample records (all, or one owner's)."""
    return [copy.deepcopy(r) for r in _all() if owner is None or r["owner"] == owner]


def sample_record(listing_id: str) -> dict[str, Any]:
    for r in _all():
        if r["id"] == listing_id:
            return copy.deepcopy(r)
    raise KeyError(listing_id)
