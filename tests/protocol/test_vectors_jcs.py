"""RFC 8785 (JCS) against the cyberphone test data: the six object cases and 10,000 numbers.

Only canonical bytes are signed, so any difference from RFC 8785 here would make our
signatures unverifiable by another implementation (and theirs by us).
"""

from __future__ import annotations

import json
import struct

import pytest

from protocol.canonical import CanonicalizationError, canonical_bytes, canonical_sha256, parse_json
from tests.paths import VECTORS, require

JCS = VECTORS / "jcs-rfc8785"
CASES = ("arrays", "french", "structures", "unicode", "values", "weird")


def _input(name: str) -> object:
    return parse_json(require(JCS / "input" / f"{name}.json").read_bytes())


def _expected(name: str) -> bytes:
    return require(JCS / "output" / f"{name}.json").read_bytes()


def test_the_six_cases_are_all_there() -> None:
    names = sorted(p.stem for p in require(JCS / "input").glob("*.json"))
    assert names == list(CASES)


@pytest.mark.parametrize("name", CASES)
def test_rfc8785_case(name: str) -> None:
    expected = _expected(name)
    outhex = require(JCS / "outhex" / f"{name}.txt").read_text(encoding="ascii")
    assert bytes.fromhex("".join(outhex.split())) == expected
    assert canonical_bytes(_input(name)) == expected


def test_rfc8785_values_case_exact_text() -> None:
    # Pinned so that the oracle file cannot drift unnoticed.
    assert canonical_bytes(_input("values")) == (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_es6_numbers_10000_lines() -> None:
    lines = require(JCS / "es6testfile_10000.txt").read_text(encoding="ascii").splitlines()
    count = 0
    wrong: list[str] = []
    for line in lines:
        hex_ieee, expected = line.split(",")
        assert 1 <= len(hex_ieee) <= 16
        value = struct.unpack(">d", bytes.fromhex(hex_ieee.rjust(16, "0")))[0]
        got = canonical_bytes(value)
        if got != expected.encode("ascii"):
            wrong.append(f"{hex_ieee}: expected {expected}, got {got!r}")
        count += 1
    assert wrong == []
    assert count == 10000


@pytest.mark.parametrize(
    ("hex_ieee", "text"),
    [
        ("4340000000000001", b"9007199254740994"),
        ("444b1ae4d6e2ef50", b"1e+21"),
        ("3eb0c6f7a0b5ed8d", b"0.000001"),
        ("3eb0c6f7a0b5ed8c", b"9.999999999999997e-7"),
        ("8000000000000000", b"0"),
    ],
)
def test_es6_readme_samples(hex_ieee: str, text: bytes) -> None:
    value = struct.unpack(">d", bytes.fromhex(hex_ieee))[0]
    assert canonical_bytes(value) == text


def test_json_dumps_sort_keys_is_not_rfc8785() -> None:
    """Why canonical.py uses rfc8785: sorted json.dumps differs from the RFC's output."""

    def naive(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    differing = [name for name in CASES if naive(_input(name)) != _expected(name)]
    assert "structures" in differing
    assert "weird" in differing
    # numbers: a float with an integral value
    assert naive({"a": 56.0}) == b'{"a":56.0}'
    assert canonical_bytes({"a": 56.0}) == b'{"a":56}'
    # key order: code points (json.dumps) versus UTF-16 code units (RFC 8785)
    keys = {"\ufb33": 1, "\U0001f602": 2}
    assert naive(keys).index("\ufb33".encode()) < naive(keys).index("\U0001f602".encode())
    assert canonical_bytes(keys) == '{"\U0001f602":2,"\ufb33":1}'.encode()


def test_canonical_bytes_refuses_what_json_cannot_carry() -> None:
    for bad in (float("nan"), float("inf"), {1: "non-string key"}, 2**64, {"a": object()}):
        with pytest.raises(CanonicalizationError):
            canonical_bytes(bad)


def test_canonical_sha256_hashes_the_canonical_bytes() -> None:
    # SHA-256 of the 13 bytes {"a":1,"b":2}, computed independently with hashlib
    assert canonical_sha256({"b": 2, "a": 1}) == canonical_sha256({"a": 1, "b": 2})
    assert canonical_sha256({"a": 1, "b": 2}) == (
        "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777"
    )


def test_parse_json_is_strict() -> None:
    assert parse_json('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    with pytest.raises(ValueError, match="duplicate"):
        parse_json('{"a": 1, "a": 2}')
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError):
            parse_json(f'{{"a": {constant}}}')
