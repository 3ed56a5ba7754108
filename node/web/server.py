"""Serving one node from one process, with bounds that no stranger can lift.

``web.run_app`` binds its port only after it has started the app, and puts no cap on
connections. Here the data directory is locked first (one server per SQLite data
directory), the port is bound before anything says "serving", connections beyond
``max_connections`` (or one address's share of them) get a 503 and are closed at once, a
connection that has not sent a complete request head within ``header_timeout_seconds``
(new, or idle between requests) is closed, a head, the requests read ahead and an answer
nobody reads are bounded (``_Counted``), and the unread rest of a refused body is
discarded for ``LINGER_S`` at most.

SIGINT or SIGTERM stops the server within seconds whatever it is doing: requests in
progress get ``SHUTDOWN_S`` to finish, the matching worker is terminated (its unfinished
work stays queued in the database), and if the rest of the clean-up (a database job that
cannot be interrupted, such as a large import's transaction) is not done within
``STOP_DEADLINE_S`` of the signal, or a second signal comes, the process exits at once:
a transaction it had not committed is rolled back by the database.

``cattc serve --workers N`` (node/web/workers.py) runs this same server in each of N
processes, on sockets bound with ``SO_REUSEPORT`` to one address (``bind(...,
reuse_port=True)``), while their supervisor holds the address with ``reserve``; a worker
obeys SIGTERM only, and stops as well when its supervisor has gone (``stop_fd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from node.config import NodeConfig
from node.services import serve_lock
from node.services.heap import HeapTrimmer
from node.web.client import Network, counted_as, networks
from node.web.tally import Tally

logger = logging.getLogger(__name__)
LOCK_FILE = serve_lock.LOCK_FILE
LINGER_S = 2.0
# Bytes read from a connection at a time, and buffered of a body nobody reads yet.
READ_BYTES = 16 * 1024
BACKLOG = 1024
# Descriptors the process needs besides client connections: database, log, peers' calls,
# and a backlog's worth: asyncio accepts up to BACKLOG connections in one go, and out of
# descriptors it logged a traceback for each one left (113,144 lines in 45 s) while pages
# failed to open their templates.
SPARE_FILES = 256 + BACKLOG
# After SIGINT/SIGTERM: how long requests in progress may take, and when the process
# exits even if its clean-up has not finished.
SHUTDOWN_S = 3.0
STOP_DEADLINE_S = 6.0
# How long a thread holding the GIL keeps it while another waits (Python's default is
# 5 ms). A request's thread gives the GIL up at every database call and must wait for
# it back; while a sync's pages are parsed and applied in other threads, a search of a
# few hundred such calls waited that long at each (p99 1.1 s during a sync from four
# members). Shorter turns cost the sync's threads a little; a request waits less.
SWITCH_INTERVAL_S = 0.0005
# The cyclic garbage collector of a serving process. A sync keeps each page's tens of
# thousands of parsed objects alive while it checks and stores it; with Python's default
# thresholds (700, 10, 10) they were promoted to the oldest generation page after page,
# and full collections over everything the process holds took a third of the time the
# GIL was held during a sync, in stalls of up to 2 s (searches waited behind them).
# Objects made while starting (modules, the app) are frozen out of collections once the
# node accepts, and collections are rarer; reference counting frees everything else as
# before, the collector is only for cycles.
GC_THRESHOLDS = (50_000, 20, 100)
# Bounds on what one connection makes the process hold (``_Counted``).
MAX_HEAD_BYTES = 64 * 1024
PIPELINED = 2
WRITE_STALL_S = 30.0
PER_ADDRESS_MIN = 64  # connections of one address, at least (max_connections / 8)
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)
_BUSY_BODY = b'{"error":{"code":"server_busy","message":"too many connections; retry later"}}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


class ServeError(Exception):
    """The server cannot start; the message says why and what to do."""


def lock_data_dir(data_dir: Path) -> int:
    """Hold ``DATA_DIR/serve.lock`` for the life of this process (the descriptor returned
    must stay open); ServeError if another process holds it."""
    try:
        return serve_lock.take(data_dir)
    except serve_lock.LockHeld as exc:
        raise ServeError(
            f"another cattc serve (pid {exc.holder}) is already running on {data_dir}; "
            "stop it first (one server per data directory)"
        ) from None


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket on ``host:port``; ServeError if the address is taken.
    ``reuse_port``: one of several workers' sockets on one address (``SO_REUSEPORT``: the
    kernel spreads new connections over them)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server(
            (host, port), family=family, backlog=BACKLOG, reuse_port=reuse_port
        )
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from exc


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` that does not listen: it holds
    the address (a server without ``SO_REUSEPORT`` cannot take it) and fixes a port 0 to
    one port for the workers' listening sockets; ServeError if the address is taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise _cannot_listen(host, port, exc) from exc
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> ServeError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return ServeError(
        f"cannot listen on {host}:{port}: {reason}; "
        "is another server using this port? choose another with --port"
    )


def fit_open_files(max_connections: int) -> int:
    """Raise this process's open-file limit to what ``max_connections`` needs, as far as
    the hard limit allows; the number of connections that fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < want:
        fit = max(1, soft - SPARE_FILES)
        logger.warning(
            "open-file limit %d allows %d connections, not max_connections=%d",
            soft,
            fit,
            max_connections,
        )
        return fit
    return max_connections


