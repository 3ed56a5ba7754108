"""After a pull that caught up, with no other pull running, the hub gives the heap its
pages left back to the system (``trim_heap``, in a thread), once enough items came in:
the server of a hub that had just pulled 200,000 summaries kept the pages' freed memory."""

from __future__ import annotations

import asyncio
import threading

import pytest

from node.services import heap, sync_manager
from tests.federation import test_security
from tests.federation.test_security import FakePeer, feed_page, held, summary
from tests.nodes import RunningNode

# The real hub and the fake th of the reader's security tests (fixtures, by name).
fake_th = test_security.fake_th
hub = test_security.hub


async def test_a_caught_up_pull_trims_the_heap_off_the_loop_once_enough_came_in(
    hub: RunningNode, fake_th: FakePeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [summary(f"th-off-{n:04d}") for n in range(1, 7)]
    fake_th.pages[None] = feed_page(items[:3], after=None, next_cursor="c1")
    fake_th.pages["c1"] = feed_page(items[3:], after="c1", next_cursor="c2")
    fake_th.pages["c2"] = feed_page([], after="c2", next_cursor="c2")  # nothing new since
    monkeypatch.setattr(sync_manager, "TRIM_AFTER_ITEMS", 5)
    trims: list[str] = []

    def trim() -> bool:
        trims.append(threading.current_thread().name)
        return heap.trim_heap()  # the real call: it must not fail where it exists

    monkeypatch.setattr(sync_manager, "trim_heap", trim)
    loop_thread = threading.current_thread().name
    run = await hub.sync.sync_peer("th", force=True)  # 3 items: under the threshold
    assert run is not None and run.error is None and run.applied == 3, run
    assert trims == [] and hub.sync.untrimmed == 3
    other = hub.sync._locks.setdefault("vn", asyncio.Lock())
    async with other:  # another pull going: not now, its pages are still being made
        run = await hub.sync.sync_peer("th", force=True)
        assert run is not None and run.applied == 3, run
        assert trims == [] and hub.sync.untrimmed == 6
    run = await hub.sync.sync_peer("th", force=True)  # caught up, alone, 6 items in
    assert run is not None and run.error is None and run.applied == 0, run
    assert len(trims) == 1 and trims[0] != loop_thread
    assert hub.sync.untrimmed == 0
    await hub.sync.sync_peer("th", force=True)  # nothing new: no trim
    assert len(trims) == 1
    assert len(held(hub)) == 6
