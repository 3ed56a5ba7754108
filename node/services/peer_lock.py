"""One puller per peer across hub workers (DESIGN 8): a PostgreSQL advisory lock.

Several hub processes may share one PostgreSQL database; each run takes a session-level
advisory lock keyed by the peer, and a worker that cannot get it skips the run. SQLite
deployments have one process, where the in-process lock of the sync manager suffices.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from node.runtime import NodeRuntime


def lock_key(puller: str, peer: str) -> int:
    """A stable signed 64-bit key for ``puller`` pulling ``peer``. The puller is part of it:
    advisory locks are database-wide, and other nodes may keep their schemas in the same
    database; their pulls of the same peer must not make ours skip."""
    return int.from_bytes(
        hashlib.sha256(f"cattc-pull:{puller}:{peer}".encode()).digest()[:8], "big", signed=True
    )


@asynccontextmanager
async def peer_lock(rt: NodeRuntime, peer: str) -> AsyncIterator[bool]:
    """Yield True when this worker may pull ``peer`` now."""
    if rt.engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(rt.node_id, peer)

    def acquire() -> tuple[Connection, bool]:
        conn = rt.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        return conn, got

    def release(conn: Connection, got: bool) -> None:
        try:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        finally:
            conn.close()

    conn, got = await rt.run(acquire)
    try:
        yield got
    finally:
        await rt.run(release, conn, got)
