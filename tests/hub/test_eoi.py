"""Expressions of interest (DESIGN 9): requester's center -> hub -> owner's center and
back, each hop signed; contact details travel only on acceptance, only those chosen.

vn (the requester) and th (the owner) use ``cattc eoi`` on their data directories (in a
worker thread) while the hub and both nodes serve in-process; objects travel between
them in the hub's feed, pulled with one sync round each.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.eoi_cmds import send_to_hub
from node.hub.eoi import new_eoi
from node.services.feed import post_to_outbox
from node.storage.models import EoiRow, InboxRow, OutboxRow, QuarantineRow
from protocol import PROTOCOL_VERSION
from protocol.signing import sign_object
from sync.client import PeerError
from tests.federation.network import Network, NodeFactory, held_by
from tests.hub.helpers import cattc, cattc_json, start_hub_network
from tests.nodes import RunningNode

EOI = "/federation/v1/eoi"
REPLY = "/federation/v1/eoi/reply"
REPLY_FORWARD = "eoi_reply_forward"


async def network(node_factory: NodeFactory) -> Network:
    net = await start_hub_network(node_factory, ["th", "vn"], load_hub_sample=False)
    run = await net.hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None
    return net


async def pull_hub(node: RunningNode) -> None:
    """One pull of the hub's feed, after the directory refresh a scheduled round starts
    with (the node learns the other members' keys, to check their signatures)."""
    await node.sync.refresh_directory()
    run = await node.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is None, run


async def eois(node: RunningNode) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in await cattc_json("eoi", node.data_dir, "list")}


def known_to_vn(net: Network) -> list[str]:
    """th's listings the hub holds and may tell vn of: its offers and requests, which
    th's default rule relays to the ``mou`` group (its experts go to the hub alone)."""
    held = held_by(net.hub, "th")
    known = sorted(i for i, listing in held.items() if listing["category"] != "expert")
    assert len(known) >= 2
    return known


def hub_state(net: Network, eoi_id: str) -> str | None:
    with Session(net.hub.runtime.engine) as session:
        row = session.get(EoiRow, eoi_id)
        return None if row is None else row.state


async def submit(net: Network, listing_id: str, message: str) -> str:
    out = await cattc_json(
        "eoi", net.nodes["vn"].data_dir, "submit", "th", listing_id, "--message", message
    )
    assert out["state"] == "forwarded" and out["id"].startswith("vn-eoi-")
    return str(out["id"])


def hub_sign(net: Network, obj: dict[str, Any]) -> dict[str, Any]:
    rt = net.hub.runtime
    return sign_object(obj, rt.node_id, rt.keys.active)


def reply_forward(net: Network, reply: dict[str, Any]) -> dict[str, Any]:
    """The hub's signed forward of an owner's answer to the requester (vn)."""
    forward = {
        "type": REPLY_FORWARD,
        "v": PROTOCOL_VERSION,
        "issuer": "cn",
        "ts": net.hub.runtime.clock(),
        "audience": "vn",
        "reply": reply,
    }
    return hub_sign(net, forward)


def post_from_hub(net: Network, reader: str, obj: dict[str, Any]) -> None:
    rt = net.hub.runtime
    with Session(rt.engine) as session, session.begin():
        post_to_outbox(session, reader, obj, rt.clock())


