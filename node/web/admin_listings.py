"""Admin API for the node's own listings: create, update, get, list, withdraw, import."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from typing import IO, Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from node.runtime import NodeRuntime
from node.services.bulk_import import ImportRun
from node.services.import_stream import BrokenBody, Piece, RecordSplitter
from node.services.importer import RecordError, parse_record
from node.services.listings import ImportReport
from node.ui.audit import ADMIN_TOKEN_ACTOR, listing_change, record_on
from node.web.appkeys import RUNTIME
from node.web.middleware import ApiError
from node.web.requests import parse_query, read_json
from protocol.errors import ErrorCode
from protocol.listing import Category, Visibility


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Category | None = None
    visibility: Visibility | None = None
    q: Annotated[str, Field(max_length=200)] | None = None
    after: Annotated[str, Field(max_length=64)] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    include_withdrawn: bool = False


logger = logging.getLogger(__name__)
IMPORT_BATCH = 500  # records parsed and stored per trip to the database threads
SPOOL_BYTES = 1024 * 1024  # an import body held in memory up to this, then on disk
SPOOL_CHUNK = 64 * 1024


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strict: bool = False


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, ErrorCode.INVALID_LISTING, "a listing must be a JSON object")
    return body


def _audit(rt: NodeRuntime, action: str) -> Callable[[Session, dict[str, Any]], None]:
    return listing_change(rt.clock, ADMIN_TOKEN_ACTOR, action)


async def create_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = _object(await read_json(request))
    record = await rt.run(rt.listings.create, body, also=_audit(rt, "listing.create"))
    return web.json_response(record, status=201)


async def update_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = _object(await read_json(request))
    listing_id = request.match_info["listing_id"]
    record = await rt.run(rt.listings.update, listing_id, body, also=_audit(rt, "listing.update"))
    return web.json_response(record)


async def get_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    stored = await rt.run(rt.listings.get, request.match_info["listing_id"])
    return web.json_response({"listing": stored.record, "withdrawn": stored.withdrawn})


async def list_listings(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = parse_query(request, ListQuery)
    items, nxt = await rt.run(
        rt.listings.query,
        category=q.category,
        visibility=q.visibility,
        text=q.q,
        include_withdrawn=q.include_withdrawn,
        after=q.after,
        limit=q.limit,
    )
    return web.json_response(
        {
            "items": [{"listing": s.record, "withdrawn": s.withdrawn} for s in items],
            "next": nxt,
        }
    )


async def withdraw_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    listing_id = request.match_info["listing_id"]
    result = await rt.run(rt.listings.withdraw, listing_id, also=_audit(rt, "listing.withdraw"))
    return web.json_response(result)


async def import_listings(request: web.Request) -> web.Response:
    """Body: JSON Lines (one listing per line) or a JSON array of listings, at most
    ``max_body_bytes``, stored in one transaction, ``IMPORT_BATCH`` records at a time;
    with ``strict``, nothing unless every record is good. The body is spooled whole
    first (to a temporary file past ``SPOOL_BYTES``): the transaction, which holds the
    database's write lock, begins once the body is in. (Begun with the body, it let a
    client that sent a byte every half minute keep every other write out, the feed's
    too: each signed request records its nonce.)"""
    rt = request.app[RUNTIME]
    q = parse_query(request, ImportQuery)
    limit = rt.config.max_body_bytes
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
        received = 0
        while chunk := await _next_chunk(request, rt.config.body_timeout_seconds):
            received += len(chunk)
            if received > limit:
                raise ApiError(
                    413,
                    ErrorCode.BODY_TOO_LARGE,
                    f"request body exceeds the limit of {limit} bytes; nothing was imported",
                )
            body.write(chunk)
        body.seek(0)
        report = await rt.run(_import_spooled, rt, body, q.strict)
    payload = {
        "applied": report.applied,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "problems": [
            {"line": p.line, "id": p.listing_id, "reason": p.reason} for p in report.problems
        ],
    }
    status = 200 if report.applied and not report.rejected else 422 if not report.applied else 207
    return web.json_response(payload, status=status)


def _audit_import(rt: NodeRuntime) -> Callable[[Connection, ImportReport], None]:
    def write(connection: Connection, report: ImportReport) -> None:
        counts = ("created", "updated", "unchanged", "rejected")
        detail = ", ".join(f"{getattr(report, k)} {k}" for k in counts)
        record_on(connection, at=rt.clock(), actor=ADMIN_TOKEN_ACTOR, action="listing.import",
                  target="listings", detail=detail)  # fmt: skip

    return write


def _import_spooled(rt: NodeRuntime, body: IO[bytes], strict: bool) -> ImportReport:
    """The spooled body imported in one call of a database thread, from its transaction's
    start to its end. Its transaction holds the listings' lock; when each batch took a
    thread of the pool again, writers holding every thread while they waited for that
    lock kept it from ever getting one (on PostgreSQL, which has no lock timeout, for
    good: five imports at once hung the node)."""
    splitter = RecordSplitter()
    run = ImportRun(rt.listings, strict=strict, single_transaction=True)
    try:
        pending: list[tuple[int, Piece]] = []
        while chunk := body.read(SPOOL_CHUNK):
            pending += splitter.feed(chunk)
            if len(pending) >= IMPORT_BATCH:
                _add_pieces(run, pending, splitter.mode == "array")
                pending = []
        pending += splitter.close()
        _add_pieces(run, pending, splitter.mode == "array")
        return run.finish(also=_audit_import(rt))
    finally:
        run.close()


async def _next_chunk(request: web.Request, timeout: float) -> bytes:
    """The next piece of the body (b"" at its end); a body that stalls or is cut short
    ends the import, nothing stored."""
    try:
        async with asyncio.timeout(timeout):
            return await request.content.readany()
    except TimeoutError:
        raise ApiError(
            408,
            ErrorCode.BODY_TIMEOUT,
            f"no part of the body arrived for {timeout:g} s; nothing was imported",
        ) from None
    except ConnectionError:
        logger.info("an import body was cut short by the client; nothing was imported")
        raise ApiError(
            400, ErrorCode.BAD_REQUEST, "the body was cut short; nothing was imported"
        ) from None


def _add_pieces(run: ImportRun, pieces: list[tuple[int, Piece]], array: bool) -> None:
    """Parse each record's JSON and add it. A line that is not JSON is a problem on its
    line; in a JSON array it makes the whole body invalid (400, nothing stored), as it
    would for any JSON document."""
    for number, piece in pieces:
        try:
            if isinstance(piece, BrokenBody):
                raise piece
            record: Any = piece if isinstance(piece, RecordError) else parse_record(piece)
        except RecordError as exc:
            if array:
                raise ApiError(
                    400, ErrorCode.INVALID_JSON, f"body is not valid JSON: element {number}: {exc}"
                ) from None
            record = exc
        run.add(number, record)
