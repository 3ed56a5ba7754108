"""Who is signed in, and what they may do: ``require_role`` wraps every console handler.

It answers a signed-out visitor with the login page (a redirect that keeps the page they
wanted), a user without the role with 403, and checks the form's CSRF token on every
method but GET and HEAD, so no handler can forget it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from node.ui.accounts import StaffUser, get_user
from node.ui.i18n import N_
from node.ui.keys import FORM, STAFF_SESSION, STAFF_USER
from node.ui.sessions import COOKIE, csrf_matches, find_session
from node.ui.templating import render
from node.web.appkeys import RUNTIME
from node.web.requests import parse_form

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD"})
_ROLE_ATTR = "cattc_required_role"


async def current_user(request: web.Request) -> StaffUser | None:
    """The signed-in, enabled user of ``request`` (also kept as ``request[STAFF_USER]``
    and the session as ``request[STAFF_SESSION]``), or None."""
    if STAFF_USER in request:
        return request[STAFF_USER]
    rt = request.app[RUNTIME]
    token = request.cookies.get(COOKIE, "")
    session = await rt.run(find_session, rt.engine, token, now_ms=rt.clock()) if token else None
    user = await rt.run(get_user, rt.engine, session.user_id) if session is not None else None
    if user is not None and user.disabled:
        user = None
    request[STAFF_SESSION] = session if user is not None else None
    request[STAFF_USER] = user
    return user


def login_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound("/console/login?next=" + quote(request.path_qs, safe="/"))


def forbidden(request: web.Request, message: str) -> web.Response:
    return render(request, "auth/forbidden.html", {"message": message}, status=403)


def require_role(role: str) -> Callable[[Handler], Handler]:
    """Let only signed-in users holding ``role`` (or higher) through; check CSRF on writes."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = await current_user(request)
            if user is None:
                if request.method in SAFE_METHODS:
                    raise login_redirect(request)
                return forbidden(request, N_("Your session has ended. Please sign in again."))
            if request.method not in SAFE_METHODS and not await csrf_ok(request):
                return forbidden(
                    request, N_("This form has expired. Reload the page and try again.")
                )
            if not user.may(role):
                return forbidden(request, N_("Your role does not allow this."))
            return await handler(request)

        setattr(guarded, _ROLE_ATTR, role)
        return guarded

    return wrap


def required_role(handler: object) -> str | None:
    """The role ``require_role`` asks of ``handler`` (None: not a guarded handler)."""
    role = getattr(handler, _ROLE_ATTR, None)
    return role if isinstance(role, str) else None


async def form_of(request: web.Request) -> MultiDictProxy[Any]:
    """The request's parsed form: the one ``csrf_ok`` read, or read now (a request whose
    token came in the header)."""
    form = request.get(FORM)
    if form is None:
        form = await parse_form(request)
        request[FORM] = form
    return form


async def csrf_ok(request: web.Request) -> bool:
    """Whether the request carries its session's CSRF token (form field ``csrf_token`` or
    header ``X-CSRF-Token``). Multipart forms are read here too; handlers read them again
    from ``request[FORM]``."""
    session = request.get(STAFF_SESSION)
    if session is None:
        return False
    given = request.headers.get("X-CSRF-Token", "")
    if not given:
        form = await parse_form(request)
        request[FORM] = form
        value: Any = form.get("csrf_token", "")
        given = value if isinstance(value, str) else ""
    return csrf_matches(session.csrf, given)
