"""One puller per peer across processes (DESIGN 8): the server, its hub workers and
``cattc sync now`` never pull the same peer at the same time.

Two pulls of one peer would both apply the same page, and the second would trip over
the rows the first wrote. On PostgreSQL, where several hub processes may share one
database, each run takes a session-level advisory lock keyed by the puller and the peer.
On SQLite, where the data directory is the unit, it is an exclusive ``flock`` on a file
per peer under ``DATA_DIR/locks``: the kernel drops it when its holder exits, so a
killed process never leaves a stale lock. The server skips a peer someone else is
pulling (its next run comes soon); the CLI waits for that pull to end (``wait_s``).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

LOCK_DIR = "locks"
POLL_S = 0.05


def lock_key(puller: str, peer: str, schema: str = "public") -> int:
    """A stable signed 64-bit key for ``puller`` pulling ``peer`` in ``schema``. The puller
    and the schema are part of it: advisory locks are database-wide, and other nodes
    (even of the same name: test runs side by side) may keep their schemas in the same
    database; their pulls of the same peer must not make ours skip. The processes of one
    node share its schema, hence the key."""
    name = f"{puller}:{peer}" if schema == "public" else f"{schema}:{puller}:{peer}"
    return int.from_bytes(
        hashlib.sha256(f"cattc-pull:{name}".encode()).digest()[:8], "big", signed=True
    )


def lock_path(data_dir: Path, peer: str) -> Path:
    """The lock file of pulls of ``peer`` (a hash for a name that is not a plain node id)."""
    name = peer if re.fullmatch(r"[a-z][a-z0-9_]{0,63}", peer) else _digest(peer)
    return data_dir / LOCK_DIR / f"pull-{name}.lock"


def _digest(peer: str) -> str:
    return hashlib.sha256(peer.encode()).hexdigest()[:32]


class _Lock(Protocol):
    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class _AdvisoryLock:
    """A PostgreSQL session-level advisory lock, on a connection held while it is tried
    and while it is held."""

    def __init__(self, engine: Engine, puller: str, peer: str) -> None:
        self.got = False
        self.conn: Connection = engine.connect()
        try:
            schema = self.conn.execute(text("SELECT current_schema()")).scalar()
            self.conn.commit()
        except BaseException:
            self.conn.close()
            raise
        self.key = lock_key(puller, peer, str(schema or "public"))

    def try_acquire(self) -> bool:
        got = self.conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        self.got = bool(got.scalar())
        self.conn.commit()
        return self.got

    def release(self) -> None:
        try:
            if self.got:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self.conn.commit()
        except Exception as exc:  # the connection is gone, and the lock with it
            logger.info("pull lock: could not unlock (%s); the connection is dropped", exc)
            self.conn.invalidate()  # never back to the pool while it may hold the lock
        finally:
            self.conn.close()


class _FileLock:
    """An exclusive ``flock`` on a file of the data directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        os.close(self.fd)  # closing the file drops the lock


def _open(rt: NodeRuntime, peer: str) -> _Lock:
    if rt.engine.dialect.name == "postgresql":
        return _AdvisoryLock(rt.engine, rt.node_id, peer)
    return _FileLock(lock_path(rt.data_dir, peer))


@asynccontextmanager
async def peer_lock(
    rt: NodeRuntime,
    peer: str,
    *,
    wait_s: float = 0.0,
    on_wait: Callable[[], None] | None = None,
) -> AsyncIterator[bool]:
    """Yield True when this process may pull ``peer`` now: at once, or after waiting up
    to ``wait_s`` seconds for another process's pull of it to end (``on_wait`` is called
    once when it has to wait). False when it is still busy then."""
    lock = await rt.run(_open, rt, peer)
    try:
        got = await rt.run(lock.try_acquire)
        if not got and wait_s > 0:
            if on_wait is not None:
                on_wait()
            deadline = time.monotonic() + wait_s
            while not got and time.monotonic() < deadline:
                await asyncio.sleep(POLL_S)
                got = await rt.run(lock.try_acquire)
        yield got
    finally:
        await rt.run(lock.release)
