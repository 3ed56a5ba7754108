"""The door of ``/federation/v1/*``: who may send a body, and how much of one, at all.

A stranger must cost this node next to nothing. So the ``CATTC-Sig`` header is checked
first, as far as it can be without the body (well-formed, for this node, within the time
window, a known and active origin, a key valid then); only a caller that passes may send
a body, and only if the bytes of all bodies being read or held across requests stay
within ``max_bytes_in_flight`` (else 503 ``server_busy`` at once). What a body may
reserve is what its route takes (``ROUTE_BODY_BYTES``: an expression of interest is a few
kilobytes, a notify nothing), not the node's general body limit: a caller that passes
the header check with a forged signature (member ids and key names are public) holds
little. The body is read in bounded chunks within a time that grows with its size
(``body_deadline_s``, at most ``body_timeout_seconds``; else 408), and then the signature
over it is verified and the nonce recorded. Handlers read the body as usual (``request.read()``
returns the bytes read here). One caller's verified requests being answered at once are
bounded too (``CallerSlots``). Connections and request heads are bounded by the server
(``node.web.server``).
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Middleware

from node.config import NodeConfig
from node.services.fed_auth import UnknownKey, caller_key, check_body, check_header
from node.services.log_every import Every
from node.services.sync_manager import SyncManager
from node.web.appkeys import RUNTIME, SYNC
from node.web.client import client_address, counted_as, networks
from node.web.middleware import Handler, error_response
from node.web.requests import BodyTooLarge, read_bounded
from node.web.tally import Tally
from protocol.eoi import BODY_MAX_BYTES as EOI_BODY_MAX_BYTES
from protocol.errors import ErrorCode, http_status
from protocol.request_sig import RequestSignature, RequestSignatureError, parse_header

logger = logging.getLogger(__name__)
ORIGIN = web.RequestKey("origin", str)
# The most a body may hold, per federation route; a route not named takes no body
# worth the name (its handlers read none).
ROUTE_BODY_BYTES: dict[str, int] = {
    "/federation/v1/eoi": EOI_BODY_MAX_BYTES,
    "/federation/v1/eoi/reply": EOI_BODY_MAX_BYTES,
}
OTHER_BODY_BYTES = 1024
# A body's time to arrive: this much, plus its size at this slowest rate.
BODY_GRACE_S = 5.0
MIN_BODY_RATE = 16 * 1024  # bytes a second
# The part of the body budget one client address may hold.
ADDRESS_SHARE = 0.25
# A flood of refusals is logged once in this many seconds, with how many there were.
LOG_EVERY_S = 10.0
# Requests of one caller answered at once, after their signature held: one member must not
# take every database thread from the others, the console and the public. An honest
# reader asks for one feed page at a time (one pull of a peer at a time, across processes).
ORIGIN_IN_FLIGHT = 8
FEED_IN_FLIGHT = 2  # of which feed pages and custody lists, the answers that cost
COSTLY_PATHS = frozenset({"/federation/v1/feed", "/federation/v1/custody"})


class BodyBudget:
    """The bytes of request bodies this node is reading or holding, across all requests,
    and of each client address (an IPv6 /64) at most ``ADDRESS_SHARE`` of them.

    A request reserves what it announces (or the body limit, when it does not say)
    before a byte is read, and gives it back when its handler is done. Its signature is
    verified only once its body is in, so the header of a forged one passes (member ids
    and key names are public): 1,024 such bodies from one address, stalled, held the
    whole budget, and a member's real EoIs got 503 four times in five."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.refusals = Every(LOG_EVERY_S)
        self.by_address: Tally[str] = Tally()

    def reserve(self, size: int, address: str = "") -> bool:
        if self.used + size > self.capacity:
            return False
        if self.by_address[address] + size > self.capacity * ADDRESS_SHARE:
            return False
        self.used += size
        self.by_address.add(address, size)  # a request without a body holds nothing
        return True

    def release(self, size: int, address: str = "") -> None:
        self.used -= size
        self.by_address.take(address, size)

    def note_refusal(self) -> None:
        """Count a body refused for want of room; log the count now and then."""
        count = self.refusals.note()
        if count is not None:
            logger.warning(
                "refused %d request bodies (503 server_busy): %d of %d bytes in flight",
                count,
                self.used,
                self.capacity,
            )


class CallerSlots:
    """Signed requests being answered, per caller (and per caller's costly ones)."""

    def __init__(self) -> None:
        self.held: Tally[tuple[str, bool]] = Tally()

    def take(self, origin: str, feed: bool) -> bool:
        if self.held[(origin, False)] >= ORIGIN_IN_FLIGHT:
            return False
        if feed and self.held[(origin, True)] >= FEED_IN_FLIGHT:
            return False
        self.held.add((origin, False))
        self.held.add((origin, True), int(feed))
        return True

    def give_back(self, origin: str, feed: bool) -> None:
        self.held.take((origin, False))
        self.held.take((origin, True), int(feed))


