"""The console's first page."""

from __future__ import annotations

from aiohttp import web

from node.ui.auth import require_role
from node.ui.templating import render
from node.web.appkeys import RUNTIME


@require_role("viewer")
async def home(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return render(request, "console/home.html", {"node_name": rt.config.name})
