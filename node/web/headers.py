"""Security headers on every response a node sends, and the limits on a request's head.

A node answers JSON to programs and, on the hub, one HTML page to people (the operator's
dashboard). Browsers still load both, so every response says: run no inline script or
style and load nothing the node did not serve (``Content-Security-Policy``), never guess
a content type (``nosniff``), never be framed (``frame-ancestors 'none'``, and
``X-Frame-Options`` for browsers that predate it), never leak the URL in a ``Referer``.
A handler may set a narrower or page-specific policy of its own; this fills what it left
out, on error answers as much as on success.
"""

from __future__ import annotations

from aiohttp import web

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""For JSON and text: nothing to load, run or frame."""
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""For the node's own HTML pages: scripts, styles and fetches from the node itself, none
inline (no ``'unsafe-inline'``)."""

REQUEST_HEAD_LIMITS: dict[str, int] = {
    "max_line_size": 8190,  # the request line (method, path, query)
    "max_field_size": 8190,  # one header
    "max_headers": 128,
}
"""What a request's head may hold; beyond it aiohttp answers 400 before any handler runs.
aiohttp's defaults, pinned here (the app's ``handler_args``) so that an upgrade or a
runner's arguments cannot loosen them."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": API_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


async def add_security_headers(_request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs for every response, streamed ones included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def install_security_headers(app: web.Application) -> None:
    """Add the headers to every response of ``app``."""
    app.on_response_prepare.append(add_security_headers)
