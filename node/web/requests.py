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
FORM_CHUNK_BYTES = 8 * 1024
URLENCODED = frozenset({"", "application/x-www-form-urlencoded"})


class FormRefused(Exception):
    """A form body refused before it is parsed: ``status`` 400 (compressed), 408 (too
    slow) or 413 (too large)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def read_small_form(
    request: web.Request, max_bytes: int, timeout_s: float | None = None
) -> MultiDictProxy[Any]:
    """The form a stranger may post, read whole before it is parsed: at most
    ``max_bytes`` whatever the request announces (a chunked body is counted as it
    comes), uncompressed, and all of it within ``timeout_s`` (``FORM_TIMEOUT_S``). A
    body trickled a byte at a time, or inflated from a small compressed one, holds
    neither a connection nor memory for long (``FormRefused``)."""
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise FormRefused(400)
    if request.content_type not in URLENCODED:  # these forms are never multipart
        raise FormRefused(400)
    if request.content_length is not None and request.content_length > max_bytes:
        raise FormRefused(413)
    body = bytearray()
    try:
        async with asyncio.timeout(FORM_TIMEOUT_S if timeout_s is None else timeout_s):
            while chunk := await request.content.read(FORM_CHUNK_BYTES):
                body += chunk
                if len(body) > max_bytes:
                    raise FormRefused(413)
    except TimeoutError as exc:
        raise FormRefused(408) from exc
    request._read_bytes = bytes(body)  # what request.post() parses
    return await request.post()


async def read_json(request: web.Request) -> Any:
    body = await request.read()
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
    try:
        return await request.text()
    except (UnicodeDecodeError, LookupError) as exc:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{what} must be UTF-8 text: {exc}") from exc
