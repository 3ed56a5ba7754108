"""The one place that turns JSON values into bytes to sign: RFC 8785 (JCS), UTF-8.

Never sign ``model_dump_json()`` or ``json.dumps(sort_keys=True)`` output: both differ from
RFC 8785 on numbers and key order. Everything signed or hashed goes through here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

__all__ = ["canonical_bytes", "canonical_sha256", "parse_json"]


class CanonicalizationError(ValueError):
    """A value cannot be represented in RFC 8785 (NaN, huge integer, non-string key...)."""


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of a JSON value."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(str(exc)) from exc


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

    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
