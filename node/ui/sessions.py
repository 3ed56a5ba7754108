"""Console sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure under
HTTPS, also behind a TLS proxy when the node's ``base_url`` is https), its SHA-256 in
``web_sessions`` with the session's CSRF token.

A new session at every login, whatever cookie the browser brought (no fixation). A
session idle for ``IDLE_MS``, or older than ``LIFETIME_MS``, is over; logging out
deletes its row, and disabling a user or changing their role deletes all of theirs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import Engine, delete, or_
from sqlalchemy.orm import Session

from node.storage.models import WebSessionRow
from node.web.appkeys import RUNTIME

COOKIE = "cattc_session"
IDLE_MS = 30 * 60 * 1000
LIFETIME_MS = 12 * 60 * 60 * 1000
TOUCH_EVERY_MS = 60 * 1000
TOKEN_MAX = 128
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class WebSession:
    token_sha256: str
    user_id: int
    csrf: str


def token_shaped(token: str) -> bool:
    """Whether ``token`` looks like one of ours (``secrets.token_urlsafe(32)``): what else a
    browser sends as a login or device token is no token at all."""
    return len(token) == 43 and set(token) <= _TOKEN_CHARS


def _digest(token: str) -> str:
    # A cookie's raw bytes reach us as lone surrogates, which plain encode() refuses.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _over(row: WebSessionRow, now_ms: int) -> bool:
    return now_ms - row.last_seen > IDLE_MS or now_ms - row.created > LIFETIME_MS


def open_session(engine: Engine, user_id: int, *, now_ms: int) -> tuple[str, WebSession]:
    """A new session for ``user_id``: the cookie's token and the session. Sessions that
    are over (anyone's) are deleted on the way."""
    token = secrets.token_urlsafe(32)
    row = WebSessionRow(
        token_sha256=_digest(token),
        user_id=user_id,
        csrf=secrets.token_urlsafe(32),
        created=now_ms,
        last_seen=now_ms,
    )
    result = WebSession(row.token_sha256, user_id, row.csrf)
    with Session(engine) as session, session.begin():
        session.execute(
            delete(WebSessionRow).where(
                or_(
                    WebSessionRow.last_seen < now_ms - IDLE_MS,
                    WebSessionRow.created < now_ms - LIFETIME_MS,
                )
            )
        )
        session.add(row)
    return token, result


def find_session(engine: Engine, token: str, *, now_ms: int) -> WebSession | None:
    """The live session of cookie ``token``; one that is over is deleted and not returned."""
    if not token or len(token) > TOKEN_MAX:
        return None
    key = _digest(token)
    with Session(engine) as session, session.begin():
        row = session.get(WebSessionRow, key)
        if row is None:
            return None
        if _over(row, now_ms):
            session.delete(row)
            return None
        if now_ms - row.last_seen > TOUCH_EVERY_MS:
            row.last_seen = now_ms
        return WebSession(row.token_sha256, row.user_id, row.csrf)


def close_session(engine: Engine, token_sha256: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(delete(WebSessionRow).where(WebSessionRow.token_sha256 == token_sha256))


def close_session_of_token(engine: Engine, token: str) -> None:
    """End the session of cookie ``token``, if there is one (a new login replaces it)."""
    if token and len(token) <= TOKEN_MAX:
        close_session(engine, _digest(token))


def close_user_sessions_in(session: Session, user_id: int) -> None:
    """End every session of ``user_id`` within ``session``'s transaction."""
    session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))


def close_user_sessions(engine: Engine, user_id: int) -> None:
    """End every session of ``user_id`` (disabled, or role changed)."""
    with Session(engine) as session, session.begin():
        close_user_sessions_in(session, user_id)


def csrf_matches(expected: str, given: str) -> bool:
    given_bytes = given.encode("utf-8", "surrogatepass")  # a header's raw bytes: surrogates
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given_bytes)


def secure_cookies(request: web.Request) -> bool:
    """Whether cookies get ``Secure``: the request came over TLS, or the node's public
    address is https (TLS ends at a reverse proxy in front of it)."""
    if request.secure:
        return True
    rt = request.app.get(RUNTIME)
    return rt is not None and rt.config.base_url.lower().startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
        path="/",
    )


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        COOKIE, path="/", secure=secure_cookies(request), httponly=True, samesite="Strict"
    )
