"""Expressions of interest are no oracle (issue: trust the hub, finding "EoI existence
oracle"): the hub answers an EoI the same whether the listing exists, is held, or may be
seen by the sender, and passes it to the owner only when the sender could know the
listing (a view its owner's policy gives it, or a match notice from the hub naming it).
What it does not pass on, it keeps as ``dropped`` for its operator.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy.orm import Session

from node.services.feed import post_to_outbox
from node.storage.models import NoticeSentRow
from policies import default_policy_yaml
from protocol import PROTOCOL_VERSION
from protocol.signing import sign_object
from tests.federation.network import Network, NodeFactory, held_by
from tests.hub.helpers import cattc_json
from tests.security.eoi_net import EOI, eoi_network, forwards_for, hub_states, post, pull_hub

# th's sample listings: an offer for the network (relayed by th's rule to mou), a public
# offer, an expert for the hub alone, a private agreement (never sent to the hub).
# Without a '*' rule (the default has none) a public listing is shown to no stranger.
NETWORK_OFFER, PUBLIC_OFFER, EXPERT, PRIVATE = (
    "th-off-0001",
    "th-off-0002",
    "th-exp-0001",
    "th-agr-0001",
)


PUBLIC_OFFERS = """\
  - audience: "*"
    category: tech_offer
    visibility: [public]
    fields: [title, keywords]
"""


async def send(net: Network, sender: str, owner: str, listing_id: str) -> tuple[str, int, Any]:
    from tests.security.eoi_net import eoi_obj

    obj = eoi_obj(net.nodes[sender], owner, listing_id, "We would like to license this.")
    status, body, _ = await post(net, net.nodes[sender], EOI, obj)
    return obj["id"], status, body


async def test_the_answer_is_the_same_whatever_the_listing(node_factory: NodeFactory) -> None:
    net = await eoi_network(node_factory, hub_listings=True)
    # th shows its public offers to the public (a '*' rule): anyone may know those.
    net.nodes["th"].runtime.policy.apply(default_policy_yaml("cn") + PUBLIC_OFFERS, author="t")
    run = await net.hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None, run
    held = held_by(net.hub, "th")
    assert NETWORK_OFFER in held and EXPERT in held and PRIVATE not in held
    cases = [
        ("vn", "th", NETWORK_OFFER),  # held, relayed to vn's group: passed on
        ("vn", "th", EXPERT),  # held, but th gives experts to the hub alone
        ("vn", "th", PRIVATE),  # exists at th, never sent to the hub
        ("vn", "th", "th-off-0999"),  # does not exist anywhere
        ("vn", "zz", "zz-off-0001"),  # no such member
        ("my", "th", NETWORK_OFFER),  # held, but not relayed to no_mou, not public
        ("my", "th", PUBLIC_OFFER),  # th shows it to the public: anyone may know it
        ("my", "th", "th-req-0001"),  # public, but th shows no request to strangers
        ("vn", "cn", "cn-off-0001"),  # the hub's own, shared with mou by the hub's policy
        ("my", "cn", "cn-off-0001"),  # ... but not with no_mou
        ("vn", "cn", "cn-off-0005"),  # the hub's own private listing
        ("vn", "cn", "cn-off-0999"),  # the hub owns no such listing
    ]
    answers = {}
    for sender, owner, listing_id in cases:
        eoi_id, status, body = await send(net, sender, owner, listing_id)
        answers[(sender, owner, listing_id)] = eoi_id
        assert (status, body) == (202, {"id": eoi_id, "state": "forwarded"}), (owner, listing_id)

    # Only what the sender could know went on; the rest is kept, dropped, for the operator.
    passed = {
        ("vn", "th", NETWORK_OFFER),
        ("my", "th", PUBLIC_OFFER),
        ("vn", "cn", "cn-off-0001"),
    }
    states = hub_states(net)
    for case, eoi_id in answers.items():
        assert states[eoi_id][2] == ("forwarded" if case in passed else "dropped"), case
    to_th = {f["eoi"]["id"] for f in forwards_for(net, "th")}
    assert to_th == {answers[("vn", "th", NETWORK_OFFER)], answers[("my", "th", PUBLIC_OFFER)]}
    assert forwards_for(net, "zz") == []

    th = net.nodes["th"]
    await pull_hub(th)
    theirs = {e["id"]: e for e in await cattc_json("eoi", th.data_dir, "list")}
    assert set(theirs) == to_th
    listed = await cattc_json("eoi", net.hub.data_dir, "list")
    assert sum(e["state"] == "dropped" for e in listed) == len(cases) - len(passed)
    async with (
        aiohttp.ClientSession() as http,
        http.get(net.hub.url + "/metrics", headers=net.hub.admin_headers) as resp,
    ):
        metrics = (await resp.text()).splitlines()
    assert 'cattc_member_eoi_dropped{member="vn"} 6.0' in metrics
    assert 'cattc_member_eoi_dropped{member="my"} 3.0' in metrics


def _notice(net: Network, reader: str, owner: str, listing_id: str | None) -> dict[str, Any]:
    rt = net.hub.runtime
    counterpart: dict[str, Any] = {
        "owner": owner,
        "kind": "offer",
        "descriptor": "a listing held by the center of Thailand",
        "fields": {},
    }
    if listing_id is not None:
        counterpart["listing_id"] = listing_id
    notice = {
        "type": "match_notice",
        "v": PROTOCOL_VERSION,
        "issuer": rt.node_id,
        "ts": rt.clock(),
        "audience": reader,
        "own_listing": {"id": "my-req-0001", "role": "request"},
        "counterpart": counterpart,
        "score": 0.5,
        "explanation": {"components": {}, "shared_terms": [], "shared_codes": []},
    }
    return sign_object(notice, rt.node_id, rt.keys.active)


async def test_a_match_notice_naming_the_listing_lets_its_reader_ask(
    node_factory: NodeFactory,
) -> None:
    """my may not see th's network offers; once the hub's notice named one to it, my may
    express interest in that one. A notice about a match that did not name the other
    listing (its owner's rules did not let it) opens nothing."""
    net = await eoi_network(node_factory)
    rt = net.hub.runtime
    named, unnamed = NETWORK_OFFER, "th-off-0005"
    with Session(rt.engine) as session, session.begin():
        for listing_id, shown in ((named, named), (unnamed, None)):
            session.add(
                NoticeSentRow(
                    reader="my",
                    own_id="my-req-0001",
                    cp_owner="th",
                    cp_id=listing_id,
                    score=0.5,
                    at=rt.clock(),
                )
            )
            post_to_outbox(session, "my", _notice(net, "my", "th", shown), rt.clock())
    named_id, s1, b1 = await send(net, "my", "th", named)
    unnamed_id, s2, b2 = await send(net, "my", "th", unnamed)
    assert (s1, b1["state"], s2, b2["state"]) == (202, "forwarded", 202, "forwarded")
    states = hub_states(net)
    assert (states[named_id][2], states[unnamed_id][2]) == ("forwarded", "dropped")
    assert [f["eoi"]["id"] for f in forwards_for(net, "th")] == [named_id]
