"""Admin API over the sharing policy and the views it produces (DESIGN 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from node.config import POLICY_FILE
from node.services.policy import InvalidPolicy, PolicyVersion
from node.services.policy_ops import (
    diff_against_active,
    diff_to_json,
    explain_listing,
    preview_view,
)
from node.ui import audit
from node.ui.audit import ADMIN_TOKEN_ACTOR
from node.web.appkeys import RUNTIME
from node.web.middleware import ApiError
from node.web.requests import parse_query, read_text
from protocol.errors import ErrorCode


class AudienceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A node id, or '*' for the public (what the hub's public search shows).
    audience: Annotated[str, Field(pattern=r"^(?:[a-z][a-z0-9_]{1,31}|\*)$")]


class ApplyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author: Annotated[str, Field(min_length=1, max_length=100)] = "admin api"


async def _policy_text(request: web.Request) -> str:
    text = await read_text(request, "the policy YAML")
    if not text.strip():
        raise ApiError(400, ErrorCode.BAD_REQUEST, "send the policy YAML as the request body")
    return text


def _invalid(exc: InvalidPolicy) -> web.Response:
    return web.json_response(
        {"error": {"code": exc.code, "message": exc.message, "issues": exc.issues}},
        status=exc.status,
    )


async def show(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await rt.run(rt.policy.active)).to_json())


async def versions(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    history = await rt.run(rt.policy.history)
    return web.json_response(
        {"versions": [{k: v for k, v in p.to_json().items() if k != "text"} for p in history]}
    )


async def check(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        await rt.run(rt.policy.check, await _policy_text(request))
    except InvalidPolicy as exc:
        return _invalid(exc)
    return web.json_response({"valid": True, "issues": []})


async def diff(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        diffs = await rt.run(diff_against_active, rt, await _policy_text(request))
    except InvalidPolicy as exc:
        return _invalid(exc)
    return web.json_response({"audiences": diff_to_json(diffs)})


async def apply(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = parse_query(request, ApplyQuery)
    try:
        text = await _policy_text(request)
        version = await rt.run(rt.policy.apply, text, q.author, also=_audit_apply(rt.clock()))
    except InvalidPolicy as exc:
        return _invalid(exc)
    # Keep DATA_DIR/policy.yaml the active text, as 'cattc policy apply' does.
    await rt.run((rt.data_dir / POLICY_FILE).write_text, version.text, "utf-8")
    body = {k: v for k, v in version.to_json().items() if k != "text"}
    return web.json_response(body)


def _audit_apply(now_ms: int) -> Callable[[Session, PolicyVersion], None]:
    """The audit entry of a new active version, written in its transaction."""

    def write(session: Session, version: PolicyVersion) -> None:
        audit.record(
            session,
            at=now_ms,
            actor=ADMIN_TOKEN_ACTOR,
            action="policy.apply",
            target=f"policy version {version.version}",
            detail=f"author: {version.author}",
        )

    return write


async def explain(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = parse_query(request, AudienceQuery)
    result = await rt.run(explain_listing, rt, request.match_info["listing_id"], q.audience)
    return web.json_response(result)


async def view(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = parse_query(request, AudienceQuery)
    result = await rt.run(preview_view, rt, request.match_info["listing_id"], q.audience)
    return web.json_response(result)
