"""Federation endpoints (``/federation/v1/*``): every call signed with ``CATTC-Sig``.

The middleware (``node.web.federation_auth``) checks the signature and puts the
caller's node id on the request (``ORIGIN``); handlers serve only what that caller may see.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from node.hub.custody import custody_document
from node.hub.eoi import hub_receive_eoi, hub_receive_reply
from node.hub.eoi_gate import RateLimited
from node.web.appkeys import RUNTIME, SYNC
from node.web.federation_auth import ORIGIN
from node.web.middleware import ApiError, error_response
from node.web.requests import parse_query
from protocol.eoi import BODY_MAX_BYTES as EOI_BODY_MAX_BYTES
from protocol.errors import ErrorCode


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: Annotated[str, Field(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1)] = 100


async def feed(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = parse_query(request, FeedQuery)
    limit = min(q.limit, rt.config.max_page_size)
    # The page's canonical bytes, as signed: valid JSON, no second serialisation. What
    # was shared with whom (``share_log``) is written in the page's transaction, before
    # the page is sent (a page the reader never got is served again).
    body = await rt.run(rt.feed.page_bytes, request[ORIGIN], q.after, limit)
    return web.Response(body=body, content_type="application/json")


async def notify(request: web.Request) -> web.Response:
    manager = request.app.get(SYNC)
    scheduled = manager.trigger(request[ORIGIN]) if manager is not None else False
    return web.json_response({"scheduled": scheduled}, status=202)


async def directory(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    doc = await rt.run(rt.directory_document)
    return web.json_response(doc)


async def custody(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    doc = await rt.run(custody_document, rt, request[ORIGIN])
    return web.json_response(doc)


async def eoi(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await _eoi_body(request)
    return await _eoi_answer(rt.run(hub_receive_eoi, rt, request[ORIGIN], body))


async def eoi_reply(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await _eoi_body(request)
    return await _eoi_answer(rt.run(hub_receive_reply, rt, request[ORIGIN], body))


async def _eoi_body(request: web.Request) -> bytes:
    """An EoI or reply body, refused (413) by its announced size before it is read."""
    if request.content_length is not None and request.content_length > EOI_BODY_MAX_BYTES:
        raise ApiError(
            413,
            ErrorCode.BODY_TOO_LARGE,
            f"an expression of interest or reply is at most {EOI_BODY_MAX_BYTES} bytes",
        )
    return await request.read()


async def _eoi_answer(work: Awaitable[dict[str, object]]) -> web.Response:
    try:
        result = await work
    except RateLimited as exc:
        resp = error_response(exc.status, exc.code, exc.message)
        resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp
    return web.json_response(result, status=202)
