"""Custody without ownership (DESIGN 3.3, 9): the owner checks what the hub holds of its
data against its own log, and the hub signs a receipt after every page it applies.

``cattc custody DATA_DIR check`` runs on the owner's data directory (in a worker thread)
while the hub serves in-process; the hub's holdings are then damaged row by row.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services.peers import PinnedKeys, peer_info
from node.storage.models import FeedSentRow, RemoteListingRow
from protocol.signing import SignatureError, verify_object
from tests.federation.network import NodeFactory, allowed_for, held_by, start_network
from tests.hub.helpers import cattc, inbox
from tests.nodes import RunningNode

PLANTED = "th-off-9999"


def _given_to_hub(owner: RunningNode) -> dict[str, int]:
    with Session(owner.runtime.engine) as session:
        rows = session.scalars(select(FeedSentRow).where(FeedSentRow.reader == "cn")).all()
        return {r.listing_id: r.version for r in rows if not r.retracted}


async def _check(owner: RunningNode) -> tuple[int, dict[str, Any], str]:
    as_json = await cattc("custody", owner.data_dir, "check", "--json")
    text = await cattc("custody", owner.data_dir, "check")
    assert as_json.exit_code == text.exit_code, (as_json.output, text.output)
    return as_json.exit_code, json.loads(as_json.stdout), text.stdout


async def test_custody_check_names_missing_extra_and_outdated(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th"])
    hub, th = net.hub, net.nodes["th"]
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied > 0
    shared = sorted(allowed_for(th, "cn"))
    assert sorted(held_by(hub, "th")) == shared and len(shared) >= 3

    code, report, text = await _check(th)
    assert code == 0, text
    assert report == {
        "hub": "cn",
        "held": len(shared),
        "given": len(shared),
        "missing": [],
        "extra": [],
        "outdated": [],
        "ok": True,
    }
    assert text.splitlines() == [
        f"hub cn holds {len(shared)} of our listings; our feed gave it {len(shared)}",
        "custody matches our log",
    ]

    # The hub loses one copy and gains one the owner never gave it.
    missing, outdated = shared[0], shared[1]
    with Session(hub.runtime.engine) as session, session.begin():
        victim = session.get(RemoteListingRow, ("th", missing))
        assert victim is not None
        session.delete(victim)
        model = session.get(RemoteListingRow, ("th", shared[2]))
        assert model is not None
        values = {
            c.key: getattr(model, c.key)
            for c in RemoteListingRow.__table__.columns
            if c.key not in ("origin", "listing_id")
        }
        session.add(RemoteListingRow(origin="th", listing_id=PLANTED, **values))
    code, report, text = await _check(th)
    assert code == 1
    assert (report["missing"], report["extra"], report["outdated"]) == ([missing], [PLANTED], [])
    assert (report["held"], report["given"], report["ok"]) == (len(shared), len(shared), False)
    assert text.splitlines()[1:] == [
        f"missing   {missing}",
        f"extra     {PLANTED}",
        "custody does NOT match our log",
    ]

    # One copy falls behind the version the owner's feed gave.
    with Session(hub.runtime.engine) as session, session.begin():
        row = session.get(RemoteListingRow, ("th", outdated))
        assert row is not None
        row.version -= 1
    code, report, text = await _check(th)
    assert code == 1
    assert (report["missing"], report["extra"], report["outdated"]) == (
        [missing],
        [PLANTED],
        [outdated],
    )
    assert f"outdated  {outdated}" in text.splitlines()


async def test_custody_check_fails_in_one_line_without_a_hub(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    await net.hub.stop()  # the hub is gone: nothing answers at its address
    result = await cattc("custody", net.nodes["th"].data_dir, "check")
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and line.endswith("; is the hub reachable?"), line


def _verify_from_hub(owner: RunningNode, obj: dict[str, Any]) -> None:
    hub = peer_info(owner.runtime, "cn")
    assert hub is not None
    verify_object(obj, "cn", PinnedKeys(hub))


async def test_custody_receipts_reach_the_owner_signed(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th"])
    hub, th = net.hub, net.nodes["th"]
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None
    given = _given_to_hub(th)
    assert inbox(th, "custody_receipt") == []  # it travels in the hub's feed, not before

    pull = await th.sync.sync_peer("cn", force=True)
    assert pull is not None and pull.error is None
    [receipt] = inbox(th, "custody_receipt")
    _verify_from_hub(th, receipt)
    assert (receipt["issuer"], receipt["audience"]) == ("cn", "th")
    held_rows = {r.listing_id: r for r in hub.sync.store.held("th")}
    assert receipt["held"] == [
        {"listing_id": lid, "version": given[lid], "sha256": held_rows[lid].bytes_sha256}
        for lid in sorted(given)
    ]
    assert (receipt["purged"], receipt["rejected"]) == ([], 0)

    # A receipt altered after signing no longer verifies.
    forged = {**receipt, "held": receipt["held"][1:]}
    try:
        _verify_from_hub(th, forged)
    except SignatureError:
        pass
    else:
        raise AssertionError("a receipt with an entry removed still verified")

    # A withdrawal: the next receipt says the copy is purged and lists nothing as held.
    victim = sorted(given)[0]
    th.runtime.listings.withdraw(victim)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.retracted == 1
    pull = await th.sync.sync_peer("cn", force=True)
    assert pull is not None and pull.error is None
    first, second = inbox(th, "custody_receipt")
    assert first == receipt
    _verify_from_hub(th, second)
    assert (second["held"], second["purged"]) == ([], [victim])
    assert second["ts"] >= first["ts"]

    # And the owner's check agrees with the hub again.
    result = await cattc("custody", th.data_dir, "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("custody matches our log\n")
