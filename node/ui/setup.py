"""``setup_ui(app)``: the pages of every node: the console (the hub adds the public
marketplace at ``/`` and the operator's console in ``node.hub.app_setup.setup_hub``)."""

from __future__ import annotations

from aiohttp import web

from node.ui import login
from node.ui.templating import STATIC


def setup_ui(app: web.Application) -> None:
    from node.console import routes as console_routes

    r = app.router
    r.add_static("/ui/static", STATIC, append_version=False)
    r.add_get("/ui/lang", login.choose_language)
    r.add_get("/console/login", login.login_page)
    r.add_post("/console/login", login.login_submit)
    r.add_post("/console/logout", login.logout)
    console_routes.setup(app)
