"""The public marketplace at the hub: the search page with facets as shareable links and
pages, a listing's page as its owner shows it to anyone, and a visitor's interest that
reaches the owning center's EoI inbox after a sync round (both engines).

The oracle is public search's own JSON (``/api/v1/search``) and each owner's records."""

from __future__ import annotations

import html
import json
import re
from collections import Counter

import aiohttp
import pytest
from sqlalchemy.orm import Session

from node.hub import eoi as eoi_service
from node.hub import search as hub_search
from node.market import pages as market_pages
from node.market.pages import listing_url
from node.storage.models import EoiRow, MemberRow
from node.ui.templating import country_name
from tests.federation.network import NodeFactory
from tests.hub.market_net import (
    express,
    forwards_to,
    interests,
    market_network,
    page,
    public_keys,
    shown_expected,
    visitor,
)
from tests.hub.test_eoi import pull_hub
from tests.hub.test_search import search, search_all

_HIT = re.compile(r'<h3><a href="(/market/listing/[^"]+)">')
_COUNT = re.compile(r"(\d+) listings? found")


def hits(markup: str) -> list[str]:
    return _HIT.findall(markup)


def total(markup: str) -> int:
    found = _COUNT.search(markup)
    return int(found.group(1)) if found else 0


async def test_search_page_with_facets_pages_and_listing_links(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await market_network(node_factory)
    hub = net.hub
    expected = shown_expected(net)
    assert len(expected) > 40
    status, markup = await page(http, hub.url + "/")
    assert status == 200
    assert total(markup) == len(expected)
    first = hits(markup)
    assert len(first) == 20
    assert {listing_url(o, i) for o, i in expected} >= set(first)

    # Pages: every hit once, in the API's order.
    api = await search(http, hub, limit=100)
    want = [listing_url(i["owner"], i["listing"]["id"]) for i in api["items"]]
    seen: list[str] = []
    for number in range(1, -(-len(expected) // 20) + 1):
        status, markup = await page(http, hub.url + f"/?page={number}")
        assert status == 200
        seen.extend(hits(markup))
    assert seen == want[: len(seen)] and len(seen) == len(expected)
    assert 'aria-current="page"' in markup and 'rel="prev"' in markup

    # A facet link is a plain URL that filters; the count beside it is the hits'.
    _, markup = await page(http, hub.url + "/")
    link = re.search(r'<a href="([^"]*)" data-facet="category" data-value="tech_offer"', markup)
    assert link is not None
    url = html.unescape(link.group(1))
    assert url == "/?category=tech_offer"
    _, filtered = await page(http, hub.url + url)
    offers = [k for k, v in expected.items() if v["category"] == "tech_offer"]
    assert total(filtered) == len(offers)
    api = await search(http, hub, category="tech_offer", limit=100)
    assert hits(filtered) == [
        listing_url(i["owner"], i["listing"]["id"]) for i in api["items"][:20]
    ]

    # Sector, country, IPC and TRL filters, each against the owners' views.
    def fields(key: tuple[str, str]) -> dict[str, object]:
        f: dict[str, object] = expected[key]["fields"]
        return f

    sectors = Counter(str(fields(k)["sector"]) for k in expected if fields(k).get("sector"))
    sector, count = sectors.most_common(1)[0]
    _, markup = await page(http, hub.url + f"/?sector={sector}")
    assert total(markup) == count
    assert f'data-facet="sector" data-value="{sector}" aria-current="true"' in markup
    levels = [f.get("trl") for k in expected if isinstance((f := fields(k)).get("trl"), int)]
    at_least_7 = sum(1 for t in levels if isinstance(t, int) and t >= 7)
    _, markup = await page(http, hub.url + "/?trl=7")
    assert total(markup) == at_least_7 > 0
    codes = {k: [str(c) for c in fields(k).get("ipc") or []] for k in expected}  # type: ignore[attr-defined]
    ipc = Counter(c[:4] for k in expected for c in set(codes[k]))
    cls = ipc.most_common(1)[0][0]
    with_cls = {k for k in expected if any(c.startswith(cls) for c in codes[k])}
    _, markup = await page(http, hub.url + "/")
    shown = re.search(rf'data-value="{cls}">\s*{cls}</a>\s*<span class="count">(\d+)<', markup)
    assert shown is not None and int(shown.group(1)) == len(with_cls)
    _, markup = await page(http, hub.url + f"/?ipc={cls}")
    assert total(markup) == len(with_cls)
    _, markup = await page(http, hub.url + "/?country=VN&category=tech_request")
    assert total(markup) == sum(
        1
        for k, v in expected.items()
        if v["category"] == "tech_request" and (fields(k).get("country") or k[0].upper()) == "VN"
    )

    # Words, and what does not fit is left out, not an error.
    _, markup = await page(http, hub.url + "/?trl=12&page=x&country=Vietnam")
    assert total(markup) == len(expected)
    assert "were not understood" in markup

    # The listing's page: the public view, its owning center, the form.
    owner, lid = sorted(k for k in expected if k[0] == "th")[0]
    status, markup = await page(http, hub.url + listing_url(owner, lid))
    assert status == 200
    assert html.escape(expected[(owner, lid)]["fields"]["title"]["en"]) in markup
    assert "Express interest" in markup and 'name="form_token"' in markup
    with Session(hub.runtime.engine) as session:
        member = session.get(MemberRow, owner)
        assert member is not None
        # The owner's country by its name in the page's language, not its code.
        country_shown = country_name(member.country, "en")
        assert html.escape(member.name) in markup
        assert country_shown != member.country and f"({country_shown})" in markup
    status, _ = await page(http, hub.url + listing_url(owner, "no-such-listing"))
    assert status == 404


async def test_a_visitors_interest_reaches_the_owner_after_a_sync_round(
    node_factory: NodeFactory,
) -> None:
    net = await market_network(node_factory)
    hub, th = net.hub, net.nodes["th"]
    owner, lid = next(k for k in public_keys(net) if k[0] == "th")
    message = "We grow rice near Hanoi.\n<b>Price?</b> & terms"
    async with visitor() as http:
        status, location, _ = await express(http, hub, owner, lid, message=message)
        assert (status, location) == (303, "/market/sent")
        status, markup = await page(http, hub.url + location)
        assert status == 200 and "sent to the center" in markup
    [row] = interests(hub)
    assert (row.owner, row.listing_id, row.state, row.message) == (owner, lid, "forwarded", message)
    assert len(row.address_sha256) == 64 and "127.0.0.1" not in row.address_sha256
    [forward] = forwards_to(hub, "th")
    eoi = json.loads(forward)["eoi"]
    assert eoi["issuer"] == "cn" and eoi["id"] == row.id
    assert eoi["visitor"] == {
        "name": "Nguyen Thi Lan",
        "email": "lan@sme.example",
        "organization": "Hanoi Agritech SME",
    }
    assert forwards_to(hub, "vn") == []  # the visitor's contact goes to the owner only

    await pull_hub(th)
    got = {e["id"]: e for e in await th.runtime.run(eoi_service.list_eois, th.runtime, 50)}
    mine = got[row.id]
    assert (mine["state"], mine["requester"], mine["listing_id"]) == ("forwarded", "cn", lid)
    assert mine["message"] == message
    assert mine["visitor"]["email"] == "lan@sme.example"
    with Session(th.runtime.engine) as session:
        stored = session.get(EoiRow, row.id)
        assert stored is not None and stored.owner == "th"

    # The owner answers as it answers a member: the hub keeps the answer, passes nothing on.
    reply = eoi_service.answer(th.runtime, row.id, "accepted", ("email",))
    took = eoi_service.hub_receive_reply(hub.runtime, "th", reply)
    assert took["state"] == "introduced"
    assert forwards_to(hub, "vn") == []


async def test_visitors_behind_the_hubs_proxy_are_told_apart_and_get_secure_cookies(
    node_factory: NodeFactory,
) -> None:
    """Behind the documented TLS reverse proxy every visitor arrives from 127.0.0.1: the
    message limits count the address the proxy saw (X-Forwarded-For from a trusted
    proxy), and the visitor cookie is Secure since the hub's public address is https."""
    net = await market_network(node_factory)
    hub = net.hub
    hub.runtime.config.trusted_proxies = ["127.0.0.1", "::1"]  # the proxy on the same machine
    owner, lid = next(k for k in public_keys(net) if k[0] == "th")
    for address in ("198.51.100.7", "203.0.113.9"):
        async with visitor({"X-Forwarded-For": address}) as http:
            status, _, _ = await express(http, hub, owner, lid, message=f"from {address}")
            assert status == 303
    rows = interests(hub)
    assert len(rows) == 2 and len({row.address_sha256 for row in rows}) == 2
    hub.runtime.config.base_url = "https://hub.example.org"
    async with visitor() as http, http.get(hub.url + listing_url(owner, lid)) as resp:
        assert resp.status == 200
        cookie = next(c for c in resp.headers.getall("Set-Cookie") if "cattc_market=" in c)
        assert "secure" in {a.strip().lower() for a in cookie.split(";")[1:]}


async def test_search_page_past_the_counting_cap_says_more_than_and_pages_on(
    node_factory: NodeFactory, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public search counts the hits of a word up to a cap; past it the page says "more
    than" that, and its pager still reaches every hit (the API's next_offset is exact)."""
    monkeypatch.setattr(hub_search, "COUNT_CAP", 5)
    monkeypatch.setattr(market_pages, "PAGE_SIZE", 3)
    net = await market_network(node_factory)
    hub = net.hub
    for word in ("water", "system", "farmers", "production", "rice", "cost"):
        want = [
            listing_url(i["owner"], i["listing"]["id"]) for i in await search_all(http, hub, q=word)
        ]
        if len(want) > 8:
            break
    else:
        pytest.fail("no word of the sample data has more than 8 hits")
    assert (await search(http, hub, q=word))["total_exact"] is False
    url: str | None = f"/?q={word}"
    seen: list[str] = []
    while url is not None:
        status, markup = await page(http, hub.url + url)
        assert status == 200
        assert "More than 5 listings found" in markup
        seen.extend(hits(markup))
        link = re.search(r'<a href="([^"]+)" rel="next">', markup)
        url = html.unescape(link.group(1)) if link else None
    assert seen == want
