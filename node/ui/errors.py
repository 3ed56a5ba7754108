"""Errors on pages for people are pages too (in the visitor's language), never the JSON
error shape programs get: a missing page, a body over the limit, an internal error."""

from __future__ import annotations

from aiohttp import web

from node.ui.i18n import N_
from node.ui.templating import render

MESSAGES = {
    400: (N_("Not understood"), N_("The node could not read what was sent. Please try again.")),
    404: (N_("Page not found"), N_("There is no page at this address.")),
    405: (N_("Not allowed"), N_("This page cannot be used this way.")),
    408: (
        N_("Too slow"),
        N_("What you sent did not arrive in time. Please check your connection and try again."),
    ),
    413: (
        N_("Too large"),
        N_("What you sent is larger than this node accepts (%(limit)s). Send a smaller file."),
    ),
    500: (N_("Something went wrong"), N_("The node could not answer. Its log says why.")),
    503: (
        N_("Busy for a moment"),
        N_("The node cannot reach its database just now. Please try again in a minute."),
    ),
}


def size_text(size: int) -> str:
    """A byte count as people read it: ``4 MB``, ``512 KB``, ``900 bytes``."""
    if size >= 2**20:
        return f"{size / 2**20:.3g} MB"
    if size >= 2**10:
        return f"{size / 2**10:.3g} KB"
    return f"{size} bytes"


def page_error(request: web.Request, status: int, *, limit_bytes: int = 0) -> web.Response:
    heading, message = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[405])
    return render(
        request,
        "error.html",
        {"heading": heading, "message": message, "limit": size_text(limit_bytes)},
        status=status,
    )
