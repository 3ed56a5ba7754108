"""What was shared with whom: a node's feed records which peer received which listing
version and when; re-serving the same pages adds nothing; ``cattc shared`` shows it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.services import share_log
from node.storage.models import ShareLogRow
from sync.client import PeerClient
from tests.federation.network import NodeFactory, allowed_for
from tests.hub.helpers import cattc, cattc_json, start_hub_network
from tests.nodes import RunningNode


def log_rows(node: RunningNode) -> list[tuple[str, str, int, str]]:
    with Session(node.runtime.engine) as session:
        stmt = select(
            ShareLogRow.reader, ShareLogRow.listing_id, ShareLogRow.version, ShareLogRow.kind
        ).order_by(ShareLogRow.id)
        return [(r, lid, v, k) for r, lid, v, k in session.execute(stmt)]


def count(node: RunningNode) -> int:
    with Session(node.runtime.engine) as session:
        return int(session.scalar(select(func.count()).select_from(ShareLogRow)) or 0)


async def pull_everything(hub: RunningNode, owner: RunningNode) -> int:
    """The hub reads the owner's whole feed from the start (cursor 0), page by page, as
    a reader that lost its cursor does; the number of items it got."""
    hub_rt = hub.runtime
    got = 0
    async with aiohttp.ClientSession() as session:
        client = PeerClient(session, hub.node_id, lambda: hub_rt.keys.active, hub_rt.clock)
        after: str | None = None
        while True:
            page = await client.get_json(
                owner.url, owner.node_id, "/federation/v1/feed", {"after": after, "limit": 3}
            )
            got += len(page["items"])
            after = page["next"]
            if not page["more"]:
                return got


async def test_feed_records_each_version_once(node_factory: NodeFactory) -> None:
    net = await start_hub_network(node_factory, ["th"])
    th = net.nodes["th"]
    shared_with_hub = allowed_for(th, "cn")
    assert shared_with_hub, "the sample policy shares some of th's listings with the hub"

    run = await net.hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None, run
    rows = log_rows(th)
    assert sorted(rows) == sorted(
        ("cn", lid, view["version"], "summary") for lid, view in shared_with_hub.items()
    )

    # Pulled again from the start, twice, in small pages: the same versions, no new rows.
    assert await pull_everything(net.hub, th) >= len(shared_with_hub)
    assert await pull_everything(net.hub, th) >= len(shared_with_hub)
    assert count(th) == len(rows)

    # A new version, then a withdrawal: one row each, in order.
    changed, withdrawn = sorted(shared_with_hub)[:2]
    record = th.runtime.listings.get(changed).record
    th.runtime.listings.update(changed, {**record, "summary": record["summary"] + " Updated."})
    th.runtime.listings.withdraw(withdrawn)
    await net.hub.sync.sync_peer("th", force=True)
    await pull_everything(net.hub, th)
    new = log_rows(th)[len(rows) :]
    v_changed = shared_with_hub[changed]["version"] + 1
    v_withdrawn = shared_with_hub[withdrawn]["version"] + 1
    assert sorted(new) == sorted(
        [("cn", changed, v_changed, "summary"), ("cn", withdrawn, v_withdrawn, "withdrawal")]
    )

    holdings = {
        h.reader: h for h in share_log.holdings(share_log.for_listing(th.runtime.engine, withdrawn))
    }
    assert holdings["cn"].withdrawn_at is not None
    assert holdings["cn"].version == shared_with_hub[withdrawn]["version"]
    still = share_log.holdings(share_log.for_listing(th.runtime.engine, changed))
    assert [(h.reader, h.version, h.withdrawn_at) for h in still] == [("cn", v_changed, None)]

    totals = {t.reader: t for t in share_log.peers(th.runtime.engine)}
    assert totals["cn"].listings == len(shared_with_hub)
    assert totals["cn"].withdrawals == 1
    assert totals["cn"].summaries == len(shared_with_hub) + 1


def test_entries_skip_other_issuers_and_objects() -> None:
    items: list[dict[str, Any]] = [
        {"type": "listing", "issuer": "th", "listing": {"id": "th-1", "version": 2}},
        {"type": "retraction", "issuer": "th", "listing_id": "th-2", "version": 5},
        {"type": "listing", "issuer": "vn", "listing": {"id": "vn-1", "version": 1}},
        {"type": "match_notice", "issuer": "th"},
    ]
    assert share_log.entries_of("th", items) == [
        ("th-1", 2, "summary"),
        ("th-2", 5, "withdrawal"),
    ]


async def test_cli_shared(node_factory: NodeFactory) -> None:
    net = await start_hub_network(node_factory, ["th"])
    th = net.nodes["th"]
    await net.hub.sync.sync_peer("th", force=True)
    lid, view = sorted(allowed_for(th, "cn").items())[0]

    data = await cattc_json("shared", th.data_dir, "listing", lid)
    assert [(p["reader"], p["version"], p["withdrawn_at"]) for p in data["peers"]] == [
        ("cn", view["version"], None)
    ]
    text = await cattc("shared", th.data_dir, "listing", lid)
    assert text.exit_code == 0 and "cn" in text.stdout and "RECEIVED" in text.stdout

    data = await cattc_json("shared", th.data_dir, "peer", "cn", "--per-page", "2")
    assert data["total"] == count(th) and len(data["rows"]) == 2
    page2 = await cattc_json("shared", th.data_dir, "peer", "cn", "--per-page", "2", "--page", "2")
    assert {r["listing_id"] for r in page2["rows"]}.isdisjoint(
        r["listing_id"] for r in data["rows"]
    )

    totals = await cattc_json("shared", th.data_dir, "peers")
    assert [t["reader"] for t in totals] == ["cn"]

    nothing = await cattc("shared", th.data_dir, "peer", "vn")
    assert nothing.exit_code == 0 and "nothing was shared with vn" in nothing.stdout

    unknown = await cattc("shared", th.data_dir, "listing", "th-nope")
    assert unknown.exit_code == 1
    assert "no listing 'th-nope' on this node" in unknown.stderr
    bad = await cattc("shared", th.data_dir, "peer", "Not A Node")
    assert bad.exit_code == 1 and "is not a node id" in bad.stderr
    past = await cattc("shared", th.data_dir, "peer", "cn", "--page", "999")
    assert past.exit_code == 1 and "past the end" in past.stderr
    assert (
        json.loads((await cattc("shared", th.data_dir, "peer", "vn", "--json")).stdout)["rows"]
        == []
    )
