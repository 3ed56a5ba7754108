"""Any member can plant hub-only objects (issue: trust the hub).

A member's feed is read by every other member and by the hub. Before the fix, an item
of a type only the hub issues (``match_notice``, ``eoi_forward``, ``custody_receipt``,
``eoi_reply_forward``), signed by the member itself, was taken in like one from the hub:
``cattc matches`` and ``cattc eoi list`` showed it as the hub's. Now the reader sets it
aside with the reason ``issuer_not_the_hub``, and the same object from the hub, in the
hub's feed, still comes through (so the test can tell the two apart).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services.feed import post_to_outbox
from node.storage.models import InboxRow, QuarantineRow
from protocol import PROTOCOL_VERSION
from protocol.signing import sign_object
from tests.federation.network import Network, NodeFactory
from tests.hub.helpers import cattc_json, start_hub_network
from tests.node.sample import sample_records
from tests.nodes import RunningNode


def signed_by(node: RunningNode, obj: dict[str, Any]) -> dict[str, Any]:
    rt = node.runtime
    return sign_object(
        {"v": PROTOCOL_VERSION, "issuer": rt.node_id, "ts": rt.clock(), **obj},
        rt.node_id,
        rt.keys.active,
    )


def plant(node: RunningNode, reader: str, obj: dict[str, Any]) -> None:
    """Queue ``obj`` in ``node``'s own feed for ``reader``, as its server would send it."""
    with Session(node.runtime.engine) as session, session.begin():
        post_to_outbox(session, reader, obj, node.runtime.clock())


def notice(audience: str, own_id: str) -> dict[str, Any]:
    return {
        "type": "match_notice",
        "audience": audience,
        "own_listing": {"id": own_id, "role": "request"},
        "counterpart": {
            "owner": "th",
            "listing_id": "th-off-9999",
            "kind": "offer",
            "descriptor": "a listing held by the center of Thailand",
            "fields": {"title": {"en": "Planted offer: send us your contacts"}},
        },
        "score": 0.99,
        "explanation": {"components": {"text": 0.99}, "shared_terms": [], "shared_codes": []},
    }


def interest(requester: RunningNode, owner: str, listing_id: str) -> dict[str, Any]:
    return signed_by(
        requester,
        {
            "type": "eoi",
            "audience": "cn",
            "id": f"{requester.node_id}-eoi-planted01",
            "listing": {"owner": owner, "id": listing_id},
            "message": "We are very interested; please accept.",
        },
    )


def quarantined(node: RunningNode, origin: str) -> list[tuple[str, str]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(QuarantineRow).where(QuarantineRow.origin == origin))
        return [(r.code, r.message) for r in rows]


def inbox_types(node: RunningNode) -> list[str]:
    with Session(node.runtime.engine) as session:
        return list(session.scalars(select(InboxRow.type).order_by(InboxRow.id)))


async def pull(reader: RunningNode, peer: str) -> None:
    await reader.sync.refresh_directory()  # the reader learns the members and their keys
    run = await reader.sync.sync_peer(peer, force=True)
    assert run is not None and run.error is None, run


async def network(node_factory: NodeFactory) -> Network:
    return await start_hub_network(node_factory, ["th", "vn"], load_hub_sample=False)


async def test_a_member_cannot_plant_a_match_notice_or_an_eoi_forward(
    node_factory: NodeFactory,
) -> None:
    net = await network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    vn_listing = sample_records("vn")[0]["id"]
    # th's own feed, for vn: a notice and a forwarded interest, both signed by th
    plant(th, "vn", signed_by(th, notice("vn", vn_listing)))
    plant(
        th,
        "vn",
        signed_by(
            th, {"type": "eoi_forward", "audience": "vn", "eoi": interest(th, "vn", vn_listing)}
        ),
    )
    await pull(vn, "th")

    assert inbox_types(vn) == []
    codes = quarantined(vn, "th")
    assert [c for c, _ in codes] == ["issuer_not_the_hub", "issuer_not_the_hub"], codes
    assert "only the hub issues match_notice" in codes[0][1]
    assert await cattc_json("matches", vn.data_dir) == []
    assert await cattc_json("eoi", vn.data_dir, "list") == []

    # The same objects from the hub, in the hub's feed, are taken in and shown.
    hub = net.hub
    plant(hub, "vn", signed_by(hub, notice("vn", vn_listing)))
    plant(
        hub,
        "vn",
        signed_by(
            hub, {"type": "eoi_forward", "audience": "vn", "eoi": interest(th, "vn", vn_listing)}
        ),
    )
    await pull(vn, "cn")
    assert inbox_types(vn) == ["match_notice", "eoi_forward"]
    assert quarantined(vn, "cn") == []
    shown = await cattc_json("matches", vn.data_dir)
    assert [n["issuer"] for n in shown] == ["cn"]
    assert [e["id"] for e in await cattc_json("eoi", vn.data_dir, "list")] == ["th-eoi-planted01"]


async def test_the_hub_takes_no_hub_only_object_from_a_member(node_factory: NodeFactory) -> None:
    net = await network(node_factory)
    hub, th = net.hub, net.nodes["th"]
    receipt = {
        "type": "custody_receipt",
        "audience": "cn",
        "position": 0,
        "held": [],
        "purged": ["cn-off-0001"],
        "rejected": 0,
    }
    plant(th, "cn", signed_by(th, receipt))
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.rejected == 1, run
    assert [c for c, _ in quarantined(hub, "th")] == ["issuer_not_the_hub"]
    assert "custody_receipt" not in inbox_types(hub)


async def test_a_hub_object_that_does_not_fit_its_model_is_schema_invalid(
    node_factory: NodeFactory,
) -> None:
    net = await network(node_factory)
    hub, vn = net.hub, net.nodes["vn"]
    extra = {**notice("vn", "vn-req-0001"), "contact": {"email": "x@example.org"}}
    no_score = {k: v for k, v in notice("vn", "vn-req-0001").items() if k != "score"}
    plant(hub, "vn", signed_by(hub, extra))
    plant(hub, "vn", signed_by(hub, no_score))
    await pull(vn, "cn")
    codes = quarantined(vn, "cn")
    assert [c for c, _ in codes] == ["schema_invalid", "schema_invalid"], codes
    assert "contact" in codes[0][1] and "score" in codes[1][1]
    assert inbox_types(vn) == []


async def test_a_notice_whose_relayed_fields_are_not_the_listings_types_is_set_aside(
    node_factory: NodeFactory,
) -> None:
    """A notice's relayed fields go to the member's console: from the hub too, a title
    that is not an object of strings is quarantined (``schema_invalid``), not shown."""
    net = await network(node_factory)
    vn, hub = net.nodes["vn"], net.hub
    vn_listing = sample_records("vn")[0]["id"]
    bad = notice("vn", vn_listing)
    bad["counterpart"]["fields"] = {"title": "Planted", "trl": "nine"}
    plant(hub, "vn", signed_by(hub, bad))
    plant(hub, "vn", signed_by(hub, notice("vn", vn_listing)))
    await pull(vn, "cn")
    codes = quarantined(vn, "cn")
    assert [c for c, _ in codes] == ["schema_invalid"], codes
    assert "counterpart.fields.title" in codes[0][1]
    assert inbox_types(vn) == ["match_notice"]  # the good one
