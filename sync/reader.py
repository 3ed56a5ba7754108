"""Pulling one peer's feed: page after page, each verified, then applied atomically.

A run ends when the peer says there is no more, after ``max_pages``, on the first
failure (network, HTTP error, a page that does not verify), or when it runs out of time.
The cursor only ever moves with a page's items, in the same transaction, so a crash
anywhere loses nothing. Each run is recorded once, with what it applied and its error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.canonical import parse_plain
from protocol.errors import ErrorCode
from protocol.keys import VerifyKeyInfo
from protocol.limits import MAX_PAGE_BYTES
from sync.client import (
    RESPONSE_TOO_LARGE,
    PeerClient,
    PeerError,
    PeerResponse,
    printable,
    raise_for_status,
)
from sync.interfaces import ApplyResult, Changes, CursorMoved, KeySource, RunRecord, SyncStore
from sync.page_jobs import gc_paused
from sync.verify import CheckedPage, OpenedPage, PageError, check_items, open_page
from sync.verify_pool import VerifyPool

logger = logging.getLogger(__name__)
# The peer no longer knows our cursor (history compacted, or its cursor secret changed):
# start again from the beginning; the apply rules make the replay harmless.
RESYNC_CODES = frozenset({"cursor_expired_resync", "bad_cursor"})
FEED_PATH = "/federation/v1/feed"
# A run that runs out of time while its pages still come (the last one applied at most
# this long ago, and within the second half of the run) ends without error, to be
# pulled on at once: a first sync of many listings takes several runs. A peer that stalls
# mid-feed still fails the run.
PROGRESS_MS = 10_000
# Pages a run may have read in the verify workers beyond the oldest not yet applied: one
# worker reads a page while another reads the next. More would hold more pages in memory
# (the hub pulls several members at once, all into the same two workers) for no gain.
READ_AHEAD = 1


@dataclass(frozen=True)
class Peer:
    node_id: str
    base_url: str


class FeedReader:
    def __init__(
        self,
        me: str,
        client: PeerClient,
        store: SyncStore,
        keys: KeySource,
        *,
        page_size: int = 500,
        max_pages: int = 1000,
        blocking: Callable[..., Awaitable[Any]] | None = None,
        hub: str | None = None,
        pool: VerifyPool | None = None,
    ) -> None:
        """``blocking(fn, *args, **kwargs)`` runs the database and verification work off
        the event loop: ``asyncio.to_thread`` by default; a node passes its own pool, so
        that closing the node waits for work in flight before its database goes.
        ``hub``: the hub's node id, the one peer whose feed may carry what only the hub
        issues (``protocol.authority``). ``pool``: worker processes that check a page's
        items in parallel (``sync.verify_pool``); None checks them in a worker thread."""
        self.hub = hub
        self.pool = pool
        self._blocking = blocking or asyncio.to_thread
        self.me = me
        self.client = client
        self.store = store
        self.keys = keys
        self.page_size = page_size
        self.max_pages = max_pages

    async def pull(
        self, peer: Peer, *, timeout_s: float | None = None, changes: Changes | None = None
    ) -> RunRecord:
        """One run. ``changes``, when given, collects what each applied page changed."""
        clock = self.client.clock
        changes = Changes(peer.node_id) if changes is None else changes
        run = RunRecord(peer=peer.node_id, started=clock())
        success = False
        try:
            async with asyncio.timeout(timeout_s):
                await self._pull_pages(peer, run, changes)
            success = True
        except TimeoutError:
            if self._progressing(run, timeout_s):
                run.more = success = True
                logger.info(
                    "sync from %s: the run's %g s are up with pages still coming; "
                    "pulling on at once",
                    peer.node_id,
                    timeout_s,
                )
            else:
                run.error = f"run timed out after {timeout_s:g} s"
        except PeerError as exc:
            run.error = str(exc)
            if exc.code in RESYNC_CODES:
                await self._blocking(self.store.reset_cursor, peer.node_id)
                run.error += " (cursor reset: the next run resynchronises from the start)"
        except PageError as exc:
            run.error = f"{exc.code}: {exc.message}"
        except CursorMoved as exc:
            run.error = str(exc)
        except asyncio.CancelledError:
            run.error = "stopped: this node is shutting down"
            raise
        except Exception as exc:  # the database went away mid-run: the run says so
            run.error = f"{type(exc).__name__}: {printable(str(exc))}"
            logger.exception("sync from %s: unexpected error", peer.node_id)
        finally:
            run.finished = clock()
            try:
                await self._blocking(self.store.record_run, run, success=success)
            except Exception as exc:  # the database is still away: the log keeps the run
                logger.warning(
                    "sync from %s: the run could not be recorded (%s); it %s",
                    peer.node_id,
                    printable(str(exc)),
                    f"failed: {run.error}" if run.error else "succeeded",
                )
        if run.error:
            logger.warning("sync from %s failed: %s", peer.node_id, run.error)
        return run

    def _progressing(self, run: RunRecord, timeout_s: float | None) -> bool:
        """Whether the run's pages were still coming when its time ran out."""
        if run.last_page_s is None or timeout_s is None:
            return False
        recent = min(PROGRESS_MS / 1000, timeout_s / 2)
        return time.monotonic() - run.last_page_s <= recent

    async def _pull_pages(self, peer: Peer, run: RunRecord, changes: Changes) -> None:
        """Page after page, in a pipeline: once a page's own signature holds, the next
        page is asked for; while a page's items are checked (in the pool, where a later
        page may be read at the same time by another worker), the page before is applied
        (in a worker thread), so the peer, the checking and the database work at once.
        Nothing unverified is acted on, and pages are applied in order, each only after
        the one before it committed: on any failure the run ends, a page being applied
        is waited for (it holds, and it is counted), and a page fetched or read ahead is
        dropped unapplied."""
        cursor = (await self._blocking(self.store.peer_cursor, peer.node_id)).cursor
        ahead: asyncio.Task[Any] | None = None
        reads: collections.deque[asyncio.Future[CheckedPage]] = collections.deque()
        applying: asyncio.Future[tuple[CheckedPage, ApplyResult, float]] | None = None
        keys: Mapping[str, VerifyKeyInfo] | None = None
        items = 0  # in the pages read to the end, quarantined ones included

        async def apply_next() -> None:
            """The oldest page read, applied once the one before it is."""
            nonlocal applying, items
            checked = await reads[0]
            reads.popleft()
            items += len(checked.items) + len(checked.rejected)
            if applying is not None:
                done, applying = applying, None
                self._count(run, changes, *(await done))
            applying = asyncio.ensure_future(self._apply(peer, checked))

        try:
            for left in range(self.max_pages, 0, -1):
                resp = await (ahead or self._fetch(peer, cursor))
                ahead = None

                def fetch_next(page: Mapping[str, Any], left: int = left) -> None:
                    nonlocal ahead
                    if ahead is None and left > 1 and page["more"]:
                        ahead = asyncio.ensure_future(self._fetch(peer, page["next"]))

                page, reading, keys = await self._read(peer, resp, cursor, keys, fetch_next)
                if page["more"] and page["next"] == cursor:
                    reading.cancel()  # its check, under way in the workers, is not wanted
                    await asyncio.gather(reading, return_exceptions=True)
                    raise PageError(
                        ErrorCode.FEED_STALLED,
                        f"{peer.node_id}'s feed says there is more but gives back the "
                        "cursor it was asked for",
                    )
                reads.append(reading)
                while reads and (len(reads) > READ_AHEAD or reads[0].done()):
                    await apply_next()
                cursor = page["next"]
                if not page["more"]:
                    break
            else:
                run.more = self.max_pages > 0  # the page budget is spent, the feed goes on
            while reads:
                await apply_next()
            if applying is not None:
                done, applying = applying, None
                self._count(run, changes, *(await done))
            if run.more and not items:
                # Empty pages may skip what this reader is not given, but a whole run's
                # budget of them is a peer keeping the reader busy: the run fails (the
                # peer then waits its backoff), keeping the cursor the pages moved.
                run.more = False
                raise PageError(
                    ErrorCode.FEED_STALLED,
                    f"{peer.node_id}'s feed gave {self.max_pages} pages in a row without "
                    "an item, and says there is more",
                )
        except BaseException as exc:
            failure = exc
            if isinstance(exc, Exception):
                # The pages read before the one that failed hold: they are applied first,
                # in order (a failure among them, being earlier, is the run's instead).
                try:
                    while reads:
                        await apply_next()
                except Exception as earlier:
                    failure = earlier
            if applying is not None:  # it holds whatever ended this run: let it finish
                with contextlib.suppress(Exception):
                    self._count(run, changes, *(await asyncio.shield(applying)))
            if failure is exc:
                raise
            raise failure from None
        finally:
            left_over = [t for t in (ahead, *reads) if t is not None]
            for task in left_over:
                task.cancel()
            await asyncio.gather(*left_over, return_exceptions=True)

    async def _read(
        self,
        peer: Peer,
        resp: PeerResponse,
        cursor: str | None,
        keys: Mapping[str, VerifyKeyInfo] | None,
        opened: Callable[[Mapping[str, Any]], None],
    ) -> tuple[Mapping[str, Any], asyncio.Future[CheckedPage], Mapping[str, VerifyKeyInfo]]:
        """The page in ``resp`` once its own signature holds (``opened`` is called with it
        then), its items' check under way, with the keys used. In the pool's workers,
        when they run and the page is big (the peer's keys known from an earlier page of
        the run): the check then goes on while the reader goes on to the next page.
        Otherwise, or when the workers cannot vouch for the page, here: the check is
        done when this returns."""
        pool = self.pool
        if pool is not None and keys is not None and pool.reads_pages(len(resp.body)):
            told: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()

            def tell(page: Mapping[str, Any]) -> None:
                told.set_result(page)
                opened(page)

            reading = asyncio.ensure_future(
                pool.read_page(
                    resp.body,
                    peer=peer.node_id,
                    me=self.me,
                    after=cursor,
                    keys=keys,
                    hub=self.hub,
                    page_size=self.page_size,
                    opened=tell,
                )
            )
            try:
                await asyncio.wait((told, reading), return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                reading.cancel()
                raise
            if told.done():
                return (
                    told.result(),
                    asyncio.ensure_future(self._checked(peer, resp, cursor, keys, reading)),
                    keys,
                )
            # Ended unopened: None (the workers cannot vouch for the page, read here
            # instead), or an error, raised here.
            reading.result()
        page, keys = await self._open(peer, resp, cursor, keys)
        opened(page.page)
        done: asyncio.Future[CheckedPage] = asyncio.get_running_loop().create_future()
        done.set_result(await self._check(peer, page, keys))
        return page.page, done, keys

    async def _checked(
        self,
        peer: Peer,
        resp: PeerResponse,
        cursor: str | None,
        keys: Mapping[str, VerifyKeyInfo],
        reading: Awaitable[CheckedPage | None],
    ) -> CheckedPage:
        """The page the workers are reading, or, when they cannot vouch for all of it
        after all, the page read here (which says why, if it does not hold)."""
        checked = await reading
        if checked is not None:
            return checked
        page, keys = await self._open(peer, resp, cursor, keys)
        return await self._check(peer, page, keys)

    async def _apply(
        self, peer: Peer, checked: CheckedPage
    ) -> tuple[CheckedPage, ApplyResult, float]:
        result: ApplyResult = await self._blocking(
            self.store.apply_page,
            peer.node_id,
            checked.items,
            checked.rejected,
            after=checked.page["after"],
            next_cursor=checked.page["next"],
            head=checked.page["head"],
            position=checked.page.get("position"),
            now=self.client.clock(),
        )
        return checked, result, time.monotonic()

    @staticmethod
    def _count(
        run: RunRecord, changes: Changes, checked: CheckedPage, result: ApplyResult, at: float
    ) -> None:
        """Add a page applied at ``at`` (``time.monotonic()``) to ``run``: its counts,
        where the feed stands, and what it changed."""
        run.last_page_s = at
        run.applied += result.applied
        run.retracted += result.retracted
        run.rejected += len(result.rejected)
        run.head = checked.page["head"]
        run.position = checked.page.get("position")
        run.cursor = checked.page["next"]
        changes.merge(result)

    async def _check(
        self, peer: Peer, opened: OpenedPage, keys: Mapping[str, VerifyKeyInfo]
    ) -> CheckedPage:
        """The page's items checked: in the pool when there is one (and the page is big
        enough), else in a worker thread."""
        me, hub = self.me, self.hub
        if self.pool is not None:
            checked = await self.pool.check_items(
                opened, peer=peer.node_id, me=me, keys=keys, hub=hub
            )
            if checked is not None:
                return checked
        result: CheckedPage = await self._blocking(
            check_items, opened, peer=peer.node_id, me=me, keys=keys, hub=hub
        )
        return result

    async def _fetch(self, peer: Peer, cursor: str | None) -> PeerResponse:
        """The next page's answer, unparsed (``_open`` parses it off the loop): at most
        ``MAX_PAGE_BYTES`` (every node's pages stay within it), else the run ends with a
        PageError saying so; an error answer raises PeerError, as ``get_json`` does."""
        query = {"after": cursor, "limit": self.page_size}
        try:
            resp = await self.client.request(
                "GET",
                peer.base_url,
                peer.node_id,
                FEED_PATH,
                query=query,
                max_bytes=MAX_PAGE_BYTES,
            )
        except PeerError as exc:
            if exc.code != RESPONSE_TOO_LARGE:
                raise
            raise PageError(
                ErrorCode.PAGE_TOO_LARGE,
                f"{peer.node_id}'s feed page is larger than the protocol's limit of "
                f"{MAX_PAGE_BYTES} bytes: the peer must split its pages",
            ) from exc
        raise_for_status(resp, peer.node_id)  # the peer's error, as get_json gives it
        return resp

    def _parse(self, peer: Peer, resp: PeerResponse) -> tuple[Any, bool]:
        """The page's JSON (run in a worker thread: a page of a thousand items is tens
        of milliseconds of parsing), with no more than ``page_size`` items, and whether
        it is plain (``parse_plain``: its items' bytes are then one ``json.dumps`` each).
        Parsed by ``json.loads`` itself; ``_open`` then makes sure no duplicate key went
        unseen (the strict parser, ``PeerResponse.json``, costs three times as much)."""
        plain = False
        try:
            with gc_paused():
                page, plain = parse_plain(resp.body)
        except (ValueError, RecursionError):
            page = resp.json()  # the strict parser's verdict, in its words
        items = page.get("items") if isinstance(page, dict) else None
        if isinstance(items, list) and len(items) > self.page_size:
            raise PageError(
                ErrorCode.PAGE_TOO_LARGE,
                f"{peer.node_id}'s feed page has {len(items)} items; {self.page_size} were asked",
            )
        return page, plain

    async def _open(
        self,
        peer: Peer,
        resp: PeerResponse,
        cursor: str | None,
        keys: Mapping[str, VerifyKeyInfo] | None,
    ) -> tuple[OpenedPage, Mapping[str, VerifyKeyInfo]]:
        """The page parsed and ``open_page`` in a worker thread (the event loop keeps
        receiving meanwhile), with the peer's keys (looked up there, once a run, unless
        given); once more after refetching the peer's keys if it signed with a key we
        lack."""
        parsed: list[tuple[Any, bool]] = []

        def check(
            known: Mapping[str, VerifyKeyInfo] | None,
        ) -> tuple[OpenedPage, Mapping[str, VerifyKeyInfo]]:
            if not parsed:
                parsed.append(self._parse(peer, resp))
            page, plain = parsed[0]
            keys = self.keys.keys(peer.node_id) if known is None else known
            try:
                opened = open_page(
                    page, peer=peer.node_id, me=self.me, after=cursor, keys=keys, plain=plain
                )
            except PageError:
                resp.json()  # a body with a duplicate key is refused as such, first
                raise
            if opened.canonical != resp.body:
                # Not the canonical bytes of the page as parsed (a duplicate key would
                # make it so, and a node of this project sends nothing else): parsed
                # strictly, so that a duplicate key is refused.
                resp.json()
            return opened, keys

        try:
            return await self._blocking(check, keys)
        except PageError as exc:
            if exc.code != "key_not_valid" or not await self.keys.refresh(peer.node_id):
                raise
        return await self._blocking(check, None)
