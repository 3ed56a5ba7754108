"""The reader's item checks in worker processes (sync.verify_pool): the same verdicts as
the in-process path, a forged item refused and quarantined alike, and the page applied;
whole pages read there from their bytes (sync.page_jobs) once a long pull runs, with
the same result, and any page the workers cannot vouch for read in-process instead."""

from __future__ import annotations

import asyncio
import copy
import json
import multiprocessing
import time
from multiprocessing.context import SpawnProcess
from typing import Any

import pytest

from node.hub.match_worker import PROCESS_NAME
from protocol.canonical import canonical_bytes
from sync import verify_pool
from sync.verify import CheckedPage, PageError, check_items, open_page, page_signature_holds
from sync.verify_pool import VerifyPool
from tests.federation import test_security
from tests.federation.test_security import (
    BAD_ITEMS,
    FakePeer,
    feed_page,
    held,
    quarantined,
    summary,
)
from tests.nodes import RunningNode

# The real hub and the fake th of the reader's security tests (fixtures, by name).
fake_th = test_security.fake_th
hub = test_security.hub


def mixed_items() -> tuple[list[Any], dict[int, str]]:
    """Good items and every kind of bad one, interleaved: the page, and index -> code."""
    items: list[Any] = []
    codes: dict[int, str] = {}
    for n, kind in enumerate(sorted(BAD_ITEMS)):
        make_bad, code = BAD_ITEMS[kind]
        items.append(summary(f"th-off-{n + 10:04d}"))
        codes[len(items)] = code
        items.append(make_bad())
    return items, codes


async def test_the_pool_gives_the_verdicts_of_the_in_process_check(hub: RunningNode) -> None:
    items, codes = mixed_items()
    page = feed_page(items, after=None, next_cursor="c1", more=True)
    keys = hub.sync.keys.keys("th")
    opened = open_page(page, peer="th", me="cn", after=None, keys=keys)
    here = check_items(opened, peer="th", me="cn", keys=keys, hub="cn")
    pool = VerifyPool(2, min_items=1, min_backlog=0)
    try:
        there = await pool.check_items(opened, peer="th", me="cn", keys=keys, hub="cn")
    finally:
        pool.close()
    assert there is not None
    assert [(i.obj, i.canonical, i.key_name) for i in there.items] == [
        (i.obj, i.canonical, i.key_name) for i in here.items
    ]
    assert [(r.obj, r.code, r.message) for r in there.rejected] == [
        (r.obj, r.code, r.message) for r in here.rejected
    ]
    assert [r.code for r in there.rejected] == [codes[i] for i in sorted(codes)]
    assert len(there.items) == len(items) - len(codes)


async def test_idle_workers_stop_and_the_next_big_page_starts_them_again(
    hub: RunningNode,
) -> None:
    """A node that pulls a long feed now and then keeps no processes between pulls."""
    items, codes = mixed_items()
    page = feed_page(items, after=None, next_cursor="c1", more=True)
    keys = hub.sync.keys.keys("th")
    opened = open_page(page, peer="th", me="cn", after=None, keys=keys)
    pool = VerifyPool(2, min_items=1, idle_s=0.3, min_backlog=0)
    before = {p.pid for p in multiprocessing.active_children()}
    try:
        first = await pool.check_items(opened, peer="th", me="cn", keys=keys, hub="cn")
        assert first is not None and pool.running
        # Only the pool's own (spawned) processes: the hub fixture's matching
        # worker (spawned too) may start in the same window.
        workers = [
            p
            for p in multiprocessing.active_children()
            if p.pid not in before
            and isinstance(p, SpawnProcess)
            and not p.name.startswith(PROCESS_NAME)
        ]
        assert workers
        deadline = time.monotonic() + 30
        while (pool.running or any(p.is_alive() for p in workers)) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        assert not pool.running
        assert not [p for p in workers if p.is_alive()], "idle verify workers still run"
        again = await pool.check_items(opened, peer="th", me="cn", keys=keys, hub="cn")
        assert again is not None and pool.running
        assert [r.code for r in again.rejected] == [codes[i] for i in sorted(codes)]
    finally:
        pool.close()


async def test_a_small_page_or_no_workers_is_checked_in_process(hub: RunningNode) -> None:
    page = feed_page([summary("th-off-0001")], after=None, next_cursor="c1", more=True)
    keys = hub.sync.keys.keys("th")
    opened = open_page(page, peer="th", me="cn", after=None, keys=keys)
    for pool in (VerifyPool(2, min_items=2), VerifyPool(0, min_items=1)):
        assert await pool.check_items(opened, peer="th", me="cn", keys=keys) is None
        pool.close()


