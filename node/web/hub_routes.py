"""The hub's own endpoints: status JSON, Prometheus metrics, the operator's dashboard and
public search."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from node.hub.monitor import HubCollector, hub_status
from node.web.appkeys import RUNTIME
from node.web.middleware import ApiError
from protocol.errors import ErrorCode

DASHBOARD = Path(__file__).parent / "static" / "dashboard.html"
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def _require_hub(request: web.Request) -> None:
    if not request.app[RUNTIME].config.is_hub:
        raise ApiError(404, ErrorCode.NOT_FOUND, "this endpoint exists on the hub only")


async def status(request: web.Request) -> web.Response:
    _require_hub(request)
    rt = request.app[RUNTIME]
    return web.json_response(await rt.run(hub_status, rt))


async def metrics(request: web.Request) -> web.Response:
    _require_hub(request)
    rt = request.app[RUNTIME]
    registry = request.app.get(REGISTRY)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(HubCollector(rt))
        request.app[REGISTRY] = registry
    body = await rt.run(generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def dashboard(request: web.Request) -> web.Response:
    _require_hub(request)
    return web.Response(
        text=DASHBOARD.read_text(encoding="utf-8"),
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self' 'unsafe-inline'",
        },
    )
