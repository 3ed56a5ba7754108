"""The hub's own endpoints: status JSON, Prometheus metrics, the operator's dashboard and
public search. Only the hub registers them (``node.web.routes.setup_hub_routes``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from node.hub.monitor import hub_status
from node.hub.search import SearchQuery, search_body
from node.services.leader import leader_in
from node.web.appkeys import HUB_MATCHING, LEADER, LOOP_LAG, METRICS, RUNTIME, SEARCH_INDEX
from node.web.headers import PAGE_CSP
from node.web.middleware import ApiError
from node.web.requests import parse_query
from protocol.errors import ErrorCode
from protocol.listing import Category

STATIC = Path(__file__).parent / "static"
DASHBOARD = STATIC / "dashboard.html"
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: Annotated[str, Field(max_length=200)] = ""
    category: Category | None = None
    country: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")] | None = None
    ipc: Annotated[str, Field(pattern=r"^[A-Ha-h][0-9A-Za-z /]{0,15}$")] | None = None
    trl_min: Annotated[int, Field(ge=1, le=9)] | None = None
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0
    limit: Annotated[int, Field(ge=1, le=100)] = 20


async def status(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await rt.run(hub_status, rt, request.app[LOOP_LAG])
    # Which process runs the matcher (several may serve the hub): the one in the leader
    # row, and whether it is the one answering.
    leader = await rt.db.run(leader_in)
    body["leader"] = {
        **(leader.public() if leader is not None else {}),
        "this_process": request.app[LEADER].is_leader,
    }
    body["matching"] = request.app[HUB_MATCHING].status()
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await rt.run(generate_latest, request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def dashboard(request: web.Request) -> web.Response:
    """The page; its script and styles come from ``static_file`` (nothing inline)."""
    return web.Response(
        text=DASHBOARD.read_text(encoding="utf-8"),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP},
    )


async def static_file(request: web.Request) -> web.Response:
    """The dashboard's script and style sheet: a fixed list, never a path from the URL."""
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no static file {name!r}")
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=content_type,
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


async def public_search(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    p = parse_query(request, SearchParams)
    index = request.app[SEARCH_INDEX]
    query = SearchQuery(
        q=p.q,
        category=p.category,
        country=p.country,
        ipc=p.ipc,
        trl_min=p.trl_min,
        offset=p.offset,
        limit=p.limit,
    )
    body = await index.run(search_body, rt, index, query)
    return web.Response(body=body, content_type="application/json")


class MatchesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    k: Annotated[int, Field(ge=1, le=10)] = 3


async def matches(request: web.Request) -> web.Response:
    """The hub operator's view of the match lists: best candidates per request (from
    the matcher of the node's leader process, whichever process answers)."""
    p = parse_query(request, MatchesParams)
    rows = await request.app[HUB_MATCHING].match_rows(p.k, p.limit)
    return web.json_response({"matches": rows})
