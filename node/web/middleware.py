"""One error shape for every failure: ``{"error": {"code", "message"}}``; admin auth."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from node.services.log_every import Every
from node.services.setup import token_matches
from node.ui.errors import page_error
from node.ui.paths import is_page
from node.web.appkeys import RUNTIME
from protocol.errors import ErrorCode, ProtocolError, http_status

logger = logging.getLogger(__name__)
ADMIN_PATHS = frozenset({"/hub/status", "/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(ProtocolError):
    """An error a handler raises. It is answered with the status the one table
    (``protocol.errors.STATUS``) gives its code; ``status`` in the call says the same
    for the reader of the handler (tests/protocol/test_wire_errors.py checks they agree)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.declared_status = status


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def protocol_error_response(exc: ProtocolError) -> web.Response:
    """The answer to ``exc``: its code, its message, and its code's one status."""
    return error_response(http_status(exc.code), exc.code, exc.message)


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if address_holds_nul(request):
            raise web.HTTPBadRequest(reason="the address holds a NUL character (%00)")
        return await handler(request)
    except ProtocolError as exc:  # ApiError, ServiceError, signature errors: one table
        return protocol_error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if is_page(request.path):
            limit = request.app[RUNTIME].config.max_body_bytes
            return page_error(request, exc.status, limit_bytes=limit)
        code = _HTTP_CODES.get(exc.status, ErrorCode.BAD_REQUEST)
        message = exc.reason
        if exc.status == 413:
            limit = request.app[RUNTIME].config.max_body_bytes
            message = f"request body exceeds the limit of {limit} bytes"
        return error_response(exc.status, code, message)
    except HttpProcessingError as exc:  # e.g. a multipart part's header aiohttp refuses
        logger.info("%s %s: a malformed request: %s", request.method, request.path, exc)
        if is_page(request.path):
            return page_error(request, 400)
        return error_response(400, ErrorCode.BAD_REQUEST, "the request could not be read")
    except ConnectionError:  # the client went away mid-request: nobody to answer
        # Answered all the same (the write is dropped quietly): raised, aiohttp logged a
        # traceback for every such request, which any stranger could repeat at will.
        logger.info("%s %s: the client went away before the answer", request.method, request.path)
        return error_response(400, ErrorCode.BAD_REQUEST, "the client went away")
    except DB_AWAY as exc:
        if not database_away(exc):
            logger.exception("unhandled error on %s %s", request.method, request.path)
            return _internal(request)
        _note_away(request, exc)
        if is_page(request.path):
            resp = page_error(request, 503)
        else:
            resp = error_response(
                503, ErrorCode.SERVER_BUSY, "the database is unavailable; retry in a moment"
            )
        resp.headers["Retry-After"] = str(AWAY_RETRY_S)
        return resp
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _internal(request)


def _internal(request: web.Request) -> web.Response:
    if is_page(request.path):
        return page_error(request, 500)
    return error_response(500, ErrorCode.INTERNAL, "internal error; see the node's log")


# The database away (PostgreSQL restarting, its connections ended, the pool empty for its
# whole wait) or busy (SQLite's lock held past its timeout): 503 with Retry-After, logged
# a line at a time, not a 500 with a traceback for every request meanwhile.
DB_AWAY = (OperationalError, InterfaceError, PoolTimeout)
AWAY_RETRY_S = 5
SQLITE_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


def database_away(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached or is busy, not that a query
    is wrong (SQLite writes "no such table" as an OperationalError too)."""
    if isinstance(exc, PoolTimeout | InterfaceError):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code in SQLITE_BUSY_CODES
    return True  # PostgreSQL's OperationalError: a connection or server failure


_AWAY = Every()  # one warning line every 10 s while the database is away, with a count


def _note_away(request: web.Request, exc: Exception) -> None:
    count = _AWAY.note()
    if count is not None:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning(
            "database unavailable (%d requests answered 503 since the last line; "
            "this one %s %s): %s",
            count,
            request.method,
            request.path,
            first,
        )


def address_holds_nul(request: web.Request) -> bool:
    """Whether the path or the query holds NUL: no id, name or filter of ours has one, and
    PostgreSQL's text cannot hold it (looked up, it answered 500)."""
    if "%00" not in request.raw_path:
        return False
    return "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.query.items()
    )


@web.middleware
async def admin_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/admin/") or request.path in ADMIN_PATHS:
        header = request.headers.get("Authorization", "")
        # RFC 9110 11.1: the scheme is case-insensitive ("bearer" is "Bearer"). Tokens
        # are ASCII; other bytes in the header are a wrong token, not an error.
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        expected = request.app[RUNTIME].config.admin_token_sha256
        if (
            scheme.lower() != "bearer"
            or not token
            or not token.isascii()
            or not token_matches(token, expected)
        ):
            return error_response(
                401, ErrorCode.UNAUTHORIZED, "missing or wrong admin token (Authorization: Bearer)"
            )
    return await handler(request)


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bodies over the limit by their announced size (413), and compressed bodies (400:
    a few kilobytes of gzip inflate to megabytes; no client of a node compresses)."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if request.body_exists and encoding != "identity":
        if is_page(request.path):
            return page_error(request, 400)
        return error_response(
            400, ErrorCode.BAD_REQUEST, f"compressed request bodies ({encoding}) are not accepted"
        )
    limit = request.app[RUNTIME].config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        if is_page(request.path):
            return page_error(request, 413, limit_bytes=limit)
        return error_response(
            413, ErrorCode.BODY_TOO_LARGE, f"request body exceeds the limit of {limit} bytes"
        )
    return await handler(request)
