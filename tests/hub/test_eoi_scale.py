"""Expressions of interest at scale (issue 12/10): an owner with thousands of received
interests reads only what is new in its inbox, once, even when two readers (a page and
``cattc eoi list``) run at once; the hub decides "was the sender named in a notice for
this listing" by an index, however many notices that member was sent.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from node.console.eois import inbox
from node.hub import eoi as eois
from node.hub import eoi_inbox as inbox_module
from node.hub.eoi_gate import may_know
from node.hub.eoi_inbox import MARK_KEY
from node.services.feed import post_to_outbox
from node.storage.db import make_engine
from node.storage.models import (
    EoiRow,
    InboxRow,
    MetaRow,
    NoticeNamedRow,
    NoticeSentRow,
    OutboxRow,
)
from protocol import PROTOCOL_VERSION
from protocol.canonical import canonical_bytes
from protocol.signing import sign_object
from tests.conftest import DatabaseUrlFactory
from tests.federation.network import Network, NodeFactory
from tests.migrating import upgrade_to
from tests.nodes import RunningNode
from tests.security.eoi_net import eoi_network, eoi_obj, reply_obj

LISTING = "th-off-0001"


def _hub_signed(net: Network, obj: dict[str, Any]) -> dict[str, Any]:
    rt = net.hub.runtime
    return sign_object(obj, rt.node_id, rt.keys.active)


def _forward(net: Network, eoi: dict[str, Any], audience: str) -> dict[str, Any]:
    obj = {
        "type": "eoi_forward",
        "v": PROTOCOL_VERSION,
        "issuer": "cn",
        "ts": net.hub.runtime.clock(),
        "audience": audience,
        "eoi": eoi,
    }
    return _hub_signed(net, obj)


def _reply_forward(net: Network, reply: dict[str, Any], audience: str) -> dict[str, Any]:
    obj = {
        "type": "eoi_reply_forward",
        "v": PROTOCOL_VERSION,
        "issuer": "cn",
        "ts": net.hub.runtime.clock(),
        "audience": audience,
        "reply": reply,
    }
    return _hub_signed(net, obj)


def _store(node: RunningNode, objs: list[dict[str, Any]]) -> None:
    """Put ``objs`` in ``node``'s inbox as a pull of the hub's feed stores them."""
    now = node.runtime.clock()
    rows = [
        {
            "origin": "cn",
            "type": o["type"],
            "received_at": now,
            "obj": canonical_bytes(o).decode("utf-8"),
        }
        for o in objs
    ]
    with Session(node.runtime.engine) as session, session.begin():
        session.execute(insert(InboxRow), rows)


def _forwards(net: Network, n: int, start: int = 0) -> list[dict[str, Any]]:
    vn = net.nodes["vn"]
    return [
        _forward(net, eoi_obj(vn, "th", LISTING, f"Interest number {i}."), "th")
        for i in range(start, start + n)
    ]


def _states(node: RunningNode) -> dict[str, tuple[str, str | None]]:
    with Session(node.runtime.engine) as session:
        return {r.id: (r.state, r.reply_obj) for r in session.scalars(select(EoiRow))}


async def _owner(node_factory: NodeFactory) -> Network:
    net = await eoi_network(node_factory)
    await net.nodes["th"].sync.refresh_directory()  # th learns vn's key
    await net.nodes["vn"].sync.refresh_directory()
    return net


async def test_two_thousand_forwards_are_read_once(node_factory: NodeFactory) -> None:
    net = await _owner(node_factory)
    th = net.nodes["th"]
    _store(th, _forwards(net, 2000))
    assert eois.absorb_inbox(th.runtime) == 2000
    states = _states(th)
    assert len(states) == 2000 and {s for s, _ in states.values()} == {"forwarded"}
    assert eois.absorb_inbox(th.runtime) == 0  # nothing new: nothing read
    [extra] = _forwards(net, 1, start=2000)
    _store(th, [extra])
    assert eois.absorb_inbox(th.runtime) == 1
    assert extra["eoi"]["id"] in _states(th)
    incoming, _ = inbox(th.runtime)
    assert incoming.pages == 41 and len(incoming.items) == 50


async def test_concurrent_absorbs_agree_and_apply_once(node_factory: NodeFactory) -> None:
    """Rounds of new forwards (for th) and replies (for vn: an acceptance, then a
    refusal of the same interest), each round absorbed by four threads at once: no error,
    every row read exactly once, and the first answer kept."""
    net = await _owner(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    read = {"th": 0, "vn": 0}
    errors: list[BaseException] = []
    lock = threading.Lock()
    mine = []
    for rnd in range(4):
        _store(th, _forwards(net, 60, start=rnd * 60))
        replies = []
        for _ in range(15):
            eoi = eois.new_eoi(vn.runtime, "th", LISTING, "Interested.")
            eois.mark(vn.runtime, eoi["id"], "forwarded")
            mine.append(eoi["id"])
            for decision in ("accepted", "declined"):
                replies.append(_reply_forward(net, reply_obj(th, eoi["id"], decision), "vn"))
        _store(vn, replies)
        barrier = threading.Barrier(8)

        def run(node: RunningNode, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait(timeout=30)
                n = eois.absorb_inbox(node.runtime)
                with lock:
                    read[node.node_id] += n
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in (th, vn) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert read == {"th": 60 * (rnd + 1), "vn": 30 * (rnd + 1)}
    received = _states(th)
    assert len(received) == 240 and {s for s, _ in received.values()} == {"forwarded"}
    answered = _states(vn)
    for eoi_id in mine:
        state, reply = answered[eoi_id]
        assert state == "accepted" and reply is not None
        assert json.loads(reply)["decision"] == "accepted"


async def test_a_large_inbox_is_read_a_batch_a_transaction(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All of the inbox in one transaction: 100,000 forwards from a hostile hub took 51 s
    and 2.5 GB, holding the database's write lock (a peer's feed request answered 500).
    Read a batch at a time, everything is still taken once, and a forward kept for
    another try is tried again in the next call's first batch, not lost behind the mark."""
    monkeypatch.setattr(inbox_module, "ABSORB_BATCH", 7)
    net = await eoi_network(node_factory)  # th does not know vn's key yet
    th = net.nodes["th"]
    _store(th, _forwards(net, 21))
    assert eois.absorb_inbox(th.runtime) == 21  # three batches, each kept for another try
    assert _states(th) == {}
    await th.sync.refresh_directory()
    _store(th, _forwards(net, 9, 21))
    assert eois.absorb_inbox(th.runtime) == 30  # the 21 kept, and the nine new
    states = _states(th)
    assert len(states) == 30 and {s for s, _ in states.values()} == {"forwarded"}
    assert eois.absorb_inbox(th.runtime) == 0


