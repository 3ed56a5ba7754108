"""Public search at the hub (DESIGN 9, 3.5): public-visibility summaries only, filters,
facets and pages; a retraction leaves the results at the next sync; an unreachable
member's copies stay searchable, marked stale with their age, until they expire.

The oracle is each owner's own records and policy: a listing belongs in the results, as
exactly the view its owner gives the public (``*``), when that view exists; the members
here add ``*`` rules for offers and requests to the default policy (which has none).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy.orm import Session

from node.storage.models import ChangeRow
from node.web.appkeys import SEARCH_INDEX
from policies import default_policy_yaml
from tests.federation.clocks import HeldClock
from tests.federation.network import Network, NodeFactory, allowed_for, held_by
from tests.federation.rounds import set_visibility
from tests.hub.helpers import get_json, start_hub_network
from tests.nodes import RunningNode

MEMBERS = ("th", "vn")
ANYONE_RULE = """\
  - audience: "*"
    category: tech_offer
    visibility: [public]
    fields: [title, summary]
"""
PUBLIC_FIELDS = {
    "tech_offer": "[title, summary, keywords, ipc, isic, sector, trl, country]",
    "tech_request": "[title, summary, keywords, ipc, isic, sector, trl_min, country]",
}
PUBLIC_RULES = "".join(
    f'  - audience: "*"\n    category: {category}\n    visibility: [public]\n    fields: {fields}\n'
    for category, fields in PUBLIC_FIELDS.items()
)
Hit = tuple[str, dict[str, Any]]  # (owner, listing view)


async def start_public_network(node_factory: NodeFactory, **kwargs: Any) -> Network:
    """The hub and MEMBERS, each member showing its public offers and requests to anyone."""
    net = await start_hub_network(node_factory, MEMBERS, **kwargs)
    for node in net.nodes.values():
        node.runtime.policy.apply(default_policy_yaml("cn") + PUBLIC_RULES, author="test")
    return net


def public_expected(net: Network) -> dict[tuple[str, str], dict[str, Any]]:
    """(owner, listing id) -> the view each member's policy gives the public (``*``)."""
    return {
        (node_id, lid): view
        for node_id, node in net.nodes.items()
        for lid, view in allowed_for(node, "*").items()
    }


