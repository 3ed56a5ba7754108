"""Signed listing summaries: the exact object an audience receives (DESIGN 6.1)."""

from __future__ import annotations

from typing import Any

from protocol import PROTOCOL_VERSION
from protocol.keys import NodeKey
from protocol.signing import sign_object


def signed_summary(
    *,
    issuer: str,
    audience: str,
    view: dict[str, Any],
    policy_version: int,
    key: NodeKey,
    now_ms: int,
) -> dict[str, Any]:
    obj = {
        "type": "listing",
        "v": PROTOCOL_VERSION,
        "issuer": issuer,
        "ts": now_ms,
        "audience": audience,
        "listing": view,
        "policy": {"version": policy_version},
    }
    return sign_object(obj, issuer, key)


def signed_retraction(
    *,
    issuer: str,
    audience: str,
    listing_id: str,
    category: str,
    version: int,
    reason: str,
    key: NodeKey,
    now_ms: int,
) -> dict[str, Any]:
    obj = {
        "type": "retraction",
        "v": PROTOCOL_VERSION,
        "issuer": issuer,
        "ts": now_ms,
        "audience": audience,
        "listing_id": listing_id,
        "category": category,
        "version": version,
        "reason": reason,
    }
    return sign_object(obj, issuer, key)