async def test_a_short_pull_starts_no_process(hub: RunningNode) -> None:
    """A pull with few feed entries left (a member reading the hub's own listings) is
    checked here, however big its page: the processes start for a long pull, and once
    running check its every page, its last included."""
    items, _ = mixed_items()
    keys = hub.sync.keys.keys("th")

    def opened(**kwargs: Any) -> Any:
        page = feed_page(items, after=None, next_cursor="c1", **kwargs)
        return open_page(page, peer="th", me="cn", after=None, keys=keys)

    pool = VerifyPool(2, min_items=1, min_backlog=100)
    try:
        for short in (opened(), opened(more=True, head=109)):  # last page; 99 left
            assert await pool.check_items(short, peer="th", me="cn", keys=keys) is None
            assert not pool.running
        long = opened(more=True, head=110)  # 100 entries left
        assert await pool.check_items(long, peer="th", me="cn", keys=keys) is not None
        assert pool.running
        last = opened()
        assert await pool.check_items(last, peer="th", me="cn", keys=keys) is not None
    finally:
        pool.close()


async def test_a_pull_that_caught_up_stops_the_workers_unless_another_pull_runs(
    hub: RunningNode, fake_th: FakePeer
) -> None:
    """The workers of a long pull are not kept ``idle_s`` once every pull has caught up:
    what follows a first sync is small pages, checked in-process."""
    items, _ = mixed_items()
    fake_th.pages[None] = feed_page(items, after=None, next_cursor="c1", more=True)
    fake_th.pages["c1"] = feed_page([], after="c1", next_cursor="c2")
    fake_th.pages["c2"] = feed_page([], after="c2", next_cursor="c2")  # nothing new since
    pool = VerifyPool(2, min_items=1, min_backlog=0, idle_s=3600)
    hub.sync.reader.pool = pool
    other = hub.sync._locks.setdefault("vn", asyncio.Lock())
    try:
        async with other:  # vn's pull still going: the workers stay
            run = await hub.sync.sync_peer("th", force=True)
            assert run is not None and run.error is None and not run.more, run
            assert pool.running
        run = await hub.sync.sync_peer("th", force=True)  # caught up, alone: they stop
        assert run is not None and run.error is None, run
        assert not pool.running
    finally:
        pool.close()


async def test_a_reader_with_a_pool_quarantines_bad_items_and_applies_the_rest(
    hub: RunningNode, fake_th: FakePeer
) -> None:
    items, codes = mixed_items()
    fake_th.pages[None] = feed_page(items, after=None, next_cursor="c1", more=True)
    fake_th.pages["c1"] = feed_page([], after="c1", next_cursor="c2")
    pool = VerifyPool(2, min_items=1, min_backlog=0)
    hub.sync.reader.pool = pool
    try:
        run = await hub.sync.sync_peer("th", force=True)
    finally:
        pool.close()
    assert run is not None and run.error is None, run
    good = len(items) - len(codes)
    assert (run.applied, run.rejected) == (good, len(codes))
    assert len(held(hub)) == good
    got = quarantined(hub)
    assert [code for _, code, _, _ in got] == [codes[i] for i in sorted(codes)]
    assert [item for _, _, _, item in got] == [items[i] for i in sorted(codes)]


def _outcome(checked: CheckedPage) -> tuple[list[Any], list[Any], list[Any]]:
    return (
        checked.page["items"],
        [(i.obj, i.canonical, i.key_name) for i in checked.items],
        [(r.obj, r.code, r.message) for r in checked.rejected],
    )


async def read_in_workers(
    body: bytes, after: str | None, keys: Any, *, page_size: int
) -> tuple[CheckedPage | None, list[Any]]:
    """th's page ``body`` read by a pool of two workers for cn: the result, and what the
    pool told as opened."""
    told: list[Any] = []
    pool = VerifyPool(2, min_backlog=0)
    try:
        got = await pool.read_page(
            body,
            peer="th",
            me="cn",
            after=after,
            keys=keys,
            hub="cn",
            page_size=page_size,
            opened=told.append,
        )
    finally:
        pool.close()
    return got, told


