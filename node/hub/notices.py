"""Matching at the hub and its match notices (DESIGN 9), as the app and the CLI call it.

``MatchingService`` answers the same questions wherever the work runs: in this process
(``MatchingService(rt)``, for a CLI command) or in the hub's matching worker process
(``MatchingService(rt, in_worker=True)``, for ``cattc serve``), so that a re-match of many
listings never holds the event loop's process (its GIL, its memory) and a stop ends it at
once. ``node.hub.match_engine`` does the work; ``node.hub.match_worker`` runs it apart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from node.hub.match_engine import TOP_K, MatchEngine, Ref
from node.hub.match_worker import MatchingUnavailable, WorkerClient

if TYPE_CHECKING:
    from node.matching.match import Match
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)
# Seconds of notifying per pass: a pull waiting for its re-match never waits much longer
# (a first match of 50,000 listings goes on in the background, pass after pass).
PASS_BUDGET_S = 30.0
# How often a matcher with listings to encode looks whether the long pull that holds its
# encoding back has ended.
PAUSE_POLL_S = 1.0
# The longest encoding is held back while the verify workers run without a break: a
# first sync of 1,000,000 summaries took ~20 minutes, and a member whose long pulls
# keep failing midway (the workers never stop) must not hold it back for ever.
MAX_HOLD_S = 1800.0


def _never() -> bool:
    return False


class MatchingService:
    """The hub's matching: refresh, queries, and the re-match after each applied page."""

    def __init__(
        self,
        rt: NodeRuntime,
        encoder: Any = None,
        *,
        in_worker: bool = False,
        hold_encoding: Callable[[], bool] = _never,
    ) -> None:
        """``in_worker``: the engine runs in a worker process started at the first call;
        ``encoder`` is then None (lexical) or a model name the worker loads itself.
        ``hold_encoding``: whether a pass leaves encoding for later (while a long pull's
        signature checks run in their workers: the pull, and the memory of its workers,
        come first; the passes still match and notify, lexically)."""
        self.rt = rt
        self._hold_encoding = hold_encoding
        self._holding_since: float | None = None
        # Listings wait for their vector, and the last pass held their encoding back.
        self.encoding_held = False
        self._engine: MatchEngine | None = None
        self._worker: WorkerClient | None = None
        # Waits for the worker's answer to a re-match: never one of the database threads.
        self._waiter: ThreadPoolExecutor | None = None
        self._closed = False
        # One pass at a time: two pulls ending together would both see the same new pairs.
        self._one_at_a_time = asyncio.Lock()
        self._drain: asyncio.Task[None] | None = None
        self.left = 0  # listings still to match (or encode) after the last pass
        # The matcher's ``status`` at the end of the last pass (held, pending, model and
        # listings still to encode); None before the first.
        self.last_status: dict[str, Any] | None = None
        self.passes = 0  # re-match passes started and ended (the top lists may differ)
        if not in_worker:
            self._engine = MatchEngine(rt, encoder)
            return
        if encoder is not None and not isinstance(encoder, str):
            raise ValueError("a worker loads its encoder itself: pass a model name or None")
        self._worker = WorkerClient(rt.data_dir, rt.config, encoder)
        self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="matching")

    @property
    def worker(self) -> WorkerClient | None:
        """The worker's client (its pid and starts), None when matching runs here."""
        return self._worker

    def _call(self, method: str, *args: Any) -> Any:
        if self._engine is not None:
            return getattr(self._engine, method)(*args)
        assert self._worker is not None
        return self._worker.call(method, args, now=self.rt.clock())

    def refresh(self) -> list[Ref]:
        """Bring the matcher up to date; return the listings added or changed."""
        result: list[Ref] = self._call("refresh")
        return result

    def matches_for(self, ref: Ref, k: int = TOP_K) -> list[Match]:
        result: list[Match] = self._call("matches_for", ref, k)
        return result

    def top(self, k: int = TOP_K) -> dict[Ref, list[Match]]:
        result: dict[Ref, list[Match]] = self._call("top", k)
        return result

    def best(self, limit: int, k: int = TOP_K) -> list[Match]:
        """The best ``limit`` pairs of the top ``k`` lists, best first: the matcher
        explains and sends those alone, however many requests it holds."""
        result: list[Match] = self._call("best", limit, k)
        return result

    def status(self) -> dict[str, Any]:
        """Listings held and still to match, and the scoring they are matched with."""
        result: dict[str, Any] = self._call("status")
        return result

    async def drop(self, refs: list[Ref]) -> int:
        """Take retracted listings out of every match list now (``MatchEngine.drop``):
        the worker does it between two batches of a re-match in progress, so they leave
        the lists within a batch, not after the pass. How many were held; 0 when there
        is no worker yet (a worker that starts loads only what is held) or it stopped."""
        if not refs or self._closed:
            return 0
        try:
            if self._worker is None:
                return int(await self.rt.run(self._call, "drop", refs))
            if self._worker.pid is None:
                return 0
            # The send is quick, but may start a worker that died: off the loop.
            future = await asyncio.to_thread(
                self._worker.submit, "drop", (refs,), now=self.rt.clock()
            )
            return int(await asyncio.wrap_future(future))
        except MatchingUnavailable as exc:
            logger.warning("retracted listings not dropped now: %s", exc)
            return 0

    def after_sync(self) -> int:
        """Re-match what changed (and what a stop left undone); send the new notices. One
        pass notifies for about ``PASS_BUDGET_S`` at most; ``left`` says what remains."""
        encode = not self._held()
        if self._engine is not None:
            sent: int = self._engine.after_sync(budget_s=PASS_BUDGET_S, encode=encode)
            self.left = self._engine.left
            self.last_status = self._engine.status()
        else:
            sent, self.left, self.last_status = self._call("after_sync", PASS_BUDGET_S, encode)
        self.encoding_held = not encode and _to_encode(self.last_status) > 0
        return int(sent)

    def _held(self) -> bool:
        """Whether encoding is held back now: while ``hold_encoding`` says so, for
        ``MAX_HOLD_S`` at most without a break."""
        if not self._hold_encoding():
            self._holding_since = None
            return False
        now = time.monotonic()
        if self._holding_since is None:
            self._holding_since = now
        return now - self._holding_since < MAX_HOLD_S

    async def rematch(self) -> int:
        """``after_sync`` without blocking the event loop or a database thread, one pass
        at a time; what one pass leaves is done by later passes in the background, so a
        pull waiting for its re-match waits for one pass at most. 0 (logged) when the
        worker failed or was stopped: its work stays queued for the next one."""
        async with self._one_at_a_time:
            sent = await self._pass()
        more = self.left or self.encoding_held
        if more and not self._closed and (self._drain is None or self._drain.done()):
            self._drain = asyncio.create_task(self._drain_rest())
        return sent

    async def _pass(self) -> int:
        loop = asyncio.get_running_loop()
        self.passes += 1  # at its start and at its end: the lists change as it goes
        try:
            if self._closed:
                raise MatchingUnavailable("the matching worker was stopped")
            if self._waiter is None:
                return await self.rt.run(self.after_sync)
            return await loop.run_in_executor(self._waiter, self.after_sync)
        except MatchingUnavailable as exc:
            logger.warning("re-match not done: %s", exc)
            self.left = 0
            self.encoding_held = False
            return 0
        finally:
            self.passes += 1

    async def _drain_rest(self) -> None:
        while (self.left or self.encoding_held) and not self._closed:
            if not self.left and self._held():
                await asyncio.sleep(PAUSE_POLL_S)  # only encoding is left, and held back
                continue
            async with self._one_at_a_time:
                await self._pass()

    def close(self) -> None:
        """Stop the worker at once (a re-match in progress is cut short: what it did not
        finish stays queued in match_stamps)."""
        self._closed = True
        if self._drain is not None:
            self._drain.cancel()
        if self._worker is not None:
            self._worker.close()
        if self._waiter is not None:
            self._waiter.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """``close``, then wait until the background passes have ended."""
        self.close()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)


def _to_encode(status: dict[str, Any] | None) -> int:
    """Listings waiting for their vector, from a matcher's ``status``."""
    semantic = (status or {}).get("semantic") or {}
    return int(semantic.get("to_encode") or 0)
