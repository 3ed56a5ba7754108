"""The float-free fast path of ``canonical_bytes`` gives exactly the ``rfc8785`` bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import (
    CanonicalizationError,
    array_bytes,
    canonical_bytes,
    join_members,
    member_bytes,
)
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


# -- assembling objects from their members' bytes ----------------------------------------
any_keys = st.text(max_size=4) | st.sampled_from(["\U0001f600", "\uffff", "signatures", "a"])
floats = st.floats(allow_nan=False, allow_infinity=False)
objects = st.dictionaries(any_keys, documents | floats | st.lists(floats, max_size=3), max_size=6)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(objects, st.lists(objects, max_size=4))
def test_members_joined_equal_rfc8785(obj: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """An object (less one member) and an array of objects, assembled from parts, are
    byte for byte what ``rfc8785`` gives for the whole: signing payloads and feed pages
    are built this way."""
    try:
        whole = rfc8785.dumps(obj)
        without = rfc8785.dumps({k: v for k, v in obj.items() if k != "signatures"})
        array = rfc8785.dumps(items)
    except rfc8785.CanonicalizationError:
        return
    parts = member_bytes(obj)
    assert join_members(parts) == whole
    assert join_members(parts, omit="signatures") == without
    assert array_bytes(join_members(member_bytes(i)) for i in items) == array
    page = {"items": items, **{k: v for k, v in obj.items() if k != "items"}}
    page_parts = member_bytes({k: v for k, v in page.items() if k != "items"})
    page_parts["items"] = b'"items":' + array
    assert join_members(page_parts) == rfc8785.dumps(page)
