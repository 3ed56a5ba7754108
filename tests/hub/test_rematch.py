"""Members' pulls ending together (``sync_all`` gathers them; the scheduler runs them side
by side) re-match at the hub one after the other: each match notice is sent once, and no
pull fails on another's notices (a unique violation on SQLite, a deadlock on PostgreSQL,
before the re-match was serialised). The race depends on timing: without the fix this
test failed in about half of its runs, and the suite's other ``sync_all`` tests too."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.hub.match_engine import TOP_K
from node.storage.models import NoticeSentRow, OutboxRow
from node.web.appkeys import HUB_MATCHING
from tests.federation.network import Network, NodeFactory
from tests.federation.rounds import new_listing_like
from tests.hub.helpers import start_hub_network

MEMBERS = ("th", "vn", "la")
Key = tuple[str, str, str, str]  # reader, its listing, counterpart owner, counterpart listing


async def pull_all(net: Network) -> None:
    runs = await asyncio.gather(
        *(net.hub.sync.sync_peer(p, force=True) for p in MEMBERS), return_exceptions=True
    )
    for run in runs:
        assert not isinstance(run, BaseException), repr(run)
        assert run is not None and run.error is None, run


def notices(net: Network) -> tuple[set[Key], Counter[Key]]:
    """What the hub recorded as sent, and the match notices it queued per key."""
    with Session(net.hub.runtime.engine) as session:
        sent = {
            (r.reader, r.own_id, r.cp_owner, r.cp_id)
            for r in session.scalars(select(NoticeSentRow))
        }
        queued: Counter[Key] = Counter()
        for row in session.scalars(select(OutboxRow).where(OutboxRow.type == "match_notice")):
            n = json.loads(row.obj)
            cp = n["counterpart"]
            queued[(row.reader, n["own_listing"]["id"], cp["owner"], cp["listing_id"])] += 1
        return sent, queued


async def test_concurrent_pulls_send_each_notice_once(node_factory: NodeFactory) -> None:
    net = await start_hub_network(node_factory, MEMBERS, load_hub_sample=False)
    await pull_all(net)
    sent, queued = notices(net)
    cross = sorted(k for k in sent if k[0] != k[2])
    assert cross, "the sample data has matches across members: the race needs them"
    assert queued == {k: 1 for k in sent}

    # Each member adds listings like those that matched across: new pairs everywhere.
    for i, (reader, own, owner, cp) in enumerate(cross[:6]):
        new_listing_like(net.nodes[reader], own, f"Second call {i}: {own}")
        new_listing_like(net.nodes[owner], cp, f"Second offer {i}: {cp}")
    await pull_all(net)
    again, queued = notices(net)
    assert len(again) > len(sent)
    assert queued == {k: 1 for k in again}


async def test_one_listing_gets_a_bounded_number_of_notices_a_day(
    node_factory: NodeFactory,
) -> None:
    """A member withdrew its offers and published them again under new ids, round after
    round: one request got 482 notices, burying its owner's real ones. Notices about one
    listing to its owner stop at ``notices_per_listing_per_day``; the rest are held back,
    unrecorded, for a later match, and /hub/status counts them."""
    cap = 4
    net = await start_hub_network(
        node_factory, MEMBERS, load_hub_sample=False, notices_per_listing_per_day=cap
    )
    await pull_all(net)
    sent, _ = notices(net)
    reader, own, owner, cp = sorted(k for k in sent if k[0] != k[2])[0]
    before = sum(1 for k in sent if k[:2] == (reader, own))
    for round_ in range(2):  # clones of the offer that matched, then new ones
        clones = [
            new_listing_like(net.nodes[owner], cp, f"Clone {round_}-{i} of {cp}")
            for i in range(TOP_K)
        ]
        await pull_all(net)
        for clone in clones:
            net.nodes[owner].runtime.listings.withdraw(clone)
    await pull_all(net)
    again, queued = notices(net)
    about_own = [k for k in queued if k[:2] == (reader, own)]
    assert len(about_own) == max(cap, before), (before, about_own)
    assert net.hub.app[HUB_MATCHING].status()["notices_held_back"] > 0
    others = [k for k in again if k[:2] != (reader, own) and k[0] != "cn"]
    assert all(queued[k] == 1 for k in others)  # every other listing as before
