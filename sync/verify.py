"""Checking a feed page and each of its items before anything is stored (DESIGN 8).

A page whose own signature, issuer, audience or cursor does not hold is refused whole:
the cursor stays where it was. Inside a good page each item is checked on its own
(who may issue its type through this feed, schema, issuer equals the feed's origin,
audience is us, signature by a key valid at the item's ``ts``); a bad item is set aside
with its reason and the rest go on. The two steps are apart (``open_page``, then
``check_items``) so that a reader can ask for the next page once this one's own
signature holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from protocol.authority import HUB_ONLY_TYPES, feed_item_rule
from protocol.canonical import (
    CanonicalizationError,
    array_bytes,
    canonical_bytes,
    join_members,
    member_bytes,
    plain_bytes,
)
from protocol.errors import ErrorCode, ProtocolError
from protocol.hub_objects import counterpart_category
from protocol.keys import VerifyKeyInfo
from protocol.limits import MAX_ITEM_BYTES
from protocol.objects import FeedPage
from protocol.safe_json import NUL_MESSAGE, holds_nul
from protocol.signing import SignatureError, verify_object
from protocol.view_schema import check_view_fields
from sync.interfaces import RejectedItem, VerifiedItem


class PageError(ProtocolError):
    """A page, or one item of it, does not hold; ``code`` names why."""


@dataclass(frozen=True)
class CheckedPage:
    page: dict[str, Any]
    items: list[VerifiedItem]
    rejected: list[RejectedItem]


# An item's signing payload (its canonical bytes without ``signatures``) and its own
# canonical bytes (what the store keeps).
ItemBytes = tuple[bytes, bytes]


@dataclass(frozen=True)
class OpenedPage:
    """A page whose own signature holds; its items are not judged yet. ``item_bytes``:
    each object item's ``ItemBytes`` (None for an item that is no object).
    ``canonical``: the page's canonical bytes (what its owner sends, when the page is as
    parsed)."""

    page: dict[str, Any]
    item_bytes: list[ItemBytes | None]
    canonical: bytes = b""


def _item_bytes(obj: dict[str, Any]) -> ItemBytes:
    parts = member_bytes(obj)
    return join_members(parts, omit="signatures"), join_members(parts)


_SIGNATURES = b'"signatures":'


def _plain_item_bytes(obj: dict[str, Any]) -> ItemBytes:
    """``_item_bytes`` of a plain item, in one ``json.dumps`` of it: its signing payload
    is its canonical bytes less the ``signatures`` member, cut out at the place where the
    sizes of that member and of the members after it (both small, serialised apart)
    put it, since ``plain_bytes`` joins the sorted members as they are."""
    canonical = plain_bytes(obj)
    if "signatures" not in obj:
        return canonical, canonical
    after = {k: v for k, v in obj.items() if k > "signatures"}  # the order sort_keys uses
    rest = plain_bytes(after)  # b"{...}": the members after ``signatures``
    tail = _SIGNATURES + plain_bytes(obj["signatures"]) + (b"," + rest[1:] if after else b"}")
    cut = len(canonical) - len(tail)
    if cut < 1 or canonical[cut:] != tail:  # pragma: no cover - plain_bytes sorts members
        return _item_bytes(obj)
    head = canonical[:cut]  # b"{", or b"{" and the members before, and a comma
    if head == b"{":
        return rest, canonical
    return head[:-1] + (b"," + rest[1:] if after else b"}"), canonical


def all_item_bytes(
    page_items: list[Any], plain: bool
) -> tuple[list[ItemBytes | None], list[bytes]]:
    """Each item's ``ItemBytes``, and each item's canonical bytes (an item that is no
    object has only these)."""
    if plain:
        try:
            signed = [_plain_item_bytes(o) if isinstance(o, dict) else None for o in page_items]
            whole = [
                b[1] if b is not None else plain_bytes(o)
                for b, o in zip(signed, page_items, strict=True)
            ]
            return signed, whole
        except CanonicalizationError:  # a lone surrogate: refused below, in the same words
            pass
    signed = [_item_bytes(o) if isinstance(o, dict) else None for o in page_items]
    whole = [
        b[1] if b is not None else canonical_bytes(o)
        for b, o in zip(signed, page_items, strict=True)
    ]
    return signed, whole


def _page_checks(page: Any, *, peer: str, me: str, after: str | None) -> list[Any]:
    """A page's own shape, issuer, audience and cursor; its items (not judged yet)."""
    if not isinstance(page, dict):
        raise PageError(ErrorCode.SCHEMA_INVALID, "feed page is not a JSON object")
    page_items = page.get("items")
    if not isinstance(page_items, list):
        raise PageError(ErrorCode.SCHEMA_INVALID, "feed page: items must be a list")
    try:
        # Only the page's own shape here (and how many items); each item is judged on its
        # own later, so one malformed item is quarantined instead of sinking the page.
        FeedPage.model_validate({**page, "items": [{} for _ in page_items]})
    except ValidationError as exc:
        raise PageError(ErrorCode.SCHEMA_INVALID, f"feed page: {exc.errors()[0]['msg']}") from exc
    if page["issuer"] != peer:
        raise PageError(
            ErrorCode.ISSUER_MISMATCH, f"page issued by {page['issuer']!r}, not {peer!r}"
        )
    if page["audience"] != me:
        raise PageError(
            ErrorCode.AUDIENCE_MISMATCH, f"page is for {page['audience']!r}, not {me!r}"
        )
    if page["after"] != after:
        raise PageError(ErrorCode.CURSOR_MISMATCH, "page does not continue from the cursor we sent")
    return page_items


