"""``setup_ui(app)``: the pages of every node: the console (the hub adds the public
marketplace at ``/`` and the operator's console in ``node.hub.app_setup.setup_hub``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from node.ui import login, password_checks
from node.ui.templating import STATIC

# The pages' scripts and style sheets. Served from a list made at start-up, never from a
# path taken from the URL: aiohttp's static route asked the file system about any name
# (one of 256 characters raised "File name too long", a 500 any stranger could repeat).
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def static_files(folder: Path = STATIC) -> dict[str, Path]:
    """The files a page may load, by name: ``folder``'s scripts and style sheets."""
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix in STATIC_TYPES and p.is_file()}


def static_handler(
    files: dict[str, Path],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def static_file(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": STATIC_TYPES[path.suffix]})

    return static_file


def setup_ui(app: web.Application) -> None:
    from node.console import routes as console_routes

    password_checks.setup(app)
    r = app.router
    r.add_get("/ui/static/{name}", static_handler(static_files()))
    r.add_get("/ui/lang", login.choose_language)
    r.add_get("/console/login", login.login_page)
    r.add_post("/console/login", login.login_submit)
    r.add_post("/console/logout", login.logout)
    console_routes.setup(app)
