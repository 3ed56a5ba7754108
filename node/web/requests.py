"""Parsing request bodies and query strings into checked values, with clear 400s.

Every JSON body goes through ``protocol.safe_json``: nesting, number length, encoding
and surrogates are bounded there, so hostile bodies get ``invalid_json`` (400), never a
500; integers beyond what can be signed are left to the models, which answer 422 naming
the field.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from node.web.appkeys import RUNTIME
from node.web.middleware import ApiError
from protocol.errors import ErrorCode
from protocol.safe_json import JsonInputError, loads

M = TypeVar("M", bound=BaseModel)
# Bodies above this are parsed in the node's executor, not on the event loop.
INLINE_PARSE_BYTES = 64 * 1024
# The longest a form a visitor posts (sign-in, the marketplace's interest form) may take
# to arrive: a few kilobytes take well under a second on a slow mobile link.
FORM_TIMEOUT_S = 10.0
URLENCODED = frozenset({"", "application/x-www-form-urlencoded"})
CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """A body that went past its cap as it came (``read_bounded``)."""


async def read_bounded(request: web.Request, cap: int, timeout_s: float) -> bytes:
    """The body, at most ``cap`` bytes counted as they come (a chunked body announces no
    size; else ``BodyTooLarge``), all of it within ``timeout_s`` (else ``TimeoutError``):
    a body trickled a byte at a time holds the connection no longer than that."""
    body = bytearray()
    async with asyncio.timeout(timeout_s):
        while chunk := await request.content.read(CHUNK_BYTES):
            if len(body) + len(chunk) > cap:
                raise BodyTooLarge
            body += chunk
    return bytes(body)


class FormRefused(Exception):
    """A form body refused before it is parsed: ``status`` 400 (not a plain form), 408
    (too slow) or 413 (too large). A compressed body never gets here
    (``body_limit_middleware``)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def read_small_form(request: web.Request, max_bytes: int) -> MultiDictProxy[Any]:
    """The form a stranger may post, read whole before it is parsed: at most
    ``max_bytes`` whatever the request announces, all of it within ``FORM_TIMEOUT_S``
    (``read_bounded``), so that it holds neither a connection nor memory for long."""
    if request.content_type not in URLENCODED:  # these forms are never multipart
        raise FormRefused(400)
    if request.content_length is not None and request.content_length > max_bytes:
        raise FormRefused(413)
    try:
        body = await read_bounded(request, max_bytes, FORM_TIMEOUT_S)
    except BodyTooLarge as exc:
        raise FormRefused(413) from exc
    except TimeoutError as exc:
        raise FormRefused(408) from exc
    request._read_bytes = body  # what request.post() parses
    try:
        return await parse_form(request)
    except web.HTTPBadRequest as exc:
        raise FormRefused(400) from exc


async def parse_form(request: web.Request) -> MultiDictProxy[Any]:
    """``request.post()``, with a charset no codec knows or bytes that are not in it (the
    form's, or a multipart part's) answered 400 instead of a 500."""
    try:
        form = await request.post()
    except (LookupError, UnicodeDecodeError, ValueError) as exc:
        raise web.HTTPBadRequest(reason="the form could not be read") from exc
    # No field of ours has a use for NUL, and PostgreSQL's text cannot hold it (a login
    # name with one answered 500 there, before any check).
    if any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in form.items()):
        raise web.HTTPBadRequest(reason="a field of the form holds a NUL character")
    return form


async def _whole_body(request: web.Request) -> bytes:
    """``request.read()`` within the node's ``body_timeout_seconds`` (else 408): a body
    that stops coming held its connection and handler forever."""
    timeout = request.app[RUNTIME].config.body_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError as exc:
        raise ApiError(
            408, ErrorCode.BODY_TIMEOUT, f"request body not received within {timeout:g} s"
        ) from exc


async def read_json(request: web.Request) -> Any:
    body = await _whole_body(request)
    if not body:
        raise ApiError(400, ErrorCode.INVALID_JSON, "request body is empty; send JSON")
    try:
        if len(body) <= INLINE_PARSE_BYTES:
            return loads(body)
        return await request.app[RUNTIME].run(loads, body)
    except JsonInputError as exc:
        raise ApiError(
            400, ErrorCode.INVALID_JSON, f"body is not valid JSON: {exc.message}"
        ) from exc


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ApiError(
            400, ErrorCode.BAD_REQUEST, f"query parameter '{where}': {err['msg']}"
        ) from exc


async def read_text(request: web.Request, what: str) -> str:
    """The body as UTF-8 text; 400 for other bytes or an unknown charset."""
    await _whole_body(request)  # kept by the request: text() decodes it
    try:
        return await request.text()
    except (UnicodeDecodeError, LookupError) as exc:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{what} must be UTF-8 text: {exc}") from exc
