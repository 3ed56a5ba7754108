"""protocol.safe_json: hostile JSON gets one typed error, never a crash."""

from __future__ import annotations

import json

import pytest

from protocol.safe_json import JsonInputError, loads


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
        ('{"a":' * 65 + "1" + "}" * 65, "nested deeper than 64"),
        ("[" * 65 + "]" * 65, "nested deeper than 64"),
        ('{"n": ' + "7" * 5000 + "}", "5000 characters"),
        ("1." + "5" * 100, "characters"),
        ("1e400", "out of range"),
        ("NaN", "NaN is not valid JSON"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('"\\ud800"', "lone surrogate"),
        ('{"\\udfff": 1}', "lone surrogate"),
        (b'["\xc3\x28"]', "not UTF-8: byte 0xc3 at offset 2"),
        ("[1]".encode("utf-16"), "not UTF-8"),
        ("[1,", "Expecting value"),
        ('"a\x01"', "Invalid control character"),
    ],
)
def test_refused_with_a_reason(data: str | bytes, says: str) -> None:
    with pytest.raises(JsonInputError) as info:
        loads(data)
    assert says in info.value.message
    assert isinstance(info.value, ValueError)


def test_accepts_ordinary_json_as_json_does() -> None:
    text = '{"a": [1, -2, 2.5, "x\\u00e9", true, null, {"b": []}], "\\u00fc": "\\ud83d\\ude00"}'
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)
    nested = "[" * 64 + "]" * 64
    assert loads(nested) == json.loads(nested)
    # Numbers beyond 2**53 parse (models name the field that refuses them).
    assert loads("100000000000000000000") == 10**20


def test_limits_are_parameters() -> None:
    assert loads("[[1]]", max_depth=2) == [[1]]
    with pytest.raises(JsonInputError):
        loads("[[1]]", max_depth=1)
    with pytest.raises(JsonInputError):
        loads("12345", max_number_length=4)


def test_parse_json_of_peer_answers_refuses_deep_nesting_as_bad_json() -> None:
    """protocol.canonical.parse_json (peers' pages and answers) says ValueError, which
    every reader of a peer handles, rather than RecursionError."""
    from protocol.canonical import parse_json

    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError):
        parse_json(b'{"n": ' + b"7" * 5000 + b"}")