async def test_a_forward_from_a_member_not_yet_known_is_taken_later(
    node_factory: NodeFactory,
) -> None:
    """th has not yet learned my's key: the forward is kept for another try (not lost
    behind the mark), and taken once th's directory knows my."""
    net = await eoi_network(node_factory)
    th = net.nodes["th"]
    eoi = eoi_obj(net.nodes["my"], "th", LISTING, "From a member th does not know yet.")
    _store(th, [_forward(net, eoi, "th")])
    assert eois.absorb_inbox(th.runtime) == 1
    assert eoi["id"] not in _states(th)
    await th.sync.refresh_directory()
    assert eois.absorb_inbox(th.runtime) == 1  # the one kept for another try
    assert _states(th)[eoi["id"]][0] == "forwarded"
    assert eois.absorb_inbox(th.runtime) == 0


async def test_what_cannot_be_taken_is_not_read_again(node_factory: NodeFactory) -> None:
    """A forward about another node's listing and one whose EoI does not fit the schema
    are passed over for good: the next call reads nothing."""
    net = await _owner(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    elsewhere = _forward(net, eoi_obj(vn, "my", "my-off-0001"), "th")
    broken = _forward(net, {**eoi_obj(vn, "th", LISTING), "listing": "th-off-0001"}, "th")
    _store(th, [elsewhere, broken])
    assert eois.absorb_inbox(th.runtime) == 2
    assert _states(th) == {}
    assert eois.absorb_inbox(th.runtime) == 0


async def test_a_view_with_nothing_new_waits_for_no_writer(node_factory: NodeFactory) -> None:
    """Once all is read, absorbing takes no lock: it returns while another transaction
    holds the database's write lock (SQLite) or the mark's row (PostgreSQL)."""
    net = await _owner(node_factory)
    th = net.nodes["th"]
    _store(th, _forwards(net, 3))
    assert eois.absorb_inbox(th.runtime) == 3
    done = threading.Event()

    def absorb() -> None:
        if eois.absorb_inbox(th.runtime) == 0:
            done.set()

    with Session(th.runtime.engine) as session, session.begin():
        session.scalar(select(MetaRow).where(MetaRow.key == MARK_KEY).with_for_update())
        worker = threading.Thread(target=absorb)
        worker.start()
        assert done.wait(timeout=10), "absorbing with nothing new waited for the writer"
    worker.join(timeout=10)


def _notices(net: Network, reader: str, n: int) -> None:
    """``n`` notices to ``reader``, each naming a different listing of th, as the
    matching engine writes them (a notices_sent row and the signed notice)."""
    rt = net.hub.runtime
    now = rt.clock()
    with Session(rt.engine) as session, session.begin():
        for i in range(n):
            lid = f"th-off-{i + 1000:04d}"
            session.add(
                NoticeSentRow(
                    reader=reader, own_id="my-req-0001", cp_owner="th", cp_id=lid, score=0.5, at=now
                )
            )
            notice = {
                "type": "match_notice",
                "v": PROTOCOL_VERSION,
                "issuer": rt.node_id,
                "ts": now,
                "audience": reader,
                "own_listing": {"id": "my-req-0001", "role": "request"},
                "counterpart": {
                    "owner": "th",
                    "listing_id": lid,
                    "kind": "offer",
                    "descriptor": "a listing held by the center of Thailand",
                    "fields": {},
                },
                "score": 0.5,
                "explanation": {"components": {}, "shared_terms": [], "shared_codes": []},
            }
            post_to_outbox(session, reader, _hub_signed(net, notice), now)


async def test_a_member_named_in_many_notices(node_factory: NodeFactory) -> None:
    net = await eoi_network(node_factory)
    rt = net.hub.runtime
    _notices(net, "my", 300)
    assert may_know(rt, "my", "th", "th-off-1000")
    assert may_know(rt, "my", "th", "th-off-1299")
    assert not may_know(rt, "my", "th", "th-off-1300")  # never named to my
    assert not may_know(rt, "vn", "th", "th-off-1000")  # named to my, not to vn
    assert not may_know(rt, "my", "vn", "th-off-1000")  # another owner's listing


def test_the_migration_indexes_the_notices_queued_before(database_url: DatabaseUrlFactory) -> None:
    """A hub upgraded in place: 0011 indexes the notices already in its outbox that name
    a listing (not those that name none, nor other objects)."""
    engine = make_engine(database_url("upgrade"))

    def queued(reader: str, kind: str, counterpart: Any) -> dict[str, Any]:
        obj = {"type": kind, "counterpart": counterpart}
        return {"reader": reader, "type": kind, "created": 1, "obj": json.dumps(obj)}

    try:
        upgrade_to(engine, "0010")
        rows = [
            queued("my", "match_notice", {"owner": "th", "listing_id": "th-off-0001"}),
            queued("my", "match_notice", {"owner": "th"}),  # named no listing
            queued("vn", "match_notice", {"owner": "th", "listing_id": "th-off-0002"}),
            queued("vn", "eoi_forward", {"owner": "th", "listing_id": "th-off-0003"}),
        ]
        with engine.begin() as conn:
            conn.execute(insert(OutboxRow), rows)
        upgrade_to(engine, "head")
        with Session(engine) as session:
            named = {
                (r.reader, r.cp_owner, r.cp_id) for r in session.scalars(select(NoticeNamedRow))
            }
        assert named == {("my", "th", "th-off-0001"), ("vn", "th", "th-off-0002")}
    finally:
        engine.dispose()
