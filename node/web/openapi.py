"""The OpenAPI 3.1 document of a node's HTTP API, made from what the node serves.

Nothing here is written by hand per route: the paths and methods come from the app's
router (``setup_routes``), and each handler's models and answers from
``node.web.route_specs``; the schemas are pydantic's JSON Schema (2020-12, the dialect
OpenAPI 3.1 uses). A route with no spec, or a spec with no route, is an error, so the
document and the routes cannot drift apart. Served at ``GET /openapi.json``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from node.ui.paths import is_page
from node.web import api_models
from node.web.appkeys import RUNTIME
from node.web.route_specs import SPECS, Answer, Handler, RouteSpec

TITLE = "CATTC node API"
API_VERSION = "1"
_REF = "#/components/schemas/{model}"
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "admin": [{"adminToken": []}],
    "federation": [{"federationSignature": []}],
}
_SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "the node's admin token (`cattc init` prints it)",
    },
    "federationSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`CATTC-Sig origin=...,destination=...,key=...,created=...,nonce=...,"
        "sig=...`: Ed25519 over the request (protocol/request_sig.py, DESIGN 6.1)",
    },
}


class UndocumentedRoute(Exception):
    """A route's handler has no entry in ``route_specs.SPECS``."""


async def openapi_json(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await rt.run(_document_bytes, tuple(served_routes(request.app.router)))
    return web.Response(body=body, content_type="application/json")


@functools.lru_cache(maxsize=4)
def _document_bytes(routes: tuple[tuple[str, str, Handler], ...]) -> bytes:
    """Made once per route table: a caller cannot make the node rebuild it."""
    return json.dumps(_document(list(routes))).encode()


OPENAPI_SPEC = RouteSpec(
    "this document: the OpenAPI 3.1 description of every route",
    "public",
    {200: Answer("the document", schema={"type": "object"})},
)


def spec_for(handler: Handler) -> RouteSpec:
    if handler is openapi_json:
        return OPENAPI_SPEC
    spec = SPECS.get(handler)
    if spec is None:
        raise UndocumentedRoute(
            f"handler {handler.__module__}.{handler.__qualname__} has no entry in "
            "node.web.route_specs.SPECS"
        )
    return spec


def served_routes(router: web.UrlDispatcher) -> list[tuple[str, str, Handler]]:
    """(method, path template, handler) of every API route, without aiohttp's implicit
    HEADs and without the pages for people."""
    out: list[tuple[str, str, Handler]] = []
    for route in router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        if is_page(route.resource.canonical):
            continue
        out.append((route.method, route.resource.canonical, route.handler))
    return out


def build_document(router: web.UrlDispatcher) -> dict[str, Any]:
    """The document of the routes ``router`` serves."""
    return _document(served_routes(router))


def _document(served: list[tuple[str, str, Handler]]) -> dict[str, Any]:
    routes = [(m, p, spec_for(h)) for m, p, h in served]
    schemas = _Schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, spec in routes:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, spec, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": API_VERSION,
            "description": "The routes this node serves (a member node has no hub-only "
            'route). Every failure is `{"error": {"code", "message"}}`.',
        },
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": _SECURITY_SCHEMES},
    }


class _Schemas:
    """The JSON Schema of every model the routes name, as shared components."""

    def __init__(self, routes: list[tuple[str, str, RouteSpec]]) -> None:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
            (api_models.ErrorBody, "serialization")
        ]
        for _, _, spec in routes:
            if spec.query is not None:
                wanted.append((spec.query, "validation"))
            if spec.body is not None and spec.body.model is not None:
                wanted.append((spec.body.model, "validation"))
            wanted += [(a.model, "serialization") for a in spec.answers.values() if a.model]
        unique = list(dict.fromkeys(wanted))
        self.refs, top = models_json_schema(unique, ref_template=_REF)
        self.components: dict[str, Any] = top.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if ref is None:
            return schema
        resolved: dict[str, Any] = self.components[ref.rsplit("/", 1)[-1]]
        return resolved


def _operation(method: str, path: str, spec: RouteSpec, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": spec.summary,
        "tags": [spec.access],
    }
    if spec.hub_only:
        op["description"] = "Hub only: other nodes do not serve this route (404)."
    params = [_path_param(name, spec) for name in re.findall(r"\{(\w+)\}", path)]
    if spec.query is not None:
        params += _query_params(spec.query, schemas)
    if params:
        op["parameters"] = params
    if spec.body is not None:
        body = spec.body
        schema = schemas.ref(body.model, "validation") if body.model else dict(body.schema or {})
        op["requestBody"] = {
            "required": True,
            "description": body.description,
            "content": {
                body.media_type: {"schema": schema},
                **{media: {"schema": dict(alt)} for media, alt in body.alternatives.items()},
            },
        }
    responses: dict[str, Any] = {
        str(status): _response(answer, schemas) for status, answer in spec.answers.items()
    }
    responses["default"] = {
        "description": "an error: its code and a message saying what went wrong",
        "content": {
            "application/json": {"schema": schemas.ref(api_models.ErrorBody, "serialization")}
        },
    }
    op["responses"] = responses
    if spec.access in _SECURITY:
        op["security"] = _SECURITY[spec.access]
    return op


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", path)
    return "_".join([method.lower(), *words])


def _path_param(name: str, spec: RouteSpec) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": spec.path_params.get(name, name),
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }


def _query_params(model: type[BaseModel], schemas: _Schemas) -> list[dict[str, Any]]:
    """One parameter per field; a field that may be absent is optional, never null."""
    top = schemas.resolve(schemas.ref(model, "validation"))
    required = set(top.get("required", []))
    params = []
    for name, prop in top.get("properties", {}).items():
        schema = {k: v for k, v in prop.items() if k not in ("title", "default")}
        variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            schema.update(variants[0])
        elif variants:
            schema["anyOf"] = variants
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": schema,
        }
        if "default" in prop and prop["default"] is not None:
            param["schema"]["default"] = prop["default"]
        params.append(param)
    return params


def _response(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    schema = schemas.ref(answer.model, "serialization") if answer.model else answer.schema
    return {
        "description": answer.description,
        "content": {answer.media_type: {"schema": dict(schema or {})}},
    }
