"""Security headers on every response a node sends, and the limits on a request's head
(and how a head refused for them is logged).

A node answers JSON to programs and, on the hub, one HTML page to people (the operator's
dashboard). Browsers still load both, so every response says: run no inline script or
style and load nothing the node did not serve (``Content-Security-Policy``), never guess
a content type (``nosniff``), never be framed (``frame-ancestors 'none'``, and
``X-Frame-Options`` for browsers that predate it), never leak the URL in a ``Referer``.
A handler may set a narrower or page-specific policy of its own; this fills what it left
out, on error answers as much as on success.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

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

SERVER_NAME = "cattc"
"""What the ``Server`` header says: not the Python and aiohttp versions a node runs."""

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
    response.headers["Server"] = SERVER_NAME  # aiohttp set its own name and version first


def install_security_headers(app: web.Application) -> None:
    """Add the headers to every response of ``app``."""
    app.on_response_prepare.append(add_security_headers)


class RefusedHeads(logging.Filter):
    """aiohttp logs each request head its parser refuses (over the limits, not HTTP) at
    ERROR with a traceback: a stranger could fill the log with them. Here each is one
    line at INFO, shown when the log level shows INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed request from %s (%s: %s)"
        record.args = (remote, exc.code, exc.message.strip().replace("\n", " ")[:200])
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_refused_heads() -> None:
    """Install ``RefusedHeads`` on aiohttp's server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, RefusedHeads) for f in server_log.filters):
        server_log.addFilter(RefusedHeads())
