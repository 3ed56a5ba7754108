"""Several processes serving one node on one address (``cattc serve --workers N``).

One process answers requests with one core. On PostgreSQL, where any number of processes
may share the node's database, a supervisor starts N worker processes (``spawn``: a
fresh interpreter each, nothing inherited from a parent that has threads), and each runs
the whole node app on the same ``host:port`` with ``SO_REUSEPORT``: the kernel hands each
new connection to one of the workers' listening sockets. The work in the background is
shared through the database: a pull of a member takes that member's advisory lock
(node/services/peer_lock.py), so one worker at a time pulls it.

The supervisor serves nothing itself. It migrates the database once before any worker
starts, holds the address with a bound socket that does not listen (so that the port is
checked at once, a port 0 becomes one port for all, and a server without
``SO_REUSEPORT`` cannot take the address while a worker restarts), and watches: a worker
that dies is started again after a pause that doubles (1 s, 2 s, ... 30 s) while it keeps
dying young. A worker that fails before the node first served (a database it cannot
reach) stops them all, and its reason is the command's one error line.

SIGINT or SIGTERM to the supervisor (Ctrl-C reaches only it: the workers ignore SIGINT)
sends SIGTERM to every worker, which stops as a single server does (node/web/server.py);
a worker still there ``STOP_S`` later is killed, as are all at a second signal. A worker
whose supervisor has gone (killed) stops by itself. Log lines say which worker wrote them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from node.config import NodeConfig
from node.storage.db import make_engine, migrate
from node.web.app import create_app
from node.web.server import STOP_DEADLINE_S, GuardedSite, ServeError, bind, run_server
from protocol.keys import KeyFileError

logger = logging.getLogger(__name__)
MAX_WORKERS = 64
WORKER_HEADER = "X-Cattc-Worker"
# After SIGINT/SIGTERM: how long the supervisor waits for its workers (each exits within
# its own STOP_DEADLINE_S) before it kills them.
STOP_S = STOP_DEADLINE_S + 2.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
# A worker that ran this long before dying starts again after FIRST_BACKOFF_S.
HEALTHY_S = 30.0


def log_format(who: str) -> str:
    """The log line format of the supervisor or a worker (``who``)."""
    return f"%(asctime)s %(levelname)s {who} (pid %(process)d) %(name)s: %(message)s"


def migrate_database(url: str) -> None:
    """Bring the database to the newest schema, once, before any worker starts (each
    worker's own migration then finds nothing to do)."""
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to serve (sent to it pickled)."""

    data_dir: Path
    config: NodeConfig
    host: str
    port: int
    index: int


def run_worker(spec: WorkerSpec, conn: Connection) -> None:
    """A worker process: serve the node on the shared address until SIGTERM, telling the
    supervisor ``("ready", url)`` once it accepts, or ``("failed", reason)``."""
    # A process group of its own, whatever it starts included (the matching worker, the
    # verify pool): the supervisor ends what is left of it after it died.
    os.setpgid(0, 0)
    logging.basicConfig(
        level=spec.config.log_level.upper(), format=log_format(f"worker {spec.index}")
    )

    def tell(*message: str) -> None:
        with contextlib.suppress(OSError):  # the supervisor has gone
            conn.send(message)

    try:
        sock = bind(spec.host, spec.port, reuse_port=True)
    except ServeError as exc:
        tell("failed", str(exc))
        sys.exit(1)

    def ready(site: GuardedSite) -> None:
        logger.info("serving on %s", site.name)
        tell("ready", site.name)

    app = create_app(spec.data_dir, config=spec.config)
    worker = str(spec.index)

    async def add_worker_header(_request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = worker

    app.on_response_prepare.append(add_worker_header)
    parent = multiprocessing.parent_process()
    try:
        asyncio.run(
            run_server(
                app,
                sock,
                spec.config,
                ready=ready,
                signals=(signal.SIGTERM,),
                stop_fd=parent.sentinel if parent is not None else None,
            )
        )
    except Exception as exc:  # the reason goes to the supervisor, which stops or restarts
        known = isinstance(exc, (SQLAlchemyError, OSError, KeyFileError))
        logger.log(logging.DEBUG if known else logging.ERROR, "stopped", exc_info=True)
        tell("failed", f"{exc.__class__.__name__}: {exc}")
        sys.exit(1)
    finally:
        sock.close()


@dataclass
class _Slot:
    """One worker's place: its process now, and how it has fared."""

    index: int
    process: BaseProcess | None = None
    conn: Connection | None = None
    started: float = 0.0
    ready: bool = False
    served: bool = False  # ready at least once
    failure: str = ""
    backoff: float = FIRST_BACKOFF_S
    restart_at: float = 0.0


@dataclass
class Supervisor:
    """Starts ``count`` workers of the node in ``data_dir`` on ``host:port`` and keeps them
    running until SIGINT or SIGTERM (see the module docstring). ``on_ready`` is called once,
    with the address, when every worker first accepts."""

    data_dir: Path
    config: NodeConfig
    host: str
    port: int
    count: int
    on_ready: Callable[[str], None]
    slots: list[_Slot] = field(init=False)
    signals: int = 0
    announced: bool = False

    def __post_init__(self) -> None:
        self.slots = [_Slot(i) for i in range(1, self.count + 1)]
        self._ctx = multiprocessing.get_context("spawn")

    def run(self) -> None:
        """Supervise until a signal; ServeError if a worker fails before serving."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        old_handlers = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            for slot in self.slots:
                self._start(slot)
            self._watch(wake_r)
        finally:
            self._stop_all(wake_r)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            wake_r.close()
            wake_w.close()
            # The collector's passes over everything the supervisor imported took two
            # seconds of its exit on a loaded machine; what is left is freed at exit.
            gc.freeze()

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self.signals += 1

    def _start(self, slot: _Slot) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)
        spec = WorkerSpec(self.data_dir, self.config, self.host, self.port, slot.index)
        process = self._ctx.Process(
            target=run_worker, args=(spec, writer), name=f"cattc-worker-{slot.index}"
        )
        # The worker inherits "ignore SIGINT" through exec: a Ctrl-C at the terminal reaches
        # the whole process group, and the supervisor alone decides what it means. Blocked
        # meanwhile, a SIGINT for the supervisor waits for its handler instead of being lost.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        writer.close()
        slot.process, slot.conn, slot.ready, slot.failure = process, reader, False, ""
        slot.started = time.monotonic()
        logger.info("worker %d started (pid %s)", slot.index, process.pid)

    def _watch(self, wake: socket.socket) -> None:
        while not self.signals:
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is None and slot.restart_at <= now:
                    self._start(slot)
            waiting: dict[Any, _Slot] = {}
            for slot in self.slots:
                if slot.process is not None:
                    waiting[slot.process.sentinel] = slot
                if slot.conn is not None:
                    waiting[slot.conn] = slot
            restarts = [s.restart_at for s in self.slots if s.process is None]
            timeout = max(0.0, min(restarts) - now) if restarts else None
            for obj in wait([*waiting, wake], timeout):
                if obj is wake:
                    _drain(wake)
                    continue
                slot = waiting[obj]
                if obj is slot.conn:
                    self._receive(slot)
                elif slot.process is not None:
                    self._exited(slot)

    def _receive(self, slot: _Slot) -> None:
        assert slot.conn is not None
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            slot.conn.close()
            slot.conn = None
            return
        kind, detail = message
        if kind == "failed":
            slot.failure = str(detail)
        elif kind == "ready":
            slot.ready = slot.served = True
            if not self.announced and all(s.ready for s in self.slots):
                self.announced = True
                self.on_ready(str(detail))

    def _exited(self, slot: _Slot) -> None:
        assert slot.process is not None
        while slot.conn is not None and slot.conn.poll():  # its last words first
            self._receive(slot)
        slot.process.join()
        code, pid = slot.process.exitcode, slot.process.pid
        _end_group(pid)
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False
        if not slot.served and not self.announced:
            why = slot.failure or f"exit code {code}"
            raise ServeError(f"worker {slot.index} stopped before serving: {why}")
        lived = time.monotonic() - slot.started
        if lived >= HEALTHY_S:
            slot.backoff = FIRST_BACKOFF_S
        delay = slot.backoff
        slot.backoff = min(2 * slot.backoff, MAX_BACKOFF_S)
        slot.restart_at = time.monotonic() + delay
        logger.warning(
            "worker %d (pid %s) exited with code %s%s; starting it again in %g s",
            slot.index,
            pid,
            code,
            f" ({slot.failure})" if slot.failure else "",
            delay,
        )

    def _stop_all(self, wake: socket.socket) -> None:
        """SIGTERM to every worker; those left after STOP_S (or at a second signal) are
        killed."""
        left = [s for s in self.slots if s.process is not None]
        if left:
            logger.info("stopping %d workers", len(left))
        start = time.monotonic()
        for slot in left:
            assert slot.process is not None
            slot.process.terminate()
        seen = max(self.signals, 1)
        while left and self.signals <= seen and time.monotonic() < start + STOP_S:
            waiting = [s.process.sentinel for s in left if s.process is not None]
            wait([*waiting, wake], start + STOP_S - time.monotonic())
            _drain(wake)
            for slot in [s for s in left if s.process is not None and not s.process.is_alive()]:
                left.remove(slot)
                logger.info(
                    "worker %d (pid %s) stopped after %.1f s",
                    slot.index,
                    slot.process.pid if slot.process else "?",
                    time.monotonic() - start,
                )
        for slot in left:
            assert slot.process is not None
            logger.warning(
                "worker %d (pid %s) did not stop within %.1f s: killed",
                slot.index,
                slot.process.pid,
                time.monotonic() - start,
            )
            slot.process.kill()
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join()
                _end_group(slot.process.pid)
            if slot.conn is not None:
                slot.conn.close()
            slot.process, slot.conn = None, None


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _end_group(pid: int | None) -> None:
    """Kill what is left of a worker's process group once the worker has exited (children
    of a worker that was killed would otherwise live on, orphaned)."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _drain(wake: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while wake.recv(512):
            pass
