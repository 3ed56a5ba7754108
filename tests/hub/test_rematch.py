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

from node.storage.models import NoticeSentRow, OutboxRow
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