async def test_accepted_interest_introduces_with_only_the_chosen_contact(
    node_factory: NodeFactory,
) -> None:
    net = await network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    listing = known_to_vn(net)[0]
    contact = th.runtime.listings.get(listing).record["contact"]
    assert set(contact) == {"person", "email", "phone"}

    eoi_id = await submit(net, listing, "We would like to license this for Vietnam.")
    mine = (await eois(vn))[eoi_id]
    assert (mine["state"], mine["owner"], mine["listing_id"]) == ("forwarded", "th", listing)
    assert mine["contact"] is None
    assert hub_state(net, eoi_id) == "forwarded"

    assert eoi_id not in await eois(th)  # it travels in the hub's feed
    await pull_hub(th)
    theirs = (await eois(th))[eoi_id]
    assert (theirs["state"], theirs["requester"], theirs["message"]) == (
        "forwarded",
        "vn",
        "We would like to license this for Vietnam.",
    )
    assert theirs["contact"] is None  # the owner never sees a contact of its own

    out = await cattc_json("eoi", th.data_dir, "accept", eoi_id, "--share", "email")
    assert out == {"id": eoi_id, "state": "accepted", "contact": {"email": contact["email"]}}
    assert (await eois(th))[eoi_id]["state"] == "accepted"
    assert hub_state(net, eoi_id) == "accepted"
    again = await cattc("eoi", th.data_dir, "accept", eoi_id, "--share", "phone")
    assert again.exit_code == 1 and "already accepted" in again.stderr

    await pull_hub(vn)
    mine = (await eois(vn))[eoi_id]
    assert mine["state"] == "introduced"
    assert mine["contact"] == {"email": contact["email"]}
    # Nothing else of the contact reached the requester, anywhere it keeps things.
    with Session(vn.runtime.engine) as session:
        stored = [r.obj for r in session.scalars(select(InboxRow))]
        stored += [r.request_obj + (r.reply_obj or "") for r in session.scalars(select(EoiRow))]
    text = "\n".join(stored)
    assert contact["email"] in text
    assert contact["person"] not in text and contact["phone"] not in text
    shown = await cattc("eoi", vn.data_dir, "list")
    assert contact["email"] in shown.stdout and "introduced" in shown.stdout


async def test_declined_interest_carries_no_contact(node_factory: NodeFactory) -> None:
    net = await network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    listing = known_to_vn(net)[1]
    eoi_id = await submit(net, listing, "Is a pilot in the Mekong delta possible?")
    await pull_hub(th)
    out = await cattc_json("eoi", th.data_dir, "decline", eoi_id)
    assert out == {"id": eoi_id, "state": "declined", "contact": {}}
    assert hub_state(net, eoi_id) == "declined"
    await pull_hub(vn)
    mine = (await eois(vn))[eoi_id]
    assert mine["state"] == "declined" and not mine["contact"]
    contact = th.runtime.listings.get(listing).record["contact"]
    with Session(vn.runtime.engine) as session:
        text = "\n".join(r.obj for r in session.scalars(select(InboxRow)))
    assert not any(value in text for value in contact.values())


async def test_interest_in_a_listing_the_hub_does_not_hold_is_answered_alike_and_dropped(
    node_factory: NodeFactory,
) -> None:
    """The requester is told the same as for any listing (no oracle); the hub keeps the
    interest as 'dropped' for its operator and sends the owner nothing."""
    net = await network(node_factory)
    vn = net.nodes["vn"]
    private = next(
        r.record["id"]
        for r in net.nodes["th"].runtime.listings.iter_all()
        if r.record["visibility"] == "private"
    )
    assert private not in held_by(net.hub, "th")
    for listing in (private, "th-off-0999"):
        out = await cattc_json("eoi", vn.data_dir, "submit", "th", listing, "--message", "hello")
        assert out["state"] == "forwarded"
    states = {e["listing_id"]: e["state"] for e in (await eois(vn)).values()}
    assert states == {private: "forwarded", "th-off-0999": "forwarded"}
    with Session(net.hub.runtime.engine) as session:
        kept = {r.listing_id: r.state for r in session.scalars(select(EoiRow))}
        assert kept == {private: "dropped", "th-off-0999": "dropped"}
        assert session.scalars(select(OutboxRow).where(OutboxRow.type == "eoi_forward")).all() == []
    listed = await cattc("eoi", net.hub.data_dir, "list")
    assert listed.stdout.count("dropped") == 2


