"""Shared fixtures for the policy tests: the sample listings of ../shared/data, as wire dicts.

The sample data is read in place. If it is missing the tests fail (never skip): a policy
suite that silently stops checking real records is worse than a red one.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from policies import CompiledPolicy, Policy, compile_policy, default_policy_yaml, parse_policy
from protocol.listing import listing_to_wire, normalize_record, parse_listing

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LISTINGS_JSONL = DATA_DIR / "listings.jsonl"
NOW_MS = int(dt.datetime(2026, 11, 28, tzinfo=dt.UTC).timestamp() * 1000)
"""The sample data's "today", 2026-11-28T00:00Z, in integer ms."""
NODES = ("cn", "th", "la", "kh", "mm", "vn", "bn", "id", "my", "ph")


def _raw_lines() -> list[dict[str, Any]]:
    if not LISTINGS_JSONL.is_file():
        pytest.fail(f"sample data missing: {LISTINGS_JSONL} (expected ../shared/data)")
    with LISTINGS_JSONL.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def raw_records() -> list[dict[str, Any]]:
    """The records exactly as in the file (dates as YYYY-MM-DD strings)."""
    records = _raw_lines()
    assert len(records) == 260
    return records


@pytest.fixture(scope="session")
def listings(raw_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as validated wire dicts (times in integer ms)."""
    return [listing_to_wire(parse_listing(normalize_record(r))) for r in raw_records]


@pytest.fixture(scope="session")
def by_id(listings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {listing["id"]: listing for listing in listings}


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return parse_policy(default_policy_yaml())


@pytest.fixture(scope="session")
def default_compiled(default_policy: Policy) -> CompiledPolicy:
    return compile_policy(default_policy)
