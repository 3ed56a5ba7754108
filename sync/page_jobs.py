"""A feed page read in worker processes from its bytes: its own signature, then all of it.

While a node pulls a long feed, parsing each page, making its items' canonical bytes and
checking the page's signature cost as much as checking the items themselves; done in the
node's own process, they hold the interpreter's lock that the node's request handlers
need. ``sync.verify_pool`` therefore sends each page's bytes to its workers, as two jobs
that start together: ``open_body`` says soon whether the page's own signature holds (over
the bytes as sent: no item is serialised for it), so that the reader asks for the next
page; ``read_body`` reads the page whole, as the reader would in its own process
(``open_page``, then ``check_items``). While one worker reads a page, another reads the
next: pages, not parts of one, are what the workers share. Only the bytes travel there,
and back only what the node keeps of each item.

Both jobs answer None for anything they cannot vouch for (bytes that do not parse, a page
that does not hold, a key missing): the reader then reads that page in its own process,
where the error is raised in the reader's own words. So the workers never accept what the
reader's own path would refuse: they run the same functions on the same bytes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from typing import Any

from protocol.canonical import parse_json, parse_plain
from protocol.keys import VerifyKeyInfo
from sync.verify import (
    OpenedPage,
    PageError,
    check_item,
    open_page,
    page_members,
    page_signature_holds,
)

# One item's outcome, in page order: (item, True, its canonical bytes, the key that signed
# it) or (item, False, error code, message).
Judged = tuple[Any, bool, Any, str]


def _parsed(body: bytes, page_size: int) -> tuple[dict[str, Any], bool] | None:
    """The page in ``body`` and whether it is plain (``parse_plain``), when it parses as
    an object with a list of at most ``page_size`` items."""
    try:
        page, plain = parse_plain(body)
    except (ValueError, RecursionError):
        return None
    items = page.get("items") if isinstance(page, dict) else None
    if not isinstance(items, list) or len(items) > page_size:
        return None
    return page, plain


def _opened(
    page: dict[str, Any],
    body: bytes,
    plain: bool,
    *,
    peer: str,
    me: str,
    after: str | None,
    keys: Mapping[str, VerifyKeyInfo],
) -> OpenedPage | None:
    """``open_page`` of the page parsed from ``body``, which, when ``body`` is not its
    owner's canonical bytes, is parsed strictly too (so that a duplicate key is refused);
    None when either does not hold."""
    try:
        opened = open_page(page, peer=peer, me=me, after=after, keys=keys, plain=plain)
    except PageError:
        return None
    if opened.canonical != body:
        try:
            parse_json(body)
        except (ValueError, UnicodeDecodeError):
            return None
    return opened


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
    than ``page_size`` items and its own checks and signature hold; else None. The
    signature is checked over the bytes as sent (``page_signature_holds``), or, for
    bytes not laid out canonically, as ``open_page`` does (parsed strictly then, so that
    a duplicate key is refused)."""
    parsed = _parsed(body, page_size)
    if parsed is None:
        return None
    page, plain = parsed
    try:
        holds = page_signature_holds(page, body, peer=peer, me=me, after=after, keys=keys)
    except PageError:
        return None
    if not holds and _opened(page, body, plain, peer=peer, me=me, after=after, keys=keys) is None:
        return None
    return page_members(page)


def read_body(
    body: bytes,
    *,
    peer: str,
    me: str,
    after: str | None,
    keys: Mapping[str, VerifyKeyInfo],
    hub: str | None,
    page_size: int,
) -> tuple[dict[str, Any], list[Judged]] | None:
    """The page whole, as ``open_body`` takes it and with each item checked on its own
    (``sync.verify.check_item``): its own members and its items' outcomes; None when
    ``open_body`` would say None."""
    parsed = _parsed(body, page_size)
    if parsed is None:
        return None
    page, plain = parsed
    opened = _opened(page, body, plain, peer=peer, me=me, after=after, keys=keys)
    if opened is None:
        return None
    out: list[Judged] = []
    for obj, signed in zip(page["items"], opened.item_bytes, strict=True):
        try:
            item = check_item(obj, peer=peer, me=me, keys=keys, signed=signed, hub=hub)
        except PageError as exc:
            out.append((obj, False, exc.code, exc.message))
            continue
        out.append((obj, True, item.canonical, item.key_name))
    return page_members(page), out


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a page is read: the tens of thousands of
    dicts and lists a page makes, all alive, would otherwise be traversed by collection
    after collection as they are made (a few per cent of the reader's CPU, a sixth of a
    worker's job; JSON makes no cycles, and any a job leaves is collected after it). It
    is back on afterwards, unless it was off before (as an import turns it off:
    ``node.services.listings``)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def open_body_kw(body: bytes, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    with gc_paused():
        return open_body(body, **kwargs)


def read_body_kw(body: bytes, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[Judged]] | None:
    with gc_paused():
        return read_body(body, **kwargs)