async def search(
    http: aiohttp.ClientSession, hub: RunningNode, **params: str | int
) -> dict[str, Any]:
    status, body = await get_json(http, hub.url + "/api/v1/search", params=params)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def search_all(
    http: aiohttp.ClientSession, hub: RunningNode, **params: str | int
) -> list[dict[str, Any]]:
    """Every hit, page by page (100 a page)."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        body = await search(http, hub, **params, offset=offset, limit=100)
        items.extend(body["items"])
        offset = body["next_offset"]
    return items


def keyed(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {(i["owner"], i["listing"]["id"]): i for i in items}
    assert len(out) == len(items), "a listing appears twice"
    return out


async def synced(net: Network) -> None:
    runs = await net.hub.sync.sync_all()
    assert sorted(r.peer for r in runs) == sorted(net.nodes)
    assert all(r.error is None for r in runs), [r.error for r in runs]


async def test_only_public_summaries_with_filters_and_facets(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_public_network(node_factory)
    await synced(net)
    expected = public_expected(net)
    assert {o for o, _ in expected} == set(MEMBERS)
    # Network-visibility summaries are held too, but are not public.
    held = {(o, lid) for o in MEMBERS for lid in held_by(net.hub, o)}
    assert held > set(expected)

    body = await search(http, net.hub, limit=100)
    assert body["total"] == len(expected)
    got = keyed(body["items"])
    assert set(got) == set(expected)  # nothing of the hub's own: its policy has no '*' rule
    for key, item in got.items():
        assert item["listing"] == expected[key]
        assert item["listing"]["public"] is True
        assert "stale" not in item

    countries = {"th": "TH", "vn": "VN"}

    def fields(key: tuple[str, str]) -> dict[str, Any]:
        f: dict[str, Any] = expected[key]["fields"]
        return f

    async def check(params: dict[str, str | int], keep: Callable[[tuple[str, str]], bool]) -> None:
        want = {k for k in expected if keep(k)}
        assert 0 < len(want) < len(expected), (params, len(want))
        items = await search_all(http, net.hub, **params)
        assert set(keyed(items)) == want, params

    await check({"category": "tech_offer"}, lambda k: expected[k]["category"] == "tech_offer")
    await check({"country": "vn"}, lambda k: (fields(k).get("country") or countries[k[0]]) == "VN")
    ipcs = Counter(c[:3] for k in expected for c in set(fields(k).get("ipc") or []))
    prefix = ipcs.most_common(1)[0][0]
    await check({"ipc": prefix}, lambda k: any(c.startswith(prefix) for c in fields(k)["ipc"]))
    await check(
        {"trl_min": 9}, lambda k: isinstance(fields(k).get("trl"), int) and fields(k)["trl"] >= 9
    )
    await check(
        {"category": "tech_offer", "country": "TH"},
        lambda k: expected[k]["category"] == "tech_offer" and k[0] == "th",
    )

    # Facets count every hit, not only the page shown.
    body = await search(http, net.hub, limit=1)
    assert len(body["items"]) == 1 and body["total"] == len(expected)
    sectors: Counter[str] = Counter()
    for k in expected:
        for s in [fields(k).get("sector"), *(fields(k).get("sectors") or [])]:
            if s:
                sectors[s] += 1
    assert body["facets"] == {
        "category": dict(sorted(Counter(v["category"] for v in expected.values()).items())),
        "country": dict(sorted(Counter(countries[o] for o, _ in expected).items())),
        "sector": dict(sorted(sectors.items())),
    }
    body = await search(http, net.hub, category="tech_request")
    assert body["facets"]["category"] == {"tech_request": body["total"]}

    # Free text: a word of one title finds that listing first.
    key = sorted(expected)[0]
    word = max(fields(key)["title"]["en"].split(), key=len).strip(",.()").lower()
    body = await search(http, net.hub, q=word)
    assert (body["items"][0]["owner"], body["items"][0]["listing"]["id"]) == key


async def test_the_hubs_own_public_listings_as_its_policy_shows_them_to_anyone(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, [])
    hub = net.hub
    assert (await search(http, hub))["total"] == 0  # the default policy has no '*' rule
    rt = hub.runtime
    text = default_policy_yaml("cn") + ANYONE_RULE
    rt.policy.apply(text, author="test")
    own = {
        s.record["id"]: s.record
        for s in rt.listings.iter_all()
        if s.record["category"] == "tech_offer" and s.record["visibility"] == "public"
    }
    now = rt.clock()
    live = {lid for lid, r in own.items() if r["expires"] > now}  # wire form: ms
    assert len(live) > 1
    items = keyed(await search_all(http, hub))
    assert set(items) == {("cn", lid) for lid in live}
    for (_, lid), item in items.items():
        assert set(item["listing"]["fields"]) == {"title", "summary"}
        assert item["listing"]["fields"]["title"] == own[lid]["title"]


async def test_pages_and_limits(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    net = await start_public_network(node_factory, load_hub_sample=False)
    await synced(net)
    total = len(public_expected(net))
    seen: list[tuple[str, str]] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        body = await search(http, net.hub, offset=offset, limit=4)
        assert body["total"] == total
        assert len(body["items"]) == min(4, total - offset)
        seen.extend((i["owner"], i["listing"]["id"]) for i in body["items"])
        offset = body["next_offset"]
        pages += 1
    assert pages == -(-total // 4)
    assert len(seen) == len(set(seen)) == total
    first = await search(http, net.hub, limit=100)
    assert [(i["owner"], i["listing"]["id"]) for i in first["items"]] == seen
    past = await search(http, net.hub, offset=total + 5)
    assert (past["items"], past["next_offset"], past["total"]) == ([], None, total)

    for bad in ({"limit": 101}, {"limit": 0}, {"offset": -1}, {"trl_min": 10}, {"nope": 1}):
        status, err = await get_json(http, net.hub.url + "/api/v1/search", params=bad)
        assert status == 400, bad
        assert err["error"]["code"] == "bad_request"


async def test_withdrawn_and_narrowed_listings_leave_the_results(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_public_network(node_factory, load_hub_sample=False)
    await synced(net)
    before = set(keyed(await search_all(http, net.hub)))
    th = net.nodes["th"]
    withdrawn, narrowed = sorted(lid for o, lid in before if o == "th")[:2]
    th.runtime.listings.withdraw(withdrawn)
    set_visibility(th, narrowed, "network")  # still shared with the hub, no longer public
    await synced(net)
    after = set(keyed(await search_all(http, net.hub)))
    assert after == before - {("th", withdrawn), ("th", narrowed)}
    assert narrowed in held_by(net.hub, "th") and withdrawn not in held_by(net.hub, "th")
    assert after == set(public_expected(net))


async def test_unreachable_member_stays_searchable_marked_stale(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    clock = HeldClock()
    net = await start_public_network(node_factory, hub_clock=clock, load_hub_sample=False)
    await synced(net)
    hub = net.hub
    last_success = clock.now
    before = keyed(await search_all(http, hub))

    # th's node goes away; the hub keeps trying, and time passes beyond three intervals.
    member = hub.runtime.directory.get("th")
    assert member is not None
    member.base_url = "http://127.0.0.1:9"  # the discard port: connection refused
    hub.runtime.directory.upsert(member, create=False)
    interval_ms = int(hub.runtime.config.sync_interval_seconds * 1000)
    clock.now += 2 * interval_ms
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is not None
    items = keyed(await search_all(http, hub))
    assert set(items) == set(before)  # failing, not yet stale: nothing marked
    assert not any(i.get("stale") for i in items.values())

    clock.now += 2 * interval_ms
    await hub.sync.sync_peer("th", force=True)
    await hub.sync.sync_peer("vn", force=True)  # vn is fine and stays fresh
    items = keyed(await search_all(http, hub))
    assert set(items) == set(before)  # never an empty catalogue
    for (owner, _), item in items.items():
        if owner == "th":
            assert item["stale"] is True
            assert item["stale_age_ms"] == clock.now - last_success == 4 * interval_ms
        else:
            assert "stale" not in item and "stale_age_ms" not in item

    # Until they expire: past the first expiry among th's copies, that copy goes.
    th_public = {lid: before[("th", lid)]["listing"]["expires"] for o, lid in before if o == "th"}
    first = min(th_public.values())
    clock.now = first
    gone = {("th", lid) for lid, exp in th_public.items() if exp <= first}
    assert 0 < len(gone) < len(th_public)
    items = keyed(await search_all(http, hub))
    assert set(items) == {
        k for k in before if k not in gone and before[k]["listing"]["expires"] > first
    }
    assert all(i["stale"] for k, i in items.items() if k[0] == "th")


async def test_outbox_entries_do_not_make_searches_index_the_hubs_own_listings_again(
    node_factory: NodeFactory, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's own listings are indexed again when their change log moves; notices
    queued for members (outbox entries of the same log, written all through a sync) are
    not their changes. Indexing them again at every notice held searches (and, through a
    lock, the event loop) behind the sync's writes for seconds."""
    net = await start_hub_network(node_factory, [])
    hub = net.hub
    rt = hub.runtime
    rt.policy.apply(default_policy_yaml("cn") + ANYONE_RULE, author="test")
    before = keyed(await search_all(http, hub))
    assert before
    index = hub.app[SEARCH_INDEX]
    calls: list[str] = []
    indexing = index._refresh

    def counted(*args: Any) -> None:
        calls.append(args[-1])
        indexing(*args)

    monkeypatch.setattr(index, "_refresh", counted)
    with Session(rt.engine) as session, session.begin():
        for n in range(3):
            session.add(
                ChangeRow(listing_id=f"outbox:{n}", version=1, kind="outbox", at=1, reader="th")
            )
    assert keyed(await search_all(http, hub)) == before
    assert calls == []  # nothing of the hub's own changed

    (_, gone) = sorted(before)[0]
    rt.listings.withdraw(gone)
    after = keyed(await search_all(http, hub))
    assert set(after) == set(before) - {("cn", gone)}
    assert len(calls) == 1  # its own change: indexed once, for every search after it
