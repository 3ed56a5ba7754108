"""Checking a page's items in worker processes, so that a reader on a machine with more
than one core verifies at the speed of its cores rather than of one.

The items of a page are split into chunks, each checked by ``sync.verify.check_item`` in a
worker (a ``spawn`` process pool, so no state of the parent is inherited); the results come
back in page order, and the page is then applied by the parent in one transaction, as
before. Only the verdicts travel back (index, key name, or the reason for refusal): the
parent already holds the objects and their bytes. With one core, or a small page, the items
are checked in the calling thread (``check_items``), with the same results.

Once a long pull has started the workers, its later pages go to them as bytes
(``read_page``, ``sync.page_jobs``): each read whole by one worker while the next page is
read by another, so that the node's own process, which also answers requests, keeps only
the applying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from protocol.canonical import canonical_bytes
from protocol.keys import VerifyKeyInfo
from sync.interfaces import RejectedItem, VerifiedItem
from sync.page_jobs import Judged, open_body_kw, read_body_kw
from sync.verify import (
    CheckedPage,
    ItemBytes,
    OpenedPage,
    PageError,
    check_item,
    check_items,
)

logger = logging.getLogger(__name__)
ORPHAN_CHECK_S = 1.0  # how often a worker looks whether its parent is still there
MIN_ITEMS = 64  # below this a page is checked in-process: sending it costs more
# Seconds without a page after which the workers are stopped (started again by the next
# big page): a node that pulls a few small pages a day keeps no idle processes.
IDLE_S = 120.0
# The workers' CPU priority below the node's own process (``os.nice``): on a small
# server the checking of a long sync takes the cores it can, but requests come first.
WORKER_NICE = 5
# Feed entries still to read for which a pull starts the processes: below it, checking in
# the node's own process is done before they would be ready.
MIN_BACKLOG = 10_000
# A page's size in bytes from which, the workers running, it is read there whole
# (``read_page``); a smaller one costs more to send than to read here.
MIN_PAGE_BYTES = 64 * 1024
# (index, key name) for a good item; (index, code, message) for a refused one.
Verdict = tuple[int, str] | tuple[int, str, str]


def default_workers() -> int:
    """Worker processes for this machine: none with one core, else up to two."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 1 else min(cores, 2)


def check_chunk(
    start: int,
    objs: Sequence[Any],
    signed: Sequence[ItemBytes | None],
    *,
    peer: str,
    me: str,
    keys: Mapping[str, VerifyKeyInfo],
    hub: str | None,
) -> list[Verdict]:
    """The verdicts on one chunk of items (run in a worker process)."""
    out: list[Verdict] = []
    for i, (obj, b) in enumerate(zip(objs, signed, strict=True), start=start):
        try:
            out.append(
                (i, check_item(obj, peer=peer, me=me, keys=keys, signed=b, hub=hub).key_name)
            )
        except PageError as exc:
            out.append((i, exc.code, exc.message))
    return out


