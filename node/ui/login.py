"""Signing in and out, and the language picker.

The login form is CSRF-safe before any session exists ("double submit"): its page sets
a random pre-session token in a cookie and in a hidden field, and a login is looked at
only when both arrive and match. Throttled logins (``node.ui.throttle``) get 429 and a
page saying when to retry, without their password being checked. A successful login
always opens a new session with a new token, ending the one the browser brought, if any.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from node.services.log_every import Every
from node.ui import throttle
from node.ui.accounts import credentials
from node.ui.auth import csrf_ok, current_user
from node.ui.errors import page_error
from node.ui.i18n import COOKIE as LANG_COOKIE
from node.ui.i18n import LANGUAGES, N_
from node.ui.keys import STAFF_SESSION
from node.ui.password_checks import PASSWORD_CHECKS, PasswordChecks
from node.ui.sessions import (
    COOKIE,
    clear_cookie,
    close_session,
    close_session_of_token,
    csrf_matches,
    open_session,
    secure_cookies,
    set_cookie,
    token_shaped,
)
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME
from node.web.client import client_address, networks
from node.web.requests import FormRefused, read_small_form
from protocol.timeutil import ms_to_iso

logger = logging.getLogger(__name__)
LOGIN_COOKIE = "cattc_login"
DEVICE_COOKIE = "cattc_device"  # this browser signed in here before (node.ui.throttle)
LOGIN_PATH = "/console/login"
LOGIN_FORM_MAX_BYTES = 8 * 1024  # a name, a password, a token and where to go next


def safe_next(target: str | None, default: str = "/console") -> str:
    """A local path to go to after a form: never another site (``//host``, ``\\``, a
    scheme, or one of those hidden by a tab or newline, which browsers drop)."""
    if not target or not target.startswith("/") or "\\" in target:
        return default
    if any(c <= " " or c == "\x7f" for c in target) or target.startswith("//"):
        return default
    return target


def _login_token(request: web.Request) -> str:
    """The browser's pre-session token if it is one of ours in shape, else a new one."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    if token_shaped(token):
        return token
    return secrets.token_urlsafe(32)


def _login_form(
    request: web.Request, context: dict[str, Any], *, status: int = 200, fresh: bool = False
) -> web.Response:
    """The login page with its form token, set again in the cookie."""
    token = secrets.token_urlsafe(32) if fresh else _login_token(request)
    response = render(request, "auth/login.html", {**context, "login_token": token}, status=status)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
        path=LOGIN_PATH,
    )
    return response


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, {"next": safe_next(request.query.get("next"))})


async def login_submit(request: web.Request) -> web.StreamResponse:
    try:
        form = await read_small_form(request, LOGIN_FORM_MAX_BYTES)
    except FormRefused as exc:
        return page_error(request, exc.status, limit_bytes=LOGIN_FORM_MAX_BYTES)
    name = str(form.get("name", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")))
    context: dict[str, Any] = {"next": target, "name": name}
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE, ""), str(form.get("login_token", ""))):
        error = N_("This form has expired. Please sign in again.")
        return _login_form(request, {**context, "error": error}, status=403, fresh=True)
    if not name or not password:
        return _login_form(
            request, {**context, "error": N_("Enter your user name and password.")}, status=400
        )
    return await _sign_in(request, name, password, context, request.app[PASSWORD_CHECKS])


def _busy(request: web.Request, context: dict[str, Any], name: str) -> web.Response:
    count = _BUSY_LOG.note()
    if count is not None:
        logger.warning(
            "console sign-in answered busy %d times (too many at once; the last for %r)",
            count,
            name,
        )
    busy = N_("Many sign-ins are being checked at this moment. Try again in a few seconds.")
    response = _login_form(request, {**context, "error": busy}, status=503)
    response.headers["Retry-After"] = "5"
    return response


_BUSY_LOG = Every()  # a line every 10 s (one a request was 11,800 lines in 30 s)


async def _sign_in(
    request: web.Request,
    name: str,
    password: str,
    context: dict[str, Any],
    checks: PasswordChecks,
) -> web.StreamResponse:
    """The throttle first, then a password check's slot, held for the check alone: a
    sign-in that the throttle refuses takes no slot (one address's refused guesses held
    every slot while their rows were written, and real staff got 503)."""
    rt = request.app[RUNTIME]
    target = context["next"]
    address = client_address(request, networks(rt.config.trusted_proxies))
    device_token = request.cookies.get(DEVICE_COOKIE, "")
    attempt = await rt.run(
        throttle.begin_attempt,
        rt.engine,
        name,
        address,
        now_ms=rt.clock(),
        device_token=device_token,
    )
    if not attempt.allowed:
        logger.warning("console sign-in paused for %r from %s (too many failures)", name, address)
        retry = attempt.retry_at_ms
        response = render(
            request,
            "auth/throttled.html",
            {"retry_at": ms_to_iso(retry - retry % 1000), "minutes": _minutes(retry - rt.clock())},
            status=429,
        )
        response.headers["Retry-After"] = str(max(1, (retry - rt.clock() + 999) // 1000))
        return response
    stored, user = await rt.run(credentials, rt.engine, name)
    if not checks.take():
        await rt.run(throttle.withdraw, rt.engine, attempt)  # never checked: no failure
        return _busy(request, context, name)
    try:
        right = await checks.matches(stored, password)
    finally:
        checks.give_back()
    if not right or user is None:
        logger.info("console sign-in failed for %r from %s", name, address)
        return _login_form(
            request, {**context, "error": N_("Wrong user name or password.")}, status=401
        )
    device = await rt.run(throttle.succeeded, rt.engine, name, attempt, now_ms=rt.clock())
    await rt.run(close_session_of_token, rt.engine, request.cookies.get(COOKIE, ""))
    token, _session = await rt.run(open_session, rt.engine, user.id, now_ms=rt.clock())
    response = see_other(target)
    set_cookie(request, response, token)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    if device:
        response.set_cookie(
            DEVICE_COOKIE,
            device,
            max_age=throttle.DEVICE_LIFETIME_MS // 1000,
            httponly=True,
            samesite="Strict",
            secure=secure_cookies(request),
            path=LOGIN_PATH,
        )
    return response


def _minutes(ms: int) -> int:
    return max(1, -(-ms // 60_000))


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session, if the form carries its token (a page elsewhere cannot sign
    anyone out); without a live session there is nothing to end."""
    await current_user(request)
    session = request.get(STAFF_SESSION)
    if session is not None:
        if not await csrf_ok(request):
            message = N_("This form has expired. Reload the page and try again.")
            return render(request, "auth/forbidden.html", {"message": message}, status=403)
        rt = request.app[RUNTIME]
        await rt.run(close_session, rt.engine, session.token_sha256)
    response = see_other(LOGIN_PATH)
    clear_cookie(request, response)
    return response


async def choose_language(request: web.Request) -> web.StreamResponse:
    lang = request.query.get("lang", "")
    response = see_other(safe_next(request.query.get("next"), "/"))
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 86400,
            samesite="Lax",
            secure=secure_cookies(request),
            path="/",
        )
    return response
