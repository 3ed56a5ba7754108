"""Which process of a node runs its singletons (several ``cattc serve`` workers may share
one database).

Every process serves requests and pulls peers (pulls are shared by the per-peer locks of
``node.services.peer_lock``), but some work must run once per node: the hub's matcher (a
worker process of its own, one per machine), the owner's pre-signer, the notifier. The
process holding the node's *leader lock* runs them:

- PostgreSQL: ``pg_try_advisory_lock`` on a connection kept open for the process's life
  (a session-level lock: PostgreSQL drops it when the connection or the process dies);
- SQLite: an exclusive ``flock`` on ``DATA_DIR/locks/leader.lock`` (the kernel drops it
  when its holder exits).

The others try again every ``RETRY_S`` seconds, so one of them takes over within that
time when the leader stops or dies. The leader writes who it is (``LeaderInfo``) into the
``meta`` table: ``/hub/status`` shows it and other processes use its address to hand it
work only it does (``node.hub.app_setup``).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from node.services.peer_lock import LOCK_DIR
from node.services.summary_cache import Presigner
from node.storage.models import MetaRow

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)

RETRY_S = 1.0
LEADER_KEY = "leader"
LOCK_FILE = "leader.lock"
Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class LeaderInfo:
    """Who leads: its process id and host, since when (ms), its own id (one process may
    hold several nodes' apps: tests), and the loopback address and secret of its control
    endpoint ("" when it has none)."""

    pid: int
    host: str
    since: int
    instance: str
    url: str = ""
    secret: str = ""

    def public(self) -> dict[str, Any]:
        """What ``/hub/status`` shows: never the secret."""
        return {"pid": self.pid, "host": self.host, "since": self.since}


def leader_key(node_id: str, schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for the node in ``schema``: other nodes
    (other schemas, e.g. tests) may share the database, and each has its own leader."""
    digest = hashlib.sha256(f"cattc-leader:{node_id}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLeaderLock:
    """A session-level advisory lock on a connection of its own, held for the process's
    life (a lost connection is a lost lock: ``still_held`` says so)."""

    def __init__(self, engine: Engine, node_id: str) -> None:
        self.engine = engine
        self.node_id = node_id
        self.conn: Connection | None = None
        self.got = False

    def try_acquire(self) -> bool:
        """Whether this process holds the lock now. A connection that failed is dropped
        (it cannot be used again before a rollback): the next try opens a new one. Kept,
        it made every later try fail, and a process that was not the leader when the
        database blinked could never lead again."""
        try:
            if self.conn is None:
                self.conn = self.engine.connect()
            schema = str(self.conn.execute(text("SELECT current_schema()")).scalar())
            key = leader_key(self.node_id, schema)
            got = self.conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
            self.got = bool(got.scalar())
            self.conn.commit()
        except Exception:
            self._drop()
            raise
        return self.got

    def still_held(self) -> bool:
        if self.conn is None or not self.got:
            return False
        try:
            self.conn.execute(text("SELECT 1"))
            self.conn.commit()
        except Exception:  # the connection is gone, and the lock with it
            logger.warning("leader lock: connection lost", exc_info=True)
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        self.got = False
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # already broken
                logger.debug("leader lock: closing a broken connection", exc_info=True)

    def release(self) -> None:
        # Closing the session's connection ends the lock (pool: invalidate, never reuse a
        # connection that may still hold it).
        self._drop()


class FileLeaderLock:
    """An exclusive ``flock`` on ``DATA_DIR/locks/leader.lock``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_DIR / LOCK_FILE
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        if self.fd is None:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def still_held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the lock


def open_leader_lock(rt: NodeRuntime) -> LeaderLock:
    if rt.engine.dialect.name == "postgresql":
        return AdvisoryLeaderLock(rt.engine, rt.node_id)
    return FileLeaderLock(rt.data_dir)


def read_leader(engine: Engine) -> LeaderInfo | None:
    """The leader as it wrote itself into the database (None: none yet, or it stopped)."""
    with Session(engine) as session:
        return leader_in(session)


def leader_in(session: Session) -> LeaderInfo | None:
    row = session.get(MetaRow, LEADER_KEY)
    return None if row is None else LeaderInfo(**json.loads(row.value))


def _write_leader(session: Session, info: LeaderInfo) -> None:
    session.merge(MetaRow(key=LEADER_KEY, value=json.dumps(asdict(info))))


def _clear_leader(session: Session, instance: str) -> None:
    """Forget the leader row if it is still this one's (a successor may have written its
    own already)."""
    row = session.get(MetaRow, LEADER_KEY)
    if row is not None and json.loads(row.value).get("instance") == instance:
        session.delete(row)


class Leadership:
    """This process's bid for the node's leader lock, and what it runs while it holds it.

    ``on_gain`` hooks run when it becomes the leader (in the order added), ``on_lose`` hooks
    when it stops being it (reverse order): at ``aclose`` or when the lock was lost.
    ``address`` gives the control endpoint's (url, secret) once the gain hooks ran."""

    def __init__(self, rt: NodeRuntime, *, retry_s: float = RETRY_S) -> None:
        self.rt = rt
        self.retry_s = retry_s
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.instance = secrets.token_hex(8)
        self.is_leader = False
        self.since: int | None = None
        self._lock: LeaderLock | None = None
        self._gain: list[Hook] = []
        self._lose: list[Hook] = []
        self._task: asyncio.Task[None] | None = None
        self.address: tuple[str, str] = ("", "")

    def on_gain(self, hook: Hook) -> None:
        self._gain.append(hook)

    def on_lose(self, hook: Hook) -> None:
        self._lose.append(hook)

    async def start(self) -> None:
        """Bid once now (a single process leads from its first request on), then keep
        bidding (or checking the lock still holds) in the background."""
        self._lock = await self.rt.run(open_leader_lock, self.rt)
        await self._tick()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again at the next tick
                logger.warning("leader lock check failed: %s: %s", type(exc).__name__, exc)

    async def _tick(self) -> None:
        assert self._lock is not None
        if self.is_leader:
            if not await self.rt.run(self._lock.still_held):
                logger.warning("process %d lost the leader lock", self.pid)
                await self._step_down()
            return
        if await self.rt.run(self._lock.try_acquire):
            await self._take_over()

    async def _take_over(self) -> None:
        self.is_leader = True
        self.since = self.rt.clock()
        logger.info("process %d leads node %s", self.pid, self.rt.node_id)
        for hook in self._gain:
            try:
                await hook()
            except Exception:
                logger.exception("a leader's start hook failed")
        await self.rt.db.run(_write_leader, self.info())

    async def _step_down(self) -> None:
        self.is_leader = False
        self.since = None
        for hook in reversed(self._lose):
            try:
                await hook()
            except Exception:
                logger.exception("a leader's stop hook failed")
        self.address = ("", "")

    def info(self) -> LeaderInfo:
        url, secret = self.address
        return LeaderInfo(self.pid, self.host, self.since or 0, self.instance, url, secret)

    async def aclose(self) -> None:
        """Stop bidding; as the leader, stop its work, forget its row and drop the lock so
        that another process takes over at its next try."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.is_leader:
            await self._step_down()
            try:
                await self.rt.db.run(_clear_leader, self.instance)
            except Exception:
                logger.exception("could not clear the leader row")
        if self._lock is not None:
            await self.rt.run(self._lock.release)
            self._lock = None


class LeaderPresigner(Presigner):
    """The sync manager's pre-signer, signing only in the leader process (the others'
    passes do nothing: several signers would sign every summary several times)."""

    def __init__(self, rt: NodeRuntime, leadership: Leadership) -> None:
        super().__init__(rt)
        self.leadership = leadership

    async def run(self, blocking: Callable[..., Any]) -> None:
        if self.leadership.is_leader:
            await super().run(blocking)
