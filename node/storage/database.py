"""The node's one async storage boundary: ``await db.run(fn, *args)``.

``fn(session, *args)`` runs in one transaction on the runtime's database threads, never on
the event loop: committed when it returns, rolled back when it raises (the exception
reaches the caller). Everything ``fn`` writes commits together, so work that must hold
together (a page's rows, its custody receipt and its change log) is one function of a
session, not several calls that each remember to leave the loop. Synapse's storage has
the same shape (``runInteraction`` with ``_txn`` functions); here the functions of a
session are plain ones taking ``session`` first.

``run_sync`` is the same transaction in the calling thread, for code that is already off
the loop (CLI commands, worker processes, the database threads themselves).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

SLOW_S = 1.0  # a transaction this long is logged with its function's name


class Database:
    """An engine and the threads its blocking work runs on."""

    def __init__(self, engine: Engine, executor: Executor) -> None:
        self.engine = engine
        self.executor = executor

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(session, *args, **kwargs)`` in one transaction, off the event loop."""
        loop = asyncio.get_running_loop()
        work = functools.partial(self.run_sync, fn, *args, **kwargs)
        return await loop.run_in_executor(self.executor, work)

    def run_sync(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(session, *args, **kwargs)`` in one transaction, in this thread."""
        started = time.monotonic()
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                return fn(session, *args, **kwargs)
        finally:
            spent = time.monotonic() - started
            if spent > SLOW_S:
                name = getattr(fn, "__qualname__", repr(fn))
                logger.info("slow transaction: %s took %.1f s", name, spent)