def page_members(page: Mapping[str, Any]) -> dict[str, Any]:
    """The page's own members: all but its items."""
    return {k: v for k, v in page.items() if k != "items"}


def _verify_page(
    page: dict[str, Any], peer: str, keys: Mapping[str, VerifyKeyInfo], parts: dict[str, bytes]
) -> None:
    try:
        verify_object(page, peer, keys, parts=parts)
    except SignatureError as exc:
        raise PageError(exc.code, f"page signature: {exc.message}") from exc


def open_page(
    page: Any,
    *,
    peer: str,
    me: str,
    after: str | None,
    keys: Mapping[str, VerifyKeyInfo],
    plain: bool = False,
) -> OpenedPage:
    """The page's own checks: shape, issuer, audience, cursor, signature. ``plain``: the
    page was parsed by ``protocol.canonical.parse_plain``, which found it plain: its
    items' bytes are then made by one ``json.dumps`` each (``plain_bytes``)."""
    page_items = _page_checks(page, peer=peer, me=me, after=after)
    # Each item is serialised once: its bytes make up the page's signed bytes, give its
    # own signing payload, and are what the store keeps.
    try:
        page_parts = member_bytes(page_members(page))
        item_bytes, whole = all_item_bytes(page_items, plain)
    except CanonicalizationError as exc:  # pragma: no cover - parse_json refuses these
        raise PageError(ErrorCode.SCHEMA_INVALID, f"feed page: {exc}") from exc
    page_parts["items"] = b'"items":' + array_bytes(whole)
    _verify_page(page, peer, keys, page_parts)
    return OpenedPage(page, item_bytes, join_members(page_parts))


# Where a page's items go in its canonical bytes while they are left out: NUL, which
# canonical JSON never holds as such (a string escapes it).
_ITEMS_MARK = b"\x00"


def page_signature_holds(
    page: Any,
    body: bytes,
    *,
    peer: str,
    me: str,
    after: str | None,
    keys: Mapping[str, VerifyKeyInfo],
) -> bool:
    """``open_page``'s checks of the page parsed from ``body``, its signature checked
    over ``body``'s own bytes for its items, without making the items' bytes: True when
    they all hold, PageError when one fails, False when ``body`` is not laid out as the
    page's canonical bytes around its items (then only ``open_page`` can tell).

    This says only that the page's owner signed these bytes, so that the next page may
    be asked for; the page is acted on after ``open_page`` and ``check_items`` (which
    also make sure the items are in their canonical form)."""
    _page_checks(page, peer=peer, me=me, after=after)
    try:
        parts = member_bytes(page_members(page))
    except CanonicalizationError:  # pragma: no cover - parse_json refuses these
        return False
    parts["items"] = b'"items":' + _ITEMS_MARK
    head, _, tail = join_members(parts).partition(_ITEMS_MARK)
    if len(body) < len(head) + len(tail) + 2 or not (body.startswith(head) and body.endswith(tail)):
        return False
    parts["items"] = b'"items":' + body[len(head) : len(body) - len(tail)]
    _verify_page(page, peer, keys, parts)
    return True


