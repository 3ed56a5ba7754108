"""One answer per expression of interest, from the listing's owner only (issue: trust the
hub, finding "EoI existence oracle": replies took any ``decision`` and could flip state).

At the hub: a reply from anyone but the owner is 403 ``not_listing_owner``; a second
reply is 409 ``already_answered`` and changes nothing; an EoI the hub dropped cannot be
answered. At the requester: once answered, a later reply in the hub's feed (even one the
owner signed) never changes the state, and a decision outside the fixed set is ignored.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from node.cli.eoi_cmds import send_to_hub
from node.hub import eoi as eois
from node.services.feed import post_to_outbox
from node.storage.models import EoiRow
from protocol import PROTOCOL_VERSION
from protocol.signing import sign_object
from tests.federation.network import Network, NodeFactory
from tests.hub.helpers import cattc, cattc_json
from tests.security.eoi_net import (
    EOI,
    REPLY,
    eoi_network,
    eoi_obj,
    forwards_for,
    hub_states,
    post,
    pull_hub,
    reply_obj,
)

LISTING = "th-off-0001"


async def test_only_the_owner_answers_and_only_once(node_factory: NodeFactory) -> None:
    net = await eoi_network(node_factory)
    vn, th, my = net.nodes["vn"], net.nodes["th"], net.nodes["my"]
    eoi = eoi_obj(vn, "th", LISTING)
    dropped = eoi_obj(vn, "th", "th-exp-0001")  # th gives experts to the hub alone
    for obj in (eoi, dropped):
        assert (await post(net, vn, EOI, obj))[0] == 202

    for sender in (vn, my):  # the requester itself, or a third member
        status, answer, _ = await post(net, sender, REPLY, reply_obj(sender, eoi["id"]))
        assert (status, answer["error"]["code"]) == (403, "not_listing_owner"), answer
    for eoi_id in (dropped["id"], "vn-eoi-000000000000"):
        status, answer, _ = await post(net, th, REPLY, reply_obj(th, eoi_id))
        assert (status, answer["error"]["code"]) == (404, "not_found"), answer
    assert hub_states(net)[eoi["id"]][2] == "forwarded"
    assert hub_states(net)[dropped["id"]][2] == "dropped"

    status, answer, _ = await post(net, th, REPLY, reply_obj(th, eoi["id"], "declined"))
    assert (status, answer) == (202, {"id": eoi["id"], "state": "declined"})
    again = [
        reply_obj(th, eoi["id"], "accepted", contact={"email": "bd@th.example"}),
        reply_obj(th, eoi["id"], "declined"),
    ]
    for reply in again:
        status, answer, _ = await post(net, th, REPLY, reply)
        assert (status, answer["error"]["code"]) == (409, "already_answered"), answer
        assert "already declined" in answer["error"]["message"]
    assert hub_states(net)[eoi["id"]][2] == "declined"
    [forward] = forwards_for(net, "vn", "eoi_reply_forward")
    assert forward["reply"]["decision"] == "declined" and forward["reply"]["contact"] == {}


def _reply_forward(net: Network, reply: dict[str, Any]) -> dict[str, Any]:
    rt = net.hub.runtime
    forward = {
        "type": "eoi_reply_forward",
        "v": PROTOCOL_VERSION,
        "issuer": rt.node_id,
        "ts": rt.clock(),
        "audience": "vn",
        "reply": reply,
    }
    return sign_object(forward, rt.node_id, rt.keys.active)


async def test_the_requester_keeps_the_first_answer(node_factory: NodeFactory) -> None:
    """Replies the hub signed and queued for vn, each signed by th itself: a decision
    outside the set, then an acceptance, then a refusal. vn keeps the acceptance."""
    net = await eoi_network(node_factory)
    vn, th = net.nodes["vn"], net.nodes["th"]
    eoi = eois.new_eoi(vn.runtime, "th", LISTING, "Interested in licensing.")
    result = await send_to_hub(vn.runtime, EOI, eoi)
    eois.mark(vn.runtime, eoi["id"], result["state"])

    odd = reply_obj(th, eoi["id"], "introduced", contact={"email": "odd@th.example"})
    accepted = reply_obj(th, eoi["id"], "accepted")
    declined = reply_obj(th, eoi["id"], "declined")
    rt = net.hub.runtime
    with Session(rt.engine) as session, session.begin():
        for reply in (odd, accepted, declined):
            post_to_outbox(session, "vn", _reply_forward(net, reply), rt.clock())
    await pull_hub(vn)
    eois.absorb_inbox(vn.runtime)
    with Session(vn.runtime.engine) as session:
        row = session.get(EoiRow, eoi["id"])
        assert row is not None and row.reply_obj is not None
        assert (row.state, json.loads(row.reply_obj)) == ("accepted", accepted)
    # Nor does a reply the hub passes on later change it.
    status, _, _ = await post(net, th, REPLY, declined)
    assert status == 202  # the hub had not had th's answer: this is its first
    await pull_hub(vn)
    [mine] = [e for e in eois.list_eois(vn.runtime, 50) if e["id"] == eoi["id"]]
    assert mine["state"] == "accepted"


async def test_the_hub_answers_for_its_own_listings_only_what_it_passed_on(
    node_factory: NodeFactory,
) -> None:
    """The hub owns cn-off-0001 (shared with mou) and cn-off-0005 (private): its operator
    answers vn's interest in the first; the second was dropped and cannot be answered."""
    net = await eoi_network(node_factory, hub_listings=True)
    vn = net.nodes["vn"]
    shared, private = eoi_obj(vn, "cn", "cn-off-0001"), eoi_obj(vn, "cn", "cn-off-0005")
    for obj in (shared, private):
        assert (await post(net, vn, EOI, obj))[0] == 202
    out = await cattc_json("eoi", net.hub.data_dir, "accept", shared["id"], "--share", "email")
    assert out["state"] == "accepted" and set(out["contact"]) == {"email"}
    refused = await cattc("eoi", net.hub.data_dir, "decline", private["id"])
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: no expression of interest {private['id']}")
    assert {k: v[2] for k, v in hub_states(net).items()} == {
        shared["id"]: "accepted",
        private["id"]: "dropped",
    }
    [forward] = forwards_for(net, "vn", "eoi_reply_forward")
    assert forward["reply"]["eoi_id"] == shared["id"]