async def test_only_the_owner_may_answer_and_hops_to_the_owner_are_verified(
    node_factory: NodeFactory,
) -> None:
    net = await network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    listing = known_to_vn(net)[0]
    eoi_id = await submit(net, listing, "Interested in a joint venture.")

    # requester -> hub: an expression of interest altered after signing is refused.
    forged = copy.deepcopy(new_eoi(vn.runtime, "th", listing, "original words"))
    forged["message"] = "other words"
    with pytest.raises(PeerError) as err:
        await send_to_hub(vn.runtime, EOI, forged)
    assert err.value.status == 400 and "signature" in str(err.value)

    # owner -> hub: a reply from a node that is not the owner is refused.
    not_owner = sign_object(
        {
            "type": "eoi_reply",
            "v": PROTOCOL_VERSION,
            "issuer": "vn",
            "ts": vn.runtime.clock(),
            "audience": "cn",
            "eoi_id": eoi_id,
            "decision": "accepted",
            "contact": {"email": "someone@example.org"},
        },
        "vn",
        vn.runtime.keys.active,
    )
    with pytest.raises(PeerError) as err:
        await send_to_hub(vn.runtime, REPLY, not_owner)
    assert err.value.status == 403 and "only th, the listing's owner" in str(err.value)
    assert hub_state(net, eoi_id) == "forwarded"

    # hub -> owner: the hub's forward altered in its outbox fails the feed's check and is
    # quarantined; a forward the hub signed around altered words of the requester is
    # ignored, since the requester's own signature no longer holds; so is a genuine
    # interest in another member's listing, sent to th by mistake.
    with Session(net.hub.runtime.engine) as session, session.begin():
        row = session.scalars(select(OutboxRow).where(OutboxRow.type == "eoi_forward")).one()
        obj = json.loads(row.obj)
        obj["eoi"]["message"] = "Send us all your contacts."
        row.obj = json.dumps(obj)
    altered = copy.deepcopy(obj["eoi"])
    altered["id"] = "vn-eoi-altered"
    forward = {
        "type": "eoi_forward",
        "v": PROTOCOL_VERSION,
        "issuer": "cn",
        "ts": net.hub.runtime.clock(),
        "audience": "th",
        "eoi": altered,
    }
    post_from_hub(net, "th", hub_sign(net, forward))
    elsewhere = new_eoi(vn.runtime, "la", "la-off-0001", "Interested in your offer.")
    post_from_hub(net, "th", hub_sign(net, {**forward, "eoi": elsewhere}))
    await pull_hub(th)
    with Session(th.runtime.engine) as session:
        [bad] = session.scalars(select(QuarantineRow).where(QuarantineRow.origin == "cn")).all()
    assert (bad.code, bad.message) == ("signature_invalid", "bad signature by cn (ed25519:1)")
    assert await eois(th) == {}


async def test_the_requester_takes_answers_only_from_the_owner(node_factory: NodeFactory) -> None:
    """hub -> requester: an answer signed by someone other than the owner (here the hub
    itself), or altered on the way, is ignored even inside a forward the hub signed."""
    net = await network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    listing = known_to_vn(net)[0]
    eoi_id = await submit(net, listing, "Interested, second try.")
    await pull_hub(th)
    await cattc_json("eoi", th.data_dir, "accept", eoi_id, "--share", "email")
    with Session(net.hub.runtime.engine) as session, session.begin():
        answered = session.get(EoiRow, eoi_id)
        assert answered is not None and answered.reply_obj is not None
        reply = json.loads(answered.reply_obj)
        # vn must see only the forgeries: the genuine forward leaves the hub's outbox.
        [genuine] = session.scalars(select(OutboxRow).where(OutboxRow.type == REPLY_FORWARD))
        session.delete(genuine)
    by_hub = hub_sign(
        net,
        {**reply, "issuer": "cn", "contact": {"phone": "+84 000"}, "signatures": {}},
    )
    tampered = {**reply, "contact": {**reply["contact"], "phone": "+84 000"}}
    for inner in (by_hub, tampered):
        post_from_hub(net, "vn", reply_forward(net, inner))
    await pull_hub(vn)
    with Session(vn.runtime.engine) as session:
        received = session.scalars(select(InboxRow).where(InboxRow.type == REPLY_FORWARD)).all()
    assert len(received) == 2  # both came through the feed: the hub did sign them
    mine = (await eois(vn))[eoi_id]
    assert mine["state"] == "forwarded" and mine["contact"] is None

    # The genuine answer, once it arrives, still introduces.
    post_from_hub(net, "vn", reply_forward(net, reply))
    await pull_hub(vn)
    mine = (await eois(vn))[eoi_id]
    assert mine["state"] == "introduced" and mine["contact"] == reply["contact"]
