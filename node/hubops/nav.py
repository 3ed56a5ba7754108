"""The console's link to the hub operator's pages, shown on the hub only.

The Jinja environment is one per process (and tests serve a hub and centers in one
process), so whether a page is the hub's cannot be a plain global. The hub's app marks
each of its requests in a context variable (``mark_hub_request``, a middleware added by
``node.hubops.routes.setup``, so only on the hub); the global ``hub_console()`` reads it
while the page renders, in the request's own task.
"""

from __future__ import annotations

from contextvars import ContextVar

from aiohttp import web
from aiohttp.typedefs import Handler

from node.ui.templating import environment

_ON_HUB: ContextVar[bool] = ContextVar("cattc_hub_console", default=False)


@web.middleware
async def mark_hub_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = _ON_HUB.set(True)
    try:
        return await handler(request)
    finally:
        _ON_HUB.reset(token)


def hub_console() -> bool:
    """Whether the page being rendered is served by the hub (its nav shows the hub link)."""
    return _ON_HUB.get()


def install(app: web.Application) -> None:
    app.middlewares.append(mark_hub_request)
    environment().globals["hub_console"] = hub_console