class VerifyPool:
    """A process pool for item checks; ``workers`` 0 checks everything in-process."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        min_items: int = MIN_ITEMS,
        idle_s: float = IDLE_S,
        min_backlog: int = MIN_BACKLOG,
    ) -> None:
        """``min_backlog``: feed entries still to read (the page's ``head`` less its
        ``position``) for which the processes are started; once started, every page of
        ``min_items`` or more is checked there."""
        self.workers = default_workers() if workers is None else workers
        self.min_items = min_items
        self.min_backlog = min_backlog
        self.idle_s = idle_s
        self._executor: Executor | None = None
        self._busy = 0
        self._idle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """Whether the worker processes are started."""
        return self._executor is not None

    def _stop_if_idle(self) -> None:
        self._idle = None
        if self._busy == 0:
            self.close(wait=False)  # the workers exit on their own: nothing waits here

    def release(self) -> None:
        """Stop the workers now, not ``idle_s`` later, unless a page is being checked:
        the pulls that needed them have caught up (their 130 MB each are back at once)."""
        if self._idle is not None:  # set only while nothing is checked
            self._idle.cancel()
        self._stop_if_idle()

    def _pool(self) -> Executor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_interrupts,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def check_items(
        self,
        opened: OpenedPage,
        *,
        peer: str,
        me: str,
        keys: Mapping[str, VerifyKeyInfo],
        hub: str | None = None,
    ) -> CheckedPage | None:
        """The page's items checked in the pool, or None when it should be checked
        in-process (no workers, or too few items to be worth sending)."""
        objs: list[Any] = opened.page["items"]
        if self.workers < 1 or len(objs) < self.min_items:
            return None
        if self._executor is None and _backlog(opened.page) < self.min_backlog:
            # A short pull (a member reading the hub's feed now and then): starting the
            # processes (each imports the checking code, ~130 MB and a second of CPU) costs
            # more than checking it here. They start for a long one, and stay while in use.
            return None
        if not _can_send(keys, peer):
            return None
        loop = asyncio.get_running_loop()
        with self._in_use(loop):
            return await self._check(loop, opened, objs, peer=peer, me=me, keys=keys, hub=hub)

    def reads_pages(self, size: int) -> bool:
        """Whether a page of ``size`` bytes is read in the workers (``read_page``): while
        they run (a long pull started them), for a page big enough to be worth sending."""
        return self.workers >= 1 and self._executor is not None and size >= MIN_PAGE_BYTES

    async def read_page(
        self,
        body: bytes,
        *,
        peer: str,
        me: str,
        after: str | None,
        keys: Mapping[str, VerifyKeyInfo],
        hub: str | None,
        page_size: int,
        opened: Callable[[Mapping[str, Any]], None],
    ) -> CheckedPage | None:
        """The page in ``body`` read in the workers, as two jobs sent together: one says
        whether the page's own signature holds, the other reads the page whole.
        ``opened`` is called with the page's own members as soon as the first says it
        holds (the reader asks for the next page meanwhile, and a reader that keeps
        more than one page in the workers has another worker read that one). None when
        the workers cannot vouch for the page (it is then read in-process, which says
        why)."""
        if not _can_send(keys, peer):
            return None
        loop = asyncio.get_running_loop()
        with self._in_use(loop):
            pool = self._pool()
            kw: dict[str, Any] = {
                "peer": peer,
                "me": me,
                "keys": keys,
                "after": after,
                "page_size": page_size,
            }
            head = loop.run_in_executor(pool, open_body_kw, body, kw)
            whole = loop.run_in_executor(pool, read_body_kw, body, {**kw, "hub": hub})
            try:
                meta = await head
                if meta is None:
                    return None
                opened(meta)
                read = await whole
            except BrokenProcessPool:
                logger.warning("page reading workers ended unexpectedly: this page is read here")
                self.close(wait=False)
                return None
            finally:
                whole.cancel()
                await asyncio.gather(whole, return_exceptions=True)
        return None if read is None else _assembled(*read)

    @contextlib.contextmanager
    def _in_use(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """The workers busy: not stopped for idleness until ``idle_s`` after the last use."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0 and self._executor is not None:
                self._idle = loop.call_later(self.idle_s, self._stop_if_idle)

    async def _check(
        self,
        loop: asyncio.AbstractEventLoop,
        opened: OpenedPage,
        objs: list[Any],
        *,
        peer: str,
        me: str,
        keys: Mapping[str, VerifyKeyInfo],
        hub: str | None,
    ) -> CheckedPage | None:
        pool = self._pool()
        size = -(-len(objs) // (self.workers * 2))  # two chunks per worker: even finish
        futures = [
            loop.run_in_executor(
                pool,
                _check_chunk_kw,
                (start, objs[start : start + size], opened.item_bytes[start : start + size]),
                {"peer": peer, "me": me, "keys": keys, "hub": hub},
            )
            for start in range(0, len(objs), size)
        ]
        items: list[VerifiedItem] = []
        rejected: list[RejectedItem] = []
        try:
            chunks = await asyncio.gather(*futures)
        except BrokenProcessPool:
            logger.warning("item check workers ended unexpectedly: this page is checked here")
            self.close(wait=False)
            return None
        for chunk in chunks:
            for verdict in chunk:
                i = verdict[0]
                obj = objs[i]
                if len(verdict) == 2:
                    signed = opened.item_bytes[i]
                    canonical = signed[1] if signed is not None else canonical_bytes(obj)
                    items.append(VerifiedItem(obj, canonical, verdict[1]))
                else:
                    rejected.append(RejectedItem(obj, verdict[1], verdict[2]))
        return CheckedPage(opened.page, items, rejected)

    async def warm(self) -> None:
        """Start the worker processes now (each imports the checking code once), rather
        than on the first big page."""
        if self.workers < 1:
            return
        loop = asyncio.get_running_loop()
        pool = self._pool()
        await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self.workers * 2)))

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers (waiting for them to exit unless ``wait`` is False)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)


def _can_send(keys: Mapping[str, VerifyKeyInfo], peer: str) -> bool:
    """Whether the keys can go to the workers as they are (a peer's pinned key included)."""
    try:
        pickle.dumps(keys)
    except (pickle.PicklingError, TypeError, AttributeError):
        logger.warning("keys of %s cannot go to worker processes: checked here", peer)
        return False
    return True


def _assembled(meta: Mapping[str, Any], judged: Sequence[Judged]) -> CheckedPage:
    """The page the workers read: its members, its items in order, checked or refused."""
    objs: list[Any] = []
    items: list[VerifiedItem] = []
    rejected: list[RejectedItem] = []
    for obj, good, first, second in judged:
        objs.append(obj)
        if good:
            items.append(VerifiedItem(obj, first, second))
        else:
            rejected.append(RejectedItem(obj, first, second))
    return CheckedPage({**meta, "items": objs}, items, rejected)


def _backlog(page: Mapping[str, Any]) -> int:
    """Feed entries after this page (``head`` less ``position``), 0 when it is the last;
    a page with more to come but no numbers counts as a long feed."""
    if not page.get("more"):
        return 0
    head, position = page.get("head"), page.get("position")
    if isinstance(head, int) and isinstance(position, int):
        return max(0, head - position)
    return MIN_BACKLOG


def _ready() -> bool:
    return True


def _ignore_interrupts(parent: int) -> None:
    """A worker leaves Ctrl-C to its parent, which stops it (no traceback per worker), and
    exits by itself when the parent is gone (killed, or ended by ``os._exit``: nobody is
    left to shut the pool down, and an orphan would hold its memory for ever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    # The parent's pid comes from the parent: a worker still starting when its parent
    # died would read the pid of whoever adopted it.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="orphan").start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(0)


def _check_chunk_kw(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Verdict]:
    return check_chunk(*args, **kwargs)


__all__ = ["VerifyPool", "check_chunk", "check_items", "default_workers"]
