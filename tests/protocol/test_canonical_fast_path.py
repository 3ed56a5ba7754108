"""The float-free fast path of ``canonical_bytes`` gives exactly the ``rfc8785`` bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import CanonicalizationError, canonical_bytes
from tests.paths import DATA, require

keys = st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(max_size=20)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(documents)
def test_fast_path_equals_rfc8785(doc: Any) -> None:
    try:
        expected: bytes | None = rfc8785.dumps(doc)
    except rfc8785.CanonicalizationError:
        expected = None
    if expected is None:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(doc)
    else:
        assert canonical_bytes(doc) == expected


def test_every_sample_listing_canonicalises_as_rfc8785() -> None:
    with require(DATA / "listings.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            assert canonical_bytes(record) == rfc8785.dumps(record)


@pytest.mark.parametrize(
    "doc",
    [
        {"\U0001f600": 1, "\uffff": 2},  # UTF-16 order differs from code-point order
        {"n": 2**60},
        {"f": 1.5},
        [1e21, -0.0],
    ],
)
def test_values_outside_the_fast_path_still_match(doc: Any) -> None:
    try:
        expected = rfc8785.dumps(doc)
    except rfc8785.CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(doc)
        return
    assert canonical_bytes(doc) == expected


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"k": "\ud800"})