@pytest.mark.parametrize("encoding", ["canonical", "as_json_dumps_sends_it"])
async def test_a_page_read_whole_by_the_workers_gives_the_in_process_result(
    hub: RunningNode, encoding: str
) -> None:
    """From the page's bytes alone (its owner's canonical bytes, or another node's
    spacing, parsed strictly there too): the same items, bytes, keys and refusals."""
    items, codes = mixed_items()
    page = feed_page(items, after="c0", next_cursor="c1", more=True)
    body = canonical_bytes(page) if encoding == "canonical" else json.dumps(page).encode()
    keys = hub.sync.keys.keys("th")
    here = check_items(
        open_page(json.loads(body), peer="th", me="cn", after="c0", keys=keys),
        peer="th",
        me="cn",
        keys=keys,
        hub="cn",
    )
    there, told = await read_in_workers(body, "c0", keys, page_size=500)
    assert there is not None
    assert _outcome(there) == _outcome(here)
    assert [r.code for r in there.rejected] == [codes[i] for i in sorted(codes)]
    assert told == [{k: v for k, v in page.items() if k != "items"}]
    assert (there.page["next"], there.page["more"]) == ("c1", True)


def _bodies() -> dict[str, tuple[bytes, str | None]]:
    """Pages the workers must not vouch for: (bytes, the cursor the reader sent)."""
    page = feed_page([summary("th-off-0001")], after="c0", next_cursor="c1", more=True)
    altered = copy.deepcopy(page)
    altered["head"] = 11  # after signing
    plain = canonical_bytes(page)
    return {
        "page signature broken": (canonical_bytes(altered), "c0"),
        "another cursor than the one sent": (plain, "c9"),
        "more items than asked": (
            canonical_bytes(
                feed_page(
                    [summary(f"th-off-{n:04d}") for n in range(3)], after="c0", next_cursor="c1"
                )
            ),
            "c0",
        ),
        "a duplicate key": (plain[:-1] + b',"more":false}', "c0"),
        "not JSON": (plain[:-2], "c0"),
        "items not a list": (canonical_bytes({**page, "items": {}}), "c0"),
        "not an object": (b"[1, 2]", "c0"),
    }


@pytest.mark.parametrize("case", sorted(_bodies()))
async def test_the_workers_vouch_for_no_page_that_does_not_hold(
    hub: RunningNode, case: str
) -> None:
    body, after = _bodies()[case]
    keys = hub.sync.keys.keys("th")
    got, told = await read_in_workers(body, after, keys, page_size=2)
    assert got is None
    assert told == []