class _Busy(asyncio.Protocol):
    """A connection over the cap: one 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's handler of one connection, counted (per address too), reading in small
    pieces, with what a connection may make the process hold bounded:

    - the bytes of request heads not yet parsed (``MAX_HEAD_BYTES``; aiohttp's own limits
      allow 128 headers of 8 KB, and held two copies of each until the head was done:
      2,000 unfinished heads took 3 GB);
    - requests parsed ahead of the one being answered (``PIPELINED``; aiohttp parses 32,
      each with its head);
    - the time an answer may wait for a client that reads nothing (``WRITE_STALL_S``;
      such connections kept ~60 MB each of answers for as long as they stayed open)."""

    def __init__(self, inner: web.RequestHandler, site: GuardedSite) -> None:
        self.inner = inner
        self.site = site
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.head_bytes = 0
        self.stalled: asyncio.TimerHandle | None = None
        self.refused = False  # over its address's share: answered 503, never handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.site.open += 1
        peer = transport.get_extra_info("peername")
        self.address = self.site.count_in(peer[0] if isinstance(peer, tuple) else "")
        if self.site.over(self.address):
            self.site.refused += 1
            self.refused = True
            transport.write(_BUSY)
            transport.close()  # connection_lost comes, and counts it out
            return
        if hasattr(transport, "max_size"):  # asyncio's socket transport: bytes per recv()
            transport.max_size = READ_BYTES
        self.inner._max_msg_queue_size = PIPELINED  # noqa: SLF001 - no public setting
        self.inner._msg_queue_resume_size = 1  # noqa: SLF001
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        inner = self.inner
        if inner._current_request is None and not inner._messages:  # noqa: SLF001
            self.head_bytes += len(data)  # no request under way: a head is coming
            if self.head_bytes > MAX_HEAD_BYTES:
                assert self.transport is not None
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        inner.data_received(data)
        if inner._messages or inner._current_request is not None:  # noqa: SLF001
            self.head_bytes = 0  # a head was parsed: the next one counts from nothing

    def eof_received(self) -> bool | None:
        if not self.refused:
            self.inner.eof_received()
        return None  # close the transport (aiohttp's handler says the same)

    def connection_lost(self, exc: Exception | None) -> None:
        self.site.open -= 1
        self.site.count_out(self.address)
        if self.stalled is not None:
            self.stalled.cancel()
        if not self.refused:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.stalled is None and self.transport is not None:
            loop = asyncio.get_running_loop()
            self.stalled = loop.call_later(WRITE_STALL_S, self.transport.abort)
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.stalled is not None:
            self.stalled.cancel()
            self.stalled = None
        self.inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A listening socket whose connections beyond ``max_connections`` are refused, and
    those of one address (an IPv6 /64) beyond ``per_address``, unless the address is a
    trusted proxy's: one address holding every connection (2,048 idle sockets, reopened
    as they were closed, at no cost to it) kept everyone else out."""

    def __init__(
        self,
        runner: web.AppRunner,
        sock: socket.socket,
        max_connections: int,
        *,
        per_address: int | None = None,
        trusted: Sequence[Network] = (),
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self.sock = sock
        self.max_connections = max_connections
        self.per_address = per_address or max(PER_ADDRESS_MIN, max_connections // 8)
        self.trusted = tuple(trusted)
        self.open = 0
        self.refused = 0
        self.by_address: Tally[str] = Tally()

    def count_in(self, address: str) -> str:
        """Count a connection from ``address``; what it is counted as ("" if not at all)."""
        try:
            if any(ipaddress.ip_address(address) in net for net in self.trusted):
                return ""
        except ValueError:
            return ""
        key = counted_as(address)
        self.by_address.add(key)
        return key

    def count_out(self, key: str) -> None:
        if key:
            self.by_address.take(key)

    def over(self, key: str) -> bool:
        return bool(key) and self.by_address[key] > self.per_address

    @property
    def name(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        def connection() -> asyncio.BaseProtocol:
            if self.open >= self.max_connections:
                self.refused += 1
                return _Busy()
            return _Counted(server(), self)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(connection, sock=self.sock, backlog=BACKLOG)


async def run_server(
    app: web.Application,
    sock: socket.socket,
    config: NodeConfig,
    *,
    ready: Callable[[GuardedSite], None],
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
    stop_fd: int | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until one of ``signals`` (or until ``stop_fd`` turns
    readable: a worker's supervisor has gone); ``ready`` once it accepts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[int] = []
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    def on_signal(sig: int, why: str = "") -> None:
        received.append(sig)
        if len(received) == 1:
            logger.info("%s: stopping", why or signal.Signals(sig).name)
            _exit_after(STOP_DEADLINE_S, sig)
            stop.set()
        else:  # asked again: no more waiting
            _exit_now(sig, "a second signal")

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    if stop_fd is not None:

        def orphaned() -> None:
            loop.remove_reader(stop_fd)
            on_signal(signal.SIGTERM, "the supervisor has gone")

        loop.add_reader(stop_fd, orphaned)
    trimmer = HeapTrimmer()  # freed heap back to the system each minute (node.services.heap)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=config.header_timeout_seconds,
        lingering_time=LINGER_S,
        read_bufsize=READ_BYTES,
        shutdown_timeout=SHUTDOWN_S,
    )
    try:
        await runner.setup()
        site = GuardedSite(
            runner,
            sock,
            fit_open_files(config.max_connections),
            per_address=config.max_connections_per_address or None,
            trusted=networks(config.trusted_proxies),
        )
        await site.start()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        trimmer.start()
        ready(site)
        await stop.wait()
    finally:
        trimmer.stop()
        await runner.cleanup()
        for sig in signals:
            with contextlib.suppress(RuntimeError):
                loop.remove_signal_handler(sig)
        if stop_fd is not None:
            loop.remove_reader(stop_fd)
        # What is left is freed when the process exits: the collector's passes over it at
        # interpreter shutdown took seconds at a hub holding many summaries.
        gc.freeze()


def _exit_now(sig: int, why: str) -> None:
    logger.warning("%s: exiting without finishing the clean-up", why)
    logging.shutdown()
    os._exit(128 + sig)


def _exit_after(seconds: float, sig: int) -> None:
    """Exit the process ``seconds`` from now unless it has exited by then (a daemon
    thread: it does not keep a finished process alive)."""
    timer = threading.Timer(seconds, _exit_now, args=(sig, f"the clean-up took over {seconds:g} s"))
    timer.daemon = True
    timer.start()
