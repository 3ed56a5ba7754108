"""``setup_ui(app, is_hub)``: the pages of a node. The console on every node; on the hub
also the public marketplace at ``/`` and the operator's console."""

from __future__ import annotations

from aiohttp import web

from node.ui import login
from node.ui.templating import STATIC


def setup_ui(app: web.Application, *, is_hub: bool) -> None:
    from node.console import routes as console_routes

    r = app.router
    r.add_static("/ui/static", STATIC, append_version=False)
    r.add_get("/ui/lang", login.choose_language)
    r.add_get("/console/login", login.login_page)
    r.add_post("/console/login", login.login_submit)
    r.add_post("/console/logout", login.logout)
    console_routes.setup(app)
    if is_hub:
        from node.hubops import routes as hubops_routes
        from node.market import routes as market_routes

        market_routes.setup(app)
        hubops_routes.setup(app)