async def _pull_through(
    hub: RunningNode, pool: VerifyPool, read_page: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """th pulled by the hub with ``pool``, whose ``read_page`` is ``read_page`` (a wrapper
    of the pool's own): the run."""
    monkeypatch.setattr(pool, "read_page", read_page)
    hub.sync.reader.pool = pool
    try:
        return await hub.sync.sync_peer("th", force=True)
    finally:
        pool.close()


async def test_a_long_pull_reads_its_later_pages_in_the_workers_with_the_same_outcome(
    hub: RunningNode, fake_th: FakePeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first page starts the workers; the next ones go to them whole: everything
    good is held, every bad item quarantined with its reason, and a page whose own
    signature does not hold ends the run as it does in-process, its cursor kept."""
    monkeypatch.setattr(verify_pool, "MIN_PAGE_BYTES", 0)
    items, codes = mixed_items()
    second = [summary(f"th-off-{n:04d}") for n in range(200, 230)]
    broken = feed_page([summary("th-off-0300")], after="c3", next_cursor="c4")
    broken["head"] = 11  # after signing
    fake_th.pages[None] = feed_page(items, after=None, next_cursor="c1", more=True)
    fake_th.pages["c1"] = feed_page(items[::-1], after="c1", next_cursor="c2", more=True)
    fake_th.pages["c2"] = feed_page(second, after="c2", next_cursor="c3", more=True)
    fake_th.pages["c3"] = broken
    pool = VerifyPool(2, min_items=1, min_backlog=0)
    whole: dict[str | None, bool] = {}  # by the page's cursor: reads ahead end in any order
    read_page = pool.read_page

    async def counted(*args: Any, **kwargs: Any) -> CheckedPage | None:
        got = await read_page(*args, **kwargs)
        whole[kwargs["after"]] = got is not None
        return got

    run = await _pull_through(hub, pool, counted, monkeypatch)
    assert run is not None
    assert whole == {"c1": True, "c2": True, "c3": False}, (
        "pages 2 and 3 in the workers; 4 refused there"
    )
    assert run.error is not None and run.error.startswith("signature_invalid"), run.error
    good = len(items) - len(codes)
    # The second page repeats the first's items: held already, so not applied again.
    assert (run.applied, run.rejected) == (good + len(second), 2 * len(codes))
    assert len(held(hub)) == good + len(second)
    got = quarantined(hub)
    bad = [items[i] for i in sorted(codes)]
    assert [item for _, _, _, item in got] == bad + bad[::-1]
    assert fake_th.asked[-1] == "c3"
    assert hub.sync.reader.store.peer_cursor("th").cursor == "c3"


async def test_the_next_page_is_read_while_the_one_before_is_still_being_read(
    hub: RunningNode, fake_th: FakePeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages, not parts of one, are what the workers share: once a page's own signature
    holds, the next is fetched and sent to the workers while the first is still being
    read there. Here the first page's read ends only once the next one's has begun (a
    reader that waited for it would wait for ever); every page is applied, in order."""
    monkeypatch.setattr(verify_pool, "MIN_PAGE_BYTES", 0)
    pages = [[summary(f"th-off-{n:04d}") for n in range(k * 10, k * 10 + 10)] for k in range(4)]
    for k, items in enumerate(pages):
        after = None if k == 0 else f"c{k}"
        fake_th.pages[after] = feed_page(
            items, after=after, next_cursor=f"c{k + 1}", more=k < len(pages) - 1
        )
    pool = VerifyPool(2, min_items=1, min_backlog=0)
    read_page = pool.read_page
    begun: list[asyncio.Event] = []

    async def overlapped(*args: Any, **kwargs: Any) -> CheckedPage | None:
        begun.append(asyncio.Event())
        mine = len(begun)
        if mine > 1:
            begun[mine - 2].set()
        got = await read_page(*args, **kwargs)
        if mine < len(pages) - 1:  # pages 2..4 are read there; the last has no next
            await asyncio.wait_for(begun[mine - 1].wait(), 30)
        return got

    run = await _pull_through(hub, pool, overlapped, monkeypatch)
    assert run is not None and run.error is None, run
    assert len(begun) == len(pages) - 1, "the first page is read here, the rest there"
    assert run.applied == sum(len(items) for items in pages)
    assert set(held(hub)) == {item["listing"]["id"] for items in pages for item in items}
    assert hub.sync.reader.store.peer_cursor("th").cursor == f"c{len(pages)}"


def test_a_pages_own_signature_is_checked_over_its_bytes_as_sent(hub: RunningNode) -> None:
    """The workers' first answer on a page (whether to ask for the next) checks the
    page's signature over the items' bytes as they came, without serialising them: it
    holds for the owner's bytes, fails for bytes the owner did not sign, and leaves
    bytes laid out otherwise (another node's spacing) to the full check."""
    keys = hub.sync.keys.keys("th")
    page = feed_page([summary("th-off-0001"), summary("th-off-0002")], after="c0", next_cursor="c1")
    body = canonical_bytes(page)

    def holds(body: bytes, after: str | None = "c0") -> bool:
        return page_signature_holds(
            json.loads(body), body, peer="th", me="cn", after=after, keys=keys
        )

    assert holds(body)
    assert not holds(json.dumps(page).encode())
    altered = copy.deepcopy(page)
    altered["items"][1]["listing"]["version"] = 9  # inside an item, after signing
    with pytest.raises(PageError) as bad:
        holds(canonical_bytes(altered))
    assert bad.value.code == "signature_invalid"
    with pytest.raises(PageError) as elsewhere:
        holds(body, after="c9")
    assert elsewhere.value.code == "cursor_mismatch"


ORPHAN_SCRIPT = """
import asyncio, multiprocessing, os, sys
from sync.verify_pool import VerifyPool

async def main() -> None:
    pool = VerifyPool(2)
    await pool.warm()
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    os._exit(0)  # as a hub killed mid-pull: nobody shuts the pool down

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_pools_workers_exit_when_their_parent_is_gone() -> None:
    import os
    import subprocess
    import sys
    import time

    out = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert pids, "the pool started no worker"

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "orphaned verify workers still run"
    assert os.getpid() not in pids


def _niceness() -> int:
    import os

    return os.nice(0)


async def test_the_workers_run_at_a_lower_cpu_priority_than_the_node() -> None:
    """A long sync's checking takes the cores it can, but the node's own process (its
    requests) comes first."""
    import os

    from sync.verify_pool import WORKER_NICE

    pool = VerifyPool(1)
    try:
        await pool.warm()
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(pool._pool(), _niceness)
    finally:
        pool.close()
    assert got == min(os.nice(0) + WORKER_NICE, 19)