def federation_auth(config: NodeConfig) -> Middleware:
    """The federation middleware of one app, with its own body budget."""
    budget = BodyBudget(config.max_bytes_in_flight)
    trusted = networks(config.trusted_proxies)
    slots = CallerSlots()
    body_timeout = config.body_timeout_seconds

    @web.middleware
    async def federation_auth_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if not request.path.startswith("/federation/"):
            return await handler(request)
        rt = request.app[RUNTIME]
        header = request.headers.get("Authorization")
        try:
            sig = check_header(rt, header)
            key = await _known_key(request, sig, header)
        except RequestSignatureError as exc:
            return _refuse(exc.code, exc.message)
        announced = request.content_length
        limit = min(config.max_body_bytes, ROUTE_BODY_BYTES.get(request.path, OTHER_BODY_BYTES))
        if not request.body_exists:
            size = 0
        elif announced is not None and announced > limit:
            return _too_large(request.path, limit)
        else:
            size = limit if announced is None else announced
        address = counted_as(client_address(request, trusted))
        if not budget.reserve(size, address):
            budget.note_refusal()
            resp = _refuse(
                ErrorCode.SERVER_BUSY, "too many request bodies in flight; retry in a moment"
            )
            resp.headers["Retry-After"] = "1"
            return resp
        try:
            deadline = body_deadline_s(size, body_timeout)
            try:
                body = await read_bounded(request, size, deadline) if size else b""
            except TimeoutError:
                return _refuse(
                    ErrorCode.BODY_TIMEOUT, f"request body not received within {deadline:g} s"
                )
            except BodyTooLarge:
                return _too_large(request.path, limit)
            except ConnectionError:  # the caller went away mid-body: nobody to answer
                logger.info("a body from %s was cut short by the caller", sig.origin)
                return _refuse(ErrorCode.BAD_REQUEST, "the body was cut short")
            try:
                await rt.run(
                    check_body,
                    rt,
                    sig,
                    key,
                    method=request.method,
                    target=request.raw_path,
                    body=body,
                )
            except RequestSignatureError as exc:
                return _refuse(exc.code, exc.message)
            # What request.read() returns from now on: the handlers read the body as ever.
            request._read_bytes = body
            request[ORIGIN] = sig.origin
            # Counted once the signature holds (a forged one could hold a member's slots)
            feed = request.path in COSTLY_PATHS
            if not slots.take(sig.origin, feed):
                resp = _refuse(
                    ErrorCode.SERVER_BUSY,
                    f"{sig.origin} has {FEED_IN_FLIGHT if feed else ORIGIN_IN_FLIGHT} "
                    f"{'feed or custody ' if feed else ''}requests being answered; "
                    "retry when one ends",
                )
                resp.headers["Retry-After"] = "1"
                return resp
            try:
                return await handler(request)
            finally:
                slots.give_back(sig.origin, feed)
        finally:
            budget.release(size, address)

    return federation_auth_middleware


async def _known_key(request: web.Request, sig: RequestSignature, header: str | None) -> bytes:
    """``caller_key``; once more after learning a new member or a rotated key (rate
    limited), when the first answer was that the origin or key is unknown."""
    rt = request.app[RUNTIME]
    try:
        return await rt.run(caller_key, rt, sig)
    except RequestSignatureError as exc:
        manager = request.app.get(SYNC)
        if manager is None or not await _learn(manager, exc, header):
            raise
    return await rt.run(caller_key, rt, sig)


async def _learn(manager: SyncManager, exc: RequestSignatureError, header: str | None) -> bool:
    if isinstance(exc, UnknownKey):
        return await manager.keys.refresh(parse_header(header).origin)
    if exc.code == ErrorCode.UNKNOWN_ORIGIN:
        return await manager.refresh_directory(rate_limited=True)
    return False


def body_deadline_s(size: int, timeout_s: float) -> float:
    """The time a body of ``size`` bytes has to arrive: ``BODY_GRACE_S`` and its size at
    ``MIN_BODY_RATE``, at most ``timeout_s``."""
    return round(min(timeout_s, BODY_GRACE_S + size / MIN_BODY_RATE), 1)


def _refuse(code: str, message: str) -> web.Response:
    """The error answer for ``code``, with the one status ``protocol.errors`` gives it."""
    return error_response(http_status(code), code, message)


def _too_large(path: str, limit: int) -> web.Response:
    return _refuse(ErrorCode.BODY_TOO_LARGE, f"a body sent to {path} is at most {limit} bytes")
