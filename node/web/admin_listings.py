"""Admin API for the node's own listings: create, update, get, list, withdraw, import."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from node.services.importer import read_jsonl_lines
from node.web.appkeys import RUNTIME
from node.web.middleware import ApiError
from node.web.requests import parse_query, read_json, read_text
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


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strict: bool = False


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, ErrorCode.INVALID_LISTING, "a listing must be a JSON object")
    return body


async def create_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    record = await rt.run(rt.listings.create, _object(await read_json(request)))
    return web.json_response(record, status=201)


async def update_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = _object(await read_json(request))
    record = await rt.run(rt.listings.update, request.match_info["listing_id"], body)
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
    result = await rt.run(rt.listings.withdraw, request.match_info["listing_id"])
    return web.json_response(result)


async def import_listings(request: web.Request) -> web.Response:
    """Body: JSON Lines (one listing per line) or a JSON array of listings."""
    rt = request.app[RUNTIME]
    q = parse_query(request, ImportQuery)
    body = await read_text(request, "the import body")
    records: list[tuple[int, Any]]
    if body.lstrip().startswith("["):
        parsed = await read_json(request)
        records = [(i, r) for i, r in enumerate(parsed, start=1)]
    else:
        records = list(read_jsonl_lines(iter(body.splitlines())))
    report = await rt.run(rt.listings.import_records, records, strict=q.strict)
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
    status = 200 if report.applied and not report.problems else 422 if not report.applied else 207
    return web.json_response(payload, status=status)
