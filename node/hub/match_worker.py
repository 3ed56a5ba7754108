"""The hub's matching worker: the matcher in a process of its own.

Matching many listings is CPU work in Python and numpy that holds the GIL for seconds
and grows with what the hub holds; in the event loop's process it made pages and search
answer in seconds and a stop wait for it. Here it runs in a child process (spawned: a fresh
interpreter that imports the matcher itself; see ``_context``), which
opens its own engine on the node's database, reads what changed, and writes notices and
its progress (``match_stamps``) in its own short transactions.

The parent's side is ``WorkerClient``: calls are numbered messages on a pipe, answered
in order; a reader thread hands each answer to its future. While a re-match runs, the
worker answers queries (``top``, ``matches_for``, ``status``) between its batches. Closing
terminates the process at once: whatever it had not committed is simply not done, and
the next start finds it still to do. The worker ignores SIGINT (the server decides when
it stops), runs at a lower CPU priority than the server (``WORKER_NICE``: on a small
machine the loop's process comes first) and exits by itself when its parent is gone.
"""

from __future__ import annotations

import gc
import itertools
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from node.config import KEY_FILE, NodeConfig
from node.runtime import NodeRuntime
from node.services.directory import DirectoryService
from node.services.heap import libc, trim_heap
from node.services.listings import ListingService
from node.services.policy import PolicyService
from node.storage.db import make_engine
from protocol.keys import KeyStore

logger = logging.getLogger(__name__)

# Answered between the batches of a re-match: ``drop`` takes retracted listings out of
# every match list at once, not after the pass in progress.
QUERIES = frozenset({"top", "best", "matches_for", "status", "drop"})
METHODS = QUERIES | {"after_sync", "refresh"}
Request = tuple[int, str, tuple[Any, ...], int]  # call id, method, arguments, clock (ms)
STOP_WAIT_S = 2.0  # after SIGTERM, before SIGKILL
# What ``top``, ``ps -o comm`` and /proc/PID/comm show for the worker (a spawned process's
# command line is Python's own and says nothing of what it does; at most 15 bytes).
PROCESS_NAME = "cattc-matching"
WORKER_NICE = 5


class MatchingUnavailable(Exception):
    """The matching worker stopped (closed, or it died) before it answered."""


# -- the worker process ----------------------------------------------------------------
def worker_runtime(data_dir: Path, config: NodeConfig, clock: Any) -> NodeRuntime:
    """The node's services on an engine of this process's own (no migrations: the server
    ran them before it started the worker)."""
    engine = make_engine(config.resolved_database_url(data_dir))
    return NodeRuntime(
        data_dir=data_dir,
        config=config,
        keys=KeyStore.load(data_dir / KEY_FILE),
        engine=engine,
        clock=clock,
        listings=ListingService(engine, config.node_id, config.country, clock),
        policy=PolicyService(engine, clock, hub_id=config.hub_id),
        directory=DirectoryService(engine, clock, config.node_id),
    )


PR_SET_NAME = 15  # prctl's option: the calling thread's name (the main thread's: the process's)


def name_process(name: str) -> bool:
    """Set what ``top``, ``ps -o comm`` and ``/proc/PID/comm`` show for this process
    (Linux keeps 15 bytes). False where the C library has no ``prctl``."""
    prctl = libc("prctl")
    return prctl is not None and int(prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)) == 0


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Blocks of 128 KiB and more always get their own mapping, given back when freed.
    glibc raises its threshold after each big free (up to 32 MiB), after which a pass's
    large numpy temporaries came from the heap and stayed there, fragmented: a hub of
    8,500 listings kept 17 MB more after its top lists were read. Setting the threshold
    turns the raising off. False where the C library has no ``mallopt``."""
    mallopt = libc("mallopt")
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def one_blas_thread() -> bool:
    """The BLAS library's own threads limited to one: the matcher splits a bulk ranking
    over ``node.matching.ivf.THREADS`` threads of its own, each of which made OpenBLAS
    start and feed its threads too (two cores, four busy threads, and a buffer each).
    Measured on a bulk ranking of 70,000 requests against 85,000 offers: 9.8 -> 8.4 s, and
    55 MB less at its peak. False when threadpoolctl finds no BLAS library it can limit."""
    import numpy  # noqa: F401  (loads the BLAS library numpy uses, if not yet loaded)
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return bool(threadpool_limits(limits=1, user_api="blas").get_original_num_threads())


def release_memory() -> bool:
    """Give the heap a pass freed back to the system (gc, then glibc's ``malloc_trim``):
    glibc keeps freed chunks, and its mmap threshold grows after each big free, so the
    worker stayed at its pass's size (2 x 20,000 listings: 381 -> 285 MB RSS after a
    trim). False where the C library has no ``malloc_trim`` (musl, macOS)."""
    gc.collect()
    return trim_heap()


class _Now:
    """The worker's clock: the parent's clock reading, sent with each call."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


