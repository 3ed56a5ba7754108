"""Parsing request bodies and query strings into checked values, with clear 400s."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from node.web.middleware import ApiError
from protocol.canonical import parse_json
from protocol.errors import ErrorCode

M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request) -> Any:
    body = await request.read()
    if not body:
        raise ApiError(400, ErrorCode.INVALID_JSON, "request body is empty; send JSON")
    try:
        return parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not valid JSON: {exc}") from exc


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
