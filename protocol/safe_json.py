"""Bounded JSON parsing for input from outside: bodies, import lines, peer documents.

``json.loads`` alone turns hostile input into crashes rather than answers: 100,000 nested
brackets raise ``RecursionError``, a 5,000-digit integer raises a bare ``ValueError`` (and
a shorter one costs quadratic time to convert), ``1e400`` becomes infinity, bytes in
UTF-16 are decoded silently, and ``"\\ud800"`` yields a string that cannot be encoded
again. ``loads`` refuses all of these, and duplicate keys and NaN, with one typed error
(``JsonInputError``, a ``ValueError``) whose message says what is wrong, so every caller
answers 400/422 or names the bad line instead of failing.

What it accepts may still hold integers beyond +-2**53, which RFC 8785 (and so signing)
refuses: models bound those per field, so the error names the field.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NUMBER_LENGTH", "JsonInputError", "loads"]

MAX_DEPTH = 64
"""Arrays and objects nested deeper than this are refused (a listing needs 3)."""
MAX_NUMBER_LENGTH = 64
"""Characters of one number literal (sign, digits, fraction and exponent)."""


class JsonInputError(ValueError):
    """The input is not JSON this node accepts; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def loads(
    data: bytes | bytearray | str,
    *,
    max_depth: int = MAX_DEPTH,
    max_number_length: int = MAX_NUMBER_LENGTH,
) -> Any:
    """Parse one JSON text strictly and within bounds; raise ``JsonInputError`` if not.

    Bytes must be UTF-8 (no other encoding is guessed). Refused: nesting deeper than
    ``max_depth``, a number literal longer than ``max_number_length`` characters, a
    number that is not finite as a float, NaN/Infinity, duplicate object keys, lone
    surrogates (``"\\ud800"``), control characters inside strings, and NUL escaped
    (``"\\u0000"``).
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(
                f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}"
            ) from None
    else:
        text = data

    def parse_int(literal: str) -> int:
        if len(literal) > max_number_length:
            raise JsonInputError(
                f"a number has {len(literal)} characters; at most {max_number_length} allowed"
            )
        return int(literal)

    def parse_float(literal: str) -> float:
        if len(literal) > max_number_length:
            raise JsonInputError(
                f"a number has {len(literal)} characters; at most {max_number_length} allowed"
            )
        value = float(literal)
        if not math.isfinite(value):
            raise JsonInputError(f"number {literal} is out of range")
        return value

    def parse_constant(name: str) -> Any:
        raise JsonInputError(f"{name} is not valid JSON")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise JsonInputError(f"duplicate key {key!r}")
                seen.add(key)
        return out

    try:
        value = json.loads(
            text,
            object_pairs_hook=pairs,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=parse_constant,
        )
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # anything else json refuses
        raise JsonInputError(str(exc)) from None
    _check_tree(value, max_depth)
    if "\\u0000" in text and holds_nul(value):
        raise JsonInputError(NUL_MESSAGE)
    return value


# JSON can carry NUL (escaped); PostgreSQL's text cannot, and no field of ours has a use
# for it: a listing with one answered 500 on a node on PostgreSQL.
NUL_MESSAGE = "a string holds the NUL character (\\u0000), which no text may"


def holds_nul(value: Any) -> bool:
    """Whether a string of ``value`` (keys included, at any depth) holds NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if "\x00" in item:
                return True
        elif type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def _check_tree(value: Any, max_depth: int) -> None:
    """Depth and text checks the parser does not make, without recursion."""
    if isinstance(value, str):
        _check_text(value)
        return
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise JsonInputError(f"nested deeper than {max_depth} levels")
        if type(item) is dict:
            for key in item:
                if not key.isascii():
                    _check_text(key)
            children = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is str:
                if not child.isascii():
                    _check_text(child)
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError("a string holds a lone surrogate (not Unicode text)") from None
