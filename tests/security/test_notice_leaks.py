"""Match notices tell a member only what it may know (issue: trust the hub, finding
"notices leak non-shared listings").

Hub cn and members vn, th and my (my in ``no_mou``), each with the default policy and the
sample listings. A notice to a member may name a counterpart only if the counterpart's
owner lets that member see the listing (for the hub's own listings: the hub's policy for
that member; for anyone: the owner's rule for the public ``*``) or the owner's relay rule
names the member; every term and code it explains with comes from such fields.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.matching.codes import isic_section_of_division
from node.services.audiences import audience_of, membership
from node.storage.models import RemoteListingRow
from policies.evaluate import evaluate, relay_view
from policies.model import Relay
from tests.federation.network import NodeFactory, allowed_for
from tests.hub.helpers import inbox, start_hub_network

_TOKEN = re.compile(r"\w+", re.UNICODE)
_FIXED = {"ipc", "isic", "section", "class"}


def _tokens(value: Any) -> set[str]:
    if isinstance(value, str):
        return {t.casefold() for t in _TOKEN.findall(value)}
    if isinstance(value, dict):
        return set().union(*(_tokens(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_tokens(v) for v in value)) if value else set()
    return set()


def _codes(fields: dict[str, Any]) -> set[str]:
    """Taxonomy ancestors a reader can work out from codes it sees: IPC subclass, class
    and section of each symbol; ISIC division and section of each code."""
    out: set[str] = set()
    for symbol in fields.get("ipc") or []:
        head = symbol.split()[0].casefold()
        out |= {head[:1], head[:3], head[:4]}
    for code in fields.get("isic") or []:
        if code[:2].isdigit():
            out.add(code[:2])
            out.add("abcdefghijklmnopqrstu"[isic_section_of_division(int(code[:2])) - 1])
    return out


def _hub_relay(hub: Any, reader: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """What the hub's own relay rule lets it tell ``reader`` of one of its listings."""
    rt = hub.runtime
    _, compiled = rt.policy.compiled()
    ms = membership(rt.engine)
    me = audience_of(rt.node_id, compiled.policy, ms)
    rule = compiled.lookup(me, record["category"])
    view = evaluate(record, me, compiled, rt.clock()).view
    if rule is None or view is None:
        return None
    return relay_view(view["fields"], rule.rule.relay, audience_of(reader, compiled.policy, ms))


def _member_relay(hub: Any, reader: str, owner: str, lid: str) -> dict[str, Any] | None:
    """What ``owner``'s relay rule, as held by the hub, lets it tell ``reader``."""
    rt = hub.runtime
    with Session(rt.engine) as session:
        row = session.scalar(
            select(RemoteListingRow).where(
                RemoteListingRow.origin == owner, RemoteListingRow.listing_id == lid
            )
        )
        assert row is not None, (owner, lid)
        obj = json.loads(row.signed_bytes)
    relay = obj["policy"].get("relay")
    if not relay:
        return None
    _, compiled = rt.policy.compiled()
    audience = audience_of(reader, compiled.policy, membership(rt.engine))
    rule = Relay(tuple(relay["to"]), tuple(relay["fields"]))
    return relay_view(obj["listing"]["fields"], rule, audience)


Allowed = dict[tuple[str, str], dict[str, dict[str, Any]]]


def _allowed(cache: Allowed, owner: Any, reader: str) -> dict[str, dict[str, Any]]:
    """``allowed_for``, once per owner and reader (policies do not change in this test)."""
    key = (owner.node_id, reader)
    if key not in cache:
        cache[key] = allowed_for(owner, reader)
    return cache[key]


def _may_know(
    net: Any, cache: Allowed, reader: str, owner: str, lid: str
) -> list[dict[str, Any]] | None:
    """The views of (owner, lid) ``reader`` may hold, or None if it may not know of it."""
    views: list[dict[str, Any]] = []
    owner_node = net.node(owner)
    own = _allowed(cache, owner_node, reader).get(lid)
    if own is not None:
        views.append(own["fields"])
    public = _allowed(cache, owner_node, "*").get(lid)
    if public is not None:
        views.append(public["fields"])
    if owner == net.hub.node_id:
        relayed = _hub_relay(net.hub, reader, owner_node.runtime.listings.get(lid).record)
    else:
        relayed = _member_relay(net.hub, reader, owner, lid)
    if relayed is not None:
        views.append(relayed)
    return views or None


async def test_notices_name_only_what_the_reader_may_know(node_factory: NodeFactory) -> None:
    net = await start_hub_network(node_factory, ["vn", "th", "my"])
    runs = await net.hub.sync.sync_all()
    assert all(r.error is None for r in runs), [r.error for r in runs]
    for node in net.nodes.values():
        runs = await node.sync.sync_all()
        assert all(r.error is None for r in runs), [r.error for r in runs]
    hub_records = {s.id: s.record for s in net.hub.runtime.listings.iter_all()}

    checked = 0
    cache: Allowed = {}
    for reader in ("my", "th", "vn"):
        for notice in inbox(net.nodes[reader], "match_notice"):
            cp = notice["counterpart"]
            owner, lid = cp["owner"], cp.get("listing_id")
            assert lid, (reader, cp)  # a notice either names its counterpart or is not sent
            if owner == "cn":
                visibility = hub_records[lid]["visibility"]
                assert visibility != "private", f"{reader} told of the hub's private {lid}"
                if visibility == "bilateral":
                    assert reader in hub_records[lid].get("share_with", []), (reader, lid)
            views = _may_know(net, cache, reader, owner, lid)
            assert views is not None, f"{reader} was told of {owner}/{lid}, which it may not know"
            known = set().union(*(_tokens(v) | _codes(v) for v in views))
            said = _tokens(cp["fields"]) | _tokens(notice["explanation"]["shared_terms"])
            said |= _tokens(notice["explanation"]["shared_codes"]) - _FIXED
            assert said <= known, (reader, owner, lid, sorted(said - known))
            checked += 1
    # vn's listings reach the hub with a relay to ``mou`` only, its experts with no relay:
    # my hears nothing of vn's or th's listings, and nobody of vn's experts.
    vn_experts = {
        s.id
        for s in net.nodes["vn"].runtime.listings.iter_all()
        if s.record["category"] == "expert"
    }
    for reader in ("my", "th"):
        for notice in inbox(net.nodes[reader], "match_notice"):
            cp = notice["counterpart"]
            assert not (reader == "my" and cp["owner"] in ("vn", "th")), (reader, cp)
            assert not (cp["owner"] == "vn" and cp.get("listing_id") in vn_experts), (reader, cp)
    # my (no MoU) still hears of what it may see: the hub's public offers and requests.
    assert any(n["counterpart"]["owner"] == "cn" for n in inbox(net.nodes["my"], "match_notice"))
    assert checked > 0
