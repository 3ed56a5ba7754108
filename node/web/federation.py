"""Federation endpoints (``/federation/v1/*``): every call signed with ``CATTC-Sig``.

The middleware checks the signature and puts the caller's node id on the request;
handlers serve only what that caller may see.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from node.hub.custody import custody_document
from node.hub.eoi import hub_receive_eoi, hub_receive_reply
from node.services.fed_auth import UnknownKey, verify_request
from node.services.sync_manager import SyncManager
from node.web.appkeys import RUNTIME, SYNC
from node.web.middleware import ApiError, Handler, error_response
from node.web.requests import parse_query, read_json
from protocol.errors import ErrorCode
from protocol.request_sig import RequestSignatureError, parse_header

ORIGIN = web.RequestKey("origin", str)
_STATUS = {"unknown_origin": 403, "member_suspended": 403, "wrong_destination": 421}


@web.middleware
async def federation_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/federation/"):
        return await handler(request)
    rt = request.app[RUNTIME]
    body = await request.read()
    header = request.headers.get("Authorization")
    target = request.raw_path
    try:
        try:
            sig = await rt.run(
                verify_request, rt, header, method=request.method, target=target, body=body
            )
        except RequestSignatureError as exc:
            # A new member or a rotated key: learn it (rate limited), then check once more.
            manager = request.app.get(SYNC)
            if manager is None or not await _learn(manager, exc, header):
                raise
            sig = await rt.run(
                verify_request, rt, header, method=request.method, target=target, body=body
            )
    except RequestSignatureError as exc:
        return error_response(_STATUS.get(exc.code, 401), exc.code, exc.message)
    request[ORIGIN] = sig.origin
    return await handler(request)


async def _learn(manager: SyncManager, exc: RequestSignatureError, header: str | None) -> bool:
    if isinstance(exc, UnknownKey):
        return await manager.keys.refresh(parse_header(header).origin)
    if exc.code == "unknown_origin":
        return await manager.refresh_directory(rate_limited=True)
    return False


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: Annotated[str, Field(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1)] = 100


async def feed(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = parse_query(request, FeedQuery)
    limit = min(q.limit, rt.config.max_page_size)
    _, body = await rt.run(rt.feed.signed_page, request[ORIGIN], q.after, limit)
    # The page's canonical bytes, as signed: valid JSON, no second serialisation.
    return web.Response(body=body, content_type="application/json")


async def notify(request: web.Request) -> web.Response:
    manager = request.app.get(SYNC)
    scheduled = manager.trigger(request[ORIGIN]) if manager is not None else False
    return web.json_response({"scheduled": scheduled}, status=202)


async def directory(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if not rt.config.is_hub:
        raise ApiError(404, ErrorCode.NOT_FOUND, "only the hub serves the member directory")
    doc = await rt.run(rt.directory_document)
    return web.json_response(doc)


async def custody(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if not rt.config.is_hub:
        raise ApiError(404, ErrorCode.NOT_FOUND, "only the hub answers custody questions")
    doc = await rt.run(custody_document, rt, request[ORIGIN])
    return web.json_response(doc)


async def eoi(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if not rt.config.is_hub:
        raise ApiError(404, ErrorCode.NOT_FOUND, "expressions of interest go through the hub")
    body = await read_json(request)
    result = await rt.run(hub_receive_eoi, rt, request[ORIGIN], body)
    return web.json_response(result, status=202)


async def eoi_reply(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if not rt.config.is_hub:
        raise ApiError(404, ErrorCode.NOT_FOUND, "replies go through the hub")
    body = await read_json(request)
    result = await rt.run(hub_receive_reply, rt, request[ORIGIN], body)
    return web.json_response(result, status=202)
