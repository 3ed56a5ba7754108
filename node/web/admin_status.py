"""Admin status: who this node is, what it holds, where its change log stands."""

from __future__ import annotations

from aiohttp import web

from node.services.status import node_status
from node.web.appkeys import RUNTIME


async def status(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response(await rt.run(node_status, rt))
