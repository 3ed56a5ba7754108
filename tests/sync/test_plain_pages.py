"""The reader makes each item's bytes with one ``json.dumps`` when ``parse_plain`` finds
the page plain; a page that is not (member names beyond the Basic Multilingual Plane,
whose order differs between ``sort_keys`` and RFC 8785) takes the member-by-member way,
and its items still verify and are stored as their canonical bytes."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from protocol.canonical import canonical_bytes
from protocol.signing import sign_object
from tests.federation.test_security import cursor, feed_page, held, node_key
from tests.federation.test_security import summary as make_summary
from tests.nodes import RunningNode
from tests.sync import test_page_bytes
from tests.sync.test_page_bytes import RawPeer

# The raw fake th and the hub that reads it, as in the page-bytes tests (fixtures, by name).
raw_th = test_page_bytes.raw_th
hub = test_page_bytes.hub


def summary(listing_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    obj = {k: v for k, v in make_summary(listing_id).items() if k != "signatures"}
    obj["listing"] = {**obj["listing"], "fields": {**obj["listing"]["fields"], **fields}}
    return sign_object(obj, "th", node_key("th"))


# Member names beyond the BMP where a view may hold names of its own: a title's languages.
ODD = {"title": {"en": "x", "\U0001f600 note": "x", "\ue000 note": "y", "th": "เครื่องอบแห้ง"}}


@pytest.mark.parametrize("escaped", [False, True])
async def test_items_beyond_the_bmp_verify_and_are_stored_canonical(
    hub: RunningNode, raw_th: RawPeer, escaped: bool
) -> None:
    solar = {"title": {"en": "Solar", "zh": "太阳能"}}
    items = [summary("th-off-0001", ODD), summary("th-off-0002", solar)]
    page = feed_page(items, after=None, next_cursor="c1")
    body = canonical_bytes(page)
    # The UTF-16 order RFC 8785 asks for puts the emoji's name first; sort_keys would not.
    assert body.index("\U0001f600".encode()) < body.index("\ue000".encode())
    raw_th.bodies[None] = json.dumps(page).encode() if escaped else body
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied == 2, run
    stored = held(hub)
    for item in items:
        assert stored[item["listing"]["id"]] == canonical_bytes(item).decode()
    assert cursor(hub) == "c1"


async def test_a_plain_page_altered_in_one_item_refuses_that_item(
    hub: RunningNode, raw_th: RawPeer
) -> None:
    good, bad = summary("th-off-0001", {}), summary("th-off-0002", {})
    bad = {**bad, "listing": {**bad["listing"], "version": 9}}  # its signature no longer holds
    page = feed_page([good, bad], after=None, next_cursor="c1")
    raw_th.bodies[None] = canonical_bytes(page)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied == 1 and run.rejected == 1, run
    assert sorted(held(hub)) == ["th-off-0001"]


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_collector_is_as_it_was_after_a_pull(
    hub: RunningNode, raw_th: RawPeer, enabled: bool
) -> None:
    raw_th.bodies[None] = canonical_bytes(
        feed_page([summary("th-off-0001", {})], after=None, next_cursor="c1")
    )
    was = gc.isenabled()
    if not enabled:
        gc.disable()
    try:
        run = await hub.sync.sync_peer("th", force=True)
        assert run is not None and run.error is None and run.applied == 1, run
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
