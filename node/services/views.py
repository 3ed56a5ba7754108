"""Signed listing summaries: the exact object an audience receives (DESIGN 6.1).

A summary for the hub also carries, under ``listing.public_view``, the owner's view of
the listing for the public audience ``*`` (its fields and rights), when its policy has
one: the hub shows that, and only that, in public search and on any public page. The
owner decides what the public sees with its ``*`` rules; the hub's own, wider view never
reaches a stranger (docs/protocol-notes.md, "What the public sees").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.services.signable import signable_view
from policies.compiled import CompiledPolicy
from policies.evaluate import evaluate
from policies.model import STAR, Audience
from protocol.canonical import CanonicalizationError
from protocol.keys import NodeKey
from protocol.objects import (
    listing_summary_body,
    policy_ref_body,
    public_view_body,
    retraction_body,
)
from protocol.signing import sign_object_bytes

PUBLIC = Audience(STAR, frozenset(), member=False)
"""The public: anyone, through the hub's public search. No group, not a member, so only
``public`` listings under a ``*`` rule reach it."""


def envelope(
    view: dict[str, Any], record: Mapping[str, Any], public: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The view as sent (a ``protocol.objects.SummaryListing``): it also says whether the
    listing is public, and carries the owner's public view (``public_view``) when one is
    given."""
    out = {**view, "public": record.get("visibility") == "public"}
    if public is not None:
        out["public_view"] = public_view_body(public["fields"], public["rights"])
    return out


def public_view(
    record: Mapping[str, Any], compiled: CompiledPolicy, now_ms: int, *, withdrawn: bool = False
) -> dict[str, Any] | None:
    """The owner's view of ``record`` for the public (``*``), or None when it has none."""
    if record.get("visibility") != "public":
        return None
    return evaluate(record, PUBLIC, compiled, now_ms, withdrawn=withdrawn).view


def reader_envelope(
    view: dict[str, Any],
    record: Mapping[str, Any],
    *,
    reader: str,
    hub_id: str,
    compiled: CompiledPolicy,
    now_ms: int,
) -> dict[str, Any]:
    """``envelope`` for ``reader``: the hub's copy also carries the public view, which it
    shows to strangers; no other reader needs it, so no other reader gets it."""
    public = public_view(record, compiled, now_ms) if reader == hub_id else None
    return envelope(view, record, public)


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
    obj = listing_summary_body(
        issuer=issuer,
        audience=audience,
        ts=now_ms,
        listing=view,
        policy=policy_ref_body(policy_version, relay),
    )
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
    """The retraction, signed, and its canonical bytes."""
    obj = retraction_body(
        issuer=issuer,
        audience=audience,
        ts=now_ms,
        listing_id=listing_id,
        category=category,
        version=version,
        reason=reason,
    )
    return sign_object_bytes(obj, issuer, key)
