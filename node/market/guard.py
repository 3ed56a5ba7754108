"""What keeps the marketplace's one form honest without accounts: a secret of the hub
(kept in its database, so every worker of the hub shares it and it outlives restarts),
a cookie holding a random value with a form token bound to it (double submit: a page of
another site can neither read the cookie nor make the token), and the client address
kept only as a keyed hash of it (the rate limits count by it; the address itself is
never stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.storage.models import MetaRow
from node.ui.sessions import secure_cookies
from node.web.client import counted_as

SECRET_KEY = "market.secret"
COOKIE = "cattc_market"
COOKIE_PATH = "/market"
COOKIE_MAX_AGE = 7 * 86400


def load_secret(engine: Engine) -> bytes:
    """The hub's marketplace secret, made at the first need (blocking)."""
    with Session(engine) as session:
        row = session.get(MetaRow, SECRET_KEY)
        if row is not None:
            return bytes.fromhex(row.value)
    try:
        with Session(engine) as session, session.begin():
            session.add(MetaRow(key=SECRET_KEY, value=secrets.token_hex(32)))
    except IntegrityError:  # another worker made it first
        pass
    with Session(engine) as session:
        row = session.get(MetaRow, SECRET_KEY)
        assert row is not None
        return bytes.fromhex(row.value)


class Guard:
    """The secret once read, and what is made with it."""

    def __init__(self) -> None:
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    def secret(self, engine: Engine) -> bytes:
        with self._lock:
            if self._secret is None:
                self._secret = load_secret(engine)
            return self._secret

    @staticmethod
    def _mac(secret: bytes, purpose: str, value: str) -> str:
        return hmac.new(secret, f"{purpose}\n{value}".encode(), hashlib.sha256).hexdigest()

    def form_token(self, secret: bytes, cookie: str) -> str:
        return self._mac(secret, "form", cookie)

    def token_ok(self, secret: bytes, cookie: str, token: str) -> bool:
        # Ours are ASCII: other text is a wrong token (compare_digest refuses it, a 500).
        if not cookie or not token or not (cookie.isascii() and token.isascii()):
            return False
        return hmac.compare_digest(self.form_token(secret, cookie), token)

    def address_hash(self, secret: bytes, address: str) -> str:
        """The keyed hash the rate limits count by (a plain hash of an IPv4 address
        could be reversed by trying them all)."""
        return self._mac(secret, "address", counted_as(address))


def visitor_cookie(request: web.Request) -> str:
    """The visitor's cookie value if it looks like one of ours, else ''."""
    value = request.cookies.get(COOKIE, "")
    return value if 20 <= len(value) <= 64 and value.isascii() else ""


def new_cookie_value() -> str:
    return secrets.token_urlsafe(24)


def set_visitor_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=COOKIE_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),  # https base URL: TLS ends at a proxy in front
    )
