"""Shared pieces of the marketplace tests: a hub whose members show offers and requests
to anyone, a visitor's browser-like HTTP session (it keeps cookies), and the visitor's
form as a page gives it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.market.pages import listing_url
from node.storage.models import OutboxRow, VisitorInterestRow
from policies import default_policy_yaml
from tests.federation.network import Network, NodeFactory, allowed_for, held_by
from tests.hub.test_search import PUBLIC_RULES, public_expected, start_public_network
from tests.nodes import RunningNode

_TOKEN = re.compile(r'name="form_token" value="([0-9a-f]{64})"')


async def market_network(node_factory: NodeFactory, **kwargs: Any) -> Network:
    """The hub and th, vn, each showing its public offers and requests to anyone, after
    one sync round."""
    net = await start_public_network(node_factory, **kwargs)
    net.hub.runtime.policy.apply(default_policy_yaml("cn") + PUBLIC_RULES, author="test")
    await pull_members(net)
    return net


async def pull_members(net: Network, deadline_s: float = 60.0) -> None:
    """One pull of each member by the hub. A pull is skipped while another holds the
    member's lock (on PostgreSQL an advisory lock, which other tests' hubs of the same
    name share), so each is tried again until it ran, within the deadline."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    for peer in sorted(net.nodes):
        while True:
            run = await net.hub.sync.sync_peer(peer, force=True)
            if run is not None:
                assert run.error is None, run.error
                break
            assert loop.time() < until, f"the hub could not pull {peer}"


def shown_expected(net: Network) -> dict[tuple[str, str], dict[str, Any]]:
    """(owner, listing id) -> the view its owner gives anyone, the hub's own included."""
    own = {("cn", lid): view for lid, view in allowed_for(net.hub, "*").items()}
    return {**public_expected(net), **own}


def public_keys(net: Network) -> list[tuple[str, str]]:
    return sorted(public_expected(net))


def hidden_key(net: Network, owner: str = "th") -> tuple[str, str]:
    """A listing of ``owner`` the hub holds but does not show the public."""
    shown = set(public_expected(net))
    hidden = sorted((owner, lid) for lid in held_by(net.hub, owner) if (owner, lid) not in shown)
    assert hidden, "the hub holds no hidden listing of " + owner
    return hidden[0]


def visitor(headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
    """A visitor's session: it keeps the hub's cookies (loopback addresses included);
    ``headers`` go with every request (a reverse proxy's ``X-Forwarded-For``)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers)


async def page(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def form_token(http: aiohttp.ClientSession, hub: RunningNode, owner: str, lid: str) -> str:
    status, html = await page(http, hub.url + listing_url(owner, lid))
    assert status == 200, html
    found = _TOKEN.search(html)
    assert found, "no form token on the listing page"
    return found.group(1)


def interest_form(token: str, **fields: str) -> dict[str, str]:
    form = {
        "form_token": token,
        "name": "Nguyen Thi Lan",
        "email": "lan@sme.example",
        "organization": "Hanoi Agritech SME",
        "message": "We would like to license this for rice farms near Hanoi.",
        "website": "",
    }
    form.update(fields)
    return form


async def post_interest(
    http: aiohttp.ClientSession, hub: RunningNode, owner: str, lid: str, form: dict[str, str]
) -> tuple[int, str, str]:
    """(status, Location, body) of the form's post."""
    url = hub.url + listing_url(owner, lid) + "/interest"
    async with http.post(url, data=form, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def express(
    http: aiohttp.ClientSession,
    hub: RunningNode,
    owner: str,
    lid: str,
    *,
    token_from: tuple[str, str] | None = None,
    **fields: str,
) -> tuple[int, str, str]:
    """Open a listing's page (``token_from``: another one, for a listing not shown) for
    the form's token, and send the form about ``owner``'s ``lid``."""
    token = await form_token(http, hub, *(token_from or (owner, lid)))
    return await post_interest(http, hub, owner, lid, interest_form(token, **fields))


def public_keys_of(hub: RunningNode) -> list[tuple[str, str]]:
    """What the hub's public search holds, from its rows."""
    from node.storage.models import SearchDocRow

    with Session(hub.runtime.engine) as session:
        rows = session.execute(select(SearchDocRow.owner, SearchDocRow.listing_id)).all()
    return sorted((str(o), str(i)) for o, i in rows)


def interests(hub: RunningNode) -> list[VisitorInterestRow]:
    with Session(hub.runtime.engine) as session:
        rows = session.scalars(select(VisitorInterestRow).order_by(VisitorInterestRow.received))
        out = list(rows)
        session.expunge_all()
    return out


def forwards_to(hub: RunningNode, owner: str) -> list[str]:
    """The objects of type eoi_forward in the hub's feed for ``owner``, as JSON text."""
    with Session(hub.runtime.engine) as session:
        return list(
            session.scalars(
                select(OutboxRow.obj).where(
                    OutboxRow.reader == owner, OutboxRow.type == "eoi_forward"
                )
            )
        )
