"""Signing in and out, and the language picker."""

from __future__ import annotations

from aiohttp import web

from node.ui.accounts import authenticate
from node.ui.auth import current_user
from node.ui.i18n import COOKIE as LANG_COOKIE
from node.ui.i18n import LANGUAGES
from node.ui.keys import STAFF_SESSION
from node.ui.sessions import clear_cookie, close_session, open_session, set_cookie
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME


def safe_next(target: str | None, default: str = "/console") -> str:
    """A local path to go to after a form: never another site (``//host``, ``\\``, a
    scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


async def login_page(request: web.Request) -> web.Response:
    return render(request, "auth/login.html", {"next": safe_next(request.query.get("next"))})


async def login_submit(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    form = await request.post()
    name = str(form.get("name", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")))
    user = await rt.run(authenticate, rt.engine, name, password)
    if user is None:
        context = {"next": target, "error": "Wrong user name or password.", "name": name}
        return render(request, "auth/login.html", context, status=401)
    token, _session = await rt.run(open_session, rt.engine, user.id, now_ms=rt.clock())
    response = see_other(target)
    set_cookie(request, response, token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    await current_user(request)
    session = request.get(STAFF_SESSION)
    if session is not None:
        rt = request.app[RUNTIME]
        await rt.run(close_session, rt.engine, session.token_sha256)
    response = see_other("/console/login")
    clear_cookie(response)
    return response


async def choose_language(request: web.Request) -> web.StreamResponse:
    lang = request.query.get("lang", "")
    response = see_other(safe_next(request.query.get("next"), "/"))
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", secure=request.secure
        )
    return response
