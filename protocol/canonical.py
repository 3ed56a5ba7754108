"""The one place that turns JSON values into bytes to sign: RFC 8785 (JCS), UTF-8.

Never sign ``model_dump_json()`` or ``json.dumps(sort_keys=True)`` output: both differ from
RFC 8785 on numbers and key order. Everything signed or hashed goes through here.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785

__all__ = [
    "array_bytes",
    "canonical_bytes",
    "canonical_sha256",
    "join_members",
    "member_bytes",
    "parse_json",
    "parse_plain",
    "plain_bytes",
]


class CanonicalizationError(ValueError):
    """A value cannot be represented in RFC 8785 (NaN, huge integer, non-string key...)."""


_MAX_SAFE = 2**53 - 1
# What json.dumps(ensure_ascii=False) uses for strings: the same escaping, without the call.
_encode_str = json.encoder.encode_basestring


def _plain(value: Any) -> bool:
    """True when ``json.dumps`` gives RFC 8785 bytes for ``value``.

    That holds for JSON without floats, with integers within +-(2**53 - 1), and with
    object keys in the Basic Multilingual Plane (where code-point order, which
    ``sort_keys`` uses, equals the UTF-16 order RFC 8785 asks for). Strings are escaped
    alike by both (``ensure_ascii=False``). Everything else goes to ``rfc8785``.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_MAX_SAFE <= item <= _MAX_SAFE:
                continue
            return False
        if kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                    return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        else:
            return False
    return True


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of a JSON value.

    Float-free JSON (every signed object of this protocol) takes a fast path through
    ``json.dumps`` that gives the same bytes; ``tests/protocol`` checks the two agree.
    """
    kind = type(value)
    if kind is str:  # the members of a signed object are mostly scalars: no walk for them
        try:
            return str(_encode_str(value)).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc
    if kind is int and -_MAX_SAFE <= value <= _MAX_SAFE:
        return str(value).encode("ascii")
    if _plain(value):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: not valid Unicode text
            raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(str(exc)) from exc


def member_bytes(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """The canonical bytes of each member of a JSON object (``"key":value``).

    RFC 8785 is compositional: an object's bytes are its members' bytes, sorted by key
    (UTF-16 code units), joined by commas, in braces; an array's are its elements'
    bytes joined by commas. So an object with and without some members (a signed object
    and its signing payload), or a page around items already serialised, is assembled
    from parts instead of serialising the same values again. ``tests/protocol`` checks
    the assembly against ``rfc8785`` itself.
    """
    out: dict[str, bytes] = {}
    for key, value in obj.items():
        if type(key) is not str:
            raise CanonicalizationError(f"object key {key!r} is not a string")
        out[key] = _key_bytes(key) + canonical_bytes(value)
    return out


@functools.lru_cache(maxsize=1024)
def _key_bytes(key: str) -> bytes:
    """``"key":`` (member names repeat in every object of a page)."""
    return canonical_bytes(key) + b":"


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def join_members(parts: Mapping[str, bytes], *, omit: str | None = None) -> bytes:
    """The canonical bytes of the object whose members are ``parts`` (less ``omit``)."""
    keys = [k for k in parts if k != omit]
    # Code-point order is UTF-16 order unless a key leaves the BMP (ASCII keys never do).
    keys.sort(key=None if all(k.isascii() for k in keys) else _utf16)
    return b"{" + b",".join(parts[k] for k in keys) + b"}"


def array_bytes(elements: Iterable[bytes]) -> bytes:
    """The canonical bytes of an array whose elements' canonical bytes are given."""
    return b"[" + b",".join(elements) + b"]"


# No check for cycles: parsed JSON has none.
_PLAIN_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), check_circular=False
)
# In JSON text, what a character beyond the Basic Multilingual Plane may be written
# with: the UTF-8 lead bytes of one, or an escaped surrogate (``\ud800``-``\udfff``);
# and a NUL byte, which no UTF-8 JSON text holds (``json.loads`` reads UTF-16 too).
_NOT_PLAIN_MARKS = (b"\x00", b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4", b"\\ud", b"\\uD")


class _NotPlain(Exception):
    """Raised inside ``parse_plain`` by a float literal."""


def _refuse_float(text: str) -> Any:
    raise _NotPlain(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_plain(data: bytes) -> tuple[Any, bool]:
    """``data`` parsed as ``json.loads`` does (NaN and Infinity refused; a duplicate key
    is not: the caller compares bytes), and whether what was parsed is *plain* for sure
    (``_plain``), so that :func:`plain_bytes` gives its canonical bytes without a walk:
    no float literal, no integer of 16 digits or more, and no character beyond the Basic
    Multilingual Plane, neither as such nor escaped (``\\ud800``-``\\udfff``; a lone
    surrogate too). Any doubt says not plain (a backslash before ``ud`` in a string)."""
    big_int = False

    def parse_int(text: str) -> int:
        nonlocal big_int
        if len(text) > 15:
            big_int = True
        return int(text)

    try:
        value = json.loads(
            data, parse_constant=_no_constant, parse_float=_refuse_float, parse_int=parse_int
        )
    except _NotPlain:
        return json.loads(data, parse_constant=_no_constant), False
    plain = not big_int and not any(mark in data for mark in _NOT_PLAIN_MARKS)
    return value, plain


def plain_bytes(value: Any) -> bytes:
    """The canonical bytes of a value known to be plain (from :func:`parse_plain`), in
    one ``json.dumps`` without the walk ``canonical_bytes`` makes to find out."""
    try:
        return _PLAIN_ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: not valid Unicode text
        raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc


def canonical_sha256(value: Any) -> str:
    """Hex SHA-256 of the canonical bytes of ``value``."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def parse_json(data: bytes | str) -> Any:
    """Parse JSON strictly: no NaN/Infinity, duplicate keys refused."""

    def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, val in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = val
        return out

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except RecursionError:  # a peer's answer nested thousands deep: bad JSON, not a crash
        raise ValueError("JSON nested too deeply") from None
