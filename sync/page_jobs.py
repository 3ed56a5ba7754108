"""A feed page read in worker processes from its bytes: parsed, opened, its items checked.

While a node pulls a long feed, parsing each page, making its items' canonical bytes and
checking the page's signature cost as much as checking the items themselves; done in the
node's own process, they hold the interpreter's lock that the node's request handlers
need. ``sync.verify_pool`` therefore sends the page's bytes to its workers: one opens the
page (``open_body``), the others each check a share of its items (``check_body``); every
job parses the bytes itself, so only the bytes travel there, and back only what the
node keeps of each item.

Both jobs answer None for anything they cannot vouch for (bytes that do not parse, a page
that does not hold, a key missing): the reader then reads that page in its own process,
where the error is raised in the reader's own words. So the workers never accept what the
reader's own path would refuse: they run the same functions on the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.canonical import CanonicalizationError, parse_json, parse_plain
from protocol.keys import VerifyKeyInfo
from sync.verify import PageError, all_item_bytes, check_item, open_page

# One item's outcome, in page order by its index: (index, item, True, its canonical
# bytes, the key that signed it) or (index, item, False, error code, message).
Judged = tuple[int, Any, bool, Any, str]


def _parsed(body: bytes) -> tuple[dict[str, Any], list[Any], bool] | None:
    try:
        page, plain = parse_plain(body)
    except (ValueError, RecursionError):
        return None
    items = page.get("items") if isinstance(page, dict) else None
    return (page, items, plain) if isinstance(items, list) else None


def open_body(
    body: bytes,
    *,
    peer: str,
    me: str,
    after: str | None,
    keys: Mapping[str, VerifyKeyInfo],
    page_size: int,
) -> dict[str, Any] | None:
    """The page's own members (its items left out) when its bytes parse, it has no more
    than ``page_size`` items and it holds (``sync.verify.open_page``), with no duplicate
    key in it; else None."""
    parsed = _parsed(body)
    if parsed is None or len(parsed[1]) > page_size:
        return None
    page, _, plain = parsed
    try:
        opened = open_page(page, peer=peer, me=me, after=after, keys=keys, plain=plain)
    except PageError:
        return None
    if opened.canonical != body:  # not as its owner sends it: parsed strictly
        try:
            parse_json(body)
        except (ValueError, UnicodeDecodeError):
            return None
    return {k: v for k, v in page.items() if k != "items"}


def check_body(
    body: bytes,
    part: int,
    parts: int,
    *,
    peer: str,
    me: str,
    keys: Mapping[str, VerifyKeyInfo],
    hub: str | None,
) -> list[Judged] | None:
    """Share ``part`` of ``parts`` of the page's items, each checked on its own
    (``sync.verify.check_item``); None when the bytes do not parse as a page."""
    parsed = _parsed(body)
    if parsed is None:
        return None
    _, items, plain = parsed
    size = -(-len(items) // parts)
    start = part * size
    chunk = items[start : start + size]
    try:
        signed, _ = all_item_bytes(chunk, plain)
    except CanonicalizationError:
        return None
    out: list[Judged] = []
    for i, (obj, b) in enumerate(zip(chunk, signed, strict=True), start=start):
        try:
            item = check_item(obj, peer=peer, me=me, keys=keys, signed=b, hub=hub)
        except PageError as exc:
            out.append((i, obj, False, exc.code, exc.message))
            continue
        out.append((i, obj, True, item.canonical, item.key_name))
    return out


def open_body_kw(body: bytes, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    return open_body(body, **kwargs)


def check_body_kw(
    body: bytes, part: int, parts: int, kwargs: dict[str, Any]
) -> list[Judged] | None:
    return check_body(body, part, parts, **kwargs)
