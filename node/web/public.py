"""Unauthenticated endpoints: the signed identity document and a health check."""

from __future__ import annotations

from aiohttp import web

from node.web.appkeys import RUNTIME


async def identity(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response(rt.identity(), headers={"Cache-Control": "max-age=60"})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "node_id": request.app[RUNTIME].node_id})
