"""Outbox objects (match notices, custody receipts, forwarded EoIs) are stored as their
canonical JSON, the bytes a feed page carries: a page takes them as they are, not
parsed and serialised again (a notice's scores are floats, off ``json.dumps``'s fast
path: while members pulled their first notices, most of the hub's CPU). Rows queued
by an older version (``json.dumps`` text) are made canonical when sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services import feed
from node.services.feed import post_to_outbox
from node.storage.models import OutboxRow
from protocol.canonical import canonical_bytes
from tests.federation.network import NodeFactory

# Floats, non-ASCII text, keys out of order: json.dumps and RFC 8785 differ on each.
NOTICE: dict[str, Any] = {
    "type": "match_notice",
    "score": 0.1 + 0.2,
    "components": {"lexical": 1e-7, "codes": 1.0, "sector": 2.5e21},
    "explanation": 'ระบบ — sấy lúa \u2028 and a quote " too',
    "audience": "th",
}


async def test_a_page_carries_the_stored_bytes_without_serialising_them_again(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await node_factory("cn", is_hub=True)
    rt = hub.runtime
    objects = [{**NOTICE, "n": i, "score": i / 7} for i in range(5)]
    with Session(rt.engine) as session, session.begin():
        for obj in objects:
            post_to_outbox(session, "th", obj, rt.clock())
    with Session(rt.engine) as session:
        stored = session.scalars(select(OutboxRow.obj).order_by(OutboxRow.id)).all()
    assert stored == [canonical_bytes(obj).decode("utf-8") for obj in objects]

    calls = 0
    real = canonical_bytes

    def counting(value: Any) -> bytes:
        nonlocal calls
        calls += 1
        return real(value)

    monkeypatch.setattr(feed, "canonical_bytes", counting)
    page, body = rt.feed.signed_page("th", None, 1000)
    assert calls == 0  # none parsed or serialised again
    assert page["items"] == objects
    assert canonical_bytes(json.loads(body)) == body  # the page as signed: canonical
    assert rt.feed.signed_page("vn", None, 1000)[0]["items"] == []  # th's alone


async def test_an_object_queued_by_an_older_version_is_sent_canonical(
    node_factory: NodeFactory,
) -> None:
    """Rows queued before hold ``json.dumps`` text: the page makes those canonical (its
    signature holds at the reader), and takes a canonical row beside them as it is."""
    hub = await node_factory("cn", is_hub=True)
    rt = hub.runtime
    older = [{**NOTICE, "n": i} for i in range(3)]
    with Session(rt.engine) as session, session.begin():
        for obj in older:
            post_to_outbox(session, "th", obj, rt.clock())
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        rows[0].obj = json.dumps(older[0])  # as the older version stored it
        rows[2].obj = json.dumps(older[2], ensure_ascii=False)
    page, body = rt.feed.signed_page("th", None, 1000)
    assert page["items"] == older
    assert canonical_bytes(json.loads(body)) == body