def check_items(
    opened: OpenedPage,
    *,
    peer: str,
    me: str,
    keys: Mapping[str, VerifyKeyInfo],
    hub: str | None = None,
) -> CheckedPage:
    """Each item of an opened page on its own: the good ones, and the rest with why.
    ``hub``: the hub's node id as this reader knows it (None: no node is)."""
    items: list[VerifiedItem] = []
    rejected: list[RejectedItem] = []
    for obj, signed in zip(opened.page["items"], opened.item_bytes, strict=True):
        try:
            items.append(check_item(obj, peer=peer, me=me, keys=keys, signed=signed, hub=hub))
        except PageError as exc:
            rejected.append(RejectedItem(obj, exc.code, exc.message))
    return CheckedPage(opened.page, items, rejected)


def check_item(
    obj: Any,
    *,
    peer: str,
    me: str,
    keys: Mapping[str, VerifyKeyInfo],
    signed: ItemBytes | None = None,
    hub: str | None = None,
) -> VerifiedItem:
    """One item: who may say it (``protocol.authority``), schema, issuer, audience,
    signature. ``signed``: its ``ItemBytes`` (from ``open_page``); ``hub``: as for
    ``check_items``."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    rule = feed_item_rule(kind)
    if rule is None:
        raise PageError(ErrorCode.SCHEMA_INVALID, f"unknown item type {kind!r}")
    if kind in HUB_ONLY_TYPES and (hub is None or peer != hub):
        raise PageError(
            ErrorCode.NOT_THE_HUB,
            f"only the hub issues {kind}; this one came in the feed of {peer!r}",
        )
    if signed is None:
        try:
            signed = _item_bytes(obj)
        except CanonicalizationError as exc:  # pragma: no cover - parse_json refuses these
            raise PageError(ErrorCode.SCHEMA_INVALID, str(exc)) from exc
    if len(signed[1]) > MAX_ITEM_BYTES:  # a page may be larger than an item ever is
        raise PageError(
            ErrorCode.OBJECT_TOO_LARGE,
            f"{kind} item of {len(signed[1])} bytes; a feed item is at most {MAX_ITEM_BYTES}",
        )
    try:
        rule.model.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PageError(ErrorCode.SCHEMA_INVALID, f"{kind} item: {where}: {err['msg']}") from exc
    if kind == "listing":
        _check_views(obj["listing"])
    elif kind == "match_notice":
        _check_relayed(obj)
    if obj["issuer"] != peer:
        raise PageError(
            ErrorCode.ISSUER_MISMATCH, f"item issued by {obj['issuer']!r} in {peer!r}'s feed"
        )
    if obj["audience"] != me:
        raise PageError(ErrorCode.AUDIENCE_MISMATCH, f"item is for {obj['audience']!r}")
    payload, canonical = signed
    try:
        key_name = verify_object(obj, peer, keys, payload=payload)
    except SignatureError as exc:
        raise PageError(exc.code, exc.message) from exc
    # Canonical JSON writes NUL as \u0000: the walk only when those bytes are there.
    if b"\\u0000" in canonical and holds_nul(obj):
        raise PageError(ErrorCode.SCHEMA_INVALID, f"{kind} item: {NUL_MESSAGE}")
    return VerifiedItem(obj, canonical, key_name)


def _check_views(listing: dict[str, Any]) -> None:
    """The summary's fields, and its public view's, have the listing's types."""
    views = [("", listing["fields"])]
    if listing.get("public_view") is not None:
        views.append(("public_view.", listing["public_view"]["fields"]))
    for where, fields in views:
        try:
            check_view_fields(listing["category"], fields)
        except ValueError as exc:
            raise PageError(ErrorCode.SCHEMA_INVALID, f"listing item: {where}{exc}") from exc


def _check_relayed(notice: dict[str, Any]) -> None:
    """A match notice's relayed fields of its counterpart have that listing's types (a
    member's console shows them)."""
    counterpart = notice["counterpart"]
    category = counterpart_category(notice["own_listing"]["role"], counterpart["kind"])
    try:
        check_view_fields(category, counterpart.get("fields", {}))
    except ValueError as exc:
        raise PageError(ErrorCode.SCHEMA_INVALID, f"match_notice item: counterpart.{exc}") from exc
