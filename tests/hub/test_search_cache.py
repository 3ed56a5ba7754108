"""Public search answers from its cache while no search row changed (node.hub.search):
a repeated search reads one statement, never the index; a page is computed once for
all the searches that ask it at the same time; while one search computes a page anew
after a write, the others answer the previous page, for at most ``STALE_S``; and with
nothing being computed, a search after a write sees the write."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from node.hub.search import (
    ANSWER_CACHE_BYTES,
    REFRESH_S,
    STALE_S,
    SearchIndex,
    SearchQuery,
    _Answer,
    search_body,
)
from node.hub.search import search as search_api
from node.web.appkeys import SEARCH_INDEX
from tests.federation.network import NodeFactory
from tests.hub.test_search import search, start_public_network, synced

WAIT_S = 10.0


def _made(generation: Any, label: str, *, age_s: float = 0.0, until: int | None = None) -> _Answer:
    page = [("th", json.dumps({"id": label}))]
    return _Answer(generation, until, time.monotonic() - age_s, (1, {}), page)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


class Blocked:
    """A computation that waits until the test lets it finish."""

    def __init__(self, answer: _Answer) -> None:
        self.answer = answer
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> _Answer:
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT_S)
        return self.answer


def _label(found: _Answer) -> str:
    return str(json.loads(found.page[0][1])["id"])


def test_an_answer_is_kept_per_generation_and_until_the_first_expiry() -> None:
    index = SearchIndex()
    q = SearchQuery(q="solar")
    calls: list[int] = []

    def compute(generation: Any, until: int | None = None) -> Any:
        def run() -> _Answer:
            calls.append(1)
            return _made(generation, f"at {generation}", until=until)

        return run

    assert _label(index.answer(q, (1, None), 100, compute((1, None), until=200))) == "at (1, None)"
    assert _label(index.answer(q, (1, None), 150, compute((1, None)))) == "at (1, None)"
    assert len(calls) == 1
    # Another page of the same query is another answer.
    index.answer(SearchQuery(q="solar", offset=20), (1, None), 150, compute((1, None)))
    assert len(calls) == 2
    # The first expiry among the rows passed: computed anew (rows expire by the clock).
    index.answer(q, (1, None), 200, compute((1, None)))
    assert len(calls) == 3
    # A row written (nothing else being computed): computed anew at once.
    assert _label(index.answer(q, (2, None), 200, compute((2, None)))) == "at (2, None)"
    assert len(calls) == 4


def _never(generation: Any) -> Any:
    return lambda: _made(generation, "never")


def _release_later(blocked: Blocked) -> None:
    """Let ``blocked`` finish in a moment, while this thread is in a search: a search that
    waits for it gets its page; one that does not answers at once with its own."""
    timer = threading.Timer(0.2, blocked.release.set)
    timer.daemon = True
    timer.start()


def test_searches_of_one_page_at_once_compute_it_once(pool: ThreadPoolExecutor) -> None:
    index = SearchIndex()
    q = SearchQuery(q="rice")
    first = Blocked(_made(1, "one"))
    a: Future[_Answer] = pool.submit(index.answer, q, 1, 0, first)
    assert first.started.wait(WAIT_S)
    _release_later(first)
    assert _label(index.answer(q, 1, 0, _never(1))) == "one"  # waited for a's page
    assert _label(a.result(WAIT_S)) == "one"
    assert first.calls == 1


def test_the_previous_page_is_answered_while_another_search_computes_it_anew(
    pool: ThreadPoolExecutor,
) -> None:
    index = SearchIndex()
    q = SearchQuery(q="fish")
    index.answer(q, 1, 0, lambda: _made(1, "before the write"))
    anew = Blocked(_made(2, "after the write"))
    a = pool.submit(index.answer, q, 2, 0, anew)
    assert anew.started.wait(WAIT_S)
    # The same page is computed anew meanwhile: answered from the previous rows, at once.
    assert _label(index.answer(q, 2, 0, _never(2))) == "before the write"
    anew.release.set()
    assert _label(a.result(WAIT_S)) == "after the write"
    assert _label(index.answer(q, 2, 0, _never(2))) == "after the write"


def test_while_others_search_the_previous_page_is_answered_at_once(
    pool: ThreadPoolExecutor,
) -> None:
    index = SearchIndex()
    q = SearchQuery(q="coffee")
    index.answer(q, 1, 0, lambda: _made(1, "young"))
    other = Blocked(_made(1, "other"))  # another search, in progress meanwhile
    running = pool.submit(index.answer, SearchQuery(q="tea"), 1, 0, other)
    assert other.started.wait(WAIT_S)
    try:
        assert _label(index.answer(q, 2, 0, _never(2))) == "young"
    finally:
        other.release.set()
    running.result(WAIT_S)
    # Alone, a search computes the current page.
    assert _label(index.answer(q, 2, 0, lambda: _made(2, "current"))) == "current"


def test_a_page_older_than_the_refresh_interval_is_computed_anew_in_the_background(
    pool: ThreadPoolExecutor,
) -> None:
    index = SearchIndex()
    q = SearchQuery(q="coffee")
    index.answer(q, 1, 0, lambda: _made(1, "old", age_s=REFRESH_S + 0.1))
    other = Blocked(_made(1, "other"))
    pool.submit(index.answer, SearchQuery(q="tea"), 1, 0, other)
    assert other.started.wait(WAIT_S)
    computed = threading.Event()

    def anew() -> _Answer:
        computed.set()
        return _made(2, "new")

    try:
        assert _label(index.answer(q, 2, 0, anew)) == "old"  # at once, not waiting
        assert computed.wait(WAIT_S)  # meanwhile, on the search's threads
    finally:
        other.release.set()
    deadline = time.monotonic() + WAIT_S
    while _label(index.answer(q, 2, 0, _never(2))) != "new":
        assert time.monotonic() < deadline, "the page computed in the background is not kept"
    index.close()


def test_a_previous_page_older_than_the_bound_is_not_answered(pool: ThreadPoolExecutor) -> None:
    index = SearchIndex()
    q = SearchQuery(q="pump")
    index.answer(q, 1, 0, lambda: _made(1, "old", age_s=STALE_S + 1))
    anew = Blocked(_made(2, "new"))
    a = pool.submit(index.answer, q, 2, 0, anew)
    assert anew.started.wait(WAIT_S)
    _release_later(anew)
    assert _label(index.answer(q, 2, 0, _never(2))) == "new"  # not "old": it waited
    assert _label(a.result(WAIT_S)) == "new"


def test_a_failed_computation_leaves_no_page_and_lets_the_next_search_compute() -> None:
    index = SearchIndex()
    q = SearchQuery(q="seed")

    def fail() -> _Answer:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        index.answer(q, 1, 0, fail)
    assert _label(index.answer(q, 1, 0, lambda: _made(1, "later"))) == "later"


async def test_a_repeated_search_reads_one_statement_and_a_write_is_seen_at_once(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_public_network(node_factory, load_hub_sample=False)
    await synced(net)
    hub = net.hub
    first = await search(http, hub, limit=5)
    assert first["total"] > 5
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(hub.runtime.engine, "before_cursor_execute", seen)
    try:
        assert await search(http, hub, limit=5) == first
    finally:
        event.remove(hub.runtime.engine, "before_cursor_execute", seen)
    assert len(statements) == 2, statements  # the rows' generation, the members' states
    assert not any("search_fts" in s or "search_shown" in s for s in statements)

    th = net.nodes["th"]
    gone = next(i["listing"]["id"] for i in first["items"] if i["owner"] == "th")
    th.runtime.listings.withdraw(gone)
    await synced(net)
    after = await search(http, hub, limit=100)
    assert after["total"] == first["total"] - 1
    assert ("th", gone) not in {(i["owner"], i["listing"]["id"]) for i in after["items"]}


async def test_a_cached_page_is_sent_as_encoded_once_and_as_search_gives_it(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_public_network(node_factory, load_hub_sample=False)
    await synced(net)
    hub = net.hub
    index = hub.app[SEARCH_INDEX]
    query = SearchQuery(q="solar", limit=5)
    first = await index.run(search_body, hub.runtime, index, query)
    again = await index.run(search_body, hub.runtime, index, query)
    assert again is first  # the cached page's JSON, not encoded anew
    assert json.loads(first) == await index.run(search_api, hub.runtime, index, query)
    assert json.loads(first) == await search(http, hub, q="solar", limit=5)
    assert json.loads(first)["items"]  # the sample has solar offers: not an empty answer


def test_the_pages_kept_are_bounded_by_their_bytes_as_well_as_their_number() -> None:
    """A stranger asking page after page of 100 large hits (a hostile member's listings,
    up to a feed item's size each) grows the hub by at most ANSWER_CACHE_BYTES: pages are
    kept as their hits' JSON text, and the oldest go once the pages kept hold more. Before,
    256 parsed pages were kept whatever their size (a page of 100 such hits is ~9 MB
    parsed)."""
    index = SearchIndex()
    generation = (1, None)
    per_page = 2 * 100 * 20_000  # 100 hits of ~20 KB of JSON, counted twice (nbytes)
    kept = ANSWER_CACHE_BYTES // per_page
    assert 1 <= kept < 20

    def page_of(n: int) -> Any:
        def compute() -> _Answer:
            hits = [
                ("th", json.dumps({"id": f"{n}-{i}", "summary": "x" * (20_000 - 32)}))
                for i in range(100)
            ]
            return _Answer(generation, None, time.monotonic(), (100, {}), hits)

        return compute

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20):
            q = SearchQuery(q="solar", offset=100 * n, limit=100)
            found = index.answer(q, generation, 100, page_of(n))
            assert json.loads(found.page[0][1])["id"] == f"{n}-0"
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    held = list(index._answers.values())
    assert len(held) == kept and sum(a.nbytes for a in held) <= ANSWER_CACHE_BYTES
    assert index._answer_bytes == sum(a.nbytes for a in held)
    assert grown < ANSWER_CACHE_BYTES, grown  # 20 pages were made: 40 MB of JSON
    # The newest pages are the ones kept, answered without computing.
    newest = SearchQuery(q="solar", offset=100 * 19, limit=100)
    assert (
        index.answer(newest, generation, 100, _never(generation))
        .page[0][1]
        .startswith('{"id": "19-0"')
    )