class _Worker:
    def __init__(self, conn: Connection, rt: NodeRuntime, now: _Now, encoder: str | None) -> None:
        from node.hub.match_engine import MatchEngine

        self.conn = conn
        self.rt = rt
        self.now = now
        self.engine = MatchEngine(rt, encoder, consumes_queue=True)
        self.parent = os.getppid()
        self.deferred: list[Request] = []
        self.loaded = False

    def checkpoint(self) -> None:
        """Between batches: exit if the parent is gone; answer the queries waiting, drops
        first (a withdrawal leaves the lists before a long query ahead of it is answered)."""
        if os.getppid() != self.parent:
            os._exit(0)
        waiting: list[Request] = []
        while True:
            while self.conn.poll(0):
                request = self.conn.recv()
                (waiting if request[1] in QUERIES else self.deferred).append(request)
            if not waiting:
                return
            self.answer(_next(waiting))

    def answer(self, request: Request) -> None:
        call_id, method, args, now = request
        outer = self.now.ms  # a query answered at a checkpoint leaves the re-match's clock
        self.now.ms = now
        try:
            if not self.loaded:  # a new worker answers its first query from what is held
                self.loaded = True
                if method in QUERIES:
                    self.engine.refresh(self.checkpoint)
            if method == "after_sync":
                self.rt.keys = KeyStore.load(self.rt.data_dir / KEY_FILE)  # after a rotation
                sent = self.engine.after_sync(self.checkpoint, *args)
                value: Any = (sent, self.engine.left, self.engine.status())
            elif method == "refresh":
                value = self.engine.refresh(self.checkpoint)
            elif method in METHODS:
                value = getattr(self.engine, method)(*args)
            else:
                raise ValueError(f"unknown method {method!r}")
            if method in ("after_sync", "refresh"):
                release_memory()  # a pass's temporaries, back to the system
            reply: tuple[int, bool, Any] = (call_id, True, value)
        except Exception as exc:
            logger.exception("matching worker: %s failed", method)
            reply = (call_id, False, f"{method} failed: {exc.__class__.__name__}: {exc}")
        finally:
            self.now.ms = outer
        self.conn.send(reply)

    def serve(self) -> None:
        while True:
            try:
                if not self.deferred:
                    self.deferred.append(self.conn.recv())
                while self.conn.poll(0):
                    self.deferred.append(self.conn.recv())
            except (EOFError, OSError):
                return  # the parent closed its end or is gone
            self.answer(_next(self.deferred))


def _next(requests: list[Request]) -> Request:
    """The first ``drop`` waiting, else the first request (the others keep their order)."""
    for i, request in enumerate(requests):
        if request[1] == "drop":
            return requests.pop(i)
    return requests.pop(0)


def worker_main(
    conn: Connection, data_dir: str, config_json: str, encoder: str | None, log_level: int
) -> None:
    """The worker process's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name_process(PROCESS_NAME)
    os.nice(WORKER_NICE)  # background work: the server's own process comes first
    fix_mmap_threshold()
    one_blas_thread()
    logging.basicConfig(level=log_level, format="%(asctime)s matching %(levelname)s %(message)s")
    config = NodeConfig.model_validate_json(config_json)
    now = _Now()
    rt = worker_runtime(Path(data_dir), config, now)
    try:
        _Worker(conn, rt, now, encoder).serve()
    finally:
        rt.engine.dispose()


# -- the parent's side ------------------------------------------------------------------
def _context() -> SpawnContext:
    """Spawn: a fresh interpreter, never a fork of the threaded server itself. Not a
    forkserver: it would stay beside the worker for the node's whole life (91 MB of
    resident memory at 200,000 summaries, 12% of the hub's budget) to save the one
    second of imports that a start costs, once per node start or worker crash."""
    return multiprocessing.get_context("spawn")


class WorkerClient:
    """Calls into the matching worker of one node; the process starts at the first call
    and again after it died."""

    def __init__(self, data_dir: Path, config: NodeConfig, encoder: str | None) -> None:
        self.data_dir = data_dir
        self.config = config
        self.encoder = encoder
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Connection, Future[Any]]] = {}
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._closed = False
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _start(self) -> Connection:
        """Under ``_lock``: the pipe to a live worker, started if need be."""
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        ctx = _context()
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=worker_main,
            args=(
                theirs,
                str(self.data_dir),
                self.config.model_dump_json(),
                self.encoder,
                logging.getLogger().getEffectiveLevel(),
            ),
            name=f"cattc-matching-{self.config.node_id}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        self._proc = proc
        self._conn = ours
        self.starts += 1
        threading.Thread(
            target=self._read, args=(ours,), name="matching-replies", daemon=True
        ).start()
        logger.info("matching worker started (pid %s)", proc.pid)
        return ours

    def _read(self, conn: Connection) -> None:
        """Hand each answer to its caller; when the pipe ends, fail whoever still waits."""
        while True:
            try:
                call_id, ok, value = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                entry = self._pending.pop(call_id, None)
            if entry is None:
                continue
            future = entry[1]
            if ok:
                future.set_result(value)
            else:
                future.set_exception(MatchingUnavailable(str(value)))
        conn.close()
        with self._lock:
            if self._conn is conn:
                self._conn = None
            waiting = [i for i, (c, _) in self._pending.items() if c is conn]
            futures = [self._pending.pop(i)[1] for i in waiting]
        reason = "the matching worker was stopped" if self._closed else "the worker died"
        for future in futures:
            if not future.done():
                future.set_exception(MatchingUnavailable(reason))

    def submit(self, method: str, args: tuple[Any, ...], *, now: int) -> Future[Any]:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise MatchingUnavailable("the matching worker was stopped")
            conn = self._start()
            call_id = next(self._ids)
            self._pending[call_id] = (conn, future)
            try:
                conn.send((call_id, method, args, now))
            except (OSError, ValueError) as exc:
                self._pending.pop(call_id, None)
                raise MatchingUnavailable(f"cannot reach the matching worker: {exc}") from exc
        return future

    def call(self, method: str, args: tuple[Any, ...], *, now: int) -> Any:
        return self.submit(method, args, now=now).result()

    def close(self) -> None:
        """Terminate the worker (SIGTERM, then SIGKILL after ``STOP_WAIT_S``)."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is not None:
            proc.terminate()
            proc.join(STOP_WAIT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(STOP_WAIT_S)
