"""Routes of the marketplace."""

from __future__ import annotations

from aiohttp import web

from node.ui.templating import render


async def home(request: web.Request) -> web.Response:
    return render(request, "market/home.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/", home)
