"""Signed listing summaries: the exact object an audience receives (DESIGN 6.1)."""

from __future__ import annotations

from typing import Any

from node.services.signable import signable_view
from protocol import PROTOCOL_VERSION
from protocol.canonical import CanonicalizationError
from protocol.keys import NodeKey
from protocol.signing import sign_object_bytes


def envelope(view: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The view as sent: it also says whether the listing is public (for public search)."""
    return {**view, "public": record.get("visibility") == "public"}


def signed_summary(
    *,
    issuer: str,
    audience: str,
    view: dict[str, Any],
    policy_version: int,
    key: NodeKey,
    now_ms: int,
    relay: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The signed summary, and its canonical bytes (serialised once, as the feed sends
    them)."""
    policy: dict[str, Any] = {"version": policy_version}
    if relay:
        policy["relay"] = relay
    obj = {
        "type": "listing",
        "v": PROTOCOL_VERSION,
        "issuer": issuer,
        "ts": now_ms,
        "audience": audience,
        "listing": view,
        "policy": policy,
    }
    try:
        return sign_object_bytes(obj, issuer, key)
    except CanonicalizationError:  # a value stored before input was bounded
        obj["listing"] = signable_view(view)
        return sign_object_bytes(obj, issuer, key)


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
) -> tuple[dict[str, Any], bytes]:
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
    # The retraction, signed, and its canonical bytes.
    return sign_object_bytes(obj, issuer, key)
