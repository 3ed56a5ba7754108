"""Console sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure under
HTTPS), its SHA-256 in ``web_sessions`` with the session's CSRF token. A new session at
every login (no fixation); a session idle for ``IDLE_MS`` is over."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from node.storage.models import WebSessionRow

COOKIE = "cattc_session"
IDLE_MS = 30 * 60 * 1000
TOUCH_EVERY_MS = 60 * 1000


@dataclass(frozen=True)
class WebSession:
    token_sha256: str
    user_id: int
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(engine: Engine, user_id: int, *, now_ms: int) -> tuple[str, WebSession]:
    """A new session for ``user_id``: the cookie's token and the session."""
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
        session.add(row)
    return token, result


def find_session(engine: Engine, token: str, *, now_ms: int) -> WebSession | None:
    """The live session of cookie ``token``; an idle one is deleted and not returned."""
    if not token or len(token) > 128:
        return None
    key = _digest(token)
    with Session(engine) as session, session.begin():
        row = session.get(WebSessionRow, key)
        if row is None:
            return None
        if now_ms - row.last_seen > IDLE_MS:
            session.delete(row)
            return None
        if now_ms - row.last_seen > TOUCH_EVERY_MS:
            row.last_seen = now_ms
        return WebSession(row.token_sha256, row.user_id, row.csrf)


def close_session(engine: Engine, token_sha256: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(delete(WebSessionRow).where(WebSessionRow.token_sha256 == token_sha256))


def close_user_sessions(engine: Engine, user_id: int) -> None:
    """End every session of ``user_id`` (disabled, or role changed)."""
    with Session(engine) as session, session.begin():
        session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))


def csrf_matches(expected: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
