"""Routes of the center console."""

from __future__ import annotations

from aiohttp import web

from node.console import home


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", home.home)
    from node.console import audit_page, users

    users.setup(app)
    audit_page.setup(app)
