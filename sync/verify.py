"""Checking a feed page and each of its items before anything is stored (DESIGN 8).

A page whose own signature, issuer, audience or cursor does not hold is refused whole:
the cursor stays where it was. Inside a good page each item is checked on its own
(schema, issuer equals the feed's origin, audience is us, signature by a key valid at
the item's ``ts``); a bad item is set aside with its reason and the rest go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from protocol.canonical import CanonicalizationError, canonical_bytes
from protocol.keys import VerifyKeyInfo
from protocol.objects import FeedPage, HubObject, ListingSummary, Retraction
from protocol.signing import SignatureError, verify_object
from sync.interfaces import RejectedItem, VerifiedItem

ITEM_MODELS: dict[str, type[ListingSummary] | type[Retraction] | type[HubObject]] = {
    "listing": ListingSummary,
    "retraction": Retraction,
    "custody_receipt": HubObject,
    "match_notice": HubObject,
    "eoi_forward": HubObject,
    "eoi_reply_forward": HubObject,
}


class PageError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedPage:
    page: dict[str, Any]
    items: list[VerifiedItem]
    rejected: list[RejectedItem]


def check_page(
    page: Any,
    *,
    peer: str,
    me: str,
    after: str | None,
    keys: Mapping[str, VerifyKeyInfo],
) -> CheckedPage:
    if not isinstance(page, dict):
        raise PageError("schema_invalid", "feed page is not a JSON object")
    page_items = page.get("items")
    if not isinstance(page_items, list):
        raise PageError("schema_invalid", "feed page: items must be a list")
    try:
        # Only the page's own shape here (and how many items); each item is judged on its
        # own below, so one malformed item is quarantined instead of sinking the page.
        FeedPage.model_validate({**page, "items": [{} for _ in page_items]})
    except ValidationError as exc:
        raise PageError("schema_invalid", f"feed page: {exc.errors()[0]['msg']}") from exc
    if page["issuer"] != peer:
        raise PageError("issuer_mismatch", f"page issued by {page['issuer']!r}, not {peer!r}")
    if page["audience"] != me:
        raise PageError("audience_mismatch", f"page is for {page['audience']!r}, not {me!r}")
    if page["after"] != after:
        raise PageError("cursor_mismatch", "page does not continue from the cursor we sent")
    try:
        verify_object(page, peer, keys)
    except SignatureError as exc:
        raise PageError(exc.code, f"page signature: {exc.message}") from exc
    items: list[VerifiedItem] = []
    rejected: list[RejectedItem] = []
    for obj in page_items:
        try:
            items.append(check_item(obj, peer=peer, me=me, keys=keys))
        except PageError as exc:
            rejected.append(RejectedItem(obj, exc.code, exc.message))
    return CheckedPage(page, items, rejected)


def check_item(obj: Any, *, peer: str, me: str, keys: Mapping[str, VerifyKeyInfo]) -> VerifiedItem:
    kind = obj.get("type") if isinstance(obj, dict) else None
    model = ITEM_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise PageError("schema_invalid", f"unknown item type {kind!r}")
    try:
        model.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PageError("schema_invalid", f"{kind} item: {where}: {err['msg']}") from exc
    if obj["issuer"] != peer:
        raise PageError("issuer_mismatch", f"item issued by {obj['issuer']!r} in {peer!r}'s feed")
    if obj["audience"] != me:
        raise PageError("audience_mismatch", f"item is for {obj['audience']!r}")
    try:
        key_name = verify_object(obj, peer, keys)
        canonical = canonical_bytes(obj)
    except SignatureError as exc:
        raise PageError(exc.code, exc.message) from exc
    except CanonicalizationError as exc:  # pragma: no cover - parse_json refuses these
        raise PageError("schema_invalid", str(exc)) from exc
    return VerifiedItem(obj, canonical, key_name)
