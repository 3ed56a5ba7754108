"""``parse_plain`` says a parsed value is plain only when ``plain_bytes`` (one
``json.dumps``) gives its RFC 8785 bytes, and the reader's item bytes made that way (the
signing payload cut out of the canonical bytes) equal those made member by member."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import CanonicalizationError, canonical_bytes, parse_plain, plain_bytes
from sync.verify import _item_bytes, _plain_item_bytes

keys = st.text(max_size=6) | st.sampled_from(["signatures", "ts", "type", "v", "a", "\U0001f600"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def _texts(doc: Any) -> list[bytes]:
    """``doc`` written as a peer might: canonical, escaped, spaced."""
    out = []
    for ascii_only in (False, True):
        try:
            out.append(json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate, written raw: no UTF-8 text
            continue
    try:
        out.append(canonical_bytes(doc))
    except CanonicalizationError:
        pass
    return out


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(documents)
def test_plain_means_plain_bytes_are_rfc8785(doc: Any) -> None:
    for text in _texts(doc):
        value, plain = parse_plain(text)
        if not plain:
            continue
        assert plain_bytes(value) == bytes(rfc8785.dumps(value))
        if isinstance(value, dict):
            assert _plain_item_bytes(value) == _item_bytes(value)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.dictionaries(keys, documents, max_size=8), documents)
def test_item_bytes_cut_the_signatures_member_out(obj: dict[str, Any], sigs: Any) -> None:
    # A member after ``signatures`` may hold a copy of it: the cut is by position.
    obj = {**obj, "signatures": sigs, "ts": {"signatures": sigs}}
    value, plain = parse_plain(json.dumps(obj).encode())
    if plain:
        assert _plain_item_bytes(value) == _item_bytes(value)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1.0}',  # a float: rfc8785 writes 1
        b'{"a":1e2}',
        b'{"a":1234567890123456}',  # 16 digits
        b'{"a":-123456789012345}',
        '{"\U0001f600":1,"\ue000":2}'.encode(),  # sort_keys and UTF-16 order differ
        b'{"\\ud83d\\ude00":1,"\\ue000":2}',  # the same, escaped
        b'{"a":"\\ud800"}',  # a lone surrogate
        '{"a":1}'.encode("utf-16"),  # json.loads reads UTF-16 too
    ],
)
def test_what_is_not_plain(text: bytes) -> None:
    assert parse_plain(text)[1] is False


def test_plain_text_and_constants() -> None:
    assert parse_plain('{"a":[123456789012345,"é太"],"b":null}'.encode()) == (
        {"a": [123456789012345, "é太"], "b": None},
        True,
    )
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        parse_plain(b'{"a":NaN}')
