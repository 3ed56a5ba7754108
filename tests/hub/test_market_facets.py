"""The marketplace's IPC and readiness counts: cached per query, counted again when a
search row changed, but at most once a minute per query (hub guide, "The public
marketplace"); the results themselves are always current."""

from __future__ import annotations

import copy
import re

import aiohttp

from node.market.facets import MIN_AGE_MS
from tests.federation.clocks import HeldClock
from tests.federation.network import NodeFactory, load_records
from tests.hub.market_net import market_network, page, pull_members
from tests.hub.test_market import total
from tests.node.sample import sample_records

NEW_CLASS = "H05H"


def count_of(markup: str, facet: str, value: str) -> int | None:
    found = re.search(
        rf'data-facet="{facet}" data-value="{value}"[^>]*>[^<]*(?:<span[^>]*>[^<]*</span>)?'
        rf'\s*{value}</a>\s*<span class="count">(\d+)<',
        markup,
    )
    return int(found.group(1)) if found else None


async def test_counts_follow_a_change_within_a_minute(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    clock = HeldClock()
    net = await market_network(node_factory, hub_clock=clock)
    hub, th = net.hub, net.nodes["th"]
    _, before = await page(http, hub.url + "/?q=zyxplasma")
    assert total(before) == 0 and count_of(before, "ipc", NEW_CLASS) is None

    record = copy.deepcopy(
        next(
            r
            for r in sample_records("th")
            if r["category"] == "tech_offer" and r["visibility"] == "public"
        )
    )
    record["id"], record["ipc"] = "th-off-plasma", [f"{NEW_CLASS} 1/00"]
    record["title"] = {"en": "Zyxplasma torch for waste"}
    load_records(th, [record])
    await pull_members(net)

    _, markup = await page(http, hub.url + "/?q=zyxplasma")
    assert total(markup) == 1  # the results at once
    assert count_of(markup, "ipc", NEW_CLASS) is None  # the counts within the minute
    _, markup = await page(http, hub.url + f"/?ipc={NEW_CLASS}")
    assert total(markup) == 1 and count_of(markup, "ipc", NEW_CLASS) == 1  # a new query
    clock.now += MIN_AGE_MS + 1
    _, markup = await page(http, hub.url + "/?q=zyxplasma")
    assert count_of(markup, "ipc", NEW_CLASS) == 1
