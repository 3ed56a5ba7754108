"""Routes of the center console."""

from __future__ import annotations

from aiohttp import web

from node.console import home


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", home.home)
