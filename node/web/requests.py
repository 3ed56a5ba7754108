"""Parsing request bodies and query strings into checked values, with clear 400s.

Every JSON body goes through ``protocol.safe_json``: nesting, number length, encoding
and surrogates are bounded there, so hostile bodies get ``invalid_json`` (400), never a
500; integers beyond what can be signed are left to the models, which answer 422 naming
the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from node.web.appkeys import RUNTIME
from node.web.middleware import ApiError
from protocol.errors import ErrorCode
from protocol.safe_json import JsonInputError, loads

M = TypeVar("M", bound=BaseModel)
# Bodies above this are parsed in the node's executor, not on the event loop.
INLINE_PARSE_BYTES = 64 * 1024


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
