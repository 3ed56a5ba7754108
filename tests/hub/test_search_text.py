"""Public search's text query on the database's full-text index: any ``q`` is a clear
answer (never a server error, never the engine's query syntax), words are found by their
beginning, text in scripts written without spaces (Thai, Chinese) by any part of it, and
the hub's own listings are indexed once per policy version and change, not per request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from node.hub.search_store import fts5_query, query_terms, tokens, tsquery
from node.storage.models import MetaRow, SearchDocRow
from policies import default_policy_yaml
from tests.federation.network import NodeFactory
from tests.hub.helpers import get_json, start_hub_network
from tests.hub.test_search import (
    ANYONE_RULE,
    keyed,
    search_all,
    start_public_network,
    synced,
)
from tests.nodes import RunningNode

HOSTILE = [
    '"',
    '""',
    '"unbalanced',
    "a OR b",
    "NEAR(a b, 2)",
    "NEAR",
    "*",
    "solar*",
    "^title",
    "title:solar",
    "((",
    "(a AND",
    ")",
    "-x",
    "a - b + c",
    "'; DROP TABLE search_docs; --",
    "\\",
    "%_",
    "café naïve",
    "ṩ̂ ॐ । ๏ ๚",
    "🙂🙂",
    "\u200b\u200d",
    "ก" * 150,
    "中" * 150,
    " ".join(["w"] * 100),
]


def test_tokens_split_scripts_written_without_spaces_into_pairs() -> None:
    assert tokens("Solar PANEL-x2") == ["solar", "panel", "x2"]
    assert tokens("太阳能板") == ["太阳", "阳能", "能板", "板"]
    assert tokens("โซลาร์abc") == ["โซ", "ซล", "ลา", "าร", "ร์", "์", "abc"]
    assert query_terms("太阳能 sol") == [["太阳", "阳能"], ["sol"]]
    assert query_terms("能") == [["能"]]
    assert query_terms('"*() NEAR') == [["near"]]
    terms = [["太阳", "阳能"], ["sol"]]
    assert fts5_query(terms) == '"太阳 阳能" AND "sol"*'
    assert tsquery(terms) == "('太阳' <-> '阳能') & 'sol':*"


def test_short_words_are_whole_words_and_a_query_has_at_most_sixteen_terms() -> None:
    """Each word found by its beginning is one more list of rows for the engine to merge:
    32 one-letter prefixes took 1.5 s over 100,000 summaries, and a stranger could send a
    new such query each time. Words of one or two letters (not of a script without spaces,
    where one character is a word) are whole words; a word repeated counts once."""
    terms = query_terms("a 5 ab abc 能 a ab")
    assert terms == [["a"], ["5"], ["ab"], ["abc"], ["能"]]
    assert fts5_query(terms) == '"a" AND "5" AND "ab" AND "abc"* AND "能"*'
    assert tsquery(terms) == "'a' & '5' & 'ab' & 'abc':* & '能':*"
    many = query_terms(" ".join(f"w{i:03d}" for i in range(40)))
    assert many == [[f"w{i:03d}"] for i in range(16)]
    assert query_terms(" ".join(["solar"] * 40)) == [["solar"]]


async def _search(http: aiohttp.ClientSession, hub: RunningNode, q: str) -> dict[str, Any]:
    status, body = await get_json(http, hub.url + "/api/v1/search", params={"q": q})
    assert status == 200, (q, body)
    assert isinstance(body, dict)
    return body


def _own_docs(hub: RunningNode) -> dict[str, int]:
    with Session(hub.runtime.engine) as session:
        rows = session.execute(select(SearchDocRow.listing_id, SearchDocRow.id))
        return {str(lid): int(doc) for lid, doc in rows}


async def test_any_query_is_answered_and_text_in_any_script_is_found(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, [])
    hub = net.hub
    rt = hub.runtime
    rt.policy.apply(default_policy_yaml("cn") + ANYONE_RULE, author="test")
    offers = sorted(
        (s.record for s in rt.listings.iter_all(include_withdrawn=False)),
        key=lambda r: r["id"],
    )
    offers = [r for r in offers if r["category"] == "tech_offer" and r["visibility"] == "public"]
    thai, chinese = offers[0], offers[1]
    # The sample's expiry dates are real dates: one that passes would leave search.
    later = (dt.date.today() + dt.timedelta(days=180)).isoformat()
    thai["expires"] = chinese["expires"] = later
    thai["title"] = {"en": "Photovoltaic drying", "th": "เครื่องอบแห้งพลังงานแสงอาทิตย์"}
    chinese["title"] = {"en": "Landslide radar", "zh": "山体滑坡雷达监测系统"}
    rt.listings.update(thai["id"], thai)
    rt.listings.update(chinese["id"], chinese)

    for q in HOSTILE:
        await _search(http, hub, q)

    def found(body: dict[str, Any]) -> set[str]:
        return {i["listing"]["id"] for i in body["items"]}

    assert found(await _search(http, hub, "พลังงาน")) == {thai["id"]}  # inside a Thai word
    assert found(await _search(http, hub, "แสงอาทิตย์")) == {thai["id"]}
    assert found(await _search(http, hub, "滑坡")) == {chinese["id"]}
    assert found(await _search(http, hub, "雷")) == {chinese["id"]}
    assert found(await _search(http, hub, "系统 LANDSL")) == {chinese["id"]}
    assert found(await _search(http, hub, "photovolt")) == {thai["id"]}
    assert found(await _search(http, hub, "滑坡 photovoltaic")) == set()
    assert found(await _search(http, hub, '"photovoltaic" AND (')) == {thai["id"]}


async def test_own_listings_are_indexed_once_per_policy_version_and_change(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, [])
    hub = net.hub
    rt = hub.runtime
    rt.policy.apply(default_policy_yaml("cn") + ANYONE_RULE, author="test")
    first = await _search(http, hub, "")
    docs = _own_docs(hub)
    assert len(docs) == first["total"] > 2
    await _search(http, hub, "")
    assert _own_docs(hub) == docs  # a second request computes nothing again

    changed, gone = sorted(docs)[:2]
    record = rt.listings.get(changed).record
    rt.listings.update(changed, {**record, "title": {"en": "Renamed offer"}})
    rt.listings.withdraw(gone)
    body = await _search(http, hub, "renamed")
    assert [i["listing"]["id"] for i in body["items"]] == [changed]
    after = _own_docs(hub)
    assert gone not in after and after[changed] != docs[changed]
    untouched = set(docs) - {changed, gone}
    assert {k: after[k] for k in untouched} == {k: docs[k] for k in untouched}

    # A new policy version: every own listing is shown anew (here: none to anyone).
    rt.policy.apply(default_policy_yaml("cn"), author="test")
    assert (await _search(http, hub, ""))["total"] == 0
    assert _own_docs(hub) == {}


async def test_summaries_held_before_the_index_are_indexed_at_the_first_search(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_public_network(node_factory, load_hub_sample=False)
    await synced(net)
    before = keyed(await search_all(http, net.hub))
    assert before
    # As after an upgrade: the summaries are held, the index is empty and never filled.
    with Session(net.hub.runtime.engine) as session, session.begin():
        for table in ("search_fts", "search_codes", "search_shown", "search_docs", "search_counts"):
            session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
        session.execute(delete(MetaRow).where(MetaRow.key.like("search.%")))
    assert keyed(await search_all(http, net.hub)) == before
    assert (await _search(http, net.hub, ""))["total"] == len(before)  # counted once
