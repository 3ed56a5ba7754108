"""The OpenAPI document against the routes: every route documented, every operation a
route, the document valid OpenAPI 3.1, and what it says of auth true of the live node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator

from node.web.openapi import UndocumentedRoute, build_document, served_routes
from node.web.route_specs import SPECS
from node.web.routes import setup_hub_routes, setup_routes
from tests.nodes import RunningNode

NodeFactory = Callable[..., Awaitable[RunningNode]]


def node_router(*, hub: bool = True) -> web.UrlDispatcher:
    app = web.Application()
    setup_routes(app)
    if hub:
        setup_hub_routes(app)
    return app.router


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def test_every_route_is_documented_and_every_operation_is_a_route() -> None:
    router = node_router()
    routes = {f"{method} {path}" for method, path, _ in served_routes(router)}
    documented = set(operations(build_document(router)))
    assert documented == routes
    assert len(routes) >= 30
    assert "GET /openapi.json" in documented


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = build_document(node_router())
    assert doc["openapi"].startswith("3.1")
    errors = [str(e.message) for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []


def test_a_route_without_a_spec_cannot_be_served_undocumented() -> None:
    async def stray(request: web.Request) -> web.Response:
        return web.json_response({})

    router = node_router()
    router.add_get("/admin/v1/stray", stray)
    with pytest.raises(UndocumentedRoute, match="stray"):
        build_document(router)


def test_every_spec_describes_a_served_handler() -> None:
    handlers = {handler for _, _, handler in served_routes(node_router())}
    assert set(SPECS) <= handlers


def test_a_member_serves_no_hub_route_and_its_document_lists_none() -> None:
    member = node_router(hub=False)
    handlers = {handler for _, _, handler in served_routes(member)}
    hub_only = {handler for handler, spec in SPECS.items() if spec.hub_only}
    assert hub_only and not handlers & hub_only
    assert set(SPECS) - hub_only <= handlers
    paths = set(build_document(member)["paths"])
    assert "/admin/v1/matches" not in paths and "/hub/status" not in paths
    assert "/federation/v1/feed" in paths


def test_query_parameters_are_the_query_models_fields_never_null() -> None:
    router = node_router()
    ops = operations(build_document(router))
    for method, path, handler in served_routes(router):
        query = SPECS[handler].query if handler in SPECS else None
        params = ops[f"{method} {path}"].get("parameters", [])
        names = {p["name"] for p in params if p["in"] == "query"}
        assert names == set(query.model_fields if query else ()), (method, path)
        for p in params:
            assert "null" not in str(p["schema"]), (method, path, p)
    search = {p["name"]: p for p in ops["GET /api/v1/search"]["parameters"]}
    assert search["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    assert search["category"]["schema"]["enum"][0] == "tech_offer"


async def test_the_node_serves_its_document_and_its_security_holds(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub = await node_factory("cn", is_hub=True)
    async with http.get(f"{hub.url}/openapi.json") as resp:  # public: no token
        assert resp.status == 200
        assert resp.content_type == "application/json"
        served = await resp.json()
    assert served == build_document(hub.app.router)
    # Each operation without path parameters, called with no credentials at all: admin
    # ones refuse with 401 unauthorized, federation ones with 401 signature_missing, and
    # public ones do not ask for any.
    wanted = {"adminToken": "unauthorized", "federationSignature": "signature_missing"}
    checked = 0
    for label, op in operations(served).items():
        method, path = label.split(" ", 1)
        if "{" in path:
            continue
        async with http.request(method, f"{hub.url}{path}") as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
        schemes = [name for requirement in op.get("security", []) for name in requirement]
        if schemes:
            assert resp.status == 401, label
            assert body is not None and body["error"]["code"] == wanted[schemes[0]], label
        else:
            assert resp.status != 401, label
        checked += 1
    assert checked >= 20
