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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from node.hub.match_engine import TOP_K, MatchEngine, Ref
from node.hub.match_worker import MatchingUnavailable, WorkerClient

if TYPE_CHECKING:
    from node.matching.match import Match
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)


class MatchingService:
    """The hub's matching: refresh, queries, and the re-match after each applied page."""

    def __init__(self, rt: NodeRuntime, encoder: Any = None, *, in_worker: bool = False) -> None:
        """``in_worker``: the engine runs in a worker process started at the first call;
        ``encoder`` is then None (lexical) or a model name the worker loads itself."""
        self.rt = rt
        self._engine: MatchEngine | None = None
        self._worker: WorkerClient | None = None
        # Waits for the worker's answer to a re-match: never one of the database threads.
        self._waiter: ThreadPoolExecutor | None = None
        self._closed = False
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

    def status(self) -> dict[str, Any]:
        """Listings held and still to match, and the scoring they are matched with."""
        result: dict[str, Any] = self._call("status")
        return result

    def after_sync(self) -> int:
        """Re-match what changed (and what a stop left undone); send the new notices."""
        result: int = self._call("after_sync")
        return result

    async def rematch(self) -> int:
        """``after_sync`` without blocking the event loop or a database thread; 0 (logged)
        when the worker failed or was stopped: its work stays queued for the next one."""
        loop = asyncio.get_running_loop()
        try:
            if self._waiter is None:
                return await self.rt.run(self.after_sync)
            if self._closed:
                raise MatchingUnavailable("the matching worker was stopped")
            return await loop.run_in_executor(self._waiter, self.after_sync)
        except MatchingUnavailable as exc:
            logger.warning("re-match not done: %s", exc)
            return 0

    def close(self) -> None:
        """Stop the worker at once (a re-match in progress is cut short: what it did not
        finish stays queued in match_stamps)."""
        self._closed = True
        if self._worker is not None:
            self._worker.close()
        if self._waiter is not None:
            self._waiter.shutdown(wait=False, cancel_futures=True)
