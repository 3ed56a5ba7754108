"""One pull of a peer's feed by a node, in an OS process of its own (the crash test).

    python -m tests.federation.slow_reader DATA_DIR PEER [--page-size N]
                                           [--stall-page N --marker PATH]

Opens the node from its data directory (``node.runtime.open_runtime``) and runs one
``SyncManager.sync_peer``. With ``--stall-page N`` the N-th page is applied up to the
point just before its commit: every row of the page is written (flushed) inside the open
transaction, then MARKER is written and the process waits to be killed. The marker says
which listing ids the earlier, committed pages brought, which ids the stalled page holds,
and the cursor after the last committed page. The hook lives here, not in product code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import event
from sqlalchemy.orm import Session

from node.runtime import open_runtime
from node.services.remote_store import RemoteStore
from node.services.sync_manager import SyncManager
from sync.interfaces import ApplyResult, RejectedItem, VerifiedItem

STALL_S = 120.0  # far longer than a test waits: the test kills the process first
NOT_KILLED = 3  # exit status if nobody killed the stalled process (the page never commits)


def _listing_id(item: VerifiedItem) -> str:
    obj = item.obj
    return str(obj["listing"]["id"] if obj["type"] == "listing" else obj["listing_id"])


class StallingStore(RemoteStore):
    """``RemoteStore`` whose ``stall_page``-th page stops inside its transaction."""

    def __init__(self, store: RemoteStore, stall_page: int, marker: Path) -> None:
        super().__init__(store.engine)
        self.stall_page = stall_page
        self.marker = marker
        self.pages = 0
        self.committed: list[str] = []
        self.cursor: str | None = None
        self._stalled: list[str] | None = None
        event.listen(Session, "before_commit", self._before_commit)

    def apply_page(
        self,
        peer: str,
        items: Sequence[VerifiedItem],
        rejected: Sequence[RejectedItem],
        *,
        after: str | None,
        next_cursor: str,
        head: int,
        position: int | None,
        now: int,
    ) -> ApplyResult:
        self.pages += 1
        ids = [_listing_id(i) for i in items]
        self._stalled = ids if self.pages == self.stall_page else None
        result = super().apply_page(
            peer,
            items,
            rejected,
            after=after,
            next_cursor=next_cursor,
            head=head,
            position=position,
            now=now,
        )
        self.committed.extend(ids)
        self.cursor = next_cursor
        return result

    def _before_commit(self, session: Session) -> None:
        if self._stalled is None:
            return
        session.flush()  # the page's rows are now written, but not committed
        info = {"committed": self.committed, "stalled": self._stalled, "cursor": self.cursor}
        partial = self.marker.with_suffix(".tmp")
        partial.write_text(json.dumps(info), encoding="utf-8")
        os.replace(partial, self.marker)
        time.sleep(STALL_S)
        os._exit(NOT_KILLED)


async def pull(args: argparse.Namespace) -> int:
    rt = open_runtime(Path(args.data_dir))
    try:
        async with aiohttp.ClientSession() as session:
            manager = SyncManager(rt, session)
            manager.reader.page_size = args.page_size
            if args.stall_page:
                store = StallingStore(manager.store, args.stall_page, Path(args.marker))
                manager.store = manager.reader.store = store
            run = await manager.sync_peer(args.peer, force=True)
    finally:
        rt.close()
    out: dict[str, Any] = {"error": run.error if run else "no such peer"}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0 if run is not None and run.error is None else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slow_reader", description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("peer")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--stall-page", type=int, default=0)
    parser.add_argument("--marker", default="")
    args = parser.parse_args(argv)
    if args.stall_page and not args.marker:
        parser.error("--stall-page needs --marker")
    return asyncio.run(pull(args))


if __name__ == "__main__":
    sys.exit(main())
